// Orders (createOrder -> the token travels through the store -> the purchase finds its order and customer),
// the transfer policy for purchases another customer owns, and the customer's kept and refused proofs.
// Through GraphQL, against the fake App Store and the fake Play API.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { customerOf, eventsOf, MONTHLY, NO_ADS, COINS, startAppleApp, submitApple, type AppleTestApp } from '../support/apple.js';
import { DATABASE_KINDS } from '../support/databases.js';
import { PACKAGE, startGoogleApp, submitGoogle, type GoogleTestApp } from '../support/google.js';
import type { TestApp } from '../support/test-app.js';

const DAY = 86_400_000;

const CREATE = `mutation($input: CreateOrderInput!) { createOrder(input: $input) { id appUserId store productId token status expiresAt storeTransactionId } }`;
const ORDER = `query($id: ID!) { order(orderId: $id) { status storeTransactionId } }`;

async function createOrder(t: TestApp, appUserId: string, store: string, productId: string) {
  const res = await t.server(CREATE, { input: { appUserId, store, productId } });
  if (res.errors) throw new Error(JSON.stringify(res.errors));
  return res.data!.createOrder as { id: string; token: string; status: string; expiresAt: string };
}
async function orderOf(t: TestApp, id: string) {
  return (await t.server(ORDER, { id })).data!.order as { status: string; storeTransactionId: string | null };
}

