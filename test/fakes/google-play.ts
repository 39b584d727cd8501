/**
 * Fake Google Play Developer API (androidpublisher v3) + OAuth 2.0 token endpoint on loopback.
 *
 * The real `googleapis` client and google-auth-library talk to it over HTTP: the token endpoint checks the
 * JWT-bearer assertion against a service account key pair generated at start, and every API request needs a
 * bearer token it issued. Answers (and errors) have the shapes Google uses.
 *
 * Standalone: `node test/fakes/google-play.ts` (PORT, default 4700) prints the env vars to point the service
 * at it; script purchases with `POST /_fake/products/{token}`, `POST /_fake/subscriptions/{token}`,
 * `POST /_fake/voided`, and read `GET /_fake/calls`.
 */
import { generateKeyPair, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { jwtVerify } from 'jose';
import type { androidpublisher_v3 } from 'googleapis';

// Node's type stripping (standalone mode) does not map a './x.js' specifier to x.ts, and the project's tsconfig
// does not allow '.ts' specifiers, so the sibling module is loaded with this file's own extension.
const { runWhenEntryPoint, serveUntilSignal } = (await import(
  new URL(`./standalone${import.meta.url.slice(import.meta.url.lastIndexOf('.'))}`, import.meta.url).href
)) as typeof import('./standalone.js');

type SubscriptionPurchaseV2 = androidpublisher_v3.Schema$SubscriptionPurchaseV2;
type VoidedPurchase = androidpublisher_v3.Schema$VoidedPurchase;

export interface ProductPurchaseScript {
  packageName: string;
  productId: string;
  purchaseState: 0 | 1 | 2; // 0 purchased, 1 canceled, 2 pending
  consumptionState?: 0 | 1;
  acknowledgementState?: 0 | 1;
  orderId?: string;
  purchaseTimeMillis?: string;
  quantity?: number;
  obfuscatedExternalAccountId?: string;
  purchaseType?: number; // 0 = test purchase
  regionCode?: string;
}

export type Failure = { status: number; body?: unknown } | { hangMs: number };

/** Chaos: each API call fails with probability `rate`, half of them with a 5xx, half by hanging `hangMs`. */
export interface RandomFailures {
  rate: number;
  hangMs: number;
  random?: () => number;
}

export interface RecordedCall {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
}

export const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';
export const ANDROIDPUBLISHER_SCOPE = 'https://www.googleapis.com/auth/androidpublisher';

const API = '/androidpublisher/v3/applications';
const PRODUCT_RE = new RegExp(`^${API}/([^/]+)/purchases/products/([^/]+)/tokens/([^/:]+)(?::(acknowledge|consume))?$`);
const SUBSCRIPTION_V2_RE = new RegExp(`^${API}/([^/]+)/purchases/subscriptionsv2/tokens/([^/:]+)$`);
const SUBSCRIPTION_ACK_RE = new RegExp(`^${API}/([^/]+)/purchases/subscriptions/([^/]+)/tokens/([^/:]+):acknowledge$`);
const VOIDED_RE = new RegExp(`^${API}/([^/]+)/purchases/voidedpurchases$`);
const THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000;
const MAX_BODY_BYTES = 1 << 20;

const STATUS_NAMES: Record<number, [status: string, reason: string]> = {
  400: ['INVALID_ARGUMENT', 'badRequest'],
  401: ['UNAUTHENTICATED', 'authError'],
  403: ['PERMISSION_DENIED', 'forbidden'],
  404: ['NOT_FOUND', 'notFound'],
  409: ['ABORTED', 'conflict'],
  429: ['RESOURCE_EXHAUSTED', 'rateLimitExceeded'],
  500: ['INTERNAL', 'backendError'],
  502: ['UNAVAILABLE', 'backendError'],
  503: ['UNAVAILABLE', 'backendError'],
  504: ['DEADLINE_EXCEEDED', 'backendError'],
};

/** Google's JSON error body: `{error: {code, message, status, errors: [{message, domain, reason}]}}`. */
export function googleError(code: number, message?: string, reason?: string): { error: Record<string, unknown> } {
  const [status, defaultReason] = STATUS_NAMES[code] ?? (code >= 500 ? ['INTERNAL', 'backendError'] : ['FAILED_PRECONDITION', 'failedPrecondition']);
  const text = message ?? defaultMessage(code);
  return { error: { code, message: text, status, errors: [{ message: text, domain: 'global', reason: reason ?? defaultReason }] } };
}

function defaultMessage(code: number): string {
  switch (code) {
    case 401:
      return 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.';
    case 403:
      return 'The caller does not have permission';
    case 404:
      return 'Requested entity was not found.';
    case 429:
      return 'Rate Limit Exceeded';
    case 503:
      return 'The service is currently unavailable.';
    default:
      return code >= 500 ? 'Internal error encountered.' : 'Request contains an invalid argument.';
  }
}

const NOT_FOUND = (): { error: Record<string, unknown> } => ({
  error: {
    code: 404,
    message: 'The purchase token was not found.',
    status: 'NOT_FOUND',
    errors: [{ message: 'The purchase token was not found.', domain: 'global', reason: 'purchaseTokenNotFound', location: 'token', locationType: 'parameter' }],
  },
});

const INVALID_STATE = (): { error: Record<string, unknown> } => ({
  error: {
    code: 400,
    message: 'The purchase is not in a valid state to perform the desired operation.',
    status: 'INVALID_ARGUMENT',
    errors: [{ message: 'The purchase is not in a valid state to perform the desired operation.', domain: 'androidpublisher', reason: 'invalidPurchaseState', location: 'token', locationType: 'parameter' }],
  },
});

class HttpError extends Error {
  status: number;
  body: unknown;
  constructor(status: number, body: unknown) {
    super(`HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

interface PendingFailure {
  failure: Failure;
  pathIncludes: string | undefined;
  remaining: number;
}

interface StoredSubscription {
  resource: SubscriptionPurchaseV2;
  packageName: string | undefined;
}

export class FakeGooglePlay {
  readonly url: string;
  readonly rootUrl: string;
  readonly tokenUrl: string;
  readonly serviceAccount: {
    client_email: string;
    private_key: string;
    type: 'service_account';
    token_uri: string;
    private_key_id: string;
    project_id: string;
  };
  readonly calls: RecordedCall[];
  tokenRequests: number;

  private readonly server: Server;
  private readonly publicKey: KeyObject;
  private readonly accessTokenTtlSeconds: number;
  private readonly accessTokens: Map<string, number>; // token -> expires at (ms)
  private readonly products: Map<string, ProductPurchaseScript>;
  private readonly subscriptions: Map<string, StoredSubscription>;
  private readonly voided: VoidedPurchase[];
  private readonly failures: PendingFailure[];
  private readonly hangs: Set<NodeJS.Timeout>;
  private readonly acked: string[];
  private readonly consumed: string[];
  private credentialMode: 'token' | 'api401' | 'api403' | null;
  private chaos: RandomFailures | null = null;
  /** How many calls the random failures failed. */
  randomFailures = 0;

  private constructor(server: Server, publicKey: KeyObject, privateKeyPem: string, accessTokenTtlSeconds: number) {
    const { port } = server.address() as AddressInfo;
    this.server = server;
    this.publicKey = publicKey;
    this.accessTokenTtlSeconds = accessTokenTtlSeconds;
    this.url = `http://127.0.0.1:${port}`;
    this.rootUrl = `${this.url}/`;
    this.tokenUrl = `${this.url}/token`;
    const projectId = 'fake-play-project';
    this.serviceAccount = {
      type: 'service_account',
      project_id: projectId,
      private_key_id: randomBytes(20).toString('hex'),
      private_key: privateKeyPem,
      client_email: `play-api@${projectId}.iam.gserviceaccount.com`,
      token_uri: this.tokenUrl,
    };
    this.calls = [];
    this.tokenRequests = 0;
    this.accessTokens = new Map();
    this.products = new Map();
    this.subscriptions = new Map();
    this.voided = [];
    this.failures = [];
    this.hangs = new Set();
    this.acked = [];
    this.consumed = [];
    this.credentialMode = null;
  }

  /** Starts on 127.0.0.1 (port 0 = any free port unless `port` is given). */
  static async start(options: { accessTokenTtlSeconds?: number; port?: number } = {}): Promise<FakeGooglePlay> {
    const { publicKey, privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
    const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    let fake: FakeGooglePlay | undefined;
    const server = createServer((req, res) => {
      if (fake === undefined) {
        res.writeHead(503).end();
        return;
      }
      fake.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) sendJson(res, 500, googleError(500, String(err)));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    fake = new FakeGooglePlay(server, publicKey, privateKeyPem, options.accessTokenTtlSeconds ?? 3600);
    return fake;
  }

  setProduct(token: string, p: ProductPurchaseScript): void {
    this.products.set(token, { consumptionState: 0, acknowledgementState: 0, ...structuredClone(p) });
  }

  /** `options.packageName`, if given, makes requests for another package answer 404 (the V2 resource has no package). */
  setSubscription(token: string, s: SubscriptionPurchaseV2, options: { packageName?: string } = {}): void {
    const resource: SubscriptionPurchaseV2 = {
      kind: 'androidpublisher#subscriptionPurchaseV2',
      acknowledgementState: 'ACKNOWLEDGEMENT_STATE_PENDING',
      ...structuredClone(s),
    };
    this.subscriptions.set(token, { resource, packageName: options.packageName });
  }

  getProduct(token: string): ProductPurchaseScript | undefined {
    const p = this.products.get(token);
    return p === undefined ? undefined : structuredClone(p);
  }

  getSubscription(token: string): SubscriptionPurchaseV2 | undefined {
    const s = this.subscriptions.get(token);
    return s === undefined ? undefined : structuredClone(s.resource);
  }

  addVoidedPurchase(v: VoidedPurchase): void {
    this.voided.push({ kind: 'androidpublisher#voidedPurchase', voidedTimeMillis: String(Date.now()), ...structuredClone(v) });
  }

  failNext(failure: Failure, options: { pathIncludes?: string; times?: number } = {}): void {
    this.failures.push({ failure, pathIncludes: options.pathIncludes, remaining: options.times ?? 1 });
  }

  /** Fails API calls at random from now on (null stops it); scripted `failNext` failures come first. */
  failRandomly(options: RandomFailures | null): void {
    this.chaos = options;
  }

  rejectCredentials(mode: 'token' | 'api401' | 'api403' | null): void {
    this.credentialMode = mode;
  }

  acknowledgements(): string[] {
    return [...this.acked];
  }

  consumptions(): string[] {
    return [...this.consumed];
  }

  async close(): Promise<void> {
    for (const t of this.hangs) clearTimeout(t);
    this.hangs.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  // ---------------------------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';
    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch {
      sendJson(res, 413, googleError(400, 'Request body too large.'));
      return;
    }

    if (url.pathname === '/token') {
      this.tokenRequests++;
      if (method !== 'POST') return sendJson(res, 405, { error: 'invalid_request', error_description: 'POST only' });
      const r = await this.issueToken(raw.toString('utf8'));
      return sendJson(res, r.status, r.body);
    }
    if (url.pathname.startsWith('/_fake/')) return this.handleScripting(method, url.pathname, raw, res);

    const query = Object.fromEntries(url.searchParams);
    const text = raw.toString('utf8');
    let body: unknown = undefined;
    if (text !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    const path = safeDecode(url.pathname);
    this.calls.push({ method, path, query, body });

    const authz = req.headers.authorization ?? '';
    const bearer = /^Bearer (.+)$/i.exec(authz)?.[1];
    const expiresAt = bearer === undefined ? undefined : this.accessTokens.get(bearer);
    if (expiresAt === undefined || expiresAt <= Date.now()) return sendJson(res, 401, googleError(401));
    if (this.credentialMode === 'api401') return sendJson(res, 401, googleError(401));
    if (this.credentialMode === 'api403') {
      return sendJson(res, 403, googleError(403, 'The current user has insufficient permissions to perform the requested operation.', 'permissionDenied'));
    }

    const failure = this.takeFailure(path) ?? this.randomFailure();
    if (failure !== undefined) {
      if ('hangMs' in failure) {
        const timer = setTimeout(() => {
          this.hangs.delete(timer);
          if (!res.destroyed) sendJson(res, 503, googleError(503));
        }, failure.hangMs);
        this.hangs.add(timer);
        res.on('close', () => {
          clearTimeout(timer);
          this.hangs.delete(timer);
        });
        return;
      }
      return sendJson(res, failure.status, failure.body ?? googleError(failure.status));
    }

    try {
      const out = this.route(method, url.pathname, query);
      if (out === undefined) {
        res.writeHead(204).end();
      } else {
        sendJson(res, 200, out);
      }
    } catch (err) {
      if (err instanceof HttpError) return sendJson(res, err.status, err.body);
      throw err;
    }
  }

  private randomFailure(): Failure | undefined {
    const chaos = this.chaos;
    if (chaos === null) return undefined;
    const random = chaos.random ?? Math.random;
    if (random() >= chaos.rate) return undefined;
    this.randomFailures++;
    return random() < 0.5 ? { status: random() < 0.5 ? 500 : 503 } : { hangMs: chaos.hangMs };
  }

  private takeFailure(path: string): Failure | undefined {
    const i = this.failures.findIndex((f) => f.pathIncludes === undefined || path.includes(f.pathIncludes));
    if (i < 0) return undefined;
    const pending = this.failures[i]!;
    pending.remaining--;
    if (pending.remaining <= 0) this.failures.splice(i, 1);
    return pending.failure;
  }

  private async issueToken(form: string): Promise<{ status: number; body: unknown }> {
    const params = new URLSearchParams(form);
    if (params.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
      return { status: 400, body: { error: 'unsupported_grant_type', error_description: 'Invalid grant_type: ' + (params.get('grant_type') ?? '') } };
    }
    if (this.credentialMode === 'token') {
      return { status: 401, body: { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' } };
    }
    const assertion = params.get('assertion') ?? '';
    try {
      const { payload } = await jwtVerify(assertion, this.publicKey, {
        algorithms: ['RS256'],
        issuer: this.serviceAccount.client_email,
        audience: [this.tokenUrl, GOOGLE_TOKEN_URL],
      });
      const scopes = typeof payload['scope'] === 'string' ? payload['scope'].split(' ') : [];
      if (!scopes.includes(ANDROIDPUBLISHER_SCOPE)) {
        return { status: 400, body: { error: 'invalid_scope', error_description: 'Invalid OAuth scope or ID token audience provided.' } };
      }
    } catch (err) {
      return { status: 400, body: { error: 'invalid_grant', error_description: `Invalid JWT: ${(err as Error).message}` } };
    }
    const accessToken = `ya29.fake-${randomBytes(24).toString('base64url')}`;
    this.accessTokens.set(accessToken, Date.now() + this.accessTokenTtlSeconds * 1000);
    return { status: 200, body: { access_token: accessToken, expires_in: this.accessTokenTtlSeconds, token_type: 'Bearer' } };
  }

  private route(method: string, rawPath: string, query: Record<string, string>): unknown {
    let m = PRODUCT_RE.exec(rawPath);
    if (m !== null) {
      const [packageName, productId, token] = [m[1]!, m[2]!, m[3]!].map(safeDecode) as [string, string, string];
      const action = m[4];
      if (method !== (action === undefined ? 'GET' : 'POST')) throw methodNotFound();
      const p = this.products.get(token);
      if (p === undefined || p.packageName !== packageName || p.productId !== productId) throw new HttpError(404, NOT_FOUND());
      if (action === undefined) return productResource(p);
      if (action === 'acknowledge') {
        if (p.purchaseState !== 0 || p.acknowledgementState === 1) throw new HttpError(400, INVALID_STATE());
        p.acknowledgementState = 1;
        this.acked.push(token);
        return undefined;
      }
      if (p.purchaseState !== 0 || p.consumptionState === 1) throw new HttpError(400, INVALID_STATE());
      p.consumptionState = 1;
      this.consumed.push(token);
      return undefined;
    }
    m = SUBSCRIPTION_V2_RE.exec(rawPath);
    if (m !== null) {
      if (method !== 'GET') throw methodNotFound();
      const s = this.findSubscription(safeDecode(m[1]!), safeDecode(m[2]!));
      return structuredClone(s.resource);
    }
    m = SUBSCRIPTION_ACK_RE.exec(rawPath);
    if (m !== null) {
      if (method !== 'POST') throw methodNotFound();
      const [packageName, subscriptionId, token] = [m[1]!, m[2]!, m[3]!].map(safeDecode) as [string, string, string];
      const s = this.findSubscription(packageName, token);
      const items = s.resource.lineItems ?? [];
      if (items.length > 0 && !items.some((li) => li.productId === subscriptionId)) throw new HttpError(404, NOT_FOUND());
      const r = s.resource;
      if (r.acknowledgementState === 'ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED' || r.subscriptionState === 'SUBSCRIPTION_STATE_PENDING') {
        throw new HttpError(400, INVALID_STATE());
      }
      r.acknowledgementState = 'ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED';
      this.acked.push(token);
      return undefined;
    }
    m = VOIDED_RE.exec(rawPath);
    if (m !== null) {
      if (method !== 'GET') throw methodNotFound();
      return this.listVoided(query);
    }
    throw methodNotFound();
  }

  private findSubscription(packageName: string, token: string): StoredSubscription {
    const s = this.subscriptions.get(token);
    if (s === undefined || (s.packageName !== undefined && s.packageName !== packageName)) throw new HttpError(404, NOT_FOUND());
    return s;
  }

  private listVoided(query: Record<string, string>): androidpublisher_v3.Schema$VoidedPurchasesListResponse {
    const now = Date.now();
    const start = query['startTime'] !== undefined ? Number(query['startTime']) : now - THIRTY_DAYS_MS;
    const end = query['endTime'] !== undefined ? Number(query['endTime']) : now;
    const maxResults = query['maxResults'] !== undefined ? Number(query['maxResults']) : 1000;
    const type = query['type'] !== undefined ? Number(query['type']) : 0;
    if (![start, end, maxResults, type].every(Number.isFinite) || start > end || maxResults < 1 || maxResults > 1000) {
      throw new HttpError(400, googleError(400, 'Invalid Value', 'invalid'));
    }
    // type 0 (default): only one-time products; a token scripted as a subscription counts as a subscription.
    const matching = this.voided
      .filter((v) => {
        const t = Number(v.voidedTimeMillis ?? 0);
        return t >= start && t <= end && (type === 1 || !this.subscriptions.has(v.purchaseToken ?? ''));
      })
      .sort((a, b) => Number(a.voidedTimeMillis ?? 0) - Number(b.voidedTimeMillis ?? 0));
    let offset = 0;
    if (query['token'] !== undefined) {
      offset = Number(Buffer.from(query['token'], 'base64url').toString('utf8').replace(/^offset:/, ''));
      if (!Number.isInteger(offset) || offset < 0) throw new HttpError(400, googleError(400, 'Invalid Value', 'invalid'));
    } else if (query['startIndex'] !== undefined) {
      offset = Number(query['startIndex']);
    }
    const page = matching.slice(offset, offset + maxResults);
    const next = offset + page.length;
    const out: androidpublisher_v3.Schema$VoidedPurchasesListResponse = {
      pageInfo: { totalResults: matching.length, resultPerPage: maxResults, startIndex: offset },
    };
    if (page.length > 0) out.voidedPurchases = structuredClone(page);
    if (next < matching.length) out.tokenPagination = { nextPageToken: Buffer.from(`offset:${next}`).toString('base64url') };
    return out;
  }

  private handleScripting(method: string, path: string, raw: Buffer, res: ServerResponse): void {
    if (method === 'GET' && path === '/_fake/calls') return sendJson(res, 200, this.calls);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return sendJson(res, 400, { error: 'body must be JSON' });
    }
    const m = /^\/_fake\/(products|subscriptions)\/([^/]+)$/.exec(path);
    if (method === 'POST' && m !== null) {
      const token = safeDecode(m[2]!);
      if (m[1] === 'products') this.setProduct(token, body as ProductPurchaseScript);
      else this.setSubscription(token, body as SubscriptionPurchaseV2);
      return sendJson(res, 200, { ok: true, token });
    }
    if (method === 'POST' && path === '/_fake/voided') {
      this.addVoidedPurchase(body as VoidedPurchase);
      return sendJson(res, 200, { ok: true });
    }
    sendJson(res, 404, { error: 'unknown fake endpoint' });
  }
}

function productResource(p: ProductPurchaseScript): androidpublisher_v3.Schema$ProductPurchase {
  const { packageName: _packageName, ...rest } = structuredClone(p);
  return { kind: 'androidpublisher#productPurchase', developerPayload: '', ...rest };
}

function methodNotFound(): HttpError {
  return new HttpError(404, googleError(404, 'Method not found.'));
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

/** Standalone: start on PORT (default 4700), write the service account key file, print the env to use. */
export async function main(): Promise<FakeGooglePlay> {
  const port = Number(process.env['PORT'] ?? 4700);
  const fake = await FakeGooglePlay.start({ port });
  const dir = await mkdtemp(join(tmpdir(), 'fake-google-play-'));
  const keyFile = join(dir, `service-account-${randomUUID()}.json`);
  await writeFile(keyFile, JSON.stringify(fake.serviceAccount, null, 2), { mode: 0o600 });
  const lines = [
    `Fake Google Play Developer API listening on ${fake.url}`,
    '',
    'Point the service at it:',
    `  export GOOGLE_SERVICE_ACCOUNT_KEY_FILE=${keyFile}`,
    `  export GOOGLE_API_ROOT_URL=${fake.rootUrl}`,
    `  export GOOGLE_TOKEN_URL=${fake.tokenUrl}`,
    '',
    'Script it:',
    `  curl -X POST ${fake.url}/_fake/products/TOKEN -H 'content-type: application/json' -d '{"packageName":"com.example.app","productId":"coins_100","purchaseState":0}'`,
    `  curl -X POST ${fake.url}/_fake/subscriptions/TOKEN -H 'content-type: application/json' -d '{"subscriptionState":"SUBSCRIPTION_STATE_ACTIVE","lineItems":[{"productId":"premium","expiryTime":"2030-01-01T00:00:00Z"}]}'`,
    `  curl -X POST ${fake.url}/_fake/voided -H 'content-type: application/json' -d '{"purchaseToken":"TOKEN","orderId":"GPA.1","voidedReason":1,"voidedSource":0}'`,
    `  curl ${fake.url}/_fake/calls`,
  ];
  serveUntilSignal(lines, () => fake.close());
  return fake;
}

runWhenEntryPoint(import.meta.url, main);
