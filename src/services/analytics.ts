// Subscription analytics use cases: validate the filters against the catalog, run the rollup queries, and shape
// the answers. Read-only; reads go through the service's connection pool outside any transaction.
import {
  MAX_ANALYTICS_PERIODS,
  SUBSCRIPTION_STATES_ORDER,
  assertRange,
  periodsOf,
  rate,
  type AnalyticsInterval,
} from '../domain/analytics.js';
import type { Catalog } from '../domain/catalog.js';
import { AppError } from '../domain/errors.js';
import type { Environment, Store, SubscriptionState } from '../domain/types.js';
import * as q from '../persistence/analytics.js';
import type { Orm } from '../persistence/orm.js';

export interface AnalyticsFilter {
  store?: Store | null;
  productId?: string | null;
  entitlement?: string | null;
  /** PRODUCTION unless asked (sandbox purchases are tests, App Review, TestFlight). */
  environment?: Environment | null;
}

export interface StateCountsResult {
  at: Date;
  total: number;
  counts: { state: SubscriptionState; count: number }[];
}

export interface ChurnPeriodResult {
  startsAt: Date;
  endsAt: Date;
  activeAtStart: number;
  new: number;
  renewed: number;
  reactivated: number;
  churned: number;
  voluntaryChurn: number;
  involuntaryChurn: number;
  revokedChurn: number;
  otherChurn: number;
  refunds: number;
  churnRate: number | null;
  activeAtEnd: number;
}

export interface CurrencyAmountResult {
  currency: string;
  amountMicros: number;
  subscriptions: number;
}

export interface ActiveSubscriptionsResult {
  at: Date;
  total: number;
  active: number;
  canceled: number;
  gracePeriod: number;
  trials: number;
}

export interface RecurringRevenueResult {
  at: Date;
  currencies: CurrencyAmountResult[];
  pricedSubscriptions: number;
  unpricedSubscriptions: number;
  trialSubscriptions: number;
  gracePeriodSubscriptions: number;
}

export interface RetentionCohortResult {
  startsAt: Date;
  size: number;
  periods: { k: number; eligible: number; retained: number; share: number | null }[];
}

export interface RefundsResult {
  from: Date;
  to: Date;
  refunds: number;
  reversals: number;
  subscriptionRefunds: number;
  oneTimeRefunds: number;
  unpricedRefunds: number;
  amounts: CurrencyAmountResult[];
}

export interface TrialConversionsResult {
  from: Date;
  to: Date;
  started: number;
  converted: number;
  notConverted: number;
  inTrial: number;
  conversionRate: number | null;
}

/** Most periods `retention` follows each cohort for. */
export const MAX_RETENTION_PERIODS = 60;

const SPAN_BACKFILL_CURSOR = 'analytics:span-backfill';

const badInput = (message: string, problem: string) => new AppError('BAD_USER_INPUT', message, { problems: [problem] });

/** The history answers for the past only: what lies after now is a projection (a period's end), not a fact. */
function assertNotFuture(at: Date, now: Date, name: string): void {
  if (at.getTime() > now.getTime()) throw badInput(`${name} is in the future: the history has no answer for it yet`, `${name}: not after now`);
}

export class AnalyticsService {
  constructor(
    private readonly orm: Orm,
    private readonly catalog: Catalog,
  ) {}

  private readonly sql: q.SqlRunner = (sql, params) => this.orm.em.getConnection().execute(sql, [...params], 'all') as Promise<Record<string, unknown>[]>;

  /** The filter as a query scope; a product or entitlement the catalog does not know is BAD_USER_INPUT. */
  scope(filter: AnalyticsFilter | null | undefined): q.AnalyticsScope {
    const f = filter ?? {};
    const store = f.store ?? null;
    let products: { store: Store; productId: string }[] | null = null;
    if (f.productId != null) {
      const matches = this.catalog.products.filter((p) => p.productId === f.productId && (store === null || p.store === store));
      if (matches.length === 0) throw badInput(`unknown product ${f.productId}${store ? ` in ${store}` : ''}`, `filter.productId: not in the catalog`);
      products = matches.map((p) => ({ store: p.store, productId: p.productId }));
    }
    if (f.entitlement != null) {
      const unlocking = this.catalog.products.filter((p) => p.entitlements.includes(f.entitlement!) && (store === null || p.store === store));
      if (!this.catalog.products.some((p) => p.entitlements.includes(f.entitlement!))) {
        throw badInput(`unknown entitlement ${f.entitlement}`, 'filter.entitlement: no catalog product unlocks it');
      }
      const pairs = unlocking.map((p) => ({ store: p.store, productId: p.productId }));
      products = products === null ? pairs : products.filter((p) => pairs.some((x) => x.store === p.store && x.productId === p.productId));
    }
    return { store, environment: f.environment ?? 'PRODUCTION', products };
  }

