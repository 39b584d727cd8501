// The HTTP edge: GraphQL on /graphql, /healthz, /readyz, /metrics. Plain node:http in front of Apollo so the
// hot path has no framework between the socket and the GraphQL executor.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ApolloServer, HeaderMap, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginInlineTraceDisabled } from '@apollo/server/plugin/disabled';
import type { GraphQLFormattedError, GraphQLSchema } from 'graphql';
import type { Logger } from 'pino';
import { ArgumentValidationError } from 'type-graphql';
import type { Authenticator, Principal } from '../auth/authenticator.js';
import type { PubSubPushVerifier } from '../auth/pubsub-push.js';
import { AppError } from '../domain/errors.js';
import type { GraphQLContext } from '../graphql/context.js';
import { jitGateway } from '../graphql/jit-executor.js';
import { limitsPlugin } from '../graphql/limits.js';
import { isDatabaseUnavailable } from '../persistence/database-errors.js';
import type { Services } from '../services/container.js';
import { MAX_APPLE_NOTIFICATION_BYTES } from '../services/apple-notifications.js';
import { MAX_GOOGLE_PUSH_BYTES } from '../services/google-notifications.js';
import type { Metrics } from './metrics.js';
import type { MetricsAccess } from './monitoring.js';

export interface HttpServerOptions {
  schema: GraphQLSchema;
  services: Services;
  authenticator: Authenticator;
  metrics: Metrics;
  log: Logger;
  maxDepth: number;
  maxComplexity: number;
  /** Schema introspection and "did you mean" suggestions in errors (off by default outside development mode). */
  introspection: boolean;
  /** Development mode: every caller is the server, so only requests addressed to a loopback name are served. */
  devMode: boolean;
  /** Who may read /metrics on this port: 'open', 'none' (served on a port of its own), or a check of the request. */
  metricsAccess: MetricsAccess;
  /** All request bodies being read at once may hold at most this many bytes; past it new ones get 503. */
  maxBufferedBodyBytes: number;
  /** Verifies Google's Pub/Sub push tokens; null accepts unauthenticated pushes. */
  pubsubVerifier: PubSubPushVerifier | null;
  /** Readiness beyond "the process runs": database reachable and migrations applied. */
  ready: () => Promise<{ ok: boolean; detail: Record<string, unknown> }>;
}

/** Legacy App Store receipts can be several megabytes; queries never need to be. */
export const MAX_GRAPHQL_BODY_BYTES = 6 * 1024 * 1024;
const ROUTES = ['/graphql', '/healthz', '/readyz', '/metrics', '/notifications/google', '/notifications/apple'];
const MAX_QUERY_CHARS = 100_000;
/** What a client that went away before its answer is counted as (nginx's "client closed request"). */
const CLIENT_CLOSED = 499;
/** Seconds a client is asked to wait after a 503 (database or capacity). */
const RETRY_AFTER_SECONDS = 5;

/** An answer already sent while reading a body (413, 503): the handler just returns. */
const ANSWERED = Symbol('answered');

