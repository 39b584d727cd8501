// Typed configuration from environment variables and an optional config file (JSON or YAML).
// Environment variables win over the file. Every problem is reported as one line naming the key.
import { readFileSync } from 'node:fs';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_JOB_TIMING, type JobTiming } from '../domain/job-timing.js';
import type { RecheckPolicy } from '../domain/recheck.js';

export interface AuthConfig {
  /** Server API keys: full access. Empty with no JWT settings means local development mode. */
  apiKeys: readonly string[];
  jwtSecret: string | null;
  jwksUrl: string | null;
  jwtIssuer: string | null;
  jwtAudience: string | null;
}

export interface GoogleServiceAccount {
  client_email: string;
  private_key: string;
  [key: string]: unknown;
}

export interface GoogleConfig {
  serviceAccount: GoogleServiceAccount;
  /** Where the service account came from, for messages that name the setting to fix. */
  serviceAccountSource: 'GOOGLE_SERVICE_ACCOUNT_KEY_FILE' | 'GOOGLE_SERVICE_ACCOUNT_JSON';
  packageNames: readonly string[];
  /** Play Console license public keys (base64 DER) by package name, for the optional client-proof check. */
  licenseKeys: Readonly<Record<string, string>>;
  apiRootUrl: string;
  tokenUrl: string;
  requestTimeoutMs: number;
  /** Pub/Sub push authentication; null accepts unauthenticated pushes, which then never revoke anything
   *  without confirmation from Google's API. */
  pubsub: { audience: string; jwksUrl: string; issuers: readonly string[]; serviceAccountEmail: string } | null;
}

export type AppleEnvironment = 'PRODUCTION' | 'SANDBOX';

export interface AppleConfig {
  bundleId: string;
  /** The app's Apple ID (App Store Connect, App Information); Apple requires it to verify production data. */
  appAppleId: number | null;
  /** Which App Store environment this deployment serves. */
  environment: AppleEnvironment;
  /** A PRODUCTION deployment also accepts sandbox purchases (App Review buys with sandbox accounts in
   *  production builds); they are recorded with environment SANDBOX. */
  acceptSandbox: boolean;
  /** DER bytes of the trusted Apple root certificates. */
  rootCertificates: readonly Buffer[];
  /** Revocation (OCSP) checks and certificate dates as of now, through Apple's own verifier; needs Apple's OCSP
   *  responders reachable. Off: certificate dates are checked at the payload's signedDate. */
  onlineChecks: boolean;
  /** Legacy verifyReceipt */
  sharedSecret: string | null;
  verifyReceiptUrl: string;
  verifyReceiptSandboxUrl: string;
  /** App Store Server API (in-app purchase key); null when not configured. */
  api: { keyId: string; issuerId: string; privateKey: string; productionUrl: string; sandboxUrl: string } | null;
  requestTimeoutMs: number;
}

/** What happens when a customer submits a purchase another customer already owns (subscriptions, non-consumables). */
export const TRANSFER_POLICIES = ['TRANSFER', 'TRANSFER_IF_NO_ACTIVE', 'KEEP_WITH_ORIGINAL'] as const;
export type TransferPolicy = (typeof TRANSFER_POLICIES)[number];

export interface PurchaseRules {
  transferPolicy: TransferPolicy;
  /** Sandbox purchases (testers share sandbox accounts) may follow their own policy. */
  sandboxTransferPolicy: TransferPolicy;
  /** An order not paid within this time is EXPIRED (a late purchase carrying its token still fulfils it). */
  orderTtlMs: number;
  /** A purchase without an order token fulfils the customer's open order for the product created this long before. */
  orderMatchWindowMs: number;
  /** How long a verified proof is kept after its last submission (0: forever); refused ones are kept for support. */
  verifiedProofRetentionMs: number;
}

export interface WebhookConfig {
  /** Where every event is POSTed (each URL gets every event). */
  urls: readonly string[];
  /** HMAC-SHA256 key for the x-iap-signature header. Never logged. */
  secret: string;
  /** Per-attempt timeout; a timeout counts as a failed attempt and is retried. */
  timeoutMs: number;
}

export interface RevalidationConfig {
  batchSize: number;
  concurrency: number;
  /** Scheduled re-checks per minute per store, across all instances. */
  requestsPerMinute: { APP_STORE: number; PLAY_STORE: number };
}

