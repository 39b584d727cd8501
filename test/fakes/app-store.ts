/**
 * Fake Apple App Store on loopback: legacy `verifyReceipt`, the App Store Server API, and Server Notifications V2.
 *
 * Signed data (transactions, renewal info, notifications) is a real ES256 JWS over a certificate chain generated
 * at start (see apple-certs.ts), so `@apple/app-store-server-library`'s SignedDataVerifier accepts it when it
 * trusts `rootCertificateDer` instead of Apple Root CA G3. API requests must carry the ES256 bearer JWT made with
 * `apiKey` (a generated in-app purchase key, PKCS#8 like Apple's .p8). Purchases are scripted (`buy`, `renew`,
 * `refund`, ...) and every answer and error has the shape Apple uses. Times come from the `clock` option, except
 * the bearer JWT's iat/exp, which are checked against real time (the client signs with real time).
 *
 * Standalone: `node test/fakes/app-store.ts` (PORT, default 4710; BUNDLE_ID, default com.example.app) writes the
 * root certificate and the .p8 key to a temp dir and prints the env vars to point the service at it; script it
 * with `POST /_fake/{buy,renew,refund,notify,appReceipt,...}` and read `GET /_fake/calls`.
 */
import { generateKeyPairSync, randomBytes, randomInt, randomUUID, type KeyObject } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jwtVerify } from 'jose';
import type { AppleChain } from './apple-certs.js';

// Node's type stripping (standalone mode) does not map a './x.js' specifier to x.ts, and the project's tsconfig
// does not allow '.ts' specifiers, so the sibling module is loaded with this file's own extension.
const { generateAppleChain, signAppleJws } = (await import(
  new URL(`./apple-certs${import.meta.url.slice(import.meta.url.lastIndexOf('.'))}`, import.meta.url).href
)) as typeof import('./apple-certs.js');
const { runWhenEntryPoint, serveUntilSignal } = (await import(
  new URL(`./standalone${import.meta.url.slice(import.meta.url.lastIndexOf('.'))}`, import.meta.url).href
)) as typeof import('./standalone.js');

export type AppleEnvironment = 'Production' | 'Sandbox';
export type ProductType = 'Auto-Renewable Subscription' | 'Non-Renewing Subscription' | 'Non-Consumable' | 'Consumable';
export type OwnershipType = 'PURCHASED' | 'FAMILY_SHARED';
/** 1 introductory, 2 promotional, 3 offer code, 4 win-back. */
export type OfferType = 1 | 2 | 3 | 4;
/** 1 customer cancelled, 2 billing error, 3 declined price increase, 4 product unavailable, 5 other. */
export type ExpirationIntent = 1 | 2 | 3 | 4 | 5;
/** 1 ACTIVE, 2 EXPIRED, 3 BILLING_RETRY, 4 BILLING_GRACE_PERIOD, 5 REVOKED. */
export type SubscriptionStatus = 1 | 2 | 3 | 4 | 5;
export type ReceiptOrder = 'asc' | 'desc' | 'shuffled';

export type NotificationType =
  | 'SUBSCRIBED'
  | 'DID_RENEW'
  | 'DID_FAIL_TO_RENEW'
  | 'GRACE_PERIOD_EXPIRED'
  | 'DID_CHANGE_RENEWAL_STATUS'
  | 'DID_CHANGE_RENEWAL_PREF'
  | 'EXPIRED'
  | 'REFUND'
  | 'REFUND_DECLINED'
  | 'REFUND_REVERSED'
  | 'REVOKE'
  | 'RENEWAL_EXTENDED'
  | 'OFFER_REDEEMED'
  | 'PRICE_INCREASE'
  | 'ONE_TIME_CHARGE'
  | 'CONSUMPTION_REQUEST'
  | 'TEST'
  | (string & {}); // Apple adds types; the service must survive ones it does not know.

export type NotificationSubtype =
  | 'INITIAL_BUY'
  | 'RESUBSCRIBE'
  | 'DOWNGRADE'
  | 'UPGRADE'
  | 'AUTO_RENEW_ENABLED'
  | 'AUTO_RENEW_DISABLED'
  | 'VOLUNTARY'
  | 'BILLING_RETRY'
  | 'PRICE_INCREASE'
  | 'GRACE_PERIOD'
  | 'BILLING_RECOVERY'
  | 'PRODUCT_NOT_FOR_SALE'
  | 'PENDING'
  | 'ACCEPTED'
  | (string & {});

/** The JWSTransactionDecodedPayload fields the fake sets; `signedDate` is added when signing. */
export interface TransactionPayload {
  transactionId: string;
  originalTransactionId: string;
  webOrderLineItemId?: string;
  bundleId: string;
  productId: string;
  subscriptionGroupIdentifier?: string;
  purchaseDate: number;
  originalPurchaseDate: number;
  expiresDate?: number;
  quantity: number;
  type: ProductType;
  appAccountToken?: string;
  inAppOwnershipType: OwnershipType;
  revocationReason?: 0 | 1;
  revocationDate?: number;
  isUpgraded?: boolean;
  offerType?: OfferType;
  environment: AppleEnvironment;
  transactionReason: 'PURCHASE' | 'RENEWAL';
  storefront: string;
  storefrontId: string;
  price?: number;
  currency?: string;
}

/** A transaction as the fake keeps it: the JWS payload plus what Apple knows but does not sign into it. */
export interface FakeTransaction extends TransactionPayload {
  /** The order id on the customer's emailed receipt (`MK...`), for order lookup. */
  orderId: string;
  /** The Apple ID the purchase belongs to (receipts and history are per account). */
  account: string;
}

/** The JWSRenewalInfoDecodedPayload fields the fake sets; `signedDate` is added when signing. */
export interface RenewalInfoPayload {
  originalTransactionId: string;
  autoRenewProductId: string;
  productId: string;
  autoRenewStatus: 0 | 1;
  expirationIntent?: ExpirationIntent;
  gracePeriodExpiresDate?: number;
  isInBillingRetryPeriod: boolean;
  environment: AppleEnvironment;
  recentSubscriptionStartDate: number;
  renewalDate: number;
  appAccountToken?: string;
  currency?: string;
  renewalPrice?: number;
}

export interface LineageView {
  originalTransactionId: string;
  account: string;
  environment: AppleEnvironment;
  type: ProductType;
  /** Oldest first. */
  transactions: FakeTransaction[];
  /** Auto-renewable subscriptions only. */
  status?: SubscriptionStatus;
  renewalInfo?: RenewalInfoPayload;
}

export interface BuyOptions {
  productId: string;
  type: ProductType;
  environment?: AppleEnvironment;
  account?: string;
  appAccountToken?: string;
  ownership?: OwnershipType;
  /** Auto-renewable subscriptions: length of one period (default 30 days). */
  periodMs?: number;
  purchaseDate?: Date;
  quantity?: number;
  offerType?: OfferType;
  /** Milliunits (9990 = 9.99). */
  price?: number;
  currency?: string;
  subscriptionGroupIdentifier?: string;
}

export interface AppReceiptOptions {
  account?: string;
  environment?: AppleEnvironment;
  order?: ReceiptOrder;
}

