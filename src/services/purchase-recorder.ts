// Records verified store purchases for a customer: stores each transaction once, appends the store's
// statement to the history, lets the engine derive state, grants, events and credits, and writes all of
// it in one database transaction. Concurrent or repeated calls converge: the customer row is locked for the
// transaction, and every insert is guarded by a unique key.
import type { Catalog } from '../domain/catalog.js';
import { deriveOneTimePurchase, deriveSubscription } from '../domain/engine.js';
import { AppError } from '../domain/errors.js';
import type { NormalizedPurchase, Store } from '../domain/types.js';
import type { Em, Orm } from '../persistence/orm.js';
import * as repo from '../persistence/repository.js';

export interface RecordOutcome {
  customerId: string;
  /** Transactions stored for the first time by this call. */
  newTransactionIds: string[];
  /** Transactions this customer already had. */
  knownTransactionIds: string[];
  /** Transactions that belong to another customer: left with their owner, nothing granted here. */
  foreignTransactionIds: string[];
}

/** Channel on which PostgreSQL tells every instance whose entitlements changed (payload: appUserId). */
export const ENTITLEMENTS_CHANGED_CHANNEL = 'iap_entitlements_changed';

export class PurchaseRecorder {
  constructor(
    private readonly orm: Orm,
    private readonly catalog: Catalog,
    private readonly onCustomerChanged: (appUserId: string) => void,
  ) {}

  async record(appUserId: string, purchases: readonly NormalizedPurchase[], now: Date): Promise<RecordOutcome> {
    for (const p of purchases) {
      if (!this.catalog.find(p.store, p.productId)) {
        throw new AppError('PRODUCT_NOT_IN_CATALOG', `product ${p.productId} (${p.store}) is not in the catalog`, {
          store: p.store,
          productId: p.productId,
        });
      }
    }
    const outcome = await this.orm.em.fork().transactional((em) => this.recordInTransaction(em, appUserId, purchases, now));
    this.onCustomerChanged(appUserId);
    return outcome;
  }

  private async recordInTransaction(em: Em, appUserId: string, purchases: readonly NormalizedPurchase[], now: Date): Promise<RecordOutcome> {
    const customerId = await repo.lockCustomer(em, appUserId);
    const outcome: RecordOutcome = { customerId, newTransactionIds: [], knownTransactionIds: [], foreignTransactionIds: [] };
    const subscriptionLineages = new Map<string, { store: Store; lineageId: string }>();
    const oneTimeTransactions: NormalizedPurchase[] = [];

    for (const p of purchases) {
      const product = this.catalog.find(p.store, p.productId)!;
      if (product.kind === 'AUTO_RENEWABLE') {
        // A renewal's new transaction id still belongs to whoever owns the subscription.
        const sub = await repo.lockSubscription(em, p.store, p.lineageId);
        if (sub?.customerId && sub.customerId !== customerId) {
          outcome.foreignTransactionIds.push(p.transactionId);
          continue;
        }
      }
      const stored = await repo.insertOrLockPurchase(em, p, product.kind, customerId);
      if (stored.customerId !== null && stored.customerId !== customerId) {
        outcome.foreignTransactionIds.push(p.transactionId);
        continue;
      }
      if (!stored.inserted) await repo.refreshPurchase(em, stored.id, p, customerId);
      (stored.inserted ? outcome.newTransactionIds : outcome.knownTransactionIds).push(p.transactionId);
      await repo.appendObservation(em, p);
      if (product.kind === 'AUTO_RENEWABLE') subscriptionLineages.set(`${p.store}:${p.lineageId}`, { store: p.store, lineageId: p.lineageId });
      else oneTimeTransactions.push(p);
    }

    for (const { store, lineageId } of subscriptionLineages.values()) {
      await this.applySubscription(em, customerId, store, lineageId, now);
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
    await repo.upsertSubscription(em, {
      customerId,
      store: d.store,
      environment: d.environment,
      lineageId: d.lineageId,
      productId: d.productId,
      state: d.state,
      originalPurchasedAt: d.originalPurchasedAt,
      currentPeriodStartsAt: d.currentPeriodStartsAt,
      expiresAt: d.expiresAt,
      gracePeriodExpiresAt: d.gracePeriodExpiresAt,
      autoResumeAt: d.autoResumeAt,
      willRenew: d.willRenew,
      ownership: d.ownership,
      revokedAt: d.revokedAt,
      revocationReason: d.revocationReason,
      expirationReason: d.expirationReason,
      latestTransactionId: d.latestTransactionId,
    });
    await repo.syncGrants(em, customerId, `sub:${store}:${lineageId}`, d.store, d.environment, d.grants);
    await repo.appendEvents(em, { customerId, store: d.store, environment: d.environment, lineageId }, d.events);
  }

  private async applyOneTime(em: Em, customerId: string, p: NormalizedPurchase, now: Date): Promise<void> {
    const product = this.catalog.find(p.store, p.productId)!;
    const history = await repo.loadObservations(em, p.store, p.lineageId, p.transactionId);
    const d = deriveOneTimePurchase(history, product, now);
    if (d.expiresAt) {
      await em.execute('update purchase set expires_at = ? where store = ? and store_transaction_id = ?', [d.expiresAt, p.store, p.transactionId]);
    }
    await repo.syncGrants(em, customerId, `tx:${p.store}:${p.transactionId}`, d.store, d.environment, d.grants);
    await repo.appendEvents(em, { customerId, store: d.store, environment: d.environment, lineageId: p.lineageId }, d.events);
    for (const change of d.credits) {
      const balance = await repo.lockBalance(em, customerId, change.currency);
      await repo.applyCredit(em, customerId, { ...change, transactionId: change.transactionId }, balance);
    }
  }
}
