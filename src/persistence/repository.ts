// SQL for the write path. Every function takes the entity manager of the caller's transaction so one
// unit of work stays on one connection (PGlite serves one session at a time).
import { randomUUID } from 'node:crypto';
import { snapshotState, type EntitlementSource, type SubscriptionDerivation } from '../domain/engine.js';
import type {
  CreditChange,
  DerivedEvent,
  Environment,
  GrantSpan,
  NormalizedPurchase,
  Ownership,
  ProductKind,
  Store,
  SubscriptionState,
} from '../domain/types.js';
import type { Em } from './orm.js';
import { decodeSnapshot, encodeSnapshot, factsFingerprint, fingerprint, toDate } from './snapshot-codec.js';

type Row = Record<string, unknown>;

/**
 * Creates the customer if new and locks its row until the transaction ends, so writes per customer serialize.
 * FOR NO KEY UPDATE, not FOR UPDATE: inserts elsewhere that reference the customer (ledger, events, grants)
 * only need a key-share lock and must not wait behind it.
 */
export async function lockCustomer(em: Em, appUserId: string): Promise<string> {
  await em.execute(
    `insert into customer (id, app_user_id, entitlement_sources, revision, created_at, updated_at)
     values (?, ?, '[]', 0, now(), now())
     on conflict (app_user_id) do nothing`,
    [randomUUID(), appUserId],
  );
  const row = await em.execute<Row>('select id from customer where app_user_id = ? for no key update', [appUserId], 'get');
  return row.id as string;
}

/** Locks an existing customer like lockCustomer; null when there is none. */
export async function lockExistingCustomer(em: Em, appUserId: string): Promise<string | null> {
  const row = (await em.execute<Row>('select id from customer where app_user_id = ? for no key update', [appUserId], 'get')) as Row | undefined;
  return (row?.id as string | undefined) ?? null;
}

/**
 * Serializes every writer of one purchase lineage (all transactions of a subscription, or one one-time
 * purchase) until the transaction ends. Callers take these after the customer lock, in sorted order.
 */
export async function lockLineage(em: Em, store: Store, lineageId: string): Promise<void> {
  await em.execute('select pg_advisory_xact_lock(hashtextextended(?, 0))', [`${store}:${lineageId}`]);
}

/** The lineage a Google purchase token belongs to, if any of its transactions is stored. */
export async function lineageOfToken(em: Em, store: Store, token: string): Promise<string | null> {
  const row = (await em.execute<Row>('select lineage_id from purchase where store = ? and purchase_token = ? limit 1', [store, token], 'get')) as Row | undefined;
  return (row?.lineage_id as string | undefined) ?? null;
}

/**
 * When a subscription period started, for stores that do not say: as stored if the transaction is known;
 * otherwise, for a renewal on the same purchase token, the end of its latest earlier period when that falls
 * between the lower bound and this period's end; otherwise (a new token: upgrade, resubscribe) the lower bound.
 */
export async function periodStartOf(em: Em, store: Store, token: string, transactionId: string, lowerBound: Date, expiresAt: Date): Promise<Date> {
  const known = (await em.execute<Row>('select purchased_at from purchase where store = ? and store_transaction_id = ?', [store, transactionId], 'get')) as Row | undefined;
  if (known) return toDate(known.purchased_at)!;
  const previous = (await em.execute<Row>(
    'select max(expires_at) as end from purchase where store = ? and purchase_token = ? and expires_at < ?',
    [store, token, expiresAt],
    'get',
  )) as Row | undefined;
  const end = toDate(previous?.end);
  return end && end.getTime() > lowerBound.getTime() ? end : lowerBound;
}

/**
 * The revocation known for a transaction: stored on the purchase, or reported by the store as voided (for
 * this order, or for the whole token when the store named no order).
 */