export interface NotifyOptions {
  notificationType: NotificationType;
  subtype?: NotificationSubtype;
  /** The transaction the notification is about; defaults to the latest of `originalTransactionId`'s lineage. */
  transactionId?: string;
  originalTransactionId?: string;
  /** Where to POST; defaults to the `notificationUrl` start option. */
  url?: string;
  /** Only for TEST notifications, which name no transaction (default Sandbox). */
  environment?: AppleEnvironment;
}

export interface NotifyResult {
  status: number;
  body: string;
  signedPayload: string;
  notificationUUID: string;
}

export type VerifyReceiptFailure = { status: number } | { httpStatus: number } | { hangMs: number };
export type ApiFailure = { httpStatus: number; errorCode?: number } | { hangMs: number };

/** Chaos: each verifyReceipt or API call fails with probability `rate`, half with a 5xx, half by hanging `hangMs`. */
export interface RandomFailures {
  rate: number;
  hangMs: number;
  random?: () => number;
}

export interface RecordedCall {
  method: string;
  path: string;
  query: Record<string, string | string[]>;
  body: unknown;
}

export interface FakeAppStoreOptions {
  bundleId: string;
  /** The app's Apple ID; Apple puts it in production data and the library requires it for Production. */
  appAppleId?: number;
  /** verifyReceipt answers 21004 when this is set and the request's `password` differs. */
  sharedSecret?: string;
  clock?: () => Date;
  notificationUrl?: string;
  port?: number;
}

const DAY_MS = 24 * 3600 * 1000;
const THIRTY_DAYS_MS = 30 * DAY_MS;
const HISTORY_PAGE_SIZE = 20;
/** Apple's verifyReceipt takes legacy receipts of several MB (the service accepts up to 4,000,000 characters). */
const MAX_BODY_BYTES = 8 << 20;
const DEFAULT_SUBSCRIPTION_GROUP = '21000001';
const ORDER_ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const RECEIPT_MAGIC = Buffer.from('FAKE-APPLE-RECEIPT:');
/** PKCS#7 signedData: the content type Apple's receipts open with (the service checks a receipt's shape). */
const PKCS7_SIGNED_DATA_OID = Buffer.from([0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02]);

const SUBSCRIPTIONS_RE = /^\/inApps\/v1\/subscriptions\/([^/]+)$/;
const TRANSACTION_RE = /^\/inApps\/v1\/transactions\/([^/]+)$/;
const HISTORY_RE = /^\/inApps\/v[12]\/history\/([^/]+)$/;
const LOOKUP_RE = /^\/inApps\/v1\/lookup\/([^/]+)$/;
const API_BASE_RE = /^\/api\/(production|sandbox)(\/.*)$/;

const PRODUCT_TYPE_FILTER: Record<string, ProductType> = {
  AUTO_RENEWABLE: 'Auto-Renewable Subscription',
  NON_RENEWABLE: 'Non-Renewing Subscription',
  CONSUMABLE: 'Consumable',
  NON_CONSUMABLE: 'Non-Consumable',
};

/** Apple's API error bodies for the usual HTTP statuses (a 401 has no body). */
const API_ERRORS: Record<number, { errorCode: number; errorMessage: string }> = {
  400: { errorCode: 4000000, errorMessage: 'Invalid request.' },
  404: { errorCode: 4040010, errorMessage: 'Transaction id not found.' },
  429: { errorCode: 4290000, errorMessage: 'Rate limit exceeded.' },
  500: { errorCode: 5000000, errorMessage: 'An unknown error occurred.' },
  503: { errorCode: 5000001, errorMessage: 'An unknown error occurred. Please try again.' },
};
const API_ERROR_MESSAGES: Record<number, string> = Object.fromEntries(
  [
    ...Object.values(API_ERRORS),
    { errorCode: 4000005, errorMessage: 'Invalid request revision.' },
    { errorCode: 4000006, errorMessage: 'Invalid transaction id.' },
    { errorCode: 4040001, errorMessage: 'Account not found.' },
    { errorCode: 4040002, errorMessage: 'Account not found. Please try again.' },
    { errorCode: 4040005, errorMessage: 'Original transaction id not found.' },
    { errorCode: 4040006, errorMessage: 'Original transaction id not found. Please try again.' },
    { errorCode: 4040011, errorMessage: 'Transaction id not found. Please try again.' },
  ].map((e) => [e.errorCode, e.errorMessage]),
);

class ApiError extends Error {
  readonly httpStatus: number;
  readonly body: unknown;
  constructor(httpStatus: number, body?: unknown) {
    super(`HTTP ${httpStatus}`);
    this.httpStatus = httpStatus;
    this.body = body;
  }
}

const transactionNotFound = (): ApiError => new ApiError(404, { errorCode: 4040010, errorMessage: 'Transaction id not found.' });

interface Lineage {
  originalTransactionId: string;
  account: string;
  environment: AppleEnvironment;
  type: ProductType;
  transactionIds: string[];
  periodMs: number;
  autoRenewStatus: 0 | 1;
  autoRenewProductId: string;
  expirationIntent: ExpirationIntent | undefined;
  isInBillingRetryPeriod: boolean;
  gracePeriodExpiresDate: number | undefined;
  /** Set by `expire()`: the status is EXPIRED whatever the dates say. */
  expired: boolean;
  recentSubscriptionStartDate: number;
}

interface StoredReceipt {
  account: string;
  environment: AppleEnvironment;
  order: ReceiptOrder;
  createdAt: number;
  /** What the receipt held when it was made (`in_app`); `latest_receipt_info` is always current. */
  transactionIds: string[];
}

interface PendingFailure<F> {
  failure: F;
  remaining: number;
  /** verifyReceipt only: fail calls to this endpoint alone (others pass it by). */
  endpoint?: AppleEnvironment;
}

export class FakeAppStore {
  readonly url: string;
  readonly verifyReceiptUrl: string;
  readonly sandboxVerifyReceiptUrl: string;
  readonly bundleId: string;
  readonly appAppleId: number | undefined;
  readonly sharedSecret: string | undefined;
  readonly chain: AppleChain;
  readonly rootCertificateDer: Buffer;
  /** In-app purchase key for the App Store Server API: PKCS#8 PEM (like Apple's .p8), key id, issuer id. */
  readonly apiKey: { privateKeyPem: string; keyId: string; issuerId: string };
  readonly calls: RecordedCall[];
  /** Where `notify()` posts by default; settable because the receiver often starts after the fake. */
  notificationUrl: string | undefined;

  private readonly server: Server;
  private readonly clock: () => Date;
  private readonly apiPublicKey: KeyObject;
  private readonly transactions: Map<string, FakeTransaction>;
  private readonly lineages: Map<string, Lineage>;
  private readonly receipts: Map<string, StoredReceipt>; // hex of the decoded receipt bytes -> receipt
  private readonly orderIds: Set<string>;
  private readonly receiptFailures: PendingFailure<VerifyReceiptFailure>[];
  private readonly apiFailures: PendingFailure<ApiFailure>[];
  private chaos: RandomFailures | null = null;
  /** How many calls the random failures failed. */
  randomFailures = 0;
  private readonly hangs: Set<NodeJS.Timeout>;
  private readonly idBase: number;
  private idCounter: number;

