import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { google, type androidpublisher_v3 } from 'googleapis';
import { FakeGooglePlay, GOOGLE_TOKEN_URL } from './google-play.js';

const PKG = 'com.example.app';

/** Builds the client the way the service does: JWT service-account auth, token request routed to the fake. */
function makeClient(fake: FakeGooglePlay): { api: androidpublisher_v3.Androidpublisher; auth: InstanceType<typeof google.auth.JWT> } {
  const sa = fake.serviceAccount;
  const auth = new google.auth.JWT({ email: sa.client_email, key: sa.private_key, scopes: ['https://www.googleapis.com/auth/androidpublisher'] });
  // google-auth-library@11 posts the JWT-bearer grant to a hard-coded https://oauth2.googleapis.com/token through
  // `auth.transporter` (a Gaxios instance); request interceptors run after URL preparation, so `opts.url` is a URL.
  auth.transporter.interceptors.request.add({
    resolved: async (opts) => {
      if (opts.url.toString() === GOOGLE_TOKEN_URL) opts.url = new URL(fake.tokenUrl);
      return opts;
    },
  });
  const api = google.androidpublisher({ version: 'v3', auth, rootUrl: fake.rootUrl });
  return { api, auth };
}

async function failure(p: Promise<unknown>): Promise<Record<string, unknown> & Error> {
  try {
    await p;
  } catch (err) {
    return err as Record<string, unknown> & Error;
  }
  throw new Error('expected the call to fail');
}

