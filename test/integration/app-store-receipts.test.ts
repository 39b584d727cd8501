// App Store end to end through GraphQL submitReceipt: Apple's own verifier and API client against a fake App
// Store on loopback that signs with a certificate chain generated in the test, on PostgreSQL and on PGlite.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateAppleChain, signAppleJws } from '../fakes/apple-certs.js';
import { FakeAppStore } from '../fakes/app-store.js';
import { COINS, customerOf, DAY, eventsOf, MONTHLY, NO_ADS, startAppleApp, submitApple, YEARLY, type AppleTestApp } from '../support/apple.js';
import { DATABASE_KINDS } from '../support/databases.js';

describe.each(DATABASE_KINDS)('App Store purchases on %s', (kind) => {
  let t: AppleTestApp;
  let users = 0;
  const user = (label: string) => `${label}-${kind}-${++users}`;

  beforeAll(async () => {
    t = await startAppleApp(kind);
  });
  afterAll(async () => {
    await t?.close();
  });

  describe('StoreKit 2 signed transactions', () => {
    it('grants a subscription from its signed transaction and Apple’s current status', async () => {
      const u = user('sk2');
      const tx = t.fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription' });
      const outcome = await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
      expect(outcome).toMatchObject({ status: 'VERIFIED', reason: 'OK', transactionIds: [tx.transactionId] });
      expect(outcome.entitlements).toMatchObject([{ identifier: 'pro', isActive: true, state: 'ACTIVE', willRenew: true, isSandbox: true, ownership: 'PURCHASED' }]);
      expect(t.fake.calls.some((c) => c.path.includes(`/inApps/v1/subscriptions/${tx.transactionId}`))).toBe(true);
      const [sub] = (await customerOf(t, u)).subscriptions;
      expect(sub).toMatchObject({ productId: MONTHLY, state: 'ACTIVE', originalTransactionId: tx.originalTransactionId, environment: 'SANDBOX' });
      expect(await eventsOf(t, u)).toMatchObject([{ type: 'INITIAL_PURCHASE', transactionId: tx.transactionId }]);
    });

    it('answers ALREADY_VERIFIED to the same transaction again, and grants nothing twice', async () => {
      const u = user('again');
      const tx = t.fake.buy({ productId: COINS, type: 'Consumable', quantity: 3 });
      const jws = t.fake.signedTransaction(tx.transactionId);
      const outcomes = await Promise.all([1, 2, 3, 4, 5].map(() => submitApple(t, u, { signedTransaction: jws })));
      expect(outcomes.filter((o) => o.status === 'VERIFIED')).toHaveLength(1);
      expect(outcomes.filter((o) => o.status === 'ALREADY_VERIFIED')).toHaveLength(4);
      expect((await customerOf(t, u)).creditBalances).toEqual([{ currency: 'coins', balance: 300 }]);
    });

    it('records the current state when the app submits an old transaction of a subscription that renewed since', async () => {
      const u = user('renewed');
      const first = t.fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription', purchaseDate: new Date(Date.now() - 40 * DAY) });
      const renewal = t.fake.renew(first.originalTransactionId);
      const outcome = await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(first.transactionId) });
      expect(outcome.status).toBe('VERIFIED');
      const [sub] = (await customerOf(t, u)).subscriptions;
      expect(sub).toMatchObject({ state: 'ACTIVE', latestTransactionId: renewal.transactionId, expiresAt: new Date(renewal.expiresDate!).toISOString() });
      expect((await eventsOf(t, u)).map((e) => e.type)).toEqual(['INITIAL_PURCHASE', 'RENEWAL']);
    });

    it('shows billing retry with grace as GRACE, and without grace as ON_HOLD (no access)', async () => {
      const graceUser = user('grace');
      const g = t.fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription', purchaseDate: new Date(Date.now() - 30 * DAY - 3_600_000) });
      t.fake.failToRenew(g.originalTransactionId, { graceMs: 6 * DAY });
      const graced = await submitApple(t, graceUser, { signedTransaction: t.fake.signedTransaction(g.transactionId) });
      expect(graced.entitlements).toMatchObject([{ identifier: 'pro', isActive: true, state: 'GRACE' }]);

      const holdUser = user('hold');
      const h = t.fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription', purchaseDate: new Date(Date.now() - 30 * DAY - 3_600_000) });
      t.fake.failToRenew(h.originalTransactionId);
      const held = await submitApple(t, holdUser, { signedTransaction: t.fake.signedTransaction(h.transactionId) });
      expect(held.entitlements).toMatchObject([{ identifier: 'pro', isActive: false, state: 'ON_HOLD' }]);
    });

    it('records a voluntary expiry with its reason', async () => {
      const u = user('expired');
      const tx = t.fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription', purchaseDate: new Date(Date.now() - 31 * DAY) });
      t.fake.expire(tx.originalTransactionId, 1);
      const outcome = await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
      expect(outcome.entitlements).toMatchObject([{ identifier: 'pro', isActive: false, state: 'EXPIRED', willRenew: false }]);
      expect((await customerOf(t, u)).subscriptions[0]).toMatchObject({ state: 'EXPIRED', expirationReason: 'VOLUNTARY' });
    });

    it('grants without the API when Apple’s API is down, and fetches the current state on the retry', async () => {
      const u = user('api-down');
      const tx = t.fake.buy({ productId: YEARLY, type: 'Auto-Renewable Subscription', periodMs: 365 * DAY });
      t.fake.setAutoRenew(tx.originalTransactionId, false);
      t.fake.failApi({ httpStatus: 503 }, 1);
      const jws = t.fake.signedTransaction(tx.transactionId);
      const outcome = await submitApple(t, u, { signedTransaction: jws });
      expect(outcome).toMatchObject({ status: 'VERIFIED', reason: 'OK' });
      // From the transaction alone: active, renewal unknown.
      expect((await customerOf(t, u)).subscriptions[0]).toMatchObject({ state: 'ACTIVE' });
      const retried = await t.app.services.receipts.retryPending(new Date(Date.now() + 3 * 3_600_000));
      expect(retried.stillPending).toBe(0);
      expect((await customerOf(t, u)).subscriptions[0]).toMatchObject({ state: 'CANCELED', willRenew: false });
      expect((await eventsOf(t, u)).map((e) => e.type)).toEqual(['INITIAL_PURCHASE', 'CANCELLATION']);
    });

    it('grants a family-shared purchase to the member who submits it, marked as such', async () => {
      const u = user('family');
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', ownership: 'FAMILY_SHARED' });
      const outcome = await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
      expect(outcome.entitlements).toMatchObject([{ identifier: 'no_ads', isActive: true, ownership: 'FAMILY_SHARED' }]);
      expect((await customerOf(t, u)).nonSubscriptionPurchases).toMatchObject([{ productId: NO_ADS, ownership: 'FAMILY_SHARED' }]);
    });

    it('keeps a transaction with its first customer: RECEIPT_IN_USE for a second one', async () => {
      const [first, second] = [user('owner'), user('replay')];
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable' });
      const jws = t.fake.signedTransaction(tx.transactionId);
      expect((await submitApple(t, first, { signedTransaction: jws })).status).toBe('VERIFIED');
      const replay = await submitApple(t, second, { signedTransaction: jws });
      expect(replay).toMatchObject({ status: 'REJECTED', reason: 'RECEIPT_IN_USE' });
      expect(replay.entitlements).toEqual([]);
    });

    const rejections: [what: string, make: (fake: FakeAppStore) => string, reason: string][] = [
      ['a tampered payload', (fake) => tamper(fake.signedTransaction(fake.buy({ productId: NO_ADS, type: 'Non-Consumable' }).transactionId), 'payload'), 'INVALID_SIGNATURE'],
      ['a tampered signature', (fake) => tamper(fake.signedTransaction(fake.buy({ productId: NO_ADS, type: 'Non-Consumable' }).transactionId), 'signature'), 'INVALID_SIGNATURE'],
      ['another app’s transaction', (fake) => resign(fake, { bundleId: 'com.example.other' }), 'WRONG_APP'],
      ['a product missing from the catalog', (fake) => fake.signedTransaction(fake.buy({ productId: 'com.example.app.unknown', type: 'Non-Consumable' }).transactionId), 'PRODUCT_NOT_IN_CATALOG'],
      ['a transaction signed by a stranger’s chain', (fake) => signAppleJws(payloadOf(fake.signedTransaction(fake.buy({ productId: NO_ADS, type: 'Non-Consumable' }).transactionId)), generateAppleChain()), 'INVALID_SIGNATURE'],
      ['garbage', () => 'not.a.jws', 'INVALID_SIGNATURE'],
    ];
    it.each(rejections)('rejects %s with a stable reason and grants nothing', async (_what, make, reason) => {
      const u = user('bad');
      const outcome = await submitApple(t, u, { signedTransaction: make(t.fake) });
      expect(outcome).toMatchObject({ status: 'REJECTED', reason });
      expect((await customerOf(t, u)).entitlements).toEqual([]);
    });
  });

  describe('legacy app receipts (verifyReceipt)', () => {
    it('records every transaction of a receipt once, finding the claimed one by id whatever the order', async () => {
      const u = user('receipt');
      const account = `acct-${u}`;
      const sub = t.fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription', account, purchaseDate: new Date(Date.now() - 35 * DAY) });
      const renewal = t.fake.renew(sub.originalTransactionId);
      const noAds = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account });
      const outcome = await submitApple(t, u, { appReceipt: t.fake.appReceipt({ account, order: 'shuffled' }), transactionId: noAds.transactionId });
      expect(outcome.status).toBe('VERIFIED');
      expect([...outcome.transactionIds].sort()).toEqual([sub.transactionId, renewal.transactionId, noAds.transactionId].sort());
      expect(outcome.entitlements.map((e) => [e.identifier, e.isActive])).toEqual([
        ['no_ads', true],
        ['pro', true],
      ]);
      // Another copy of the receipt (new bytes, reversed order): nothing new.
      const again = await submitApple(t, u, { appReceipt: t.fake.appReceipt({ account, order: 'desc' }), transactionId: sub.transactionId });
      expect(again.status).toBe('ALREADY_VERIFIED');
      expect((await eventsOf(t, u)).map((e) => e.type).sort()).toEqual(['INITIAL_PURCHASE', 'NON_CONSUMABLE_PURCHASE', 'RENEWAL']);
    });

    it('follows 21007 to the sandbox for App Review’s sandbox receipts', async () => {
      const u = user('review');
      const account = `acct-${u}`;
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Sandbox' });
      const outcome = await submitApple(t, u, { appReceipt: t.fake.appReceipt({ account, environment: 'Sandbox' }), transactionId: tx.transactionId });
      expect(outcome.status).toBe('VERIFIED');
      expect(outcome.entitlements).toMatchObject([{ identifier: 'no_ads', isSandbox: true }]);
      const paths = t.fake.calls.filter((c) => c.path.endsWith('verifyReceipt')).slice(-2).map((c) => c.path);
      expect(paths).toEqual(['/verifyReceipt', '/sandbox/verifyReceipt']);
    });

    it('records a production receipt as production', async () => {
      const u = user('prod');
      const account = `acct-${u}`;
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Production' });
      const outcome = await submitApple(t, u, { appReceipt: t.fake.appReceipt({ account, environment: 'Production' }), transactionId: tx.transactionId });
      expect(outcome.entitlements).toMatchObject([{ identifier: 'no_ads', isActive: true, isSandbox: false }]);
    });

    it('keeps a receipt Apple could not judge (21005) as PENDING and verifies it on the retry', async () => {
      const u = user('21005');
      const account = `acct-${u}`;
      const tx = t.fake.buy({ productId: COINS, type: 'Consumable', account, environment: 'Production' });
      t.fake.failVerifyReceipt({ status: 21005 });
      const receipt = t.fake.appReceipt({ account, environment: 'Production' });
      const pending = await submitApple(t, u, { appReceipt: receipt, transactionId: tx.transactionId });
      expect(pending).toMatchObject({ status: 'PENDING', reason: 'STORE_UNAVAILABLE' });
      expect((await customerOf(t, u)).creditBalances).toEqual([]);
      const retried = await t.app.services.receipts.retryPending(new Date(Date.now() + 3 * 3_600_000));
      expect(retried.verified).toBeGreaterThanOrEqual(1);
      expect((await customerOf(t, u)).creditBalances).toEqual([{ currency: 'coins', balance: 100 }]);
    });

    const temporary: [what: string, failure: Parameters<FakeAppStore['failVerifyReceipt']>[0]][] = [
      ['21002 at production alone (the sandbox reads it as a production receipt)', { status: 21002 }],
      ['21009', { status: 21009 }],
      ['21100', { status: 21100 }],
      ['21199', { status: 21199 }],
      ['HTTP 503', { httpStatus: 503 }],
      ['a timeout', { hangMs: 3000 }],
    ];
    it.each(temporary)('keeps the proof as PENDING on %s', async (_what, failure) => {
      const u = user('temp');
      const account = `acct-${u}`;
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Production' });
      t.fake.failVerifyReceipt(failure);
      const outcome = await submitApple(t, u, { appReceipt: t.fake.appReceipt({ account, environment: 'Production' }), transactionId: tx.transactionId });
      expect(outcome).toMatchObject({ status: 'PENDING', reason: 'STORE_UNAVAILABLE' });
      const kept = (await t.app.services.orm.em.getConnection().execute(`select status from pending_proof where app_user_id = ?`, [u])) as { status: string }[];
      expect(kept).toEqual([{ status: 'PENDING' }]);
    });

    const definitive: [status: number, reason: string][] = [
      [21003, 'INVALID_RECEIPT'],
      [21010, 'INVALID_RECEIPT'],
    ];

    it('keeps the receipt as PENDING / STORE_AUTH_FAILED when Apple refuses our shared secret (21004)', async () => {
      const u = user('s21004');
      const account = `acct-${u}`;
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Production' });
      t.fake.failVerifyReceipt({ status: 21004 });
      const outcome = await submitApple(t, u, { appReceipt: t.fake.appReceipt({ account, environment: 'Production' }), transactionId: tx.transactionId });
      expect(outcome).toMatchObject({ status: 'PENDING', reason: 'STORE_AUTH_FAILED' });
      expect(outcome.message).toContain('APPLE_SHARED_SECRET');
      await t.app.services.receipts.retryPending(new Date(Date.now() + 3 * 3_600_000));
      expect((await customerOf(t, u)).entitlements).toMatchObject([{ identifier: 'no_ads', isActive: true }]);
    });
    it.each(definitive)('rejects %s with the status named', async (status, reason) => {
      const u = user(`s${status}`);
      const account = `acct-${u}`;
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Production' });
      t.fake.failVerifyReceipt({ status });
      const outcome = await submitApple(t, u, { appReceipt: t.fake.appReceipt({ account, environment: 'Production' }), transactionId: tx.transactionId });
      expect(outcome).toMatchObject({ status: 'REJECTED', reason });
      expect(outcome.message).toContain(String(status));
    });

    it('rejects a valid receipt that does not contain the claimed transaction', async () => {
      const u = user('claim');
      const account = `acct-${u}`;
      t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Production' });
      const elsewhere = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account: `other-${u}`, environment: 'Production' });
      const outcome = await submitApple(t, u, { appReceipt: t.fake.appReceipt({ account, environment: 'Production' }), transactionId: elsewhere.transactionId });
      expect(outcome).toMatchObject({ status: 'REJECTED', reason: 'INVALID_RECEIPT' });
      expect((await customerOf(t, u)).entitlements).toEqual([]);
    });

    it('answers RECEIPT_IN_USE when a second customer replays the receipt', async () => {
      const [first, second] = [user('first'), user('second')];
      const account = `acct-${first}`;
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Production' });
      expect((await submitApple(t, first, { appReceipt: t.fake.appReceipt({ account, environment: 'Production' }), transactionId: tx.transactionId })).status).toBe('VERIFIED');
      const replay = await submitApple(t, second, { appReceipt: t.fake.appReceipt({ account, environment: 'Production' }), transactionId: tx.transactionId });
      expect(replay).toMatchObject({ status: 'REJECTED', reason: 'RECEIPT_IN_USE' });
      expect((await customerOf(t, second)).entitlements).toEqual([]);
    });

    it('rejects a receipt without any form of proof as bad input', async () => {
      const res = await t.server(`mutation { submitReceipt(input: { appUserId: "x", store: APP_STORE, apple: {} }) { status } }`);
      expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    });
  });
});