export async function revocationOf(em: Em, store: Store, transactionId: string, token: string | null): Promise<{ revokedAt: Date; reason: string | null } | null> {
  const row = (await em.execute<Row>('select revoked_at, revocation_reason from purchase where store = ? and store_transaction_id = ?', [store, transactionId], 'get')) as
    | Row
    | undefined;
  const at = toDate(row?.revoked_at);
  if (at) return { revokedAt: at, reason: (row!.revocation_reason as string | null) ?? null };
  if (!token) return null;
  const voided = (await em.execute<Row>(
    `select voided_at, reason from voided_purchase where store = ? and purchase_token = ? and (order_id = ? or order_id = '') order by voided_at limit 1`,
    [store, token, transactionId],
    'get',
  )) as Row | undefined;
  return voided ? { revokedAt: toDate(voided.voided_at)!, reason: voided.reason as string } : null;
}

/** Remembers a store-reported refund or chargeback (idempotent). */
export async function recordVoided(em: Em, store: Store, token: string, orderId: string | null, voidedAt: Date, reason: string): Promise<void> {
  await em.execute(
    `insert into voided_purchase (store, purchase_token, order_id, voided_at, reason, recorded_at) values (?, ?, ?, ?, ?, now())
     on conflict (store, purchase_token, order_id) do nothing`,
    [store, token, orderId ?? '', voidedAt, reason],
  );
}

/** The customer owning any transaction of a lineage, if one does. */
export async function ownerOfLineage(em: Em, store: Store, lineageId: string): Promise<string | null> {
  const row = (await em.execute<Row>(
    `select c.app_user_id from purchase p join customer c on c.id = p.customer_id where p.store = ? and p.lineage_id = ? limit 1`,
    [store, lineageId],
    'get',
  )) as Row | undefined;
  return (row?.app_user_id as string | undefined) ?? null;
}

/**
 * The customer an order token names: the token of an order from createOrder, or the customer's own id (apps
 * that pass their user id as Apple's appAccountToken or Google's obfuscatedAccountId). Only an existing order
 * or customer is trusted: anything else waits for the app to submit the purchase.
 */
export async function ownerOfOrderToken(em: Em, token: string): Promise<string | null> {
  const order = (await em.execute<Row>(
    `select c.app_user_id from purchase_order o join customer c on c.id = o.customer_id where o.token = ?`,
    [token],
    'get',
  )) as Row | undefined;
  if (order) return order.app_user_id as string;
  const customer = (await em.execute<Row>('select app_user_id from customer where app_user_id = ?', [token], 'get')) as Row | undefined;
  return (customer?.app_user_id as string | undefined) ?? null;
}

/** Whether a customer holds a grant from this lineage (subscription or one-time purchase) that is active at `now`. */
export async function hasActiveGrantFrom(em: Em, customerId: string, store: Store, lineageId: string, now: Date): Promise<boolean> {
  const row = (await em.execute<Row>(
    `select 1 as found from entitlement_grant
     where customer_id = ? and superseded_at is null and starts_at <= ? and (ends_at is null or ends_at > ?)
       and (source_key = ? or source_key in (select 'tx:' || store || ':' || store_transaction_id from purchase where store = ? and lineage_id = ?))
     limit 1`,
    [customerId, now, now, `sub:${store}:${lineageId}`, store, lineageId],
    'get',
  )) as Row | undefined;
  return row !== undefined;
}

/**
 * Moves a lineage (every transaction of a subscription, or a one-time purchase) to another customer: the
 * purchases and the subscription change owner and the old owner's grants from it end now. The caller holds the
 * lineage lock and both customer locks, then re-derives the grants for the new owner.
 */
export async function transferLineage(em: Em, store: Store, lineageId: string, fromCustomerId: string, toCustomerId: string): Promise<void> {
  await em.execute(
    `update entitlement_grant set superseded_at = now()
     where customer_id = ? and superseded_at is null
       and (source_key = ? or source_key in (select 'tx:' || store || ':' || store_transaction_id from purchase where store = ? and lineage_id = ?))`,
    [fromCustomerId, `sub:${store}:${lineageId}`, store, lineageId],
  );
  await em.execute('update purchase set customer_id = ?, updated_at = now() where store = ? and lineage_id = ? and customer_id = ?', [toCustomerId, store, lineageId, fromCustomerId]);
  await em.execute('update subscription set customer_id = ?, updated_at = now() where store = ? and lineage_id = ? and customer_id = ?', [toCustomerId, store, lineageId, fromCustomerId]);
}

