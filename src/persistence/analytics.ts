// SQL of subscription analytics: keeping the state-span rollup equal to the events, and the read queries.
// Every function takes a plain SQL runner (`?` placeholders) so the same code runs in the write path's
// transaction, in a migration, in the benchmark, on PostgreSQL and on PGlite.
import {
  deriveStateSpans,
  type AnalyticsInterval,
  type StateSpan,
  type SubscriptionEventFacts,
} from '../domain/analytics.js';
import type { Environment, EventType, Store, SubscriptionState } from '../domain/types.js';
import { toDate } from './snapshot-codec.js';

type Row = Record<string, unknown>;
export type SqlRunner = (sql: string, params: readonly unknown[]) => Promise<Row[]>;

const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

// ---------------------------------------------------------------------------------------------------------
// The rollup: subscription_state_span, rewritten from a subscription's events
// ---------------------------------------------------------------------------------------------------------

// A period's start event keeps the facts of the statement that began it; later statements about the same
// transaction (Apple's renewal-date extension, a Google deferral, a price learned later) update its purchase row
// without a new event, so period starts read the purchase's current end and price.
const FACT_COLUMNS = `store, lineage_id, environment, type, occurred_at, product_id, store_transaction_id,
  data->>'expiresAt' as expires_at, data->>'gracePeriodExpiresAt' as grace_end,
  data->'price'->>'amountMicros' as price_micros, data->'price'->>'currency' as currency,
  data->>'offerType' as offer_type, data->>'churn' as churn,
  case when type in ('INITIAL_PURCHASE', 'RENEWAL', 'REACTIVATION') then
    (select row_to_json(p) from (select expires_at, price_micros, currency from purchase
       where purchase.store = event.store and purchase.store_transaction_id = event.store_transaction_id) p)
  end as current_facts`;

function toFacts(r: Row): SubscriptionEventFacts {
  const current = (typeof r.current_facts === 'string' ? JSON.parse(r.current_facts) : r.current_facts) as Row | null;
  const knownPrice = numOrNull(r.price_micros) !== null;
  return {
    type: r.type as EventType,
    occurredAt: toDate(r.occurred_at)!,
    productId: str(r.product_id),
    transactionId: str(r.store_transaction_id),
    expiresAt: toDate(current?.expires_at ?? null) ?? toDate(r.expires_at),
    gracePeriodExpiresAt: toDate(r.grace_end),
    priceMicros: knownPrice ? numOrNull(r.price_micros) : numOrNull(current?.price_micros ?? null),
    currency: knownPrice ? str(r.currency) : str(current?.currency ?? null),
    offerType: str(r.offer_type),
    churn: str(r.churn),
  };
}

const SPAN_COLUMNS = [
  'store', 'lineage_id', 'seq', 'environment', 'product_id', 'state', 'starts_at', 'ends_at', 'previous_state',
  'previous_product_id', 'cause', 'churn', 'transaction_id', 'period_starts_at', 'period_ends_at', 'price_micros',
  'currency', 'offer_type', 'previous_offer_type', 'monthly_micros', 'first_purchased_at',
] as const;

function spanValues(store: string, lineageId: string, environment: string, spans: readonly StateSpan[]): unknown[][] {
  return spans.map((s, seq) => [
    store, lineageId, seq, environment, s.productId, s.state, s.startsAt, s.endsAt, s.previousState, s.previousProductId,
    s.cause, s.churn, s.transactionId, s.periodStartsAt, s.periodEndsAt, s.priceMicros, s.currency, s.offerType,
    s.previousOfferType, s.monthlyMicros, s.firstPurchasedAt,
  ]);
}

/** Inserts span rows, a few hundred per statement (well under the 65,535 parameters a statement may carry). */
async function insertSpanRows(sql: SqlRunner, rows: readonly unknown[][]): Promise<void> {
  const perStatement = 500;
  const placeholders = `(${SPAN_COLUMNS.map(() => '?').join(', ')})`;
  for (let i = 0; i < rows.length; i += perStatement) {
    const chunk = rows.slice(i, i + perStatement);
    await sql(
      `insert into subscription_state_span (${SPAN_COLUMNS.join(', ')}) values ${chunk.map(() => placeholders).join(', ')}`,
      chunk.flat(),
    );
  }
}

/**
 * Makes the spans of one subscription equal to what its events say: called in the transaction that appended
 * them, under the subscription's lineage lock, so the rollup never disagrees with the events.
 */
