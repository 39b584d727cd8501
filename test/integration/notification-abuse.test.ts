// Abuse of the store notification endpoints, through real HTTP to the running service with the fake Play
// Developer API and the fake App Store on loopback: pushes PostgreSQL cannot store (U+0000, lone surrogates),
// pushes larger or shaped differently than a real notification, floods of unauthenticated pushes, forged
// purchase tokens, and notifications whose processing keeps failing. On PostgreSQL and on PGlite.
import { createServer, type Server } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwsPayload, signAppleJws } from '../fakes/apple-certs.js';
import { MAX_APPLE_NOTIFICATION_BYTES } from '../../src/services/apple-notifications.js';
import {
  MAX_GOOGLE_NOTIFICATION_DATA_BYTES,
  MAX_GOOGLE_PUSH_BYTES,
  UNAUTHENTICATED_PUSH_BURST,
  UNAUTHENTICATED_PUSHES_PER_SECOND,
} from '../../src/services/google-notifications.js';
import { MAX_NOTIFICATION_ATTEMPTS } from '../../src/services/notification-inbox.js';
import { DAY as APPLE_DAY, MONTHLY, startAppleApp, submitApple, type AppleTestApp } from '../support/apple.js';
import { DATABASE_KINDS } from '../support/databases.js';
import { PACKAGE, pushNotification, startGoogleApp, type GoogleTestApp } from '../support/google.js';
import type { TestApp } from '../support/test-app.js';

type Row = Record<string, unknown>;

const rows = async (t: TestApp, sql: string, params: unknown[] = []) => (await t.app.orm.em.getConnection().execute(sql, params)) as Row[];
const notificationCount = async (t: TestApp) => Number((await rows(t, 'select count(*)::int as n from store_notification'))[0]!.n);
const storedNotification = async (t: TestApp, messageId: string) =>
  (await rows(t, 'select status, attempts, outcome, last_error from store_notification where message_id = ?', [messageId]))[0];
const googleUrl = (t: TestApp) => t.url.replace('/graphql', '/notifications/google');
const appleUrl = (t: TestApp) => t.url.replace('/graphql', '/notifications/apple');
const postJson = (url: string, body: string, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

/** Runs `count` tasks, at most `width` at once; results in task order. */
async function inParallel<T>(count: number, width: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await task(i);
      }
    }),
  );
  return results;
}