/** Locks another customer's row (by id) in the same way as lockCustomer; returns its appUserId. */
export async function lockCustomerById(em: Em, customerId: string): Promise<string> {
  const row = await em.execute<Row>('select app_user_id from customer where id = ? for no key update', [customerId], 'get');
  return row.app_user_id as string;
}

/**
 * Marks the order a newly held purchase fulfils. By the order token that travelled through the store, or the
 * order id the app submitted with the proof; when neither names one, the customer's oldest open order for the
 * product created within `windowMs` before the purchase. Never an order of another customer. Returns its id.
 */
export async function fulfilOrder(
  em: Em,
  customerId: string,
  purchaseId: string,
  p: Pick<NormalizedPurchase, 'store' | 'productId' | 'orderToken' | 'purchasedAt'>,
  o: { orderId: string | null; windowMs: number; firstOfLineage: boolean; granted: boolean },
): Promise<string | null> {
  const status = o.granted ? 'FULFILLED' : 'PAID';
  const claim = async (where: string, params: unknown[]): Promise<string | null> => {
    const row = (await em.execute<Row>(
      `update purchase_order set status = ?, purchase_id = ?, store = coalesce(store, ?), updated_at = now()
       where id = (select id from purchase_order where customer_id = ? and purchase_id is null and status in ('CREATED', 'PAID', 'EXPIRED') and ${where}
                   order by created_at limit 1 for update)
       returning id`,
      [status, purchaseId, p.store, customerId, ...params],
      'get',
    )) as Row | undefined;
    return (row?.id as string | undefined) ?? null;
  };
  if (p.orderToken) {
    const byToken = await claim('token = ?', [p.orderToken]);
    if (byToken) return byToken;
  }
  if (o.orderId && isUuid(o.orderId)) {
    const byId = await claim('id = ? and product_id = ?', [o.orderId, p.productId]);
    if (byId) return byId;
  }
  // Without a token (older apps, a store that dropped it), only the first purchase of a lineage matches, and only
  // an order still open: a renewal is never "the purchase the order was for".
  if (!o.firstOfLineage) return null;
  return claim(`status = 'CREATED' and product_id = ? and (store is null or store = ?) and created_at between ? and ?`, [
    p.productId,
    p.store,
    new Date(p.purchasedAt.getTime() - o.windowMs),
    new Date(p.purchasedAt.getTime() + ORDER_CLOCK_SKEW_MS),
  ]);
}

/** A purchase may be dated slightly before the order by the store's clock. */
const ORDER_CLOCK_SKEW_MS = 5 * 60_000;
const isUuid = (s: string): boolean => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s);

export interface StoreTaskRow {
  id: number;
  kind: 'ACKNOWLEDGE_PRODUCT' | 'ACKNOWLEDGE_SUBSCRIPTION' | 'CONSUME_PRODUCT';
  packageName: string;
  productId: string;
  token: string;
  attempts: number;
}

/** Queues an acknowledge/consume call once per (kind, token); returns the id when newly queued. */
export async function queueStoreTask(em: Em, store: Store, task: { kind: string; packageName: string; productId: string; token: string }, now: Date): Promise<number[]> {
  // Due at the service's clock (not the database's), which is what the runner claims by.
  const rows = await em.execute<Row[]>(
    `insert into store_task (store, kind, package_name, product_id, token, status, attempts, next_attempt_at, created_at)
     values (?, ?, ?, ?, ?, 'PENDING', 0, ?, now())
     on conflict (kind, token) do nothing
     returning id`,
    [store, task.kind, task.packageName, task.productId, task.token, now],
  );
  return rows.map((r) => Number(r.id));
}

export interface StoredPurchaseOwner {
  id: string;
  customerId: string | null;
  inserted: boolean;
}