export class HttpServer {
  readonly server: Server;
  private readonly apollo: ApolloServer<GraphQLContext>;
  private inFlight = 0;
  /** Bytes of request bodies being read right now, across all connections. */
  private bufferedBytes = 0;
  private draining = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly o: HttpServerOptions) {
    this.apollo = new ApolloServer<GraphQLContext>({
      gateway: jitGateway(o.schema),
      // Cache hints and inline traces wrap every field resolver; entitlement answers are per user and must not be
      // cached by HTTP intermediaries anyway.
      plugins: [
        ApolloServerPluginCacheControlDisabled(),
        ApolloServerPluginInlineTraceDisabled(),
        limitsPlugin<GraphQLContext>(o.schema, { maxDepth: o.maxDepth, maxComplexity: o.maxComplexity }),
        this.errorMetricsPlugin(),
      ],
      formatError: (formatted, error) => this.formatError(formatted, error),
      includeStacktraceInErrorResponses: false,
      logger: {
        debug: (msg) => o.log.debug({ component: 'apollo' }, String(msg)),
        info: (msg) => o.log.info({ component: 'apollo' }, String(msg)),
        warn: (msg) => o.log.warn({ component: 'apollo' }, String(msg)),
        error: (msg) => o.log.error({ component: 'apollo' }, String(msg)),
      },
      introspection: o.introspection,
      hideSchemaDetailsFromClientErrors: !o.introspection,
      // Shutdown is ours (main.ts): drain HTTP first, then stop Apollo, then close the database.
      stopOnTerminationSignals: false,
    });
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 65_000;
    // Slow clients hold a socket and a buffer each: headers within 20 s, the whole request within a minute
    // (a 4 MB receipt from a slow phone connection fits).
    this.server.headersTimeout = 20_000;
    this.server.requestTimeout = 60_000;
  }

  async listen(port: number, host: string): Promise<{ port: number; host: string }> {
    await this.apollo.start();
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    const addr = this.server.address();
    return { port: typeof addr === 'object' && addr ? addr.port : port, host };
  }

  /** Stops accepting, lets in-flight requests finish (up to timeoutMs), then stops Apollo. */
  async close(timeoutMs: number): Promise<void> {
    this.draining = true;
    if (!this.server.listening) return; // a worker never listened
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.inFlight > 0) {
      await Promise.race([new Promise<void>((r) => this.idleWaiters.push(r)), delay(timeoutMs)]);
    }
    this.server.closeAllConnections();
    await closed;
    await this.apollo.stop();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const requestId = headerValue(req.headers['x-request-id'])?.slice(0, 128) || randomUUID();
    res.setHeader('x-request-id', requestId);
    const path = (req.url ?? '/').split('?')[0]!;
    const route = ROUTES.includes(path) ? path : 'other';
    this.inFlight++;
    try {
      if (this.draining) res.setHeader('connection', 'close');
      if (this.o.devMode && !isLoopbackHost(req.headers.host)) {
        // Every caller has full access in development mode: a page on another site that rebinds its DNS name to
        // 127.0.0.1 must not be one.
        return sendJson(res, 403, { errors: [{ message: 'development mode serves only requests addressed to localhost or a loopback address (Host header)', extensions: { code: 'FORBIDDEN' } }] });
      }
      if (path === '/graphql') await this.graphql(req, res, requestId);
      else if (path === '/healthz') sendJson(res, 200, { status: 'ok' });
      else if (path === '/readyz') await this.readiness(res);
      else if (path === '/metrics' && this.o.metricsAccess !== 'none') await this.metricsEndpoint(req, res);
      else if (path === '/notifications/google') await this.googleNotification(req, res, requestId);
      else if (path === '/notifications/apple') await this.appleNotification(req, res, requestId);
      else sendJson(res, 404, { error: 'not found', paths: ROUTES.filter((r) => r !== '/metrics' || this.o.metricsAccess !== 'none') });
    } catch (err) {
      if (clientWentAway(req, res)) {
        // Nothing can be answered (an aborted upload ends here too, with a reset code like a database's).
        this.o.log.debug({ requestId, err: summary(err) }, 'client closed the connection before the answer');
      } else if (isDatabaseUnavailable(err)) {
        // Store notifications land here: the 503 makes Apple and Pub/Sub deliver them again.
        this.o.log.warn({ err: summary(err), requestId }, 'database unavailable');
        if (!res.headersSent) {
          res.setHeader('retry-after', String(RETRY_AFTER_SECONDS));
          sendJson(res, 503, { errors: [{ message: 'the database is unavailable; try again shortly', extensions: { code: 'SERVICE_UNAVAILABLE' } }] });
        } else res.end();
      } else {
        this.o.log.error({ err, requestId }, 'request failed');
        if (!res.headersSent) sendJson(res, 500, { errors: [{ message: 'internal error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
        else res.end();
      }
    } finally {
      this.inFlight--;
      const seconds = (performance.now() - started) / 1000;
      const status = res.writableEnded ? res.statusCode : CLIENT_CLOSED;
      this.o.metrics.observeRequest(req.method ?? 'GET', route, status, seconds);
      const level = status >= 500 && status !== 503 ? 'error' : status === 503 ? 'warn' : 'debug';
      this.o.log[level]({ requestId, method: req.method, path: route, status, ms: Math.round(seconds * 1000) }, 'request');
      if (this.inFlight === 0 && this.idleWaiters.length > 0) this.idleWaiters.splice(0).forEach((w) => w());
    }
  }

  private async graphql(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    if (method !== 'POST' && method !== 'GET') {
      res.setHeader('allow', 'GET, POST');
      return sendJson(res, 405, { errors: [{ message: 'use POST (or GET for queries)', extensions: { code: 'METHOD_NOT_ALLOWED' } }] });
    }
    let principal: Principal;
    try {
      principal = await this.o.authenticator.authenticate(headerValue(req.headers.authorization), headerValue(req.headers['x-api-key']));
    } catch (err) {
      if (err instanceof AppError) {
        this.o.metrics.graphqlError(err.code);
        res.setHeader('www-authenticate', 'Bearer');
        return sendJson(res, 401, { errors: [{ message: err.message, extensions: { code: err.code } }] });
      }
      throw err;
    }
    let body: unknown = undefined;
    if (method === 'POST') {
      const text = await this.readBody(req, res, MAX_GRAPHQL_BODY_BYTES);
      if (text === ANSWERED) return;
      try {
        body = text.length > 0 ? JSON.parse(text) : undefined;
      } catch {
        return sendJson(res, 400, { errors: [{ message: 'request body is not valid JSON', extensions: { code: 'BAD_REQUEST' } }] });
      }
    }
    const query = method === 'POST' ? (body as { query?: unknown } | undefined)?.query : new URL(req.url ?? '/', 'http://x').searchParams.get('query');
    if (typeof query === 'string' && query.length > MAX_QUERY_CHARS) {
      return sendJson(res, 413, { errors: [{ message: `query text longer than ${MAX_QUERY_CHARS} characters`, extensions: { code: 'QUERY_TOO_LARGE' } }] });
    }
    const headers = new HeaderMap();
    for (const [key, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
    }
    const url = req.url ?? '/graphql';
    const services = this.o.services;
    const result = await this.apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method, headers, search: url.includes('?') ? url.slice(url.indexOf('?')) : '', body },
      context: async () => ({ services, principal, requestId, now: services.clock() }),
    });
    res.statusCode = result.status ?? 200;
    for (const [key, value] of result.headers) res.setHeader(key, value);
    if (result.body.kind === 'complete') {
      res.end(result.body.string);
    } else {
      for await (const chunk of result.body.asyncIterator) res.write(chunk);
      res.end();
    }
  }

  /** Pub/Sub push endpoint for Google Play real-time developer notifications. */
  private async googleNotification(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const handler = this.o.services.googleNotifications;
    if (!handler) return sendJson(res, 404, { error: 'Google Play is not configured on this server' });
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return sendJson(res, 405, { error: 'use POST' });
    }
    if (this.o.pubsubVerifier) {
      const problem = await this.o.pubsubVerifier.problem(headerValue(req.headers.authorization));
      if (problem) {
        this.o.log.warn({ requestId, problem }, 'Google notification push refused');
        return sendJson(res, 401, { error: problem });
      }
    }
    const text = await this.readBody(req, res, MAX_GOOGLE_PUSH_BYTES);
    if (text === ANSWERED) return;
    let envelope: unknown;
    try {
      envelope = JSON.parse(text);
    } catch {
      this.o.log.warn({ requestId, body: text.slice(0, 500) }, 'Google notification push with a body that is not JSON');
      return sendJson(res, 400, { error: 'body is not JSON' });
    }
    // A database failure propagates: the 503 makes Pub/Sub deliver the notification again.
    const result = await handler.intake(envelope, this.o.pubsubVerifier !== null);
    if (result.status === 429) {
      // Unauthenticated pushes over the instance's rate: Pub/Sub retries a 429 with backoff, so nothing is lost.
      // Debug only: a flood would otherwise write a warning per push (iap_http_requests_total counts the 429s).
      this.o.log.debug({ requestId }, 'unauthenticated Google notification push over the rate limit');
      res.setHeader('retry-after', String(result.retryAfterSeconds));
      return sendJson(res, 429, { error: result.error });
    }
    if (result.status !== 200) {
      this.o.log.warn({ requestId, error: result.error, body: text.slice(0, 500) }, 'malformed Google notification push');
      return sendJson(res, 400, { error: result.error });
    }
    this.o.log.info({ requestId, duplicate: result.duplicate, outcome: result.outcome }, 'Google notification');
    sendJson(res, 200, { ok: true, duplicate: result.duplicate, outcome: result.outcome });
  }

  /** App Store Server Notifications V2 endpoint (the URL set in App Store Connect, App Information). */
  private async appleNotification(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const handler = this.o.services.appleNotifications;
    if (!handler) return sendJson(res, 404, { error: 'the App Store is not configured on this server' });
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return sendJson(res, 405, { error: 'use POST' });
    }
    const text = await this.readBody(req, res, MAX_APPLE_NOTIFICATION_BYTES);
    if (text === ANSWERED) return;
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      this.o.log.warn({ requestId, body: text.slice(0, 500) }, 'App Store notification with a body that is not JSON');
      return sendJson(res, 400, { error: 'body is not JSON' });
    }
    // A database failure propagates: the 503 makes Apple send the notification again.
    const result = await handler.intake(body);
    if (result.status !== 200) {
      this.o.log.warn({ requestId, status: result.status, error: result.error }, 'App Store notification refused');
      return sendJson(res, result.status, { error: result.error });
    }
    this.o.log.info({ requestId, duplicate: result.duplicate, outcome: result.outcome }, 'App Store notification');
    sendJson(res, 200, { ok: true, duplicate: result.duplicate, outcome: result.outcome });
  }

  private async readiness(res: ServerResponse): Promise<void> {
    if (this.draining) return sendJson(res, 503, { status: 'draining' });
    const { ok, detail } = await this.o.ready().catch((err: Error) => {
      this.o.log.warn({ err }, 'readiness check failed');
      return { ok: false, detail: { error: 'database unreachable' } };
    });
    sendJson(res, ok ? 200 : 503, { status: ok ? 'ready' : 'not ready', ...detail });
  }

  private async metricsEndpoint(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const access = this.o.metricsAccess;
    if (access !== 'open' && access !== 'none' && !(await access(req))) {
      res.setHeader('www-authenticate', 'Bearer');
      return sendJson(res, 401, { error: 'metrics need "Authorization: Bearer <METRICS_TOKEN or a server API key>", or set METRICS_PORT to serve them on a port of their own' });
    }
    res.statusCode = 200;
    res.setHeader('content-type', this.o.metrics.contentType);
    res.end(await this.o.metrics.render());
  }

  /**
   * Reads a whole request body of at most `maxBytes`, within the instance's budget for bodies being read at once.
   * Past either, answers (413 or 503) with `Connection: close`: the rest of the body is never read, so the
   * connection cannot carry another request.
   */
  private async readBody(req: IncomingMessage, res: ServerResponse, maxBytes: number): Promise<string | typeof ANSWERED> {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > maxBytes) return this.refuseBody(res, 413, maxBytes);
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of req) {
        size += (chunk as Buffer).length;
        this.bufferedBytes += (chunk as Buffer).length;
        if (size > maxBytes) return this.refuseBody(res, 413, maxBytes);
        if (this.bufferedBytes > this.o.maxBufferedBodyBytes) return this.refuseBody(res, 503, maxBytes);
        chunks.push(chunk as Buffer);
      }
    } finally {
      this.bufferedBytes -= size;
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  private refuseBody(res: ServerResponse, status: 413 | 503, maxBytes: number): typeof ANSWERED {
    res.setHeader('connection', 'close');
    if (status === 503) {
      res.setHeader('retry-after', '1');
      this.o.log.warn({ bufferedBytes: this.bufferedBytes }, 'too many request bodies being read at once; refusing new ones');
    }
    const error =
      status === 413
        ? { message: `request body larger than ${maxBytes} bytes`, extensions: { code: 'PAYLOAD_TOO_LARGE' } }
        : { message: 'the server is reading too many request bodies at once; try again shortly', extensions: { code: 'SERVICE_UNAVAILABLE' } };
    sendJson(res, status, { errors: [error] });
    return ANSWERED;
  }

  private errorMetricsPlugin(): ApolloServerPlugin<GraphQLContext> {
    const { metrics, log } = this.o;
    return {
      async requestDidStart() {
        return {
          async didEncounterErrors({ errors, contextValue }) {
            for (const error of errors) {
              const original = rootCause(error);
              if (isDatabaseUnavailable(original)) {
                log.warn({ err: summary(original), requestId: contextValue.requestId, path: error.path }, 'database unavailable');
                continue;
              }
              const expected =
                original instanceof AppError ||
                original instanceof ArgumentValidationError ||
                (error.extensions?.code && error.extensions.code !== 'INTERNAL_SERVER_ERROR') ||
                isClientRefusal(error);
              if (!expected) log.error({ err: original, requestId: contextValue.requestId, path: error.path }, 'unexpected error in resolver');
            }
          },
          async willSendResponse({ response, operationName, operation }) {
            const errors = response.body.kind === 'single' ? (response.body.singleResult.errors ?? []) : [];
            // The database was down: the whole answer is a 503 the client may retry (writes are idempotent).
            if (errors.some((e) => e.extensions?.code === 'SERVICE_UNAVAILABLE')) {
              response.http.status = 503;
              response.http.headers.set('retry-after', String(RETRY_AFTER_SECONDS));
            }
            // Only operations that resolved get their own series: made-up names cannot use up the label slots.
            metrics.graphqlOperation(operation ? (operationName ?? 'anonymous') : 'invalid', errors.length > 0 ? 'error' : 'ok');
            for (const e of errors) metrics.graphqlError(String(e.extensions?.code ?? 'UNKNOWN'));
          },
        };
      },
    };
  }

  /** Maps every error to a stable `extensions.code`; unexpected errors are logged and hidden from the caller. */
  private formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
    const original = rootCause(error);
    if (original instanceof AppError) {
      return { ...formatted, message: original.message, extensions: { code: original.code, ...original.details } };
    }
    if (original instanceof ArgumentValidationError) {
      const problems = original.extensions.validationErrors as { property: string; constraints?: Record<string, string>; children?: unknown[] }[];
      const details = flattenValidation(problems);
      return { ...formatted, message: `invalid input: ${details.join('; ')}`, extensions: { code: 'BAD_USER_INPUT', problems: details } };
    }
    if (isDatabaseUnavailable(original)) {
      return { message: 'the database is unavailable; try again shortly', path: formatted.path, locations: formatted.locations, extensions: { code: 'SERVICE_UNAVAILABLE' } };
    }
    const code = formatted.extensions?.code;
    // Apollo's own wording names Apollo and how to configure it: say what the caller needs to know.
    if (code === 'GRAPHQL_VALIDATION_FAILED' && /introspection is not allowed/i.test(formatted.message)) {
      return { ...formatted, message: 'introspection is turned off on this server (GRAPHQL_INTROSPECTION); the schema is published as schema.graphql' };
    }
    if (typeof code === 'string' && code !== 'INTERNAL_SERVER_ERROR') return formatted;
    // Apollo refuses some requests with an HTTP 4xx and no code (a persisted query whose hash does not match,
    // an unsupported version): the caller's fault, not a bug.
    if (isClientRefusal(error)) return { ...formatted, extensions: { ...formatted.extensions, code: 'BAD_REQUEST' } };
    // Logged with the request id by errorMetricsPlugin; the caller sees nothing of the internals.
    return { message: 'internal error', path: formatted.path, locations: formatted.locations, extensions: { code: 'INTERNAL_SERVER_ERROR' } };
  }
}