export interface AppConfig {
  databaseUrl: string | null;
  dataDir: string;
  host: string;
  port: number;
  catalogPath: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  dbPoolMax: number;
  /** PostgreSQL statement_timeout on every pooled connection (0: off); the client also stops waiting for an answer
   *  shortly after it, so a frozen server fails requests instead of hanging them. */
  dbStatementTimeoutMs: number;
  /** Opening a PostgreSQL connection, or waiting for a free one in a pool. */
  dbConnectTimeoutMs: number;
  /** /readyz answers 503 when the database has not answered within this. */
  readinessTimeoutMs: number;
  graphqlMaxDepth: number;
  graphqlMaxComplexity: number;
  /** Schema introspection and "did you mean" suggestions in GraphQL errors. */
  graphqlIntrospection: boolean;
  /** A port of its own for /metrics (then not served on PORT); null: on PORT, behind metricsToken or a server key. */
  metricsPort: number | null;
  /** Bearer token that may read /metrics on PORT (Prometheus), besides the server API keys. */
  metricsToken: string | null;
  /** Bytes all request bodies being read at once may hold. */
  maxBufferedBodyBytes: number;
  shutdownTimeoutMs: number;
  /** How long an entitlement read may be served from this instance's cache before it is re-read. */
  entitlementCacheTtlMs: number;
  /** Memory bound of that cache, in bytes (estimated per entry). */
  entitlementCacheMaxBytes: number;
  auth: AuthConfig;
  /** Google Play; null when not configured (proofs for it answer STORE_NOT_CONFIGURED). */
  google: GoogleConfig | null;
  /** Apple App Store; null when not configured (proofs for it answer STORE_NOT_CONFIGURED). */
  apple: AppleConfig | null;
  purchases: PurchaseRules;
  /** Outbound webhooks; null when WEBHOOK_URLS is not set. */
  webhooks: WebhookConfig | null;
  /** Whether this instance runs the background jobs (retries, acknowledgements). */
  schedulerEnabled: boolean;
  /** How often the frequent jobs (retries, acknowledgements, notifications) look for due work. */
  schedulerIntervalSeconds: number;
  /** Retry backoff and claim leases of background work. */
  jobs: JobTiming;
  /** When stored subscriptions are re-checked with their stores. */
  recheck: RecheckPolicy;
  /** How scheduled re-checks use the stores: batch size, concurrency and requests per minute per store. */
  revalidation: RevalidationConfig;
  /** True when no credentials are configured: bound to loopback, every caller is treated as the server. */
  devMode: boolean;
}

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    problem: string,
  ) {
    super(`config ${key}: ${problem}`);
    this.name = 'ConfigError';
  }
}