describe.each(DATABASE_KINDS)('orders on %s (App Store)', (kind) => {
  let t: AppleTestApp;
  let n = 0;
  const user = (label: string) => `${label}-${kind}-${++n}`;
  beforeAll(async () => {
    t = await startAppleApp(kind);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('issues a UUID token and fulfils the order when the purchase carrying it is submitted', async () => {
    const u = user('token');
    const order = await createOrder(t, u, 'APP_STORE', NO_ADS);
    expect(order).toMatchObject({ status: 'CREATED' });
    expect(order.token).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', appAccountToken: order.token });
    await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
    expect(await orderOf(t, order.id)).toEqual({ status: 'FULFILLED', storeTransactionId: tx.transactionId });
  });

  it('finds the customer by the order token when the app died and only Apple’s notification arrives', async () => {
    const u = user('lost');
    const order = await createOrder(t, u, 'APP_STORE', MONTHLY);
    const tx = t.fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription', appAccountToken: order.token });
    const res = await t.fake.notify({ notificationType: 'SUBSCRIBED', subtype: 'INITIAL_BUY', originalTransactionId: tx.originalTransactionId, url: t.notificationUrl });
    expect(JSON.parse(res.body).outcome).toBe(`applied to ${u}`);
    expect((await customerOf(t, u)).entitlements).toMatchObject([{ identifier: 'pro', isActive: true }]);
    expect(await orderOf(t, order.id)).toEqual({ status: 'FULFILLED', storeTransactionId: tx.transactionId });
    // The app comes back later and submits it: nothing new, nothing twice.
    expect((await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) })).status).toBe('ALREADY_VERIFIED');
    expect((await eventsOf(t, u)).map((e) => e.type)).toEqual(['INITIAL_PURCHASE']);
  });

  it('matches a purchase without a token to the customer’s open order for the product within the window', async () => {
    const u = user('window');
    const order = await createOrder(t, u, 'APP_STORE', NO_ADS);
    const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable' });
    await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
    expect(await orderOf(t, order.id)).toMatchObject({ status: 'FULFILLED' });
  });

  it('does not match a purchase made long after the order, and still grants it', async () => {
    const u = user('late');
    const order = await createOrder(t, u, 'APP_STORE', NO_ADS);
    const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', purchaseDate: new Date(Date.now() + 3 * 3_600_000) });
    const outcome = await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
    expect(outcome.entitlements).toMatchObject([{ identifier: 'no_ads', isActive: true }]);
    expect(await orderOf(t, order.id)).toMatchObject({ status: 'CREATED', storeTransactionId: null });
  });

  it('never matches across customers: another customer’s token grants to the submitter and leaves the order open', async () => {
    const [owner, other] = [user('owner'), user('other')];
    const order = await createOrder(t, owner, 'APP_STORE', NO_ADS);
    const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', appAccountToken: order.token });
    const outcome = await submitApple(t, other, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
    expect(outcome.entitlements).toMatchObject([{ identifier: 'no_ads', isActive: true }]);
    expect(await orderOf(t, order.id)).toMatchObject({ status: 'CREATED' });
  });

  it('expires unpaid orders, and a late purchase carrying the token still fulfils one', async () => {
    const u = user('expire');
    const order = await createOrder(t, u, 'APP_STORE', COINS);
    expect(await t.app.services.orders.expireDue(new Date(Date.now() + 2 * 86_400_000))).toBeGreaterThanOrEqual(1);
    expect(await orderOf(t, order.id)).toMatchObject({ status: 'EXPIRED' });
    const tx = t.fake.buy({ productId: COINS, type: 'Consumable', appAccountToken: order.token });
    await submitApple(t, u, { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
    expect(await orderOf(t, order.id)).toEqual({ status: 'FULFILLED', storeTransactionId: tx.transactionId });
  });

  it('cancels an open order, and only an open one', async () => {
    const u = user('cancel');
    const order = await createOrder(t, u, 'APP_STORE', NO_ADS);
    const cancel = `mutation($id: ID!) { cancelOrder(orderId: $id) { status } }`;
    expect((await t.server(cancel, { id: order.id })).data!.cancelOrder).toEqual({ status: 'CANCELED' });
    const again = await t.server(cancel, { id: order.id });
    expect(again.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('refuses an order for a product missing from the catalog, and another user’s order to a user token', async () => {
    const res = await t.server(CREATE, { input: { appUserId: user('x'), store: 'APP_STORE', productId: 'nope' } });
    expect(res.errors?.[0]?.extensions?.code).toBe('PRODUCT_NOT_IN_CATALOG');
  });

  it('shows a purchase the store could not verify yet as pending, and a refused one with its reason', async () => {
    const u = user('kept');
    const account = `acct-${u}`;
    const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Production' });
    t.fake.failVerifyReceipt({ status: 21005 });
    await submitApple(t, u, { appReceipt: t.fake.appReceipt({ account, environment: 'Production' }), transactionId: tx.transactionId });
    t.fake.failVerifyReceipt({ status: 21003 });
    await submitApple(t, u, { appReceipt: t.fake.appReceipt({ account, environment: 'Production' }), transactionId: tx.transactionId });
    const res = await t.server(`query($id: String!) { customer(appUserId: $id) { pendingPurchases { store reason attempts nextAttemptAt } rejectedProofs { store reason message } } }`, {
      id: u,
    });
    const c = res.data!.customer as { pendingPurchases: Record<string, unknown>[]; rejectedProofs: Record<string, unknown>[] };
    expect(c.pendingPurchases).toMatchObject([{ store: 'APP_STORE', reason: 'STORE_UNAVAILABLE', attempts: 1 }]);
    expect(c.pendingPurchases[0]!.nextAttemptAt).not.toBeNull();
    expect(c.rejectedProofs).toMatchObject([{ store: 'APP_STORE', reason: 'INVALID_RECEIPT' }]);
    expect(c.rejectedProofs[0]!.message).toContain('21003');
  });

  it('prunes verified proofs not submitted for the retention time; refused ones stay, and a resubmission still answers', async () => {
    const u = user('prune');
    const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable' });
    const signed = t.fake.signedTransaction(tx.transactionId);
    expect((await submitApple(t, u, { signedTransaction: signed })).status).toBe('VERIFIED');
    await submitApple(t, u, { signedTransaction: 'not.a.jws' });
    const sql = t.app.orm.em.getConnection();
    const kept = async () =>
      ((await sql.execute(`select status from pending_proof where app_user_id = ? order by status`, [u])) as { status: string }[]).map((r) => r.status);
    expect(await kept()).toEqual(['REJECTED', 'VERIFIED']);
    const proofs = t.app.services.pendingProofs;
    expect(await proofs.pruneVerified(new Date(Date.now() + 89 * DAY), 90 * DAY)).toEqual({ deleted: 0 });
    const pruned = await proofs.pruneVerified(new Date(Date.now() + 91 * DAY), 90 * DAY);
    expect(pruned.deleted).toBeGreaterThanOrEqual(1);
    expect(await kept()).toEqual(['REJECTED']);
    expect((await submitApple(t, u, { signedTransaction: signed })).status).toBe('ALREADY_VERIFIED');
  });

  it('keeps a proof before asking the store: another instance takes it over once the lease ends', async () => {
    const u = user('inflight');
    const account = `acct-${u}`;
    const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Production' });
    t.fake.failVerifyReceipt({ hangMs: 1000 }); // this instance's store call hangs, then fails
    const inFlight = submitApple(t, u, { appReceipt: t.fake.appReceipt({ account, environment: 'Production' }), transactionId: tx.transactionId });
    const kept = async () =>
      (await t.server(`query($id: String!) { customer(appUserId: $id) { pendingPurchases { reason attempts } } }`, { id: u })).data!.customer.pendingPurchases as {
        reason: string;
        attempts: number;
      }[];
    let seen: { reason: string; attempts: number }[] = [];
    for (let i = 0; i < 100 && seen.length === 0; i++) {
      seen = await kept();
      if (seen.length === 0) await new Promise((r) => setTimeout(r, 5));
    }
    expect(seen).toEqual([{ reason: 'VERIFYING', attempts: 0 }]);
    // The retry job leaves it alone while the request may still finish (its lease has not ended)...
    await t.app.services.receipts.retryPending(new Date());
    expect(await kept()).toEqual([{ reason: 'VERIFYING', attempts: 0 }]);
    // ...and verifies it once the lease has passed, as it would if this instance had died during the call.
    await t.app.services.receipts.retryPending(new Date(Date.now() + 10 * 60_000));
    expect((await customerOf(t, u)).entitlements).toMatchObject([{ identifier: 'no_ads', isActive: true }]);
    // The stale request's failure, arriving last, does not bring the verified proof back as pending.
    expect((await inFlight).status).toBe('PENDING');
    expect(await kept()).toEqual([]);
    expect((await eventsOf(t, u)).map((e) => e.type)).toEqual(['NON_CONSUMABLE_PURCHASE']);
  });
});

describe('orders on Google Play: the token travels as obfuscatedAccountId', () => {
  let t: GoogleTestApp;
  beforeAll(async () => {
    t = await startGoogleApp('pglite');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('fulfils the order named by obfuscatedExternalAccountId', async () => {
    const order = await createOrder(t, 'g-user', 'PLAY_STORE', 'no_ads');
    t.fake.setProduct('tok-order-1', {
      packageName: PACKAGE,
      productId: 'no_ads',
      purchaseState: 0,
      orderId: 'GPA.1111-2222-3333-44444',
      purchaseTimeMillis: String(Date.now()),
      obfuscatedExternalAccountId: order.token,
    });
    expect((await submitGoogle(t, 'g-user', 'no_ads', 'tok-order-1')).status).toBe('VERIFIED');
    expect(await orderOf(t, order.id)).toEqual({ status: 'FULFILLED', storeTransactionId: 'GPA.1111-2222-3333-44444' });
  });
});

describe('transfer policy for a purchase another customer owns', () => {
  const cases: [policy: string, ownerStillActive: boolean, expected: { status: string; reason: string; moved: boolean }][] = [
    ['KEEP_WITH_ORIGINAL', true, { status: 'REJECTED', reason: 'RECEIPT_IN_USE', moved: false }],
    ['TRANSFER', true, { status: 'VERIFIED', reason: 'TRANSFERRED', moved: true }],
    ['TRANSFER_IF_NO_ACTIVE', true, { status: 'REJECTED', reason: 'RECEIPT_IN_USE', moved: false }],
    ['TRANSFER_IF_NO_ACTIVE', false, { status: 'VERIFIED', reason: 'TRANSFERRED', moved: true }],
  ];
  it.each(cases)('%s with the owner still active: %s', async (policy, ownerStillActive, expected) => {
    const t = await startAppleApp('pglite', { config: { RECEIPT_TRANSFER_POLICY: policy } });
    try {
      const purchaseDate = ownerStillActive ? new Date() : new Date(Date.now() - 40 * 86_400_000);
      const tx = t.fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription', purchaseDate });
      if (!ownerStillActive) t.fake.expire(tx.originalTransactionId, 1);
      const jws = t.fake.signedTransaction(tx.transactionId);
      await submitApple(t, 'first', { signedTransaction: jws });
      const second = await submitApple(t, 'second', { signedTransaction: jws });
      expect(second).toMatchObject({ status: expected.status, reason: expected.reason });
      const [first, next] = [await customerOf(t, 'first'), await customerOf(t, 'second')];
      expect(next.subscriptions.length).toBe(expected.moved ? 1 : 0);
      expect(first.subscriptions.length).toBe(expected.moved ? 0 : 1);
      if (expected.moved) {
        expect(first.entitlements.filter((e) => e.isActive)).toEqual([]);
        expect((await eventsOf(t, 'first')).at(-1)).toMatchObject({ type: 'TRANSFER', data: { direction: 'OUT', toAppUserId: 'second' } });
        expect((await eventsOf(t, 'second')).map((e) => e.type)).toEqual(['TRANSFER']);
        expect((await eventsOf(t, 'second'))[0]!.data).toMatchObject({ direction: 'IN', fromAppUserId: 'first' });
        // And back again: each move is its own event.
        expect((await submitApple(t, 'first', { signedTransaction: jws })).reason).toBe('TRANSFERRED');
        expect((await eventsOf(t, 'first')).filter((e) => e.type === 'TRANSFER')).toHaveLength(2);
      }
    } finally {
      await t.close();
    }
  });

  it('never moves a consumable’s credits, whatever the policy', async () => {
    const t = await startAppleApp('pglite', { config: { RECEIPT_TRANSFER_POLICY: 'TRANSFER' } });
    try {
      const tx = t.fake.buy({ productId: COINS, type: 'Consumable' });
      const jws = t.fake.signedTransaction(tx.transactionId);
      await submitApple(t, 'first', { signedTransaction: jws });
      expect(await submitApple(t, 'second', { signedTransaction: jws })).toMatchObject({ status: 'REJECTED', reason: 'RECEIPT_IN_USE' });
      expect((await customerOf(t, 'first')).creditBalances).toEqual([{ currency: 'coins', balance: 100 }]);
      expect((await customerOf(t, 'second')).creditBalances).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it('applies the sandbox policy to sandbox purchases', async () => {
    const t = await startAppleApp('pglite', { config: { RECEIPT_TRANSFER_POLICY: 'KEEP_WITH_ORIGINAL', RECEIPT_TRANSFER_POLICY_SANDBOX: 'TRANSFER' } });
    try {
      const sandbox = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', environment: 'Sandbox' });
      const production = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', environment: 'Production' });
      for (const tx of [sandbox, production]) await submitApple(t, 'tester-a', { signedTransaction: t.fake.signedTransaction(tx.transactionId) });
      expect((await submitApple(t, 'tester-b', { signedTransaction: t.fake.signedTransaction(sandbox.transactionId) })).reason).toBe('TRANSFERRED');
      expect((await submitApple(t, 'tester-b', { signedTransaction: t.fake.signedTransaction(production.transactionId) })).reason).toBe('RECEIPT_IN_USE');
    } finally {
      await t.close();
    }
  });

  it('settles concurrent claims of one purchase by two customers on one owner', async () => {
    const t = await startAppleApp('postgresql', { config: { RECEIPT_TRANSFER_POLICY: 'TRANSFER_IF_NO_ACTIVE' } });
    try {
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable' });
      const jws = t.fake.signedTransaction(tx.transactionId);
      const outcomes = await Promise.all(['a', 'b', 'a', 'b', 'a', 'b'].map((u) => submitApple(t, u, { signedTransaction: jws })));
      const owners = [await customerOf(t, 'a'), await customerOf(t, 'b')].map((c) => c.nonSubscriptionPurchases.length);
      expect(owners.sort()).toEqual([0, 1]);
      expect(outcomes.filter((o) => o.status === 'VERIFIED')).toHaveLength(1);
    } finally {
      await t.close();
    }
  });
});
