// App Store test helpers: the service pointed at a fake App Store, and small builders.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeAppStore } from '../fakes/app-store.js';
import type { DatabaseKind, TestDatabase } from './databases.js';
import { startTestApp, type TestApp } from './test-app.js';

export const BUNDLE_ID = 'com.example.app';
export const APP_APPLE_ID = 1234567890;
export const SHARED_SECRET = 'shared-secret-0123456789abcdef';
export const MONTHLY = 'com.example.app.pro.monthly';
export const YEARLY = 'com.example.app.pro.yearly';
export const NO_ADS = 'com.example.app.no_ads';
export const COINS = 'com.example.app.coins100';
export const DAY = 86_400_000;

export interface AppleTestApp extends TestApp {
  fake: FakeAppStore;
  notificationUrl: string;
}

/** Files a config can name: the fake's root certificate and in-app purchase key. */
export function appleFiles(fake: FakeAppStore): { root: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'iap-apple-'));
  const root = join(dir, 'root.cer');
  const key = join(dir, 'SubscriptionKey.p8');
  writeFileSync(root, fake.rootCertificateDer);
  writeFileSync(key, fake.apiKey.privateKeyPem);
  return { root, key };
}

/** Service config for the fake: a PRODUCTION deployment that accepts sandbox purchases, with an API key. */
export function appleConfig(fake: FakeAppStore, options: { api?: boolean } = {}): Record<string, unknown> {
  const files = appleFiles(fake);
  return {
    APPLE_BUNDLE_ID: BUNDLE_ID,
    APPLE_APP_APPLE_ID: APP_APPLE_ID,
    APPLE_ENVIRONMENT: 'PRODUCTION',
    APPLE_ACCEPT_SANDBOX: 'true',
    APPLE_ROOT_CERTIFICATES: files.root,
    APPLE_SHARED_SECRET: SHARED_SECRET,
    APPLE_VERIFY_RECEIPT_URL: fake.verifyReceiptUrl,
    APPLE_VERIFY_RECEIPT_SANDBOX_URL: fake.sandboxVerifyReceiptUrl,
    APPLE_REQUEST_TIMEOUT_MS: 1500,
    ...(options.api === false
      ? {}
      : {
          APPLE_KEY_ID: fake.apiKey.keyId,
          APPLE_ISSUER_ID: fake.apiKey.issuerId,
          APPLE_PRIVATE_KEY_FILE: files.key,
          APPLE_API_URL: fake.apiUrl('Production'),
          APPLE_API_SANDBOX_URL: fake.apiUrl('Sandbox'),
        }),
  };
}

export async function startAppleApp(
  kind: DatabaseKind,
  options: { config?: Record<string, unknown>; clock?: () => Date; api?: boolean; db?: TestDatabase; logLines?: Record<string, unknown>[] } = {},
): Promise<AppleTestApp> {
  const fake = await FakeAppStore.start({ bundleId: BUNDLE_ID, appAppleId: APP_APPLE_ID, sharedSecret: SHARED_SECRET, clock: options.clock });
  const t = await startTestApp(kind, {
    clock: options.clock,
    db: options.db,
    logLines: options.logLines,
    config: { ...appleConfig(fake, { api: options.api }), ...options.config },
  });
  const notificationUrl = new URL('/notifications/apple', t.url).toString();
  const close = t.close.bind(t);
  return Object.assign(t, {
    fake,
    notificationUrl,
    async close() {
      await close();
      await fake.close();
    },
  });
}

const SUBMIT = `mutation($input: SubmitReceiptInput!) {
  submitReceipt(input: $input) { status reason message transactionIds entitlements { identifier isActive state expiresAt willRenew isSandbox ownership } }
}`;

export interface SubmitOutcome {
  status: string;
  reason: string;
  message: string;
  transactionIds: string[];
  entitlements: { identifier: string; isActive: boolean; state: string; expiresAt: string | null; willRenew: boolean; isSandbox: boolean; ownership: string }[];
}

export async function submitApple(
  t: TestApp,
  appUserId: string,
  apple: { signedTransaction?: string; appReceipt?: string; transactionId?: string },
): Promise<SubmitOutcome> {
  const res = await t.server(SUBMIT, { input: { appUserId, store: 'APP_STORE', apple } });
  if (res.errors) throw new Error(`submitReceipt failed: ${JSON.stringify(res.errors)}`);
  return res.data!.submitReceipt as SubmitOutcome;
}

const CUSTOMER = `query($id: String!) { customer(appUserId: $id) {
  entitlements { identifier isActive state expiresAt gracePeriodExpiresAt willRenew isSandbox ownership productId }
  subscriptions { productId state isActive expiresAt gracePeriodExpiresAt willRenew revokedAt expirationReason originalTransactionId latestTransactionId environment ownership }
  nonSubscriptionPurchases { productId kind storeTransactionId revokedAt quantity ownership environment }
  creditBalances { currency balance }
} }`;

export async function customerOf(t: TestApp, appUserId: string) {
  const res = await t.server(CUSTOMER, { id: appUserId });
  if (res.errors) throw new Error(`customer failed: ${JSON.stringify(res.errors)}`);
  return res.data!.customer as {
    entitlements: Record<string, any>[];
    subscriptions: Record<string, any>[];
    nonSubscriptionPurchases: Record<string, any>[];
    creditBalances: { currency: string; balance: number }[];
  };
}

/** Events recorded for a customer, oldest first. */
export async function eventsOf(t: TestApp, appUserId: string): Promise<{ type: string; transactionId: string; data: Record<string, unknown> }[]> {
  const rows = (await t.app.services.orm.em.getConnection().execute(
    `select e.type, e.store_transaction_id, e.data from event e join customer c on c.id = e.customer_id where c.app_user_id = ? order by e.occurred_at, e.id`,
    [appUserId],
  )) as Record<string, unknown>[];
  return rows.map((r) => ({
    type: r.type as string,
    transactionId: r.store_transaction_id as string,
    data: (typeof r.data === 'string' ? JSON.parse(r.data) : r.data) as Record<string, unknown>,
  }));
}
