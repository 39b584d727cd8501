// Scheduled re-validation: with store notifications off, the re-check job alone finds renewals, lapses into
// grace and hold, pauses and resumes, expiries and refunds, at the times the next-check rule picks. Time is
// injected: the test moves the clock to each subscription's next check and runs the job, never sleeping.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MONTHLY, startAppleApp, submitApple, type AppleTestApp } from '../support/apple.js';
import { DATABASE_KINDS } from '../support/databases.js';
import { DAY, startGoogleApp, submitGoogle, subscription, type GoogleTestApp } from '../support/google.js';
import type { TestApp } from '../support/test-app.js';

type Row = Record<string, unknown>;
const MIN = 60_000;

async function subscriptionRow(t: TestApp, store: string, lineageId: string) {
  const rows = (await t.app.orm.em
    .getConnection()
    .execute(`select state, expires_at, next_check_at, check_attempts from subscription where store = ? and lineage_id = ?`, [store, lineageId])) as Row[];
  const r = rows[0]!;
  return {
    state: r.state as string,
    expiresAt: r.expires_at ? new Date(r.expires_at as string) : null,
    nextCheckAt: r.next_check_at ? new Date(r.next_check_at as string) : null,
    checkAttempts: Number(r.check_attempts),
  };
}

async function eventTypes(t: TestApp, appUserId: string): Promise<string[]> {
  const rows = (await t.app.orm.em
    .getConnection()
    .execute(`select e.type from event e join customer c on c.id = e.customer_id where c.app_user_id = ? order by e.id`, [appUserId])) as Row[];
  return rows.map((r) => r.type as string);
}

async function lineageOf(t: TestApp, appUserId: string): Promise<string> {
  const rows = (await t.app.orm.em
    .getConnection()
    .execute(`select s.lineage_id from subscription s join customer c on c.id = s.customer_id where c.app_user_id = ?`, [appUserId])) as Row[];
  return rows[0]!.lineage_id as string;
}