export async function rebuildSubscriptionSpans(sql: SqlRunner, store: Store, lineageId: string): Promise<number> {
  const rows = await sql(`select ${FACT_COLUMNS} from event where store = ? and lineage_id = ? order by occurred_at, id`, [store, lineageId]);
  await sql('delete from subscription_state_span where store = ? and lineage_id = ?', [store, lineageId]);
  if (rows.length === 0) return 0;
  const spans = deriveStateSpans(rows.map(toFacts));
  await insertSpanRows(sql, spanValues(store, lineageId, String(rows[0].environment), spans));
  return spans.length;
}

/**
 * Rebuilds the spans of every subscription, a batch of subscriptions at a time (a deployment that had events
 * before the rollup existed; the benchmark's generated history). Returns the number of spans written.
 */
export async function rebuildAllSubscriptionSpans(sql: SqlRunner, batchSize = 5_000, onBatch?: (done: number) => void): Promise<number> {
  let after: [string, string] = ['', ''];
  let written = 0;
  let done = 0;
  for (;;) {
    const batch = await rebuildSpansBatch(sql, after, batchSize, false);
    if (batch === null) break;
    written += batch.written;
    done += batch.subscriptions;
    onBatch?.(done);
    after = batch.last;
  }
  return written;
}

/**
 * Rebuilds the spans of the next `batchSize` subscriptions after `after` in (store, lineage_id) order; null when
 * there are none. With `lock`, each lineage's advisory lock is taken first (run it in a transaction): a write
 * to one of them waits, so the spans never miss its events.
 */
export async function rebuildSpansBatch(
  sql: SqlRunner,
  after: [string, string],
  batchSize: number,
  lock: boolean,
): Promise<{ last: [string, string]; subscriptions: number; written: number } | null> {
  {
    const keys = await sql(
      'select store, lineage_id from subscription where (store, lineage_id) > (?, ?) order by store, lineage_id limit ?',
      [after[0], after[1], batchSize],
    );
    if (keys.length === 0) return null;
    if (lock) {
      for (const k of keys) await sql('select pg_advisory_xact_lock(hashtextextended(?, 0))', [`${String(k.store)}:${String(k.lineage_id)}`]);
    }
    const last: [string, string] = [String(keys.at(-1)!.store), String(keys.at(-1)!.lineage_id)];
    const range = [after[0], after[1], last[0], last[1]];
    const rows = await sql(
      `select ${FACT_COLUMNS} from event
       where (store, lineage_id) > (?, ?) and (store, lineage_id) <= (?, ?)
       order by store, lineage_id, occurred_at, id`,
      range,
    );
    await sql('delete from subscription_state_span where (store, lineage_id) > (?, ?) and (store, lineage_id) <= (?, ?)', range);
    const values: unknown[][] = [];
    for (let i = 0; i < rows.length; ) {
      let j = i;
      while (j < rows.length && rows[j].store === rows[i].store && rows[j].lineage_id === rows[i].lineage_id) j++;
      const group = rows.slice(i, j);
      values.push(...spanValues(String(rows[i].store), String(rows[i].lineage_id), String(rows[i].environment), deriveStateSpans(group.map(toFacts))));
      i = j;
    }
    await insertSpanRows(sql, values);
    return { last, subscriptions: keys.length, written: values.length };
  }
}

// ---------------------------------------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------------------------------------

export interface AnalyticsScope {
  store: Store | null;
  environment: Environment;
  /** (store, productId) pairs the product / entitlement filter allows; null: every product. */
  products: readonly { store: Store; productId: string }[] | null;
}

/** `and ...` for the store and environment columns of a table (alias `t`). */
function scopeWhere(scope: AnalyticsScope, params: unknown[]): string {
  params.push(scope.environment);
  let where = ' and t.environment = ?';
  if (scope.store) {
    where += ' and t.store = ?';
    params.push(scope.store);
  }
  return where;
}

/** A boolean SQL expression: the product in `column` passes the product filter. */
function productTest(scope: AnalyticsScope, column: string, params: unknown[]): string {
  if (scope.products === null) return 'true';
  if (scope.products.length === 0) return 'false';
  params.push(...scope.products.flatMap((p) => [p.store, p.productId]));
  return `(t.store, ${column}) in (${scope.products.map(() => '(?, ?)').join(', ')})`;
}

