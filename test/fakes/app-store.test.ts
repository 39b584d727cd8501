import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  APIException,
  AppStoreServerAPIClient,
  Environment,
  GetTransactionHistoryVersion,
  Order,
  SignedDataVerifier,
  VerificationException,
  VerificationStatus,
  type JWSRenewalInfoDecodedPayload,
  type JWSTransactionDecodedPayload,
} from '@apple/app-store-server-library';
import { importPKCS8, SignJWT } from 'jose';
import jsrsasign from 'jsrsasign';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { APPLE_LEAF_OID, APPLE_WWDR_OID, decodeJwsPayload, generateAppleChain, signAppleJws } from './apple-certs.js';
import { FakeAppStore, type AppleEnvironment, type FakeTransaction } from './app-store.js';

const BUNDLE = 'com.example.app';
const APP_APPLE_ID = 1234567890;
const SECRET = 'shared-secret-1';
const DAY = 86_400_000;
const START = new Date('2026-03-01T00:00:00Z');

type FetchResponse = Awaited<ReturnType<AppStoreServerAPIClient['makeFetchRequest']>>;

/** The library has no base-URL option (its `urlBase` is private): route its requests to the fake instead. */
class FakeBaseApiClient extends AppStoreServerAPIClient {
  private readonly baseUrl: string;
  constructor(baseUrl: string, key: { privateKeyPem: string; keyId: string; issuerId: string }, bundleId: string, env: Environment) {
    super(key.privateKeyPem, key.keyId, key.issuerId, bundleId, env);
    this.baseUrl = baseUrl;
  }
  protected override async makeFetchRequest(
    path: string,
    parsedQueryParameters: URLSearchParams,
    method: string,
    requestBody: string | Buffer | undefined,
    headers: { [key: string]: string },
  ): Promise<FetchResponse> {
    const res = await fetch(`${this.baseUrl}${path}?${parsedQueryParameters.toString()}`, { method, body: requestBody, headers });
    // The library only uses ok/status/json(), which the global fetch Response has too.
    return res as unknown as FetchResponse;
  }
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

async function verificationStatus(p: Promise<unknown>): Promise<VerificationStatus> {
  const err = await rejection(p);
  expect(err).toBeInstanceOf(VerificationException);
  return (err as VerificationException).status;
}

async function postJson(url: string, body: unknown, signal?: AbortSignal): Promise<{ status: number; json: Record<string, unknown> | null; text: string }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });
  const text = await res.text();
  let json: Record<string, unknown> | null = null;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = null;
  }
  return { status: res.status, json, text };
}

function ids(entries: unknown): string[] {
  return (entries as Array<{ transaction_id: string }>).map((e) => e.transaction_id);
}

function sandboxVerifier(root: Buffer): SignedDataVerifier {
  return new SignedDataVerifier([root], false, Environment.SANDBOX, BUNDLE);
}