/** The error a resolver threw, under the GraphQL error wrappers (Apollo's, graphql-jit's) around it. */
function rootCause(error: unknown): unknown {
  let current = error;
  for (let depth = 0; depth < 5; depth++) {
    const inner = (current as { originalError?: unknown } | null)?.originalError;
    if (!inner) break;
    current = inner;
  }
  return current;
}

function flattenValidation(errors: { property: string; constraints?: Record<string, string>; children?: unknown[] }[], prefix = ''): string[] {
  return errors.flatMap((e) => {
    const path = prefix ? `${prefix}.${e.property}` : e.property;
    const own = Object.values(e.constraints ?? {}).map((m) => `${path}: ${m}`);
    return [...own, ...flattenValidation((e.children ?? []) as typeof errors, path)];
  });
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  res.end(text);
}

/** An error Apollo raised with an HTTP 4xx and no code (a persisted query whose hash does not match, ...). */
function isClientRefusal(error: unknown): boolean {
  const status = (error as { extensions?: { http?: { status?: number } } } | null)?.extensions?.http?.status ?? 0;
  return status >= 400 && status < 500;
}

/**
 * The client closed its connection (aborted upload, gave up waiting): not a server error. Decided by the socket,
 * not the error: a database or store connection reset has the same code. (Not req.destroyed either: a request
 * whose body was read to the end is destroyed too, and must still get its answer.)
 */
function clientWentAway(req: IncomingMessage, res: ServerResponse): boolean {
  return (req.socket?.destroyed ?? true) && !res.writableFinished;
}

/** A database error for a warning line: what failed, without a stack per request during an outage. */
function summary(err: unknown): { message: string; code?: string } {
  const e = err as { message?: string; code?: string };
  return { message: String(e?.message ?? err).slice(0, 300), code: e?.code };
}

/** Host header names a loopback address, with or without a port (`localhost`, `127.x.y.z`, `[::1]`). */
export function isLoopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  const match = /^(?:\[(::1)\]|([^:[\]]+))(?::\d{1,5})?$/.exec(host.toLowerCase());
  if (!match) return false;
  if (match[1]) return true;
  const name = match[2]!.replace(/\.$/, '');
  return name === 'localhost' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