describe.each(DATABASE_KINDS)('re-validation alone finds every change on Google Play (%s)', (kind) => {
  let t: GoogleTestApp;
  let nowMs = Date.now();
  const clock = () => new Date(nowMs);
  beforeAll(async () => {
    t = await startGoogleApp(kind, { clock });
  });
  afterAll(async () => {
    await t?.close();
  });

  /** Moves the clock to the subscription's next check and runs the job once. */
  async function checkWhenDue(lineageId: string) {
    const before = await subscriptionRow(t, 'PLAY_STORE', lineageId);
    expect(before.nextCheckAt).not.toBeNull();
    nowMs = Math.max(nowMs, before.nextCheckAt!.getTime());
    const run = await t.app.services.revalidator.runDue(clock());
    expect(run.answered).toEqual({ PLAY_STORE: 1 });
    return subscriptionRow(t, 'PLAY_STORE', lineageId);
  }

  it('renewal, grace, hold, pause, resume and expiry, each at its next check', async () => {
    const user = `reval-google-${kind}`;
    const tok = `reval-tok-${kind}`;
    const t0 = nowMs;
    const e1 = new Date(t0 + 30 * DAY);
    t.fake.setSubscription(tok, subscription('ACTIVE', { start: new Date(t0 - DAY), expiry: e1, orderId: `GPA.r-${kind}`, acknowledged: true }));
    expect((await submitGoogle(t, user, 'pro_monthly', tok)).status).toBe('VERIFIED');
    const lineage = await lineageOf(t, user);
    // Checked shortly after the period ends, not before (nothing can change but a refund, which the sweep finds).
    expect((await subscriptionRow(t, 'PLAY_STORE', lineage)).nextCheckAt).toEqual(new Date(Math.min(e1.getTime() + 10 * MIN, t0 + DAY)));
    nowMs = e1.getTime() - DAY + 20 * MIN; // the sweeps until then change nothing
    while ((await subscriptionRow(t, 'PLAY_STORE', lineage)).nextCheckAt!.getTime() < e1.getTime()) await checkWhenDue(lineage);
    expect(await subscriptionRow(t, 'PLAY_STORE', lineage)).toMatchObject({ state: 'ACTIVE', nextCheckAt: new Date(e1.getTime() + 10 * MIN) });

    const e2 = new Date(e1.getTime() + 30 * DAY);
    t.fake.setSubscription(tok, subscription('ACTIVE', { start: new Date(t0 - DAY), expiry: e2, orderId: `GPA.r-${kind}..0`, acknowledged: true }));
    expect(await checkWhenDue(lineage)).toMatchObject({ state: 'ACTIVE', expiresAt: e2, checkAttempts: 0 });
    expect((await eventTypes(t, user)).at(-1)).toBe('RENEWAL');

    // Payment fails at the next renewal: grace (checked hourly), then hold.
    nowMs = e2.getTime() - DAY + 20 * MIN;
    while ((await subscriptionRow(t, 'PLAY_STORE', lineage)).nextCheckAt!.getTime() < e2.getTime()) await checkWhenDue(lineage);
    t.fake.setSubscription(tok, subscription('IN_GRACE_PERIOD', { start: new Date(t0 - DAY), expiry: new Date(e2.getTime() + 3 * DAY), orderId: `GPA.r-${kind}..0`, acknowledged: true }));
    const grace = await checkWhenDue(lineage);
    expect(grace.state).toBe('GRACE');
    // An hour later (time moves on by the run's own few milliseconds).
    expect(grace.nextCheckAt!.getTime() - nowMs).toBeGreaterThanOrEqual(60 * MIN);
    expect(grace.nextCheckAt!.getTime() - nowMs).toBeLessThan(60 * MIN + 5_000);
    expect((await eventTypes(t, user)).at(-1)).toBe('GRACE_PERIOD');

    t.fake.setSubscription(tok, subscription('ON_HOLD', { start: new Date(t0 - DAY), expiry: new Date(nowMs - MIN), orderId: `GPA.r-${kind}..0`, acknowledged: true }));
    expect(await checkWhenDue(lineage)).toMatchObject({ state: 'ON_HOLD' });
    expect((await eventTypes(t, user)).at(-1)).toBe('ON_HOLD');

    // The customer pauses (after recovering); the check falls on the resume time (or the daily sweep before it).
    const resumeAt = new Date(nowMs + 2 * 60 * MIN + 30 * MIN);
    t.fake.setSubscription(tok, subscription('PAUSED', { start: new Date(t0 - DAY), expiry: new Date(nowMs - MIN), orderId: `GPA.r-${kind}..1`, autoResumeTime: resumeAt, acknowledged: true }));
    const paused = await checkWhenDue(lineage);
    expect(paused.state).toBe('PAUSED');
    expect(paused.nextCheckAt).toEqual(new Date(resumeAt.getTime() + 10 * MIN));
    expect((await eventTypes(t, user)).at(-1)).toBe('PAUSE');

    const e3 = new Date(resumeAt.getTime() + 30 * DAY);
    t.fake.setSubscription(tok, subscription('ACTIVE', { start: new Date(t0 - DAY), expiry: e3, orderId: `GPA.r-${kind}..2`, acknowledged: true }));
    expect(await checkWhenDue(lineage)).toMatchObject({ state: 'ACTIVE', expiresAt: e3 });
    expect((await eventTypes(t, user)).at(-1)).toBe('RESUME');

    // Canceled and lapsed: expired, and never checked again.
    t.fake.setSubscription(tok, subscription('EXPIRED', { start: new Date(t0 - DAY), expiry: new Date(nowMs - MIN), orderId: `GPA.r-${kind}..2`, autoRenew: false, canceled: 'user', acknowledged: true }));
    nowMs += DAY;
    expect(await checkWhenDue(lineage)).toMatchObject({ state: 'EXPIRED', nextCheckAt: null });
    expect((await eventTypes(t, user)).at(-1)).toBe('EXPIRATION');
  });

  it('retries a store outage with backoff and keeps the subscription due', async () => {
    const user = `reval-outage-${kind}`;
    const tok = `reval-outage-tok-${kind}`;
    t.fake.setSubscription(tok, subscription('ACTIVE', { start: new Date(nowMs - DAY), expiry: new Date(nowMs + 2 * 60 * MIN), orderId: `GPA.o-${kind}`, acknowledged: true }));
    await submitGoogle(t, user, 'pro_monthly', tok);
    const lineage = await lineageOf(t, user);
    nowMs = (await subscriptionRow(t, 'PLAY_STORE', lineage)).nextCheckAt!.getTime();
    t.fake.failNext({ status: 503 }, { pathIncludes: tok });
    const run = await t.app.services.revalidator.runDue(clock());
    expect(run.failed).toEqual({ PLAY_STORE: 1 });
    const after = await subscriptionRow(t, 'PLAY_STORE', lineage);
    expect(after.checkAttempts).toBe(1);
    // 1 minute ±50% (the retry backoff), well before the lease would end.
    expect(after.nextCheckAt!.getTime() - nowMs).toBeGreaterThanOrEqual(30_000);
    expect(after.nextCheckAt!.getTime() - nowMs).toBeLessThan(90_000);
    nowMs = after.nextCheckAt!.getTime();
    expect((await t.app.services.revalidator.runDue(clock())).answered).toEqual({ PLAY_STORE: 1 });
    expect((await subscriptionRow(t, 'PLAY_STORE', lineage)).checkAttempts).toBe(0);
  });
});

