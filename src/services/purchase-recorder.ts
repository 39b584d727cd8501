// Records verified store purchases for a customer: stores each transaction once, appends the store's
// statement to the history, lets the engine derive state, grants, events and credits, and writes all of
// it in one database transaction. Concurrent or repeated calls converge: the customer row is locked for the
// transaction, and every insert is guarded by a unique key.
import type { Catalog } from '../domain/catalog.js';
import { deriveOneTimePurchase, deriveSubscription } from '../domain/engine.js';
import type { NormalizedPurchase, Store } from '../domain/types.js';
import type { Em, Orm } from '../persistence/orm.js';
import * as repo from '../persistence/repository.js';
import { retryOnConflict } from '../persistence/retry.js';
import type { StoreTaskSpec } from '../stores/adapter.js';

export interface RecordOutcome {
  customerId: string;
  /** Transactions stored for the first time by this call. */
  newTransactionIds: string[];
  /** Transactions this customer already had. */
  knownTransactionIds: string[];
  /** Transactions that belong to another customer: left with their owner, nothing granted here. */
  foreignTransactionIds: string[];
  /** Store-confirmed transactions of products the catalog does not list: stored, nothing granted. */
  unknownProductTransactionIds: string[];
  /** Store calls (acknowledge, consume) queued by this call, to run right after commit. */
  queuedTaskIds: number[];
}

/** Channel on which PostgreSQL tells every instance whose entitlements changed (payload: appUserId). */
export const ENTITLEMENTS_CHANGED_CHANNEL = 'iap_entitlements_changed';

const byLineageThenTransaction = (a: NormalizedPurchase, b: NormalizedPurchase): number =>
  compare(a.store, b.store) || compare(a.lineageId, b.lineageId) || compare(a.transactionId, b.transactionId);
