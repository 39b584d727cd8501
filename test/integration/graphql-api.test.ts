// The GraphQL API end to end over real HTTP, on PostgreSQL and on PGlite.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASE_KINDS } from '../support/databases.js';
import { monthly, purchase } from '../support/purchases.js';
import { startTestApp, TEST_API_KEY, type TestApp } from '../support/test-app.js';

const NOW = new Date('2026-11-10T12:00:00Z');
const DAY = 86_400_000;

const CUSTOMER_QUERY = /* GraphQL */ `
  query Customer($id: String!) {
    customer(appUserId: $id) {
      appUserId
      firstSeenAt
      entitlements { identifier isActive state expiresAt gracePeriodExpiresAt willRenew productId store isSandbox purchasedAt }
      subscriptions { productId state isActive expiresAt willRenew originalTransactionId latestTransactionId entitlements }
      nonSubscriptionPurchases { productId kind storeTransactionId quantity expiresAt revokedAt }
      creditBalances { currency balance }
    }
  }
`;

describe.each(DATABASE_KINDS)('GraphQL API on %s', (kind) => {
  let t: TestApp;
  let now = NOW;

  beforeAll(async () => {
    t = await startTestApp(kind, { clock: () => now });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('lists the catalog', async () => {
    const res = await t.server(`{ products { store productId kind entitlements durationDays credits { currency amount } } }`);
    expect(res.errors).toBeUndefined();
    const products = res.data!.products as { productId: string; credits: unknown[] }[];
    expect(products.find((p) => p.productId === 'coins_100')).toEqual({
      store: 'PLAY_STORE',
      productId: 'coins_100',
      kind: 'CONSUMABLE',
      entitlements: [],
      durationDays: null,
      credits: [{ currency: 'coins', amount: 100 }],
    });
  });

  it('answers an unknown customer with no entitlements and does not create it', async () => {
    const res = await t.server(CUSTOMER_QUERY, { id: 'nobody' });
    expect(res.errors).toBeUndefined();
    expect(res.data!.customer).toEqual({
      appUserId: 'nobody',
      firstSeenAt: null,
      entitlements: [],
      subscriptions: [],
      nonSubscriptionPurchases: [],
      creditBalances: [],
    });
    const rows = await t.app.orm.em.getConnection().execute('select count(*)::int as n from customer');
    expect(rows[0].n).toBe(0);
  });

  it('shows what recorded purchases entitle, in ISO 8601 UTC', async () => {
    const start = new Date(NOW.getTime() - 5 * DAY);
    const sub = monthly(start, { lineageId: 'orig-1', transactionId: 'orig-1' });
    const lifetime = purchase({ productId: 'com.example.app.no_ads', transactionId: 'noads-1', purchasedAt: new Date('2026-01-02T03:04:05Z') });
    const coins = purchase({ store: 'PLAY_STORE', productId: 'coins_100', transactionId: 'GPA.1', quantity: 3 });
    const outcome = await t.app.services.recorder.record('alice', [sub, lifetime, coins], now);
    expect(outcome.newTransactionIds.sort()).toEqual(['GPA.1', 'noads-1', 'orig-1']);

    const res = await t.server(CUSTOMER_QUERY, { id: 'alice' });
    expect(res.errors).toBeUndefined();
    const c = res.data!.customer;
    expect(c.entitlements).toEqual([
      {
        identifier: 'no_ads',
        isActive: true,
        state: 'ACTIVE',
        expiresAt: null,
        gracePeriodExpiresAt: null,
        willRenew: false,
        productId: 'com.example.app.no_ads',
        store: 'APP_STORE',
        isSandbox: false,
        purchasedAt: '2026-01-02T03:04:05.000Z',
      },
      {
        identifier: 'pro',
        isActive: true,
        state: 'ACTIVE',
        expiresAt: new Date(start.getTime() + 30 * DAY).toISOString(),
        gracePeriodExpiresAt: null,
        willRenew: true,
        productId: 'com.example.app.pro.monthly',
        store: 'APP_STORE',
        isSandbox: false,
        purchasedAt: start.toISOString(),
      },
    ]);
    expect(c.subscriptions).toEqual([
      {
        productId: 'com.example.app.pro.monthly',
        state: 'ACTIVE',
        isActive: true,
        expiresAt: new Date(start.getTime() + 30 * DAY).toISOString(),
        willRenew: true,
        originalTransactionId: 'orig-1',
        latestTransactionId: 'orig-1',
        entitlements: ['pro'],
      },
    ]);
    expect(c.nonSubscriptionPurchases).toHaveLength(2);
    expect(c.creditBalances).toEqual([{ currency: 'coins', balance: 300 }]);
    expect(c.firstSeenAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);

    const short = await t.server(`query($id: String!) { entitlements(appUserId: $id) { identifier isActive } }`, { id: 'alice' });
    expect(short.data!.entitlements).toEqual([
      { identifier: 'no_ads', isActive: true },
      { identifier: 'pro', isActive: true },
    ]);
  });

  it('records a proof once however often it is recorded: one purchase, one grant set, one credit', async () => {
    const p = purchase({ store: 'PLAY_STORE', productId: 'coins_100', transactionId: 'GPA.replay', quantity: 1 });
    const first = await t.app.services.recorder.record('bob', [p], now);
    const again = await Promise.all([1, 2, 3, 4, 5].map(() => t.app.services.recorder.record('bob', [{ ...p, raw: { other: 'bytes' } }], now)));
    expect(first.newTransactionIds).toEqual(['GPA.replay']);
    for (const o of again) expect(o.knownTransactionIds).toEqual(['GPA.replay']);
    const conn = t.app.orm.em.getConnection();
    const [purchases] = await conn.execute(`select count(*)::int as n from purchase where store_transaction_id = 'GPA.replay'`);
    const [ledger] = await conn.execute(`select count(*)::int as n, sum(amount)::int as total from credit_ledger where store_transaction_id = 'GPA.replay'`);
    const [events] = await conn.execute(`select count(*)::int as n from event where store_transaction_id = 'GPA.replay'`);
    expect(purchases.n).toBe(1);
    expect(ledger).toEqual({ n: 1, total: 100 });
    expect(events.n).toBe(1);
    const res = await t.server(CUSTOMER_QUERY, { id: 'bob' });
    expect(res.data!.customer.creditBalances).toEqual([{ currency: 'coins', balance: 100 }]);
  });

  it('does not undo a refund when the original proof is submitted again', async () => {
    const bought = purchase({ productId: 'com.example.app.no_ads', transactionId: 'refunded-then-replayed', purchasedAt: new Date(NOW.getTime() - 10 * DAY) });
    await t.app.services.recorder.record('frank', [bought], now);
    const refund = { ...bought, revokedAt: new Date(NOW.getTime() - DAY), revocationReason: 'REFUND', observedAt: new Date(NOW.getTime() - DAY) };
    await t.app.services.recorder.record('frank', [refund], now);
    // The app re-submits the signed transaction it still holds: an older statement, verified again.
    const replay = await t.app.services.recorder.record('frank', [{ ...bought, observedAt: new Date(NOW.getTime() - 10 * DAY) }], now);
    expect(replay.knownTransactionIds).toEqual(['refunded-then-replayed']);
    const res = await t.server(CUSTOMER_QUERY, { id: 'frank' });
    expect(res.data!.customer.entitlements).toMatchObject([{ identifier: 'no_ads', isActive: false, state: 'REVOKED' }]);
    expect(res.data!.customer.nonSubscriptionPurchases).toMatchObject([{ storeTransactionId: 'refunded-then-replayed', revokedAt: refund.revokedAt.toISOString() }]);
    const [events] = await t.app.orm.em.getConnection().execute(`select count(*)::int as n from event where store_transaction_id = 'refunded-then-replayed' and type = 'REFUND'`);
    expect(events.n).toBe(1);
  });

  it('keeps a store-confirmed purchase of a product missing from the catalog, and still records the rest', async () => {
    const unknown = purchase({ productId: 'com.example.app.retired_sku', transactionId: 'retired-1' });
    const known = purchase({ productId: 'com.example.app.no_ads', transactionId: 'alongside-retired' });
    const outcome = await t.app.services.recorder.record('grace', [unknown, known], now);
    expect(outcome.unknownProductTransactionIds).toEqual(['retired-1']);
    expect(outcome.newTransactionIds).toEqual(['alongside-retired']);
    const [row] = await t.app.orm.em.getConnection().execute(`select kind, customer_id is not null as owned from purchase where store_transaction_id = 'retired-1'`);
    expect(row).toEqual({ kind: null, owned: true });
    const res = await t.server(`{ entitlements(appUserId: "grace") { identifier } }`);
    expect(res.data!.entitlements).toEqual([{ identifier: 'no_ads' }]);
  });

  it('leaves a transaction with its first owner', async () => {
    const p = purchase({ productId: 'com.example.app.no_ads', transactionId: 'owned-by-carol' });
    await t.app.services.recorder.record('carol', [p], now);
    const other = await t.app.services.recorder.record('mallory', [p], now);
    expect(other.foreignTransactionIds).toEqual(['owned-by-carol']);
    const res = await t.server(`{ entitlements(appUserId: "mallory") { identifier } }`);
    expect(res.data!.entitlements).toEqual([]);
  });

  it('ends access when time passes the expiry, without any write', async () => {
    const start = new Date(NOW.getTime() - 29 * DAY);
    await t.app.services.recorder.record('dave', [monthly(start, { autoRenew: false })], now);
    const before = await t.server(`{ entitlements(appUserId: "dave") { isActive state willRenew } }`);
    expect(before.data!.entitlements).toEqual([{ isActive: true, state: 'CANCELED', willRenew: false }]);
    now = new Date(NOW.getTime() + 2 * DAY);
    try {
      const after = await t.server(`{ entitlements(appUserId: "dave") { isActive state } }`);
      expect(after.data!.entitlements).toEqual([{ isActive: false, state: 'EXPIRED' }]);
    } finally {
      now = NOW;
    }
  });

  it('answers STORE_NOT_CONFIGURED for a store without configuration', async () => {
    const res = await t.server(
      `mutation($input: SubmitReceiptInput!) { submitReceipt(input: $input) { status reason } }`,
      { input: { appUserId: 'erin', store: 'PLAY_STORE', google: { productId: 'pro_monthly', purchaseToken: 'tok' } } },
    );
    expect(res.data).toBeNull();
    expect(res.errors![0]!.extensions!.code).toBe('STORE_NOT_CONFIGURED');
    expect(res.errors![0]!.extensions!.store).toBe('PLAY_STORE');
  });

  it.each([
    ['an Apple proof without a transaction or receipt', { appUserId: 'erin', store: 'APP_STORE', apple: {} }, 'apple.signedTransaction or apple.appReceipt'],
    ['a Google proof without its fields', { appUserId: 'erin', store: 'PLAY_STORE' }, 'google.productId and google.purchaseToken'],
    ['a signature without the JSON', { appUserId: 'erin', store: 'PLAY_STORE', google: { productId: 'p', purchaseToken: 't', signature: 'x' } }, 'go together'],
    ['an empty appUserId', { appUserId: '', store: 'PLAY_STORE', google: { productId: 'p', purchaseToken: 't' } }, 'appUserId'],
  ])('rejects %s with BAD_USER_INPUT', async (_name, input, message) => {
    const res = await t.server(`mutation($input: SubmitReceiptInput!) { submitReceipt(input: $input) { status } }`, { input });
    expect(res.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    expect(res.errors![0]!.message).toContain(message);
  });

  it('rejects an unknown store value with a GraphQL input error', async () => {
    const res = await t.server(`mutation { submitReceipt(input: { appUserId: "x", store: AMAZON }) { status } }`);
    expect(res.status).toBe(400);
    expect(res.errors![0]!.extensions!.code).toBe('GRAPHQL_VALIDATION_FAILED');
  });

  it('answers a bad variable value with BAD_USER_INPUT, and the same query with good values still runs', async () => {
    const query = `query($filter: AnalyticsFilter) { subscriptionStateCounts(filter: $filter) { total } }`;
    const bad = await t.server(query, { filter: { store: 'NOPE' } });
    expect(bad.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    const good = await t.server(query, { filter: { store: 'APP_STORE' } });
    expect(good.errors).toBeUndefined();
    expect(typeof (good.data!.subscriptionStateCounts as { total: number }).total).toBe('number');
  });

  it('rejects queries deeper than the limit', async () => {
    const deep = `{ customer(appUserId: "a") { subscriptions { entitlements } } }`;
    expect((await t.server(deep)).errors).toBeUndefined();
    const tooDeep = `fragment F on Customer { subscriptions { entitlements } } { customer(appUserId: "a") { ...F } }`;
    const small = await startTestApp(kind, { config: { GRAPHQL_MAX_DEPTH: 2 } });
    try {
      const res = await small.server(tooDeep);
      expect(res.errors![0]!.extensions!.code).toBe('QUERY_TOO_COMPLEX');
      expect(res.errors![0]!.message).toContain('depth 3 exceeds the limit of 2');
    } finally {
      await small.close();
    }
  });

  it('rejects queries costlier than the complexity limit', async () => {
    const aliases = Array.from({ length: 300 }, (_, i) => `c${i}: customer(appUserId: "u${i}") { subscriptions { productId } }`).join('\n');
    const res = await t.server(`{ ${aliases} }`);
    expect(res.errors![0]!.extensions!.code).toBe('QUERY_TOO_COMPLEX');
    expect(res.errors![0]!.message).toMatch(/complexity \d+ exceeds the limit of 1000/);
  });

  it('rejects an overlong query text before parsing it', async () => {
    const res = await t.server(`{ products { productId } } # ${'x'.repeat(100_001)}`);
    expect(res.status).toBe(413);
    expect(res.errors![0]!.extensions!.code).toBe('QUERY_TOO_LARGE');
  });

  it('answers QUERY_TOO_COMPLEX, not an internal error, when a query is too large to estimate', async () => {
    // Short text, but a fragment spread many times: more nodes than the estimator is willing to walk.
    const fragment = `fragment F on Product { ${Array.from({ length: 60 }, (_, i) => `f${i}: productId`).join(' ')} }`;
    const spreads = Array.from({ length: 250 }, (_, i) => `p${i}: products { ...F }`).join(' ');
    const res = await t.server(`${fragment} { ${spreads} }`);
    expect(res.errors![0]!.extensions!.code).toBe('QUERY_TOO_COMPLEX');
  });

  it('serves health, readiness and Prometheus metrics', async () => {
    const base = t.url.replace(/\/graphql$/, '');
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', database: kind, pendingMigrations: [] });
    const metrics = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TEST_API_KEY}` } })).text();
    expect(metrics).toMatch(/iap_http_requests_total\{method="POST",route="\/graphql",status="200"\} \d+/);
    expect(metrics).toContain('iap_http_request_duration_seconds_bucket');
    expect(metrics).toMatch(/iap_graphql_errors_total\{code="STORE_NOT_CONFIGURED"\} [1-9]/);
    const missing = await fetch(`${base}/nope`);
    expect(missing.status).toBe(404);
  });

  it('echoes or assigns a request id', async () => {
    const res = await fetch(t.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer test-server-key-0123456789abcdef', 'x-request-id': 'req-42' },
      body: JSON.stringify({ query: '{ products { productId } }' }),
    });
    expect(res.headers.get('x-request-id')).toBe('req-42');
    const other = await fetch(t.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
    expect(other.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('rejects a malformed JSON body with a clear error', async () => {
    const res = await fetch(t.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer test-server-key-0123456789abcdef' },
      body: '{"query": ',
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).errors[0].extensions.code).toBe('BAD_REQUEST');
  });
});