describe('App Store configuration edges', () => {
  it('rejects sandbox purchases on a production server that does not accept them', async () => {
    const t = await startAppleApp('pglite', { config: { APPLE_ACCEPT_SANDBOX: 'false' } });
    try {
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', environment: 'Sandbox', account: 'review' });
      expect(await submitApple(t, 'u1', { signedTransaction: t.fake.signedTransaction(tx.transactionId) })).toMatchObject({ status: 'REJECTED', reason: 'WRONG_ENVIRONMENT' });
      expect(await submitApple(t, 'u1', { appReceipt: t.fake.appReceipt({ account: 'review', environment: 'Sandbox' }), transactionId: tx.transactionId })).toMatchObject({
        status: 'REJECTED',
        reason: 'WRONG_ENVIRONMENT',
      });
    } finally {
      await t.close();
    }
  });

  it('records a subscription from the transaction alone when no API key is configured', async () => {
    const t = await startAppleApp('pglite', { api: false });
    try {
      const tx = t.fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription' });
      const outcome = await submitApple(t, 'u1', { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
      expect(outcome.entitlements).toMatchObject([{ identifier: 'pro', isActive: true }]);
      expect(t.fake.calls.filter((c) => c.path.includes('/inApps/'))).toEqual([]);
    } finally {
      await t.close();
    }
  });
});

function payloadOf(jws: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** Re-signs a transaction with the fake's own chain after changing fields: a validly signed but wrong payload. */
function resign(fake: FakeAppStore, change: Record<string, unknown>): string {
  const tx = fake.buy({ productId: NO_ADS, type: 'Non-Consumable' });
  return signAppleJws({ ...payloadOf(fake.signedTransaction(tx.transactionId)), ...change }, fake.chain);
}

function tamper(jws: string, part: 'payload' | 'signature'): string {
  const [h, p, s] = jws.split('.') as [string, string, string];
  if (part === 'payload') {
    const payload = payloadOf(jws);
    return `${h}.${Buffer.from(JSON.stringify({ ...payload, quantity: 99 })).toString('base64url')}.${s}`;
  }
  const sig = Buffer.from(s, 'base64url');
  sig[10] = sig[10]! ^ 0xff;
  return `${h}.${p}.${sig.toString('base64url')}`;
}
