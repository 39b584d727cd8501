import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig, redactConfig } from '../../src/config/config.js';

const KEY = 'k'.repeat(32);
const FIXTURES = join(import.meta.dirname, '../../../shared/fixtures/apple');
const ROOT = join(FIXTURES, 'AppleRootCA-G3.cer');
const P8 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const APPLE = { APPLE_BUNDLE_ID: 'com.example.app', APPLE_APP_APPLE_ID: '1234567890', APPLE_ROOT_CERTIFICATES: ROOT };
const SERVICE_ACCOUNT = JSON.stringify({ client_email: 'sa@example.iam.gserviceaccount.com', private_key: '-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n' });

describe('config', () => {
  it('defaults to local development mode on loopback with embedded PGlite', () => {
    const c = parseConfig({});
    expect(c).toMatchObject({ devMode: true, host: '127.0.0.1', port: 4000, databaseUrl: null, dataDir: './data' });
  });

  it('leaves development mode and listens on all interfaces once credentials exist', () => {
    expect(parseConfig({ API_KEYS: KEY })).toMatchObject({ devMode: false, host: '0.0.0.0' });
    expect(parseConfig({ JWT_SECRET: KEY })).toMatchObject({ devMode: false });
  });

  it.each([
    [{ PORT: 'eighty' }, 'PORT', 'not a whole number'],
    [{ PORT: '70000' }, 'PORT', 'out of range'],
    [{ HOST: '0.0.0.0' }, 'HOST', 'not a loopback address'],
    [{ HOST: 'example.com', API_KEYS: KEY }, 'HOST', 'not an IP address'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL', 'must start with postgres'],
    [{ API_KEYS: 'short' }, 'API_KEYS', 'at least 24 characters'],
    [{ JWT_SECRET: 'short' }, 'JWT_SECRET', 'at least 32 characters'],
    [{ JWT_SECRET: KEY, JWT_JWKS_URL: 'https://id.example.com/jwks' }, 'JWT_SECRET', 'not both'],
    [{ JWT_JWKS_URL: 'ftp://x' }, 'JWT_JWKS_URL', 'not an http(s) URL'],
    [{ JWT_JWKS_URL: 'https://id.example.com/jwks', JWT_AUDIENCE: 'app' }, 'JWT_ISSUER', 'required with JWT_JWKS_URL'],
    [{ JWT_JWKS_URL: 'https://id.example.com/jwks', JWT_ISSUER: 'https://id.example.com' }, 'JWT_AUDIENCE', 'required with JWT_JWKS_URL'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', 'not one of'],
    [{ GOOGLE_PACKAGE_NAMES: 'com.example.app' }, 'GOOGLE_SERVICE_ACCOUNT_KEY_FILE', 'no service account'],
    [{ GOOGLE_SERVICE_ACCOUNT_JSON: '{' }, 'GOOGLE_SERVICE_ACCOUNT_JSON', 'not valid JSON'],
    [{ GOOGLE_SERVICE_ACCOUNT_JSON: '{"client_email":"a@b"}' }, 'GOOGLE_SERVICE_ACCOUNT_JSON', 'private_key are required'],
    [{ GOOGLE_SERVICE_ACCOUNT_KEY_FILE: '/nonexistent/sa.json' }, 'GOOGLE_SERVICE_ACCOUNT_KEY_FILE', 'cannot read'],
    [{ GOOGLE_SERVICE_ACCOUNT_JSON: SERVICE_ACCOUNT }, 'GOOGLE_PACKAGE_NAMES', 'list the app package names'],
    [{ GOOGLE_SERVICE_ACCOUNT_JSON: SERVICE_ACCOUNT, GOOGLE_PACKAGE_NAMES: 'not a package' }, 'GOOGLE_PACKAGE_NAMES', 'not a package name'],
    [{ GOOGLE_SERVICE_ACCOUNT_JSON: SERVICE_ACCOUNT, GOOGLE_PACKAGE_NAMES: 'com.a.b', GOOGLE_LICENSE_KEYS: 'com.a.b:notakey' }, 'GOOGLE_LICENSE_KEYS', 'not a base64 RSA public key'],
    [{ GOOGLE_SERVICE_ACCOUNT_JSON: SERVICE_ACCOUNT, GOOGLE_PACKAGE_NAMES: 'com.a.b', GOOGLE_API_ROOT_URL: 'nope' }, 'GOOGLE_API_ROOT_URL', 'not an http(s) URL'],
    [{ SCHEDULER_ENABLED: 'sometimes' }, 'SCHEDULER_ENABLED', 'not true or false'],
    [{ GOOGLE_SERVICE_ACCOUNT_JSON: SERVICE_ACCOUNT, GOOGLE_PACKAGE_NAMES: 'com.a.b', GOOGLE_PUBSUB_AUDIENCE: 'https://x' }, 'GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL', 'required with GOOGLE_PUBSUB_AUDIENCE'],
    [{ DB_POOL_MAX: '0' }, 'DB_POOL_MAX', 'out of range'],
    [{ DB_STATEMENT_TIMEOUT_MS: '10' }, 'DB_STATEMENT_TIMEOUT_MS', 'must be 0 (off) or at least 100 ms'],
    [{ DB_STATEMENT_TIMEOUT_MS: '10s' }, 'DB_STATEMENT_TIMEOUT_MS', 'not a whole number'],
    [{ DB_CONNECT_TIMEOUT_MS: '0' }, 'DB_CONNECT_TIMEOUT_MS', 'out of range'],
    [{ READINESS_TIMEOUT_MS: '50' }, 'READINESS_TIMEOUT_MS', 'out of range'],
    [{ APPLE_SHARED_SECRET: 'x' }, 'APPLE_BUNDLE_ID', 'APPLE_SHARED_SECRET is set but APPLE_BUNDLE_ID is not'],
    [{ ...APPLE, APPLE_APP_APPLE_ID: undefined }, 'APPLE_APP_APPLE_ID', 'required in PRODUCTION'],
    [{ ...APPLE, APPLE_ROOT_CERTIFICATES: undefined }, 'APPLE_ROOT_CERTIFICATES', 'AppleRootCA-G3.cer'],
    [{ ...APPLE, APPLE_ROOT_CERTIFICATES: '/nonexistent/root.cer' }, 'APPLE_ROOT_CERTIFICATES', 'cannot read'],
    [{ ...APPLE, APPLE_ROOT_CERTIFICATES: join(FIXTURES, 'README.md') }, 'APPLE_ROOT_CERTIFICATES', 'not an X.509 certificate'],
    [{ ...APPLE, APPLE_ENVIRONMENT: 'XCODE' }, 'APPLE_ENVIRONMENT', 'not one of'],
    [{ ...APPLE, APPLE_KEY_ID: 'ABC123' }, 'APPLE_ISSUER_ID', 'issuer id'],
    [{ ...APPLE, APPLE_KEY_ID: 'ABC123', APPLE_ISSUER_ID: 'issuer' }, 'APPLE_PRIVATE_KEY_FILE', '.p8'],
    [{ ...APPLE, APPLE_KEY_ID: 'ABC123', APPLE_ISSUER_ID: 'issuer', APPLE_PRIVATE_KEY: 'nope' }, 'APPLE_PRIVATE_KEY', 'not an App Store Connect in-app purchase key'],
    [{ ...APPLE, APPLE_VERIFY_RECEIPT_URL: 'buy.itunes' }, 'APPLE_VERIFY_RECEIPT_URL', 'not an http(s) URL'],
    [{ WEBHOOK_URLS: 'https://hooks.example.com/iap' }, 'WEBHOOK_SECRET', 'required with WEBHOOK_URLS'],
    [{ WEBHOOK_URLS: 'https://hooks.example.com/iap', WEBHOOK_SECRET: 'too-short' }, 'WEBHOOK_SECRET', 'at least 32 characters'],
    [{ WEBHOOK_URLS: 'ftp://hooks.example.com/iap', WEBHOOK_SECRET: KEY }, 'WEBHOOK_URLS', 'not an http(s) URL'],
    [{ WEBHOOK_URLS: 'https://a.example.com/x, not a url', WEBHOOK_SECRET: KEY }, 'WEBHOOK_URLS', 'not an http(s) URL'],
    [{ WEBHOOK_URLS: 'https://a.example.com/x,https://a.example.com/x', WEBHOOK_SECRET: KEY }, 'WEBHOOK_URLS', 'listed twice'],
    [{ WEBHOOK_URLS: 'https://a.example.com/x', WEBHOOK_SECRET: KEY, WEBHOOK_TIMEOUT_MS: '10s' }, 'WEBHOOK_TIMEOUT_MS', 'not a whole number'],
    [{ WEBHOOK_URLS: 'https://a.example.com/x', WEBHOOK_SECRET: KEY, WEBHOOK_TIMEOUT_MS: '50' }, 'WEBHOOK_TIMEOUT_MS', 'out of range'],
    [{ SCHEDULER_INTERVAL_SECONDS: '7' }, 'SCHEDULER_INTERVAL_SECONDS', 'must divide 60'],
    [{ SCHEDULER_INTERVAL_SECONDS: '120' }, 'SCHEDULER_INTERVAL_SECONDS', 'out of range'],
    [{ RETRY_BASE_DELAY_MS: '5' }, 'RETRY_BASE_DELAY_MS', 'out of range'],
    [{ RETRY_BASE_DELAY_MS: '60000', RETRY_MAX_DELAY_MS: '1000' }, 'RETRY_MAX_DELAY_MS', 'at least RETRY_BASE_DELAY_MS'],
    [{ JOB_LEASE_SECONDS: '0' }, 'JOB_LEASE_SECONDS', 'out of range'],
    [{ VERIFIED_PROOF_RETENTION_DAYS: '-1' }, 'VERIFIED_PROOF_RETENTION_DAYS', 'out of range'],
  ])('rejects %j naming %s', (input, key, problem) => {
    let error: unknown;
    try {
      parseConfig(input);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).key).toBe(key);
    expect((error as ConfigError).message).toContain(`config ${key}:`);
    expect((error as ConfigError).message).toContain(problem);
    expect((error as ConfigError).message).not.toContain('\n');
  });

  it('limits database waits: 10 s statements, 5 s to connect, 2 s for readiness by default; 0 turns the statement timeout off', () => {
    expect(parseConfig({})).toMatchObject({ dbStatementTimeoutMs: 10_000, dbConnectTimeoutMs: 5_000, readinessTimeoutMs: 2_000 });
    expect(parseConfig({ DB_STATEMENT_TIMEOUT_MS: '0', DB_CONNECT_TIMEOUT_MS: '750', READINESS_TIMEOUT_MS: '300' })).toMatchObject({
      dbStatementTimeoutMs: 0,
      dbConnectTimeoutMs: 750,
      readinessTimeoutMs: 300,
    });
  });

  it('paces background work: every minute, 1 min doubling to 6 h, 5 min leases by default; shorter when configured', () => {
    expect(parseConfig({})).toMatchObject({ schedulerIntervalSeconds: 60, jobs: { retryBaseMs: 60_000, retryMaxMs: 6 * 3_600_000, leaseMs: 300_000 } });
    expect(parseConfig({ SCHEDULER_INTERVAL_SECONDS: '2', RETRY_BASE_DELAY_MS: '200', RETRY_MAX_DELAY_MS: '2000', JOB_LEASE_SECONDS: '3' })).toMatchObject({
      schedulerIntervalSeconds: 2,
      jobs: { retryBaseMs: 200, retryMaxMs: 2000, leaseMs: 3000 },
    });
  });

  it('reads a YAML config file, with environment variables taking precedence', () => {
    const dir = mkdtempSync(join(tmpdir(), 'iap-config-'));
    const file = join(dir, 'config.yaml');
    writeFileSync(file, `PORT: 5000\nHOST: 127.0.0.2\nLOG_LEVEL: warn\n`);
    const c = loadConfig({ CONFIG_FILE: file, PORT: '6000' });
    expect(c).toMatchObject({ port: 6000, host: '127.0.0.2', logLevel: 'warn' });
  });

  it.each([
    ['UNKNOWN_KEY: 1\n', 'UNKNOWN_KEY'],
    ['- a\n- b\n', 'CONFIG_FILE'],
    ['PORT: [\n', 'CONFIG_FILE'],
  ])('rejects config file %j naming %s', (text, key) => {
    const dir = mkdtempSync(join(tmpdir(), 'iap-config-'));
    const file = join(dir, 'config.yaml');
    writeFileSync(file, text);
    expect(() => loadConfig({ CONFIG_FILE: file })).toThrow(new RegExp(`^config ${key}:`));
  });

  it('reads the Google Play settings', () => {
    const c = parseConfig({ GOOGLE_SERVICE_ACCOUNT_JSON: SERVICE_ACCOUNT, GOOGLE_PACKAGE_NAMES: 'com.a.b, com.c.d', GOOGLE_API_ROOT_URL: 'http://127.0.0.1:9/api' });
    expect(c.google).toMatchObject({
      packageNames: ['com.a.b', 'com.c.d'],
      apiRootUrl: 'http://127.0.0.1:9/api/',
      tokenUrl: 'https://oauth2.googleapis.com/token',
      serviceAccountSource: 'GOOGLE_SERVICE_ACCOUNT_JSON',
      pubsub: null,
    });
    expect(parseConfig({}).google).toBeNull();
  });

  it('reads the App Store settings: production by default, sandbox only when accepted', () => {
    const c = parseConfig({ ...APPLE, APPLE_KEY_ID: 'ABC123', APPLE_ISSUER_ID: 'issuer', APPLE_PRIVATE_KEY: P8.replace(/\n/g, '\\n') });
    expect(c.apple).toMatchObject({
      bundleId: 'com.example.app',
      appAppleId: 1234567890,
      environment: 'PRODUCTION',
      acceptSandbox: false,
      onlineChecks: false,
      verifyReceiptUrl: 'https://buy.itunes.apple.com/verifyReceipt',
      api: { keyId: 'ABC123', issuerId: 'issuer', productionUrl: 'https://api.storekit.itunes.apple.com' },
    });
    expect(c.apple!.rootCertificates[0]!.length).toBeGreaterThan(500);
    expect(parseConfig({ ...APPLE, APPLE_ACCEPT_SANDBOX: 'true' }).apple).toMatchObject({ acceptSandbox: true, api: null });
    expect(parseConfig({ APPLE_BUNDLE_ID: 'com.example.app', APPLE_ENVIRONMENT: 'SANDBOX', APPLE_ROOT_CERTIFICATES: ROOT }).apple).toMatchObject({ environment: 'SANDBOX', acceptSandbox: true, appAppleId: null });
    expect(parseConfig({}).apple).toBeNull();
  });

  it('reads the webhook settings; without URLs webhooks are off', () => {
    const c = parseConfig({ WEBHOOK_URLS: 'https://a.example.com/iap, http://10.0.0.5:8080/hook', WEBHOOK_SECRET: KEY });
    expect(c.webhooks).toEqual({ urls: ['https://a.example.com/iap', 'http://10.0.0.5:8080/hook'], secret: KEY, timeoutMs: 10_000 });
    expect(parseConfig({ WEBHOOK_URLS: 'https://a.example.com/iap', WEBHOOK_SECRET: KEY, WEBHOOK_TIMEOUT_MS: '2500' }).webhooks!.timeoutMs).toBe(2500);
    expect(parseConfig({}).webhooks).toBeNull();
    expect(parseConfig({ WEBHOOK_SECRET: KEY }).webhooks).toBeNull();
  });

  it('never shows secrets in the redacted form used for logs', () => {
    const c = parseConfig({
      API_KEYS: KEY,
      JWT_SECRET: 's'.repeat(40),
      DATABASE_URL: 'postgres://app:hunter2@db:5432/iap',
      GOOGLE_SERVICE_ACCOUNT_JSON: SERVICE_ACCOUNT,
      GOOGLE_PACKAGE_NAMES: 'com.a.b',
      ...APPLE,
      APPLE_SHARED_SECRET: 'apple-shared-secret-value',
      APPLE_KEY_ID: 'ABC123',
      APPLE_ISSUER_ID: 'issuer',
      APPLE_PRIVATE_KEY: P8,
      WEBHOOK_URLS: 'https://hooks.example.com/iap,https://user:url-password@hooks2.example.com/iap',
      WEBHOOK_SECRET: 'webhook-signing-secret-0123456789abcdef',
    });
    const text = JSON.stringify(redactConfig(c));
    expect(text).not.toContain('webhook-signing-secret');
    expect(text).not.toContain('url-password');
    expect(text).toContain('https://hooks.example.com/iap');
    expect(text).not.toContain(KEY);
    expect(text).not.toContain('s'.repeat(40));
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('PRIVATE KEY');
    expect(text).not.toContain('apple-shared-secret-value');
    expect(text).toContain('postgres://app:***@db:5432/iap');
  });
});
