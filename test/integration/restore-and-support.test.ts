// restorePurchases (Apple: the account's whole history through the App Store Server API; Google: the tokens
// the app holds) and the support tools (purchase lookup by the ids customers quote, promotional entitlements,
// event history). Through GraphQL against the fake stores.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COINS, customerOf, MONTHLY, NO_ADS, startAppleApp, submitApple, type AppleTestApp } from '../support/apple.js';
import { DATABASE_KINDS } from '../support/databases.js';
import { PACKAGE, startGoogleApp, subscription, submitGoogle, type GoogleTestApp } from '../support/google.js';
import { TEST_JWT_SECRET } from '../support/test-app.js';
import { SignJWT } from 'jose';

const RESTORE = `mutation($input: RestorePurchasesInput!) { restorePurchases(input: $input) {
  restoredTransactionIds transferredTransactionIds inUseTransactionIds pending { reason } rejected { reason } entitlements { identifier isActive }
} }`;
const LOOKUP = `query($tx: String, $gpa: String, $apple: String) { purchaseLookup(storeTransactionId: $tx, googleOrderId: $gpa, appleOrderId: $apple) {
  purchases { store productId storeTransactionId appUserId } unrecordedTransactionIds
} }`;

const userToken = (sub: string) =>
  new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('5m').sign(new TextEncoder().encode(TEST_JWT_SECRET));

