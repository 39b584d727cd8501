// Who may call what: server API keys, per-user JWTs (HS256 secret or a JWKS URL), and nothing else.
import { createServer, type Server } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASE_KINDS } from '../support/databases.js';
import { purchase } from '../support/purchases.js';
import { startTestApp, TEST_API_KEY, TEST_JWT_SECRET, type TestApp } from '../support/test-app.js';

const QUERY = `query($id: String!) { customer(appUserId: $id) { appUserId entitlements { identifier } } }`;
const SPEND = `mutation($input: SpendCreditsInput!) { spendCredits(input: $input) { balance } }`;

async function hsToken(sub: string, opts: { secret?: string; expiresIn?: string; sub?: boolean } = {}): Promise<string> {
  const jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(opts.expiresIn ?? '5m');
  if (opts.sub !== false) jwt.setSubject(sub);
  return jwt.sign(new TextEncoder().encode(opts.secret ?? TEST_JWT_SECRET));
}

describe.each(DATABASE_KINDS)('auth on %s', (kind) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp(kind);
    await t.app.services.recorder.record('alice', [purchase({ productId: 'com.example.app.no_ads', transactionId: `auth-${kind}` })], new Date());
  });
  afterAll(async () => {
    await t?.close();
  });

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it.each([
    ['no credentials', () => ({}), 'missing credentials'],
    ['a wrong API key', () => ({ 'x-api-key': 'wrong-key-wrong-key-wrong-key' }), 'invalid API key'],
    ['garbage as a bearer token', () => bearer('not-a-token'), 'invalid token'],
    ['a token signed with another secret', async () => bearer(await hsToken('alice', { secret: 'another-secret-another-secret-another' })), 'signature verification failed'],
    ['an expired token', async () => bearer(await hsToken('alice', { expiresIn: '-1m' })), '"exp" claim'],
    ['a token without sub', async () => bearer(await hsToken('alice', { sub: false })), 'missing required "sub" claim'],
    ['a token that never expires', async () => bearer(await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').sign(new TextEncoder().encode(TEST_JWT_SECRET))), 'missing required "exp" claim'],
  ])('answers UNAUTHENTICATED (401) to %s', async (_name, headers, message) => {
    const res = await t.gql(QUERY, { id: 'alice' }, await headers());
    expect(res.status).toBe(401);
    expect(res.errors![0]!.extensions!.code).toBe('UNAUTHENTICATED');
    expect(res.errors![0]!.message).toContain(message);
  });

  it('lets a server key read any customer, by bearer or x-api-key header', async () => {
    for (const headers of [bearer(TEST_API_KEY), { 'x-api-key': TEST_API_KEY }]) {
      const res = await t.gql(QUERY, { id: 'alice' }, headers);
      expect(res.errors).toBeUndefined();
      expect(res.data!.customer).toEqual({ appUserId: 'alice', entitlements: [{ identifier: 'no_ads' }] });
    }
  });

  it('lets a user token read its own customer only', async () => {
    const token = await hsToken('alice');
    const own = await t.gql(QUERY, { id: 'alice' }, bearer(token));
    expect(own.data!.customer.entitlements).toEqual([{ identifier: 'no_ads' }]);
    const other = await t.gql(QUERY, { id: 'bob' }, bearer(token));
    expect(other.errors![0]!.extensions!.code).toBe('FORBIDDEN');
    expect(other.data).toBeNull();
  });

  it("forbids a user token to spend or submit for someone else", async () => {
    const token = await hsToken('alice');
    const spend = await t.gql(SPEND, { input: { appUserId: 'bob', currency: 'coins', amount: 1, idempotencyKey: 'k' } }, bearer(token));
    expect(spend.errors![0]!.extensions!.code).toBe('FORBIDDEN');
    const submit = await t.gql(
      `mutation($input: SubmitReceiptInput!) { submitReceipt(input: $input) { status } }`,
      { input: { appUserId: 'bob', store: 'PLAY_STORE', google: { productId: 'pro_monthly', purchaseToken: 't' } } },
      bearer(token),
    );
    expect(submit.errors![0]!.extensions!.code).toBe('FORBIDDEN');
  });
});

describe('auth with a JWKS URL', () => {
  let t: TestApp;
  let jwks: Server;
  let signingKey: Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];

  beforeAll(async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    signingKey = privateKey;
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    jwks = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()));
    const port = (jwks.address() as { port: number }).port;
    t = await startTestApp('pglite', {
      config: { JWT_SECRET: undefined, JWT_JWKS_URL: `http://127.0.0.1:${port}/jwks.json`, JWT_ISSUER: 'https://id.example.test', JWT_AUDIENCE: 'iap' },
    });
  });
  afterAll(async () => {
    await t?.close();
    jwks?.close();
  });

  const token = (claims: { iss?: string; aud?: string; sub?: string }) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setSubject(claims.sub ?? 'zoe')
      .setIssuer(claims.iss ?? 'https://id.example.test')
      .setAudience(claims.aud ?? 'iap')
      .setExpirationTime('5m')
      .sign(signingKey);

  it('accepts a token signed by a key from the JWKS, with the right issuer and audience', async () => {
    const res = await t.gql(QUERY, { id: 'zoe' }, { authorization: `Bearer ${await token({})}` });
    expect(res.errors).toBeUndefined();
    expect(res.data!.customer.appUserId).toBe('zoe');
  });

  it.each([
    ['issuer', { iss: 'https://evil.example.test' }, '"iss" claim'],
    ['audience', { aud: 'other' }, '"aud" claim'],
  ])('rejects a token with the wrong %s', async (_n, claims, message) => {
    const res = await t.gql(QUERY, { id: 'zoe' }, { authorization: `Bearer ${await token(claims)}` });
    expect(res.status).toBe(401);
    expect(res.errors![0]!.message).toContain(message);
  });
});