describe('apple-certs: generated chains against the real SignedDataVerifier', () => {
  const payload = (signedDate: number): Record<string, unknown> => ({
    transactionId: '2000000000000001',
    originalTransactionId: '2000000000000001',
    bundleId: BUNDLE,
    productId: 'premium',
    purchaseDate: signedDate,
    type: 'Non-Consumable',
    environment: 'Sandbox',
    signedDate,
  });

  it('builds root -> intermediate -> leaf with consistent names, CA flags, Apple OIDs and default dates', () => {
    const chain = generateAppleChain();
    const root = new X509Certificate(chain.rootDer);
    const intermediate = new X509Certificate(chain.intermediateDer);
    const leaf = new X509Certificate(chain.leafDer);
    expect(root.issuer).toBe(root.subject);
    expect(root.verify(root.publicKey)).toBe(true);
    expect(intermediate.issuer).toBe(root.subject);
    expect(intermediate.verify(root.publicKey)).toBe(true);
    expect(leaf.issuer).toBe(intermediate.subject);
    expect(leaf.verify(intermediate.publicKey)).toBe(true);
    expect([root.ca, intermediate.ca, leaf.ca]).toEqual([true, true, false]);
    expect(new Date(root.validFrom).toISOString()).toBe('2015-01-01T00:00:00.000Z');
    expect(new Date(leaf.validTo).toISOString()).toBe('2045-01-01T00:00:00.000Z');
    expect(leaf.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const ext = (der: Buffer, oid: string): unknown => {
      const x = new jsrsasign.X509();
      x.readCertHex(der.toString('hex'));
      return x.getExtInfo(oid);
    };
    expect(ext(chain.intermediateDer, APPLE_WWDR_OID)).toBeDefined();
    expect(ext(chain.leafDer, APPLE_LEAF_OID)).toBeDefined();
    expect(ext(chain.leafDer, APPLE_WWDR_OID)).toBeUndefined();
    expect(chain.x5c).toEqual([chain.leafDer, chain.intermediateDer, chain.rootDer].map((b) => b.toString('base64')));
  });

  it('signAppleJws makes an ES256 compact JWS with the x5c header and a 64-byte r||s signature', () => {
    const chain = generateAppleChain();
    const jws = signAppleJws({ hello: 'world' }, chain);
    const [header, body, signature] = jws.split('.') as [string, string, string];
    expect(JSON.parse(Buffer.from(header, 'base64url').toString())).toEqual({ alg: 'ES256', x5c: chain.x5c });
    expect(JSON.parse(Buffer.from(body, 'base64url').toString())).toEqual({ hello: 'world' });
    expect(Buffer.from(signature, 'base64url')).toHaveLength(64);
    expect(decodeJwsPayload(jws)).toEqual({ hello: 'world' });
  });

  it('the verifier accepts a transaction signed with the chain it trusts', async () => {
    const chain = generateAppleChain();
    const p = payload(START.getTime());
    const decoded = await sandboxVerifier(chain.rootDer).verifyAndDecodeTransaction(signAppleJws(p, chain));
    expect(decoded).toEqual(p);
  });

  it('the verifier rejects a different root, an expired leaf, a missing OID, and a tampered payload', async () => {
    const chain = generateAppleChain();
    const signedDate = START.getTime();
    const jws = signAppleJws(payload(signedDate), chain);

    const otherRoot = generateAppleChain().rootDer;
    expect(await verificationStatus(sandboxVerifier(otherRoot).verifyAndDecodeTransaction(jws))).toBe(VerificationStatus.VERIFICATION_FAILURE);

    const expired = generateAppleChain({ leafNotAfter: new Date(signedDate - DAY) });
    expect(await verificationStatus(sandboxVerifier(expired.rootDer).verifyAndDecodeTransaction(signAppleJws(payload(signedDate), expired)))).toBe(
      VerificationStatus.INVALID_CERTIFICATE,
    );
    // the same expired chain is fine for data signed while the leaf was valid (dates are checked at signedDate)
    const early = payload(signedDate - 2 * DAY);
    expect(await sandboxVerifier(expired.rootDer).verifyAndDecodeTransaction(signAppleJws(early, expired))).toEqual(early);

    for (const options of [{ omitLeafOid: true }, { omitIntermediateOid: true }]) {
      const c = generateAppleChain(options);
      expect(await verificationStatus(sandboxVerifier(c.rootDer).verifyAndDecodeTransaction(signAppleJws(payload(signedDate), c)))).toBe(
        VerificationStatus.VERIFICATION_FAILURE,
      );
    }

    const [h, , s] = jws.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...payload(signedDate), productId: 'lifetime' })).toString('base64url')}.${s}`;
    expect(await verificationStatus(sandboxVerifier(chain.rootDer).verifyAndDecodeTransaction(forged))).toBe(VerificationStatus.VERIFICATION_FAILURE);
  });
});

describe('FakeAppStore with the real @apple/app-store-server-library', () => {
  let fake: FakeAppStore;
  let now: Date;
  let sandbox: SignedDataVerifier;
  let production: SignedDataVerifier;
  let receiver: Server;
  let receiverUrl: string;
  let received: Array<{ path: string; body: string }>;
  let receiverStatus: number;
  let accountSeq = 0;

  /** A fresh Apple ID per test keeps receipts and history independent. */
  const account = (): string => `apple-id-${++accountSeq}`;
  const advance = (ms: number): void => {
    now = new Date(now.getTime() + ms);
  };
  const client = (env: AppleEnvironment, key = fake.apiKey, bundleId = BUNDLE): FakeBaseApiClient =>
    new FakeBaseApiClient(fake.apiUrl(env), key, bundleId, env === 'Production' ? Environment.PRODUCTION : Environment.SANDBOX);
  const decodeTx = (jws: string, env: AppleEnvironment = 'Sandbox'): Promise<JWSTransactionDecodedPayload> =>
    (env === 'Production' ? production : sandbox).verifyAndDecodeTransaction(jws);
  const renewalOf = (originalTransactionId: string): Promise<JWSRenewalInfoDecodedPayload> =>
    sandbox.verifyAndDecodeRenewalInfo(fake.signedRenewalInfo(originalTransactionId));
  const statusOf = (originalTransactionId: string): number | undefined => fake.lineage(originalTransactionId)?.status;
  /** A bearer token made like Apple documents it, for raw requests (the library client makes its own). */
  const bearer = async (ttl = '5m'): Promise<string> =>
    new SignJWT({ bid: BUNDLE })
      .setProtectedHeader({ alg: 'ES256', kid: fake.apiKey.keyId, typ: 'JWT' })
      .setIssuer(fake.apiKey.issuerId)
      .setAudience('appstoreconnect-v1')
      .setIssuedAt()
      .setExpirationTime(ttl)
      .sign(await importPKCS8(fake.apiKey.privateKeyPem, 'ES256'));
  const sub = (extra: Partial<Parameters<FakeAppStore['buy']>[0]> = {}): FakeTransaction =>
    fake.buy({ productId: 'premium_monthly', type: 'Auto-Renewable Subscription', account: account(), ...extra });

  beforeAll(async () => {
    now = START;
    fake = await FakeAppStore.start({ bundleId: BUNDLE, appAppleId: APP_APPLE_ID, sharedSecret: SECRET, clock: () => now });
    sandbox = new SignedDataVerifier([fake.rootCertificateDer], false, Environment.SANDBOX, BUNDLE);
    production = new SignedDataVerifier([fake.rootCertificateDer], false, Environment.PRODUCTION, BUNDLE, APP_APPLE_ID);
    received = [];
    receiverStatus = 200;
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ path: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(receiverStatus, { 'content-type': 'text/plain' }).end(receiverStatus === 200 ? 'ok' : 'nope');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/apple/notifications`;
    fake.notificationUrl = receiverUrl;
  });
  afterAll(async () => {
    await fake.close();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  });
  beforeEach(() => {
    now = START;
    receiverStatus = 200;
  });

  describe('signed transactions and renewal info', () => {
    it('a Sandbox subscription purchase verifies and carries Apple\'s fields', async () => {
      const token = '7e3fb20b-4cdb-47cc-936d-99d65f608138';
      const tx = sub({ appAccountToken: token, offerType: 1, price: 0, currency: 'EUR', periodMs: 7 * DAY });
      expect(tx.transactionId).toMatch(/^\d{16}$/);
      expect(tx.orderId).toMatch(/^MK[A-Z0-9]{8}$/);
      advance(1000);
      const decoded = await decodeTx(fake.signedTransaction(tx.transactionId));
      expect(decoded).toEqual({
        transactionId: tx.transactionId,
        originalTransactionId: tx.transactionId,
        webOrderLineItemId: tx.webOrderLineItemId,
        bundleId: BUNDLE,
        productId: 'premium_monthly',
        subscriptionGroupIdentifier: tx.subscriptionGroupIdentifier,
        purchaseDate: START.getTime(),
        originalPurchaseDate: START.getTime(),
        expiresDate: START.getTime() + 7 * DAY,
        quantity: 1,
        type: 'Auto-Renewable Subscription',
        appAccountToken: token,
        inAppOwnershipType: 'PURCHASED',
        offerType: 1,
        environment: 'Sandbox',
        transactionReason: 'PURCHASE',
        storefront: 'USA',
        storefrontId: '143441',
        price: 0,
        currency: 'EUR',
        signedDate: START.getTime() + 1000,
      });
      expect(tx.webOrderLineItemId).toMatch(/^\d+$/);
      expect(decoded).not.toHaveProperty('orderId');
      expect(decoded).not.toHaveProperty('account');

      const renewal = await renewalOf(tx.transactionId);
      expect(renewal).toMatchObject({
        originalTransactionId: tx.transactionId,
        autoRenewProductId: 'premium_monthly',
        productId: 'premium_monthly',
        autoRenewStatus: 1,
        isInBillingRetryPeriod: false,
        environment: 'Sandbox',
        recentSubscriptionStartDate: START.getTime(),
        renewalDate: START.getTime() + 7 * DAY,
        appAccountToken: token,
        signedDate: START.getTime() + 1000,
      });
      expect(renewal).not.toHaveProperty('expirationIntent');
      expect(statusOf(tx.transactionId)).toBe(1);
    });

    it('one-time products have no expiry, web order line item or subscription group, and cannot be renewed', async () => {
      const nc = fake.buy({ productId: 'lifetime', type: 'Non-Consumable', account: account() });
      const coins = fake.buy({ productId: 'coins_100', type: 'Consumable', account: nc.account, quantity: 3 });
      const nr = fake.buy({ productId: 'season_pass', type: 'Non-Renewing Subscription', account: nc.account });
      for (const tx of [nc, coins, nr]) {
        const decoded = await decodeTx(fake.signedTransaction(tx.transactionId));
        expect(decoded.type).toBe(tx.type);
        expect(decoded).not.toHaveProperty('expiresDate');
        expect(decoded).not.toHaveProperty('webOrderLineItemId');
        expect(decoded).not.toHaveProperty('subscriptionGroupIdentifier');
        expect(fake.lineage(tx.transactionId)?.status).toBeUndefined();
      }
      expect((await decodeTx(fake.signedTransaction(coins.transactionId))).quantity).toBe(3);
      expect(() => fake.renew(nc.transactionId)).toThrow(/not an auto-renewable/);
      expect(() => fake.signedRenewalInfo(nr.transactionId)).toThrow(/not an auto-renewable/);
      expect(new Set([nc, coins, nr].map((t) => t.transactionId)).size).toBe(3);
      expect(new Set([nc, coins, nr].map((t) => t.orderId)).size).toBe(3);
    });

    it('Production data verifies with the Production verifier (appAppleId) and not with the Sandbox one', async () => {
      const tx = sub({ environment: 'Production' });
      const jws = fake.signedTransaction(tx.transactionId);
      expect((await decodeTx(jws, 'Production')).environment).toBe('Production');
      expect(await verificationStatus(sandbox.verifyAndDecodeTransaction(jws))).toBe(VerificationStatus.INVALID_ENVIRONMENT);

      const notification = await production.verifyAndDecodeNotification(fake.signedNotification({ notificationType: 'SUBSCRIBED', subtype: 'INITIAL_BUY', transactionId: tx.transactionId }));
      expect(notification.data?.appAppleId).toBe(APP_APPLE_ID);
      const otherApp = new SignedDataVerifier([fake.rootCertificateDer], false, Environment.PRODUCTION, BUNDLE, APP_APPLE_ID + 1);
      const signed = fake.signedNotification({ notificationType: 'SUBSCRIBED', transactionId: tx.transactionId });
      expect(await verificationStatus(otherApp.verifyAndDecodeNotification(signed))).toBe(VerificationStatus.INVALID_APP_IDENTIFIER);
      const otherBundle = new SignedDataVerifier([fake.rootCertificateDer], false, Environment.PRODUCTION, 'com.other.app', APP_APPLE_ID);
      expect(await verificationStatus(otherBundle.verifyAndDecodeTransaction(jws))).toBe(VerificationStatus.INVALID_APP_IDENTIFIER);
    });

    it('renew and extend: each renewal is a new transaction starting at the previous expiry', async () => {
      const first = sub({ offerType: 1, price: 0 });
      const otid = first.transactionId;
      const second = fake.renew(otid);
      expect(second.transactionId).not.toBe(otid);
      expect(second).toMatchObject({ originalTransactionId: otid, purchaseDate: first.expiresDate, expiresDate: first.expiresDate! + 30 * DAY, transactionReason: 'RENEWAL', price: 9990 });
      expect(second.webOrderLineItemId).not.toBe(first.webOrderLineItemId);
      expect(second.orderId).not.toBe(first.orderId);
      expect(second).not.toHaveProperty('offerType'); // the intro offer was the first period only
      expect(fake.lineage(otid)?.transactions.map((t) => t.transactionId)).toEqual([otid, second.transactionId]);

      const extended = fake.extend(otid, 10);
      expect(extended.transactionId).toBe(second.transactionId);
      expect((await decodeTx(fake.signedTransaction(second.transactionId))).expiresDate).toBe(second.expiresDate! + 10 * DAY);
      expect((await renewalOf(otid)).renewalDate).toBe(second.expiresDate! + 10 * DAY);
    });

    it('billing retry, grace period and recovery', async () => {
      const first = sub();
      const otid = first.transactionId;
      now = new Date(first.expiresDate!);
      fake.failToRenew(otid, { graceMs: 16 * DAY });
      expect(statusOf(otid)).toBe(4);
      expect(await renewalOf(otid)).toMatchObject({ isInBillingRetryPeriod: true, gracePeriodExpiresDate: first.expiresDate! + 16 * DAY, expirationIntent: 2 });

      advance(17 * DAY); // grace over, still retrying
      expect(statusOf(otid)).toBe(3);

      const recovered = fake.recover(otid);
      expect(recovered.purchaseDate).toBe(now.getTime()); // after the grace period the renewal date moves to now
      expect(statusOf(otid)).toBe(1);
      const renewal = await renewalOf(otid);
      expect(renewal.isInBillingRetryPeriod).toBe(false);
      expect(renewal).not.toHaveProperty('gracePeriodExpiresDate');
      expect(renewal).not.toHaveProperty('expirationIntent');

      const other = sub();
      now = new Date(other.expiresDate!);
      fake.failToRenew(other.transactionId);
      expect(statusOf(other.transactionId)).toBe(3);
      expect(await renewalOf(other.transactionId)).not.toHaveProperty('gracePeriodExpiresDate');
      advance(DAY);
      fake.failToRenew(other.transactionId, { graceMs: 6 * DAY });
      expect(fake.recover(other.transactionId).purchaseDate).toBe(other.expiresDate); // in grace: date kept
    });

    it('auto-renew off, expiry with an intent, and time-based expiry', async () => {
      const tx = sub();
      const otid = tx.transactionId;
      fake.setAutoRenew(otid, false);
      expect((await renewalOf(otid)).autoRenewStatus).toBe(0);
      fake.setAutoRenew(otid, true);
      expect((await renewalOf(otid)).autoRenewStatus).toBe(1);

      fake.expire(otid, 1);
      expect(statusOf(otid)).toBe(2);
      expect(await renewalOf(otid)).toMatchObject({ autoRenewStatus: 0, expirationIntent: 1, isInBillingRetryPeriod: false });

      const lapsed = sub();
      expect(statusOf(lapsed.transactionId)).toBe(1);
      now = new Date(lapsed.expiresDate!);
      expect(statusOf(lapsed.transactionId)).toBe(2);
    });

    it('refund and refund reversal', async () => {
      const first = sub();
      const otid = first.transactionId;
      const second = fake.renew(otid);
      advance(DAY);
      fake.refund(first.transactionId, 1); // an old period: the subscription stays active
      expect(statusOf(otid)).toBe(1);
      expect(await decodeTx(fake.signedTransaction(first.transactionId))).toMatchObject({ revocationDate: now.getTime(), revocationReason: 1 });

      fake.refund(second.transactionId);
      expect(statusOf(otid)).toBe(5);
      expect((await decodeTx(fake.signedTransaction(second.transactionId))).revocationReason).toBe(0);

      fake.reverseRefund(second.transactionId);
      expect(statusOf(otid)).toBe(1);
      const restored = await decodeTx(fake.signedTransaction(second.transactionId));
      expect(restored).not.toHaveProperty('revocationDate');
      expect(restored).not.toHaveProperty('revocationReason');
    });

    it('family sharing revocation revokes only FAMILY_SHARED transactions', async () => {
      const shared = sub({ ownership: 'FAMILY_SHARED' });
      fake.renew(shared.transactionId);
      advance(DAY);
      const revoked = fake.familyRevoke(shared.transactionId);
      expect(revoked).toHaveLength(2);
      expect(revoked.every((t) => t.revocationDate === now.getTime() && t.inAppOwnershipType === 'FAMILY_SHARED')).toBe(true);
      expect(statusOf(shared.transactionId)).toBe(5);
      expect((await decodeTx(fake.signedTransaction(shared.transactionId))).inAppOwnershipType).toBe('FAMILY_SHARED');

      const own = sub();
      expect(() => fake.familyRevoke(own.transactionId)).toThrow(/no FAMILY_SHARED/);
      expect(statusOf(own.transactionId)).toBe(1);
    });

    it('upgrade: the current transaction is marked upgraded and revoked, a new one starts now', async () => {
      const first = sub();
      const otid = first.transactionId;
      advance(3 * DAY);
      const upgraded = fake.upgrade(otid, 'premium_yearly');
      expect(upgraded).toMatchObject({ originalTransactionId: otid, productId: 'premium_yearly', purchaseDate: now.getTime(), transactionReason: 'PURCHASE' });
      expect(await decodeTx(fake.signedTransaction(first.transactionId))).toMatchObject({ isUpgraded: true, revocationDate: now.getTime() });
      expect(statusOf(otid)).toBe(1);
      expect(await renewalOf(otid)).toMatchObject({ productId: 'premium_yearly', autoRenewProductId: 'premium_yearly' });
    });
  });

  describe('verifyReceipt', () => {
    it('status 0: Apple\'s string-typed body, entries in shuffled order, pending renewal info, a fresh latest_receipt', async () => {
      const who = account();
      const s1 = fake.buy({ productId: 'premium_monthly', type: 'Auto-Renewable Subscription', account: who, purchaseDate: new Date(START.getTime() - 90 * DAY) });
      const s2 = fake.renew(s1.transactionId);
      const s3 = fake.renew(s1.transactionId);
      const nc = fake.buy({ productId: 'lifetime', type: 'Non-Consumable', account: who, purchaseDate: new Date(START.getTime() - 10 * DAY) });
      fake.refund(nc.transactionId, 1);
      fake.buy({ productId: 'premium_monthly', type: 'Auto-Renewable Subscription', account: account() }); // someone else
      const receipt = fake.appReceipt({ account: who, order: 'shuffled' });

      const { status, json } = await postJson(fake.sandboxVerifyReceiptUrl, { 'receipt-data': receipt, password: SECRET });
      expect(status).toBe(200);
      expect(json).toMatchObject({ status: 0, environment: 'Sandbox' });
      const body = json as { receipt: Record<string, unknown>; latest_receipt_info: Array<Record<string, string>>; pending_renewal_info: Array<Record<string, string>>; latest_receipt: string };
      expect(body.receipt).toMatchObject({ receipt_type: 'ProductionSandbox', bundle_id: BUNDLE, application_version: '1', request_date_ms: String(START.getTime()) });
      const all = [s1, s2, s3, nc].map((t) => t.transactionId);
      const inApp = ids(body.receipt['in_app']);
      expect([...inApp].sort()).toEqual([...all].sort());
      expect(inApp).not.toEqual(all); // not in purchase order...
      expect(inApp).not.toEqual([...all].reverse()); // ...nor reversed
      expect([...ids(body.latest_receipt_info)].sort()).toEqual([...all].sort());

      const entry = body.latest_receipt_info.find((e) => e['transaction_id'] === s2.transactionId)!;
      expect(entry).toMatchObject({
        original_transaction_id: s1.transactionId,
        product_id: 'premium_monthly',
        quantity: '1',
        purchase_date_ms: String(s2.purchaseDate),
        original_purchase_date_ms: String(s1.purchaseDate),
        expires_date_ms: String(s2.expiresDate),
        web_order_line_item_id: s2.webOrderLineItemId,
        is_trial_period: 'false',
        is_in_intro_offer_period: 'false',
        in_app_ownership_type: 'PURCHASED',
        subscription_group_identifier: s2.subscriptionGroupIdentifier,
      });
      expect(Object.values(entry).every((v) => typeof v === 'string')).toBe(true);
      const refunded = body.latest_receipt_info.find((e) => e['transaction_id'] === nc.transactionId)!;
      expect(refunded).toMatchObject({ cancellation_date_ms: String(START.getTime()), cancellation_reason: '1' });
      expect(refunded).not.toHaveProperty('expires_date_ms');
      expect(body.pending_renewal_info).toEqual([
        { auto_renew_product_id: 'premium_monthly', product_id: 'premium_monthly', original_transaction_id: s1.transactionId, auto_renew_status: '1', is_in_billing_retry_period: '0' },
      ]);

      expect(body.latest_receipt).not.toBe(receipt);
      const again = await postJson(fake.sandboxVerifyReceiptUrl, { 'receipt-data': body.latest_receipt, password: SECRET });
      expect(again.json?.['status']).toBe(0);
      expect(fake.calls.some((c) => c.path === '/sandbox/verifyReceipt' && (c.body as Record<string, unknown>)['receipt-data'] === receipt)).toBe(true);
    });

    it('in_app is what the receipt held; latest_receipt_info is current; exclude-old-transactions keeps the latest period', async () => {
      const who = account();
      const s1 = fake.buy({ productId: 'premium_monthly', type: 'Auto-Renewable Subscription', account: who });
      const receipt = fake.appReceipt({ account: who, order: 'desc' });
      const s2 = fake.renew(s1.transactionId);
      fake.failToRenew(s1.transactionId, { graceMs: 3 * DAY });
      const res = await postJson(fake.sandboxVerifyReceiptUrl, { 'receipt-data': receipt, password: SECRET });
      expect(ids((res.json?.['receipt'] as Record<string, unknown>)['in_app'])).toEqual([s1.transactionId]);
      expect(ids(res.json?.['latest_receipt_info'])).toEqual([s2.transactionId, s1.transactionId]); // desc
      expect((res.json?.['pending_renewal_info'] as Array<Record<string, string>>)[0]).toMatchObject({
        is_in_billing_retry_period: '1',
        expiration_intent: '2',
        grace_period_expires_date_ms: String(s2.expiresDate! + 3 * DAY),
      });

      const latestOnly = await postJson(fake.sandboxVerifyReceiptUrl, { 'receipt-data': receipt, password: SECRET, 'exclude-old-transactions': true });
      expect(ids(latestOnly.json?.['latest_receipt_info'])).toEqual([s2.transactionId]);

      const noSubs = account();
      fake.buy({ productId: 'lifetime', type: 'Non-Consumable', account: noSubs });
      const plain = await postJson(fake.sandboxVerifyReceiptUrl, { 'receipt-data': fake.appReceipt({ account: noSubs }), password: SECRET });
      expect(plain.json?.['status']).toBe(0);
      expect(plain.json).not.toHaveProperty('latest_receipt_info'); // only receipts with auto-renewables get it
    });

    it('21007 for a sandbox receipt in production, 21008 for a production receipt in sandbox, 21004 for a wrong secret', async () => {
      const sandboxReceipt = fake.appReceipt({ account: account(), environment: 'Sandbox' });
      const productionReceipt = fake.appReceipt({ account: account(), environment: 'Production' });
      expect((await postJson(fake.verifyReceiptUrl, { 'receipt-data': sandboxReceipt, password: SECRET })).json).toEqual({ status: 21007 });
      expect((await postJson(fake.sandboxVerifyReceiptUrl, { 'receipt-data': productionReceipt, password: SECRET })).json).toEqual({ status: 21008 });
      expect((await postJson(fake.verifyReceiptUrl, { 'receipt-data': productionReceipt, password: SECRET })).json).toMatchObject({ status: 0, environment: 'Production' });
      expect((await postJson(fake.verifyReceiptUrl, { 'receipt-data': productionReceipt, password: 'wrong' })).json).toEqual({ status: 21004 });
      expect((await postJson(fake.verifyReceiptUrl, { 'receipt-data': productionReceipt })).json).toEqual({ status: 21004 });
    });

    it('21002 for data that is not base64, 21003 for base64 the store never issued', async () => {
      expect((await postJson(fake.verifyReceiptUrl, { 'receipt-data': 'not base64 at all!', password: SECRET })).json).toMatchObject({ status: 21002 });
      expect((await postJson(fake.verifyReceiptUrl, { password: SECRET })).json).toMatchObject({ status: 21002 });
      const forged = Buffer.from('FAKE-APPLE-RECEIPT:forged-receipt-bytes').toString('base64');
      expect((await postJson(fake.verifyReceiptUrl, { 'receipt-data': forged, password: SECRET })).json).toEqual({ status: 21003 });
      // base64 with line breaks (as some clients send it) is still recognised
      const wrapped = fake.appReceipt({ account: account(), environment: 'Production' }).replace(/(.{16})/g, '$1\r\n');
      expect((await postJson(fake.verifyReceiptUrl, { 'receipt-data': wrapped, password: SECRET })).json?.['status']).toBe(0);
    });

    it('failVerifyReceipt: Apple status codes, HTTP errors and hangs, then back to normal', async () => {
      const receipt = fake.appReceipt({ account: account(), environment: 'Production' });
      const req = { 'receipt-data': receipt, password: SECRET };
      fake.failVerifyReceipt({ status: 21005 }, 2);
      expect((await postJson(fake.verifyReceiptUrl, req)).json).toEqual({ status: 21005, 'is-retryable': true });
      expect((await postJson(fake.verifyReceiptUrl, req)).json).toEqual({ status: 21005, 'is-retryable': true });
      fake.failVerifyReceipt({ status: 21010 });
      expect((await postJson(fake.verifyReceiptUrl, req)).json).toEqual({ status: 21010 });
      fake.failVerifyReceipt({ httpStatus: 503 });
      const http = await postJson(fake.verifyReceiptUrl, req);
      expect(http.status).toBe(503);
      expect(http.json).toBeNull();
      fake.failVerifyReceipt({ hangMs: 5_000 });
      const hung = await rejection(postJson(fake.verifyReceiptUrl, req, AbortSignal.timeout(200)));
      expect(hung.name).toBe('TimeoutError');
      expect((await postJson(fake.verifyReceiptUrl, req)).json?.['status']).toBe(0);
    });
  });

  describe('App Store Server API', () => {
    it('getAllSubscriptionStatuses / getTransactionInfo / getTransactionHistory / lookUpOrderId through the library client', async () => {
      const who = account();
      const monthly = fake.buy({ productId: 'premium_monthly', type: 'Auto-Renewable Subscription', account: who });
      const renewal = fake.renew(monthly.transactionId);
      const other = fake.buy({ productId: 'pro_monthly', type: 'Auto-Renewable Subscription', account: who, subscriptionGroupIdentifier: '21000002' });
      fake.failToRenew(other.transactionId);
      const coins = fake.buy({ productId: 'coins_100', type: 'Consumable', account: who });
      const api = client('Sandbox');

      const statuses = await api.getAllSubscriptionStatuses(renewal.transactionId);
      expect(statuses).toMatchObject({ environment: 'Sandbox', bundleId: BUNDLE, appAppleId: APP_APPLE_ID });
      const items = (statuses.data ?? []).flatMap((g) => (g.lastTransactions ?? []).map((t) => ({ group: g.subscriptionGroupIdentifier, ...t })));
      expect(items.map((i) => [i.group, i.originalTransactionId, i.status]).sort()).toEqual(
        [
          ['21000001', monthly.transactionId, 1],
          ['21000002', other.transactionId, 3],
        ].sort(),
      );
      const mine = items.find((i) => i.originalTransactionId === monthly.transactionId)!;
      expect((await decodeTx(mine.signedTransactionInfo!)).transactionId).toBe(renewal.transactionId);
      expect((await sandbox.verifyAndDecodeRenewalInfo(mine.signedRenewalInfo!)).originalTransactionId).toBe(monthly.transactionId);
      const onlyRetry = await api.getAllSubscriptionStatuses(monthly.transactionId, [3]);
      expect(onlyRetry.data?.flatMap((g) => g.lastTransactions?.map((t) => t.originalTransactionId))).toEqual([other.transactionId]);

      const info = await api.getTransactionInfo(coins.transactionId);
      expect((await decodeTx(info.signedTransactionInfo!)).productId).toBe('coins_100');

      const history = await api.getTransactionHistory(coins.transactionId, null, {}, GetTransactionHistoryVersion.V2);
      expect(history).toMatchObject({ bundleId: BUNDLE, environment: 'Sandbox', hasMore: false });
      const historyIds = await Promise.all((history.signedTransactions ?? []).map(async (j) => (await decodeTx(j)).transactionId));
      expect(historyIds.sort()).toEqual([monthly, renewal, other, coins].map((t) => t.transactionId).sort());

      const order = await api.lookUpOrderId(renewal.orderId);
      expect(order.status).toBe(0);
      expect(await Promise.all((order.signedTransactions ?? []).map(async (j) => (await decodeTx(j)).transactionId))).toEqual([renewal.transactionId]);
      const unknownOrder = await api.lookUpOrderId('MK00000000');
      expect(unknownOrder).toEqual({ status: 1, signedTransactions: [] });

      const call = fake.calls.find((c) => c.path === `/api/sandbox/inApps/v2/history/${coins.transactionId}`);
      expect(call?.method).toBe('GET');
    });

    it('each base URL sees only its environment; unknown and malformed ids get Apple\'s error codes', async () => {
      const tx = sub({ environment: 'Production' });
      expect((await decodeTx((await client('Production').getTransactionInfo(tx.transactionId)).signedTransactionInfo!, 'Production')).transactionId).toBe(tx.transactionId);
      const wrongEnv = await rejection(client('Sandbox').getTransactionInfo(tx.transactionId));
      expect(wrongEnv).toBeInstanceOf(APIException);
      expect(wrongEnv).toMatchObject({ httpStatusCode: 404, apiError: 4040010, errorMessage: 'Transaction id not found.' });
      expect(await rejection(client('Production').getAllSubscriptionStatuses('9999999999999999'))).toMatchObject({ httpStatusCode: 404, apiError: 4040010 });
      expect(await rejection(client('Production').getTransactionInfo('abc'))).toMatchObject({ httpStatusCode: 400, apiError: 4000006 });
    });

    it('history pages 20 at a time with the revision cursor', async () => {
      const who = account();
      const bought: string[] = [];
      for (let i = 0; i < 45; i++) {
        bought.push(fake.buy({ productId: `coins_${i}`, type: 'Consumable', account: who, purchaseDate: new Date(START.getTime() + i * 1000) }).transactionId);
      }
      fake.buy({ productId: 'coins_x', type: 'Consumable', account: account() });
      const api = client('Sandbox');
      const pages: Array<{ count: number; hasMore: boolean | undefined }> = [];
      const seen: string[] = [];
      let revision: string | null = null;
      do {
        const page = await api.getTransactionHistory(bought[7]!, revision, {}, GetTransactionHistoryVersion.V1);
        pages.push({ count: page.signedTransactions?.length ?? 0, hasMore: page.hasMore });
        for (const j of page.signedTransactions ?? []) seen.push((await decodeTx(j)).transactionId!);
        revision = page.hasMore === true ? page.revision! : null;
      } while (revision !== null);
      expect(pages).toEqual([
        { count: 20, hasMore: true },
        { count: 20, hasMore: true },
        { count: 5, hasMore: false },
      ]);
      expect(seen).toEqual(bought); // ascending by purchase date, each once

      const desc = await api.getTransactionHistory(bought[0]!, null, { sort: Order.DESCENDING }, GetTransactionHistoryVersion.V2);
      expect((await decodeTx(desc.signedTransactions![0]!)).transactionId).toBe(bought[44]);
      expect(await rejection(api.getTransactionHistory(bought[0]!, 'bogus', {}, GetTransactionHistoryVersion.V2))).toMatchObject({ httpStatusCode: 400, apiError: 4000005 });
    });

    it('requests need a bearer JWT from the in-app purchase key: 401 without, with another key, another bundle or a long-lived token', async () => {
      const tx = sub();
      const url = `${fake.apiUrl('Sandbox')}/inApps/v1/transactions/${tx.transactionId}`;
      const bare = await fetch(url);
      expect(bare.status).toBe(401);
      expect(await bare.text()).toBe('');

      const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      const forged = await rejection(client('Sandbox', { ...fake.apiKey, privateKeyPem: otherKey }).getTransactionInfo(tx.transactionId));
      expect(forged).toBeInstanceOf(APIException);
      expect(forged).toMatchObject({ httpStatusCode: 401, apiError: null });
      expect(await rejection(client('Sandbox', fake.apiKey, 'com.other.app').getTransactionInfo(tx.transactionId))).toMatchObject({ httpStatusCode: 401 });
      expect(await rejection(client('Sandbox', { ...fake.apiKey, keyId: 'WRONGKEYID' }).getTransactionInfo(tx.transactionId))).toMatchObject({ httpStatusCode: 401 });

      expect((await fetch(url, { headers: { authorization: `Bearer ${await bearer('2h')}` } })).status).toBe(401); // Apple's limit is 1h
      const ok = await fetch(url, { headers: { authorization: `Bearer ${await bearer('20m')}` } });
      expect(ok.status).toBe(200);
      expect(Object.keys((await ok.json()) as object)).toEqual(['signedTransactionInfo']);
    });

    it('failApi: 500, 429 and 503 with Apple\'s error codes, then a hang, then normal answers', async () => {
      const tx = sub();
      const api = client('Sandbox');
      fake.failApi({ httpStatus: 500 });
      expect(await rejection(api.getTransactionInfo(tx.transactionId))).toMatchObject({ httpStatusCode: 500, apiError: 5000000, errorMessage: 'An unknown error occurred.' });
      fake.failApi({ httpStatus: 429 }, 2);
      expect(await rejection(api.getAllSubscriptionStatuses(tx.transactionId))).toMatchObject({ httpStatusCode: 429, apiError: 4290000 });
      expect(await rejection(api.lookUpOrderId(tx.orderId))).toMatchObject({ httpStatusCode: 429, apiError: 4290000 });
      fake.failApi({ httpStatus: 503, errorCode: 4040011 });
      expect(await rejection(api.getTransactionInfo(tx.transactionId))).toMatchObject({ httpStatusCode: 503, apiError: 4040011 });

      fake.failApi({ hangMs: 5_000 });
      const started = Date.now();
      const headers = { authorization: `Bearer ${await bearer()}` };
      const hung = await rejection(fetch(`${fake.apiUrl('Sandbox')}/inApps/v1/transactions/${tx.transactionId}`, { headers, signal: AbortSignal.timeout(200) }));
      expect(hung.name).toBe('TimeoutError');
      expect(Date.now() - started).toBeLessThan(4_000);
      expect((await api.getTransactionInfo(tx.transactionId)).signedTransactionInfo).toBeTypeOf('string');
    });
  });

  describe('Server Notifications V2', () => {
    it('notify signs the payload and POSTs {signedPayload} to the receiver', async () => {
      const tx = sub();
      const renewed = fake.renew(tx.transactionId);
      const before = received.length;
      const result = await fake.notify({ notificationType: 'DID_RENEW', originalTransactionId: tx.transactionId });
      expect(result.status).toBe(200);
      expect(result.body).toBe('ok');
      expect(received).toHaveLength(before + 1);
      const delivered = received.at(-1)!;
      expect(delivered.path).toBe('/apple/notifications');
      expect(JSON.parse(delivered.body)).toEqual({ signedPayload: result.signedPayload });

      const n = await sandbox.verifyAndDecodeNotification(result.signedPayload);
      expect(n).toMatchObject({ notificationType: 'DID_RENEW', notificationUUID: result.notificationUUID, version: '2.0', signedDate: START.getTime() });
      expect(n).not.toHaveProperty('subtype');
      expect(n.data).toMatchObject({ appAppleId: APP_APPLE_ID, bundleId: BUNDLE, bundleVersion: '1', environment: 'Sandbox', status: 1 });
      expect((await decodeTx(n.data!.signedTransactionInfo!)).transactionId).toBe(renewed.transactionId); // latest of the lineage
      expect((await sandbox.verifyAndDecodeRenewalInfo(n.data!.signedRenewalInfo!)).originalTransactionId).toBe(tx.transactionId);
    });

    it('subtype, a specific transaction, TEST without data, non-subscription payloads, and the receiver\'s status', async () => {
      const tx = sub();
      now = new Date(tx.expiresDate!);
      fake.failToRenew(tx.transactionId, { graceMs: 6 * DAY });
      const fail = await sandbox.verifyAndDecodeNotification(
        fake.signedNotification({ notificationType: 'DID_FAIL_TO_RENEW', subtype: 'GRACE_PERIOD', transactionId: tx.transactionId }),
      );
      expect(fail).toMatchObject({ notificationType: 'DID_FAIL_TO_RENEW', subtype: 'GRACE_PERIOD', data: { status: 4 } });

      const test = await sandbox.verifyAndDecodeNotification(fake.signedNotification({ notificationType: 'TEST' }));
      expect(test.data).toEqual({ appAppleId: APP_APPLE_ID, bundleId: BUNDLE, bundleVersion: '1', environment: 'Sandbox' });

      const coins = fake.buy({ productId: 'coins_100', type: 'Consumable', account: account() });
      const charge = await sandbox.verifyAndDecodeNotification(fake.signedNotification({ notificationType: 'ONE_TIME_CHARGE', transactionId: coins.transactionId }));
      expect(charge.data).not.toHaveProperty('signedRenewalInfo');
      expect(charge.data).not.toHaveProperty('status');
      expect((await decodeTx(charge.data!.signedTransactionInfo!)).productId).toBe('coins_100');

      const unknownType = await sandbox.verifyAndDecodeNotification(fake.signedNotification({ notificationType: 'SOMETHING_NEW', transactionId: coins.transactionId }));
      expect(unknownType.notificationType).toBe('SOMETHING_NEW');

      receiverStatus = 500;
      const refused = await fake.notify({ notificationType: 'TEST' });
      expect(refused.status).toBe(500);
      expect(refused.body).toBe('nope');
      expect(() => fake.signedNotification({ notificationType: 'REFUND' })).toThrow(/transactionId/);
    });

    it('signedNotification can be replayed (same UUID) and a tampered copy fails verification', async () => {
      const tx = sub();
      fake.refund(tx.transactionId);
      const signed = fake.signedNotification({ notificationType: 'REFUND', transactionId: tx.transactionId });
      const first = await postJson(receiverUrl, { signedPayload: signed });
      const second = await postJson(receiverUrl, { signedPayload: signed });
      expect([first.status, second.status]).toEqual([200, 200]);
      const uuids = received.slice(-2).map((r) => decodeJwsPayload<{ notificationUUID: string }>((JSON.parse(r.body) as { signedPayload: string }).signedPayload).notificationUUID);
      expect(uuids[0]).toBe(uuids[1]);
      expect((await sandbox.verifyAndDecodeNotification(signed)).data?.status).toBe(5);

      const [h, p, s] = signed.split('.') as [string, string, string];
      const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as { notificationType: string };
      payload.notificationType = 'DID_RENEW';
      const tampered = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
      expect(await verificationStatus(sandbox.verifyAndDecodeNotification(tampered))).toBe(VerificationStatus.VERIFICATION_FAILURE);
      const otherChain = signAppleJws(decodeJwsPayload(signed), generateAppleChain());
      expect(await verificationStatus(sandbox.verifyAndDecodeNotification(otherChain))).toBe(VerificationStatus.VERIFICATION_FAILURE);
    });
  });

  describe('standalone mode', () => {
    it('scripting endpoints buy, renew, refund, appReceipt and notify', async () => {
      const who = account();
      const bought = await postJson(`${fake.url}/_fake/buy`, { productId: 'premium_monthly', type: 'Auto-Renewable Subscription', account: who, purchaseDate: '2026-01-01T00:00:00Z' });
      expect(bought.status).toBe(200);
      const tx = bought.json?.['transaction'] as FakeTransaction;
      expect(tx.purchaseDate).toBe(Date.parse('2026-01-01T00:00:00Z'));
      expect((await decodeTx(bought.json?.['signedTransaction'] as string)).transactionId).toBe(tx.transactionId);

      const renewed = await postJson(`${fake.url}/_fake/renew`, { originalTransactionId: tx.transactionId });
      const renewal = renewed.json?.['transaction'] as FakeTransaction;
      expect(renewal.purchaseDate).toBe(tx.expiresDate);
      const refunded = await postJson(`${fake.url}/_fake/refund`, { transactionId: renewal.transactionId, revocationReason: 1 });
      expect((refunded.json?.['transaction'] as FakeTransaction).revocationReason).toBe(1);
      expect(statusOf(tx.transactionId)).toBe(5);

      const receipt = (await postJson(`${fake.url}/_fake/appReceipt`, { account: who })).json?.['receipt'] as string;
      expect(ids((await postJson(fake.sandboxVerifyReceiptUrl, { 'receipt-data': receipt, password: SECRET })).json?.['latest_receipt_info'])).toEqual([
        tx.transactionId,
        renewal.transactionId,
      ]);

      const notified = await postJson(`${fake.url}/_fake/notify`, { notificationType: 'REFUND', transactionId: renewal.transactionId, url: receiverUrl });
      expect(notified.json?.['status']).toBe(200);
      expect(JSON.parse(received.at(-1)!.body)).toEqual({ signedPayload: notified.json?.['signedPayload'] });

      expect((await postJson(`${fake.url}/_fake/renew`, {})).status).toBe(400);
      expect((await postJson(`${fake.url}/_fake/renew`, { originalTransactionId: '1' })).json).toEqual({ error: 'unknown original transaction 1' });
      expect((await fetch(`${fake.url}/_fake/lineages/${tx.transactionId}`)).status).toBe(200);
    });

    it('`node test/fakes/app-store.ts` prints env vars whose files work with the library', async () => {
      const script = fileURLToPath(new URL('./app-store.ts', import.meta.url));
      const child = spawn(process.execPath, [script], { env: { ...process.env, PORT: '0', BUNDLE_ID: 'com.standalone.app' }, stdio: ['ignore', 'pipe', 'pipe'] });
      try {
        const out = await new Promise<string>((resolve, reject) => {
          let text = '';
          let errors = '';
          child.stdout.on('data', (d: Buffer) => {
            text += d.toString();
            if (text.includes('_fake/lineages')) resolve(text);
          });
          child.stderr.on('data', (d: Buffer) => (errors += d.toString()));
          child.once('exit', (code) => reject(new Error(`standalone fake exited with ${code}: ${text}${errors}`)));
        });
        const env = Object.fromEntries([...out.matchAll(/export (\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
        expect(Object.keys(env).sort()).toEqual(
          [
            'APPLE_API_SANDBOX_URL',
            'APPLE_API_URL',
            'APPLE_BUNDLE_ID',
            'APPLE_ENVIRONMENT',
            'APPLE_ISSUER_ID',
            'APPLE_KEY_ID',
            'APPLE_PRIVATE_KEY_FILE',
            'APPLE_ROOT_CERTIFICATES',
            'APPLE_SHARED_SECRET',
            'APPLE_VERIFY_RECEIPT_SANDBOX_URL',
            'APPLE_VERIFY_RECEIPT_URL',
          ].sort(),
        );
        expect(env['APPLE_ENVIRONMENT']).toBe('SANDBOX');
        const base = new URL(env['APPLE_VERIFY_RECEIPT_URL']!).origin;
        const bought = await postJson(`${base}/_fake/buy`, { productId: 'premium', type: 'Auto-Renewable Subscription' });
        const txId = (bought.json?.['transaction'] as FakeTransaction).transactionId;

        const roots = await Promise.all(env['APPLE_ROOT_CERTIFICATES']!.split(',').map((f) => readFile(f)));
        const verifier = new SignedDataVerifier(roots, false, Environment.SANDBOX, 'com.standalone.app');
        const key = { privateKeyPem: await readFile(env['APPLE_PRIVATE_KEY_FILE']!, 'utf8'), keyId: env['APPLE_KEY_ID']!, issuerId: env['APPLE_ISSUER_ID']! };
        expect(key.privateKeyPem).toContain('-----BEGIN PRIVATE KEY-----');
        const api = new FakeBaseApiClient(env['APPLE_API_SANDBOX_URL']!, key, 'com.standalone.app', Environment.SANDBOX);
        const info = await api.getTransactionInfo(txId);
        expect((await verifier.verifyAndDecodeTransaction(info.signedTransactionInfo!)).transactionId).toBe(txId);

        const receipt = (await postJson(`${base}/_fake/appReceipt`, {})).json?.['receipt'];
        const verified = await postJson(env['APPLE_VERIFY_RECEIPT_SANDBOX_URL']!, { 'receipt-data': receipt, password: env['APPLE_SHARED_SECRET'] });
        expect(verified.json?.['status']).toBe(0);
      } finally {
        const exited = child.exitCode === null ? once(child, 'exit') : Promise.resolve();
        child.kill('SIGTERM');
        await exited;
      }
    });
  });
});
