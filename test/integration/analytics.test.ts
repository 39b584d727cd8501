// Subscription analytics end to end: a small history recorded through the real write path, then every analytics
// query over GraphQL/HTTP, on PostgreSQL and on PGlite, against numbers worked out by hand below.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NormalizedPurchase } from '../../src/domain/types.js';
import { DATABASE_KINDS } from '../support/databases.js';
import { purchase } from '../support/purchases.js';
import { TEST_JWT_SECRET, startTestApp, type TestApp } from '../support/test-app.js';
import jwt from 'jsonwebtoken';

const DAY = 86_400_000;
const t = (s: string) => new Date(`${s}Z`);
const plus = (d: Date, days: number) => new Date(d.getTime() + days * DAY);
const usd = (micros: number) => ({ amountMicros: micros, currency: 'USD' });

/** One period of a monthly (30-day) App Store subscription. */
function period(lineageId: string, txn: string, start: Date, over: Partial<NormalizedPurchase> = {}): NormalizedPurchase {
  return purchase({
    productId: 'com.example.app.pro.monthly',
    lineageId,
    transactionId: txn,
    purchasedAt: start,
    expiresAt: plus(start, 30),
    autoRenew: true,
    observedAt: start,
    price: usd(9_990_000),
    ...over,
  });
}

/**
 * The history (production unless said):
 *   A  Jan 5 first purchase (USD 9.99 a month), renewed Feb 4 and Mar 6: active at Mar 20.
 *   B  Jan 10 (EUR 8.99), auto-renew turned off Jan 20, expired Feb 9: voluntary churn in February.
 *   C  Jan 15, billing failed Feb 14 with grace to Feb 20, then expired: involuntary churn in February.
 *   D  Google Play, Feb 1, renewed Mar 3, no price from the store: active and unpriced.
 *   E  Feb 10 (USD 4.99), refunded Feb 15: revoked in February, one refund.
 *   F  sandbox, Jan 3: left out unless asked for.
 *   G  Mar 1 12:00 a 7-day free trial, then paid Mar 8 (USD 9.99): a converted trial.
 */
async function recordHistory(app: TestApp['app']): Promise<void> {
  const rec = (user: string, p: NormalizedPurchase) => app.services.recorder.record(user, [p], p.observedAt);
  const a0 = t('2026-01-05T00:00:00');
  await rec('a', period('A', 'A1', a0));
  await rec('a', period('A', 'A2', plus(a0, 30)));
  await rec('a', period('A', 'A3', plus(a0, 60)));

  const b0 = t('2026-01-10T00:00:00');
  const eur = { amountMicros: 8_990_000, currency: 'EUR' };
  await rec('b', period('B', 'B1', b0, { price: eur }));
  await rec('b', period('B', 'B1', b0, { price: eur, autoRenew: false, observedAt: t('2026-01-20T00:00:00') }));
  await rec('b', period('B', 'B1', b0, { price: eur, autoRenew: false, expirationReason: 'VOLUNTARY', observedAt: plus(b0, 30) }));

  const c0 = t('2026-01-15T00:00:00');
  await rec('c', period('C', 'C1', c0));
  await rec('c', period('C', 'C1', c0, { billingRetry: true, gracePeriodExpiresAt: plus(c0, 36), observedAt: plus(c0, 30) }));
  await rec('c', period('C', 'C1', c0, { autoRenew: false, expirationReason: 'BILLING_ERROR', observedAt: plus(c0, 36) }));

  const d0 = t('2026-02-01T00:00:00');
  const google = { store: 'PLAY_STORE' as const, productId: 'pro_monthly', price: null, purchaseToken: 'tok-d' };
  await rec('d', period('tok-d', 'GPA.D', d0, google));
  await rec('d', period('tok-d', 'GPA.D..0', plus(d0, 30), google));

  const e0 = t('2026-02-10T00:00:00');
  await rec('e', period('E', 'E1', e0, { price: usd(4_990_000) }));
  await rec('e', period('E', 'E1', e0, { price: usd(4_990_000), revokedAt: plus(e0, 5), revocationReason: 'REFUND', observedAt: plus(e0, 5) }));

  await rec('f', period('F', 'F1', t('2026-01-03T00:00:00'), { environment: 'SANDBOX' }));

  const g0 = t('2026-03-01T12:00:00');
  await rec('g', period('G', 'G1', g0, { expiresAt: plus(g0, 7), price: usd(0), offerType: 'FREE_TRIAL' }));
  await rec('g', period('G', 'G2', plus(g0, 7)));
}

