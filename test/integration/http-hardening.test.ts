// Regression tests for the HTTP and GraphQL edge found by probing a running instance: query limits that must
// hold for every variable value and operation name, bounded input, connections that never hang, and errors
// and metrics that tell a client's fault from the server's.
import { createHash } from 'node:crypto';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASE_KINDS } from '../support/databases.js';
import { startTestApp, TEST_API_KEY, TEST_JWT_SECRET, type TestApp } from '../support/test-app.js';

const SERVER = { authorization: `Bearer ${TEST_API_KEY}` };

async function userToken(sub: string): Promise<Record<string, string>> {
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode(TEST_JWT_SECRET));
  return { authorization: `Bearer ${token}` };
}

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: any;
}

/** A POST with node:http (fetch cannot set Host, or reuse one connection on purpose). */
function post(url: string, body: string | Buffer, headers: Record<string, string> = {}, agent?: Agent): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          /* not JSON: keep the text */
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
      });
    });
    req.setTimeout(15_000, () => req.destroy(new Error('no answer within 15 s')));
    // The server may answer (413) and close before the whole body is written.
    req.on('error', reject);
    req.end(body);
  });
}

const gqlBody = (query: string, variables?: Record<string, unknown>, operationName?: string) => JSON.stringify({ query, variables, operationName });

async function count(t: TestApp, table: string): Promise<number> {
  const rows = (await t.app.orm.em.getConnection().execute(`select count(*)::int as n from ${table}`)) as { n: number }[];
  return rows[0]!.n;
}