  async stateCounts(at: Date, now: Date, filter?: AnalyticsFilter | null): Promise<StateCountsResult> {
    assertNotFuture(at, now, 'at');
    const counts = await q.stateCounts(this.sql, at, this.scope(filter));
    const list = SUBSCRIPTION_STATES_ORDER.map((state) => ({ state, count: counts.get(state) ?? 0 }));
    return { at, total: list.reduce((n, c) => n + c.count, 0), counts: list };
  }

  async churn(from: Date, to: Date, interval: AnalyticsInterval, now: Date, filter?: AnalyticsFilter | null): Promise<ChurnPeriodResult[]> {
    const periods = periodsOf(from, to, interval);
    assertNotFuture(from, now, 'from');
    const scope = this.scope(filter);
    // Only what happened by now counts: the rollup also holds each period's projected end (a renewal may come).
    const until = new Date(Math.min(to.getTime(), now.getTime()));
    const [before, spans, events] = [
      await q.entitledBefore(this.sql, from, scope),
      await q.churnBuckets(this.sql, from, until, interval, scope),
      await q.subscriptionEventBuckets(this.sql, from, until, interval, scope),
    ];
    const spanBy = new Map(spans.map((r) => [r.bucket, r]));
    let active = before;
    return periods.map((p) => {
      const key = p.bucket.getTime();
      const s = spanBy.get(key);
      const count = (type: string) => events.find((e) => e.bucket === key && e.type === type)?.count ?? 0;
      const churned = s?.churned ?? 0;
      const result: ChurnPeriodResult = {
        startsAt: p.startsAt,
        endsAt: p.endsAt,
        activeAtStart: active,
        new: s?.started ?? 0,
        renewed: s?.renewed ?? 0,
        reactivated: s?.reactivated ?? 0,
        churned,
        voluntaryChurn: s?.voluntary ?? 0,
        involuntaryChurn: s?.involuntary ?? 0,
        revokedChurn: s?.revoked ?? 0,
        otherChurn: s?.other ?? 0,
        refunds: count('REFUND'),
        // Of the subscriptions entitled at some time in the period (at its start, or new or back in it), the share
        // that churned in it: never above 1.
        churnRate: rate(churned, active + (s?.started ?? 0) + (s?.reactivated ?? 0)),
        activeAtEnd: active + (s?.gains ?? 0) - (s?.losses ?? 0),
      };
      active = result.activeAtEnd;
      return result;
    });
  }

  async activeSubscriptions(at: Date, now: Date, filter?: AnalyticsFilter | null): Promise<ActiveSubscriptionsResult> {
    assertNotFuture(at, now, 'at');
    const rows = await q.activeAt(this.sql, at, this.scope(filter));
    const sum = (pred: (r: q.ActiveRow) => boolean) => rows.filter(pred).reduce((n, r) => n + r.subscriptions, 0);
    return {
      at,
      total: sum(() => true),
      active: sum((r) => r.state === 'ACTIVE'),
      canceled: sum((r) => r.state === 'CANCELED'),
      gracePeriod: sum((r) => r.state === 'GRACE'),
      trials: sum((r) => r.trial),
    };
  }

  /**
   * Monthly recurring revenue per currency: subscriptions ACTIVE or CANCELED (paid, running to the end of their
   * period) at `at`, their period's price normalised to a month. Free trials count 0; GRACE (not paid) is left
   * out and counted; a subscription whose price is not known is counted as unpriced. No currency conversion.
   */
  async recurringRevenue(at: Date, now: Date, filter?: AnalyticsFilter | null): Promise<RecurringRevenueResult> {
    assertNotFuture(at, now, 'at');
    const rows = await q.activeAt(this.sql, at, this.scope(filter));
    const paid = rows.filter((r) => r.state !== 'GRACE');
    const byCurrency = new Map<string, CurrencyAmountResult>();
    for (const r of paid.filter((x) => x.priced && !x.trial && x.currency !== null)) {
      const c = byCurrency.get(r.currency!) ?? { currency: r.currency!, amountMicros: 0, subscriptions: 0 };
      c.amountMicros += r.monthlyMicros;
      c.subscriptions += r.subscriptions;
      byCurrency.set(r.currency!, c);
    }
    const count = (list: q.ActiveRow[]) => list.reduce((n, r) => n + r.subscriptions, 0);
    return {
      at,
      currencies: [...byCurrency.values()].sort((a, b) => (a.currency < b.currency ? -1 : 1)),
      pricedSubscriptions: count(paid.filter((r) => r.priced && !r.trial)),
      unpricedSubscriptions: count(paid.filter((r) => !r.priced && !r.trial)),
      trialSubscriptions: count(paid.filter((r) => r.trial)),
      gracePeriodSubscriptions: count(rows.filter((r) => r.state === 'GRACE')),
    };
  }

  async billingIssues(at: Date, now: Date, filter?: AnalyticsFilter | null): Promise<{ at: Date; gracePeriod: number; onHold: number; total: number }> {
    assertNotFuture(at, now, 'at');
    const counts = await q.stateCounts(this.sql, at, this.scope(filter));
    const gracePeriod = counts.get('GRACE') ?? 0;
    const onHold = counts.get('ON_HOLD') ?? 0;
    return { at, gracePeriod, onHold, total: gracePeriod + onHold };
  }

