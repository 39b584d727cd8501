// Analytics at scale: a seeded 12-month history of BENCH_SUBSCRIPTIONS subscriptions (default 1,000,000, about
// 5 events each: purchases, monthly renewals, cancellations, billing failures with grace, refunds) generated in
// SQL on PostgreSQL, the state-span rollup derived from those events by the service's own code, then every
// analytics query timed beside a sequential scan of the event table measured in the same run (the baseline).
//   npm run bench:analytics     (BENCH_POSTGRES_URL, BENCH_SUBSCRIPTIONS, BENCH_RUNS to override)
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import pg from 'pg';
import { loadCatalogFile } from '../../src/config/catalog-file.js';
import { rebuildAllSubscriptionSpans, type SqlRunner } from '../../src/persistence/analytics.js';
import { migrate, openDatabase } from '../../src/persistence/orm.js';
import { AnalyticsService } from '../../src/services/analytics.js';

const ADMIN_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const SUBSCRIPTIONS = Number(process.env.BENCH_SUBSCRIPTIONS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const FROM = new Date('2025-01-01T00:00:00Z');
const TO = new Date('2026-01-01T00:00:00Z');
const MID = new Date('2025-07-01T00:00:00Z');

const name = `iap_analytics_bench_${randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
await admin.query(`create database ${name}`);
const url = new URL(ADMIN_URL);
url.pathname = `/${name}`;

const client = new pg.Client({ connectionString: url.toString() });
const seconds = (t0: number) => ((performance.now() - t0) / 1000).toFixed(1);

try {
  const orm = await openDatabase({ url: url.toString(), dataDir: '' });
  await migrate(orm);
  await client.connect();

  // ---- generation (seeded; one backend, no parallel workers, so random() repeats run to run) ----
  let t0 = performance.now();
  await client.query('set max_parallel_workers_per_gather = 0');
  await client.query('select setseed(0.42)');
  await client.query(`create unlogged table bench_sub as
    select i,
      case when i % 10 < 7 then 'APP_STORE' else 'PLAY_STORE' end as store,
      case when i % 10 < 7 then 'com.example.app.pro.monthly' else 'pro_monthly' end as product_id,
      'L' || i as lineage_id,
      $1::timestamptz + (random() * 365) * interval '1 day' as start,
      -- periods paid: geometric, mean about 4.5
      1 + floor(ln(1 - random()) / ln(0.78))::int as periods,
      random() as fate, random() as r_price, random() as r_trial, random() as r_cancel
    from generate_series(1, $2::int) as i`, [FROM, SUBSCRIPTIONS]);
  await client.query(`create unlogged table bench_period as
    select s.*, k, s.start + k * interval '30 days' as p_start, s.start + (k + 1) * interval '30 days' as p_end,
      (k = s.periods - 1 or s.start + (k + 1) * interval '30 days' >= $1::timestamptz) as last, s.start + s.periods * interval '30 days' > $1::timestamptz as running
    from bench_sub s, generate_series(0, s.periods - 1) as k
    where s.start + k * interval '30 days' < $1::timestamptz`, [TO]);
  const insertEvents = (select: string) =>
    client.query(`insert into event (key, customer_id, type, occurred_at, recorded_at, store, environment, product_id, lineage_id, store_transaction_id, data)
      select 'bench:' || lineage_id || ':' || type || ':' || k, null, type, at, at, store, 'PRODUCTION', product_id, lineage_id, lineage_id || '.' || k, data
      from (${select}) x`);
  // Period starts: 20% begin with a 7-day free trial; 4% of the stores' answers carry no price.
  await insertEvents(`select lineage_id, k, store, product_id, case when k = 0 then 'INITIAL_PURCHASE' else 'RENEWAL' end as type, p_start as at,
      jsonb_build_object('expiresAt', to_char(p_end at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'offerType', case when k = 0 and r_trial < 0.2 then 'FREE_TRIAL' end,
        'price', case when k = 0 and r_trial < 0.2 then jsonb_build_object('amountMicros', 0, 'currency', 'USD')
                      when r_price < 0.04 then null
                      when r_price < 0.7 then jsonb_build_object('amountMicros', 9990000, 'currency', 'USD')
                      else jsonb_build_object('amountMicros', 8990000, 'currency', 'EUR') end) as data
    from bench_period`);
  // How the last period ends, for those that end within the year: 55% canceled then expired, 30% billing failure
  // with a 6-day grace then expired, 10% refunded, 5% expired for another reason.
  await insertEvents(`select lineage_id, k, store, product_id, 'CANCELLATION' as type, p_start + r_cancel * interval '29 days' as at, '{}'::jsonb as data
    from bench_period where last and not running and fate < 0.55`);
  await insertEvents(`select lineage_id, k, store, product_id, t as type, p_end as at,
      jsonb_build_object('gracePeriodExpiresAt', to_char((p_end + interval '6 days') at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) as data
    from bench_period, unnest(array['BILLING_ISSUE', 'GRACE_PERIOD']) as t where last and not running and fate >= 0.55 and fate < 0.85`);
  await insertEvents(`select lineage_id, k, store, product_id, 'EXPIRATION' as type,
      case when fate >= 0.55 and fate < 0.85 then p_end + interval '6 days' else p_end end as at,
      jsonb_build_object('churn', case when fate < 0.55 then 'VOLUNTARY' when fate < 0.85 then 'INVOLUNTARY' else 'OTHER' end) as data
    from bench_period where last and not running and (fate < 0.85 or fate >= 0.95)`);
  await insertEvents(`select lineage_id, k, store, product_id, 'REFUND' as type, p_start + interval '10 days' as at, '{"reason":"REFUND"}'::jsonb as data
    from bench_period where last and not running and fate >= 0.85 and fate < 0.95`);
  // The subscriptions' current state as the write path would have cached it at the end of the year.
  await client.query(`insert into subscription (id, customer_id, store, environment, lineage_id, product_id, state, original_purchased_at,
      current_period_starts_at, expires_at, grace_period_expires_at, auto_resume_at, will_renew, ownership, revoked_at, revocation_reason,
      expiration_reason, latest_transaction_id, created_at, updated_at)
    select gen_random_uuid(), null, store, 'PRODUCTION', lineage_id, product_id,
      case when running then 'ACTIVE' when fate >= 0.55 and fate < 0.85 and p_end + interval '6 days' > $1::timestamptz then 'GRACE' when fate >= 0.85 and fate < 0.95 then 'REVOKED' else 'EXPIRED' end,
      start, p_start, p_end, null, null, running, 'PURCHASED', null, null, null, lineage_id || '.' || k, now(), now()
    from bench_period where last`, [TO]);
  const events = Number((await client.query('select count(*) as n from event')).rows[0].n);
  const subs = Number((await client.query('select count(*) as n from subscription')).rows[0].n);
  await client.query('drop table bench_period; drop table bench_sub');
  await client.query('reset max_parallel_workers_per_gather');
  console.log(`generated ${subs.toLocaleString('en')} subscriptions, ${events.toLocaleString('en')} events in ${seconds(t0)} s`);

  // ---- the rollup, derived by the service's own code from the events ----
  t0 = performance.now();
  const runner: SqlRunner = async (sql, params) => {
    let n = 0;
    return (await client.query(sql.replace(/\?/g, () => `$${++n}`), [...params])).rows;
  };
  const spans = await rebuildAllSubscriptionSpans(runner, 10_000);
  console.log(`derived ${spans.toLocaleString('en')} state spans from the events in ${seconds(t0)} s`);
  await client.query('vacuum analyze event');
  await client.query('vacuum analyze subscription_state_span');
  await client.query('analyze subscription');

  // ---- timings ----
  async function time(fn: () => Promise<unknown>): Promise<number> {
    const runs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const s = performance.now();
      await fn();
      runs.push(performance.now() - s);
    }
    return runs.sort((a, b) => a - b)[Math.floor(runs.length / 2)];
  }
  // Baseline: one sequential scan of the event table (the planner's own parallel plan; no index may answer it).
  await client.query('set enable_indexscan = off; set enable_indexonlyscan = off; set enable_bitmapscan = off');
  const scan = await time(() => client.query(`select count(*) from event where occurred_at >= $1`, [FROM]));
  await client.query('reset enable_indexscan; reset enable_indexonlyscan; reset enable_bitmapscan');
  const reference = await time(() =>
    client.query(
      `select date_trunc('month', occurred_at at time zone 'UTC') as m, count(*) filter (where type = 'INITIAL_PURCHASE'), count(*) filter (where type = 'EXPIRATION')
       from event where type in ('INITIAL_PURCHASE', 'EXPIRATION') and occurred_at >= $1 and occurred_at < $2 group by 1`,
      [FROM, TO],
    ),
  );

  const catalog = loadCatalogFile(resolve('examples/catalog.yaml'));
  const analytics = new AnalyticsService(orm, catalog);
  const consistency = await analytics.stateCounts(TO, TO);
  const stored = (await client.query(`select state, count(*)::int as n from subscription group by state`)).rows as { state: string; n: number }[];
  const agrees = stored.every((r) => consistency.counts.find((c) => c.state === r.state)?.count === r.n);
  console.log(`subscriptionStateCounts(end of year) equals the stored subscription states: ${agrees ? 'yes' : 'NO'} (stored: ${stored.map((r) => `${r.state} ${r.n}`).join(', ')}; counted: ${consistency.counts.filter((c) => c.count > 0).map((c) => `${c.state} ${c.count}`).join(', ')})`);

  const queries: [string, () => Promise<unknown>][] = [
    ['subscriptionStateCounts(at)', () => analytics.stateCounts(MID, TO)],
    ['churn(12 months, MONTH)', () => analytics.churn(FROM, TO, 'MONTH', TO)],
    ['churn(12 months, WEEK)', () => analytics.churn(FROM, TO, 'WEEK', TO)],
    ['churn(12 months, MONTH, productId)', () => analytics.churn(FROM, TO, 'MONTH', TO, { productId: 'pro_monthly' })],
    ['retention(12 months, MONTH, 12 periods)', () => analytics.retention(FROM, TO, 'MONTH', 12, TO)],
    ['activeSubscriptions(at)', () => analytics.activeSubscriptions(MID, TO)],
    ['recurringRevenue(at)', () => analytics.recurringRevenue(MID, TO)],
    ['billingIssues(at)', () => analytics.billingIssues(MID, TO)],
    ['refunds(12 months)', () => analytics.refunds(FROM, TO)],
    ['trialConversions(12 months)', () => analytics.trialConversions(FROM, TO, TO)],
  ];
  const rows: [string, string, string][] = [
    ['sequential scan of event (baseline)', scan.toFixed(0), '1.00'],
    ['monthly started/expired over events, (type, occurred_at) index', reference.toFixed(0), (reference / scan).toFixed(2)],
  ];
  for (const [label, fn] of queries) {
    const ms = await time(fn);
    rows.push([label, ms.toFixed(0), (ms / scan).toFixed(2)]);
  }
  console.log(`\nmedian of ${RUNS} runs, ${events.toLocaleString('en')} events, ${spans.toLocaleString('en')} spans`);
  console.log(`${'query'.padEnd(64)} ${'ms'.padStart(7)}  x scan`);
  for (const [label, ms, ratio] of rows) console.log(`${label.padEnd(64)} ${ms.padStart(7)}  ${ratio.padStart(6)}`);
  await orm.close(true);
} finally {
  await client.end().catch(() => undefined);
  if (process.env.BENCH_KEEP) console.log(`kept database ${name}`);
  else await admin.query(`drop database if exists ${name} with (force)`);
  await admin.end();
}