  private constructor(server: Server, options: FakeAppStoreOptions) {
    const { port } = server.address() as AddressInfo;
    this.server = server;
    this.url = `http://127.0.0.1:${port}`;
    this.verifyReceiptUrl = `${this.url}/verifyReceipt`;
    this.sandboxVerifyReceiptUrl = `${this.url}/sandbox/verifyReceipt`;
    this.bundleId = options.bundleId;
    this.appAppleId = options.appAppleId;
    this.sharedSecret = options.sharedSecret;
    this.notificationUrl = options.notificationUrl;
    this.clock = options.clock ?? (() => new Date());
    this.chain = generateAppleChain();
    this.rootCertificateDer = this.chain.rootDer;
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.apiPublicKey = publicKey;
    this.apiKey = {
      privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      keyId: randomBytes(5).toString('hex').toUpperCase(), // Apple key ids are 10 characters
      issuerId: randomUUID(),
    };
    this.calls = [];
    this.transactions = new Map();
    this.lineages = new Map();
    this.receipts = new Map();
    this.orderIds = new Set();
    this.receiptFailures = [];
    this.apiFailures = [];
    this.hangs = new Set();
    // 16-digit ids like Apple's; a random base so ids differ between fakes (and runs).
    this.idBase = 2_000_000_000_000_000 + randomInt(0, 1_000_000) * 1_000_000;
    this.idCounter = 0;
  }