/** The keys accepted, with their environment variable names (the config file uses the same names). */
export const CONFIG_KEYS = [
  'DATABASE_URL',
  'DATA_DIR',
  'HOST',
  'PORT',
  'CATALOG_PATH',
  'LOG_LEVEL',
  'DB_POOL_MAX',
  'DB_STATEMENT_TIMEOUT_MS',
  'DB_CONNECT_TIMEOUT_MS',
  'READINESS_TIMEOUT_MS',
  'GRAPHQL_MAX_DEPTH',
  'GRAPHQL_MAX_COMPLEXITY',
  'GRAPHQL_INTROSPECTION',
  'METRICS_PORT',
  'METRICS_TOKEN',
  'MAX_BUFFERED_BODIES_MB',
  'SHUTDOWN_TIMEOUT_MS',
  'ENTITLEMENT_CACHE_TTL_MS',
  'ENTITLEMENT_CACHE_MAX_MB',
  'API_KEYS',
  'JWT_SECRET',
  'JWT_JWKS_URL',
  'JWT_ISSUER',
  'JWT_AUDIENCE',
  'SCHEDULER_ENABLED',
  'SCHEDULER_INTERVAL_SECONDS',
  'RETRY_BASE_DELAY_MS',
  'RETRY_MAX_DELAY_MS',
  'JOB_LEASE_SECONDS',
  'RECHECK_AFTER_EXPIRY_MINUTES',
  'RECHECK_BILLING_RETRY_MINUTES',
  'RECHECK_SWEEP_HOURS',
  'RECHECK_AFTER_NOTIFICATION_SECONDS',
  'RECHECK_BATCH_SIZE',
  'STORE_CONCURRENCY',
  'APPLE_REQUESTS_PER_MINUTE',
  'GOOGLE_REQUESTS_PER_MINUTE',
  'GOOGLE_SERVICE_ACCOUNT_KEY_FILE',
  'GOOGLE_SERVICE_ACCOUNT_JSON',
  'GOOGLE_PACKAGE_NAMES',
  'GOOGLE_LICENSE_KEYS',
  'GOOGLE_API_ROOT_URL',
  'GOOGLE_TOKEN_URL',
  'GOOGLE_REQUEST_TIMEOUT_MS',
  'GOOGLE_PUBSUB_AUDIENCE',
  'GOOGLE_PUBSUB_JWKS_URL',
  'GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL',
  'APPLE_BUNDLE_ID',
  'APPLE_APP_APPLE_ID',
  'APPLE_ENVIRONMENT',
  'APPLE_ACCEPT_SANDBOX',
  'APPLE_ROOT_CERTIFICATES',
  'APPLE_ONLINE_CHECKS',
  'APPLE_SHARED_SECRET',
  'APPLE_VERIFY_RECEIPT_URL',
  'APPLE_VERIFY_RECEIPT_SANDBOX_URL',
  'APPLE_KEY_ID',
  'APPLE_ISSUER_ID',
  'APPLE_PRIVATE_KEY_FILE',
  'APPLE_PRIVATE_KEY',
  'APPLE_API_URL',
  'APPLE_API_SANDBOX_URL',
  'APPLE_REQUEST_TIMEOUT_MS',
  'WEBHOOK_URLS',
  'WEBHOOK_SECRET',
  'WEBHOOK_TIMEOUT_MS',
  'RECEIPT_TRANSFER_POLICY',
  'RECEIPT_TRANSFER_POLICY_SANDBOX',
  'ORDER_TTL_MINUTES',
  'VERIFIED_PROOF_RETENTION_DAYS',
  'ORDER_MATCH_WINDOW_MINUTES',
] as const;
type Key = (typeof CONFIG_KEYS)[number];
type Source = Partial<Record<string, unknown>>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Reads the optional config file named by CONFIG_FILE. Its keys are the same as the environment's. */
export function readConfigFile(path: string): Source {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('CONFIG_FILE', `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new ConfigError('CONFIG_FILE', `${path} is not valid JSON or YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError('CONFIG_FILE', `${path} must hold a mapping of keys to values`);
  }
  for (const key of Object.keys(parsed)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
      throw new ConfigError(key, `unknown key in ${path}; known keys: ${CONFIG_KEYS.join(', ')}`);
    }
  }
  return parsed as Source;
}

