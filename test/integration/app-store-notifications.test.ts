// App Store Server Notifications V2 end to end: the fake App Store signs and POSTs notifications to the
// service's endpoint; the customer's state is read back through GraphQL. On PostgreSQL and on PGlite.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateAppleChain, signAppleJws } from '../fakes/apple-certs.js';
import type { NotificationSubtype, NotificationType } from '../fakes/app-store.js';
import { COINS, customerOf, DAY, eventsOf, MONTHLY, NO_ADS, startAppleApp, submitApple, YEARLY, type AppleTestApp } from '../support/apple.js';
import { DATABASE_KINDS } from '../support/databases.js';
import { startTestApp } from '../support/test-app.js';

type Row = Record<string, unknown>;

describe.each(DATABASE_KINDS)('App Store notifications on %s', (kind) => {
  let t: AppleTestApp;
  let users = 0;
  const user = (label: string) => `${label}-${kind}-${++users}`;
  // One clock for the fake App Store (signed dates) and the service (now): tests move time forward, and every
  // reading is a millisecond later, as Apple's signed dates of successive statements are.
  let nowMs = Date.now();
  const clock = () => new Date(++nowMs);
  const advance = (days: number) => void (nowMs += days * DAY);

  beforeAll(async () => {
    t = await startAppleApp(kind, { clock });
  });
  afterAll(async () => {
    await t?.close();
  });

  const notify = (notificationType: NotificationType, originalTransactionId: string, subtype?: NotificationSubtype, transactionId?: string) =>
    t.fake.notify({ notificationType, subtype, originalTransactionId, transactionId, url: t.notificationUrl });
  const stored = async (uuid: string) =>
    (await t.app.services.orm.em.getConnection().execute(`select type, status, outcome, attempts from store_notification where message_id = ?`, [uuid])) as Row[];

  /** A customer who bought a monthly subscription `daysAgo` days ago and submitted it. */
  async function subscriber(label: string, daysAgo = 1, product = MONTHLY) {
    const u = user(label);
    const tx = t.fake.buy({ productId: product, type: 'Auto-Renewable Subscription', purchaseDate: new Date(nowMs - daysAgo * DAY) });
    expect((await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) })).status).toBe('VERIFIED');
    return { u, tx, original: tx.originalTransactionId };
  }
  const sub = async (u: string) => (await customerOf(t, u)).subscriptions[0]!;
  const types = async (u: string) => (await eventsOf(t, u)).map((e) => e.type);

  it('attaches a subscription first seen here to the customer its appAccountToken names (SUBSCRIBED)', async () => {
    const u = `7c1f7a7e-0000-4000-8000-${String(++users).padStart(12, '0')}`;
    await startTestCustomer(u);
    const tx = t.fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription', appAccountToken: u });
    const res = await notify('SUBSCRIBED', tx.originalTransactionId, 'INITIAL_BUY');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ ok: true, duplicate: false, outcome: `applied to ${u}` });
    expect((await customerOf(t, u)).entitlements).toMatchObject([{ identifier: 'pro', isActive: true }]);
    expect(await stored(res.notificationUUID)).toMatchObject([{ type: 'SUBSCRIBED.INITIAL_BUY', status: 'PROCESSED' }]);
  });

  async function startTestCustomer(appUserId: string) {
    // A customer exists once something was recorded for them: a consumable does that without granting access.
    const coins = t.fake.buy({ productId: COINS, type: 'Consumable' });
    await submitApple(t, appUserId, { signedTransaction: t.fake.signedTransaction(coins.transactionId) });
  }

  it('keeps a purchase nobody owns yet, and hands it to the first customer who submits it', async () => {
    const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable' });
    const res = await t.fake.notify({ notificationType: 'ONE_TIME_CHARGE', transactionId: tx.transactionId, url: t.notificationUrl });
    expect(JSON.parse(res.body).outcome).toBe('kept unowned until a customer submits it');
    const u = user('claimer');
    const outcome = await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
    expect(outcome).toMatchObject({ status: 'VERIFIED' });
    expect(outcome.entitlements).toMatchObject([{ identifier: 'no_ads', isActive: true }]);
  });

  it('DID_RENEW extends the subscription with a RENEWAL', async () => {
    const { u, original } = await subscriber('renew', 29.5);
    const renewal = t.fake.renew(original);
    await notify('DID_RENEW', original);
    expect(await sub(u)).toMatchObject({ state: 'ACTIVE', latestTransactionId: renewal.transactionId, expiresAt: new Date(renewal.expiresDate!).toISOString() });
    expect(await types(u)).toEqual(['INITIAL_PURCHASE', 'RENEWAL']);
  });

  it('DID_FAIL_TO_RENEW with GRACE_PERIOD keeps access, GRACE_PERIOD_EXPIRED removes it, DID_RENEW BILLING_RECOVERY restores it', async () => {
    const { u, original } = await subscriber('grace', 29.5);
    advance(0.7);
    t.fake.failToRenew(original, { graceMs: 6 * DAY });
    await notify('DID_FAIL_TO_RENEW', original, 'GRACE_PERIOD');
    expect(await sub(u)).toMatchObject({ state: 'GRACE', isActive: true });
    advance(7);
    await notify('GRACE_PERIOD_EXPIRED', original);
    expect(await sub(u)).toMatchObject({ state: 'ON_HOLD', isActive: false });
    t.fake.recover(original);
    await notify('DID_RENEW', original, 'BILLING_RECOVERY');
    expect(await sub(u)).toMatchObject({ state: 'ACTIVE', isActive: true });
    expect(await types(u)).toEqual(['INITIAL_PURCHASE', 'BILLING_ISSUE', 'GRACE_PERIOD', 'ON_HOLD', 'RENEWAL', 'BILLING_RECOVERY']);
  });

  it('keeps GRACE when the app submits its copy of the transaction again (it says nothing about renewal)', async () => {
    const { u, tx, original } = await subscriber('grace-resubmit', 29.5);
    advance(0.7);
    t.fake.failToRenew(original, { graceMs: 6 * DAY });
    await notify('DID_FAIL_TO_RENEW', original, 'GRACE_PERIOD');
    t.fake.failApi({ httpStatus: 503 });
    const again = await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
    expect(again.entitlements).toMatchObject([{ identifier: 'pro', isActive: true, state: 'GRACE' }]);
    expect(await sub(u)).toMatchObject({ state: 'GRACE', isActive: true });
    expect(await types(u)).toEqual(['INITIAL_PURCHASE', 'BILLING_ISSUE', 'GRACE_PERIOD']);
  });

  it('keeps CANCELED when the app submits its copy again, and records one CANCELLATION', async () => {
    const { u, tx, original } = await subscriber('cancel-resubmit');
    t.fake.setAutoRenew(original, false);
    await notify('DID_CHANGE_RENEWAL_STATUS', original, 'AUTO_RENEW_DISABLED');
    t.fake.failApi({ httpStatus: 503 });
    await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
    await notify('DID_CHANGE_RENEWAL_PREF', original, 'DOWNGRADE');
    expect(await sub(u)).toMatchObject({ state: 'CANCELED', willRenew: false });
    expect(await types(u)).toEqual(['INITIAL_PURCHASE', 'CANCELLATION']);
  });

  it('DID_FAIL_TO_RENEW without grace: billing retry with no access', async () => {
    const { u, original } = await subscriber('retry', 29.5);
    advance(0.7);
    t.fake.failToRenew(original);
    await notify('DID_FAIL_TO_RENEW', original);
    expect(await sub(u)).toMatchObject({ state: 'ON_HOLD', isActive: false });
    expect((await customerOf(t, u)).entitlements).toMatchObject([{ identifier: 'pro', isActive: false }]);
  });

  it('DID_CHANGE_RENEWAL_STATUS records CANCELLATION and UNCANCELLATION', async () => {
    const { u, original } = await subscriber('toggle');
    t.fake.setAutoRenew(original, false);
    await notify('DID_CHANGE_RENEWAL_STATUS', original, 'AUTO_RENEW_DISABLED');
    expect(await sub(u)).toMatchObject({ state: 'CANCELED', isActive: true, willRenew: false });
    t.fake.setAutoRenew(original, true);
    await notify('DID_CHANGE_RENEWAL_STATUS', original, 'AUTO_RENEW_ENABLED');
    expect(await sub(u)).toMatchObject({ state: 'ACTIVE', willRenew: true });
    expect(await types(u)).toEqual(['INITIAL_PURCHASE', 'CANCELLATION', 'UNCANCELLATION']);
  });

  it('DID_CHANGE_RENEWAL_PREF is applied and changes nothing the customer has now', async () => {
    const { u, original } = await subscriber('pref');
    const res = await notify('DID_CHANGE_RENEWAL_PREF', original, 'DOWNGRADE');
    expect(JSON.parse(res.body).outcome).toBe(`applied to ${u}`);
    expect(await sub(u)).toMatchObject({ state: 'ACTIVE', productId: MONTHLY });
    expect(await types(u)).toEqual(['INITIAL_PURCHASE']);
  });

  it('an upgrade (DID_CHANGE_RENEWAL_PREF UPGRADE) moves the subscription to the new product at once, with no refund', async () => {
    const { u, original } = await subscriber('upgrade', 3);
    t.fake.upgrade(original, YEARLY);
    await notify('DID_CHANGE_RENEWAL_PREF', original, 'UPGRADE');
    expect(await sub(u)).toMatchObject({ state: 'ACTIVE', productId: YEARLY });
    const events = await types(u);
    expect(events).toContain('PRODUCT_CHANGE');
    expect(events).not.toContain('REFUND');
  });

  const expiries: [subtype: NotificationSubtype, intent: 1 | 2 | 3 | 4, reason: string, churn: string][] = [
    ['VOLUNTARY', 1, 'VOLUNTARY', 'VOLUNTARY'],
    ['BILLING_RETRY', 2, 'BILLING_ERROR', 'INVOLUNTARY'],
    ['PRICE_INCREASE', 3, 'PRICE_INCREASE', 'VOLUNTARY'],
    ['PRODUCT_NOT_FOR_SALE', 4, 'PRODUCT_UNAVAILABLE', 'OTHER'],
  ];
  it.each(expiries)('EXPIRED %s ends access and records why', async (subtype, intent, reason, churn) => {
    const { u, original } = await subscriber(`exp-${subtype}`, 29.5);
    advance(1);
    t.fake.expire(original, intent);
    await notify('EXPIRED', original, subtype);
    expect(await sub(u)).toMatchObject({ state: 'EXPIRED', isActive: false, expirationReason: reason });
    const expiration = (await eventsOf(t, u)).find((e) => e.type === 'EXPIRATION');
    expect(expiration?.data).toMatchObject({ reason, churn });
  });

  it('REFUND revokes, REFUND_REVERSED restores', async () => {
    const { u, tx, original } = await subscriber('refund');
    t.fake.refund(tx.transactionId);
    await notify('REFUND', original, undefined, tx.transactionId);
    expect(await sub(u)).toMatchObject({ state: 'REVOKED', isActive: false });
    t.fake.reverseRefund(tx.transactionId);
    await notify('REFUND_REVERSED', original, undefined, tx.transactionId);
    expect(await sub(u)).toMatchObject({ state: 'ACTIVE', isActive: true, revokedAt: null });
    expect(await types(u)).toEqual(['INITIAL_PURCHASE', 'REFUND', 'REFUND_REVERSED']);
  });

  it('REFUND of a consumable claws its credits back', async () => {
    const u = user('coins');
    const tx = t.fake.buy({ productId: COINS, type: 'Consumable' });
    await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
    t.fake.refund(tx.transactionId);
    await t.fake.notify({ notificationType: 'REFUND', transactionId: tx.transactionId, url: t.notificationUrl });
    expect((await customerOf(t, u)).creditBalances).toEqual([{ currency: 'coins', balance: 0 }]);
  });

  it('REVOKE ends a family-shared purchase for the member', async () => {
    const u = user('family');
    const tx = t.fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription', ownership: 'FAMILY_SHARED' });
    await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
    expect((await customerOf(t, u)).entitlements).toMatchObject([{ identifier: 'pro', isActive: true, ownership: 'FAMILY_SHARED' }]);
    t.fake.familyRevoke(tx.originalTransactionId);
    await notify('REVOKE', tx.originalTransactionId);
    expect((await customerOf(t, u)).entitlements).toMatchObject([{ identifier: 'pro', isActive: false, state: 'REVOKED' }]);
    expect(await types(u)).toEqual(['INITIAL_PURCHASE', 'REVOCATION']);
  });

  it('RENEWAL_EXTENDED moves the expiry', async () => {
    const { u, original } = await subscriber('extend');
    const extended = t.fake.extend(original, 7);
    await notify('RENEWAL_EXTENDED', original);
    expect(await sub(u)).toMatchObject({ expiresAt: new Date(extended.expiresDate!).toISOString() });
  });

  it('ONE_TIME_CHARGE for an owned lineage is recorded once', async () => {
    const u = user('otc');
    const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable' });
    await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
    const res = await t.fake.notify({ notificationType: 'ONE_TIME_CHARGE', transactionId: tx.transactionId, url: t.notificationUrl });
    expect(JSON.parse(res.body).outcome).toBe(`applied to ${u}`);
    expect(await types(u)).toEqual(['NON_CONSUMABLE_PURCHASE']);
  });

  it('records CONSUMPTION_REQUEST and TEST without changing anything', async () => {
    const { u, tx, original } = await subscriber('consumption');
    const consumption = await notify('CONSUMPTION_REQUEST', original, undefined, tx.transactionId);
    expect(await stored(consumption.notificationUUID)).toMatchObject([{ type: 'CONSUMPTION_REQUEST', status: 'PROCESSED' }]);
    const test = await t.fake.notify({ notificationType: 'TEST', url: t.notificationUrl });
    expect(test.status).toBe(200);
    expect(await stored(test.notificationUUID)).toMatchObject([{ type: 'TEST', status: 'IGNORED' }]);
    expect(await types(u)).toEqual(['INITIAL_PURCHASE']);
  });

  it('records an unknown type and answers 200', async () => {
    const { u, original } = await subscriber('unknown');
    const res = await notify('SOMETHING_NEW_FROM_APPLE', original);
    expect(res.status).toBe(200);
    expect(await stored(res.notificationUUID)).toMatchObject([{ type: 'SOMETHING_NEW_FROM_APPLE', status: 'IGNORED' }]);
    expect(await types(u)).toEqual(['INITIAL_PURCHASE']);
  });

  it('applies a notification once when Apple sends it again', async () => {
    const { u, original } = await subscriber('dup', 29.5);
    t.fake.renew(original);
    const payload = t.fake.signedNotification({ notificationType: 'DID_RENEW', originalTransactionId: original });
    const post = () => fetch(t.notificationUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ signedPayload: payload }) });
    const [a, b] = await Promise.all([post(), post()]);
    const bodies = [await a.json(), await b.json()] as { duplicate: boolean }[];
    expect(bodies.map((x) => x.duplicate).sort()).toEqual([false, true]);
    expect(await types(u)).toEqual(['INITIAL_PURCHASE', 'RENEWAL']);
  });

  it('answers 401 to a bad signature and changes nothing', async () => {
    const { u, original } = await subscriber('forged');
    t.fake.setAutoRenew(original, false);
    const genuine = t.fake.signedNotification({ notificationType: 'DID_CHANGE_RENEWAL_STATUS', subtype: 'AUTO_RENEW_DISABLED', originalTransactionId: original });
    const payload = JSON.parse(Buffer.from(genuine.split('.')[1]!, 'base64url').toString('utf8')) as { notificationUUID: string };
    const forged = signAppleJws(payload, generateAppleChain());
    const res = await fetch(t.notificationUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ signedPayload: forged }) });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toMatch(/^INVALID_SIGNATURE/);
    expect(await stored(payload.notificationUUID)).toEqual([]);
    expect(await sub(u)).toMatchObject({ state: 'ACTIVE', willRenew: true });
  });

  it('answers 400 to a body that is not a notification', async () => {
    for (const body of ['not json', '{}', '{"signedPayload": 5}']) {
      const res = await fetch(t.notificationUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(res.status).toBe(400);
    }
  });

  it('answers 5xx only when the notification cannot be stored, so Apple sends it again', async () => {
    const { u, original } = await subscriber('outage', 29.5);
    t.fake.renew(original);
    const payload = t.fake.signedNotification({ notificationType: 'DID_RENEW', originalTransactionId: original });
    const post = () => fetch(t.notificationUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ signedPayload: payload }) });
    const conn = t.app.services.orm.em.getConnection();
    await conn.execute('alter table store_notification rename to store_notification_away');
    try {
      expect((await post()).status).toBeGreaterThanOrEqual(500);
    } finally {
      await conn.execute('alter table store_notification_away rename to store_notification');
    }
    expect(await types(u)).toEqual(['INITIAL_PURCHASE']);
    expect((await post()).status).toBe(200);
    expect(await types(u)).toEqual(['INITIAL_PURCHASE', 'RENEWAL']);
  });

  it('retries a stored notification whose processing failed', async () => {
    const { u, original } = await subscriber('retry-later', 29.5);
    t.fake.renew(original);
    const conn = t.app.services.orm.em.getConnection();
    // Processing (not storing) fails: the event table is briefly unavailable.
    await conn.execute('alter table event rename to event_away');
    let uuid: string;
    try {
      const res = await notify('DID_RENEW', original);
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body).outcome).toBe('kept for retry');
      uuid = res.notificationUUID;
    } finally {
      await conn.execute('alter table event_away rename to event');
    }
    expect(await stored(uuid)).toMatchObject([{ status: 'RECEIVED' }]);
    expect(await t.app.services.appleNotifications!.processDue(new Date(nowMs + 3 * 3_600_000))).toBeGreaterThanOrEqual(1);
    expect(await stored(uuid)).toMatchObject([{ status: 'PROCESSED' }]);
    expect(await types(u)).toEqual(['INITIAL_PURCHASE', 'RENEWAL']);
  });
});

