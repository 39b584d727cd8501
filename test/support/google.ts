// Google Play test helpers: the service pointed at a fake Play Developer API, and small builders.
import type { androidpublisher_v3 } from 'googleapis';
import { FakeGooglePlay } from '../fakes/google-play.js';
import type { DatabaseKind, TestDatabase } from './databases.js';
import { startTestApp, type TestApp } from './test-app.js';

export const PACKAGE = 'com.example.app';
export const DAY = 86_400_000;

export interface GoogleTestApp extends TestApp {
  fake: FakeGooglePlay;
}

export async function startGoogleApp(
  kind: DatabaseKind,
  options: { config?: Record<string, unknown>; clock?: () => Date; fake?: FakeGooglePlay; db?: TestDatabase; logLines?: Record<string, unknown>[] } = {},
): Promise<GoogleTestApp> {
  const fake = options.fake ?? (await FakeGooglePlay.start());
  const t = await startTestApp(kind, {
    clock: options.clock,
    db: options.db,
    logLines: options.logLines,
    config: {
      GOOGLE_SERVICE_ACCOUNT_JSON: JSON.stringify(fake.serviceAccount),
      GOOGLE_PACKAGE_NAMES: PACKAGE,
      GOOGLE_API_ROOT_URL: fake.rootUrl,
      GOOGLE_TOKEN_URL: fake.tokenUrl,
      GOOGLE_REQUEST_TIMEOUT_MS: 1500,
      ...options.config,
    },
  });
  const close = t.close.bind(t);
  return Object.assign(t, {
    fake,
    async close() {
      await close();
      if (!options.fake) await fake.close();
    },
  });
}

const SUBMIT = `mutation($input: SubmitReceiptInput!) {
  submitReceipt(input: $input) { status reason message transactionIds entitlements { identifier isActive state expiresAt willRenew } }
}`;

export async function submitGoogle(
  t: TestApp,
  appUserId: string,
  productId: string,
  purchaseToken: string,
  extra: { packageName?: string; originalJson?: string; signature?: string } = {},
) {
  const res = await t.server(SUBMIT, { input: { appUserId, store: 'PLAY_STORE', google: { productId, purchaseToken, ...extra } } });
  if (res.errors) throw new Error(`submitReceipt failed: ${JSON.stringify(res.errors)}`);
  return res.data!.submitReceipt as {
    status: string;
    reason: string;
    message: string;
    transactionIds: string[];
    entitlements: { identifier: string; isActive: boolean; state: string; expiresAt: string | null; willRenew: boolean }[];
  };
}

export async function customerOf(t: TestApp, appUserId: string) {
  const res = await t.server(
    `query($id: String!) { customer(appUserId: $id) {
      entitlements { identifier isActive state expiresAt gracePeriodExpiresAt willRenew productId isSandbox }
      subscriptions { productId state isActive expiresAt willRenew originalTransactionId latestTransactionId }
      nonSubscriptionPurchases { productId storeTransactionId revokedAt quantity }
      creditBalances { currency balance } } }`,
    { id: appUserId },
  );
  if (res.errors) throw new Error(JSON.stringify(res.errors));
  return res.data!.customer;
}

/** A SubscriptionPurchaseV2 for pro_monthly in the given state. */
export function subscription(
  state: string,
  o: { start: Date; expiry: Date; orderId?: string; autoRenew?: boolean; linkedPurchaseToken?: string; productId?: string; acknowledged?: boolean; test?: boolean; autoResumeTime?: Date; canceled?: 'user' | 'system'; accountId?: string },
): androidpublisher_v3.Schema$SubscriptionPurchaseV2 {
  return {
    subscriptionState: `SUBSCRIPTION_STATE_${state}`,
    startTime: o.start.toISOString(),
    linkedPurchaseToken: o.linkedPurchaseToken,
    acknowledgementState: o.acknowledged ? 'ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED' : 'ACKNOWLEDGEMENT_STATE_PENDING',
    testPurchase: o.test ? {} : undefined,
    pausedStateContext: o.autoResumeTime ? { autoResumeTime: o.autoResumeTime.toISOString() } : undefined,
    canceledStateContext: o.canceled === 'user' ? { userInitiatedCancellation: {} } : o.canceled === 'system' ? { systemInitiatedCancellation: {} } : undefined,
    externalAccountIdentifiers: o.accountId ? { obfuscatedExternalAccountId: o.accountId } : undefined,
    lineItems: [
      {
        productId: o.productId ?? 'pro_monthly',
        expiryTime: o.expiry.toISOString(),
        latestSuccessfulOrderId: o.orderId,
        autoRenewingPlan: { autoRenewEnabled: o.autoRenew ?? true, recurringPrice: { currencyCode: 'EUR', units: '4', nanos: 990_000_000 } },
        offerDetails: { basePlanId: 'monthly' },
      },
    ],
  };
}

/** Posts a Pub/Sub push with a Play developer notification. */
export async function pushNotification(t: TestApp, notification: Record<string, unknown>, messageId: string, headers: Record<string, string> = {}) {
  const body = {
    message: { data: Buffer.from(JSON.stringify({ version: '1.0', packageName: PACKAGE, eventTimeMillis: String(Date.now()), ...notification })).toString('base64'), messageId, publishTime: new Date().toISOString() },
    subscription: 'projects/example/subscriptions/play',
  };
  const res = await fetch(t.url.replace('/graphql', '/notifications/google'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function eventually<T>(probe: () => T | Promise<T>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 25));
  }
}