/** Builds the config from environment variables (and CONFIG_FILE when set). Throws ConfigError. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const file = env.CONFIG_FILE ? readConfigFile(env.CONFIG_FILE) : {};
  const merged: Source = { ...file };
  for (const key of CONFIG_KEYS) {
    const value = env[key];
    if (value !== undefined && value !== '') merged[key] = value;
  }
  return parseConfig(merged);
}

export function parseConfig(src: Source): AppConfig {
  const auth: AuthConfig = {
    apiKeys: list(src, 'API_KEYS').map((k) => {
      if (k.length < 24) throw new ConfigError('API_KEYS', 'each key must be at least 24 characters long');
      return k;
    }),
    jwtSecret: optionalString(src, 'JWT_SECRET'),
    jwksUrl: optionalUrl(src, 'JWT_JWKS_URL'),
    jwtIssuer: optionalString(src, 'JWT_ISSUER'),
    jwtAudience: optionalString(src, 'JWT_AUDIENCE'),
  };
  if (auth.jwtSecret !== null && auth.jwtSecret.length < 32) {
    throw new ConfigError('JWT_SECRET', 'must be at least 32 characters long (HS256 needs 256 bits)');
  }
  if (auth.jwtSecret !== null && auth.jwksUrl !== null) {
    throw new ConfigError('JWT_SECRET', 'set either JWT_SECRET or JWT_JWKS_URL, not both');
  }
  // A key set is often shared (an identity provider signs tokens for many apps): without both checks, a token
  // minted for another app would pass.
  if (auth.jwksUrl !== null && auth.jwtIssuer === null) throw new ConfigError('JWT_ISSUER', 'is required with JWT_JWKS_URL');
  if (auth.jwksUrl !== null && auth.jwtAudience === null) throw new ConfigError('JWT_AUDIENCE', 'is required with JWT_JWKS_URL');
  const devMode = auth.apiKeys.length === 0 && auth.jwtSecret === null && auth.jwksUrl === null;
  const host = optionalString(src, 'HOST') ?? (devMode ? '127.0.0.1' : '0.0.0.0');
  if (host !== 'localhost' && isIP(host) === 0) throw new ConfigError('HOST', `"${host}" is not an IP address or localhost`);
  if (devMode && !isLoopback(host)) {
    throw new ConfigError(
      'HOST',
      `"${host}" is not a loopback address, and no API_KEYS, JWT_SECRET or JWT_JWKS_URL is set: configure credentials before listening beyond 127.0.0.1`,
    );
  }
  const databaseUrl = optionalString(src, 'DATABASE_URL');
  if (databaseUrl !== null && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL', 'must start with postgres:// or postgresql://');
  }
  return {
    databaseUrl,
    dataDir: optionalString(src, 'DATA_DIR') ?? './data',
    host,
    port: int(src, 'PORT', 4000, 0, 65535),
    catalogPath: optionalString(src, 'CATALOG_PATH') ?? './examples/catalog.yaml',
    logLevel: oneOf(src, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    dbPoolMax: int(src, 'DB_POOL_MAX', 10, 1, 1000),
    dbStatementTimeoutMs: statementTimeout(src),
    dbConnectTimeoutMs: int(src, 'DB_CONNECT_TIMEOUT_MS', 5_000, 100, 120_000),
    readinessTimeoutMs: int(src, 'READINESS_TIMEOUT_MS', 2_000, 100, 60_000),
    graphqlMaxDepth: int(src, 'GRAPHQL_MAX_DEPTH', 10, 2, 100),
    graphqlMaxComplexity: int(src, 'GRAPHQL_MAX_COMPLEXITY', 1000, 10, 1_000_000),
    graphqlIntrospection: bool(src, 'GRAPHQL_INTROSPECTION', devMode),
    ...parseMetricsAccess(src),
    maxBufferedBodyBytes: int(src, 'MAX_BUFFERED_BODIES_MB', 64, 8, 4096) * 1024 * 1024,
    shutdownTimeoutMs: int(src, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    entitlementCacheTtlMs: int(src, 'ENTITLEMENT_CACHE_TTL_MS', 5_000, 0, 3_600_000),
    entitlementCacheMaxBytes: int(src, 'ENTITLEMENT_CACHE_MAX_MB', 64, 1, 65_536) * 1024 * 1024,
    auth,
    google: parseGoogle(src),
    apple: parseApple(src),
    purchases: parsePurchaseRules(src),
    webhooks: parseWebhooks(src),
    schedulerEnabled: bool(src, 'SCHEDULER_ENABLED', true),
    schedulerIntervalSeconds: schedulerInterval(src),
    jobs: parseJobTiming(src),
    recheck: {
      afterExpiryMs: int(src, 'RECHECK_AFTER_EXPIRY_MINUTES', 10, 1, 24 * 60) * 60_000,
      billingRetryIntervalMs: int(src, 'RECHECK_BILLING_RETRY_MINUTES', 60, 1, 7 * 24 * 60) * 60_000,
      sweepMs: int(src, 'RECHECK_SWEEP_HOURS', 24, 1, 24 * 90) * 3_600_000,
      afterNotificationMs: int(src, 'RECHECK_AFTER_NOTIFICATION_SECONDS', 60, 0, 24 * 3600) * 1000,
    },
    revalidation: {
      batchSize: int(src, 'RECHECK_BATCH_SIZE', 200, 1, 10_000),
      concurrency: int(src, 'STORE_CONCURRENCY', 4, 1, 256),
      requestsPerMinute: {
        APP_STORE: int(src, 'APPLE_REQUESTS_PER_MINUTE', 300, 10, 1_000_000),
        PLAY_STORE: int(src, 'GOOGLE_REQUESTS_PER_MINUTE', 100, 10, 1_000_000),
      },
    },
    devMode,
  };
}

function statementTimeout(src: Source): number {
  const ms = int(src, 'DB_STATEMENT_TIMEOUT_MS', 10_000, 0, 3_600_000);
  // A value meant as seconds ("10") would make every statement fail.
  if (ms > 0 && ms < 100) throw new ConfigError('DB_STATEMENT_TIMEOUT_MS', `must be 0 (off) or at least 100 ms, got ${ms}`);
  return ms;
}

function parseMetricsAccess(src: Source): { metricsPort: number | null; metricsToken: string | null } {
  const portText = optionalString(src, 'METRICS_PORT');
  const metricsPort = portText === null ? null : int(src, 'METRICS_PORT', 0, 1, 65535);
  if (metricsPort !== null && metricsPort === int(src, 'PORT', 4000, 0, 65535)) throw new ConfigError('METRICS_PORT', `must differ from PORT (${metricsPort})`);
  const metricsToken = optionalString(src, 'METRICS_TOKEN');
  if (metricsToken !== null && metricsToken.length < 24) throw new ConfigError('METRICS_TOKEN', 'must be at least 24 characters long');
  return { metricsPort, metricsToken };
}

function schedulerInterval(src: Source): number {
  const seconds = int(src, 'SCHEDULER_INTERVAL_SECONDS', 60, 1, 60);
  // A cron seconds step must divide the minute, or runs bunch up at the start of each minute.
  if (60 % seconds !== 0) throw new ConfigError('SCHEDULER_INTERVAL_SECONDS', `must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60), got ${seconds}`);
  return seconds;
}

function parseJobTiming(src: Source): JobTiming {
  const retryBaseMs = int(src, 'RETRY_BASE_DELAY_MS', DEFAULT_JOB_TIMING.retryBaseMs, 10, 3_600_000);
  const retryMaxMs = int(src, 'RETRY_MAX_DELAY_MS', DEFAULT_JOB_TIMING.retryMaxMs, 10, 7 * 24 * 3_600_000);
  if (retryMaxMs < retryBaseMs) throw new ConfigError('RETRY_MAX_DELAY_MS', `must be at least RETRY_BASE_DELAY_MS (${retryBaseMs})`);
  const leaseMs = int(src, 'JOB_LEASE_SECONDS', DEFAULT_JOB_TIMING.leaseMs / 1000, 1, 3600) * 1000;
  return { retryBaseMs, retryMaxMs, leaseMs };
}

const PACKAGE_NAME = /^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$/;

function parseGoogle(src: Source): GoogleConfig | null {
  const keyFile = optionalString(src, 'GOOGLE_SERVICE_ACCOUNT_KEY_FILE');
  const keyJson = optionalString(src, 'GOOGLE_SERVICE_ACCOUNT_JSON');
  const packageNames = list(src, 'GOOGLE_PACKAGE_NAMES');
  if (keyFile === null && keyJson === null) {
    if (packageNames.length > 0) {
      throw new ConfigError('GOOGLE_SERVICE_ACCOUNT_KEY_FILE', 'GOOGLE_PACKAGE_NAMES is set but no service account: set this or GOOGLE_SERVICE_ACCOUNT_JSON');
    }
    return null;
  }
  if (keyFile !== null && keyJson !== null) throw new ConfigError('GOOGLE_SERVICE_ACCOUNT_JSON', 'set either this or GOOGLE_SERVICE_ACCOUNT_KEY_FILE, not both');
  const source = keyFile !== null ? 'GOOGLE_SERVICE_ACCOUNT_KEY_FILE' : 'GOOGLE_SERVICE_ACCOUNT_JSON';
  let text = keyJson ?? '';
  if (keyFile !== null) {
    try {
      text = readFileSync(keyFile, 'utf8');
    } catch (err) {
      throw new ConfigError(source, `cannot read ${keyFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  let account: GoogleServiceAccount;
  try {
    account = JSON.parse(text) as GoogleServiceAccount;
  } catch {
    throw new ConfigError(source, 'is not a service account JSON key (not valid JSON)');
  }
  if (typeof account?.client_email !== 'string' || typeof account.private_key !== 'string' || !account.private_key.includes('PRIVATE KEY')) {
    throw new ConfigError(source, 'is not a service account JSON key (client_email and private_key are required)');
  }
  if (packageNames.length === 0) throw new ConfigError('GOOGLE_PACKAGE_NAMES', 'list the app package names (comma-separated) the service account may query');
  for (const name of packageNames) {
    if (!PACKAGE_NAME.test(name)) throw new ConfigError('GOOGLE_PACKAGE_NAMES', `"${name}" is not a package name`);
  }
  const licenseKeys: Record<string, string> = {};
  for (const entry of list(src, 'GOOGLE_LICENSE_KEYS')) {
    const sep = entry.indexOf(':');
    const pkg = sep > 0 ? entry.slice(0, sep) : packageNames.length === 1 ? packageNames[0]! : '';
    const key = sep > 0 ? entry.slice(sep + 1) : entry;
    if (!packageNames.includes(pkg)) throw new ConfigError('GOOGLE_LICENSE_KEYS', `entries are "<package name>:<base64 key>" for a package in GOOGLE_PACKAGE_NAMES (got "${pkg || entry.slice(0, 20)}")`);
    try {
      createPublicKey({ key: Buffer.from(key, 'base64'), format: 'der', type: 'spki' });
    } catch {
      throw new ConfigError('GOOGLE_LICENSE_KEYS', `the key for ${pkg} is not a base64 RSA public key as the Play Console shows it`);
    }
    licenseKeys[pkg] = key;
  }
  const audience = optionalString(src, 'GOOGLE_PUBSUB_AUDIENCE');
  const pushAccount = optionalString(src, 'GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL');
  // Any Google Cloud service account can mint a Google-signed token for any audience: the audience alone
  // proves nothing about who pushed.
  if (audience !== null && pushAccount === null) {
    throw new ConfigError('GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL', 'is required with GOOGLE_PUBSUB_AUDIENCE: the service account your push subscription authenticates as');
  }
  return {
    serviceAccount: account,
    serviceAccountSource: source,
    packageNames,
    licenseKeys,
    apiRootUrl: withSlash(optionalUrl(src, 'GOOGLE_API_ROOT_URL') ?? 'https://androidpublisher.googleapis.com/'),
    tokenUrl: optionalUrl(src, 'GOOGLE_TOKEN_URL') ?? 'https://oauth2.googleapis.com/token',
    requestTimeoutMs: int(src, 'GOOGLE_REQUEST_TIMEOUT_MS', 10_000, 100, 120_000),
    pubsub: audience
      ? {
          audience,
          jwksUrl: optionalUrl(src, 'GOOGLE_PUBSUB_JWKS_URL') ?? 'https://www.googleapis.com/oauth2/v3/certs',
          issuers: ['https://accounts.google.com', 'accounts.google.com'],
          serviceAccountEmail: pushAccount!,
        }
      : null,
  };
}

function parsePurchaseRules(src: Source): PurchaseRules {
  const transferPolicy = oneOf(src, 'RECEIPT_TRANSFER_POLICY', TRANSFER_POLICIES, 'KEEP_WITH_ORIGINAL');
  return {
    transferPolicy,
    sandboxTransferPolicy: oneOf(src, 'RECEIPT_TRANSFER_POLICY_SANDBOX', TRANSFER_POLICIES, transferPolicy),
    orderTtlMs: int(src, 'ORDER_TTL_MINUTES', 24 * 60, 1, 365 * 24 * 60) * 60_000,
    verifiedProofRetentionMs: int(src, 'VERIFIED_PROOF_RETENTION_DAYS', 90, 0, 3650) * 86_400_000,
    orderMatchWindowMs: int(src, 'ORDER_MATCH_WINDOW_MINUTES', 60, 1, 7 * 24 * 60) * 60_000,
  };
}

function parseWebhooks(src: Source): WebhookConfig | null {
  const urls = list(src, 'WEBHOOK_URLS');
  // A secret without URLs is allowed: clearing WEBHOOK_URLS turns delivery off without touching the secret store.
  if (urls.length === 0) return null;
  for (const [i, url] of urls.entries()) {
    if (!isHttpUrl(url)) throw new ConfigError('WEBHOOK_URLS', `"${redactUrl(url)}" is not an http(s) URL`);
    if (urls.indexOf(url) !== i) throw new ConfigError('WEBHOOK_URLS', `"${redactUrl(url)}" is listed twice`);
  }
  const secret = optionalString(src, 'WEBHOOK_SECRET');
  if (secret === null) throw new ConfigError('WEBHOOK_SECRET', 'is required with WEBHOOK_URLS: receivers check the signature made with it');
  if (secret.length < 32) throw new ConfigError('WEBHOOK_SECRET', 'must be at least 32 characters long (HMAC-SHA256 needs 256 bits)');
  return { urls, secret, timeoutMs: int(src, 'WEBHOOK_TIMEOUT_MS', 10_000, 100, 120_000) };
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}

/** A URL with any password in it replaced, for logs and messages. */
const redactUrl = (url: string): string => url.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@');

