// Google Play end to end through GraphQL submitReceipt: the real googleapis client against a fake Play
// Developer API on loopback, on PostgreSQL and on PGlite.
import { generateKeyPairSync, sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, DATABASE_KINDS } from '../support/databases.js';
import { customerOf, DAY, eventually, PACKAGE, startGoogleApp, submitGoogle, subscription, type GoogleTestApp } from '../support/google.js';
import { FakeGooglePlay } from '../fakes/google-play.js';
import { startTestApp } from '../support/test-app.js';

describe.each(DATABASE_KINDS)('Google Play purchases on %s', (kind) => {
  let t: GoogleTestApp;
  let tokens = 0;
  const token = (label: string) => `${label}-${kind}-${++tokens}`;

  beforeAll(async () => {
    t = await startGoogleApp(kind);
  });
  afterAll(async () => {
    await t?.close();
  });

  const product = (over: Partial<Parameters<GoogleTestApp['fake']['setProduct']>[1]> = {}) => ({
    packageName: PACKAGE,
    productId: 'coins_100',
    purchaseState: 0 as const,
    orderId: `GPA.${Math.random().toString().slice(2, 10)}`,
    purchaseTimeMillis: String(Date.now() - 60_000),
    quantity: 1,
    ...over,
  });

  it('credits a consumable once, then consumes it', async () => {
    const tok = token('coins');
    t.fake.setProduct(tok, product({ quantity: 2 }));
    const outcome = await submitGoogle(t, 'ana', 'coins_100', tok);
    expect(outcome).toMatchObject({ status: 'VERIFIED', reason: 'OK' });
    expect((await customerOf(t, 'ana')).creditBalances).toEqual([{ currency: 'coins', balance: 200 }]);
    expect(await eventually(() => t.fake.consumptions().includes(tok))).toBe(true);
    expect(t.fake.getProduct(tok)!.consumptionState).toBe(1);
  });

  it('credits one consumable once when 20 submissions race', async () => {
    const tok = token('race');
    t.fake.setProduct(tok, product());
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => submitGoogle(t, 'racer', 'coins_100', tok)));
    expect(outcomes.filter((o) => o.status === 'VERIFIED')).toHaveLength(1);
    expect(outcomes.filter((o) => o.status === 'ALREADY_VERIFIED')).toHaveLength(19);
    expect((await customerOf(t, 'racer')).creditBalances).toEqual([{ currency: 'coins', balance: 100 }]);
    await eventually(() => t.fake.consumptions().includes(tok));
    await t.app.services.storeTasks.idle();
    expect(t.fake.consumptions().filter((c) => c === tok)).toHaveLength(1);
  });

  it('grants a non-consumable and acknowledges it', async () => {
    const tok = token('noads');
    t.fake.setProduct(tok, product({ productId: 'no_ads' }));
    const outcome = await submitGoogle(t, 'ben', 'no_ads', tok);
    expect(outcome.status).toBe('VERIFIED');
    expect(outcome.entitlements).toMatchObject([{ identifier: 'no_ads', isActive: true, expiresAt: null }]);
    expect(await eventually(() => t.fake.acknowledgements().includes(tok))).toBe(true);
  });

  it('keeps a pending payment without granting, and grants when it completes', async () => {
    const tok = token('cash');
    t.fake.setProduct(tok, product({ productId: 'no_ads', purchaseState: 2 }));
    const pending = await submitGoogle(t, 'cara', 'no_ads', tok);
    expect(pending).toMatchObject({ status: 'PENDING', reason: 'PURCHASE_PENDING', entitlements: [] });
    t.fake.setProduct(tok, product({ productId: 'no_ads', purchaseState: 0 }));
    const retried = await t.app.services.receipts.retryPending(new Date(Date.now() + 3 * 60_000));
    expect(retried.verified).toBe(1);
    expect((await customerOf(t, 'cara')).entitlements).toMatchObject([{ identifier: 'no_ads', isActive: true }]);
  });

  it.each([
    ['a canceled purchase', (tok: string) => t.fake.setProduct(tok, product({ purchaseState: 1 })), 'PURCHASE_CANCELED'],
    ['a token Google does not know', () => undefined, 'INVALID_PURCHASE_TOKEN'],
  ])('rejects %s', async (_name, script, reason) => {
    const tok = token('reject');
    script(tok);
    const outcome = await submitGoogle(t, 'dan', 'coins_100', tok);
    expect(outcome).toMatchObject({ status: 'REJECTED', reason });
    expect((await customerOf(t, 'dan')).creditBalances).toEqual([]);
  });

  it('rejects an unknown package or a product missing from the catalog without calling Google', async () => {
    await t.app.services.storeTasks.idle();
    const before = t.fake.calls.length;
    expect(await submitGoogle(t, 'eve', 'coins_100', token('pkg'), { packageName: 'com.other.app' })).toMatchObject({ status: 'REJECTED', reason: 'WRONG_APP' });
    expect(await submitGoogle(t, 'eve', 'not_in_catalog', token('sku'))).toMatchObject({ status: 'REJECTED', reason: 'PRODUCT_NOT_IN_CATALOG' });
    expect(t.fake.calls.length).toBe(before);
  });

  it('keeps a token with its first owner', async () => {
    const tok = token('owned');
    t.fake.setProduct(tok, product({ productId: 'no_ads' }));
    expect((await submitGoogle(t, 'fay', 'no_ads', tok)).status).toBe('VERIFIED');
    expect(await submitGoogle(t, 'gus', 'no_ads', tok)).toMatchObject({ status: 'REJECTED', reason: 'RECEIPT_IN_USE', entitlements: [] });
  });

  it.each([
    ['a 503', { status: 503 }, 'STORE_UNAVAILABLE'],
    ['a timeout', { hangMs: 2500 }, 'STORE_UNAVAILABLE'],
    ['a 401', { status: 401 }, 'STORE_AUTH_FAILED'],
    ['a 403', { status: 403 }, 'STORE_AUTH_FAILED'],
  ])('keeps the proof after %s from Google, answers PENDING, and verifies it later', async (_name, failure, reason) => {
    const tok = token('outage');
    t.fake.setProduct(tok, product({ productId: 'no_ads' }));
    t.fake.failNext(failure as never, { pathIncludes: tok });
    const user = `hal-${tok}`;
    const outcome = await submitGoogle(t, user, 'no_ads', tok);
    expect(outcome).toMatchObject({ status: 'PENDING', reason, entitlements: [] });
    const [kept] = await t.app.orm.em.getConnection().execute(`select status, app_user_id from pending_proof where proof_key = ?`, [`token:${tok}`]);
    expect(kept).toEqual({ status: 'PENDING', app_user_id: user });
    // Not yet due: nothing happens.
    expect((await t.app.services.receipts.retryPending(new Date())).verified).toBe(0);
    const later = await t.app.services.receipts.retryPending(new Date(Date.now() + 3 * 60_000));
    expect(later.verified).toBe(1);
    expect((await customerOf(t, user)).entitlements).toMatchObject([{ identifier: 'no_ads', isActive: true }]);
    const [done] = await t.app.orm.em.getConnection().execute(`select status from pending_proof where proof_key = ?`, [`token:${tok}`]);
    expect(done.status).toBe('VERIFIED');
  });

  it('retries a failed acknowledgement until Google records it', async () => {
    const tok = token('ackfail');
    t.fake.setProduct(tok, product({ productId: 'no_ads' }));
    t.fake.failNext({ status: 503 }, { pathIncludes: `${tok}:acknowledge`, times: 1 });
    expect((await submitGoogle(t, 'ivy', 'no_ads', tok)).status).toBe('VERIFIED');
    await t.app.services.storeTasks.idle();
    expect(t.fake.acknowledgements()).not.toContain(tok);
    const [task] = await t.app.orm.em.getConnection().execute(`select status, attempts, last_error from store_task where token = ?`, [tok]);
    expect(task).toMatchObject({ status: 'PENDING', attempts: 1 });
    expect(task.last_error).toContain('ACKNOWLEDGE_PRODUCT failed');
    await t.app.services.storeTasks.runDue(new Date(Date.now() + 10 * 60_000));
    expect(t.fake.acknowledgements()).toContain(tok);
    const [after] = await t.app.orm.em.getConnection().execute(`select status from store_task where token = ?`, [tok]);
    expect(after.status).toBe('DONE');
  });

  it('closes an acknowledgement Google refuses for good as FAILED instead of retrying it forever', async () => {
    const tok = token('ackgone');
    t.fake.setProduct(tok, product({ productId: 'no_ads' }));
    t.fake.failNext({ status: 410 }, { pathIncludes: `${tok}:acknowledge` });
    expect((await submitGoogle(t, `jay-${tok}`, 'no_ads', tok)).status).toBe('VERIFIED');
    await t.app.services.storeTasks.idle();
    const [task] = await t.app.orm.em.getConnection().execute(`select status, last_error from store_task where token = ?`, [tok]);
    expect(task.status).toBe('FAILED');
    expect(task.last_error).toContain('refused');
    await t.app.services.storeTasks.runDue(new Date(Date.now() + 30 * 86_400_000));
    // Not tried again: the one refused call is all Google saw.
    expect(t.fake.calls.filter((c) => c.path.endsWith(`${tok}:acknowledge`))).toHaveLength(1);
  });

  describe('subscriptions', () => {
    const now = Date.now();
    const start = new Date(now - 10 * DAY);
    const expiry = new Date(now + 20 * DAY);
    const past = new Date(now - DAY);

    it.each([
      ['ACTIVE', subscription('ACTIVE', { start, expiry, orderId: 'GPA.a' }), { isActive: true, state: 'ACTIVE', willRenew: true }],
      ['CANCELED', subscription('CANCELED', { start, expiry, orderId: 'GPA.c', autoRenew: false, canceled: 'user' }), { isActive: true, state: 'CANCELED', willRenew: false }],
      ['ACTIVE with auto-renew off', subscription('ACTIVE', { start, expiry, orderId: 'GPA.o', autoRenew: false }), { isActive: true, state: 'CANCELED', willRenew: false }],
      ['IN_GRACE_PERIOD', subscription('IN_GRACE_PERIOD', { start, expiry: new Date(now + 3 * DAY), orderId: 'GPA.g' }), { isActive: true, state: 'GRACE' }],
      ['ON_HOLD', subscription('ON_HOLD', { start, expiry: past, orderId: 'GPA.h' }), { isActive: false, state: 'ON_HOLD' }],
      ['PAUSED', subscription('PAUSED', { start, expiry: past, orderId: 'GPA.p', autoResumeTime: new Date(now + 5 * DAY) }), { isActive: false, state: 'PAUSED' }],
      ['EXPIRED', subscription('EXPIRED', { start, expiry: past, orderId: 'GPA.e', autoRenew: false, canceled: 'system' }), { isActive: false, state: 'EXPIRED' }],
    ])('maps %s', async (_state, resource, expected) => {
      const tok = token('sub');
      t.fake.setSubscription(tok, resource);
      const user = `sub-${tok}`;
      const outcome = await submitGoogle(t, user, 'pro_monthly', tok);
      expect(outcome.status).toBe('VERIFIED');
      expect((await customerOf(t, user)).entitlements).toMatchObject([{ identifier: 'pro', productId: 'pro_monthly', ...expected }]);
    });

    it.each([
      ['PENDING', 'PENDING', 'PURCHASE_PENDING'],
      ['PENDING_PURCHASE_CANCELED', 'REJECTED', 'PURCHASE_CANCELED'],
    ])('answers %s as %s', async (state, status, reason) => {
      const tok = token('subp');
      t.fake.setSubscription(tok, subscription(state, { start, expiry }));
      expect(await submitGoogle(t, `subp-${tok}`, 'pro_monthly', tok)).toMatchObject({ status, reason, entitlements: [] });
    });

    it('stores a repeated statement once, and again only when it means something new', async () => {
      const tok = token('relaunch');
      t.fake.setSubscription(tok, subscription('ACTIVE', { start, expiry, orderId: `${tok}-o0`, acknowledged: true }));
      // The app re-submits at every launch.
      for (let launch = 0; launch < 5; launch++) await submitGoogle(t, `relauncher-${tok}`, 'pro_monthly', tok);
      const count = async () =>
        (await t.app.orm.em.getConnection().execute('select count(*)::int as n from purchase_observation where lineage_id = ?', [tok]))[0].n;
      expect(await count()).toBe(1);
      t.fake.setSubscription(tok, subscription('CANCELED', { start, expiry, orderId: `${tok}-o0`, autoRenew: false, acknowledged: true }));
      await submitGoogle(t, `relauncher-${tok}`, 'pro_monthly', tok);
      expect(await count()).toBe(2);
    });

    it('marks test purchases as sandbox and acknowledges the subscription after granting', async () => {
      const tok = token('subt');
      t.fake.setSubscription(tok, subscription('ACTIVE', { start, expiry, orderId: 'GPA.t', test: true }));
      await submitGoogle(t, 'tess', 'pro_monthly', tok);
      expect((await customerOf(t, 'tess')).entitlements).toMatchObject([{ identifier: 'pro', isSandbox: true }]);
      expect(await eventually(() => t.fake.acknowledgements().includes(tok))).toBe(true);
      expect(t.fake.getSubscription(tok)!.acknowledgementState).toBe('ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED');
    });

    it('continues an upgraded subscription on the new token without a gap or a double grant', async () => {
      const oldTok = token('old');
      const newTok = token('new');
      const upgradeAt = new Date(now - 2 * DAY);
      t.fake.setSubscription(oldTok, subscription('ACTIVE', { start, expiry, orderId: 'GPA.old' }));
      await submitGoogle(t, 'uma', 'pro_monthly', oldTok);
      t.fake.setSubscription(oldTok, subscription('EXPIRED', { start, expiry: upgradeAt, orderId: 'GPA.old', autoRenew: false }));
      t.fake.setSubscription(newTok, subscription('ACTIVE', { start: upgradeAt, expiry: new Date(now + 363 * DAY), orderId: 'GPA.new', linkedPurchaseToken: oldTok }));
      expect((await submitGoogle(t, 'uma', 'pro_monthly', newTok)).status).toBe('VERIFIED');
      const c = await customerOf(t, 'uma');
      expect(c.subscriptions).toHaveLength(1);
      expect(c.subscriptions[0]).toMatchObject({ originalTransactionId: oldTok, latestTransactionId: 'GPA.new', state: 'ACTIVE' });
      expect(c.entitlements).toMatchObject([{ identifier: 'pro', isActive: true, expiresAt: new Date(now + 363 * DAY).toISOString() }]);
      const grants = await t.app.orm.em.getConnection().execute(
        `select store_transaction_id, starts_at, ends_at from entitlement_grant g join customer c on c.id = g.customer_id
         where c.app_user_id = 'uma' and superseded_at is null order by starts_at`,
      );
      expect(grants.map((g: Record<string, unknown>) => g.store_transaction_id)).toEqual(['GPA.old', 'GPA.new']);
      // The old period ends exactly where the new one starts.
      expect(new Date(String(grants[0].ends_at)).getTime()).toBe(upgradeAt.getTime());
      expect(new Date(String(grants[1].starts_at)).getTime()).toBe(upgradeAt.getTime());
    });
  });
});

