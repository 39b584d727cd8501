// Support tools (server API key only): find purchases by the ids a customer quotes, grant or revoke a
// promotional entitlement, and read a customer's full event history.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Catalog } from '../domain/catalog.js';
import { AppError } from '../domain/errors.js';
import type { DerivedEvent, Store } from '../domain/types.js';
import type { Orm } from '../persistence/orm.js';
import * as repo from '../persistence/repository.js';
import { toDate } from '../persistence/snapshot-codec.js';
import { eventViewOf, type EventView } from './event-view.js';
import { ENTITLEMENTS_CHANGED_CHANNEL } from './purchase-recorder.js';
import type { AppStoreAdapter } from '../stores/apple/adapter.js';

type Row = Record<string, unknown>;

export interface PurchaseRecordView {
  store: Store;
  environment: string;
  productId: string;
  kind: string | null;
  storeTransactionId: string;
  originalTransactionId: string;
  appUserId: string | null;
  purchasedAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  revocationReason: string | null;
  ownership: string;
  quantity: number;
}

export interface PurchaseLookup {
  purchases: PurchaseRecordView[];
  /** Transactions the store names for the id that this server has never recorded (the app never submitted them). */
  unrecordedTransactionIds: string[];
}

export type { EventView } from './event-view.js';

export interface PromotionalView {
  id: string;
  entitlement: string;
  startsAt: Date;
  expiresAt: Date | null;
  reason: string;
  revokedAt: Date | null;
}

const PURCHASE_SELECT = `select p.store, p.environment, p.product_id, p.kind, p.store_transaction_id, p.lineage_id, c.app_user_id, p.purchased_at,
  p.expires_at, p.revoked_at, p.revocation_reason, p.ownership, p.quantity
  from purchase p left join customer c on c.id = p.customer_id`;

export class SupportService {
  constructor(
    private readonly orm: Orm,
    private readonly catalog: Catalog,
    private readonly apple: AppStoreAdapter | null,
    private readonly onCustomerChanged: (appUserId: string) => void,
    private readonly log: Logger,
  ) {}

  /** Purchases by store transaction id (either store), Google order id (`GPA.…`, with its renewals), or Apple order id. */
  async lookUp(q: { storeTransactionId?: string | null; googleOrderId?: string | null; appleOrderId?: string | null }): Promise<PurchaseLookup> {
    const given = [q.storeTransactionId, q.googleOrderId, q.appleOrderId].filter((v) => v);
    if (given.length !== 1) throw new AppError('BAD_USER_INPUT', 'give exactly one of storeTransactionId, googleOrderId, appleOrderId');
    if (q.storeTransactionId) return { purchases: await this.byTransactionIds([q.storeTransactionId]), unrecordedTransactionIds: [] };
    if (q.googleOrderId) {
      // Renewals of a Google order carry its id with a `..N` suffix.
      const rows = (await this.conn().execute(
        `${PURCHASE_SELECT} where p.store = 'PLAY_STORE' and (p.store_transaction_id = ? or p.store_transaction_id like ?) order by p.purchased_at`,
        [q.googleOrderId, `${q.googleOrderId.replace(/[\\%_]/g, (c) => `\\${c}`)}..%`],
      )) as Row[];
      return { purchases: rows.map(toPurchaseView), unrecordedTransactionIds: [] };
    }
    return this.byAppleOrderId(q.appleOrderId!);
  }

  private async byAppleOrderId(orderId: string): Promise<PurchaseLookup> {
    if (!this.apple?.api) throw new AppError('STORE_NOT_CONFIGURED', 'looking up an Apple order id needs the App Store Server API key (APPLE_KEY_ID)', { store: 'APP_STORE' });
    const environments = this.apple.config.acceptSandbox && this.apple.config.environment === 'PRODUCTION' ? (['PRODUCTION', 'SANDBOX'] as const) : [this.apple.config.environment];
    for (const env of environments) {
      const res = await this.apple.api.lookUpOrderId(env, orderId);
      if (!res.ok) {
        if (res.kind === 'NOT_FOUND') continue;
        throw new AppError('STORE_UNAVAILABLE', `Apple could not look up the order: ${res.message}`);
      }
      if (res.value.status !== 0) continue;
      const ids: string[] = [];
      for (const jws of res.value.signedTransactions ?? []) {
        const tx = await this.apple.signedData.transaction(jws);
        if (tx.ok && tx.value.transactionId) ids.push(String(tx.value.transactionId));
        else this.log.warn({ orderId }, 'a transaction of an Apple order lookup did not verify');
      }
      const purchases = await this.byTransactionIds(ids, 'APP_STORE');
      const recorded = new Set(purchases.map((p) => p.storeTransactionId));
      return { purchases, unrecordedTransactionIds: ids.filter((id) => !recorded.has(id)) };
    }
    return { purchases: [], unrecordedTransactionIds: [] };
  }

  private async byTransactionIds(ids: readonly string[], store?: Store): Promise<PurchaseRecordView[]> {
    if (ids.length === 0) return [];
    const rows = (await this.conn().execute(
      `${PURCHASE_SELECT} where p.store_transaction_id in (${ids.map(() => '?').join(', ')}) ${store ? 'and p.store = ?' : ''} order by p.purchased_at`,
      store ? [...ids, store] : [...ids],
    )) as Row[];
    return rows.map(toPurchaseView);
  }