describe.each(DATABASE_KINDS)('the HTTP and GraphQL edge on %s', (kind) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp(kind, { config: { METRICS_TOKEN: 'metrics-token-0123456789abcdef' } });
  });
  afterAll(async () => {
    await t?.close();
  });

  describe('the cost limit holds for every variable value', () => {
    const aliases = Array.from({ length: 600 }, (_, i) => `o${i}: createOrder(input: { appUserId: "alice", store: APP_STORE, productId: "com.example.app.no_ads" }) { id }`).join('\n');
    const doc = `mutation Many($x: Boolean!) { ...on Mutation @include(if: $x) { ${aliases} } }`;

    it('refuses a document whose fields are under @include, whatever the first request said', async () => {
      const before = await count(t, 'purchase_order');
      for (const headers of [await userToken('alice'), SERVER]) {
        // The priming request that used to unlock the document for everyone.
        const primed = await t.gql(doc, { x: false }, headers);
        expect(primed.errors?.[0]?.extensions?.code).toBe('QUERY_TOO_COMPLEX');
        const attack = await t.gql(doc, { x: true }, headers);
        expect(attack.status).toBe(400);
        expect(attack.errors?.[0]?.extensions?.code).toBe('QUERY_TOO_COMPLEX');
      }
      expect(await count(t, 'purchase_order')).toBe(before);
    });

    it('counts a root mutation field as a transaction: 40 fit the default limit, 41 do not', async () => {
      const aliases = (n: number) => Array.from({ length: n }, (_, i) => `r${i}: revokePromotionalEntitlement(input: { appUserId: "alice", entitlement: "pro", reason: "test" })`).join(' ');
      const fits = await t.server(`mutation { ${aliases(38)} }`);
      expect(fits.errors).toBeUndefined();
      const over = await t.server(`mutation { ${aliases(41)} }`);
      expect(over.errors?.[0]?.extensions?.code).toBe('QUERY_TOO_COMPLEX');
    });

    it('counts @skip the same way', async () => {
      const res = await t.server(`query($s: Boolean!) { ${Array.from({ length: 300 }, (_, i) => `c${i}: customer(appUserId: "a") @skip(if: $s) { subscriptions { id } }`).join(' ')} }`, { s: true });
      expect(res.errors?.[0]?.extensions?.code).toBe('QUERY_TOO_COMPLEX');
    });
  });

  describe('operation names', () => {
    it('answers an operation name the document lacks with GRAPHQL_VALIDATION_FAILED, and runs nothing', async () => {
      const before = await count(t, 'purchase_order');
      const res = await post(t.url, gqlBody(`mutation A { createOrder(input: { appUserId: "alice", store: APP_STORE, productId: "com.example.app.no_ads" }) { id } }`, undefined, 'B'), SERVER);
      expect(res.status).toBe(400);
      expect(res.body.errors[0].extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(res.body.errors[0].message).toContain('no operation named "B"');
      expect(await count(t, 'purchase_order')).toBe(before);
    });

    it('runs the named one of several operations, and refuses several without a name', async () => {
      const doc = `query A { products { productId } } query B { entitlements(appUserId: "x") { identifier } }`;
      const named = await post(t.url, gqlBody(doc, undefined, 'B'), SERVER);
      expect(named.status).toBe(200);
      expect(named.body.data).toEqual({ entitlements: [] });
      const unnamed = await post(t.url, gqlBody(doc), SERVER);
      expect(unnamed.status).toBe(400);
      expect(unnamed.body.errors[0].extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');
    });

    it('refuses a subscription operation with a client error', async () => {
      const res = await post(t.url, gqlBody(`subscription S { products { productId } }`), SERVER);
      expect(res.status).toBe(400);
      expect(res.body.errors[0].extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');
    });

    it('answers a persisted query with a wrong hash with a client error', async () => {
      const query = '{ products { productId } }';
      const wrong = createHash('sha256').update('something else').digest('hex');
      const res = await post(t.url, JSON.stringify({ query, extensions: { persistedQuery: { version: 1, sha256Hash: wrong } } }), SERVER);
      expect(res.status).toBe(400);
      expect(res.body.errors[0].extensions.code).not.toBe('INTERNAL_SERVER_ERROR');
      expect(res.body.errors[0].extensions.code).toBe('BAD_REQUEST');
      expect(res.body.errors[0].message).toContain('does not match');
      const unknown = await post(t.url, JSON.stringify({ extensions: { persistedQuery: { version: 1, sha256Hash: wrong } } }), SERVER);
      expect(unknown.body.errors[0].extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    });
  });

  describe('input bounds', () => {
    it.each([
      ['customer', `query($id: String!) { customer(appUserId: $id) { appUserId } }`],
      ['entitlements', `query($id: String!) { entitlements(appUserId: $id) { identifier } }`],
    ])('refuses an appUserId over 255 characters in %s (a 5 MB one too)', async (_field, query) => {
      for (const id of ['u'.repeat(256), 'u'.repeat(5_000_000)]) {
        const res = await t.server(query, { id });
        expect(res.status).toBe(400);
        expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      }
      const ok = await t.server(query, { id: 'u'.repeat(255) });
      expect(ok.errors).toBeUndefined();
    });

    it('bounds literals in the query text too, and names the place', async () => {
      const res = await t.server(`{ entitlements(appUserId: "${'x'.repeat(300)}") { identifier } }`);
      expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(res.errors?.[0]?.message).toContain('Query.entitlements.appUserId: at most 255 characters');
    });

    it('takes a legacy receipt of megabytes where a receipt goes, and nowhere else', async () => {
      const receipt = 'A'.repeat(1_000_000);
      const asReceipt = await t.server(`mutation($r: String!) { submitReceipt(input: { appUserId: "big", store: APP_STORE, apple: { appReceipt: $r } }) { status } }`, { r: receipt });
      // The App Store is not configured here: the bounds let it through to the service.
      expect(asReceipt.errors?.[0]?.extensions?.code).toBe('STORE_NOT_CONFIGURED');
      const asReason = await t.server(
        `mutation($r: String!) { grantPromotionalEntitlement(input: { appUserId: "big", entitlement: "pro", reason: $r }) { entitlement } }`,
        { r: receipt },
      );
      expect(asReason.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    });

    it.each([
      ['spendCredits idempotencyKey (user token)', `mutation($k: String!) { spendCredits(input: { appUserId: "alice", currency: "coins", amount: 1, idempotencyKey: $k }) { balance } }`, 'user'],
      ['a Google purchase token (user token)', `mutation($k: String!) { submitReceipt(input: { appUserId: "alice", store: PLAY_STORE, google: { productId: "no_ads", purchaseToken: $k } }) { status } }`, 'user'],
      ['a promotional grant reason', `mutation($k: String!) { grantPromotionalEntitlement(input: { appUserId: "alice", entitlement: "pro", reason: $k }) { entitlement } }`, 'server'],
      ['a customer id', `query($k: String!) { customer(appUserId: $k) { appUserId } }`, 'server'],
      ['a purchase lookup', `query($k: String) { purchaseLookup(storeTransactionId: $k) { purchases { storeTransactionId } } }`, 'server'],
    ])('refuses a NUL character in %s with BAD_USER_INPUT', async (_name, query, who) => {
      const headers = who === 'user' ? await userToken('alice') : SERVER;
      const res = await t.gql(query, { k: 'a\u0000b' }, headers);
      expect(res.status).toBe(400);
      expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(res.errors?.[0]?.message).toContain('NUL');
    });

    it('refuses a NUL escaped in a query literal', async () => {
      const res = await t.server(`{ customer(appUserId: "a\\u0000b") { appUserId } }`);
      expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    });

    it('bounds a value sent as null for a defaulted variable used where a value is required (graphql-jit does not check it)', async () => {
      const query = `mutation($p: String = "no_ads", $t: String!) { submitReceipt(input: { appUserId: "alice", store: PLAY_STORE, google: { productId: $p, purchaseToken: $t } }) { status } }`;
      for (const token of ['t'.repeat(100_000), 't'.repeat(3_000_000)]) {
        const res = await t.server(query, { p: null, t: token });
        expect(res.status).toBe(400);
        expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      }
    });

    it('a value the estimator cannot take does not become the verdict of the document for everyone', async () => {
      const query = `query P($id: String = "x") { entitlements(appUserId: $id) { identifier } }`;
      const bad = await t.server(query, { id: null });
      expect(bad.errors?.[0]?.extensions?.code).not.toBe('QUERY_TOO_COMPLEX');
      expect(bad.errors?.[0]?.extensions?.code).not.toBe('INTERNAL_SERVER_ERROR');
      const good = await t.server(query, { id: 'someone' });
      expect(good.errors).toBeUndefined();
      expect(good.data).toEqual({ entitlements: [] });
    });

    it("checks an operation against its own fragments only, not another operation's", async () => {
      const doc = `query A { products { productId } } query B { ...F } fragment F on Query { entitlements(appUserId: "${'x'.repeat(300)}") { identifier } }`;
      const a = await post(t.url, gqlBody(doc, { x: 'y'.repeat(3_000_000) }, 'A'), SERVER);
      expect(a.status).toBe(200);
      expect(a.body.data.products.length).toBeGreaterThan(0);
      const b = await post(t.url, gqlBody(doc, undefined, 'B'), SERVER);
      expect(b.body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    });

    it('bounds a Google purchase token by what a kept proof can hold (512 characters)', async () => {
      const query = `mutation($t: String!) { submitReceipt(input: { appUserId: "alice", store: PLAY_STORE, google: { productId: "no_ads", purchaseToken: $t } }) { status } }`;
      for (const length of [513, 600, 4096]) {
        const res = await t.server(query, { t: 't'.repeat(length) });
        expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      }
    });

    it('refuses lone surrogates, which the database would store as U+FFFD (two ids becoming one)', async () => {
      const res = await t.server(`query($id: String!) { customer(appUserId: $id) { appUserId } }`, { id: '\ud800-victim' });
      expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('\udfff-victim').setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode(TEST_JWT_SECRET));
      const asUser = await t.gql(`{ products { productId } }`, undefined, { authorization: `Bearer ${token}` });
      expect(asUser.status).toBe(401);
      expect(asUser.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    });

    it('answers ids past the database range and year 0 as BAD_USER_INPUT', async () => {
      for (const query of [
        `{ webhookDeliveries(before: "9999999999999999999") { id } }`,
        `{ webhookDeliveries(eventId: "evt_9999999999999999999") { id } }`,
        `mutation { retryWebhookDelivery(id: "9999999999999999999") { id } }`,
      ]) {
        const res = await t.server(query);
        expect(res.errors?.[0]?.extensions?.code, query).toBe('BAD_USER_INPUT');
      }
      const asVariable = await t.server(`query($at: DateTime) { activeSubscriptions(at: $at) { total } }`, { at: '0000-01-01T00:00:00Z' });
      expect(asVariable.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      const asLiteral = await t.server(`{ activeSubscriptions(at: "0000-01-01T00:00:00Z") { total } }`);
      expect(asLiteral.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    });

    it('answers variables of the wrong type with BAD_USER_INPUT before anything runs', async () => {
      const res = await t.server(`query($id: String!) { customer(appUserId: $id) { appUserId } }`, { id: { nested: [1, 2, 3] } });
      expect(res.status).toBe(400);
      expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      const nested = await t.server(`mutation($i: SpendCreditsInput!) { spendCredits(input: $i) { balance } }`, { i: { appUserId: 'a', currency: 'coins', amount: 'many' } });
      expect(nested.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect((nested.errors?.[0]?.extensions?.problems as string[]).length).toBeGreaterThan(0);
    });
  });

  describe('request bodies', () => {
    it('closes the connection after a 413, so the next request gets an answer', async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const big = Buffer.alloc(7 * 1024 * 1024, 0x20);
        const refused = await post(t.url, big, SERVER, agent);
        expect(refused.status).toBe(413);
        expect(refused.headers.connection).toBe('close');
        expect(refused.body.errors[0].extensions.code).toBe('PAYLOAD_TOO_LARGE');
        const next = await post(t.url, gqlBody('{ products { productId } }'), SERVER, agent);
        expect(next.status).toBe(200);
        expect(next.body.data.products.length).toBeGreaterThan(0);
      } finally {
        agent.destroy();
      }
    });

    it('answers a body that grows past the limit without a content-length too', async () => {
      const res = await new Promise<number>((resolve, reject) => {
        const req = request(t.url, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked', ...SERVER } }, (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        });
        req.on('error', reject);
        const chunk = Buffer.alloc(1024 * 1024, 0x20);
        for (let i = 0; i < 7; i++) req.write(chunk);
        req.end();
      });
      expect(res).toBe(413);
    });
  });

  describe('metrics', () => {
    const metricsUrl = () => t.url.replace('/graphql', '/metrics');

    it('are not public: they need METRICS_TOKEN or a server key', async () => {
      expect((await fetch(metricsUrl())).status).toBe(401);
      expect((await fetch(metricsUrl(), { headers: await userToken('alice') })).status).toBe(401);
      expect((await fetch(metricsUrl(), { headers: { authorization: 'Bearer wrong-token-0123456789abcdef' } })).status).toBe(401);
      expect((await fetch(metricsUrl(), { headers: { authorization: 'Bearer metrics-token-0123456789abcdef' } })).status).toBe(200);
      expect((await fetch(metricsUrl(), { headers: SERVER })).status).toBe(200);
    });

    it('give label slots only to operations that resolved', async () => {
      const invalid = async () => Number((await (await fetch(metricsUrl(), { headers: SERVER })).text()).match(/iap_graphql_operations_total\{operation="invalid",outcome="error"\} (\d+)/)?.[1] ?? 0);
      const before = await invalid();
      for (let i = 0; i < 120; i++) await post(t.url, gqlBody(`query Real { products { productId } }`, undefined, `MadeUp${i}`), SERVER);
      await post(t.url, gqlBody(`query RealOne { products { productId } }`, undefined, 'RealOne'), SERVER);
      const text = await (await fetch(metricsUrl(), { headers: SERVER })).text();
      expect(text).not.toContain('MadeUp');
      expect(text).toMatch(/iap_graphql_operations_total\{operation="RealOne",outcome="ok"\} 1/);
      expect(await invalid()).toBe(before + 120);
    });

    it('count a client that went away as 499, not as a server error', async () => {
      const port = Number(new URL(t.url).port);
      for (let i = 0; i < 5; i++) {
        const socket: Socket = connect(port, '127.0.0.1');
        await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
        socket.write(`POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${TEST_API_KEY}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{"query":`);
        await new Promise((r) => setTimeout(r, 20));
        socket.destroy();
      }
      let text = '';
      for (let i = 0; i < 50 && !text.includes('status="499"'); i++) {
        await new Promise((r) => setTimeout(r, 20));
        text = await (await fetch(metricsUrl(), { headers: SERVER })).text();
      }
      expect(text).toMatch(/iap_http_requests_total\{method="POST",route="\/graphql",status="499"\} 5/);
      expect(text.split('\n').filter((l) => /status="5\d\d"/.test(l))).toEqual([]);
    });
  });

  describe('introspection', () => {
    it('is off outside development mode, and errors make no suggestions', async () => {
      const res = await t.server(`{ __schema { types { name } } }`);
      expect(res.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
      const typo = await t.server(`{ product { productId } }`);
      expect(typo.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(typo.errors?.[0]?.message).not.toContain('Did you mean');
    });
  });
});

describe('settings of the edge', () => {
  it('introspection and suggestions come back with GRAPHQL_INTROSPECTION=true', async () => {
    const t = await startTestApp('pglite', { config: { GRAPHQL_INTROSPECTION: 'true' } });
    try {
      const res = await t.server(`{ __schema { queryType { name } } }`);
      expect(res.data).toEqual({ __schema: { queryType: { name: 'Query' } } });
      const typo = await t.server(`{ product { productId } }`);
      expect(typo.errors?.[0]?.message).toContain('Did you mean');
    } finally {
      await t.close();
    }
  });

  it('METRICS_PORT serves metrics on a port of their own and not on the API port', async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const t = await startTestApp('pglite', { config: { METRICS_PORT: String(port) } });
    try {
      expect((await fetch(t.url.replace('/graphql', '/metrics'), { headers: SERVER })).status).toBe(404);
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('iap_http_requests_total');
    } finally {
      await t.close();
    }
  });

  it('development mode answers only requests addressed to a loopback name (DNS rebinding)', async () => {
    const t = await startTestApp('pglite', { config: { API_KEYS: '', JWT_SECRET: '' } });
    try {
      expect(t.app.config.devMode).toBe(true);
      const body = gqlBody('{ products { productId } }');
      const rebound = await post(t.url, body, { host: 'attacker.example' });
      expect(rebound.status).toBe(403);
      expect(rebound.body.errors[0].extensions.code).toBe('FORBIDDEN');
      for (const host of ['[::1].attacker.example', '[::1]x', 'localhost.attacker.example', '127.0.0.1.attacker.example']) {
        expect((await post(t.url, body, { host })).status, host).toBe(403);
      }
      for (const host of [`localhost:${new URL(t.url).port}`, `LOCALHOST:${new URL(t.url).port}`, 'localhost.', `127.0.0.1:${new URL(t.url).port}`, '[::1]:4000', '[::1]']) {
        const res = await post(t.url, body, { host });
        expect(res.status).toBe(200);
      }
      // Metrics are open in development mode.
      expect((await fetch(t.url.replace('/graphql', '/metrics'))).status).toBe(200);
    } finally {
      await t.close();
    }
  });

  it('bodies being read at once are bounded: past MAX_BUFFERED_BODIES_MB new ones get 503 with Retry-After', async () => {
    const t = await startTestApp('pglite', { config: { MAX_BUFFERED_BODIES_MB: '8' } });
    const sockets: Socket[] = [];
    try {
      const port = Number(new URL(t.url).port);
      const answers: string[] = [];
      // Three slow uploads of 5 MB, each stopping after 3 MB: 9 MB held at once is over the 8 MB budget.
      for (let i = 0; i < 3; i++) {
        const socket = connect(port, '127.0.0.1');
        sockets.push(socket);
        socket.on('data', (d: Buffer) => (answers[i] = (answers[i] ?? '') + d.toString('utf8')));
        socket.on('error', () => undefined);
        await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
        socket.write(`POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${TEST_API_KEY}\r\ncontent-type: application/json\r\ncontent-length: ${5 * 1024 * 1024}\r\n\r\n`);
        await new Promise<void>((resolve) => socket.write(Buffer.alloc(3 * 1024 * 1024, 0x20), () => resolve()));
        await new Promise((r) => setTimeout(r, 100));
      }
      for (let i = 0; i < 50 && !answers[2]; i++) await new Promise((r) => setTimeout(r, 20));
      expect(answers[0]).toBeUndefined();
      expect(answers[1]).toBeUndefined();
      expect(answers[2]).toMatch(/^HTTP\/1\.1 503/);
      expect(answers[2]).toMatch(/retry-after: 1/i);
      expect(answers[2]).toContain('SERVICE_UNAVAILABLE');
    } finally {
      sockets.forEach((s) => s.destroy());
      await t.close();
    }
  });
});