const TRUNC: Record<AnalyticsInterval, string> = { DAY: 'day', WEEK: 'week', MONTH: 'month' };
const bucketOf = (column: string, interval: AnalyticsInterval) => `date_trunc('${TRUNC[interval]}', ${column} at time zone 'UTC')`;
const STEP: Record<AnalyticsInterval, string> = { DAY: `interval '1 day'`, WEEK: `interval '7 days'`, MONTH: `interval '1 month'` };
/** Shortest and longest length of one interval, in seconds. */
const LENGTH_S: Record<AnalyticsInterval, [number, number]> = { DAY: [86_400, 86_400], WEEK: [604_800, 604_800], MONTH: [28 * 86_400, 31 * 86_400] };
/** Bucket keys come back as timestamps without zone (UTC wall time): read them as UTC. */
const bucketKey = (v: unknown): number => {
  if (v instanceof Date) return Date.UTC(v.getFullYear(), v.getMonth(), v.getDate(), v.getHours(), v.getMinutes(), v.getSeconds());
  const s = String(v);
  return Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : `${s.replace(' ', 'T')}Z`);
};

const ENTITLING_SQL = `('ACTIVE', 'CANCELED', 'GRACE')`;
const covering = (params: unknown[], at: Date) => {
  params.push(at, at);
  return 't.starts_at <= ? and (t.ends_at > ? or t.ends_at is null)';
};

// ---------------------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------------------

export async function stateCounts(sql: SqlRunner, at: Date, scope: AnalyticsScope): Promise<Map<SubscriptionState, number>> {
  const params: unknown[] = [];
  const cover = covering(params, at);
  const where = scopeWhere(scope, params);
  const product = productTest(scope, 't.product_id', params);
  const rows = await sql(
    `select t.state, count(*) as n from subscription_state_span t where ${cover}${where} and ${product} group by t.state`,
    params,
  );
  return new Map(rows.map((r) => [r.state as SubscriptionState, num(r.n)]));
}

export interface ActiveRow {
  state: SubscriptionState;
  currency: string | null;
  trial: boolean;
  priced: boolean;
  subscriptions: number;
  monthlyMicros: number;
}

/** Entitled subscriptions at `at`, by state, currency, trial and whether their price is known. */
export async function activeAt(sql: SqlRunner, at: Date, scope: AnalyticsScope): Promise<ActiveRow[]> {
  const params: unknown[] = [];
  const cover = covering(params, at);
  const where = scopeWhere(scope, params);
  const product = productTest(scope, 't.product_id', params);
  const rows = await sql(
    `select t.state, t.currency, coalesce(t.offer_type = 'FREE_TRIAL', false) as trial, t.monthly_micros is not null as priced,
       count(*) as n, coalesce(sum(t.monthly_micros), 0) as monthly
     from subscription_state_span t
     where ${cover}${where} and ${product} and t.state in ${ENTITLING_SQL}
     group by 1, 2, 3, 4`,
    params,
  );
  return rows.map((r) => ({
    state: r.state as SubscriptionState,
    currency: str(r.currency),
    trial: r.trial === true || r.trial === 't',
    priced: r.priced === true || r.priced === 't',
    subscriptions: num(r.n),
    monthlyMicros: num(r.monthly),
  }));
}

export interface ChurnBucketRow {
  bucket: number;
  /** Period starts: every one begins a span with its event type as the cause. */
  started: number;
  renewed: number;
  reactivated: number;
  churned: number;
  voluntary: number;
  involuntary: number;
  revoked: number;
  other: number;
  gains: number;
  losses: number;
}