const NOW = t('2026-03-20T00:00:00');

const counts = (list: { state: string; count: number }[]) => Object.fromEntries(list.filter((c) => c.count > 0).map((c) => [c.state, c.count]));

describe.each(DATABASE_KINDS)('analytics on %s', (kind) => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp(kind, { clock: () => NOW });
    await recordHistory(app.app);
  });
  afterAll(async () => {
    await app?.close();
  });

  async function ok<T = any>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const res = await app.server(query, variables);
    expect(res.errors).toBeUndefined();
    return res.data as T;
  }

  it('counts subscriptions per state at an instant, sandbox left out unless asked', async () => {
    const q = `query($at: DateTime, $filter: AnalyticsFilter) { subscriptionStateCounts(at: $at, filter: $filter) { at total counts { state count } } }`;
    const now = (await ok(q)).subscriptionStateCounts;
    expect(now.at).toBe(NOW.toISOString());
    expect(now.counts).toHaveLength(7);
    expect(counts(now.counts)).toEqual({ ACTIVE: 3, EXPIRED: 2, REVOKED: 1 });
    const feb16 = (await ok(q, { at: '2026-02-16T00:00:00Z' })).subscriptionStateCounts;
    expect(counts(feb16.counts)).toEqual({ ACTIVE: 2, GRACE: 1, EXPIRED: 1, REVOKED: 1 });
    const jan1 = (await ok(q, { at: '2026-01-01T00:00:00Z' })).subscriptionStateCounts;
    expect(jan1.total).toBe(0);
    expect(counts((await ok(q, { filter: { environment: 'SANDBOX' } })).subscriptionStateCounts.counts)).toEqual({ EXPIRED: 1 });
    expect(counts((await ok(q, { filter: { store: 'PLAY_STORE' } })).subscriptionStateCounts.counts)).toEqual({ ACTIVE: 1 });
    expect(counts((await ok(q, { filter: { entitlement: 'pro', store: 'APP_STORE' } })).subscriptionStateCounts.counts)).toEqual({ ACTIVE: 2, EXPIRED: 2, REVOKED: 1 });
  });

  it('agrees with the current state of every stored subscription', async () => {
    const rows = await app.app.orm.em.getConnection().execute(
      `select state, expires_at, grace_period_expires_at from subscription where environment = 'PRODUCTION'`,
    );
    // The stored state as of now: an entitling state whose end has passed has lapsed, a grace period that ran out is a hold.
    const current = (r: Record<string, any>): string => {
      const end = (v: unknown) => (v ? new Date(v as string).getTime() : Infinity);
      if ((r.state === 'ACTIVE' || r.state === 'CANCELED') && end(r.expires_at) <= NOW.getTime()) return 'EXPIRED';
      if (r.state === 'GRACE' && end(r.grace_period_expires_at) <= NOW.getTime()) return 'ON_HOLD';
      return r.state;
    };
    const expected: Record<string, number> = {};
    for (const r of rows) expected[current(r)] = (expected[current(r)] ?? 0) + 1;
    const data = await ok(`{ subscriptionStateCounts { counts { state count } } }`);
    expect(counts(data.subscriptionStateCounts.counts)).toEqual(expected);
  });

  it('reports churn per month', async () => {
    const data = await ok(`{ churn(from: "2026-01-01T00:00:00Z", to: "2026-04-01T00:00:00Z", interval: MONTH) {
      startsAt endsAt activeAtStart new renewed reactivated churned voluntaryChurn involuntaryChurn revokedChurn otherChurn refunds churnRate activeAtEnd } }`);
    const row = (startsAt: string, endsAt: string, values: Record<string, unknown>) => ({
      startsAt, endsAt, reactivated: 0, otherChurn: 0, refunds: 0, voluntaryChurn: 0, involuntaryChurn: 0, revokedChurn: 0, ...values,
    });
    expect(data.churn).toEqual([
      row('2026-01-01T00:00:00.000Z', '2026-02-01T00:00:00.000Z', { activeAtStart: 0, new: 3, renewed: 0, churned: 0, churnRate: 0, activeAtEnd: 3 }),
      row('2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z', {
        activeAtStart: 3, new: 2, renewed: 1, churned: 3, voluntaryChurn: 1, involuntaryChurn: 1, revokedChurn: 1, refunds: 1, churnRate: 0.6, activeAtEnd: 2,
      }),
      row('2026-03-01T00:00:00.000Z', '2026-04-01T00:00:00.000Z', { activeAtStart: 2, new: 1, renewed: 3, churned: 0, churnRate: 0, activeAtEnd: 3 }),
    ]);
    // Periods past now count nothing: a period's end ahead is a projection (the subscription may yet renew).
    const ahead = await ok(`{ churn(from: "2026-03-01T00:00:00Z", to: "2026-06-01T00:00:00Z", interval: MONTH) { startsAt activeAtStart new renewed churned activeAtEnd } }`);
    expect(ahead.churn.slice(1)).toEqual([
      { startsAt: '2026-04-01T00:00:00.000Z', activeAtStart: 3, new: 0, renewed: 0, churned: 0, activeAtEnd: 3 },
      { startsAt: '2026-05-01T00:00:00.000Z', activeAtStart: 3, new: 0, renewed: 0, churned: 0, activeAtEnd: 3 },
    ]);
    const google = await ok(`{ churn(from: "2026-02-01T00:00:00Z", to: "2026-03-15T00:00:00Z", interval: MONTH, filter: { productId: "pro_monthly" }) { startsAt endsAt activeAtStart new renewed activeAtEnd } }`);
    expect(google.churn).toEqual([
      { startsAt: '2026-02-01T00:00:00.000Z', endsAt: '2026-03-01T00:00:00.000Z', activeAtStart: 0, new: 1, renewed: 0, activeAtEnd: 1 },
      { startsAt: '2026-03-01T00:00:00.000Z', endsAt: '2026-03-15T00:00:00.000Z', activeAtStart: 1, new: 0, renewed: 1, activeAtEnd: 1 },
    ]);
  });

  it('follows cohorts by first purchase month', async () => {
    const data = await ok(`{ retention(from: "2026-01-01T00:00:00Z", to: "2026-03-01T00:00:00Z", interval: MONTH, periods: 2) { startsAt size periods { k eligible retained share } } }`);
    expect(data.retention).toEqual([
      // A is entitled a month and two months after Jan 5; B lapsed Feb 9; C was in grace on Feb 15, gone by Mar 15.
      { startsAt: '2026-01-01T00:00:00.000Z', size: 3, periods: [{ k: 1, eligible: 3, retained: 2, share: 0.6667 }, { k: 2, eligible: 3, retained: 1, share: 0.3333 }] },
      // D renewed (Mar 1 entitled), E was refunded; neither is two months old by Mar 20.
      { startsAt: '2026-02-01T00:00:00.000Z', size: 2, periods: [{ k: 1, eligible: 2, retained: 1, share: 0.5 }, { k: 2, eligible: 0, retained: 0, share: null }] },
    ]);
  });

  it('reports active subscriptions and monthly recurring revenue, unpriced ones counted apart', async () => {
    const q = `query($at: DateTime) {
      activeSubscriptions(at: $at) { total active canceled gracePeriod trials }
      recurringRevenue(at: $at) { currencies { currency amountMicros amount subscriptions } pricedSubscriptions unpricedSubscriptions trialSubscriptions gracePeriodSubscriptions }
    }`;
    const now = await ok(q);
    expect(now.activeSubscriptions).toEqual({ total: 3, active: 3, canceled: 0, gracePeriod: 0, trials: 0 });
    expect(now.recurringRevenue).toEqual({
      currencies: [{ currency: 'USD', amountMicros: 19_980_000, amount: '19.98', subscriptions: 2 }],
      pricedSubscriptions: 2,
      unpricedSubscriptions: 1,
      trialSubscriptions: 0,
      gracePeriodSubscriptions: 0,
    });
    const jan25 = await ok(q, { at: '2026-01-25T00:00:00Z' });
    expect(jan25.activeSubscriptions).toEqual({ total: 3, active: 2, canceled: 1, gracePeriod: 0, trials: 0 });
    expect(jan25.recurringRevenue.currencies).toEqual([
      { currency: 'EUR', amountMicros: 8_990_000, amount: '8.99', subscriptions: 1 },
      { currency: 'USD', amountMicros: 19_980_000, amount: '19.98', subscriptions: 2 },
    ]);
    const mar5 = await ok(q, { at: '2026-03-05T00:00:00Z' });
    expect(mar5.activeSubscriptions.trials).toBe(1);
    expect(mar5.recurringRevenue).toMatchObject({ pricedSubscriptions: 1, unpricedSubscriptions: 1, trialSubscriptions: 1 });
    const feb16 = await ok(q, { at: '2026-02-16T00:00:00Z' });
    expect(feb16.recurringRevenue).toMatchObject({ gracePeriodSubscriptions: 1, pricedSubscriptions: 1, unpricedSubscriptions: 1 });
  });

  it('reports billing issues, refunds and trial conversions', async () => {
    const data = await ok(`{
      billingIssues(at: "2026-02-16T00:00:00Z") { gracePeriod onHold total }
      refunds(from: "2026-02-01T00:00:00Z", to: "2026-03-01T00:00:00Z") { refunds reversals subscriptionRefunds oneTimeRefunds unpricedRefunds amounts { currency amount subscriptions } }
      trialConversions(from: "2026-03-01T00:00:00Z", to: "2026-04-01T00:00:00Z") { started converted notConverted inTrial conversionRate }
    }`);
    expect(data.billingIssues).toEqual({ gracePeriod: 1, onHold: 0, total: 1 });
    expect(data.refunds).toEqual({
      refunds: 1, reversals: 0, subscriptionRefunds: 1, oneTimeRefunds: 0, unpricedRefunds: 0, amounts: [{ currency: 'USD', amount: '4.99', subscriptions: 1 }],
    });
    expect(data.trialConversions).toEqual({ started: 1, converted: 1, notConverted: 0, inTrial: 0, conversionRate: 1 });
  });

  it('derives the spans of subscriptions recorded before the rollup existed, in batches, once', async () => {
    const sql = app.app.orm.em.getConnection();
    const spans = `select store, lineage_id, seq, state, starts_at, ends_at, churn from subscription_state_span order by store, lineage_id, seq`;
    const before = await sql.execute(spans);
    expect(before.length).toBeGreaterThan(0);
    // As after an upgrade: the table exists, the spans do not.
    await sql.execute(`delete from subscription_state_span`);
    await sql.execute(`delete from store_cursor where key = 'analytics:span-backfill'`);
    const first = await app.app.services.analytics.backfillSpans(1, 3); // one batch of 3 per run
    expect(first).toEqual({ subscriptions: 3, finished: false });
    let run = first;
    while (!run.finished) run = await app.app.services.analytics.backfillSpans(1, 3);
    expect(await sql.execute(spans)).toEqual(before);
    expect(await app.app.services.analytics.backfillSpans()).toEqual({ subscriptions: 0, finished: true });
  });

  it('exposes the BI views over events and subscriptions', async () => {
    const sql = app.app.orm.em.getConnection();
    const spans = await sql.execute(
      `select count(*)::int as n from analytics_subscription_spans where environment = 'PRODUCTION' and entitled and starts_at <= ? and (ends_at > ? or ends_at is null)`,
      [NOW, NOW],
    );
    expect(spans[0].n).toBe(3);
    const events = await sql.execute(
      `select type, count(*)::int as n from analytics_subscription_events where environment = 'PRODUCTION' and type in ('INITIAL_PURCHASE', 'REFUND') group by type order by type`,
    );
    expect(events).toEqual([{ type: 'INITIAL_PURCHASE', n: 6 }, { type: 'REFUND', n: 1 }]);
  });

  it.each([
    ['from after to', `{ churn(from: "2026-03-01T00:00:00Z", to: "2026-01-01T00:00:00Z", interval: MONTH) { new } }`, 'must be before to'],
    ['an instant in the future', `{ activeSubscriptions(at: "2027-01-01T00:00:00Z") { total } }`, 'is in the future'],
    ['a churn range starting in the future', `{ churn(from: "2027-01-01T00:00:00Z", to: "2027-03-01T00:00:00Z", interval: MONTH) { new } }`, 'is in the future'],
    ['too many periods', `{ churn(from: "2020-01-01T00:00:00Z", to: "2026-01-01T00:00:00Z", interval: DAY) { new } }`, 'more than 400'],
    ['an unknown product', `{ subscriptionStateCounts(filter: { productId: "nope" }) { total } }`, 'unknown product nope'],
    ['an unknown entitlement', `{ activeSubscriptions(filter: { entitlement: "nope" }) { total } }`, 'unknown entitlement nope'],
    ['too many retention periods', `{ retention(from: "2026-01-01T00:00:00Z", to: "2026-02-01T00:00:00Z", interval: MONTH, periods: 61) { size } }`, 'periods must be'],
    ['a refunds range the wrong way round', `{ refunds(from: "2026-03-01T00:00:00Z", to: "2026-03-01T00:00:00Z") { refunds } }`, 'must be before to'],
  ])('answers %s with BAD_USER_INPUT', async (_name, query, message) => {
    const res = await app.server(query);
    expect(res.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
    expect(res.errors?.[0].message).toContain(message);
  });

  it('follows a period the store extended without a new transaction (renewal-date extension)', async () => {
    // Sandbox, so the production figures above stay as they are: X1 bought Jan 25 to Feb 24, extended Feb 20 to Mar 10.
    const x0 = t('2026-01-25T00:00:00');
    const rec = (p: NormalizedPurchase) => app.app.services.recorder.record('x', [p], p.observedAt);
    await rec(period('X', 'X1', x0, { environment: 'SANDBOX' }));
    await rec(period('X', 'X1', x0, { environment: 'SANDBOX', expiresAt: t('2026-03-10T00:00:00'), observedAt: t('2026-02-20T00:00:00') }));
    const q = `query($at: DateTime) { subscriptionStateCounts(at: $at, filter: { environment: SANDBOX }) { counts { state count } } }`;
    // F (sandbox, expired Feb 2) and X, still entitled on Mar 1 thanks to the extension.
    expect(counts((await ok(q, { at: '2026-03-01T00:00:00Z' })).subscriptionStateCounts.counts)).toEqual({ ACTIVE: 1, EXPIRED: 1 });
    expect(counts((await ok(q, { at: '2026-03-11T00:00:00Z' })).subscriptionStateCounts.counts)).toEqual({ EXPIRED: 2 });
  });

  it('is for the server only', async () => {
    const token = jwt.sign({ sub: 'a' }, TEST_JWT_SECRET, { expiresIn: 600 });
    const res = await app.gql(`{ subscriptionStateCounts { total } }`, {}, { authorization: `Bearer ${token}` });
    expect(res.errors?.[0].extensions?.code).toBe('FORBIDDEN');
  });
});