describe("Apple's real signed notification", () => {
  const FIXTURES = resolve(import.meta.dirname, '../../../shared/fixtures/apple');
  const signedPayload = readFileSync(`${FIXTURES}/sandbox-test-notification.jws`, 'utf8').trim();

  it('is accepted by the endpoint configured as the fixture README says, and altered copies are refused', async () => {
    const t = await startTestApp('pglite', {
      config: {
        APPLE_BUNDLE_ID: 'com.loki-project.loki-messenger',
        APPLE_ENVIRONMENT: 'SANDBOX',
        APPLE_ROOT_CERTIFICATES: `${FIXTURES}/AppleRootCA-G3.cer`,
      },
    });
    try {
      const url = new URL('/notifications/apple', t.url).toString();
      const post = (payload: string) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ signedPayload: payload }) });
      const res = await post(signedPayload);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ ok: true, outcome: 'ignored: test notification' });
      const rows = (await t.app.services.orm.em.getConnection().execute(`select type, status from store_notification where message_id = ?`, [
        '592751ef-c1b8-47fc-929e-d62dee66df4c',
      ])) as Row[];
      expect(rows).toEqual([{ type: 'TEST', status: 'IGNORED' }]);
      const [h, p, s] = signedPayload.split('.') as [string, string, string];
      const flip = (part: string, i: number) => part.slice(0, i) + (part[i] === 'A' ? 'B' : 'A') + part.slice(i + 1);
      for (const altered of [`${h}.${flip(p, 40)}.${s}`, `${h}.${p}.${flip(s, 20)}`, `${flip(h, 300)}.${p}.${s}`]) {
        expect((await post(altered)).status).toBe(401);
      }
    } finally {
      await t.close();
    }
  });
});