/** Per bucket of [from, to): period starts, ended subscriptions by churn kind, and the moves into and out of entitlement. */
export async function churnBuckets(sql: SqlRunner, from: Date, to: Date, interval: AnalyticsInterval, scope: AnalyticsScope): Promise<ChurnBucketRow[]> {
  // Parameters in the order they appear in the SQL below.
  const params: unknown[] = [];
  const [started, renewed, reactivated, churned, voluntary, involuntary, revoked, other, gains] = Array.from({ length: 9 }, () =>
    productTest(scope, 't.product_id', params),
  );
  const losses = productTest(scope, 't.previous_product_id', params);
  params.push(from, to);
  const where = scopeWhere(scope, params);
  const rows = await sql(
    `select ${bucketOf('t.starts_at', interval)} as bucket,
       count(*) filter (where t.cause = 'INITIAL_PURCHASE' and ${started}) as started,
       count(*) filter (where t.cause = 'RENEWAL' and ${renewed}) as renewed,
       count(*) filter (where t.cause = 'REACTIVATION' and ${reactivated}) as reactivated,
       count(*) filter (where t.churn is not null and ${churned}) as churned,
       count(*) filter (where t.churn = 'VOLUNTARY' and ${voluntary}) as voluntary,
       count(*) filter (where t.churn = 'INVOLUNTARY' and ${involuntary}) as involuntary,
       count(*) filter (where t.churn = 'REVOKED' and ${revoked}) as revoked,
       count(*) filter (where t.churn = 'OTHER' and ${other}) as other,
       count(*) filter (where t.state in ${ENTITLING_SQL}
         and (t.previous_state is null or t.previous_state not in ${ENTITLING_SQL} or t.previous_product_id <> t.product_id)
         and ${gains}) as gains,
       count(*) filter (where t.previous_state in ${ENTITLING_SQL}
         and (t.state not in ${ENTITLING_SQL} or t.previous_product_id <> t.product_id)
         and ${losses}) as losses
     from subscription_state_span t
     where t.starts_at >= ? and t.starts_at < ?${where}
     group by 1`,
    params,
  );
  return rows.map((r) => ({
    bucket: bucketKey(r.bucket),
    started: num(r.started),
    renewed: num(r.renewed),
    reactivated: num(r.reactivated),
    churned: num(r.churned),
    voluntary: num(r.voluntary),
    involuntary: num(r.involuntary),
    revoked: num(r.revoked),
    other: num(r.other),
    gains: num(r.gains),
    losses: num(r.losses),
  }));
}

/** Entitled subscriptions just before `at` (spans that began before it and had not ended by it). */
export async function entitledBefore(sql: SqlRunner, at: Date, scope: AnalyticsScope): Promise<number> {
  const params: unknown[] = [at, at];
  const where = scopeWhere(scope, params);
  const product = productTest(scope, 't.product_id', params);
  const rows = await sql(
    `select count(*) as n from subscription_state_span t
     where t.starts_at < ? and (t.ends_at >= ? or t.ends_at is null) and t.state in ${ENTITLING_SQL}${where} and ${product}`,
    params,
  );
  return num(rows[0]?.n);
}

export interface EventBucketRow {
  bucket: number;
  type: EventType;
  count: number;
}

/**
 * Subscription refunds per bucket, from the event table through its (type, occurred_at) index (a refunded one-time
 * purchase is counted by `refundRows`). A refund of an earlier period begins no span, so they are counted here.
 */
export async function subscriptionEventBuckets(sql: SqlRunner, from: Date, to: Date, interval: AnalyticsInterval, scope: AnalyticsScope): Promise<EventBucketRow[]> {
  const params: unknown[] = [from, to];
  const where = scopeWhere(scope, params);
  const product = productTest(scope, 't.product_id', params);
  const rows = await sql(
    `select ${bucketOf('t.occurred_at', interval)} as bucket, t.type, count(*) as n
     from event t
     where t.type = 'REFUND' and t.occurred_at >= ? and t.occurred_at < ?${where} and ${product}
       and exists (select 1 from subscription_state_span s where s.store = t.store and s.lineage_id = t.lineage_id and s.seq = 0)
     group by 1, 2`,
    params,
  );
  return rows.map((r) => ({ bucket: bucketKey(r.bucket), type: r.type as EventType, count: num(r.n) }));
}

export interface RetentionRow {
  cohort: number;
  k: number;
  count: number;
}

/**
 * Cohorts by the bucket of the first purchase in [from, to): their size, and per k in 1..periods how many were
 * entitled at first purchase + k intervals, and how many had reached that age by `until`.
 */