  async retention(from: Date, to: Date, interval: AnalyticsInterval, periods: number, now: Date, filter?: AnalyticsFilter | null): Promise<RetentionCohortResult[]> {
    const buckets = periodsOf(from, to, interval);
    if (!Number.isInteger(periods) || periods < 1 || periods > MAX_RETENTION_PERIODS) {
      throw badInput(`periods must be 1 to ${MAX_RETENTION_PERIODS}`, `periods: 1 to ${MAX_RETENTION_PERIODS}`);
    }
    // Cohorts come from [from, to); each is followed up to now.
    const r = await q.retentionRows(this.sql, from, to, now, interval, periods, this.scope(filter));
    const byCohortAndK = (rows: q.RetentionRow[]) => new Map(rows.map((e) => [`${e.cohort}:${e.k}`, e.count]));
    const eligibleBy = byCohortAndK(r.eligible);
    const retainedBy = byCohortAndK(r.retained);
    return buckets.map((b) => {
      const key = b.bucket.getTime();
      return {
        startsAt: b.startsAt,
        size: r.sizes.get(key) ?? 0,
        periods: Array.from({ length: periods }, (_, i) => {
          const k = i + 1;
          const eligible = eligibleBy.get(`${key}:${k}`) ?? 0;
          const retained = retainedBy.get(`${key}:${k}`) ?? 0;
          return { k, eligible, retained, share: rate(retained, eligible) };
        }),
      };
    });
  }

  async refunds(from: Date, to: Date, filter?: AnalyticsFilter | null): Promise<RefundsResult> {
    assertRange(from, to);
    const rows = await q.refundRows(this.sql, from, to, this.scope(filter));
    const refunds = rows.filter((r) => r.type === 'REFUND');
    const total = (list: q.RefundRow[]) => list.reduce((n, r) => n + r.count, 0);
    const amounts = new Map<string, CurrencyAmountResult>();
    for (const r of refunds.filter((x) => x.currency !== null && x.priced > 0)) {
      const a = amounts.get(r.currency!) ?? { currency: r.currency!, amountMicros: 0, subscriptions: 0 };
      a.amountMicros += r.amountMicros;
      a.subscriptions += r.priced;
      amounts.set(r.currency!, a);
    }
    return {
      from,
      to,
      refunds: total(refunds),
      reversals: total(rows.filter((r) => r.type === 'REFUND_REVERSED')),
      subscriptionRefunds: total(refunds.filter((r) => r.kind === 'AUTO_RENEWABLE')),
      oneTimeRefunds: total(refunds.filter((r) => r.kind !== null && r.kind !== 'AUTO_RENEWABLE')),
      unpricedRefunds: refunds.reduce((n, r) => n + r.count - r.priced, 0),
      amounts: [...amounts.values()].sort((a, b) => (a.currency < b.currency ? -1 : 1)),
    };
  }

  /**
   * Derives the spans of subscriptions recorded before the rollup existed, a batch per transaction, resuming from
   * a cursor: the migration only creates the table, so an upgrade does not hold start-up for a full pass over the
   * events. Subscriptions written since get their spans with the write; rebuilding one again is harmless.
   * Returns what this run did; `finished` once every subscription has been passed.
   */
  async backfillSpans(maxBatches = 10, batchSize = 500): Promise<{ subscriptions: number; finished: boolean }> {
    const conn = this.orm.em.getConnection();
    const cursorRows = (await conn.execute(`select value from store_cursor where key = ?`, [SPAN_BACKFILL_CURSOR])) as Record<string, unknown>[];
    const value = cursorRows[0]?.value as string | undefined;
    if (value === 'done') return { subscriptions: 0, finished: true };
    let after = (value ? JSON.parse(value) : ['', '']) as [string, string];
    let subscriptions = 0;
    for (let i = 0; i < maxBatches; i++) {
      const next = await this.orm.em.fork().transactional(async (em) => {
        const batch = await q.rebuildSpansBatch((sql, params) => em.execute(sql, [...params]), after, batchSize, true);
        const cursor = batch === null ? 'done' : JSON.stringify(batch.last);
        await em.execute(
          `insert into store_cursor (key, value, updated_at) values (?, ?, now()) on conflict (key) do update set value = excluded.value, updated_at = now()`,
          [SPAN_BACKFILL_CURSOR, cursor],
        );
        return batch;
      });
      if (next === null) return { subscriptions, finished: true };
      subscriptions += next.subscriptions;
      after = next.last;
    }
    return { subscriptions, finished: false };
  }

  async trialConversions(from: Date, to: Date, now: Date, filter?: AnalyticsFilter | null): Promise<TrialConversionsResult> {
    assertRange(from, to);
    const r = await q.trialRows(this.sql, from, to, now, this.scope(filter));
    const notConverted = r.started - r.converted - r.running;
    return { from, to, started: r.started, converted: r.converted, notConverted, inTrial: r.running, conversionRate: rate(r.converted, r.converted + notConverted) };
  }
}

export { MAX_ANALYTICS_PERIODS };