describe('FakeGooglePlay with the real googleapis client', () => {
  let fake: FakeGooglePlay;
  let api: androidpublisher_v3.Androidpublisher;

  beforeAll(async () => {
    fake = await FakeGooglePlay.start();
  });
  afterAll(async () => {
    await fake.close();
  });
  beforeEach(() => {
    fake.rejectCredentials(null);
    ({ api } = makeClient(fake));
  });

  it('products.get returns the scripted purchase after a real token exchange', async () => {
    fake.setProduct('tok-p1', {
      packageName: PKG,
      productId: 'coins_100',
      purchaseState: 0,
      orderId: 'GPA.1111-2222-3333-44444',
      purchaseTimeMillis: '1700000000000',
      quantity: 2,
      obfuscatedExternalAccountId: 'acct-1',
      purchaseType: 0,
      regionCode: 'DE',
    });
    const before = fake.tokenRequests;
    const res = await api.purchases.products.get({ packageName: PKG, productId: 'coins_100', token: 'tok-p1' });
    expect(res.status).toBe(200);
    expect(res.data).toMatchObject({
      kind: 'androidpublisher#productPurchase',
      productId: 'coins_100',
      purchaseState: 0,
      consumptionState: 0,
      acknowledgementState: 0,
      orderId: 'GPA.1111-2222-3333-44444',
      quantity: 2,
      obfuscatedExternalAccountId: 'acct-1',
      purchaseType: 0,
      regionCode: 'DE',
    });
    expect(res.data).not.toHaveProperty('packageName');
    expect(fake.tokenRequests).toBe(before + 1);
    // the access token is cached: a second call does not fetch another one
    await api.purchases.products.get({ packageName: PKG, productId: 'coins_100', token: 'tok-p1' });
    expect(fake.tokenRequests).toBe(before + 1);
    expect(fake.calls.at(-1)).toMatchObject({ method: 'GET', path: `/androidpublisher/v3/applications/${PKG}/purchases/products/coins_100/tokens/tok-p1` });
  });

  it('URL-decodes path segments (tokens with reserved characters)', async () => {
    const token = 'abc.DEF-ghi_jkl:mn/op+q=';
    fake.setProduct(token, { packageName: PKG, productId: 'coins_100', purchaseState: 0 });
    const res = await api.purchases.products.get({ packageName: PKG, productId: 'coins_100', token });
    expect(res.data.purchaseState).toBe(0);
  });

  it('acknowledge and consume are recorded and change the purchase', async () => {
    fake.setProduct('tok-p2', { packageName: PKG, productId: 'coins_100', purchaseState: 0 });
    const ack = await api.purchases.products.acknowledge({ packageName: PKG, productId: 'coins_100', token: 'tok-p2', requestBody: { developerPayload: 'x' } });
    expect(ack.status).toBe(204);
    expect(fake.getProduct('tok-p2')?.acknowledgementState).toBe(1);
    expect(fake.calls.at(-1)).toMatchObject({ method: 'POST', body: { developerPayload: 'x' } });
    expect(fake.calls.at(-1)?.path).toMatch(/:acknowledge$/);

    const again = await failure(api.purchases.products.acknowledge({ packageName: PKG, productId: 'coins_100', token: 'tok-p2' }));
    expect(again.status).toBe(400);
    expect(again.message).toBe('The purchase is not in a valid state to perform the desired operation.');

    await api.purchases.products.consume({ packageName: PKG, productId: 'coins_100', token: 'tok-p2' });
    expect(fake.getProduct('tok-p2')?.consumptionState).toBe(1);
    expect(fake.acknowledgements()).toContain('tok-p2');
    expect(fake.consumptions()).toEqual(['tok-p2']);
  });

  it('consume of a pending purchase is refused with 400', async () => {
    fake.setProduct('tok-pending', { packageName: PKG, productId: 'coins_100', purchaseState: 2 });
    const err = await failure(api.purchases.products.consume({ packageName: PKG, productId: 'coins_100', token: 'tok-pending' }));
    expect(err.status).toBe(400);
    expect(fake.consumptions()).not.toContain('tok-pending');
  });

  it('subscriptionsv2.get returns the scripted subscription; subscriptions.acknowledge acknowledges it', async () => {
    const sub: androidpublisher_v3.Schema$SubscriptionPurchaseV2 = {
      subscriptionState: 'SUBSCRIPTION_STATE_ACTIVE',
      startTime: '2025-01-01T00:00:00Z',
      linkedPurchaseToken: 'tok-old',
      acknowledgementState: 'ACKNOWLEDGEMENT_STATE_PENDING',
      externalAccountIdentifiers: { obfuscatedExternalAccountId: 'acct-2' },
      testPurchase: {},
      regionCode: 'US',
      lineItems: [
        {
          productId: 'premium_monthly',
          expiryTime: '2030-02-01T00:00:00Z',
          autoRenewingPlan: { autoRenewEnabled: true },
          offerDetails: { basePlanId: 'monthly', offerId: 'intro' },
          latestSuccessfulOrderId: 'GPA.9999-0000-1111-22222..0',
        },
      ],
    };
    fake.setSubscription('tok-s1', sub);
    const res = await api.purchases.subscriptionsv2.get({ packageName: PKG, token: 'tok-s1' });
    expect(res.data).toMatchObject({ ...sub, kind: 'androidpublisher#subscriptionPurchaseV2' });

    const wrongProduct = await failure(api.purchases.subscriptions.acknowledge({ packageName: PKG, subscriptionId: 'other', token: 'tok-s1' }));
    expect(wrongProduct.status).toBe(404);

    await api.purchases.subscriptions.acknowledge({ packageName: PKG, subscriptionId: 'premium_monthly', token: 'tok-s1', requestBody: {} });
    expect(fake.getSubscription('tok-s1')?.acknowledgementState).toBe('ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED');
    expect(fake.acknowledgements().at(-1)).toBe('tok-s1');
    const after = await api.purchases.subscriptionsv2.get({ packageName: PKG, token: 'tok-s1' });
    expect(after.data.acknowledgementState).toBe('ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED');

    const twice = await failure(api.purchases.subscriptions.acknowledge({ packageName: PKG, subscriptionId: 'premium_monthly', token: 'tok-s1' }));
    expect(twice.status).toBe(400);
  });

  it('voidedpurchases.list filters by time and pages with tokenPagination.nextPageToken', async () => {
    const base = Date.now() - 60_000;
    for (let i = 0; i < 5; i++) {
      fake.addVoidedPurchase({ purchaseToken: `void-${i}`, orderId: `GPA.v-${i}`, purchaseTimeMillis: String(base - 1000), voidedTimeMillis: String(base + i), voidedReason: 1, voidedSource: 0 });
    }
    fake.addVoidedPurchase({ purchaseToken: 'void-old', orderId: 'GPA.old', voidedTimeMillis: String(base - 10_000) });
    const seen: string[] = [];
    let pageToken: string | undefined;
    let pages = 0;
    do {
      const res = await api.purchases.voidedpurchases.list({ packageName: PKG, startTime: String(base), endTime: String(Date.now()), maxResults: 2, token: pageToken, type: 1 });
      pages++;
      for (const v of res.data.voidedPurchases ?? []) seen.push(v.purchaseToken!);
      pageToken = res.data.tokenPagination?.nextPageToken ?? undefined;
    } while (pageToken !== undefined);
    expect(pages).toBe(3);
    expect(seen).toEqual(['void-0', 'void-1', 'void-2', 'void-3', 'void-4']);
    expect(fake.calls.at(-1)?.query).toMatchObject({ maxResults: '2', type: '1', startTime: String(base) });
  });

  it('an unknown token is a 404 carried by err.status (and err.code), with Google\'s message', async () => {
    const err = await failure(api.purchases.products.get({ packageName: PKG, productId: 'coins_100', token: 'nope' }));
    // GaxiosError does not set `name` (it stays 'Error'); googleapis does not re-export the class
    expect(err.name).toBe('Error');
    expect(err.constructor.name).toBe('GaxiosError');
    expect(err.status).toBe(404);
    expect(err.code).toBe(404);
    expect(err.message).toBe('The purchase token was not found.');
    expect((err.response as { data: unknown }).data).toMatchObject({ error: { code: 404, status: 'NOT_FOUND' } });

    fake.setProduct('tok-other-pkg', { packageName: 'com.other', productId: 'coins_100', purchaseState: 0 });
    const mismatch = await failure(api.purchases.products.get({ packageName: PKG, productId: 'coins_100', token: 'tok-other-pkg' }));
    expect(mismatch.status).toBe(404);
    const sub404 = await failure(api.purchases.subscriptionsv2.get({ packageName: PKG, token: 'nope' }));
    expect(sub404.status).toBe(404);
  });

  it('failNext 503 surfaces with its status when retries are off, and is retried by default on GET', async () => {
    fake.setProduct('tok-f1', { packageName: PKG, productId: 'coins_100', purchaseState: 0 });
    fake.failNext({ status: 503 }, { pathIncludes: 'tok-f1' });
    const err = await failure(api.purchases.products.get({ packageName: PKG, productId: 'coins_100', token: 'tok-f1' }, { retry: false }));
    expect(err.status).toBe(503);
    expect(err.code).toBe(503);

    // googleapis sets `retry: true` by default: gaxios retries GET on 5xx (3 times, first after ~100 ms)
    const callsBefore = fake.calls.length;
    fake.failNext({ status: 503 }, { pathIncludes: 'tok-f1' });
    const ok = await api.purchases.products.get({ packageName: PKG, productId: 'coins_100', token: 'tok-f1' });
    expect(ok.status).toBe(200);
    expect(fake.calls.length - callsBefore).toBe(2);

    // POST (acknowledge) is not retried by default
    fake.failNext({ status: 503 }, { pathIncludes: 'tok-f1' });
    const ackErr = await failure(api.purchases.products.acknowledge({ packageName: PKG, productId: 'coins_100', token: 'tok-f1' }));
    expect(ackErr.status).toBe(503);
    expect(fake.getProduct('tok-f1')?.acknowledgementState).toBe(0);
  });

  it('failNext 401 and rejectCredentials api401/api403 surface with their status (no silent re-auth retry)', async () => {
    fake.setProduct('tok-f2', { packageName: PKG, productId: 'coins_100', purchaseState: 0 });
    fake.failNext({ status: 401 }, { pathIncludes: 'tok-f2' });
    const before = fake.calls.length;
    const err = await failure(api.purchases.products.get({ packageName: PKG, productId: 'coins_100', token: 'tok-f2' }));
    expect(err.status).toBe(401);
    expect(fake.calls.length - before).toBe(1);

    fake.rejectCredentials('api403');
    const e403 = await failure(api.purchases.products.get({ packageName: PKG, productId: 'coins_100', token: 'tok-f2' }));
    expect(e403.status).toBe(403);
    fake.rejectCredentials('api401');
    const e401 = await failure(api.purchases.products.get({ packageName: PKG, productId: 'coins_100', token: 'tok-f2' }));
    expect(e401.status).toBe(401);
    fake.rejectCredentials(null);
    expect((await api.purchases.products.get({ packageName: PKG, productId: 'coins_100', token: 'tok-f2' })).status).toBe(200);
  });

  it('failNext with a custom body sends it verbatim', async () => {
    fake.setProduct('tok-f3', { packageName: PKG, productId: 'coins_100', purchaseState: 0 });
    fake.failNext({ status: 429, body: { error: { code: 429, message: 'Slow down', status: 'RESOURCE_EXHAUSTED' } } }, { pathIncludes: 'tok-f3' });
    const err = await failure(api.purchases.products.get({ packageName: PKG, productId: 'coins_100', token: 'tok-f3' }, { retry: false }));
    expect(err.status).toBe(429);
    expect(err.message).toBe('Slow down');
  });

  it('a hangMs failure makes a call with a timeout fail with code TimeoutError', async () => {
    fake.setProduct('tok-h', { packageName: PKG, productId: 'coins_100', purchaseState: 0 });
    fake.failNext({ hangMs: 5_000 }, { pathIncludes: 'tok-h' });
    const started = Date.now();
    const err = await failure(api.purchases.products.get({ packageName: PKG, productId: 'coins_100', token: 'tok-h' }, { timeout: 200, retry: false }));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(err.constructor.name).toBe('GaxiosError');
    expect(err.code).toBe('TimeoutError');
    expect(err.message).toMatch(/timeout|timed out/i);
    expect((err.cause as Error | undefined)?.name).toBeDefined();
    expect(err.status).toBeUndefined();
    expect(err.response).toBeUndefined();

    // with default retry, a timed-out GET is retried (noResponseRetries = 2): one hang is absorbed
    fake.failNext({ hangMs: 5_000 }, { pathIncludes: 'tok-h' });
    const ok = await api.purchases.products.get({ packageName: PKG, productId: 'coins_100', token: 'tok-h' }, { timeout: 200 });
    expect(ok.status).toBe(200);

    // without a client timeout the fake answers 503 after hangMs
    fake.failNext({ hangMs: 50 }, { pathIncludes: 'tok-h' });
    const late = await failure(api.purchases.products.get({ packageName: PKG, productId: 'coins_100', token: 'tok-h' }, { retry: false }));
    expect(late.status).toBe(503);
  });

  it('API requests need a bearer token issued by /token', async () => {
    const res = await fetch(`${fake.url}/androidpublisher/v3/applications/${PKG}/purchases/subscriptionsv2/tokens/x`);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: { code: 401, status: 'UNAUTHENTICATED' } });
    const forged = await fetch(`${fake.url}/androidpublisher/v3/applications/${PKG}/purchases/subscriptionsv2/tokens/x`, { headers: { authorization: 'Bearer ya29.forged' } });
    expect(forged.status).toBe(401);
  });

  it('the token endpoint refuses bad assertions and rejectCredentials("token")', async () => {
    const bad = await fetch(fake.tokenUrl, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: 'a.b.c' }),
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'invalid_grant' });

    // a key the fake does not know
    const other = await FakeGooglePlay.start();
    try {
      const auth = new google.auth.JWT({ email: fake.serviceAccount.client_email, key: other.serviceAccount.private_key, scopes: ['https://www.googleapis.com/auth/androidpublisher'] });
      auth.transporter.interceptors.request.add({
        resolved: async (opts) => {
          if (opts.url.toString() === GOOGLE_TOKEN_URL) opts.url = new URL(fake.tokenUrl);
          return opts;
        },
      });
      const wrongKey = google.androidpublisher({ version: 'v3', auth, rootUrl: fake.rootUrl });
      const err = await failure(wrongKey.purchases.subscriptionsv2.get({ packageName: PKG, token: 'x' }));
      expect(err.status).toBe(400);
      expect(err.message).toMatch(/^invalid_grant: /);
    } finally {
      await other.close();
    }

    fake.rejectCredentials('token');
    const fresh = makeClient(fake).api;
    const err = await failure(fresh.purchases.subscriptionsv2.get({ packageName: PKG, token: 'x' }));
    expect(err.status).toBe(401);
    expect(err.message).toBe('invalid_grant: Invalid JWT Signature.');
  });

  it('short-lived access tokens are refreshed by the client', async () => {
    const shortLived = await FakeGooglePlay.start({ accessTokenTtlSeconds: 60 });
    try {
      shortLived.setProduct('t', { packageName: PKG, productId: 'p', purchaseState: 0 });
      const { api: client } = makeClient(shortLived);
      await client.purchases.products.get({ packageName: PKG, productId: 'p', token: 't' });
      await client.purchases.products.get({ packageName: PKG, productId: 'p', token: 't' });
      // google-auth-library refreshes tokens expiring within eagerRefreshThresholdMillis (5 min by default)
      expect(shortLived.tokenRequests).toBe(2);
    } finally {
      await shortLived.close();
    }
  });

  it('scripting endpoints for standalone use', async () => {
    const set = await fetch(`${fake.url}/_fake/products/tok-http`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ packageName: PKG, productId: 'coins_100', purchaseState: 0 }),
    });
    expect(set.status).toBe(200);
    expect((await api.purchases.products.get({ packageName: PKG, productId: 'coins_100', token: 'tok-http' })).data.purchaseState).toBe(0);
    await fetch(`${fake.url}/_fake/subscriptions/tok-http-s`, { method: 'POST', body: JSON.stringify({ subscriptionState: 'SUBSCRIPTION_STATE_EXPIRED' }) });
    expect(fake.getSubscription('tok-http-s')?.subscriptionState).toBe('SUBSCRIPTION_STATE_EXPIRED');
    const calls = (await (await fetch(`${fake.url}/_fake/calls`)).json()) as unknown[];
    expect(calls.length).toBe(fake.calls.length);
  });
});