describe.each(DATABASE_KINDS)('Google notification abuse on %s', (kind) => {
  let t: GoogleTestApp;
  const logLines: Record<string, unknown>[] = [];
  let n = 0;
  const id = (label: string) => `${label}-${kind}-${++n}`;
  const callsFor = (token: string) => t.fake.calls.filter((c) => c.path.includes(token)).length;
  // Far enough ahead that every backoff (at most 6 h, +50% jitter) has run out.
  const later = () => new Date(Date.now() + 30 * 86_400_000);

  beforeAll(async () => {
    t = await startGoogleApp(kind, { logLines });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('warns once at start-up that push authentication is off', () => {
    const warnings = logLines.filter((l) => l.level === 40 && String(l.msg).includes('push authentication is off'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ setting: 'GOOGLE_PUBSUB_AUDIENCE', perSecond: UNAUTHENTICATED_PUSHES_PER_SECOND, burst: UNAUTHENTICATED_PUSH_BURST });
  });

  describe('pushes PostgreSQL cannot store', () => {
    const sub = (fields: Record<string, unknown>) => ({ subscriptionNotification: { version: '1.0', notificationType: 2, purchaseToken: 'tok-nul', subscriptionId: 'pro_monthly', ...fields } });
    it.each([
      ['a NUL in the purchase token', () => ({ notification: sub({ purchaseToken: 'tok\u0000en' }), messageId: id('nul') })],
      ['a NUL in the package name', () => ({ notification: { ...sub({}), packageName: `${PACKAGE}\u0000` }, messageId: id('nul') })],
      ['a NUL in the messageId', () => ({ notification: sub({}), messageId: `nul\u0000${id('msg')}` })],
      ['a NUL in a field nobody knows', () => ({ notification: { ...sub({}), extra: { deeper: ['fine', 'not\u0000fine'] } }, messageId: id('nul') })],
      ['a NUL in a key', () => ({ notification: { ...sub({}), ['k\u0000ey']: 1 }, messageId: id('nul') })],
      ['a lone UTF-16 surrogate', () => ({ notification: sub({ subscriptionId: 'pro_\ud800monthly' }), messageId: id('surrogate') })],
      ['nesting deeper than any notification', () => ({ notification: { ...sub({}), extra: JSON.parse('['.repeat(40) + ']'.repeat(40)) }, messageId: id('deep') })],
    ])('refuses %s (400) and stores nothing', async (_name, make) => {
      const { notification, messageId } = make();
      const before = await notificationCount(t);
      const calls = t.fake.calls.length;
      const res = await pushNotification(t, notification, messageId);
      expect(res.status).toBe(400);
      expect(String(res.body.error)).toMatch(/NUL|surrogate|nested/);
      expect(await notificationCount(t)).toBe(before);
      expect(t.fake.calls.length).toBe(calls);
    });
  });

  describe('pushes larger or shaped differently than a Play notification', () => {
    it(`refuses data over ${MAX_GOOGLE_NOTIFICATION_DATA_BYTES} bytes decoded (400) and stores nothing`, async () => {
      const before = await notificationCount(t);
      const padded = { testNotification: { version: '1.0' }, padding: 'x'.repeat(MAX_GOOGLE_NOTIFICATION_DATA_BYTES) };
      const res = await pushNotification(t, padded, id('big'));
      expect(res.status).toBe(400);
      expect(String(res.body.error)).toContain('larger than a Play notification');
      expect(await notificationCount(t)).toBe(before);
    });

    const long = (length: number) => 'a'.repeat(length);
    it.each([
      ['a purchase token over 512 characters', { subscriptionNotification: { notificationType: 2, purchaseToken: long(513), subscriptionId: 'pro_monthly' } }],
      ['a package name over 255 characters', { packageName: long(256), testNotification: {} }],
      ['a subscriptionId over 200 characters', { subscriptionNotification: { notificationType: 2, purchaseToken: 'tok', subscriptionId: long(201) } }],
      ['a sku over 200 characters', { oneTimeProductNotification: { notificationType: 1, purchaseToken: 'tok', sku: long(201) } }],
      ['an orderId over 255 characters', { voidedPurchaseNotification: { purchaseToken: 'tok', orderId: long(256), productType: 2, refundType: 1 } }],
      ['a notificationType that is not a number', { subscriptionNotification: { notificationType: '2', purchaseToken: 'tok', subscriptionId: 'pro_monthly' } }],
      ['a purchase token that is not a string', { subscriptionNotification: { notificationType: 2, purchaseToken: { $ne: '' } } }],
      ['an eventTimeMillis that is not a time', { eventTimeMillis: 'yesterday', testNotification: {} }],
      ['a subscriptionNotification that is a list', { subscriptionNotification: [{ notificationType: 2 }] }],
    ])('refuses %s (400) and stores nothing', async (_name, notification) => {
      const before = await notificationCount(t);
      const res = await pushNotification(t, notification, id('shape'));
      expect(res.status).toBe(400);
      expect(await notificationCount(t)).toBe(before);
    });

    it('accepts every field at its longest', async () => {
      const token = `long-${kind}-`.padEnd(512, 't');
      const messageId = `long-${kind}-`.padEnd(255, 'm');
      const res = await pushNotification(t, { packageName: PACKAGE, subscriptionNotification: { notificationType: 2, purchaseToken: token, subscriptionId: 's'.repeat(200) } }, messageId);
      expect(res.status).toBe(200);
      expect(await storedNotification(t, messageId)).toMatchObject({ status: 'IGNORED' });
    });
  });

  describe('a token Google refuses', () => {
    it.each([
      ['unknown to Google (404), product looked up', 404, false],
      ['refused as invalid (400), product looked up', 400, false],
      ['unknown to Google (404), product named', 404, true],
    ])('%s: ignored after one attempt and never retried', async (_name, status, named) => {
      const token = id(`forged-${status}`);
      if (status === 400) t.fake.failNext({ status: 400 }, { pathIncludes: token });
      const messageId = id('forged');
      const res = await pushNotification(t, { subscriptionNotification: { version: '1.0', notificationType: 4, purchaseToken: token, ...(named ? { subscriptionId: 'pro_monthly' } : {}) } }, messageId);
      expect(res.status).toBe(200);
      expect(res.body.outcome).toBe('ignored: rejected by Google (INVALID_PURCHASE_TOKEN), and no kept proof was waiting for it');
      expect(await storedNotification(t, messageId)).toMatchObject({ status: 'IGNORED', attempts: 1, last_error: null });
      expect(callsFor(token)).toBe(1);
      await t.app.services.googleNotifications!.processDue(later());
      await t.app.services.googleNotifications!.processDue(later());
      expect(callsFor(token)).toBe(1);
      expect(await storedNotification(t, messageId)).toMatchObject({ status: 'IGNORED', attempts: 1 });
    });
  });

  it(`retries a notification Google keeps failing with backoff, then after ${MAX_NOTIFICATION_ATTEMPTS} attempts parks it as FAILED with its reason`, async () => {
    const token = id('outage');
    t.fake.failNext({ status: 503 }, { pathIncludes: token, times: 10 * MAX_NOTIFICATION_ATTEMPTS });
    const messageId = id('outage-msg');
    const res = await pushNotification(t, { subscriptionNotification: { version: '1.0', notificationType: 2, purchaseToken: token, subscriptionId: 'pro_monthly' } }, messageId);
    expect(res.body.outcome).toBe('kept for retry');
    const delays: number[] = [];
    for (let attempt = 2; attempt <= MAX_NOTIFICATION_ATTEMPTS; attempt++) {
      const [row] = await rows(t, 'select status, extract(epoch from next_attempt_at - now())::float as wait from store_notification where message_id = ?', [messageId]);
      expect(row!.status).toBe('RECEIVED');
      delays.push(Number(row!.wait));
      await t.app.services.googleNotifications!.processDue(later());
      expect(callsFor(token)).toBe(attempt);
    }
    // The waits grew (1 min doubling, at most 6 h, with jitter): the first is a minute or so, the last hours.
    expect(delays[0]).toBeLessThan(120);
    expect(delays.at(-1)).toBeGreaterThan(3_600);
    expect(await storedNotification(t, messageId)).toMatchObject({
      status: 'FAILED',
      attempts: MAX_NOTIFICATION_ATTEMPTS,
      outcome: `failed: gave up after ${MAX_NOTIFICATION_ATTEMPTS} attempts`,
      last_error: expect.stringContaining('could not be reached'),
    });
    // Parked: not claimed again.
    await t.app.services.googleNotifications!.processDue(later());
    expect(callsFor(token)).toBe(MAX_NOTIFICATION_ATTEMPTS);
    expect(await storedNotification(t, messageId)).toMatchObject({ status: 'FAILED', attempts: MAX_NOTIFICATION_ATTEMPTS });
  });

  describe('route body bound', () => {
    // The route refuses a body over MAX_GOOGLE_PUSH_BYTES before reading it (wired in src/http/server.ts).
    it(`answers 413 to a push body over ${MAX_GOOGLE_PUSH_BYTES} bytes, and 20 pushes of 5 MB leave the table as it was`, async () => {
      const before = await notificationCount(t);
      const [size] = await rows(t, `select pg_total_relation_size('store_notification')::bigint as bytes`);
      const justOver = JSON.stringify({ message: { messageId: id('huge'), data: 'A'.repeat(MAX_GOOGLE_PUSH_BYTES) }, subscription: 'projects/x/subscriptions/y' });
      expect((await postJson(googleUrl(t), justOver)).status).toBe(413);
      const fiveMb = Buffer.from(JSON.stringify({ testNotification: {}, padding: 'x'.repeat(5 * 1024 * 1024) })).toString('base64');
      for (let i = 0; i < 20; i++) {
        const res = await postJson(googleUrl(t), JSON.stringify({ message: { messageId: id('five-mb'), data: fiveMb }, subscription: 'projects/x/subscriptions/y' }));
        expect(res.status).toBe(413);
      }
      expect(await notificationCount(t)).toBe(before);
      const [after] = await rows(t, `select pg_total_relation_size('store_notification')::bigint as bytes`);
      expect(Number(after!.bytes) - Number(size!.bytes)).toBeLessThan(1024 * 1024);
    });
  });
});

describe.each(DATABASE_KINDS)('a flood of unauthenticated Google pushes on %s', (kind) => {
  let t: GoogleTestApp;

  beforeAll(async () => {
    t = await startGoogleApp(kind);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('1,000 pushes at once: most get 429, and stored rows and Play API calls stay within the rate', async () => {
    const tokens = Array.from({ length: 1000 }, (_, i) => `flood-${kind}-${i}`);
    const started = performance.now();
    // Forged subscription notifications without a product: each stored one costs a Play API call.
    const answers = await inParallel(tokens.length, 50, async (i) => {
      const body = JSON.stringify({
        message: { data: Buffer.from(JSON.stringify({ version: '1.0', packageName: PACKAGE, eventTimeMillis: String(Date.now()), subscriptionNotification: { version: '1.0', notificationType: 4, purchaseToken: tokens[i] } })).toString('base64'), messageId: `flood-msg-${kind}-${i}` },
        subscription: 'projects/example/subscriptions/play',
      });
      const res = await postJson(googleUrl(t), body);
      await res.arrayBuffer();
      return { status: res.status, retryAfter: res.headers.get('retry-after') };
    });
    const elapsedSeconds = (performance.now() - started) / 1000;
    const bound = UNAUTHENTICATED_PUSH_BURST + Math.ceil(UNAUTHENTICATED_PUSHES_PER_SECOND * elapsedSeconds) + 1;

    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(1000 - bound);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(500);
    for (const a of answers.filter((x) => x.status === 429)) expect(Number(a.retryAfter)).toBeGreaterThanOrEqual(1);

    const [stored] = await rows(t, `select count(*)::int as n from store_notification where message_id like ?`, [`flood-msg-${kind}-%`]);
    expect(Number(stored!.n)).toBe(statuses.filter((s) => s === 200).length);
    expect(Number(stored!.n)).toBeGreaterThanOrEqual(UNAUTHENTICATED_PUSH_BURST);
    expect(Number(stored!.n)).toBeLessThanOrEqual(bound);
    const playCalls = t.fake.calls.filter((c) => c.path.includes(`flood-${kind}-`)).length;
    expect(playCalls).toBe(Number(stored!.n));
    expect(playCalls).toBeLessThanOrEqual(bound);
    // None of the forged tokens is left to retry.
    const [left] = await rows(t, `select count(*)::int as n from store_notification where message_id like ? and status = 'RECEIVED'`, [`flood-msg-${kind}-%`]);
    expect(left!.n).toBe(0);

    // Pub/Sub delivers a refused push again later: once the bucket refilled, it is taken.
    const refused = answers.findIndex((a) => a.status === 429);
    await new Promise((r) => setTimeout(r, 1100));
    const again = await pushNotification(t, { subscriptionNotification: { version: '1.0', notificationType: 4, purchaseToken: tokens[refused]! } }, `flood-msg-${kind}-${refused}`);
    expect(again.status).toBe(200);
    expect(again.body.duplicate).toBe(false);
  });
});

describe.each(DATABASE_KINDS)('authenticated Google pushes on %s', (kind) => {
  let t: GoogleTestApp;
  let jwks: Server;
  let key: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  const logLines: Record<string, unknown>[] = [];
  const AUDIENCE = 'https://iap.example.test/notifications/google';
  const PUSH_ACCOUNT = 'push@example.iam.gserviceaccount.com';

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256');
    key = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'push', alg: 'RS256', use: 'sig' };
    jwks = createServer((_req, res) => res.end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()));
    t = await startGoogleApp(kind, {
      logLines,
      config: {
        GOOGLE_PUBSUB_AUDIENCE: AUDIENCE,
        GOOGLE_PUBSUB_JWKS_URL: `http://127.0.0.1:${(jwks.address() as { port: number }).port}/certs`,
        GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL: PUSH_ACCOUNT,
      },
    });
  });
  afterAll(async () => {
    await t?.close();
    jwks?.close();
  });

  it('logs no warning about push authentication', () => {
    expect(logLines.filter((l) => String(l.msg).includes('push authentication is off'))).toEqual([]);
  });

  it(`are not rate-limited: ${3 * UNAUTHENTICATED_PUSH_BURST} at once are all stored`, async () => {
    const token = await new SignJWT({ email: PUSH_ACCOUNT, email_verified: true })
      .setProtectedHeader({ alg: 'RS256', kid: 'push' })
      .setIssuer('https://accounts.google.com')
      .setAudience(AUDIENCE)
      .setExpirationTime('5m')
      .sign(key);
    const count = 3 * UNAUTHENTICATED_PUSH_BURST;
    const statuses = await inParallel(count, 50, async (i) => (await pushNotification(t, { testNotification: { version: '1.0' } }, `auth-flood-${kind}-${i}`, { authorization: `Bearer ${token}` })).status);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const [stored] = await rows(t, `select count(*)::int as n from store_notification where message_id like ? and authenticated`, [`auth-flood-${kind}-%`]);
    expect(stored!.n).toBe(count);
  });
});