/** Stores the transaction once ever, or locks the existing row. Facts are refreshed later by `refreshPurchase`. */
export async function insertOrLockPurchase(em: Em, p: NormalizedPurchase, kind: ProductKind | null, customerId: string | null): Promise<StoredPurchaseOwner> {
  const inserted = await em.execute<Row[]>(
    `insert into purchase (id, customer_id, store, environment, store_transaction_id, product_id, kind, lineage_id,
       purchase_token, purchased_at, expires_at, revoked_at, revocation_reason, ownership, quantity, order_token,
       price_micros, currency, offer_type, raw, created_at, updated_at)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), now())
     on conflict (store, store_transaction_id) do nothing
     returning id, customer_id`,
    [
      randomUUID(),
      customerId,
      p.store,
      p.environment,
      p.transactionId,
      p.productId,
      kind,
      p.lineageId,
      p.purchaseToken,
      p.purchasedAt,
      p.expiresAt,
      p.revokedAt,
      p.revocationReason,
      p.ownership,
      p.quantity,
      p.orderToken,
      p.price?.amountMicros ?? null,
      p.price?.currency ?? null,
      p.offerType,
      JSON.stringify(p.raw ?? null),
    ],
  );
  if (inserted.length > 0) return { id: inserted[0]!.id as string, customerId, inserted: true };
  const row = await em.execute<Row>(
    'select id, customer_id from purchase where store = ? and store_transaction_id = ? for update',
    [p.store, p.transactionId],
    'get',
  );
  return { id: row.id as string, customerId: (row.customer_id as string | null) ?? null, inserted: false };
}

/**
 * Brings a stored transaction's facts up to the newest statement the store made about it (by observedAt, not
 * by arrival: an old proof submitted again must not undo a later refund), and claims it if unowned.
 */
export async function refreshPurchaseFromHistory(em: Em, purchaseId: string, store: Store, lineageId: string, transactionId: string, customerId: string | null): Promise<void> {
  const row = await em.execute<Row>(
    `select snapshot from purchase_observation where store = ? and lineage_id = ? and store_transaction_id = ?
     order by observed_at desc, id desc limit 1`,
    [store, lineageId, transactionId],
    'get',
  );
  const latest = decodeSnapshot(row.snapshot as Row);
  await em.execute(
    `update purchase set customer_id = coalesce(customer_id, ?), product_id = ?, expires_at = ?, revoked_at = ?,
       revocation_reason = ?, raw = ?, updated_at = now()
     where id = ?`,
    [customerId, latest.productId, latest.expiresAt, latest.revokedAt, latest.revocationReason, JSON.stringify(latest.raw ?? null), purchaseId],
  );
}

/** Writes what the engine derived for a one-time purchase (its expiry and revocation over the whole history). */
export async function setOneTimeFacts(em: Em, store: Store, transactionId: string, expiresAt: Date | null, revokedAt: Date | null, revocationReason: string | null): Promise<void> {
  await em.execute('update purchase set expires_at = ?, revoked_at = ?, revocation_reason = ? where store = ? and store_transaction_id = ?', [
    expiresAt,
    revokedAt,
    revocationReason,
    store,
    transactionId,
  ]);
}

/** Appends a store statement; the same facts twice are stored once. Returns whether it was new. */
export async function appendObservation(em: Em, p: NormalizedPurchase): Promise<boolean> {
  // An app re-submits at every launch: a statement that repeats the transaction's latest one and implies the
  // same state teaches nothing and is not stored, so histories grow with changes, not with reads. A repeat that
  // implies another state (now past the expiry: a confirmed lapse) is stored.
  const latest = (await em.execute<Row>(
    `select snapshot from purchase_observation where store = ? and lineage_id = ? and store_transaction_id = ?
     order by observed_at desc, id desc limit 1`,
    [p.store, p.lineageId, p.transactionId],
    'get',
  )) as Row | undefined;
  if (latest) {
    const previous = decodeSnapshot(latest.snapshot as Row);
    if (
      p.observedAt.getTime() >= previous.observedAt.getTime() &&
      factsFingerprint(previous) === factsFingerprint(p) &&
      snapshotState(previous, previous.observedAt) === snapshotState(p, p.observedAt)
    ) {
      return false;
    }
  }
  const rows = await em.execute<Row[]>(
    `insert into purchase_observation (store, lineage_id, store_transaction_id, fingerprint, observed_at, snapshot, created_at)
     values (?, ?, ?, ?, ?, ?, now())
     on conflict (store, lineage_id, fingerprint) do nothing
     returning id`,
    [p.store, p.lineageId, p.transactionId, fingerprint(p), p.observedAt, JSON.stringify(encodeSnapshot(p))],
  );
  return rows.length > 0;
}

