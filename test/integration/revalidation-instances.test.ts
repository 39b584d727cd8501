// Scheduled re-checks with several instances on one PostgreSQL database: every due subscription is checked
// exactly once, a dead instance's claims are taken over after the lease, and the per-store request budget holds
// across instances. Time is injected into the job; nothing sleeps waiting for a schedule.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeGooglePlay } from '../fakes/google-play.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { DAY, startGoogleApp, subscription, type GoogleTestApp } from '../support/google.js';
import { PgRunCoordinator } from '../../src/scheduler/scheduler.js';
import { TEST_API_KEY } from '../support/test-app.js';

const SUBSCRIPTIONS = 2000;
const MIN = 60_000;

describe('scheduled re-checks across instances (PostgreSQL)', () => {
  let db: TestDatabase;
  let fake: FakeGooglePlay;
  let a: GoogleTestApp;
  let b: GoogleTestApp;
  const tokens: string[] = [];
  const t0 = Date.now();
  const config = { GOOGLE_REQUESTS_PER_MINUTE: 1_000_000, RECHECK_BATCH_SIZE: 50, STORE_CONCURRENCY: 8, JOB_LEASE_SECONDS: 300 };

  beforeAll(async () => {
    db = await createTestDatabase('postgresql');
    fake = await FakeGooglePlay.start();
    a = await startGoogleApp('postgresql', { db, fake, config });
    b = await startGoogleApp('postgresql', { db, fake, config });
    for (let i = 0; i < SUBSCRIPTIONS; i++) {
      const tok = `multi-${i}`;
      tokens.push(tok);
      fake.setSubscription(tok, subscription('ACTIVE', { start: new Date(t0 - DAY), expiry: new Date(t0 + 30 * DAY), orderId: `GPA.m-${i}`, acknowledged: true }));
    }
    // Recorded through the same path as submitReceipt, 16 at a time.
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < tokens.length) {
          const i = next++;
          const res = await a.app.services.receipts.submit({
            appUserId: `multi-user-${i}`,
            proof: { store: 'PLAY_STORE', packageName: null, productId: 'pro_monthly', purchaseToken: tokens[i]!, originalJson: null, signature: null },
            orderId: null,
            now: new Date(t0),
          });
          if (res.status !== 'VERIFIED') throw new Error(`setup: ${res.status} ${res.message}`);
        }
      }),
    );
  }, 300_000);

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await fake?.close();
    await db?.drop();
  });

  const sql = (text: string, params: unknown[] = []) => a.app.orm.em.getConnection().execute(text, params) as Promise<Record<string, unknown>[]>;
  /** How many times each token was read from the fake since `from` (index into its call log). */
  const readsSince = (from: number) => {
    const counts = new Map<string, number>();
    for (const call of fake.calls.slice(from)) {
      const m = /\/subscriptionsv2\/tokens\/([^/:]+)$/.exec(call.path);
      if (m) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
    }
    return counts;
  };
  const makeAllDue = (at: Date) => sql(`update subscription set next_check_at = ?, check_attempts = 0`, [at]);

  it('two instances check 2,000 due subscriptions: none twice, none missed', async () => {
    const now = new Date(t0 + MIN);
    await makeAllDue(new Date(t0));
    const from = fake.calls.length;
    const runs = await Promise.all([a.app.services.revalidator.runDue(now), b.app.services.revalidator.runDue(now)]);
    const reads = readsSince(from);
    const twice = [...reads.values()].filter((n) => n > 1).length;
    const missed = tokens.filter((tok) => !reads.has(tok)).length;
    console.log(
      `re-checks across 2 instances: ${SUBSCRIPTIONS} due, instance A ${runs[0].answered.PLAY_STORE ?? 0}, instance B ${runs[1].answered.PLAY_STORE ?? 0}, twice ${twice}, missed ${missed}`,
    );
    expect({ twice, missed }).toEqual({ twice: 0, missed: 0 });
    expect((runs[0].answered.PLAY_STORE ?? 0) + (runs[1].answered.PLAY_STORE ?? 0)).toBe(SUBSCRIPTIONS);
    // Both took part, and nothing is left due.
    expect(runs[0].answered.PLAY_STORE).toBeGreaterThan(0);
    expect(runs[1].answered.PLAY_STORE).toBeGreaterThan(0);
    expect((await sql(`select count(*)::int as n from subscription where next_check_at <= ?`, [now]))[0]!.n).toBe(0);
  });

  it('an instance that dies after claiming a batch: the other checks its rows once the lease has passed', async () => {
    const now = new Date(t0 + 2 * DAY);
    await makeAllDue(new Date(t0 + 2 * DAY - MIN));
    const dying = await startGoogleApp('postgresql', { db, fake, config });
    const claimed = await dying.app.services.revalidator.claim('PLAY_STORE', now, 300);
    expect(claimed).toHaveLength(300);
    await dying.close(); // gone before checking anything
    const from = fake.calls.length;
    const first = await b.app.services.revalidator.runDue(now);
    expect(first.answered.PLAY_STORE).toBe(SUBSCRIPTIONS - 300);
    const afterLease = new Date(now.getTime() + 5 * MIN + 1);
    const second = await b.app.services.revalidator.runDue(afterLease);
    expect(second.answered.PLAY_STORE).toBe(300);
    const reads = readsSince(from);
    expect([...reads.values()].every((n) => n === 1)).toBe(true);
    expect(reads.size).toBe(SUBSCRIPTIONS);
  });

  it('runs each schedule slot on one instance only, and records what the run did', async () => {
    const coordinators = [new PgRunCoordinator(a.app.orm, 'instance-a'), new PgRunCoordinator(b.app.orm, 'instance-b')];
    const key = `revalidate-subscriptions:${new Date(t0).toISOString()}`;
    const elected = await Promise.all(Array.from({ length: 10 }, (_, i) => coordinators[i % 2]!.shouldRun(key)));
    expect(elected.filter(Boolean)).toHaveLength(1);
    const winner = coordinators[elected.indexOf(true) % 2]!;
    winner.setOutcome(key, JSON.stringify({ answered: { PLAY_STORE: 3 } }));
    await winner.onComplete(key);
    const rows = await sql(`select job, instance, finished_at, outcome from job_run where key = ?`, [key]);
    expect(rows).toMatchObject([{ job: 'revalidate-subscriptions', instance: winner.instance, outcome: '{"answered":{"PLAY_STORE":3}}' }]);
    expect(rows[0]!.finished_at).not.toBeNull();
  });

  it('pauses a store that keeps failing, and shows it in schedulerStatus and the metrics', async () => {
    const now = new Date(t0 + 5 * DAY);
    await sql(`delete from store_budget`);
    await makeAllDue(new Date(t0 + 40 * DAY));
    await sql(`update subscription set next_check_at = ? where lineage_id in (select lineage_id from subscription order by lineage_id limit 100)`, [new Date(now.getTime() - MIN)]);
    fake.failRandomly({ rate: 1, hangMs: 0, random: () => 0 }); // Google answers 500 to everything
    const failing = await a.app.services.revalidator.runDue(now);
    fake.failRandomly(null);
    // It stopped after a handful of failures in a row (plus the calls already in flight), not after 100.
    expect(failing.failed.PLAY_STORE).toBeLessThanOrEqual(5 + 8);
    expect(failing.failed.PLAY_STORE).toBeGreaterThanOrEqual(5);
    expect(failing.answered.PLAY_STORE ?? 0).toBe(0);
    // Only the first batch was claimed; its unchecked rest waits for the pause like the rows never claimed.
    expect((failing.failed.PLAY_STORE ?? 0) + (failing.deferred.PLAY_STORE ?? 0)).toBe(50);

    const status = await a.server(`{ schedulerStatus { stores { store due consecutiveFailures pausedUntil requestsPerMinute } jobs { job } } }`);
    const store = (status.data!.schedulerStatus.stores as Record<string, unknown>[]).find((s) => s.store === 'PLAY_STORE')!;
    expect(store).toMatchObject({ consecutiveFailures: failing.failed.PLAY_STORE, requestsPerMinute: 1_000_000 });
    expect(Date.parse(store.pausedUntil as string)).toBeGreaterThan(now.getTime());
    // The gauges read the backlog at scrape time (real time): make these rows due now.
    await sql(`update subscription set next_check_at = now() - interval '1 minute' where lineage_id in (select lineage_id from subscription order by lineage_id limit 100)`);
    const metrics = await (await fetch(a.url.replace('/graphql', '/metrics'), { headers: { authorization: `Bearer ${TEST_API_KEY}` } })).text();
    expect(metrics).toMatch(/iap_recheck_total\{store="PLAY_STORE",outcome="failed"\} [1-9]/);
    expect(metrics).toMatch(/iap_recheck_due\{store="PLAY_STORE"\} 100\b/);
    expect(metrics).toMatch(/iap_recheck_lag_seconds\{store="PLAY_STORE"\} (6\d|[7-9]\d|\d{3,})(\.\d+)?\b/);
    // Another instance respects the pause too.
    expect((await b.app.services.revalidator.runDue(new Date(now.getTime() + 1000))).answered.PLAY_STORE ?? 0).toBe(0);
    const resumed = await b.app.services.revalidator.runDue(new Date(Date.parse(store.pausedUntil as string) + 2 * MIN));
    expect(resumed.answered.PLAY_STORE).toBe(100);
    expect((await sql(`select consecutive_failures, paused_until from store_budget where store = 'PLAY_STORE'`))[0]).toMatchObject({ consecutive_failures: 0, paused_until: null });
  });

  it('a scheduled run waits for the budget to refill while work is due, instead of leaving it to the next slot', async () => {
    const limited = await startGoogleApp('postgresql', { db, fake, config: { ...config, GOOGLE_REQUESTS_PER_MINUTE: 600 } });
    try {
      await sql(`delete from store_budget`);
      await makeAllDue(new Date(Date.now() + 40 * DAY));
      await sql(`update subscription set next_check_at = now() - interval '1 minute' where lineage_id in (select lineage_id from subscription order by lineage_id limit 100)`);
      // A burst of 60, then 9 a second: 100 take about 4.5 s of waiting.
      const started = performance.now();
      const run = await limited.app.services.revalidator.runDue(new Date(), { waitForBudgetMs: 20_000 });
      const seconds = (performance.now() - started) / 1000;
      expect(run.answered.PLAY_STORE).toBe(100);
      expect(seconds).toBeGreaterThan(3.5);
      // Without waiting, the same backlog gets one burst.
      await sql(`delete from store_budget`);
      await sql(`update subscription set next_check_at = now() - interval '1 minute' where lineage_id in (select lineage_id from subscription order by lineage_id limit 100)`);
      const burst = await limited.app.services.revalidator.runDue(new Date());
      expect(burst.answered.PLAY_STORE).toBeGreaterThanOrEqual(60);
      expect(burst.answered.PLAY_STORE).toBeLessThanOrEqual(65); // plus what refilled during the run's milliseconds
      expect(burst.deferred.PLAY_STORE).toBe(100 - burst.answered.PLAY_STORE!);
    } finally {
      await limited.close();
    }
  });

  it('a backlog of 1,000 with a budget of 600 per minute takes the expected time and never exceeds 600 in any minute', async () => {
    const limited = await startGoogleApp('postgresql', { db, fake, config: { ...config, GOOGLE_REQUESTS_PER_MINUTE: 600, RECHECK_BATCH_SIZE: 200 } });
    const other = await startGoogleApp('postgresql', { db, fake, config: { ...config, GOOGLE_REQUESTS_PER_MINUTE: 600, RECHECK_BATCH_SIZE: 200 } });
    try {
      const start = t0 + 10 * DAY;
      await sql(`delete from store_budget`);
      await makeAllDue(new Date(t0 + 40 * DAY)); // nothing due...
      await sql(`update subscription set next_check_at = ? where lineage_id in (select lineage_id from subscription order by lineage_id limit 1000)`, [new Date(start)]);
      // ...but these 1,000. Both instances run the job every 5 s of injected time.
      const perStep: { at: number; checked: number }[] = [];
      let at = start;
      let left = 1000;
      while (left > 0 && at < start + 10 * MIN) {
        const runs = await Promise.all([limited.app.services.revalidator.runDue(new Date(at)), other.app.services.revalidator.runDue(new Date(at))]);
        const checked = runs.reduce((n, r) => n + (r.answered.PLAY_STORE ?? 0), 0);
        perStep.push({ at, checked });
        left -= checked;
        at += 5_000;
      }
      const finishedAfterMs = perStep.filter((s) => s.checked > 0).at(-1)!.at - start;
      let busiestMinute = 0;
      for (const s of perStep) {
        busiestMinute = Math.max(busiestMinute, perStep.filter((x) => x.at >= s.at && x.at < s.at + MIN).reduce((n, x) => n + x.checked, 0));
      }
      // A tenth of the budget at once, then nine tenths per minute: (1000 - 60) / 540 per minute = 104 s.
      console.log(`rate limit: 1000 due at 600/min over 2 instances, done after ${finishedAfterMs / 1000} s of injected time, busiest minute ${busiestMinute}`);
      expect(left).toBe(0);
      expect(busiestMinute).toBeLessThanOrEqual(600);
      expect(finishedAfterMs).toBeGreaterThanOrEqual(100_000);
      expect(finishedAfterMs).toBeLessThanOrEqual(110_000);
    } finally {
      await limited.close();
      await other.close();
    }
  });
});