  /** Starts on 127.0.0.1 (port 0 = any free port unless `port` is given). */
  static async start(options: FakeAppStoreOptions): Promise<FakeAppStore> {
    let fake: FakeAppStore | undefined;
    const server = createServer((req, res) => {
      if (fake === undefined) {
        res.writeHead(503).end();
        return;
      }
      fake.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) sendJson(res, 500, { errorCode: 5000000, errorMessage: String(err) });
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    fake = new FakeAppStore(server, options);
    return fake;
  }

  /** Base URL of the App Store Server API for an environment; the service appends `/inApps/v1/...`. */
  apiUrl(env: AppleEnvironment): string {
    return `${this.url}/api/${env === 'Production' ? 'production' : 'sandbox'}`;
  }

  async close(): Promise<void> {
    for (const t of this.hangs) clearTimeout(t);
    this.hangs.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  // --- scripted purchases ------------------------------------------------------------------------------------

  buy(options: BuyOptions): FakeTransaction {
    const now = this.now();
    const purchaseDate = options.purchaseDate?.getTime() ?? now;
    const autoRenewable = options.type === 'Auto-Renewable Subscription';
    const periodMs = options.periodMs ?? THIRTY_DAYS_MS;
    const transactionId = this.nextId();
    const tx: FakeTransaction = {
      transactionId,
      originalTransactionId: transactionId,
      bundleId: this.bundleId,
      productId: options.productId,
      purchaseDate,
      originalPurchaseDate: purchaseDate,
      quantity: options.quantity ?? 1,
      type: options.type,
      inAppOwnershipType: options.ownership ?? 'PURCHASED',
      environment: options.environment ?? 'Sandbox',
      transactionReason: 'PURCHASE',
      storefront: 'USA',
      storefrontId: '143441',
      price: options.price ?? (options.offerType === 1 ? 0 : 9990),
      currency: options.currency ?? 'USD',
      orderId: this.nextOrderId(),
      account: options.account ?? 'default',
    };
    // Apple sets these only for auto-renewable subscriptions (a non-renewing one has no expiry from Apple).
    if (autoRenewable) {
      tx.webOrderLineItemId = this.nextId();
      tx.subscriptionGroupIdentifier = options.subscriptionGroupIdentifier ?? DEFAULT_SUBSCRIPTION_GROUP;
      tx.expiresDate = purchaseDate + periodMs;
    }
    if (options.appAccountToken !== undefined) tx.appAccountToken = options.appAccountToken;
    if (options.offerType !== undefined) tx.offerType = options.offerType;
    this.transactions.set(transactionId, tx);
    this.lineages.set(transactionId, {
      originalTransactionId: transactionId,
      account: tx.account,
      environment: tx.environment,
      type: tx.type,
      transactionIds: [transactionId],
      periodMs,
      autoRenewStatus: autoRenewable ? 1 : 0,
      autoRenewProductId: tx.productId,
      expirationIntent: undefined,
      isInBillingRetryPeriod: false,
      gracePeriodExpiresDate: undefined,
      expired: false,
      recentSubscriptionStartDate: purchaseDate,
    });
    return structuredClone(tx);
  }

  /** Next period: purchaseDate = previous expiresDate; billing retry, grace and expiry are cleared. */
  renew(originalTransactionId: string): FakeTransaction {
    const l = this.subscription(originalTransactionId);
    const prev = this.latest(l);
    return this.addPeriod(l, prev.expiresDate!, 'RENEWAL', l.autoRenewProductId);
  }

  /** Billing failed at renewal: billing retry (status 3), or grace period (status 4) when `graceMs` is given. */
  failToRenew(originalTransactionId: string, options: { graceMs?: number } = {}): void {
    const l = this.subscription(originalTransactionId);
    l.isInBillingRetryPeriod = true;
    l.expirationIntent = 2;
    l.gracePeriodExpiresDate = options.graceMs === undefined ? undefined : this.latest(l).expiresDate! + options.graceMs;
  }

  /**
   * Billing recovered: a new transaction. Within the grace period the renewal date does not move (the period
   * starts at the old expiresDate); after it, the new period starts now, as Apple does.
   */
  recover(originalTransactionId: string): FakeTransaction {
    const l = this.subscription(originalTransactionId);
    const prev = this.latest(l);
    const now = this.now();
    const inGrace = l.gracePeriodExpiresDate !== undefined && now < l.gracePeriodExpiresDate;
    return this.addPeriod(l, inGrace ? prev.expiresDate! : Math.max(now, prev.expiresDate!), 'RENEWAL', l.autoRenewProductId);
  }

  setAutoRenew(originalTransactionId: string, on: boolean): void {
    const l = this.subscription(originalTransactionId);
    l.autoRenewStatus = on ? 1 : 0;
    if (on && l.expirationIntent === 1) l.expirationIntent = undefined;
  }

  /**
   * Status EXPIRED with the given reason. Dates are left alone: advance the clock past expiresDate first
   * if the test needs the transaction to look expired too.
   */
  expire(originalTransactionId: string, expirationIntent: ExpirationIntent): void {
    const l = this.subscription(originalTransactionId);
    l.expired = true;
    l.autoRenewStatus = 0;
    l.expirationIntent = expirationIntent;
    l.isInBillingRetryPeriod = false;
    l.gracePeriodExpiresDate = undefined;
  }

  /** revocationDate = now; the subscription's status becomes REVOKED when this is its latest transaction. */
  refund(transactionId: string, revocationReason: 0 | 1 = 0): FakeTransaction {
    const tx = this.requireTransaction(transactionId);
    tx.revocationDate = this.now();
    tx.revocationReason = revocationReason;
    return structuredClone(tx);
  }

  reverseRefund(transactionId: string): FakeTransaction {
    const tx = this.requireTransaction(transactionId);
    delete tx.revocationDate;
    delete tx.revocationReason;
    return structuredClone(tx);
  }

  /** The purchaser stopped sharing (or left the family): every FAMILY_SHARED transaction is revoked. */
  familyRevoke(originalTransactionId: string): FakeTransaction[] {
    const l = this.requireLineage(originalTransactionId);
    const now = this.now();
    const shared = l.transactionIds.map((id) => this.transactions.get(id)!).filter((t) => t.inAppOwnershipType === 'FAMILY_SHARED');
    if (shared.length === 0) throw new Error(`lineage ${originalTransactionId} has no FAMILY_SHARED transaction`);
    for (const t of shared) t.revocationDate = now;
    return shared.map((t) => structuredClone(t));
  }

  /** Upgrade within the group: Apple marks the current transaction isUpgraded and revokes it now. */
  upgrade(originalTransactionId: string, newProductId: string): FakeTransaction {
    const l = this.subscription(originalTransactionId);
    const prev = this.latest(l);
    const now = this.now();
    prev.isUpgraded = true;
    prev.revocationDate = now;
    l.autoRenewProductId = newProductId;
    return this.addPeriod(l, now, 'PURCHASE', newProductId);
  }

  /** Renewal date extension (RENEWAL_EXTENDED): the latest expiresDate moves by `days`. */
  extend(originalTransactionId: string, days: number): FakeTransaction {
    const l = this.subscription(originalTransactionId);
    const tx = this.latest(l);
    tx.expiresDate = tx.expiresDate! + days * DAY_MS;
    return structuredClone(tx);
  }

  transaction(transactionId: string): FakeTransaction | undefined {
    const tx = this.transactions.get(transactionId);
    return tx === undefined ? undefined : structuredClone(tx);
  }

  lineage(originalTransactionId: string): LineageView | undefined {
    const l = this.lineages.get(originalTransactionId);
    if (l === undefined) return undefined;
    const view: LineageView = {
      originalTransactionId: l.originalTransactionId,
      account: l.account,
      environment: l.environment,
      type: l.type,
      transactions: l.transactionIds.map((id) => structuredClone(this.transactions.get(id)!)),
    };
    if (l.type === 'Auto-Renewable Subscription') {
      view.status = this.status(l);
      view.renewalInfo = this.renewalInfo(l);
    }
    return view;
  }

  /** What StoreKit 2's `Transaction.jwsRepresentation` gives the app, signed now. */
  signedTransaction(transactionId: string): string {
    return this.signTransaction(this.requireTransaction(transactionId));
  }

  signedRenewalInfo(originalTransactionId: string): string {
    return this.sign({ ...this.renewalInfo(this.subscription(originalTransactionId)), signedDate: this.now() });
  }

  // --- receipts --------------------------------------------------------------------------------------------

  /** A base64 app receipt for the account's purchases in that environment (new bytes on every call). */
  appReceipt(options: AppReceiptOptions = {}): string {
    const account = options.account ?? 'default';
    const environment = options.environment ?? 'Sandbox';
    return this.makeReceipt({
      account,
      environment,
      order: options.order ?? 'asc',
      createdAt: this.now(),
      transactionIds: this.accountTransactions(account, environment).map((t) => t.transactionId),
    });
  }

  /** The next `times` verifyReceipt calls (to `endpoint` only, when given) answer this Apple status, this HTTP status, or hang. */
  failVerifyReceipt(failure: VerifyReceiptFailure, times = 1, endpoint?: AppleEnvironment): void {
    this.receiptFailures.push({ failure, remaining: times, endpoint });
  }

  /** Drops the verifyReceipt failures still scripted. */
  clearVerifyReceiptFailures(): void {
    this.receiptFailures.length = 0;
  }

  /** Fails verifyReceipt and API calls at random from now on (null stops it); scripted failures come first. */
  failRandomly(options: RandomFailures | null): void {
    this.chaos = options;
  }

  /** A 5xx or a hang, when the random failures pick this call. */
  private randomFailure(): ApiFailure | undefined {
    const chaos = this.chaos;
    if (chaos === null) return undefined;
    const random = chaos.random ?? Math.random;
    if (random() >= chaos.rate) return undefined;
    this.randomFailures++;
    return random() < 0.5 ? { httpStatus: random() < 0.5 ? 500 : 503 } : { hangMs: chaos.hangMs };
  }

  /** The next `times` (authenticated) App Store Server API calls fail this way. */
  failApi(failure: ApiFailure, times = 1): void {
    this.apiFailures.push({ failure, remaining: times });
  }

  // --- notifications ---------------------------------------------------------------------------------------

  /** Builds and signs a Notifications V2 payload; POST it yourself (e.g. twice, or tampered with). */
  signedNotification(options: NotifyOptions): string {
    return this.buildNotification(options).signedPayload;
  }

  /** Signs a notification and POSTs `{"signedPayload": ...}` to `options.url ?? notificationUrl`. */
  async notify(options: NotifyOptions): Promise<NotifyResult> {
    const url = options.url ?? this.notificationUrl;
    if (url === undefined) throw new Error('no notification url: pass `url` or start the fake with `notificationUrl`');
    const { signedPayload, notificationUUID } = this.buildNotification(options);
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ signedPayload }),
    });
    return { status: res.status, body: await res.text(), signedPayload, notificationUUID };
  }

  // ---------------------------------------------------------------------------------------------------------

  private now(): number {
    return this.clock().getTime();
  }

  private nextId(): string {
    this.idCounter++;
    return String(this.idBase + this.idCounter);
  }

  private nextOrderId(): string {
    for (;;) {
      let id = 'MK';
      for (let i = 0; i < 8; i++) id += ORDER_ID_ALPHABET[randomInt(ORDER_ID_ALPHABET.length)];
      if (!this.orderIds.has(id)) {
        this.orderIds.add(id);
        return id;
      }
    }
  }

  private requireTransaction(transactionId: string): FakeTransaction {
    const tx = this.transactions.get(transactionId);
    if (tx === undefined) throw new Error(`unknown transaction ${transactionId}`);
    return tx;
  }

  private requireLineage(originalTransactionId: string): Lineage {
    const l = this.lineages.get(originalTransactionId);
    if (l === undefined) throw new Error(`unknown original transaction ${originalTransactionId}`);
    return l;
  }

  private subscription(originalTransactionId: string): Lineage {
    const l = this.requireLineage(originalTransactionId);
    if (l.type !== 'Auto-Renewable Subscription') throw new Error(`${originalTransactionId} is a ${l.type}, not an auto-renewable subscription`);
    return l;
  }

  private latest(l: Lineage): FakeTransaction {
    return this.transactions.get(l.transactionIds.at(-1)!)!;
  }

  private addPeriod(l: Lineage, start: number, reason: 'PURCHASE' | 'RENEWAL', productId: string): FakeTransaction {
    const prev = this.latest(l);
    const transactionId = this.nextId();
    const tx: FakeTransaction = {
      ...structuredClone(prev),
      transactionId,
      webOrderLineItemId: this.nextId(),
      productId,
      purchaseDate: start,
      expiresDate: start + l.periodMs,
      transactionReason: reason,
      orderId: this.nextOrderId(),
    };
    // Per-transaction facts do not carry over to the next period.
    delete tx.revocationDate;
    delete tx.revocationReason;
    delete tx.isUpgraded;
    delete tx.offerType;
    if (tx.price === 0) tx.price = 9990; // a free trial is followed by a paid period
    this.transactions.set(transactionId, tx);
    l.transactionIds.push(transactionId);
    // Apple's recentSubscriptionStartDate ignores lapses in paid service shorter than 60 days.
    if (start - prev.expiresDate! > 60 * DAY_MS) l.recentSubscriptionStartDate = start;
    l.expired = false;
    l.isInBillingRetryPeriod = false;
    l.gracePeriodExpiresDate = undefined;
    l.expirationIntent = undefined;
    return structuredClone(tx);
  }

  private status(l: Lineage): SubscriptionStatus {
    const latest = this.latest(l);
    const now = this.now();
    if (latest.revocationDate !== undefined) return 5;
    if (l.expired) return 2;
    if (l.isInBillingRetryPeriod) return l.gracePeriodExpiresDate !== undefined && now < l.gracePeriodExpiresDate ? 4 : 3;
    if (latest.expiresDate !== undefined && now >= latest.expiresDate) return 2;
    return 1;
  }

  private renewalInfo(l: Lineage): RenewalInfoPayload {
    const latest = this.latest(l);
    const info: RenewalInfoPayload = {
      originalTransactionId: l.originalTransactionId,
      autoRenewProductId: l.autoRenewProductId,
      productId: latest.productId,
      autoRenewStatus: l.autoRenewStatus,
      isInBillingRetryPeriod: l.isInBillingRetryPeriod,
      environment: l.environment,
      recentSubscriptionStartDate: l.recentSubscriptionStartDate,
      renewalDate: latest.expiresDate!,
    };
    if (l.expirationIntent !== undefined) info.expirationIntent = l.expirationIntent;
    if (l.gracePeriodExpiresDate !== undefined) info.gracePeriodExpiresDate = l.gracePeriodExpiresDate;
    if (latest.appAccountToken !== undefined) info.appAccountToken = latest.appAccountToken;
    if (latest.price !== undefined) info.renewalPrice = latest.price;
    if (latest.currency !== undefined) info.currency = latest.currency;
    return info;
  }

  private sign(payload: object): string {
    return signAppleJws(payload, this.chain);
  }

  private signTransaction(tx: FakeTransaction): string {
    const { orderId: _orderId, account: _account, ...payload } = tx;
    return this.sign({ ...payload, signedDate: this.now() });
  }

  /** The account's transactions in an environment, oldest first. */
  private accountTransactions(account: string, environment: AppleEnvironment): FakeTransaction[] {
    return [...this.transactions.values()]
      .filter((t) => t.account === account && t.environment === environment)
      .sort(byPurchaseDate);
  }

  private makeReceipt(r: StoredReceipt): string {
    const bytes = pkcs7Container(Buffer.concat([RECEIPT_MAGIC, randomBytes(48)]));
    this.receipts.set(bytes.toString('hex'), r);
    return bytes.toString('base64');
  }

  private buildNotification(options: NotifyOptions): { signedPayload: string; notificationUUID: string } {
    const notificationUUID = randomUUID();
    const now = this.now();
    let data: Record<string, unknown>;
    if (options.notificationType === 'TEST') {
      data = { bundleId: this.bundleId, bundleVersion: '1', environment: options.environment ?? 'Sandbox' };
    } else {
      let tx: FakeTransaction;
      if (options.transactionId !== undefined) tx = this.requireTransaction(options.transactionId);
      else if (options.originalTransactionId !== undefined) tx = this.latest(this.requireLineage(options.originalTransactionId));
      else throw new Error('notify needs transactionId or originalTransactionId (except for TEST)');
      const l = this.requireLineage(tx.originalTransactionId);
      data = { bundleId: this.bundleId, bundleVersion: '1', environment: tx.environment, signedTransactionInfo: this.signTransaction(tx) };
      if (l.type === 'Auto-Renewable Subscription') {
        data['signedRenewalInfo'] = this.sign({ ...this.renewalInfo(l), signedDate: now });
        data['status'] = this.status(l);
      }
    }
    if (this.appAppleId !== undefined) data = { appAppleId: this.appAppleId, ...data };
    const payload: Record<string, unknown> = { notificationType: options.notificationType };
    if (options.subtype !== undefined) payload['subtype'] = options.subtype;
    Object.assign(payload, { notificationUUID, data, version: '2.0', signedDate: now });
    return { signedPayload: this.sign(payload), notificationUUID };
  }

  // --- HTTP ------------------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';
    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch {
      sendJson(res, 413, { errorCode: 4000000, errorMessage: 'Request body too large.' });
      return;
    }
    if (url.pathname.startsWith('/_fake/')) return this.handleScripting(method, url.pathname, raw, res);

    const text = raw.toString('utf8');
    let body: unknown = undefined;
    if (text !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    this.calls.push({ method, path: url.pathname, query: queryRecord(url.searchParams), body });

    if (url.pathname === '/verifyReceipt' || url.pathname === '/sandbox/verifyReceipt') {
      const endpoint: AppleEnvironment = url.pathname === '/verifyReceipt' ? 'Production' : 'Sandbox';
      const failure = takeFailure(this.receiptFailures, (p) => p.endpoint === undefined || p.endpoint === endpoint) ?? this.randomFailure();
      if (failure !== undefined) {
        if ('hangMs' in failure) return this.hang(res, failure.hangMs, () => res.writeHead(503).end());
        if ('httpStatus' in failure) {
          res.writeHead(failure.httpStatus, { 'content-type': 'text/html' }).end('<html><body>Service Unavailable</body></html>');
          return;
        }
        return sendJson(res, 200, receiptError(failure.status));
      }
      // Apple answers HTTP 200 with a status code in the body, even for a wrong method.
      if (method !== 'POST') return sendJson(res, 200, { status: 21000 });
      return sendJson(res, 200, this.verifyReceipt(endpoint, body));
    }

    const api = API_BASE_RE.exec(url.pathname);
    if (api === null) {
      res.writeHead(404).end();
      return;
    }
    if (!(await this.authorized(req.headers.authorization))) {
      res.writeHead(401).end(); // Apple's 401 has no JSON body
      return;
    }
    const failure = takeFailure(this.apiFailures) ?? this.randomFailure();
    if (failure !== undefined) {
      if ('hangMs' in failure) return this.hang(res, failure.hangMs, () => sendJson(res, 503, API_ERRORS[503]));
      const errorCode = failure.errorCode ?? API_ERRORS[failure.httpStatus]?.errorCode;
      if (errorCode === undefined || failure.httpStatus === 401) {
        res.writeHead(failure.httpStatus).end();
        return;
      }
      return sendJson(res, failure.httpStatus, { errorCode, errorMessage: API_ERROR_MESSAGES[errorCode] ?? 'An error occurred.' });
    }
    const environment: AppleEnvironment = api[1] === 'production' ? 'Production' : 'Sandbox';
    try {
      if (method !== 'GET') throw new ApiError(404);
      sendJson(res, 200, this.routeApi(environment, api[2]!, url.searchParams));
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (err.body === undefined) res.writeHead(err.httpStatus).end();
      else sendJson(res, err.httpStatus, err.body);
    }
  }

  private hang(res: ServerResponse, ms: number, finish: () => void): void {
    const timer = setTimeout(() => {
      this.hangs.delete(timer);
      if (!res.destroyed) finish();
    }, ms);
    this.hangs.add(timer);
    res.on('close', () => {
      clearTimeout(timer);
      this.hangs.delete(timer);
    });
  }

  /** ES256 JWT from the in-app purchase key: kid, iss, aud appstoreconnect-v1, bid, at most one hour long. */
  private async authorized(header: string | undefined): Promise<boolean> {
    const token = /^Bearer (\S+)$/.exec(header ?? '')?.[1];
    if (token === undefined) return false;
    try {
      const { payload, protectedHeader } = await jwtVerify(token, this.apiPublicKey, {
        algorithms: ['ES256'],
        issuer: this.apiKey.issuerId,
        audience: 'appstoreconnect-v1',
        requiredClaims: ['iat', 'exp'],
        maxTokenAge: 3600,
      });
      return protectedHeader.kid === this.apiKey.keyId && payload['bid'] === this.bundleId && payload.exp! - payload.iat! <= 3600;
    } catch {
      return false;
    }
  }

  private routeApi(environment: AppleEnvironment, path: string, query: URLSearchParams): unknown {
    let m = SUBSCRIPTIONS_RE.exec(path);
    if (m !== null) return this.subscriptionStatuses(environment, this.apiTransaction(environment, m[1]!), query);
    m = TRANSACTION_RE.exec(path);
    if (m !== null) return { signedTransactionInfo: this.signTransaction(this.apiTransaction(environment, m[1]!)) };
    m = HISTORY_RE.exec(path);
    if (m !== null) return this.history(environment, this.apiTransaction(environment, m[1]!), query);
    m = LOOKUP_RE.exec(path);
    if (m !== null) {
      const orderId = safeDecode(m[1]!);
      const found = [...this.transactions.values()].filter((t) => t.orderId === orderId && t.environment === environment);
      return { status: found.length > 0 ? 0 : 1, signedTransactions: found.map((t) => this.signTransaction(t)) };
    }
    throw new ApiError(404);
  }

  /** A transaction visible under this environment's base URL, or Apple's error. */
  private apiTransaction(environment: AppleEnvironment, rawId: string): FakeTransaction {
    const id = safeDecode(rawId);
    if (!/^\d+$/.test(id)) throw new ApiError(400, { errorCode: 4000006, errorMessage: 'Invalid transaction id.' });
    const tx = this.transactions.get(id);
    if (tx === undefined || tx.environment !== environment) throw transactionNotFound();
    return tx;
  }

  /** Like Apple: every auto-renewable subscription of the customer, grouped by subscription group. */
  private subscriptionStatuses(environment: AppleEnvironment, tx: FakeTransaction, query: URLSearchParams): unknown {
    const wanted = query.getAll('status').map(Number);
    const groups = new Map<string, Array<Record<string, unknown>>>();
    for (const l of this.lineages.values()) {
      if (l.account !== tx.account || l.environment !== environment || l.type !== 'Auto-Renewable Subscription') continue;
      const status = this.status(l);
      if (wanted.length > 0 && !wanted.includes(status)) continue;
      const latest = this.latest(l);
      const group = latest.subscriptionGroupIdentifier ?? DEFAULT_SUBSCRIPTION_GROUP;
      const items = groups.get(group) ?? [];
      items.push({
        status,
        originalTransactionId: l.originalTransactionId,
        signedTransactionInfo: this.signTransaction(latest),
        signedRenewalInfo: this.sign({ ...this.renewalInfo(l), signedDate: this.now() }),
      });
      groups.set(group, items);
    }
    return {
      environment,
      bundleId: this.bundleId,
      ...(this.appAppleId !== undefined ? { appAppleId: this.appAppleId } : {}),
      data: [...groups].map(([subscriptionGroupIdentifier, lastTransactions]) => ({ subscriptionGroupIdentifier, lastTransactions })),
    };
  }

  /** The customer's transactions, 20 a page; `revision` is the cursor Apple hands back. */
  private history(environment: AppleEnvironment, tx: FakeTransaction, query: URLSearchParams): unknown {
    let all = this.accountTransactions(tx.account, environment);
    const productIds = query.getAll('productId');
    if (productIds.length > 0) all = all.filter((t) => productIds.includes(t.productId));
    const types = query.getAll('productType').map((p) => PRODUCT_TYPE_FILTER[p]);
    if (types.length > 0) all = all.filter((t) => types.includes(t.type));
    const groups = query.getAll('subscriptionGroupIdentifier');
    if (groups.length > 0) all = all.filter((t) => t.subscriptionGroupIdentifier !== undefined && groups.includes(t.subscriptionGroupIdentifier));
    const ownership = query.get('inAppOwnershipType');
    if (ownership !== null) all = all.filter((t) => t.inAppOwnershipType === ownership);
    const revoked = query.get('revoked');
    if (revoked !== null) all = all.filter((t) => (t.revocationDate !== undefined) === (revoked === 'true'));
    const start = query.get('startDate');
    if (start !== null) all = all.filter((t) => t.purchaseDate >= Number(start));
    const end = query.get('endDate');
    if (end !== null) all = all.filter((t) => t.purchaseDate < Number(end));
    if (query.get('sort') === 'DESCENDING') all.reverse();

    let offset = 0;
    const revision = query.get('revision');
    if (revision !== null) {
      const m = /^rev:(\d+)$/.exec(Buffer.from(revision, 'base64url').toString('utf8'));
      if (m === null) throw new ApiError(400, { errorCode: 4000005, errorMessage: 'Invalid request revision.' });
      offset = Number(m[1]);
    }
    const page = all.slice(offset, offset + HISTORY_PAGE_SIZE);
    const next = offset + page.length;
    return {
      revision: Buffer.from(`rev:${next}`).toString('base64url'),
      bundleId: this.bundleId,
      ...(this.appAppleId !== undefined ? { appAppleId: this.appAppleId } : {}),
      environment,
      hasMore: next < all.length,
      signedTransactions: page.map((t) => this.signTransaction(t)),
    };
  }

  private verifyReceipt(endpoint: AppleEnvironment, body: unknown): Record<string, unknown> {
    const req = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const data = req['receipt-data'];
    if (typeof data !== 'string') return { status: 21002 };
    const compact = data.replace(/\s+/g, ''); // clients send base64 with line breaks too
    if (compact === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact) || compact.length % 4 !== 0) return { status: 21002 };
    const receipt = this.receipts.get(Buffer.from(compact, 'base64').toString('hex'));
    if (receipt === undefined) return { status: 21003 };
    if (endpoint === 'Production' && receipt.environment === 'Sandbox') return { status: 21007 };
    if (endpoint === 'Sandbox' && receipt.environment === 'Production') return { status: 21008 };
    if (this.sharedSecret !== undefined && req['password'] !== this.sharedSecret) return { status: 21004 };

    const now = this.now();
    const current = this.accountTransactions(receipt.account, receipt.environment);
    const inApp = receipt.transactionIds.map((id) => this.transactions.get(id)!);
    const out: Record<string, unknown> = {
      status: 0,
      environment: receipt.environment,
      receipt: {
        receipt_type: receipt.environment === 'Production' ? 'Production' : 'ProductionSandbox',
        adam_id: this.appAppleId ?? 0,
        app_item_id: this.appAppleId ?? 0,
        bundle_id: this.bundleId,
        application_version: '1',
        download_id: 0,
        version_external_identifier: 0,
        receipt_creation_date: appleDate(receipt.createdAt),
        receipt_creation_date_ms: String(receipt.createdAt),
        request_date: appleDate(now),
        request_date_ms: String(now),
        original_purchase_date: appleDate(receipt.createdAt),
        original_purchase_date_ms: String(receipt.createdAt),
        original_application_version: '1.0',
        in_app: ordered(inApp, receipt.order).map(receiptEntry),
      },
    };
    // Like Apple, the latest_* fields come only with receipts that hold auto-renewable subscriptions.
    const subscriptionLineages = [...this.lineages.values()].filter(
      (l) => l.account === receipt.account && l.environment === receipt.environment && l.type === 'Auto-Renewable Subscription',
    );
    if (subscriptionLineages.length > 0) {
      const latestIds = new Set(subscriptionLineages.map((l) => l.transactionIds.at(-1)!));
      // exclude-old-transactions: only the latest transaction of each subscription (plus other products).
      const latestInfo =
        req['exclude-old-transactions'] === true
          ? current.filter((t) => t.type !== 'Auto-Renewable Subscription' || latestIds.has(t.transactionId))
          : current;
      out['latest_receipt_info'] = ordered(latestInfo, receipt.order).map(receiptEntry);
      out['pending_renewal_info'] = subscriptionLineages.map((l) => pendingRenewalEntry(l, this.latest(l)));
      out['latest_receipt'] = this.makeReceipt({ ...receipt, createdAt: now, transactionIds: current.map((t) => t.transactionId) });
    }
    return out;
  }

  // --- standalone scripting --------------------------------------------------------------------------------

  private handleScripting(method: string, path: string, raw: Buffer, res: ServerResponse): void {
    if (method === 'GET') {
      if (path === '/_fake/calls') return sendJson(res, 200, this.calls);
      const m = /^\/_fake\/(transactions|lineages)\/([^/]+)$/.exec(path);
      if (m !== null) {
        const id = safeDecode(m[2]!);
        const found = m[1] === 'transactions' ? this.transaction(id) : this.lineage(id);
        return found === undefined ? sendJson(res, 404, { error: 'not found' }) : sendJson(res, 200, found);
      }
      return sendJson(res, 404, { error: 'unknown fake endpoint' });
    }
    if (method !== 'POST') return sendJson(res, 405, { error: 'POST only' });
    let b: Record<string, unknown>;
    try {
      b = JSON.parse(raw.toString('utf8') || '{}') as Record<string, unknown>;
    } catch {
      return sendJson(res, 400, { error: 'body must be JSON' });
    }
    const str = (k: string): string => {
      const v = b[k];
      if (typeof v !== 'string') throw new Error(`"${k}" must be a string`);
      return v;
    };
    const withSigned = (tx: FakeTransaction): unknown => ({ transaction: tx, signedTransaction: this.signedTransaction(tx.transactionId) });
    const action = path.slice('/_fake/'.length);
    const handlers: Record<string, () => unknown> = {
      buy: () => {
        const { purchaseDate, ...rest } = b; // JSON carries the date as a string
        const options = rest as unknown as BuyOptions;
        return withSigned(this.buy(typeof purchaseDate === 'string' ? { ...options, purchaseDate: new Date(purchaseDate) } : options));
      },
      renew: () => withSigned(this.renew(str('originalTransactionId'))),
      recover: () => withSigned(this.recover(str('originalTransactionId'))),
      upgrade: () => withSigned(this.upgrade(str('originalTransactionId'), str('productId'))),
      extend: () => withSigned(this.extend(str('originalTransactionId'), Number(b['days']))),
      failToRenew: () => this.failToRenew(str('originalTransactionId'), typeof b['graceMs'] === 'number' ? { graceMs: b['graceMs'] } : {}),
      setAutoRenew: () => this.setAutoRenew(str('originalTransactionId'), b['on'] === true),
      expire: () => this.expire(str('originalTransactionId'), Number(b['expirationIntent'] ?? 1) as ExpirationIntent),
      familyRevoke: () => this.familyRevoke(str('originalTransactionId')),
      refund: () => withSigned(this.refund(str('transactionId'), b['revocationReason'] === 1 ? 1 : 0)),
      reverseRefund: () => withSigned(this.reverseRefund(str('transactionId'))),
      appReceipt: () => ({ receipt: this.appReceipt(b as AppReceiptOptions) }),
      signedRenewalInfo: () => ({ signedRenewalInfo: this.signedRenewalInfo(str('originalTransactionId')) }),
    };
    if (action === 'notify') {
      this.notify(b as unknown as NotifyOptions).then(
        (r) => sendJson(res, 200, r),
        (err: unknown) => sendJson(res, 400, { error: (err as Error).message }),
      );
      return;
    }
    const handler = handlers[action];
    if (handler === undefined) return sendJson(res, 404, { error: 'unknown fake endpoint' });
    try {
      sendJson(res, 200, handler() ?? { ok: true });
    } catch (err) {
      sendJson(res, 400, { error: (err as Error).message });
    }
  }
}

