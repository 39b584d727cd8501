// Outbound webhooks end to end: real purchases through GraphQL (the fake Play Developer API behind them), the
// outbox written with each event, signed POSTs to a real receiver on loopback, retries with backoff, order per
// customer, giving up after 48 hours, manual retry, the delivery log, and delivery after a restart.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, DATABASE_KINDS, type DatabaseKind, type TestDatabase } from '../support/databases.js';
import { eventually, PACKAGE, startGoogleApp, submitGoogle, type GoogleTestApp } from '../support/google.js';
import { TEST_API_KEY, TEST_JWT_SECRET } from '../support/test-app.js';
import { verifySignature, WebhookReceiver, type ReceivedWebhook } from '../support/webhook-receiver.js';

const SECRET = 'webhook-test-secret-0123456789abcdefghij';
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const SPEND = `mutation($input: SpendCreditsInput!) { spendCredits(input: $input) { balance } }`;
const LOG = `query($status: WebhookDeliveryStatus, $appUserId: String, $eventId: String, $limit: Int, $before: String) {
  webhookDeliveries(status: $status, appUserId: $appUserId, eventId: $eventId, limit: $limit, before: $before) {
    id eventId eventType appUserId url status attempts lastAttemptAt nextAttemptAt responseStatus lastError deliveredAt createdAt
  }
}`;
const RETRY = `mutation($id: ID!) { retryWebhookDelivery(id: $id) { id eventId status attempts nextAttemptAt } }`;

interface LogEntry {
  id: string;
  eventId: string;
  eventType: string;
  appUserId: string | null;
  url: string;
  status: 'PENDING' | 'DELIVERED' | 'FAILED';
  attempts: number;
  lastAttemptAt: string | null;
  nextAttemptAt: string | null;
  responseStatus: number | null;
  lastError: string | null;
  deliveredAt: string | null;
  createdAt: string;
}

const webhookConfig = (receiver: WebhookReceiver) => ({ WEBHOOK_URLS: receiver.url, WEBHOOK_SECRET: SECRET, WEBHOOK_TIMEOUT_MS: 400 });

let purchases = 0;

/** Buys 100 coins on Google Play for the user through submitReceipt: one CONSUMABLE_CREDIT event. */
async function buyCoins(t: GoogleTestApp, appUserId: string): Promise<void> {
  const token = `coins-${appUserId}-${++purchases}`;
  t.fake.setProduct(token, {
    packageName: PACKAGE,
    productId: 'coins_100',
    purchaseState: 0,
    orderId: `GPA.${appUserId}.${purchases}`,
    purchaseTimeMillis: String(Date.now() - MINUTE),
    quantity: 1,
  });
  const outcome = await submitGoogle(t, appUserId, 'coins_100', token);
  expect(outcome.status).toBe('VERIFIED');
}

/** Spends coins through GraphQL: one CREDIT_SPEND event. */
async function spend(t: GoogleTestApp, appUserId: string, amount: number, key: string): Promise<void> {
  const res = await t.server(SPEND, { input: { appUserId, currency: 'coins', amount, idempotencyKey: key } });
  expect(res.errors).toBeUndefined();
}

async function deliveryLog(t: GoogleTestApp, variables: Record<string, unknown>): Promise<LogEntry[]> {
  const res = await t.server<{ webhookDeliveries: LogEntry[] }>(LOG, variables);
  expect(res.errors).toBeUndefined();
  return res.data!.webhookDeliveries;
}

/** The user's deliveries, oldest first. */
const logOf = async (t: GoogleTestApp, appUserId: string) => (await deliveryLog(t, { appUserId, limit: 200 })).reverse();

const signedCorrectly = (r: ReceivedWebhook, secret = SECRET) => verifySignature(r.headers['x-iap-signature'], r.rawBody, secret, Math.floor(Date.now() / 1000));