describe('the optional client-proof check (license key)', () => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const licenseKey = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  let t: GoogleTestApp;

  beforeAll(async () => {
    t = await startGoogleApp('pglite', { config: { GOOGLE_LICENSE_KEYS: `${PACKAGE}:${licenseKey}` } });
  });
  afterAll(async () => {
    await t?.close();
  });

  const signed = (json: string, key = privateKey) => sign('sha1', Buffer.from(json), key).toString('base64');
  const purchaseJson = (tok: string, productId = 'no_ads', packageName = PACKAGE) =>
    JSON.stringify({ orderId: 'GPA.1', packageName, productId, purchaseTime: 1, purchaseState: 0, purchaseToken: tok, acknowledged: false });

  it('accepts a correctly signed purchase JSON', async () => {
    t.fake.setProduct('signed-ok', { packageName: PACKAGE, productId: 'no_ads', purchaseState: 0, orderId: 'GPA.s1' });
    const json = purchaseJson('signed-ok');
    expect((await submitGoogle(t, 'kim', 'no_ads', 'signed-ok', { originalJson: json, signature: signed(json) })).status).toBe('VERIFIED');
  });

  it.each([
    ['a forged signature', (json: string) => ({ originalJson: json, signature: signed(json, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey) })],
    ['an altered JSON', (json: string) => ({ originalJson: json.replace('"purchaseState":0', '"purchaseState":0 '), signature: signed(json) })],
    ['a signature of another purchase', (json: string) => ({ originalJson: json, signature: signed(purchaseJson('other-token')) })],
    ['a signed JSON for another token', () => {
      const other = purchaseJson('some-other-token');
      return { originalJson: other, signature: signed(other) };
    }],
    ['a signed JSON for another product', () => {
      const other = purchaseJson('forged-x', 'coins_100');
      return { originalJson: other, signature: signed(other) };
    }],
  ])('rejects %s with INVALID_SIGNATURE without calling Google', async (_name, proof) => {
    await t.app.services.storeTasks.idle();
    const before = t.fake.calls.length;
    const outcome = await submitGoogle(t, 'lee', 'no_ads', 'forged-x', proof(purchaseJson('forged-x')));
    expect(outcome).toMatchObject({ status: 'REJECTED', reason: 'INVALID_SIGNATURE', entitlements: [] });
    expect(t.fake.calls.length).toBe(before);
  });
});