function takeFailure<F>(queue: PendingFailure<F>[], applies: (p: PendingFailure<F>) => boolean = () => true): F | undefined {
  const index = queue.findIndex(applies);
  const pending = queue[index];
  if (pending === undefined) return undefined;
  pending.remaining--;
  if (pending.remaining <= 0) queue.splice(index, 1);
  return pending.failure;
}

/** DER: tag, length (short form, or long form for 128 bytes and more), content. */
function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const long: number[] = [];
  for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) long.unshift(rest % 256);
  return Buffer.concat([Buffer.from([tag, ...(n < 0x80 ? [n] : [0x80 | long.length, ...long])]), content]);
}

/** Shaped like an app receipt: SEQUENCE { signedData OID, [0] { OCTET STRING } }, the fake's receipt bytes inside. */
export function pkcs7Container(content: Buffer): Buffer {
  return der(0x30, Buffer.concat([PKCS7_SIGNED_DATA_OID, der(0xa0, der(0x04, content))]));
}

/** Apple marks the temporary verifyReceipt errors retryable. */
function receiptError(status: number): Record<string, unknown> {
  const retryable = status === 21002 || status === 21005 || status === 21009 || (status >= 21100 && status <= 21199);
  return retryable ? { status, 'is-retryable': true } : { status };
}