describe.each(DATABASE_KINDS)('App Store notification abuse on %s', (kind) => {
  let t: AppleTestApp;
  // One clock for the fake App Store (signed dates) and the service, moved forward by the tests.
  let nowMs = Date.now();
  const clock = () => new Date(++nowMs);

  beforeAll(async () => {
    t = await startAppleApp(kind, { clock });
  });
  afterAll(async () => {
    await t?.close();
  });

  /** A genuine TEST notification's payload, changed by `change`, signed again with the fake App Store's chain. */
  const resigned = (change: (payload: Record<string, any>) => void) => {
    const payload = decodeJwsPayload<Record<string, any>>(t.fake.signedNotification({ notificationType: 'TEST' }));
    change(payload);
    return signAppleJws(payload, t.fake.chain);
  };

  it.each([
    ['a NUL in the notificationUUID', (p: Record<string, any>) => void (p.notificationUUID = `${p.notificationUUID}\u0000`)],
    ['a NUL in the notification type', (p: Record<string, any>) => void (p.notificationType = 'TEST\u0000')],
    ['a NUL deeper in the payload', (p: Record<string, any>) => void (p.data.bundleVersion = '1\u0000')],
    ['a lone UTF-16 surrogate in the subtype', (p: Record<string, any>) => void (p.subtype = 'SUMMARY\udc00')],
    ['a notificationUUID over 255 characters', (p: Record<string, any>) => void (p.notificationUUID = 'u'.repeat(256))],
  ])('refuses a signed notification with %s (400) and stores nothing', async (_name, change) => {
    const before = await notificationCount(t);
    const res = await postJson(appleUrl(t), JSON.stringify({ signedPayload: resigned(change) }));
    expect(res.status).toBe(400);
    expect(await notificationCount(t)).toBe(before);
  });

  it('refuses a signedPayload that is not a compact JWS (400), such as one carrying a NUL', async () => {
    const genuine = t.fake.signedNotification({ notificationType: 'TEST' });
    const res = await postJson(appleUrl(t), JSON.stringify({ signedPayload: `${genuine}\u0000` }));
    expect(res.status).toBe(400);
  });

  it(`parks a notification whose processing keeps failing as FAILED after ${MAX_NOTIFICATION_ATTEMPTS} attempts, with its reason`, async () => {
    const u = `abuse-${kind}-renewer`;
    const tx = t.fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription', purchaseDate: new Date(nowMs - 29.5 * APPLE_DAY) });
    expect((await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) })).status).toBe('VERIFIED');
    t.fake.renew(tx.originalTransactionId);
    const conn = t.app.services.orm.em.getConnection();
    // Processing (not storing) fails every time: the event table is away.
    await conn.execute('alter table event rename to event_away');
    let uuid: string;
    try {
      const res = await t.fake.notify({ notificationType: 'DID_RENEW', originalTransactionId: tx.originalTransactionId, url: t.notificationUrl });
      expect(JSON.parse(res.body).outcome).toBe('kept for retry');
      uuid = res.notificationUUID;
      for (let attempt = 2; attempt <= MAX_NOTIFICATION_ATTEMPTS; attempt++) {
        nowMs += APPLE_DAY;
        expect(await t.app.services.appleNotifications!.processDue(new Date(nowMs))).toBe(1);
      }
    } finally {
      await conn.execute('alter table event_away rename to event');
    }
    expect(await storedNotification(t, uuid)).toMatchObject({
      status: 'FAILED',
      attempts: MAX_NOTIFICATION_ATTEMPTS,
      outcome: `failed: gave up after ${MAX_NOTIFICATION_ATTEMPTS} attempts`,
      last_error: expect.stringContaining('event'),
    });
    nowMs += APPLE_DAY;
    expect(await t.app.services.appleNotifications!.processDue(new Date(nowMs))).toBe(0);
  });

  describe('route body bound', () => {
    // The route refuses a body over MAX_APPLE_NOTIFICATION_BYTES before reading it (wired in src/http/server.ts).
    it(`answers 413 to a notification body over ${MAX_APPLE_NOTIFICATION_BYTES} bytes`, async () => {
      const before = await notificationCount(t);
      const res = await postJson(appleUrl(t), JSON.stringify({ signedPayload: 'A'.repeat(MAX_APPLE_NOTIFICATION_BYTES) }));
      expect(res.status).toBe(413);
      expect(await notificationCount(t)).toBe(before);
    });
  });
});