const APPLE_SETTINGS = CONFIG_KEYS.filter((k) => k.startsWith('APPLE_') && k !== 'APPLE_BUNDLE_ID');

function parseApple(src: Source): AppleConfig | null {
  const bundleId = optionalString(src, 'APPLE_BUNDLE_ID');
  if (bundleId === null) {
    const stray = APPLE_SETTINGS.find((k) => optionalString(src, k) !== null);
    if (stray) throw new ConfigError('APPLE_BUNDLE_ID', `${stray} is set but APPLE_BUNDLE_ID is not: set the app's bundle id to enable the App Store`);
    return null;
  }
  if (!PACKAGE_NAME.test(bundleId) && !/^[A-Za-z0-9.-]+$/.test(bundleId)) throw new ConfigError('APPLE_BUNDLE_ID', `"${bundleId}" is not a bundle id`);
  const environment = oneOf(src, 'APPLE_ENVIRONMENT', ['PRODUCTION', 'SANDBOX'] as const, 'PRODUCTION');
  const appAppleIdText = optionalString(src, 'APPLE_APP_APPLE_ID');
  const appAppleId = appAppleIdText === null ? null : int(src, 'APPLE_APP_APPLE_ID', 0, 1, Number.MAX_SAFE_INTEGER);
  if (environment === 'PRODUCTION' && appAppleId === null) {
    throw new ConfigError('APPLE_APP_APPLE_ID', "is required in PRODUCTION: the app's Apple ID from App Store Connect (App Information), which Apple's signed data names");
  }
  const rootPaths = list(src, 'APPLE_ROOT_CERTIFICATES');
  if (rootPaths.length === 0) {
    throw new ConfigError('APPLE_ROOT_CERTIFICATES', 'list the Apple root certificate files (e.g. AppleRootCA-G3.cer from https://www.apple.com/certificateauthority/)');
  }
  const rootCertificates = rootPaths.map((path) => readCertificate('APPLE_ROOT_CERTIFICATES', path));
  const keyId = optionalString(src, 'APPLE_KEY_ID');
  const issuerId = optionalString(src, 'APPLE_ISSUER_ID');
  const keyFile = optionalString(src, 'APPLE_PRIVATE_KEY_FILE');
  const keyInline = optionalString(src, 'APPLE_PRIVATE_KEY');
  if (keyFile !== null && keyInline !== null) throw new ConfigError('APPLE_PRIVATE_KEY', 'set either this or APPLE_PRIVATE_KEY_FILE, not both');
  const keySource = keyFile !== null ? 'APPLE_PRIVATE_KEY_FILE' : 'APPLE_PRIVATE_KEY';
  const anyApi = keyId ?? issuerId ?? keyFile ?? keyInline;
  let api: AppleConfig['api'] = null;
  if (anyApi !== null) {
    if (keyId === null) throw new ConfigError('APPLE_KEY_ID', 'is required with an App Store Server API key: the key id of your in-app purchase key');
    if (issuerId === null) throw new ConfigError('APPLE_ISSUER_ID', 'is required with an App Store Server API key: the issuer id from App Store Connect (Users and Access, Integrations)');
    if (keyFile === null && keyInline === null) throw new ConfigError('APPLE_PRIVATE_KEY_FILE', 'is required with APPLE_KEY_ID: the .p8 in-app purchase key file');
    let privateKey = keyInline?.replace(/\\n/g, '\n') ?? '';
    if (keyFile !== null) {
      try {
        privateKey = readFileSync(keyFile, 'utf8');
      } catch (err) {
        throw new ConfigError(keySource, `cannot read ${keyFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
    try {
      const key = createPrivateKey(privateKey);
      if (key.asymmetricKeyType !== 'ec') throw new Error('not EC');
    } catch {
      throw new ConfigError(keySource, 'is not an App Store Connect in-app purchase key (a PKCS#8 EC private key, the .p8 file)');
    }
    api = {
      keyId,
      issuerId,
      privateKey,
      productionUrl: withoutSlash(optionalUrl(src, 'APPLE_API_URL') ?? 'https://api.storekit.itunes.apple.com'),
      sandboxUrl: withoutSlash(optionalUrl(src, 'APPLE_API_SANDBOX_URL') ?? 'https://api.storekit-sandbox.itunes.apple.com'),
    };
  }
  return {
    bundleId,
    appAppleId,
    environment,
    acceptSandbox: environment === 'SANDBOX' || bool(src, 'APPLE_ACCEPT_SANDBOX', false),
    rootCertificates,
    onlineChecks: bool(src, 'APPLE_ONLINE_CHECKS', false),
    sharedSecret: optionalString(src, 'APPLE_SHARED_SECRET'),
    verifyReceiptUrl: optionalUrl(src, 'APPLE_VERIFY_RECEIPT_URL') ?? 'https://buy.itunes.apple.com/verifyReceipt',
    verifyReceiptSandboxUrl: optionalUrl(src, 'APPLE_VERIFY_RECEIPT_SANDBOX_URL') ?? 'https://sandbox.itunes.apple.com/verifyReceipt',
    api,
    requestTimeoutMs: int(src, 'APPLE_REQUEST_TIMEOUT_MS', 10_000, 100, 120_000),
  };
}

/** Reads a certificate file, DER or PEM, as DER. */
function readCertificate(key: Key, path: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    return new X509Certificate(bytes).raw;
  } catch {
    throw new ConfigError(key, `${path} is not an X.509 certificate (DER or PEM)`);
  }
}

const withoutSlash = (url: string) => url.replace(/\/+$/, '');
const withSlash = (url: string) => (url.endsWith('/') ? url : `${url}/`);

function bool(src: Source, key: Key, fallback: boolean): boolean {
  const v = raw(src, key);
  if (v === undefined || v === null || v === '') return fallback;
  if (v === true || v === 'true' || v === '1') return true;
  if (v === false || v === 'false' || v === '0') return false;
  throw new ConfigError(key, `"${String(v)}" is not true or false`);
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** The config with secrets replaced, for logs. */
export function redactConfig(config: AppConfig): Record<string, unknown> {
  return {
    ...config,
    databaseUrl: config.databaseUrl?.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@') ?? null,
    google: config.google && {
      ...config.google,
      serviceAccount: { client_email: config.google.serviceAccount.client_email, private_key: '***' },
    },
    webhooks: config.webhooks && { ...config.webhooks, urls: config.webhooks.urls.map(redactUrl), secret: '***' },
    metricsToken: config.metricsToken ? '***' : null,
    apple: config.apple && {
      ...config.apple,
      rootCertificates: `${config.apple.rootCertificates.length} certificate(s)`,
      sharedSecret: config.apple.sharedSecret ? '***' : null,
      api: config.apple.api && { ...config.apple.api, privateKey: '***' },
    },
    auth: {
      apiKeys: `${config.auth.apiKeys.length} key(s)`,
      jwtSecret: config.auth.jwtSecret ? '***' : null,
      jwksUrl: config.auth.jwksUrl,
      jwtIssuer: config.auth.jwtIssuer,
      jwtAudience: config.auth.jwtAudience,
    },
  };
}

function raw(src: Source, key: Key): unknown {
  return src[key];
}

function optionalString(src: Source, key: Key): string | null {
  const v = raw(src, key);
  if (v === undefined || v === null || v === '') return null;
  if (typeof v !== 'string' && typeof v !== 'number') throw new ConfigError(key, 'must be a string');
  return String(v).trim();
}

function optionalUrl(src: Source, key: Key): string | null {
  const v = optionalString(src, key);
  if (v === null) return null;
  try {
    const url = new URL(v);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('protocol');
  } catch {
    throw new ConfigError(key, `"${v}" is not an http(s) URL`);
  }
  return v;
}

function list(src: Source, key: Key): string[] {
  const v = raw(src, key);
  if (v === undefined || v === null || v === '') return [];
  const items = Array.isArray(v) ? v.map(String) : String(v).split(',');
  return items.map((s) => s.trim()).filter((s) => s.length > 0);
}

function int(src: Source, key: Key, fallback: number, min: number, max: number): number {
  const v = raw(src, key);
  if (v === undefined || v === null || v === '') return fallback;
  const n = typeof v === 'number' ? v : /^-?\d+$/.test(String(v).trim()) ? Number(String(v).trim()) : NaN;
  if (!Number.isInteger(n)) throw new ConfigError(key, `"${String(v)}" is not a whole number`);
  if (n < min || n > max) throw new ConfigError(key, `${n} is out of range (${min} to ${max})`);
  return n;
}

function oneOf<T extends string>(src: Source, key: Key, allowed: readonly T[], fallback: T): T {
  const v = optionalString(src, key);
  if (v === null) return fallback;
  if (!(allowed as readonly string[]).includes(v)) throw new ConfigError(key, `"${v}" is not one of ${allowed.join(', ')}`);
  return v as T;
}
