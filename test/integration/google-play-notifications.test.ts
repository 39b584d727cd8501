// Google Play real-time developer notifications through the Pub/Sub push endpoint, and the Voided Purchases
// API: the purchase is always re-read from the fake Play Developer API and applied through the engine.
import { createServer, type Server } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASE_KINDS } from '../support/databases.js';
import { customerOf, DAY, eventually, PACKAGE, pushNotification, startGoogleApp, submitGoogle, subscription, type GoogleTestApp } from '../support/google.js';

describe.each(DATABASE_KINDS)('Google notifications on %s', (kind) => {
  let t: GoogleTestApp;
  let n = 0;
  const id = (label: string) => `${label}-${kind}-${++n}`;
  const now = Date.now();
  const start = new Date(now - 10 * DAY);
  const expiry = new Date(now + 20 * DAY);

  beforeAll(async () => {
    t = await startGoogleApp(kind);
  });
  afterAll(async () => {
    await t?.close();
  });

  const subNotification = (type: number, purchaseToken: string) => ({ subscriptionNotification: { version: '1.0', notificationType: type, purchaseToken, subscriptionId: 'pro_monthly' } });
  const events = async (user: string) =>
    (await t.app.orm.em.getConnection().execute(
      `select e.type from event e join customer c on c.id = e.customer_id where c.app_user_id = ? order by e.occurred_at, e.id`,
      [user],
    )).map((r: Record<string, unknown>) => r.type);

  /** A subscriber with an active subscription, as the app reported it. */
  async function subscriber(): Promise<{ user: string; tok: string }> {
    const tok = id('tok');
    const user = id('user');
    t.fake.setSubscription(tok, subscription('ACTIVE', { start, expiry, orderId: `${tok}-o0`, acknowledged: true }));
    expect((await submitGoogle(t, user, 'pro_monthly', tok)).status).toBe('VERIFIED');
    return { user, tok };
  }

  it.each([
    [2, 'SUBSCRIPTION_RENEWED', (tok: string) => subscription('ACTIVE', { start, expiry: new Date(now + 50 * DAY), orderId: `${tok}-o1`, acknowledged: true }), { isActive: true, state: 'ACTIVE' }, 'RENEWAL'],
    [3, 'SUBSCRIPTION_CANCELED', (tok: string) => subscription('CANCELED', { start, expiry, orderId: `${tok}-o0`, autoRenew: false, canceled: 'user', acknowledged: true }), { isActive: true, state: 'CANCELED', willRenew: false }, 'CANCELLATION'],
    [6, 'SUBSCRIPTION_IN_GRACE_PERIOD', (tok: string) => subscription('IN_GRACE_PERIOD', { start, expiry: new Date(now + 3 * DAY), orderId: `${tok}-o0`, acknowledged: true }), { isActive: true, state: 'GRACE' }, 'GRACE_PERIOD'],
    [5, 'SUBSCRIPTION_ON_HOLD', (tok: string) => subscription('ON_HOLD', { start, expiry: new Date(now - DAY), orderId: `${tok}-o0`, acknowledged: true }), { isActive: false, state: 'ON_HOLD' }, 'ON_HOLD'],
    [10, 'SUBSCRIPTION_PAUSED', (tok: string) => subscription('PAUSED', { start, expiry: new Date(now - DAY), orderId: `${tok}-o0`, autoResumeTime: new Date(now + 9 * DAY), acknowledged: true }), { isActive: false, state: 'PAUSED' }, 'PAUSE'],
    [13, 'SUBSCRIPTION_EXPIRED', (tok: string) => subscription('EXPIRED', { start, expiry: new Date(now - DAY), orderId: `${tok}-o0`, autoRenew: false, canceled: 'user', acknowledged: true }), { isActive: false, state: 'EXPIRED' }, 'EXPIRATION'],
    [12, 'SUBSCRIPTION_REVOKED', (tok: string) => subscription('EXPIRED', { start, expiry: new Date(now - DAY), orderId: `${tok}-o0`, autoRenew: false, acknowledged: true }), { isActive: false, state: 'REVOKED' }, 'REFUND'],
  ])('type %i %s re-reads the subscription and applies it', async (type, _name, next, expected, event) => {
    const { user, tok } = await subscriber();
    t.fake.setSubscription(tok, next(tok));
    // An unauthenticated push revokes only what Google's Voided Purchases API lists.
    if (type === 12) t.fake.addVoidedPurchase({ purchaseToken: tok, orderId: `${tok}-o0`, voidedTimeMillis: String(Date.now() - 1000), voidedReason: 1, voidedSource: 0 });
    const res = await pushNotification(t, subNotification(type, tok), id('msg'));
    expect(res.status).toBe(200);
    expect((await customerOf(t, user)).entitlements).toMatchObject([{ identifier: 'pro', ...expected }]);
    expect(await events(user)).toContain(event);
  });

  it.each([
    [1, 'SUBSCRIPTION_RECOVERED', 'BILLING_RECOVERY'],
    [7, 'SUBSCRIPTION_RESTARTED', 'UNCANCELLATION'],
  ])('type %i %s brings a troubled subscription back', async (type, _name, event) => {
    const { user, tok } = await subscriber();
    const troubled = type === 1
      ? subscription('ON_HOLD', { start, expiry: new Date(now - DAY), orderId: `${tok}-o0`, acknowledged: true })
      : subscription('CANCELED', { start, expiry, orderId: `${tok}-o0`, autoRenew: false, acknowledged: true });
    t.fake.setSubscription(tok, troubled);
    await pushNotification(t, subNotification(type === 1 ? 5 : 3, tok), id('msg'));
    t.fake.setSubscription(tok, subscription('ACTIVE', { start, expiry: type === 1 ? new Date(now + 29 * DAY) : expiry, orderId: type === 1 ? `${tok}-o1` : `${tok}-o0`, acknowledged: true }));
    expect((await pushNotification(t, subNotification(type, tok), id('msg'))).status).toBe(200);
    expect((await customerOf(t, user)).entitlements).toMatchObject([{ identifier: 'pro', isActive: true, state: 'ACTIVE', willRenew: true }]);
    expect(await events(user)).toContain(event);
  });

  it.each([
    [8, 'SUBSCRIPTION_PRICE_CHANGE_CONFIRMED'],
    [9, 'SUBSCRIPTION_DEFERRED'],
    [11, 'SUBSCRIPTION_PAUSE_SCHEDULE_CHANGED'],
    [19, 'SUBSCRIPTION_PRICE_CHANGE_UPDATED'],
  ])('type %i %s is recorded and re-read', async (type, name) => {
    const { user, tok } = await subscriber();
    const expiresLater = type === 9 ? new Date(now + 40 * DAY) : expiry;
    t.fake.setSubscription(tok, subscription('ACTIVE', { start, expiry: expiresLater, orderId: `${tok}-o0`, acknowledged: true }));
    const before = t.fake.calls.filter((c) => c.path.includes(tok)).length;
    const messageId = id('msg');
    expect((await pushNotification(t, subNotification(type, tok), messageId)).status).toBe(200);
    expect(t.fake.calls.filter((c) => c.path.includes(tok)).length).toBe(before + 1);
    const [stored] = await t.app.orm.em.getConnection().execute('select type, status from store_notification where message_id = ?', [messageId]);
    expect(stored).toEqual({ type: name, status: 'PROCESSED' });
    expect((await customerOf(t, user)).entitlements).toMatchObject([{ identifier: 'pro', isActive: true, expiresAt: expiresLater.toISOString() }]);
  });

  it('type 4 SUBSCRIPTION_PURCHASED attaches a purchase the app never reported to the customer named by obfuscatedExternalAccountId', async () => {
    const tok = id('direct');
    const user = id('direct-user');
    // An existing customer (here: one who bought coins before).
    t.fake.setProduct(`${tok}-coins`, { packageName: PACKAGE, productId: 'coins_100', purchaseState: 0, orderId: `${tok}-coins` });
    await submitGoogle(t, user, 'coins_100', `${tok}-coins`);
    t.fake.setSubscription(tok, subscription('ACTIVE', { start, expiry, orderId: `${tok}-o0`, accountId: user }));
    expect((await pushNotification(t, subNotification(4, tok), id('msg'))).status).toBe(200);
    expect((await customerOf(t, user)).entitlements).toMatchObject([{ identifier: 'pro', isActive: true }]);
    expect(await events(user)).toContain('INITIAL_PURCHASE');
  });

  it('keeps a purchase first seen through a notification unowned until a customer submits its token', async () => {
    const tok = id('unowned');
    // The account id is a hash of the user id, as Google recommends: it names no customer here.
    t.fake.setSubscription(tok, subscription('ACTIVE', { start, expiry, orderId: `${tok}-o0`, accountId: 'sha256-4f2a9c' }));
    expect((await pushNotification(t, subNotification(4, tok), id('msg'))).status).toBe(200);
    const [row] = await t.app.orm.em.getConnection().execute('select customer_id from purchase where purchase_token = ?', [tok]);
    expect(row.customer_id).toBeNull();
    expect(t.fake.acknowledgements()).not.toContain(tok);
    const user = id('claimer');
    expect((await submitGoogle(t, user, 'pro_monthly', tok)).status).toBe('VERIFIED');
    expect((await customerOf(t, user)).entitlements).toMatchObject([{ identifier: 'pro', isActive: true }]);
  });

  it('type 20 SUBSCRIPTION_PENDING_PURCHASE_CANCELED closes a kept pending proof', async () => {
    const tok = id('pending-sub');
    t.fake.setSubscription(tok, subscription('PENDING', { start, expiry }));
    expect((await submitGoogle(t, id('p'), 'pro_monthly', tok)).status).toBe('PENDING');
    t.fake.setSubscription(tok, subscription('PENDING_PURCHASE_CANCELED', { start, expiry }));
    expect((await pushNotification(t, subNotification(20, tok), id('msg'))).status).toBe(200);
    const [proof] = await t.app.orm.em.getConnection().execute('select status, reason from pending_proof where proof_key = ?', [`token:${tok}`]);
    expect(proof).toEqual({ status: 'REJECTED', reason: 'PURCHASE_CANCELED' });
  });

  it('one-time 1 ONE_TIME_PRODUCT_PURCHASED grants a pending cash payment to whoever submitted it', async () => {
    const tok = id('cash');
    const user = id('cash-user');
    t.fake.setProduct(tok, { packageName: PACKAGE, productId: 'no_ads', purchaseState: 2, orderId: `${tok}-order` });
    expect((await submitGoogle(t, user, 'no_ads', tok)).status).toBe('PENDING');
    t.fake.setProduct(tok, { packageName: PACKAGE, productId: 'no_ads', purchaseState: 0, orderId: `${tok}-order` });
    const res = await pushNotification(t, { oneTimeProductNotification: { version: '1.0', notificationType: 1, purchaseToken: tok, sku: 'no_ads' } }, id('msg'));
    expect(res.status).toBe(200);
    expect((await customerOf(t, user)).entitlements).toMatchObject([{ identifier: 'no_ads', isActive: true }]);
  });

  it('one-time 2 ONE_TIME_PRODUCT_CANCELED rejects the kept pending proof', async () => {
    const tok = id('cash-canceled');
    t.fake.setProduct(tok, { packageName: PACKAGE, productId: 'no_ads', purchaseState: 2 });
    await submitGoogle(t, id('u'), 'no_ads', tok);
    t.fake.setProduct(tok, { packageName: PACKAGE, productId: 'no_ads', purchaseState: 1 });
    await pushNotification(t, { oneTimeProductNotification: { version: '1.0', notificationType: 2, purchaseToken: tok, sku: 'no_ads' } }, id('msg'));
    const [proof] = await t.app.orm.em.getConnection().execute('select status from pending_proof where proof_key = ?', [`token:${tok}`]);
    expect(proof.status).toBe('REJECTED');
  });

  it('a voided consumable claws back its credits with a REFUND event', async () => {
    const tok = id('void');
    const user = id('void-user');
    t.fake.setProduct(tok, { packageName: PACKAGE, productId: 'coins_100', purchaseState: 0, orderId: `${tok}-order` });
    await submitGoogle(t, user, 'coins_100', tok);
    t.fake.addVoidedPurchase({ purchaseToken: tok, orderId: `${tok}-order`, voidedTimeMillis: String(Date.now() - 1000), voidedReason: 1, voidedSource: 0 });
    const res = await pushNotification(t, { voidedPurchaseNotification: { purchaseToken: tok, orderId: `${tok}-order`, productType: 2, refundType: 1 } }, id('msg'));
    expect(res.status).toBe(200);
    expect((await customerOf(t, user)).creditBalances).toEqual([{ currency: 'coins', balance: 0 }]);
    expect(await events(user)).toEqual(expect.arrayContaining(['CONSUMABLE_CREDIT', 'REFUND', 'CREDIT_CLAWBACK']));
  });

  it('does not revoke on an unauthenticated void notification that Google does not list', async () => {
    const tok = id('fake-void');
    const user = id('fake-void-user');
    t.fake.setProduct(tok, { packageName: PACKAGE, productId: 'coins_100', purchaseState: 0, orderId: `${tok}-order` });
    await submitGoogle(t, user, 'coins_100', tok);
    const res = await pushNotification(t, { voidedPurchaseNotification: { purchaseToken: tok, orderId: `${tok}-order`, productType: 2, refundType: 1 } }, id('msg'));
    expect(res.body.outcome).toBe('ignored: void not confirmed by Google (yet)');
    expect((await customerOf(t, user)).creditBalances).toEqual([{ currency: 'coins', balance: 100 }]);
  });

  it('does not claw back a whole purchase for a quantity-based partial refund', async () => {
    const tok = id('partial');
    const user = id('partial-user');
    t.fake.setProduct(tok, { packageName: PACKAGE, productId: 'coins_100', purchaseState: 0, orderId: `${tok}-order`, quantity: 3 });
    await submitGoogle(t, user, 'coins_100', tok);
    const res = await pushNotification(t, { voidedPurchaseNotification: { purchaseToken: tok, orderId: `${tok}-order`, productType: 2, refundType: 2 } }, id('msg'));
    expect(res.body.outcome).toBe('ignored: quantity-based partial refund');
    expect((await customerOf(t, user)).creditBalances).toEqual([{ currency: 'coins', balance: 300 }]);
  });

  it('applies a refund Google reported before the purchase was ever submitted', async () => {
    const tok = id('void-first');
    const user = id('void-first-user');
    t.fake.setProduct(tok, { packageName: PACKAGE, productId: 'no_ads', purchaseState: 0, orderId: `${tok}-order` });
    t.fake.addVoidedPurchase({ purchaseToken: tok, orderId: `${tok}-order`, voidedTimeMillis: String(Date.now() - 1000), voidedReason: 1, voidedSource: 0 });
    const res = await pushNotification(t, { voidedPurchaseNotification: { purchaseToken: tok, orderId: `${tok}-order`, productType: 2, refundType: 1 } }, id('msg'));
    expect(res.body.outcome).toBe('voided purchase recorded; it applies when the purchase is seen');
    await submitGoogle(t, user, 'no_ads', tok);
    expect((await customerOf(t, user)).entitlements).toMatchObject([{ identifier: 'no_ads', isActive: false, state: 'REVOKED' }]);
  });

  it('gives an upgrade seen only through a notification to the owner of the subscription it replaces', async () => {
    const { user, tok } = await subscriber();
    const newTok = id('upgrade');
    const upgradeAt = new Date(now - DAY);
    t.fake.setSubscription(newTok, subscription('ACTIVE', { start: upgradeAt, expiry: new Date(now + 364 * DAY), orderId: `${newTok}-o0`, linkedPurchaseToken: tok, productId: 'pro_monthly' }));
    expect((await pushNotification(t, subNotification(4, newTok), id('msg'))).body.outcome).toBe(`applied to ${user}`);
    const c = await customerOf(t, user);
    expect(c.subscriptions).toHaveLength(1);
    expect(c.entitlements).toMatchObject([{ identifier: 'pro', isActive: true, expiresAt: new Date(now + 364 * DAY).toISOString() }]);
    expect(await eventually(() => t.fake.acknowledgements().includes(newTok))).toBe(true);
  });

  it('processes a message once however often Pub/Sub delivers it', async () => {
    const { user, tok } = await subscriber();
    t.fake.setSubscription(tok, subscription('ACTIVE', { start, expiry: new Date(now + 50 * DAY), orderId: `${tok}-o1`, acknowledged: true }));
    const messageId = id('dup');
    const first = await pushNotification(t, subNotification(2, tok), messageId);
    const second = await pushNotification(t, subNotification(2, tok), messageId);
    expect(first.body.duplicate).toBe(false);
    expect(second.body.duplicate).toBe(true);
    expect((await events(user)).filter((e: unknown) => e === 'RENEWAL')).toHaveLength(1);
  });

  it('answers 200 to a test notification and to an unknown type, recording both', async () => {
    const testId = id('test');
    const unknownId = id('unknown');
    expect((await pushNotification(t, { testNotification: { version: '1.0' } }, testId)).status).toBe(200);
    expect((await pushNotification(t, { somethingNew: { x: 1 } }, unknownId)).status).toBe(200);
    const rows = await t.app.orm.em.getConnection().execute('select message_id, type, status from store_notification where message_id in (?, ?) order by id', [testId, unknownId]);
    expect(rows).toEqual([
      { message_id: testId, type: 'TEST', status: 'IGNORED' },
      { message_id: unknownId, type: 'UNKNOWN', status: 'IGNORED' },
    ]);
  });

  it('answers 400 to malformed pushes', async () => {
    const url = t.url.replace('/graphql', '/notifications/google');
    const post = (body: string) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect((await post('not json')).status).toBe(400);
    expect((await post(JSON.stringify({ message: { messageId: 'x' } }))).status).toBe(400);
    expect((await post(JSON.stringify({ message: { messageId: 'y', data: Buffer.from('not json').toString('base64') } }))).status).toBe(400);
  });

  it('keeps a notification it could not apply because Google was down, and applies it later', async () => {
    const { user, tok } = await subscriber();
    t.fake.setSubscription(tok, subscription('ACTIVE', { start, expiry: new Date(now + 50 * DAY), orderId: `${tok}-o1`, acknowledged: true }));
    t.fake.failNext({ status: 503 }, { pathIncludes: tok });
    const messageId = id('outage');
    expect((await pushNotification(t, subNotification(2, tok), messageId)).body.outcome).toBe('kept for retry');
    expect((await customerOf(t, user)).entitlements[0].expiresAt).toBe(expiry.toISOString());
    expect(await t.app.services.googleNotifications!.processDue(new Date(Date.now() + 10 * 60_000))).toBeGreaterThanOrEqual(1);
    expect((await customerOf(t, user)).entitlements[0].expiresAt).toBe(new Date(now + 50 * DAY).toISOString());
  });

  it('revokes what the Voided Purchases API lists, moving its cursor only after a complete pass', async () => {
    const tok = id('voided-api');
    const user = id('voided-user');
    t.fake.setProduct(tok, { packageName: PACKAGE, productId: 'no_ads', purchaseState: 0, orderId: `${tok}-order` });
    await submitGoogle(t, user, 'no_ads', tok);
    t.fake.addVoidedPurchase({ purchaseToken: tok, orderId: `${tok}-order`, voidedTimeMillis: String(Date.now() - 1000), voidedReason: 1, voidedSource: 0 });
    expect(await t.app.services.googleNotifications!.syncVoidedPurchases(new Date())).toBe(1);
    expect((await customerOf(t, user)).entitlements).toMatchObject([{ identifier: 'no_ads', isActive: false, state: 'REVOKED' }]);
    const [cursor] = await t.app.orm.em.getConnection().execute(`select value from store_cursor where key = ?`, [`google:voided:${PACKAGE}`]);
    expect(Number(cursor.value)).toBeGreaterThan(Date.now() - 60_000);
    // The next run asks from the cursor minus a day of overlap, never more than 30 days back.
    await t.app.services.googleNotifications!.syncVoidedPurchases(new Date());
    const calls = t.fake.calls.filter((c) => c.path.endsWith('/voidedpurchases'));
    const lastStart = Number(calls.at(-1)!.query.startTime);
    expect(lastStart).toBeGreaterThan(Date.now() - 86_400_000 - 120_000);
    expect(lastStart).toBeLessThan(Date.now() - 86_400_000 + 120_000);
    // A failed page leaves the cursor where it was.
    const before = Number((await t.app.orm.em.getConnection().execute(`select value from store_cursor where key = ?`, [`google:voided:${PACKAGE}`]))[0].value);
    t.fake.failNext({ status: 503 }, { pathIncludes: 'voidedpurchases' });
    await expect(t.app.services.googleNotifications!.syncVoidedPurchases(new Date(Date.now() + 3_600_000))).rejects.toThrow();
    const after = Number((await t.app.orm.em.getConnection().execute(`select value from store_cursor where key = ?`, [`google:voided:${PACKAGE}`]))[0].value);
    expect(after).toBe(before);
  });
});