export async function retentionRows(
  sql: SqlRunner,
  from: Date,
  to: Date,
  until: Date,
  interval: AnalyticsInterval,
  periods: number,
  scope: AnalyticsScope,
): Promise<{ sizes: Map<number, number>; retained: RetentionRow[]; eligible: RetentionRow[] }> {
  const step = STEP[interval];
  const [minS, maxS] = LENGTH_S[interval];
  const kth = (k: string) => `(((t.first_purchased_at at time zone 'UTC') + ${k} * ${step}) at time zone 'UTC')`;

  const ages = Array.from({ length: periods }, (_, i) => `count(*) filter (where ${kth(String(i + 1))} <= ?) as k${i + 1}`);
  const p1: unknown[] = [...Array<Date>(periods).fill(until), from, to];
  const w1 = scopeWhere(scope, p1);
  const prod1 = productTest(scope, 't.product_id', p1);
  const cohorts = await sql(
    `select ${bucketOf('t.first_purchased_at', interval)} as cohort, count(*) as n${ages.length ? `, ${ages.join(', ')}` : ''}
     from subscription_state_span t
     where t.seq = 0 and t.first_purchased_at >= ? and t.first_purchased_at < ?${w1} and ${prod1}
     group by 1`,
    p1,
  );
  const sizes = new Map<number, number>();
  const eligible: RetentionRow[] = [];
  for (const r of cohorts) {
    const cohort = bucketKey(r.cohort);
    sizes.set(cohort, num(r.n));
    for (let k = 1; k <= periods; k++) eligible.push({ cohort, k, count: num(r[`k${k}`]) });
  }

  const p2: unknown[] = [periods, until, until, until, from, to];
  const w2 = scopeWhere(scope, p2);
  const prod2 = productTest(scope, 't.product_id', p2);
  const rows = await sql(
    `select ${bucketOf('t.first_purchased_at', interval)} as cohort, k, count(*) as n
     from subscription_state_span t,
       generate_series(
         greatest(1, floor(extract(epoch from (t.starts_at - t.first_purchased_at)) / ${maxS})::int),
         least(?::int, floor(extract(epoch from (coalesce(t.ends_at, ?::timestamptz) - t.first_purchased_at)) / ${minS})::int)) as k
     where ${kth('k')} >= t.starts_at and (t.ends_at is null or ${kth('k')} < t.ends_at) and ${kth('k')} <= ?
       and t.state in ${ENTITLING_SQL} and t.starts_at <= ?
       and t.first_purchased_at >= ? and t.first_purchased_at < ?${w2} and ${prod2}
     group by 1, 2`,
    p2,
  );
  return { sizes, eligible, retained: rows.map((r) => ({ cohort: bucketKey(r.cohort), k: num(r.k), count: num(r.n) })) };
}

export interface RefundRow {
  type: EventType;
  kind: string | null;
  currency: string | null;
  count: number;
  amountMicros: number;
  priced: number;
}

/** Refunds (and reversals) in [from, to), with the refunded transaction's stored price where known. */
export async function refundRows(sql: SqlRunner, from: Date, to: Date, scope: AnalyticsScope): Promise<RefundRow[]> {
  const params: unknown[] = [from, to];
  const where = scopeWhere(scope, params);
  const product = productTest(scope, 't.product_id', params);
  const rows = await sql(
    `select t.type, p.kind, p.currency, count(*) as n, coalesce(sum(p.price_micros), 0) as amount, count(p.price_micros) as priced
     from event t
     left join purchase p on p.store = t.store and p.store_transaction_id = t.store_transaction_id
     where t.type in ('REFUND', 'REFUND_REVERSED') and t.occurred_at >= ? and t.occurred_at < ?${where} and ${product}
     group by 1, 2, 3`,
    params,
  );
  return rows.map((r) => ({
    type: r.type as EventType,
    kind: str(r.kind),
    currency: str(r.currency),
    count: num(r.n),
    amountMicros: num(r.amount),
    priced: num(r.priced),
  }));
}

/** Free trials started in [from, to): how many became a paid renewal, ended without one, or are still running. */
export async function trialRows(sql: SqlRunner, from: Date, to: Date, now: Date, scope: AnalyticsScope): Promise<{ started: number; converted: number; running: number }> {
  const params: unknown[] = [now, from, to];
  const where = scopeWhere(scope, params);
  const product = productTest(scope, 't.product_id', params);
  const rows = await sql(
    `select count(*) as started,
       count(*) filter (where exists (
         select 1 from subscription_state_span c
         where c.store = t.store and c.lineage_id = t.lineage_id and c.seq > t.seq and c.cause = 'RENEWAL'
           and c.previous_offer_type = 'FREE_TRIAL' and c.offer_type is distinct from 'FREE_TRIAL'
           and c.period_starts_at >= t.period_starts_at)) as converted,
       count(*) filter (where t.period_ends_at > ? and not exists (
         select 1 from subscription_state_span c
         where c.store = t.store and c.lineage_id = t.lineage_id and c.seq > t.seq and c.period_starts_at > t.period_starts_at)) as running
     from subscription_state_span t
     where t.offer_type = 'FREE_TRIAL' and t.cause in ('INITIAL_PURCHASE', 'REACTIVATION')
       and t.starts_at >= ? and t.starts_at < ?${where} and ${product}`,
    params,
  );
  const r = rows[0] ?? {};
  return { started: num(r.started), converted: num(r.converted), running: num(r.running) };
}
