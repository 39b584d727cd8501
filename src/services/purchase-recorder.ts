// Records verified store purchases for a customer: stores each transaction once, appends the store's
// statement to the history, lets the engine derive state, grants, events and credits, and writes all of
// it in one database transaction. Concurrent or repeated calls converge: the customer row is locked for the
// transaction, and every insert is guarded by a unique key.
import type { Catalog } from '../domain/catalog.js';
import { deriveOneTimePurchase, deriveSubscription } from '../domain/engine.js';
import { DEFAULT_RECHECK_POLICY, nextCheckAfterNotification, nextCheckAt, type RecheckPolicy } from '../domain/recheck.js';
import type { DerivedEvent, NormalizedPurchase, ProductKind, Store } from '../domain/types.js';
import type { Em, Orm } from '../persistence/orm.js';
import { rebuildSubscriptionSpans } from '../persistence/analytics.js';
import * as repo from '../persistence/repository.js';
import { retryOnConflict } from '../persistence/retry.js';
import type { PurchaseRules, TransferPolicy } from '../config/config.js';
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
  /** Transactions moved to this customer from another one under the transfer policy. */
  transferredTransactionIds: string[];
  /** Orders (createOrder) the purchases fulfilled. */
  fulfilledOrderIds: string[];
  /** Every customer whose entitlements changed (this one, and the previous owner of a transfer). */
  changedAppUserIds: string[];
}

export interface RecordOptions {
  /** Store calls to queue for what the customer now holds (Google acknowledge/consume). */
  followUps?: readonly StoreTaskSpec[];
  /** The order id the app submitted with the proof. */
  orderId?: string | null;
  /** A store notification brought it: the subscription is re-checked soon to confirm. */
  fromNotification?: boolean;
  /** The legacy App Store receipt that listed it: kept on its subscriptions to re-check them without an API key. */
  appReceipt?: string | null;
}

/** Channel on which PostgreSQL tells every instance whose entitlements changed (payload: appUserId). */
export const ENTITLEMENTS_CHANGED_CHANNEL = 'iap_entitlements_changed';

const byLineageThenTransaction = (a: NormalizedPurchase, b: NormalizedPurchase): number =>
  compare(a.store, b.store) || compare(a.lineageId, b.lineageId) || compare(a.transactionId, b.transactionId);
const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The purchase that started a lineage, not a renewal: Apple's original transaction; Google's first order (renewals end in `..N`). */
function isFirstOfLineage(p: NormalizedPurchase): boolean {
  return p.store === 'APP_STORE' ? p.transactionId === p.lineageId : !/\.\.\d+$/.test(p.transactionId);
}

function transferEvent(p: NormalizedPurchase, now: Date, direction: 'IN' | 'OUT', from: string, to: string, data: Record<string, unknown>): DerivedEvent {
  return {
    key: `transfer:${direction}:${p.store}:${p.lineageId}:${from}:${to}:${now.getTime()}`,
    type: 'TRANSFER',
    occurredAt: now,
    productId: p.productId,
    transactionId: p.transactionId,
    data: { direction, ...data },
  };
}

export class PurchaseRecorder {
  constructor(
    private readonly orm: Orm,
    private readonly catalog: Catalog,
    private readonly onCustomerChanged: (appUserId: string) => void,
    private readonly rules: PurchaseRules,
    private readonly recheck: RecheckPolicy = DEFAULT_RECHECK_POLICY,
  ) {}