export async function loadObservations(em: Em, store: Store, lineageId: string, transactionId?: string): Promise<NormalizedPurchase[]> {
  const rows = await em.execute<Row[]>(
    transactionId === undefined
      ? 'select snapshot from purchase_observation where store = ? and lineage_id = ? order by observed_at, id'
      : 'select snapshot from purchase_observation where store = ? and lineage_id = ? and store_transaction_id = ? order by observed_at, id',
    transactionId === undefined ? [store, lineageId] : [store, lineageId, transactionId],
  );
  return rows.map((r) => decodeSnapshot(r.snapshot as Row));
}

export interface SubscriptionOwner {
  id: string;
  customerId: string | null;
  /** The stored period end, before this write. */
  expiresAt: Date | null;
}

export async function lockSubscription(em: Em, store: Store, lineageId: string): Promise<SubscriptionOwner | null> {
  const row = (await em.execute<Row>(
    'select id, customer_id, expires_at from subscription where store = ? and lineage_id = ? for update',
    [store, lineageId],
    'get',
  )) as Row | undefined;
  return row ? { id: row.id as string, customerId: (row.customer_id as string | null) ?? null, expiresAt: toDate(row.expires_at) } : null;
}

/** Stores the engine's latest derivation of a subscription (its state columns are a cache of it). */
export async function upsertSubscription(
  em: Em,
  customerId: string,
  s: SubscriptionDerivation,
  recheck: { nextCheckAt: Date | null; appReceipt?: string | null } = { nextCheckAt: null },
): Promise<string> {
  const row = await em.execute<Row>(
    `insert into subscription (id, customer_id, store, environment, lineage_id, product_id, state, original_purchased_at,
       current_period_starts_at, expires_at, grace_period_expires_at, auto_resume_at, will_renew, ownership, revoked_at,
       revocation_reason, expiration_reason, latest_transaction_id, next_check_at, app_receipt, created_at, updated_at)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), now())
     on conflict (store, lineage_id) do update set
       customer_id = coalesce(subscription.customer_id, excluded.customer_id),
       environment = excluded.environment, product_id = excluded.product_id, state = excluded.state,
       original_purchased_at = excluded.original_purchased_at, current_period_starts_at = excluded.current_period_starts_at,
       expires_at = excluded.expires_at, grace_period_expires_at = excluded.grace_period_expires_at,
       auto_resume_at = excluded.auto_resume_at, will_renew = excluded.will_renew, ownership = excluded.ownership,
       revoked_at = excluded.revoked_at, revocation_reason = excluded.revocation_reason,
       expiration_reason = excluded.expiration_reason, latest_transaction_id = excluded.latest_transaction_id,
       next_check_at = excluded.next_check_at, app_receipt = coalesce(excluded.app_receipt, subscription.app_receipt),
       updated_at = now()
     returning id`,
    [
      randomUUID(),
      customerId,
      s.store,
      s.environment,
      s.lineageId,
      s.productId,
      s.state,
      s.originalPurchasedAt,
      s.currentPeriodStartsAt,
      s.expiresAt,
      s.gracePeriodExpiresAt,
      s.autoResumeAt,
      s.willRenew,
      s.ownership,
      s.revokedAt,
      s.revocationReason,
      s.expirationReason,
      s.latestTransactionId,
      recheck.nextCheckAt,
      recheck.appReceipt ?? null,
    ],
    'get',
  );
  return row.id as string;
}

const grantIdentity = (g: { entitlement: string; productId: string; transactionId: string; startsAt: Date; endsAt: Date | null; reason: string }) =>
  `${g.entitlement}|${g.productId}|${g.transactionId}|${g.startsAt.getTime()}|${g.endsAt?.getTime() ?? 'forever'}|${g.reason}`;

/**
 * Makes the current grants of one source equal to `grants`: unchanged grants stay as they are, vanished ones
 * are marked superseded, new ones are inserted. Grants are never edited.
 */