function byPurchaseDate(a: FakeTransaction, b: FakeTransaction): number {
  return a.purchaseDate - b.purchaseDate || Number(a.transactionId) - Number(b.transactionId);
}

/** 'shuffled' never comes out in either sorted order (when there are enough entries to avoid it). */
function ordered(txs: FakeTransaction[], order: ReceiptOrder): FakeTransaction[] {
  const asc = [...txs].sort(byPurchaseDate);
  if (order === 'asc') return asc;
  const desc = [...asc].reverse();
  if (order === 'desc' || asc.length < 2) return desc;
  const same = (a: FakeTransaction[], b: FakeTransaction[]): boolean => a.every((t, i) => t === b[i]);
  for (;;) {
    const s = [...asc];
    for (let i = s.length - 1; i > 0; i--) {
      const j = randomInt(i + 1);
      [s[i], s[j]] = [s[j]!, s[i]!];
    }
    if (!same(s, asc) && (asc.length < 3 || !same(s, desc))) return s;
  }
}

/** verifyReceipt's string-typed transaction entry (in_app / latest_receipt_info). */
function receiptEntry(t: FakeTransaction): Record<string, string> {
  const intro = t.offerType === 1;
  const e: Record<string, string> = {
    quantity: String(t.quantity),
    product_id: t.productId,
    transaction_id: t.transactionId,
    original_transaction_id: t.originalTransactionId,
    purchase_date: appleDate(t.purchaseDate),
    purchase_date_ms: String(t.purchaseDate),
    original_purchase_date: appleDate(t.originalPurchaseDate),
    original_purchase_date_ms: String(t.originalPurchaseDate),
    is_trial_period: String(intro && (t.price ?? 0) === 0),
    in_app_ownership_type: t.inAppOwnershipType,
  };
  if (t.expiresDate !== undefined) {
    e['expires_date'] = appleDate(t.expiresDate);
    e['expires_date_ms'] = String(t.expiresDate);
    e['is_in_intro_offer_period'] = String(intro && (t.price ?? 0) > 0);
  }
  if (t.webOrderLineItemId !== undefined) e['web_order_line_item_id'] = t.webOrderLineItemId;
  if (t.subscriptionGroupIdentifier !== undefined) e['subscription_group_identifier'] = t.subscriptionGroupIdentifier;
  if (t.revocationDate !== undefined) {
    e['cancellation_date'] = appleDate(t.revocationDate);
    e['cancellation_date_ms'] = String(t.revocationDate);
    e['cancellation_reason'] = String(t.revocationReason ?? 0);
  }
  if (t.isUpgraded === true) e['is_upgraded'] = 'true';
  if (t.appAccountToken !== undefined) e['app_account_token'] = t.appAccountToken;
  return e;
}