async function metric(t: GoogleTestApp, outcome: string): Promise<number> {
  const text = await (await fetch(t.url.replace('/graphql', '/metrics'), { headers: { authorization: `Bearer ${TEST_API_KEY}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(`iap_webhook_deliveries_total{outcome="${outcome}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe.each(DATABASE_KINDS)('webhooks on %s', (kind) => {
  let receiver: WebhookReceiver;
  let t: GoogleTestApp;
  let users = 0;
  const user = (label: string) => `${label}-${kind}-${++users}`;
  /** Background sends started by the commits of a request are finished. */
  const settled = () => t.app.services.webhooks.idle();
  const deliverAt = async (offsetMs: number) => {
    await settled();
    return t.app.services.webhooks.deliverDue(new Date(Date.now() + offsetMs));
  };

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    t = await startGoogleApp(kind, { config: webhookConfig(receiver) });
  });
  afterEach(async () => {
    await t?.app.services.webhooks.idle();
    receiver.respond = () => 200;
  });
  afterAll(async () => {
    await t?.close();
    await receiver?.stop();
  });

  it('delivers every event once, signed, in order, with a stable id and the event in the body', async () => {
    const ana = user('ana');
    await buyCoins(t, ana);
    await spend(t, ana, 30, 'sword');
    const got = await eventually(() => (receiver.of(ana).length >= 2 ? receiver.of(ana) : null));
    await settled();
    expect(got!.map((r) => r.payload.type)).toEqual(['CONSUMABLE_CREDIT', 'CREDIT_SPEND']);
    for (const r of got!) {
      expect(signedCorrectly(r)).toBe(true);
      // The check could fail: the same request does not verify with another secret or a changed body.
      expect(signedCorrectly(r, `${SECRET}-other`)).toBe(false);
      expect(verifySignature(r.headers['x-iap-signature'], r.rawBody.replace('coins', 'gems'), SECRET, Math.floor(Date.now() / 1000))).toBe(false);
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['x-iap-event-id']).toBe(r.payload.id);
      expect(r.headers['x-iap-delivery-attempt']).toBe('1');
      expect(r.payload.id).toMatch(/^evt_\d+$/);
    }
    const [credit, spent] = got!;
    expect(Number(spent!.payload.id.slice(4))).toBeGreaterThan(Number(credit!.payload.id.slice(4)));
    expect(credit!.payload).toMatchObject({
      type: 'CONSUMABLE_CREDIT',
      appUserId: ana,
      store: 'PLAY_STORE',
      environment: 'PRODUCTION',
      productId: 'coins_100',
      data: expect.any(Object),
    });
    expect(credit!.payload.transactionId).toMatch(/^GPA\./);
    expect(credit!.payload.originalTransactionId).toEqual(expect.any(String));
    expect(Date.parse(credit!.payload.occurredAt)).toBeGreaterThan(0);
    expect(Date.parse(credit!.payload.recordedAt)).toBeGreaterThan(0);
    expect(spent!.payload).toMatchObject({ type: 'CREDIT_SPEND', appUserId: ana, store: null, productId: null, data: { currency: 'coins', amount: 30, balance: 70 } });

    const log = await logOf(t, ana);
    expect(log.map((d) => [d.eventId, d.eventType, d.status, d.attempts, d.responseStatus])).toEqual([
      [credit!.payload.id, 'CONSUMABLE_CREDIT', 'DELIVERED', 1, 200],
      [spent!.payload.id, 'CREDIT_SPEND', 'DELIVERED', 1, 200],
    ]);
    expect(log[0]).toMatchObject({ url: receiver.url, appUserId: ana, lastError: null, nextAttemptAt: null });
    expect(log[0]!.deliveredAt).not.toBeNull();
    // A replayed spend appends no event, so nothing more is sent.
    await spend(t, ana, 30, 'sword');
    await settled();
    expect(receiver.of(ana)).toHaveLength(2);
  });

  it('retries a failing receiver (500, then a timeout) with the same id and body until it answers 2xx', async () => {
    const ben = user('ben');
    const script = [500, 'hang', 200] as const;
    let calls = 0;
    receiver.respond = (p) => (p.appUserId === ben ? script[Math.min(calls++, script.length - 1)]! : 200);
    const before = { retried: await metric(t, 'retried'), delivered: await metric(t, 'delivered') };

    await buyCoins(t, ben);
    await settled();
    let [d] = await logOf(t, ben);
    const firstTry = Date.now();
    expect(d).toMatchObject({ status: 'PENDING', attempts: 1, responseStatus: 500 });
    expect(d!.lastError).toContain('HTTP 500');
    // First wait: 30 s with ±25% jitter.
    const wait = Date.parse(d!.nextAttemptAt!) - firstTry;
    expect(wait).toBeGreaterThan(20_000);
    expect(wait).toBeLessThan(40_000);
    // Not due yet: a run now sends nothing.
    expect(await deliverAt(0)).toEqual({ delivered: 0, retried: 0, failed: 0 });
    expect(receiver.of(ben)).toHaveLength(1);

    expect(await deliverAt(MINUTE)).toEqual({ delivered: 0, retried: 1, failed: 0 });
    [d] = await logOf(t, ben);
    expect(d).toMatchObject({ status: 'PENDING', attempts: 2, responseStatus: null });
    expect(d!.lastError).toContain('no answer within 400 ms');

    expect(await deliverAt(30 * MINUTE)).toEqual({ delivered: 1, retried: 0, failed: 0 });
    [d] = await logOf(t, ben);
    expect(d).toMatchObject({ status: 'DELIVERED', attempts: 3, responseStatus: 200, lastError: null });

    const got = receiver.of(ben);
    expect(got.map((r) => r.answer)).toEqual([500, 'hang', 200]);
    expect(got.map((r) => r.headers['x-iap-delivery-attempt'])).toEqual(['1', '2', '3']);
    expect(new Set(got.map((r) => r.headers['x-iap-event-id']))).toEqual(new Set([d!.eventId]));
    expect(new Set(got.map((r) => r.rawBody)).size).toBe(1);
    for (const r of got) expect(signedCorrectly(r)).toBe(true);
    expect(await metric(t, 'retried')).toBe(before.retried + 2);
    expect(await metric(t, 'delivered')).toBe(before.delivered + 1);
  });

  it("keeps a customer's order while an earlier delivery fails, without blocking other customers", async () => {
    const cara = user('cara');
    const dan = user('dan');
    let caraDown = true;
    receiver.respond = (p) => (p.appUserId === cara && caraDown ? 503 : 200);

    await buyCoins(t, cara);
    await spend(t, cara, 10, 'potion');
    await buyCoins(t, dan);
    await spend(t, dan, 10, 'potion');
    await settled();
    // Dan's events went through; Cara's second event waits behind her first.
    expect(receiver.of(dan).map((r) => r.payload.type)).toEqual(['CONSUMABLE_CREDIT', 'CREDIT_SPEND']);
    expect(receiver.of(cara).map((r) => r.payload.type)).toEqual(['CONSUMABLE_CREDIT']);
    expect(await deliverAt(MINUTE)).toMatchObject({ retried: 1, delivered: 0 });
    expect(receiver.of(cara).map((r) => r.payload.type)).toEqual(['CONSUMABLE_CREDIT', 'CONSUMABLE_CREDIT']);
    const waiting = await logOf(t, cara);
    expect(waiting.map((d) => [d.eventType, d.status, d.attempts])).toEqual([
      ['CONSUMABLE_CREDIT', 'PENDING', 2],
      ['CREDIT_SPEND', 'PENDING', 0],
    ]);

    caraDown = false;
    // One run sends the head, then the delivery it freed.
    expect(await deliverAt(30 * MINUTE)).toMatchObject({ delivered: 2, retried: 0 });
    const got = receiver.of(cara);
    expect(got.map((r) => [r.payload.type, r.answer])).toEqual([
      ['CONSUMABLE_CREDIT', 503],
      ['CONSUMABLE_CREDIT', 503],
      ['CONSUMABLE_CREDIT', 200],
      ['CREDIT_SPEND', 200],
    ]);
    expect((await logOf(t, cara)).map((d) => d.status)).toEqual(['DELIVERED', 'DELIVERED']);
  });

  it('gives up after 48 hours: the delivery is FAILED and the next one of the customer proceeds', async () => {
    const eve = user('eve');
    receiver.respond = (p) => (p.appUserId === eve && p.type === 'CONSUMABLE_CREDIT' ? 500 : 200);
    const failedBefore = await metric(t, 'failed');
    await buyCoins(t, eve);
    await spend(t, eve, 5, 'hat');
    await settled();
    const [first] = await logOf(t, eve);

    // Just before 48 hours it is still retried, and the last retry falls on the 48-hour mark itself.
    expect(await deliverAt(48 * HOUR - 30_000)).toMatchObject({ retried: 1, failed: 0 });
    let log = await logOf(t, eve);
    expect(log.map((d) => d.status)).toEqual(['PENDING', 'PENDING']);
    expect(Date.parse(log[0]!.nextAttemptAt!)).toBe(Date.parse(first!.createdAt) + 48 * HOUR);
    expect(receiver.of(eve).map((r) => r.payload.type)).toEqual(['CONSUMABLE_CREDIT', 'CONSUMABLE_CREDIT']);

    expect(await deliverAt(49 * HOUR)).toMatchObject({ failed: 1, delivered: 1 });
    log = await logOf(t, eve);
    expect(log.map((d) => [d.eventType, d.status])).toEqual([
      ['CONSUMABLE_CREDIT', 'FAILED'],
      ['CREDIT_SPEND', 'DELIVERED'],
    ]);
    expect(log[0]).toMatchObject({ attempts: 3, responseStatus: 500, nextAttemptAt: null, deliveredAt: null });
    expect(receiver.of(eve).map((r) => r.payload.type)).toEqual(['CONSUMABLE_CREDIT', 'CONSUMABLE_CREDIT', 'CONSUMABLE_CREDIT', 'CREDIT_SPEND']);
    expect(await metric(t, 'failed')).toBe(failedBefore + 1);
    expect((await deliveryLog(t, { status: 'FAILED', limit: 200 })).map((d) => d.id)).toContain(log[0]!.id);
  });

  it('retryWebhookDelivery sends a FAILED delivery again, with the same event id', async () => {
    const fay = user('fay');
    let down = true;
    receiver.respond = (p) => (p.appUserId === fay && down ? 500 : 200);
    await buyCoins(t, fay);
    await deliverAt(49 * HOUR);
    const [failed] = await logOf(t, fay);
    expect(failed).toMatchObject({ status: 'FAILED', attempts: 2 });

    down = false;
    const res = await t.server(RETRY, { id: failed!.id });
    expect(res.errors).toBeUndefined();
    expect(res.data!.retryWebhookDelivery).toMatchObject({ id: failed!.id, eventId: failed!.eventId, status: 'PENDING' });
    await eventually(async () => (await logOf(t, fay))[0]!.status === 'DELIVERED');
    expect((await logOf(t, fay))[0]).toMatchObject({ status: 'DELIVERED', attempts: 3, responseStatus: 200 });
    const got = receiver.of(fay);
    expect(got.map((r) => r.answer)).toEqual([500, 500, 200]);
    expect(new Set(got.map((r) => r.payload.id))).toEqual(new Set([failed!.eventId]));
    expect(signedCorrectly(got.at(-1)!)).toBe(true);

    const again = await t.server(RETRY, { id: failed!.id });
    expect(again.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const unknown = await t.server(RETRY, { id: '999999999' });
    expect(unknown.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('serves the delivery log with filters and paging, to server keys only', async () => {
    const gus = user('gus');
    await buyCoins(t, gus);
    await spend(t, gus, 1, 'a');
    await spend(t, gus, 2, 'b');
    await settled();
    const all = await deliveryLog(t, { appUserId: gus });
    expect(all.map((d) => d.eventType)).toEqual(['CREDIT_SPEND', 'CREDIT_SPEND', 'CONSUMABLE_CREDIT']);
    expect(all.every((d) => d.appUserId === gus && d.status === 'DELIVERED')).toBe(true);
    expect(Number(all[0]!.id)).toBeGreaterThan(Number(all[1]!.id));

    const page1 = await deliveryLog(t, { appUserId: gus, limit: 2 });
    const page2 = await deliveryLog(t, { appUserId: gus, limit: 2, before: page1.at(-1)!.id });
    expect([...page1, ...page2].map((d) => d.id)).toEqual(all.map((d) => d.id));
    expect(await deliveryLog(t, { eventId: all[2]!.eventId })).toMatchObject([{ id: all[2]!.id, eventType: 'CONSUMABLE_CREDIT' }]);
    expect(await deliveryLog(t, { appUserId: gus, status: 'FAILED' })).toEqual([]);
    expect(await deliveryLog(t, { appUserId: 'nobody-at-all' })).toEqual([]);

    const bad = await t.server(LOG, { eventId: '42' });
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const tooMany = await t.server(LOG, { limit: 500 });
    expect(tooMany.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(gus).setExpirationTime('5m').sign(new TextEncoder().encode(TEST_JWT_SECRET));
    const asUser = { authorization: `Bearer ${token}` };
    const read = await t.gql(LOG, { appUserId: gus }, asUser);
    expect(read.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(read.data).toBeNull();
    const retry = await t.gql(RETRY, { id: all[0]!.id }, asUser);
    expect(retry.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});

describe.each(DATABASE_KINDS)('a webhook URL with credentials on %s', (kind) => {
  let receiver: WebhookReceiver;
  let t: GoogleTestApp;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    const url = receiver.url.replace('http://', 'http://hook:s%40cret@');
    t = await startGoogleApp(kind, { config: { ...webhookConfig(receiver), WEBHOOK_URLS: url } });
  });
  afterAll(async () => {
    await t?.close();
    await receiver?.stop();
  });

  it('sends them as Basic authorization and never shows the password', async () => {
    await buyCoins(t, 'kim');
    const got = await eventually(() => receiver.of('kim')[0]);
    expect(got!.headers.authorization).toBe(`Basic ${Buffer.from('hook:s@cret').toString('base64')}`);
    expect(signedCorrectly(got!)).toBe(true);
    await t.app.services.webhooks.idle();
    const [d] = await logOf(t, 'kim');
    expect(d).toMatchObject({ status: 'DELIVERED', url: receiver.url.replace('http://', 'http://hook:***@') });
  });
});

describe.each(DATABASE_KINDS)('webhooks across a restart on %s', (kind) => {
  let db: TestDatabase;
  let receiver: WebhookReceiver;
  let first: GoogleTestApp | undefined;
  let second: GoogleTestApp | undefined;

  beforeAll(async () => {
    db = await databaseThatOutlivesAnInstance(kind);
  });
  afterAll(async () => {
    await first?.close();
    await second?.close();
    await receiver?.stop();
    await db?.drop();
  });

  it('delivers an event committed while the receiver was down from a new instance on the same database', async () => {
    receiver = await WebhookReceiver.start();
    await receiver.stop(); // down: connections are refused
    first = await startGoogleApp(kind, { db, config: webhookConfig(receiver) });
    await buyCoins(first, 'ivy');
    await first.app.services.webhooks.idle();
    const [pending] = await logOf(first, 'ivy');
    expect(pending).toMatchObject({ status: 'PENDING', attempts: 1, responseStatus: null });
    expect(pending!.lastError).toContain('ECONNREFUSED');
    await first.close();
    first = undefined;

    await receiver.listen(); // back, on the same URL
    // The new instance runs its jobs at start-up; its clock is past the retry time.
    second = await startGoogleApp(kind, {
      db,
      clock: () => new Date(Date.now() + 10 * MINUTE),
      config: { ...webhookConfig(receiver), SCHEDULER_ENABLED: 'true' },
    });
    const got = await eventually(() => receiver.of('ivy')[0], 10_000);
    expect(got).toBeDefined();
    expect(got!.payload).toMatchObject({ id: pending!.eventId, type: 'CONSUMABLE_CREDIT', appUserId: 'ivy' });
    expect(got!.headers['x-iap-delivery-attempt']).toBe('2');
    expect(signedCorrectly(got!)).toBe(true);
    await eventually(async () => (await logOf(second!, 'ivy'))[0]!.status === 'DELIVERED');
    expect(await logOf(second, 'ivy')).toMatchObject([{ id: pending!.id, status: 'DELIVERED', attempts: 2 }]);
    expect(receiver.of('ivy')).toHaveLength(1);
  });
});

// FOR UPDATE SKIP LOCKED has nothing to skip on PGlite (one session): concurrent instances need PostgreSQL.
describe('webhooks from two instances on one PostgreSQL database', () => {
  let db: TestDatabase;
  let receiver: WebhookReceiver;
  let a: GoogleTestApp;
  let b: GoogleTestApp;

  beforeAll(async () => {
    db = await createTestDatabase('postgresql');
    receiver = await WebhookReceiver.start();
    a = await startGoogleApp('postgresql', { db, config: webhookConfig(receiver) });
    b = await startGoogleApp('postgresql', { db, fake: a.fake, config: webhookConfig(receiver) });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await receiver?.stop();
    await db?.drop();
  });

  it('sends each delivery once, one at a time per customer, in order, while both instances run the job', async () => {
    const customers = ['p1', 'p2', 'p3', 'p4', 'p5'];
    receiver.respond = () => 503;
    for (const c of customers) {
      await buyCoins(a, c);
      for (let i = 1; i <= 3; i++) await spend(a, c, i, `k${i}`);
    }
    await a.app.services.webhooks.idle();
    receiver.respond = () => 200;
    receiver.answerDelayMs = 15;
    const later = new Date(Date.now() + 10 * MINUTE);
    for (let round = 0; round < 10; round++) {
      const results = await Promise.all([a.app.services.webhooks.deliverDue(later), b.app.services.webhooks.deliverDue(later), a.app.services.webhooks.deliverDue(later)]);
      if (results.every((r) => r.delivered + r.retried + r.failed === 0)) break;
    }
    const log = await deliveryLog(a, { limit: 200 });
    expect(log.filter((d) => customers.includes(d.appUserId!)).map((d) => d.status)).toEqual(Array(20).fill('DELIVERED'));
    for (const c of customers) {
      const ok = receiver.of(c).filter((r) => r.answer === 200);
      const ids = ok.map((r) => Number(r.payload.id.slice(4)));
      expect(ids).toHaveLength(4);
      expect(new Set(ids).size).toBe(4);
      expect(ids).toEqual([...ids].sort((x, y) => x - y));
      expect(ok.map((r) => r.payload.type)).toEqual(['CONSUMABLE_CREDIT', 'CREDIT_SPEND', 'CREDIT_SPEND', 'CREDIT_SPEND']);
      expect(receiver.maxInFlight.get(c)).toBe(1);
    }
  });
});

/** PostgreSQL: a fresh database. PGlite: a data directory on disk (in memory it would die with the instance). */
async function databaseThatOutlivesAnInstance(kind: DatabaseKind): Promise<TestDatabase> {
  if (kind === 'postgresql') return createTestDatabase(kind);
  const dataDir = mkdtempSync(join(tmpdir(), 'iap-webhooks-'));
  return { kind, url: null, dataDir, drop: async () => rmSync(dataDir, { recursive: true, force: true }) };
}