export async function syncGrants(
  em: Em,
  customerId: string,
  sourceKey: string,
  store: Store,
  environment: Environment,
  grants: readonly GrantSpan[],
): Promise<{ added: number; superseded: number }> {
  const current = await em.execute<Row[]>(
    `select id, entitlement, product_id, store_transaction_id, starts_at, ends_at, reason, customer_id
     from entitlement_grant where source_key = ? and superseded_at is null`,
    [sourceKey],
  );
  const wanted = new Map(grants.map((g) => [grantIdentity(g), g]));
  const stale: unknown[] = [];
  for (const row of current) {
    const id = grantIdentity({
      entitlement: row.entitlement as string,
      productId: row.product_id as string,
      transactionId: row.store_transaction_id as string,
      startsAt: toDate(row.starts_at)!,
      endsAt: toDate(row.ends_at),
      reason: row.reason as string,
    });
    if (row.customer_id !== customerId) {
      // The lineage lock makes this impossible; if it ever happens, stop rather than move someone's access.
      throw new Error(`grants of ${sourceKey} belong to another customer`);
    }
    if (wanted.has(id)) wanted.delete(id);
    else stale.push(row.id);
  }
  if (stale.length > 0) {
    await em.execute(`update entitlement_grant set superseded_at = now() where id in (${stale.map(() => '?').join(', ')})`, stale);
  }
  for (const g of wanted.values()) {
    await em.execute(
      `insert into entitlement_grant (customer_id, entitlement, store, environment, product_id, source_key, store_transaction_id,
         reason, starts_at, ends_at, created_at)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())`,
      [customerId, g.entitlement, store, environment, g.productId, sourceKey, g.transactionId, g.reason, g.startsAt, g.endsAt],
    );
  }
  return { added: wanted.size, superseded: stale.length };
}

export interface EventContext {
  customerId: string | null;
  store: Store | null;
  environment: Environment | null;
  lineageId: string | null;
}

/** Appends events; an event whose key is already recorded is skipped. Returns the number appended. */
export async function appendEvents(em: Em, ctx: EventContext, events: readonly DerivedEvent[]): Promise<number> {
  const inserted: string[] = [];
  for (const e of events) {
    const rows = await em.execute<Row[]>(
      `insert into event (key, customer_id, type, occurred_at, recorded_at, store, environment, product_id, lineage_id,
         store_transaction_id, data)
       values (?, ?, ?, ?, now(), ?, ?, ?, ?, ?, ?)
       on conflict (key) do nothing
       returning id`,
      [e.key, ctx.customerId, e.type, e.occurredAt, ctx.store, ctx.environment, e.productId || null, ctx.lineageId, e.transactionId || null, JSON.stringify(e.data)],
    );
    for (const r of rows) inserted.push(String(r.id));
  }
  if (inserted.length > 0) await enqueueWebhookDeliveries(em, inserted);
  return inserted.length;
}

/**
 * The webhook outbox: one PENDING delivery per newly inserted event and active endpoint, written in the event's
 * own transaction, so an event never commits without its deliveries and a crash loses none. A customer's
 * writers are serialized by the customer lock, so delivery ids follow the customer's event order (the
 * delivery job sends them in that order).
 */
async function enqueueWebhookDeliveries(em: Em, eventIds: readonly string[]): Promise<void> {
  await em.execute(
    `insert into webhook_delivery (endpoint_id, event_id, customer_id, status, attempts, next_attempt_at, created_at)
     select w.id, ev.id, ev.customer_id, 'PENDING', 0, now(), now()
     from event ev cross join webhook_endpoint w
     where w.active and ev.id in (${eventIds.map(() => '?').join(', ')})
     order by ev.id, w.id
     on conflict (endpoint_id, event_id) do nothing`,
    [...eventIds],
  );
}

/** Locks (creating at zero) the balance row of one currency and returns its balance. */
export async function lockBalance(em: Em, customerId: string, currency: string): Promise<number> {
  await em.execute(
    `insert into credit_balance (customer_id, currency, balance, updated_at) values (?, ?, 0, now())
     on conflict (customer_id, currency) do nothing`,
    [customerId, currency],
  );
  const row = await em.execute<Row>('select balance from credit_balance where customer_id = ? and currency = ? for update', [customerId, currency], 'get');
  return Number(row.balance);
}

/**
 * Applies a balance change once: the ledger key is unique, so a replay changes nothing.
 * The caller must hold the balance row lock (lockBalance). Returns the new balance, or null when the key was
 * already applied.
 */
