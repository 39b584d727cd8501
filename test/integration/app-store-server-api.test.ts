// The App Store Server API client (Apple's library client with our base URL and timeout) against the fake
// App Store over HTTP: every endpoint the service uses, paging, and how failures are classified.
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppStoreServerApi } from '../../src/stores/apple/api-client.js';
import { AppleSignedData } from '../../src/stores/apple/signed-data.js';
import { FakeAppStore } from '../fakes/app-store.js';
import { APP_APPLE_ID, BUNDLE_ID, MONTHLY, NO_ADS } from '../support/apple.js';

describe('App Store Server API client', () => {
  let fake: FakeAppStore;
  let api: AppStoreServerApi;
  let verifier: AppleSignedData;
  const clientFor = (over: Partial<{ privateKey: string; keyId: string; productionUrl: string; sandboxUrl: string }> = {}, timeoutMs = 1500) =>
    new AppStoreServerApi({
      bundleId: BUNDLE_ID,
      requestTimeoutMs: timeoutMs,
      api: {
        keyId: fake.apiKey.keyId,
        issuerId: fake.apiKey.issuerId,
        privateKey: fake.apiKey.privateKeyPem,
        productionUrl: fake.apiUrl('Production'),
        sandboxUrl: fake.apiUrl('Sandbox'),
        ...over,
      },
    });

  beforeAll(async () => {
    fake = await FakeAppStore.start({ bundleId: BUNDLE_ID, appAppleId: APP_APPLE_ID });
    api = clientFor();
    verifier = new AppleSignedData({
      rootCertificates: [fake.rootCertificateDer],
      bundleId: BUNDLE_ID,
      appAppleId: APP_APPLE_ID,
      environment: 'PRODUCTION',
      acceptSandbox: true,
      onlineChecks: false,
    });
  });
  afterAll(async () => {
    await fake?.close();
  });

  const transactionIdOf = async (jws: string) => {
    const r = await verifier.transaction(jws);
    if (!r.ok) throw new Error(`did not verify: ${r.reason}`);
    return r.value.transactionId;
  };

  it('gets all subscription statuses: the latest transaction and renewal info, verifiable', async () => {
    const first = fake.buy({ productId: MONTHLY, type: 'Auto-Renewable Subscription', environment: 'Production', account: 'status' });
    const renewal = fake.renew(first.originalTransactionId);
    const res = await api.subscriptionStatuses('PRODUCTION', first.transactionId);
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    const item = res.value.data!.flatMap((g) => g.lastTransactions!).find((i) => i.originalTransactionId === first.originalTransactionId)!;
    expect(item.status).toBe(1);
    expect(await transactionIdOf(item.signedTransactionInfo!)).toBe(renewal.transactionId);
    const renewalInfo = await verifier.renewalInfo(item.signedRenewalInfo!);
    expect(renewalInfo.ok && renewalInfo.value.autoRenewStatus).toBe(1);
  });

  it('gets one transaction', async () => {
    const tx = fake.buy({ productId: NO_ADS, type: 'Non-Consumable', environment: 'Production' });
    const res = await api.transactionInfo('PRODUCTION', tx.transactionId);
    expect(res.ok && (await transactionIdOf(res.value.signedTransactionInfo!))).toBe(tx.transactionId);
  });

  it('pages through the whole transaction history of an account', async () => {
    const bought = Array.from({ length: 45 }, () => fake.buy({ productId: NO_ADS, type: 'Non-Consumable', environment: 'Sandbox', account: 'history' }));
    const res = await api.transactionHistory('SANDBOX', bought[0]!.transactionId);
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    const ids = await Promise.all(res.value.map(transactionIdOf));
    expect([...ids].sort()).toEqual(bought.map((b) => b.transactionId).sort());
    expect(fake.calls.filter((c) => c.path.includes('/history/')).length).toBeGreaterThanOrEqual(3);
  });

  it('looks up the order id on a customer’s e-mailed receipt', async () => {
    const tx = fake.buy({ productId: NO_ADS, type: 'Non-Consumable', environment: 'Production' });
    const res = await api.lookUpOrderId('PRODUCTION', tx.orderId);
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    expect(res.value.status).toBe(0);
    expect(await Promise.all(res.value.signedTransactions!.map(transactionIdOf))).toEqual([tx.transactionId]);
    const unknown = await api.lookUpOrderId('PRODUCTION', 'MKNOTANORDER');
    expect(unknown.ok && unknown.value.status).toBe(1);
  });

  it('says NOT_FOUND for a transaction of the other environment', async () => {
    const tx = fake.buy({ productId: NO_ADS, type: 'Non-Consumable', environment: 'Sandbox' });
    expect(await api.transactionInfo('PRODUCTION', tx.transactionId)).toMatchObject({ ok: false, kind: 'NOT_FOUND', status: 404 });
  });

  it('says AUTH when Apple refuses the key', async () => {
    const stranger = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const tx = fake.buy({ productId: NO_ADS, type: 'Non-Consumable', environment: 'Production' });
    expect(await clientFor({ privateKey: stranger }).transactionInfo('PRODUCTION', tx.transactionId)).toMatchObject({ ok: false, kind: 'AUTH', status: 401 });
  });

  it.each([
    [{ httpStatus: 500 }, 500],
    [{ httpStatus: 503 }, 503],
    [{ httpStatus: 429, errorCode: 4290000 }, 429],
    [{ httpStatus: 404, errorCode: 4040006 }, 404],
    [{ httpStatus: 404, errorCode: 4040011 }, 404],
  ])('says UNAVAILABLE on %j', async (failure, status) => {
    const tx = fake.buy({ productId: NO_ADS, type: 'Non-Consumable', environment: 'Production' });
    fake.failApi(failure);
    expect(await api.transactionInfo('PRODUCTION', tx.transactionId)).toMatchObject({ ok: false, kind: 'UNAVAILABLE', status });
  });

  it('says UNAVAILABLE when Apple does not answer in time or cannot be reached', async () => {
    const tx = fake.buy({ productId: NO_ADS, type: 'Non-Consumable', environment: 'Production' });
    fake.failApi({ hangMs: 2000 });
    expect(await clientFor({}, 300).transactionInfo('PRODUCTION', tx.transactionId)).toMatchObject({ ok: false, kind: 'UNAVAILABLE', status: null });
    const closed = clientFor({ productionUrl: 'http://127.0.0.1:1' });
    expect(await closed.transactionInfo('PRODUCTION', tx.transactionId)).toMatchObject({ ok: false, kind: 'UNAVAILABLE', status: null });
  });
});