describe('credentials Google refuses at the token endpoint', () => {
  it('keeps the proof as PENDING with STORE_AUTH_FAILED and logs which setting to fix', async () => {
    const lines: Record<string, unknown>[] = [];
    const t = await startGoogleApp('pglite', { logLines: lines });
    try {
      t.fake.rejectCredentials('token');
      t.fake.setProduct('tok-auth', { packageName: PACKAGE, productId: 'no_ads', purchaseState: 0 });
      expect(await submitGoogle(t, 'max', 'no_ads', 'tok-auth')).toMatchObject({ status: 'PENDING', reason: 'STORE_AUTH_FAILED' });
      const logged = lines.find((l) => l.level === 50 && String(l.msg).includes('refused the service account'));
      expect(logged).toMatchObject({ setting: 'GOOGLE_SERVICE_ACCOUNT_JSON' });
      expect(String(logged!.msg)).toContain('check GOOGLE_SERVICE_ACCOUNT_JSON');
      expect(JSON.stringify(lines)).not.toContain('PRIVATE KEY');
      t.fake.rejectCredentials(null);
      expect((await t.app.services.receipts.retryPending(new Date(Date.now() + 3 * 60_000))).verified).toBe(1);
    } finally {
      await t.close();
    }
  });

  it('answers STORE_NOT_CONFIGURED when Google Play is not configured', async () => {
    const t = await startTestApp('pglite');
    try {
      const res = await t.server(`mutation { submitReceipt(input: { appUserId: "x", store: PLAY_STORE, google: { productId: "no_ads", purchaseToken: "t" } }) { status } }`);
      expect(res.errors![0]!.extensions!.code).toBe('STORE_NOT_CONFIGURED');
    } finally {
      await t.close();
    }
  });
});