function pendingRenewalEntry(l: Lineage, latest: FakeTransaction): Record<string, string> {
  const e: Record<string, string> = {
    auto_renew_product_id: l.autoRenewProductId,
    product_id: latest.productId,
    original_transaction_id: l.originalTransactionId,
    auto_renew_status: String(l.autoRenewStatus),
    is_in_billing_retry_period: l.isInBillingRetryPeriod ? '1' : '0',
  };
  if (l.expirationIntent !== undefined) e['expiration_intent'] = String(l.expirationIntent);
  if (l.gracePeriodExpiresDate !== undefined) {
    e['grace_period_expires_date'] = appleDate(l.gracePeriodExpiresDate);
    e['grace_period_expires_date_ms'] = String(l.gracePeriodExpiresDate);
  }
  return e;
}

/** verifyReceipt's date strings: `2024-05-01 12:00:00 Etc/GMT`. */
function appleDate(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' Etc/GMT');
}

function queryRecord(params: URLSearchParams): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const key of new Set(params.keys())) {
    const all = params.getAll(key);
    out[key] = all.length === 1 ? all[0]! : all;
  }
  return out;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > MAX_BODY_BYTES) throw new Error('body too large');
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** Standalone: start on PORT (default 4710), write the root certificate and .p8 key, print the env to use. */
export async function main(): Promise<FakeAppStore> {
  const port = Number(process.env['PORT'] ?? 4710);
  const bundleId = process.env['BUNDLE_ID'] ?? 'com.example.app';
  const sharedSecret = randomBytes(16).toString('hex');
  const fake = await FakeAppStore.start({ port, bundleId, sharedSecret, notificationUrl: process.env['NOTIFICATION_URL'] });
  const dir = await mkdtemp(join(tmpdir(), 'fake-app-store-'));
  const rootFile = join(dir, 'FakeAppleRootCA-G3.cer');
  const keyFile = join(dir, `AuthKey_${fake.apiKey.keyId}.p8`);
  await writeFile(rootFile, fake.rootCertificateDer);
  await writeFile(keyFile, fake.apiKey.privateKeyPem, { mode: 0o600 });
  const lines = [
    `Fake App Store listening on ${fake.url}`,
    '',
    'Point the service at it:',
    `  export APPLE_BUNDLE_ID=${bundleId}`,
    `  export APPLE_ENVIRONMENT=SANDBOX`,
    `  export APPLE_ROOT_CERTIFICATES=${rootFile}`,
    `  export APPLE_VERIFY_RECEIPT_URL=${fake.verifyReceiptUrl}`,
    `  export APPLE_VERIFY_RECEIPT_SANDBOX_URL=${fake.sandboxVerifyReceiptUrl}`,
    `  export APPLE_SHARED_SECRET=${sharedSecret}`,
    `  export APPLE_API_URL=${fake.apiUrl('Production')}`,
    `  export APPLE_API_SANDBOX_URL=${fake.apiUrl('Sandbox')}`,
    `  export APPLE_KEY_ID=${fake.apiKey.keyId}`,
    `  export APPLE_ISSUER_ID=${fake.apiKey.issuerId}`,
    `  export APPLE_PRIVATE_KEY_FILE=${keyFile}`,
    '',
    'Script it:',
    `  curl -X POST ${fake.url}/_fake/buy -H 'content-type: application/json' -d '{"productId":"com.example.app.pro.monthly","type":"Auto-Renewable Subscription"}'`,
    `  curl -X POST ${fake.url}/_fake/renew -H 'content-type: application/json' -d '{"originalTransactionId":"ID"}'`,
    `  curl -X POST ${fake.url}/_fake/refund -H 'content-type: application/json' -d '{"transactionId":"ID","revocationReason":1}'`,
    `  curl -X POST ${fake.url}/_fake/appReceipt -H 'content-type: application/json' -d '{"account":"default"}'`,
    `  curl -X POST ${fake.url}/_fake/notify -H 'content-type: application/json' -d '{"notificationType":"DID_RENEW","originalTransactionId":"ID","url":"http://127.0.0.1:4000/notifications/apple"}'`,
    '  (also: recover, upgrade, extend, failToRenew, setAutoRenew, expire, familyRevoke, reverseRefund, signedRenewalInfo)',
    `  curl ${fake.url}/_fake/calls`,
    `  curl ${fake.url}/_fake/lineages/ID`,
  ];
  serveUntilSignal(lines, () => fake.close());
  return fake;
}

runWhenEntryPoint(import.meta.url, main);