  /** Grants an entitlement for a while (or until revoked), recorded as a PROMOTIONAL_GRANT event. */
  async grantPromotional(appUserId: string, entitlement: string, expiresAt: Date | null, reason: string, now: Date): Promise<PromotionalView> {
    if (!this.catalog.entitlements.includes(entitlement)) {
      throw new AppError('BAD_USER_INPUT', `no product in the catalog unlocks "${entitlement}"`, { known: this.catalog.entitlements });
    }
    if (expiresAt && expiresAt.getTime() <= now.getTime()) throw new AppError('BAD_USER_INPUT', 'expiresAt must be in the future');
    const id = randomUUID();
    await this.inCustomerTransaction(appUserId, async (em, customerId) => {
      await em.execute(
        `insert into promotional_entitlement (id, customer_id, entitlement, starts_at, expires_at, reason, created_at) values (?, ?, ?, ?, ?, ?, now())`,
        [id, customerId, entitlement, now, expiresAt, reason],
      );
      return [promoEvent(`promo:grant:${id}`, 'PROMOTIONAL_GRANT', now, { promotionId: id, entitlement, expiresAt: expiresAt?.toISOString() ?? null, reason })];
    });
    return { id, entitlement, startsAt: now, expiresAt, reason, revokedAt: null };
  }

  /** Ends every active promotional grant of the entitlement. Returns how many. Store purchases are untouched. */
  async revokePromotional(appUserId: string, entitlement: string, reason: string, now: Date): Promise<number> {
    let revoked = 0;
    await this.inCustomerTransaction(appUserId, async (em, customerId) => {
      const rows = await em.execute<Row[]>(
        `update promotional_entitlement set revoked_at = ?, revoke_reason = ?
         where customer_id = ? and entitlement = ? and revoked_at is null and (expires_at is null or expires_at > ?) returning id`,
        [now, reason, customerId, entitlement, now],
      );
      revoked = rows.length;
      return rows.map((r) => promoEvent(`promo:revoke:${r.id as string}`, 'PROMOTIONAL_REVOCATION', now, { promotionId: r.id, entitlement, reason }));
    });
    return revoked;
  }

  async promotionsOf(appUserId: string): Promise<PromotionalView[]> {
    const rows = (await this.conn().execute(
      `select g.id, g.entitlement, g.starts_at, g.expires_at, g.reason, g.revoked_at from promotional_entitlement g join customer c on c.id = g.customer_id
       where c.app_user_id = ? order by g.created_at desc`,
      [appUserId],
    )) as Row[];
    return rows.map((r) => ({
      id: r.id as string,
      entitlement: r.entitlement as string,
      startsAt: toDate(r.starts_at)!,
      expiresAt: toDate(r.expires_at),
      reason: r.reason as string,
      revokedAt: toDate(r.revoked_at),
    }));
  }

  /** A customer's events, newest first, `limit` at a time before the event id `before`. */
  async events(appUserId: string, limit: number, before: string | null): Promise<EventView[]> {
    const beforeId = before ? Number(before.replace(/^evt_/, '')) : null;
    if (before && !Number.isSafeInteger(beforeId)) throw new AppError('BAD_USER_INPUT', `"${before}" is not an event id`);
    const rows = (await this.conn().execute(
      `select e.id, e.type, e.occurred_at, e.recorded_at, e.store, e.environment, e.product_id, e.store_transaction_id, e.lineage_id, e.data
       from event e join customer c on c.id = e.customer_id
       where c.app_user_id = ? ${beforeId !== null ? 'and e.id < ?' : ''} order by e.id desc limit ?`,
      beforeId !== null ? [appUserId, beforeId, limit] : [appUserId, limit],
    )) as Row[];
    return rows.map(eventViewOf);
  }

  private async inCustomerTransaction(appUserId: string, work: (em: Parameters<typeof repo.lockCustomer>[0], customerId: string) => Promise<DerivedEvent[]>): Promise<void> {
    await this.orm.em.fork().transactional(async (em) => {
      const customerId = await repo.lockCustomer(em, appUserId);
      const events = await work(em, customerId);
      await repo.appendEvents(em, { customerId, store: null, environment: null, lineageId: null }, events);
      await repo.refreshEntitlementSources(em, customerId, (store, productId) => this.catalog.find(store, productId)?.entitlements ?? []);
      await em.execute('select pg_notify(?, ?)', [ENTITLEMENTS_CHANGED_CHANNEL, appUserId]);
    });
    this.onCustomerChanged(appUserId);
  }

  private conn() {
    return this.orm.em.getConnection();
  }
}

function promoEvent(key: string, type: 'PROMOTIONAL_GRANT' | 'PROMOTIONAL_REVOCATION', at: Date, data: Record<string, unknown>): DerivedEvent {
  return { key, type, occurredAt: at, productId: '', transactionId: '', data };
}

function toPurchaseView(r: Row): PurchaseRecordView {
  return {
    store: r.store as Store,
    environment: r.environment as string,
    productId: r.product_id as string,
    kind: (r.kind as string | null) ?? null,
    storeTransactionId: r.store_transaction_id as string,
    originalTransactionId: r.lineage_id as string,
    appUserId: (r.app_user_id as string | null) ?? null,
    purchasedAt: toDate(r.purchased_at)!,
    expiresAt: toDate(r.expires_at),
    revokedAt: toDate(r.revoked_at),
    revocationReason: (r.revocation_reason as string | null) ?? null,
    ownership: r.ownership as string,
    quantity: Number(r.quantity),
  };
}