const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export class PurchaseRecorder {
  constructor(
    private readonly orm: Orm,
    private readonly catalog: Catalog,
    private readonly onCustomerChanged: (appUserId: string) => void,
  ) {}

  /**
   * Records verified purchases for a customer. Locks are always taken in one order (customer row, then each
   * lineage in sorted order, then balances), so concurrent calls for the same purchases wait rather than
   * deadlock; a conflict PostgreSQL still aborts is retried as a whole.
   */
  async record(appUserId: string, purchases: readonly NormalizedPurchase[], now: Date, followUps: readonly StoreTaskSpec[] = []): Promise<RecordOutcome> {
    const outcome = await retryOnConflict(() =>
      this.orm.em.fork().transactional(async (em) => {
        const ordered = (await this.placeInLineages(em, purchases)).sort(byLineageThenTransaction);
        return this.recordInTransaction(em, appUserId, ordered, now, followUps);
      }),
    );
    this.onCustomerChanged(appUserId);
    return outcome;
  }

  /**
   * Stores purchases nobody has claimed yet (seen through a store notification before any customer submitted
   * them): the purchase and the store's statement are kept, nothing is granted or acknowledged. The first
   * customer who submits the purchase claims it.
   */
  async keepUnowned(purchases: readonly NormalizedPurchase[]): Promise<void> {
    await retryOnConflict(() =>
      this.orm.em.fork().transactional(async (em) => {
        const ordered = (await this.placeInLineages(em, purchases)).sort(byLineageThenTransaction);
        for (const p of ordered) await repo.lockLineage(em, p.store, p.lineageId);
        for (const original of ordered) {
          const p = await this.withKnownRevocation(em, original);
          const stored = await repo.insertOrLockPurchase(em, p, this.catalog.find(p.store, p.productId)?.kind ?? null, null);
          await repo.appendObservation(em, p);
          if (!stored.inserted && stored.customerId === null) await repo.refreshPurchaseFromHistory(em, stored.id, p.store, p.lineageId, p.transactionId, null);
        }
      }),
    );
  }

  /**
   * Google subscriptions: a purchase token that replaces another (upgrade, downgrade, resubscribe) continues the
   * old token's lineage, so the old period ends where the new one starts; and since Google states no period
   * start, a renewal's period starts where the previous known period ended (fixed once first seen).
   */
  private async placeInLineages(em: Em, purchases: readonly NormalizedPurchase[]): Promise<NormalizedPurchase[]> {
    const placed: NormalizedPurchase[] = [];
    for (const original of purchases) {
      let p = original;
      if (p.store === 'PLAY_STORE' && p.previousLineageToken) {
        const lineageId = await repo.lineageOfToken(em, p.store, p.previousLineageToken);
        if (lineageId && lineageId !== p.lineageId) p = { ...p, lineageId };
      }
      if (p.store === 'PLAY_STORE' && p.expiresAt && p.purchaseToken && this.catalog.find(p.store, p.productId)?.kind === 'AUTO_RENEWABLE') {
        const start = await repo.periodStartOf(em, p.store, p.purchaseToken, p.transactionId, p.purchasedAt, p.expiresAt);
        if (start.getTime() !== p.purchasedAt.getTime()) p = { ...p, purchasedAt: start };
      }
      placed.push(p);
    }
    return placed;
  }

  /**
   * Google's purchase resources never show a refund: a transaction the store voided stays revoked whatever a
   * later read says. Looked up under the lineage lock, so a concurrent revocation is seen.
   */
  private async withKnownRevocation(em: Em, p: NormalizedPurchase): Promise<NormalizedPurchase> {
    if (p.store !== 'PLAY_STORE' || p.revokedAt !== null) return p;
    const revoked = await repo.revocationOf(em, p.store, p.transactionId, p.purchaseToken);
    return revoked ? { ...p, revokedAt: revoked.revokedAt, revocationReason: revoked.reason } : p;
  }

  private async recordInTransaction(
    em: Em,
    appUserId: string,
    purchases: readonly NormalizedPurchase[],
    now: Date,
    followUps: readonly StoreTaskSpec[],
  ): Promise<RecordOutcome> {
    const customerId = await repo.lockCustomer(em, appUserId);
    const outcome: RecordOutcome = {
      customerId,
      newTransactionIds: [],
      knownTransactionIds: [],
      foreignTransactionIds: [],
      unknownProductTransactionIds: [],
      queuedTaskIds: [],
    };
    const lineages = new Map<string, { store: Store; lineageId: string }>();
    for (const p of purchases) lineages.set(`${p.store}:${p.lineageId}`, { store: p.store, lineageId: p.lineageId });
    for (const { store, lineageId } of lineages.values()) await repo.lockLineage(em, store, lineageId);

    const subscriptionLineages = new Map<string, { store: Store; lineageId: string }>();
    const oneTimeTransactions: NormalizedPurchase[] = [];
    for (const original of purchases) {
      const p = await this.withKnownRevocation(em, original);
      const product = this.catalog.find(p.store, p.productId);
      // A renewal's new transaction id still belongs to whoever owns the subscription.
      const sub = await repo.lockSubscription(em, p.store, p.lineageId);
      if (sub?.customerId && sub.customerId !== customerId) {
        outcome.foreignTransactionIds.push(p.transactionId);
        continue;
      }
      const stored = await repo.insertOrLockPurchase(em, p, product?.kind ?? null, customerId);
      if (stored.customerId !== null && stored.customerId !== customerId) {
        outcome.foreignTransactionIds.push(p.transactionId);
        continue;
      }
      await repo.appendObservation(em, p);
      if (!stored.inserted) await repo.refreshPurchaseFromHistory(em, stored.id, p.store, p.lineageId, p.transactionId, customerId);
      if (!product) {
        // Kept, because the store says it was paid; it grants once the catalog lists the product and the
        // purchase is seen again.
        outcome.unknownProductTransactionIds.push(p.transactionId);
        continue;
      }
      // Claiming a purchase nobody owned yet (first seen through a notification) is new for this customer.
      (stored.inserted || stored.customerId === null ? outcome.newTransactionIds : outcome.knownTransactionIds).push(p.transactionId);
      if (product.kind === 'AUTO_RENEWABLE') subscriptionLineages.set(`${p.store}:${p.lineageId}`, { store: p.store, lineageId: p.lineageId });
      else oneTimeTransactions.push(p);
    }

    for (const { store, lineageId } of subscriptionLineages.values()) {
      await this.applySubscription(em, customerId, store, lineageId, now);
    }
    // Acknowledge/consume only what this customer now holds; queued in the same transaction as the grant, so a
    // crash after commit still leaves the call to be made.
    const held = new Set([...outcome.newTransactionIds, ...outcome.knownTransactionIds]);
    const heldTokens = new Set(purchases.filter((p) => held.has(p.transactionId)).map((p) => p.purchaseToken));
    for (const task of followUps) {
      if (heldTokens.has(task.token)) outcome.queuedTaskIds.push(...(await repo.queueStoreTask(em, 'PLAY_STORE', task, now)));
    }
    for (const p of oneTimeTransactions) {
      await this.applyOneTime(em, customerId, p, now);
    }
    if (subscriptionLineages.size + oneTimeTransactions.length > 0) {
      await repo.refreshEntitlementSources(em, customerId, (store, productId) => this.catalog.find(store, productId)?.entitlements ?? []);
      await em.execute('select pg_notify(?, ?)', [ENTITLEMENTS_CHANGED_CHANNEL, appUserId]);
    }
    return outcome;
  }
  private async applySubscription(em: Em, customerId: string, store: Store, lineageId: string, now: Date): Promise<void> {
    const history = await repo.loadObservations(em, store, lineageId);
    const d = deriveSubscription(history, (s, id) => this.catalog.find(s, id), now);
    await repo.upsertSubscription(em, customerId, d);
    await repo.syncGrants(em, customerId, `sub:${store}:${lineageId}`, d.store, d.environment, d.grants);
    await repo.appendEvents(em, { customerId, store: d.store, environment: d.environment, lineageId }, d.events);
  }

  private async applyOneTime(em: Em, customerId: string, p: NormalizedPurchase, now: Date): Promise<void> {
    const product = this.catalog.find(p.store, p.productId)!;
    const history = await repo.loadObservations(em, p.store, p.lineageId, p.transactionId);
    const d = deriveOneTimePurchase(history, product, now);
    await repo.setOneTimeFacts(em, p.store, p.transactionId, d.expiresAt, d.revokedAt, d.revocationReason);
    await repo.syncGrants(em, customerId, `tx:${p.store}:${p.transactionId}`, d.store, d.environment, d.grants);
    await repo.appendEvents(em, { customerId, store: d.store, environment: d.environment, lineageId: p.lineageId }, d.events);
    for (const change of d.credits) {
      const balance = await repo.lockBalance(em, customerId, change.currency);
      await repo.applyCredit(em, customerId, { ...change, transactionId: change.transactionId }, balance);
    }
  }
}