describe('several apps', () => {
  it('needs the package name when several are configured, and verifies each app', async () => {
    const t = await startGoogleApp('pglite', { config: { GOOGLE_PACKAGE_NAMES: `${PACKAGE},com.example.other` } });
    try {
      t.fake.setProduct('multi-1', { packageName: 'com.example.other', productId: 'no_ads', purchaseState: 0, orderId: 'GPA.m1' });
      expect(await submitGoogle(t, 'nia', 'no_ads', 'multi-1')).toMatchObject({ status: 'REJECTED', reason: 'WRONG_APP' });
      expect(await submitGoogle(t, 'nia', 'no_ads', 'multi-1', { packageName: PACKAGE })).toMatchObject({ status: 'REJECTED', reason: 'INVALID_PURCHASE_TOKEN' });
      expect(await submitGoogle(t, 'nia', 'no_ads', 'multi-1', { packageName: 'com.example.other' })).toMatchObject({ status: 'VERIFIED' });
    } finally {
      await t.close();
    }
  });
});

describe('an acknowledgement left behind by a crash', () => {
  it('is sent by the next instance that starts', async () => {
    const db = await createTestDatabase('postgresql');
    const fake = await FakeGooglePlay.start();
    try {
      const first = await startGoogleApp('postgresql', { db, fake });
      fake.setProduct('crash-1', { packageName: PACKAGE, productId: 'no_ads', purchaseState: 0, orderId: 'GPA.c1' });
      // Google is unreachable for the acknowledgement, and the instance goes away before any retry.
      fake.failNext({ status: 503 }, { pathIncludes: 'crash-1:acknowledge', times: 1 });
      expect((await submitGoogle(first, 'oli', 'no_ads', 'crash-1')).status).toBe('VERIFIED');
      await first.app.services.storeTasks.idle();
      expect(fake.acknowledgements()).not.toContain('crash-1');
      // The restart comes after the retry time.
      await first.app.orm.em.getConnection().execute(`update store_task set next_attempt_at = now() - interval '1 minute' where token = 'crash-1'`);
      await first.close();
      const second = await startGoogleApp('postgresql', { db, fake, config: { SCHEDULER_ENABLED: 'true' } });
      try {
        expect(await eventually(() => fake.acknowledgements().includes('crash-1'), 10_000)).toBe(true);
      } finally {
        await second.close();
      }
    } finally {
      await fake.close();
      await db.drop();
    }
  });
});