describe.each(DATABASE_KINDS)('restore and support on %s (App Store)', (kind) => {
  let t: AppleTestApp;
  let n = 0;
  const user = (label: string) => `${label}-${kind}-${++n}`;
  beforeAll(async () => {
    t = await startAppleApp(kind, { config: { RECEIPT_TRANSFER_POLICY: 'TRANSFER' } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('restores every purchase of the Apple account from one signed transaction, including one never submitted', async () => {
    const [u, account] = [user('restore'), `acct-${n}`];
    const sub = t.fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription', account });
    const noAds = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account });
    const coins = t.fake.buy({ productId: COINS, type: 'Consumable', account });
    const res = await t.server(RESTORE, { input: { appUserId: u, store: 'APP_STORE', apple: { signedTransaction: t.fake.signedTransaction(sub.transactionId) } } });
    const r = res.data!.restorePurchases as Record<string, any>;
    expect([...r.restoredTransactionIds].sort()).toEqual([sub.transactionId, noAds.transactionId, coins.transactionId].sort());
    expect(r.entitlements).toEqual([
      { identifier: 'no_ads', isActive: true },
      { identifier: 'pro', isActive: true },
    ]);
    // The consumable nobody had claimed is credited once; a second restore changes nothing.
    expect((await customerOf(t, u)).creditBalances).toEqual([{ currency: 'coins', balance: 100 }]);
    await t.server(RESTORE, { input: { appUserId: u, store: 'APP_STORE', apple: { signedTransaction: t.fake.signedTransaction(noAds.transactionId) } } });
    expect((await customerOf(t, u)).creditBalances).toEqual([{ currency: 'coins', balance: 100 }]);
  });

  it('moves subscriptions and non-consumables to the restoring customer under the transfer policy, never credits', async () => {
    const [first, second, account] = [user('old-device'), user('new-login'), `acct-${n}`];
    const noAds = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account });
    const coins = t.fake.buy({ productId: COINS, type: 'Consumable', account });
    for (const tx of [noAds, coins]) await submitApple(t, first, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
    const res = await t.server(RESTORE, { input: { appUserId: second, store: 'APP_STORE', apple: { signedTransaction: t.fake.signedTransaction(coins.transactionId) } } });
    const r = res.data!.restorePurchases as Record<string, any>;
    expect(r.transferredTransactionIds).toEqual([noAds.transactionId]);
    expect(r.inUseTransactionIds).toEqual([coins.transactionId]);
    expect((await customerOf(t, first)).creditBalances).toEqual([{ currency: 'coins', balance: 100 }]);
    expect((await customerOf(t, first)).entitlements.filter((e) => e.isActive)).toEqual([]);
    expect((await customerOf(t, second)).entitlements).toMatchObject([{ identifier: 'no_ads', isActive: true }]);
  });

  it('restores from a legacy receipt', async () => {
    const [u, account] = [user('receipt'), `acct-${n}`];
    const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Production' });
    const res = await t.server(RESTORE, { input: { appUserId: u, store: 'APP_STORE', apple: { appReceipt: t.fake.appReceipt({ account, environment: 'Production' }) } } });
    expect((res.data!.restorePurchases as Record<string, any>).restoredTransactionIds).toEqual([tx.transactionId]);
  });

  it('keeps the proof and restores the submitted transaction when Apple’s history is unavailable', async () => {
    const [u, account] = [user('outage'), `acct-${n}`];
    const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account });
    t.fake.failApi({ httpStatus: 503 });
    const res = await t.server(RESTORE, { input: { appUserId: u, store: 'APP_STORE', apple: { signedTransaction: t.fake.signedTransaction(tx.transactionId) } } });
    expect((res.data!.restorePurchases as Record<string, any>).restoredTransactionIds).toEqual([tx.transactionId]);
    const c = await t.server(`query($id: String!) { customer(appUserId: $id) { pendingPurchases { reason } } }`, { id: u });
    expect(c.data!.customer.pendingPurchases).toEqual([{ reason: 'STORE_UNAVAILABLE' }]);
  });

  it('looks a purchase up by store transaction id and by the order id on Apple’s e-mailed receipt', async () => {
    const u = user('support');
    const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', environment: 'Production' });
    const never = t.fake.buy({ productId: COINS, type: 'Consumable', environment: 'Production' });
    await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
    const byTx = await t.server(LOOKUP, { tx: tx.transactionId });
    expect(byTx.data!.purchaseLookup).toEqual({ purchases: [{ store: 'APP_STORE', productId: NO_ADS, storeTransactionId: tx.transactionId, appUserId: u }], unrecordedTransactionIds: [] });
    const byOrder = await t.server(LOOKUP, { apple: tx.orderId });
    expect(byOrder.data!.purchaseLookup.purchases).toMatchObject([{ storeTransactionId: tx.transactionId, appUserId: u }]);
    const notSubmitted = await t.server(LOOKUP, { apple: never.orderId });
    expect(notSubmitted.data!.purchaseLookup).toEqual({ purchases: [], unrecordedTransactionIds: [never.transactionId] });
    expect((await t.server(LOOKUP, {})).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('grants and revokes a promotional entitlement, recorded as events', async () => {
    const u = user('promo');
    const expiresAt = new Date(Date.now() + 7 * 86_400_000).toISOString();
    const grant = await t.server(
      `mutation($input: GrantPromotionalInput!) { grantPromotionalEntitlement(input: $input) { id entitlement expiresAt reason } }`,
      { input: { appUserId: u, entitlement: 'pro', expiresAt, reason: 'support ticket 812' } },
    );
    expect(grant.data!.grantPromotionalEntitlement).toMatchObject({ entitlement: 'pro', expiresAt, reason: 'support ticket 812' });
    expect((await customerOf(t, u)).entitlements).toMatchObject([{ identifier: 'pro', isActive: true, productId: 'promotional' }]);
    const store = await t.server(`query($id: String!) { entitlements(appUserId: $id) { store expiresAt } }`, { id: u });
    expect(store.data!.entitlements).toEqual([{ store: 'PROMOTIONAL', expiresAt }]);
    const revoke = await t.server(`mutation($input: RevokePromotionalInput!) { revokePromotionalEntitlement(input: $input) }`, {
      input: { appUserId: u, entitlement: 'pro', reason: 'granted by mistake' },
    });
    expect(revoke.data!.revokePromotionalEntitlement).toBe(1);
    expect((await customerOf(t, u)).entitlements).toEqual([]);
    const events = await t.server(`query($id: String!) { customerEvents(appUserId: $id) { id type data } }`, { id: u });
    expect(events.data!.customerEvents.map((e: { type: string }) => e.type)).toEqual(['PROMOTIONAL_REVOCATION', 'PROMOTIONAL_GRANT']);
    expect(events.data!.customerEvents[1].data).toMatchObject({ entitlement: 'pro', reason: 'support ticket 812' });
    const older = await t.server(`query($id: String!, $before: String) { customerEvents(appUserId: $id, limit: 1, before: $before) { type } }`, {
      id: u,
      before: events.data!.customerEvents[0].id,
    });
    expect(older.data!.customerEvents).toEqual([{ type: 'PROMOTIONAL_GRANT' }]);
  });

  it('refuses an unknown entitlement and a past expiry', async () => {
    const q = `mutation($input: GrantPromotionalInput!) { grantPromotionalEntitlement(input: $input) { id } }`;
    expect((await t.server(q, { input: { appUserId: 'x', entitlement: 'nope', reason: 'r' } })).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect((await t.server(q, { input: { appUserId: 'x', entitlement: 'pro', reason: 'r', expiresAt: '2020-01-01T00:00:00Z' } })).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('keeps the support tools for server keys: a user token is FORBIDDEN', async () => {
    const u = user('nosy');
    const headers = { authorization: `Bearer ${await userToken(u)}` };
    const attempts = [
      [LOOKUP, { tx: '1' }],
      [`query { customerEvents(appUserId: "${u}") { id } }`, {}],
      [`mutation { grantPromotionalEntitlement(input: { appUserId: "${u}", entitlement: "pro", reason: "me" }) { id } }`, {}],
      [`mutation { revokePromotionalEntitlement(input: { appUserId: "${u}", entitlement: "pro", reason: "me" }) }`, {}],
    ] as const;
    for (const [query, variables] of attempts) {
      expect((await t.gql(query, variables, headers)).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    }
  });
});

describe('restore and support on Google Play', () => {
  let t: GoogleTestApp;
  beforeAll(async () => {
    t = await startGoogleApp('pglite');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('restores the tokens the app holds, keeping one Google could not read for later', async () => {
    const start = new Date(Date.now() - 3 * 86_400_000);
    t.fake.setSubscription('tok-sub', subscription('ACTIVE', { start, expiry: new Date(Date.now() + 27 * 86_400_000), orderId: 'GPA.9000-0000-0000-00001' }));
    t.fake.setProduct('tok-noads', { packageName: PACKAGE, productId: 'no_ads', purchaseState: 0, orderId: 'GPA.9000-0000-0000-00002', purchaseTimeMillis: String(start.getTime()) });
    t.fake.failNext({ status: 503 }, { pathIncludes: '/products/no_ads/' });
    const res = await t.server(RESTORE, {
      input: {
        appUserId: 'g1',
        store: 'PLAY_STORE',
        google: [
          { productId: 'pro_monthly', purchaseToken: 'tok-sub' },
          { productId: 'no_ads', purchaseToken: 'tok-noads' },
        ],
      },
    });
    const r = res.data!.restorePurchases as Record<string, any>;
    expect(r.restoredTransactionIds).toEqual(['GPA.9000-0000-0000-00001']);
    expect(r.pending).toEqual([{ reason: 'STORE_UNAVAILABLE' }]);
    expect(r.entitlements).toEqual([{ identifier: 'pro', isActive: true }]);
    // The kept token is verified on the retry.
    await t.app.services.receipts.retryPending(new Date(Date.now() + 3 * 3_600_000));
    expect((await customerOf(t, 'g1')).entitlements.map((e) => e.identifier)).toEqual(['no_ads', 'pro']);
  });

  it('finds a Google order and its renewals by the GPA order id', async () => {
    const start = new Date(Date.now() - 40 * 86_400_000);
    t.fake.setSubscription('tok-renewing', subscription('ACTIVE', { start, expiry: new Date(Date.now() - 10 * 86_400_000), orderId: 'GPA.7000-0000-0000-00001' }));
    await submitGoogle(t, 'g2', 'pro_monthly', 'tok-renewing');
    t.fake.setSubscription('tok-renewing', subscription('ACTIVE', { start, expiry: new Date(Date.now() + 20 * 86_400_000), orderId: 'GPA.7000-0000-0000-00001..0' }));
    await submitGoogle(t, 'g2', 'pro_monthly', 'tok-renewing');
    const res = await t.server(LOOKUP, { gpa: 'GPA.7000-0000-0000-00001' });
    expect(res.data!.purchaseLookup.purchases.map((p: { storeTransactionId: string }) => p.storeTransactionId)).toEqual([
      'GPA.7000-0000-0000-00001',
      'GPA.7000-0000-0000-00001..0',
    ]);
  });
});