export async function applyCredit(
  em: Em,
  customerId: string,
  change: Pick<CreditChange, 'key' | 'currency' | 'amount'> & { reason: CreditChange['reason'] | 'SPEND'; transactionId: string | null },
  balanceBefore: number,
): Promise<number | null> {
  const after = balanceBefore + change.amount;
  const rows = await em.execute<Row[]>(
    `insert into credit_ledger (customer_id, currency, amount, balance_after, reason, key, store_transaction_id, created_at)
     values (?, ?, ?, ?, ?, ?, ?, now())
     on conflict (key) do nothing
     returning id`,
    [customerId, change.currency, change.amount, after, change.reason, change.key, change.transactionId],
  );
  if (rows.length === 0) return null;
  await em.execute('update credit_balance set balance = ?, updated_at = now() where customer_id = ? and currency = ?', [after, customerId, change.currency]);
  return after;
}

export async function findLedgerEntry(em: Em, key: string): Promise<Row | undefined> {
  return (await em.execute<Row>('select customer_id, currency, amount, balance_after from credit_ledger where key = ?', [key], 'get')) as Row | undefined;
}

/** Rebuilds the customer's entitlement cache from its subscriptions, one-time purchases and promotional grants. */
export async function refreshEntitlementSources(
  em: Em,
  customerId: string,
  entitlementsOf: (store: Store, productId: string) => readonly string[],
): Promise<EntitlementSource[]> {
  const subs = await em.execute<Row[]>(
    `select store, environment, product_id, state, original_purchased_at, expires_at, grace_period_expires_at, will_renew, revoked_at, ownership
     from subscription where customer_id = ?`,
    [customerId],
  );
  const oneTime = await em.execute<Row[]>(
    `select store, environment, product_id, kind, purchased_at, expires_at, revoked_at, ownership
     from purchase where customer_id = ? and kind in ('NON_CONSUMABLE', 'NON_RENEWING')`,
    [customerId],
  );
  const sources: EntitlementSource[] = [];
  for (const s of subs) {
    for (const entitlement of entitlementsOf(s.store as Store, s.product_id as string)) {
      sources.push({
        entitlement,
        productId: s.product_id as string,
        store: s.store as Store,
        environment: s.environment as Environment,
        kind: 'AUTO_RENEWABLE',
        state: s.state as SubscriptionState,
        purchasedAt: toDate(s.original_purchased_at)!,
        expiresAt: toDate(s.expires_at),
        gracePeriodExpiresAt: toDate(s.grace_period_expires_at),
        willRenew: Boolean(s.will_renew),
        revokedAt: toDate(s.revoked_at),
        ownership: s.ownership as Ownership,
      });
    }
  }
  for (const p of oneTime) {
    for (const entitlement of entitlementsOf(p.store as Store, p.product_id as string)) {
      sources.push({
        entitlement,
        productId: p.product_id as string,
        store: p.store as Store,
        environment: p.environment as Environment,
        kind: p.kind as ProductKind,
        state: null,
        purchasedAt: toDate(p.purchased_at)!,
        expiresAt: toDate(p.expires_at),
        gracePeriodExpiresAt: null,
        willRenew: false,
        revokedAt: toDate(p.revoked_at),
        ownership: p.ownership as Ownership,
      });
    }
  }
  const promotions = await em.execute<Row[]>(
    'select entitlement, starts_at, expires_at from promotional_entitlement where customer_id = ? and revoked_at is null',
    [customerId],
  );
  for (const g of promotions) {
    const expiresAt = toDate(g.expires_at);
    sources.push({
      entitlement: g.entitlement as string,
      productId: 'promotional',
      store: 'PROMOTIONAL',
      environment: 'PRODUCTION',
      kind: expiresAt ? 'NON_RENEWING' : 'NON_CONSUMABLE',
      state: null,
      purchasedAt: toDate(g.starts_at)!,
      expiresAt,
      gracePeriodExpiresAt: null,
      willRenew: false,
      revokedAt: null,
      ownership: 'PURCHASED',
    });
  }
  await em.execute('update customer set entitlement_sources = ?, revision = revision + 1, updated_at = now() where id = ?', [
    JSON.stringify(sources),
    customerId,
  ]);
  return sources;
}