describe('Pub/Sub push authentication', () => {
  let t: GoogleTestApp;
  let jwks: Server;
  let key: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256');
    key = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'push', alg: 'RS256', use: 'sig' };
    jwks = createServer((_req, res) => res.end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()));
    t = await startGoogleApp('pglite', {
      config: {
        GOOGLE_PUBSUB_AUDIENCE: 'https://iap.example.test/notifications/google',
        GOOGLE_PUBSUB_JWKS_URL: `http://127.0.0.1:${(jwks.address() as { port: number }).port}/certs`,
        GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL: 'push@example.iam.gserviceaccount.com',
      },
    });
  });
  afterAll(async () => {
    await t?.close();
    jwks?.close();
  });

  const token = (claims: Record<string, unknown>, aud = 'https://iap.example.test/notifications/google') =>
    new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'push' }).setIssuer('https://accounts.google.com').setAudience(aud).setExpirationTime('5m').sign(key);

  it.each([
    ['no token', async () => ({})],
    ['a token for another audience', async () => ({ authorization: `Bearer ${await token({ email: 'push@example.iam.gserviceaccount.com', email_verified: true }, 'https://other')}` })],
    ['a token of another service account', async () => ({ authorization: `Bearer ${await token({ email: 'evil@example.com', email_verified: true })}` })],
  ])('refuses a push with %s (401), storing nothing', async (_name, headers) => {
    const res = await pushNotification(t, { testNotification: {} }, `auth-${_name}`, await headers());
    expect(res.status).toBe(401);
    const rows = await t.app.orm.em.getConnection().execute('select count(*)::int as n from store_notification where message_id = ?', [`auth-${_name}`]);
    expect(rows[0].n).toBe(0);
  });

  it('revokes on an authenticated void push without asking the Voided Purchases API', async () => {
    t.fake.setProduct('auth-void', { packageName: PACKAGE, productId: 'no_ads', purchaseState: 0, orderId: 'GPA.av' });
    await submitGoogle(t, 'vic', 'no_ads', 'auth-void');
    const res = await pushNotification(t, { voidedPurchaseNotification: { purchaseToken: 'auth-void', orderId: 'GPA.av', productType: 2, refundType: 1 } }, 'auth-void-msg', {
      authorization: `Bearer ${await token({ email: 'push@example.iam.gserviceaccount.com', email_verified: true })}`,
    });
    expect(res.body.outcome).toBe('revoked for vic');
    expect(t.fake.calls.some((c) => c.path.endsWith('/voidedpurchases'))).toBe(false);
  });

  it('accepts a push signed by the configured key for the configured audience and account', async () => {
    const res = await pushNotification(t, { testNotification: {} }, 'auth-ok', {
      authorization: `Bearer ${await token({ email: 'push@example.iam.gserviceaccount.com', email_verified: true })}`,
    });
    expect(res.status).toBe(200);
  });
});