describe.each(DATABASE_KINDS)('re-validation alone finds every change on the App Store (%s)', (kind) => {
  let t: AppleTestApp;
  let legacy: AppleTestApp;
  let nowMs = Date.now();
  const clock = () => new Date(nowMs);
  beforeAll(async () => {
    t = await startAppleApp(kind, { clock });
    legacy = await startAppleApp(kind, { clock, api: false });
  });
  afterAll(async () => {
    await t?.close();
    await legacy?.close();
  });

  async function checkWhenDue(app: AppleTestApp, lineageId: string) {
    const before = await subscriptionRow(app, 'APP_STORE', lineageId);
    expect(before.nextCheckAt).not.toBeNull();
    nowMs = Math.max(nowMs, before.nextCheckAt!.getTime());
    const run = await app.app.services.revalidator.runDue(clock());
    expect(run.answered).toEqual({ APP_STORE: 1 });
    return subscriptionRow(app, 'APP_STORE', lineageId);
  }

  it('renewal, billing retry with grace, recovery and refund through the App Store Server API', async () => {
    const user = `reval-apple-${kind}`;
    const tx = t.fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription', account: user });
    await submitApple(t, user, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
    const lineage = tx.originalTransactionId;
    const e1 = (await subscriptionRow(t, 'APP_STORE', lineage)).expiresAt!;
    nowMs = e1.getTime() - DAY + 20 * MIN;
    while ((await subscriptionRow(t, 'APP_STORE', lineage)).nextCheckAt!.getTime() < e1.getTime()) await checkWhenDue(t, lineage);

    t.fake.renew(lineage);
    const renewed = await checkWhenDue(t, lineage);
    expect(renewed.state).toBe('ACTIVE');
    expect(renewed.expiresAt!.getTime()).toBeGreaterThan(e1.getTime());
    expect((await eventTypes(t, user)).at(-1)).toBe('RENEWAL');

    const e2 = renewed.expiresAt!;
    nowMs = e2.getTime() - DAY + 20 * MIN;
    while ((await subscriptionRow(t, 'APP_STORE', lineage)).nextCheckAt!.getTime() < e2.getTime()) await checkWhenDue(t, lineage);
    t.fake.failToRenew(lineage, { graceMs: 6 * DAY });
    expect(await checkWhenDue(t, lineage)).toMatchObject({ state: 'GRACE' });
    expect(await eventTypes(t, user)).toContain('GRACE_PERIOD');

    t.fake.recover(lineage);
    expect(await checkWhenDue(t, lineage)).toMatchObject({ state: 'ACTIVE' });
    expect((await eventTypes(t, user)).at(-1)).toBe('BILLING_RECOVERY');

    // Refunds have no due time: the daily sweep finds them.
    const latest = t.fake.lineage(lineage)!.transactions.at(-1)!;
    t.fake.refund(latest.transactionId);
    const refunded = await checkWhenDue(t, lineage);
    expect(refunded).toMatchObject({ state: 'REVOKED', nextCheckAt: null });
    expect((await eventTypes(t, user)).at(-1)).toBe('REFUND');
  });

  it('expiry after the customer turned auto-renew off', async () => {
    const user = `reval-apple-expiry-${kind}`;
    const tx = t.fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription', account: user });
    await submitApple(t, user, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
    const lineage = tx.originalTransactionId;
    t.fake.setAutoRenew(lineage, false);
    const e1 = (await subscriptionRow(t, 'APP_STORE', lineage)).expiresAt!;
    nowMs = e1.getTime() - DAY + 20 * MIN;
    while ((await subscriptionRow(t, 'APP_STORE', lineage)).nextCheckAt!.getTime() < e1.getTime()) await checkWhenDue(t, lineage);
    expect(await subscriptionRow(t, 'APP_STORE', lineage)).toMatchObject({ state: 'CANCELED' });
    t.fake.expire(lineage, 1);
    expect(await checkWhenDue(t, lineage)).toMatchObject({ state: 'EXPIRED', nextCheckAt: null });
    expect((await eventTypes(t, user)).at(-1)).toBe('EXPIRATION');
  });

  it('re-checks a legacy receipt subscription with verifyReceipt when no API key is configured', async () => {
    const user = `reval-legacy-${kind}`;
    const tx = legacy.fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription', account: user, environment: 'Production' });
    const receipt = legacy.fake.appReceipt({ account: user, environment: 'Production' });
    expect((await submitApple(legacy, user, { appReceipt: receipt, transactionId: tx.transactionId })).status).toBe('VERIFIED');
    const lineage = tx.originalTransactionId;
    const e1 = (await subscriptionRow(legacy, 'APP_STORE', lineage)).expiresAt!;
    nowMs = Math.max(nowMs, e1.getTime() - DAY + 20 * MIN);
    while ((await subscriptionRow(legacy, 'APP_STORE', lineage)).nextCheckAt!.getTime() < e1.getTime()) await checkWhenDue(legacy, lineage);
    legacy.fake.renew(lineage);
    const renewed = await checkWhenDue(legacy, lineage);
    expect(renewed.expiresAt!.getTime()).toBeGreaterThan(e1.getTime());
    expect((await eventTypes(legacy, user)).at(-1)).toBe('RENEWAL');
  });
});