  /**
   * Records verified purchases for a customer. Locks are always taken in one order (customer row, then each
   * lineage in sorted order, then balances), so concurrent calls for the same purchases wait rather than
   * deadlock; a conflict PostgreSQL still aborts is retried as a whole.
   */
  async record(appUserId: string, purchases: readonly NormalizedPurchase[], now: Date, options: RecordOptions = {}): Promise<RecordOutcome> {
    const outcome = await retryOnConflict(() =>
      this.orm.em.fork().transactional(async (em) => {
        const ordered = (await this.placeInLineages(em, purchases)).sort(byLineageThenTransaction);
        return this.recordInTransaction(em, appUserId, ordered, now, options);
      }),
    );
    for (const changed of outcome.changedAppUserIds) this.onCustomerChanged(changed);
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

  private async recordInTransaction(em: Em, appUserId: string, purchases: readonly NormalizedPurchase[], now: Date, options: RecordOptions): Promise<RecordOutcome> {
    const customerId = await repo.lockCustomer(em, appUserId);
    const outcome: RecordOutcome = {
      customerId,
      newTransactionIds: [],
      knownTransactionIds: [],
      foreignTransactionIds: [],
      unknownProductTransactionIds: [],
      queuedTaskIds: [],
      transferredTransactionIds: [],
      fulfilledOrderIds: [],
      changedAppUserIds: [appUserId],
    };
    const lineages = new Map<string, { store: Store; lineageId: string }>();
    for (const p of purchases) lineages.set(`${p.store}:${p.lineageId}`, { store: p.store, lineageId: p.lineageId });
    for (const { store, lineageId } of lineages.values()) await repo.lockLineage(em, store, lineageId);

    const subscriptionLineages = new Map<string, { store: Store; lineageId: string; storedExpiresAt: Date | null | undefined }>();
    /** Each subscription's stored period end as this write found it (undefined: not stored yet). */
    const storedExpiry = new Map<string, Date | null>();
    const oneTimeTransactions: NormalizedPurchase[] = [];
    const previousOwners = new Map<string, string>();
    for (const original of purchases) {
      const p = await this.withKnownRevocation(em, original);
      const product = this.catalog.find(p.store, p.productId);
      // A renewal's new transaction id still belongs to whoever owns the subscription.
      const sub = await repo.lockSubscription(em, p.store, p.lineageId);
      if (sub && !storedExpiry.has(`${p.store}:${p.lineageId}`)) storedExpiry.set(`${p.store}:${p.lineageId}`, sub.expiresAt);
      let stored = sub?.customerId ? null : await repo.insertOrLockPurchase(em, p, product?.kind ?? null, customerId);
      const owner = sub?.customerId ?? stored!.customerId;
      if (owner !== null && owner !== customerId) {
        if (!(await this.transfers(em, owner, p, product?.kind ?? null, now))) {
          outcome.foreignTransactionIds.push(p.transactionId);
          continue;
        }
        const from = await repo.lockCustomerById(em, owner);
        await repo.transferLineage(em, p.store, p.lineageId, owner, customerId);
        await repo.appendEvents(em, { customerId: owner, store: p.store, environment: p.environment, lineageId: p.lineageId }, [
          transferEvent(p, now, 'OUT', owner, customerId, { toAppUserId: appUserId }),
        ]);
        await repo.appendEvents(em, { customerId, store: p.store, environment: p.environment, lineageId: p.lineageId }, [
          transferEvent(p, now, 'IN', owner, customerId, { fromAppUserId: from }),
        ]);
        previousOwners.set(owner, from);
        outcome.transferredTransactionIds.push(p.transactionId);
      }
      stored ??= await repo.insertOrLockPurchase(em, p, product?.kind ?? null, customerId);
      await repo.appendObservation(em, p);
      if (!stored.inserted) await repo.refreshPurchaseFromHistory(em, stored.id, p.store, p.lineageId, p.transactionId, customerId);
      const isNew = stored.inserted || stored.customerId === null;
      if (isNew) {
        const orderId = await repo.fulfilOrder(em, customerId, stored.id, p, {
          orderId: options.orderId ?? null,
          windowMs: this.rules.orderMatchWindowMs,
          firstOfLineage: isFirstOfLineage(p),
          granted: product !== undefined,
        });
        if (orderId) outcome.fulfilledOrderIds.push(orderId);
      }
      if (!product) {
        // Kept, because the store says it was paid; it grants once the catalog lists the product and the
        // purchase is seen again.
        outcome.unknownProductTransactionIds.push(p.transactionId);
        continue;
      }
      // Claiming a purchase nobody owned yet (first seen through a notification) is new for this customer.
      (isNew ? outcome.newTransactionIds : outcome.knownTransactionIds).push(p.transactionId);
      if (product.kind === 'AUTO_RENEWABLE') {
        const key = `${p.store}:${p.lineageId}`;
        subscriptionLineages.set(key, { store: p.store, lineageId: p.lineageId, storedExpiresAt: storedExpiry.has(key) ? storedExpiry.get(key) : undefined });
      }
      else oneTimeTransactions.push(p);
    }

    for (const { store, lineageId, storedExpiresAt } of subscriptionLineages.values()) {
      await this.applySubscription(em, customerId, store, lineageId, storedExpiresAt, now, options);
    }
    // Acknowledge/consume only what this customer now holds; queued in the same transaction as the grant, so a
    // crash after commit still leaves the call to be made.
    const held = new Set([...outcome.newTransactionIds, ...outcome.knownTransactionIds]);
    const heldTokens = new Set(purchases.filter((p) => held.has(p.transactionId)).map((p) => p.purchaseToken));
    for (const task of options.followUps ?? []) {
      if (heldTokens.has(task.token)) outcome.queuedTaskIds.push(...(await repo.queueStoreTask(em, 'PLAY_STORE', task, now)));
    }
    for (const p of oneTimeTransactions) {
      await this.applyOneTime(em, customerId, p, now);
    }
    const entitlementsOf = (store: Store, productId: string) => this.catalog.find(store, productId)?.entitlements ?? [];
    for (const [previousId, previousAppUserId] of previousOwners) {
      await repo.refreshEntitlementSources(em, previousId, entitlementsOf);
      await em.execute('select pg_notify(?, ?)', [ENTITLEMENTS_CHANGED_CHANNEL, previousAppUserId]);
      outcome.changedAppUserIds.push(previousAppUserId);
    }
    if (subscriptionLineages.size + oneTimeTransactions.length > 0) {
      await repo.refreshEntitlementSources(em, customerId, entitlementsOf);
      await em.execute('select pg_notify(?, ?)', [ENTITLEMENTS_CHANGED_CHANNEL, appUserId]);
    }
    return outcome;
  }

  /**
   * The transfer policy for a purchase another customer owns. Consumables never move: their credits were
   * granted to the first customer and may have been spent.
   */
  private async transfers(em: Em, owner: string, p: NormalizedPurchase, kind: ProductKind | null, now: Date): Promise<boolean> {
    if (kind === null || kind === 'CONSUMABLE') return false;
    const policy: TransferPolicy = p.environment === 'SANDBOX' ? this.rules.sandboxTransferPolicy : this.rules.transferPolicy;
    if (policy === 'KEEP_WITH_ORIGINAL') return false;
    if (policy === 'TRANSFER') return true;
    return !(await repo.hasActiveGrantFrom(em, owner, p.store, p.lineageId, now));
  }

  private async applySubscription(
    em: Em,
    customerId: string,
    store: Store,
    lineageId: string,
    storedExpiresAt: Date | null | undefined,
    now: Date,
    options: RecordOptions,
  ): Promise<void> {
    const history = await repo.loadObservations(em, store, lineageId);
    const d = deriveSubscription(history, (s, id) => this.catalog.find(s, id), now);
    const periodMoved = storedExpiresAt !== undefined && storedExpiresAt?.getTime() !== d.expiresAt?.getTime();
    const nextCheck = (options.fromNotification ? nextCheckAfterNotification : nextCheckAt)(d, now, this.recheck);
    await repo.upsertSubscription(em, customerId, d, { nextCheckAt: nextCheck, appReceipt: store === 'APP_STORE' ? options.appReceipt : null });
    await repo.syncGrants(em, customerId, `sub:${store}:${lineageId}`, d.store, d.environment, d.grants);
    const added = await repo.appendEvents(em, { customerId, store: d.store, environment: d.environment, lineageId }, d.events);
    // The analytics rollup follows the events in the same transaction, under the lineage lock; spans are derived
    // from the events (and their periods' current end), so a write that added none and moved no period end (most
    // re-checks) leaves them as they are.
    if (added > 0 || periodMoved) await rebuildSubscriptionSpans((sql, params) => em.execute(sql, [...params]), store, lineageId);
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
