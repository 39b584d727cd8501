// The HTTP edge: GraphQL on /graphql, /healthz, /readyz, /metrics. Plain node:http in front of Apollo so the
// hot path has no framework between the socket and the GraphQL executor.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ApolloServer, HeaderMap, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginInlineTraceDisabled } from '@apollo/server/plugin/disabled';
import { GraphQLError, type DocumentNode, type GraphQLFormattedError, type GraphQLSchema } from 'graphql';
import type { Logger } from 'pino';
import { ArgumentValidationError } from 'type-graphql';
import type { Authenticator, Principal } from '../auth/authenticator.js';
import type { PubSubPushVerifier } from '../auth/pubsub-push.js';
import { AppError } from '../domain/errors.js';
import type { GraphQLContext } from '../graphql/context.js';
import { jitGateway } from '../graphql/jit-executor.js';
import { queryComplexity, queryDepth } from '../graphql/limits.js';
import type { Services } from '../services/container.js';
import type { Metrics } from './metrics.js';

export interface HttpServerOptions {
  schema: GraphQLSchema;
  services: Services;
  authenticator: Authenticator;
  metrics: Metrics;
  log: Logger;
  maxDepth: number;
  maxComplexity: number;
  /** Verifies Google's Pub/Sub push tokens; null accepts unauthenticated pushes. */
  pubsubVerifier: PubSubPushVerifier | null;
  /** Readiness beyond "the process runs": database reachable and migrations applied. */
  ready: () => Promise<{ ok: boolean; detail: Record<string, unknown> }>;
}

/** Legacy App Store receipts can be several megabytes; queries never need to be. */
const MAX_BODY_BYTES = 6 * 1024 * 1024;
const ROUTES = ['/graphql', '/healthz', '/readyz', '/metrics', '/notifications/google', '/notifications/apple'];
const MAX_QUERY_CHARS = 100_000;

export class HttpServer {
  readonly server: Server;
  private readonly apollo: ApolloServer<GraphQLContext>;
  private inFlight = 0;
  private draining = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly o: HttpServerOptions) {
    this.apollo = new ApolloServer<GraphQLContext>({
      gateway: jitGateway(o.schema),
      // Cache hints and inline traces wrap every field resolver; entitlement answers are per user and must not be
      // cached by HTTP intermediaries anyway.
      plugins: [ApolloServerPluginCacheControlDisabled(), ApolloServerPluginInlineTraceDisabled(), this.limitsPlugin(), this.errorMetricsPlugin()],
      formatError: (formatted, error) => this.formatError(formatted, error),
      includeStacktraceInErrorResponses: false,
      logger: {
        debug: (msg) => o.log.debug({ component: 'apollo' }, String(msg)),
        info: (msg) => o.log.info({ component: 'apollo' }, String(msg)),
        warn: (msg) => o.log.warn({ component: 'apollo' }, String(msg)),
        error: (msg) => o.log.error({ component: 'apollo' }, String(msg)),
      },
      introspection: true,
      // Shutdown is ours (main.ts): drain HTTP first, then stop Apollo, then close the database.
      stopOnTerminationSignals: false,
    });
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 65_000;
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
      if (path === '/graphql') await this.graphql(req, res, requestId);
      else if (path === '/healthz') sendJson(res, 200, { status: 'ok' });
      else if (path === '/readyz') await this.readiness(res);
      else if (path === '/metrics') await this.metricsEndpoint(res);
      else if (path === '/notifications/google') await this.googleNotification(req, res, requestId);
      else if (path === '/notifications/apple') await this.appleNotification(req, res, requestId);
      else sendJson(res, 404, { error: 'not found', paths: ROUTES });
    } catch (err) {
      this.o.log.error({ err, requestId }, 'request failed');
      if (!res.headersSent) sendJson(res, 500, { errors: [{ message: 'internal error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
      else res.end();
    } finally {
      this.inFlight--;
      const seconds = (performance.now() - started) / 1000;
      this.o.metrics.observeRequest(req.method ?? 'GET', route, res.statusCode, seconds);
      const level = res.statusCode >= 500 ? 'error' : 'debug';
      this.o.log[level]({ requestId, method: req.method, path: route, status: res.statusCode, ms: Math.round(seconds * 1000) }, 'request');
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
      const text = await readBody(req);
      if (text === null) return sendJson(res, 413, { errors: [{ message: 'request body too large', extensions: { code: 'PAYLOAD_TOO_LARGE' } }] });
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
    const text = await readBody(req);
    if (text === null) return sendJson(res, 413, { error: 'body too large' });
    let envelope: unknown;
    try {
      envelope = JSON.parse(text);
    } catch {
      this.o.log.warn({ requestId, body: text.slice(0, 500) }, 'Google notification push with a body that is not JSON');
      return sendJson(res, 400, { error: 'body is not JSON' });
    }
    // A database failure propagates: the 500 makes Pub/Sub deliver the notification again.
    const result = await handler.intake(envelope, this.o.pubsubVerifier !== null);
    if (result.status === 400) {
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
    const text = await readBody(req);
    if (text === null) return sendJson(res, 413, { error: 'body too large' });
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      this.o.log.warn({ requestId, body: text.slice(0, 500) }, 'App Store notification with a body that is not JSON');
      return sendJson(res, 400, { error: 'body is not JSON' });
    }
    // A database failure propagates: the 500 makes Apple send the notification again.
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

  private async metricsEndpoint(res: ServerResponse): Promise<void> {
    res.statusCode = 200;
    res.setHeader('content-type', this.o.metrics.contentType);
    res.end(await this.o.metrics.render());
  }

  private limitsPlugin(): ApolloServerPlugin<GraphQLContext> {
    const { schema, maxComplexity, maxDepth } = this.o;
    // Apollo hands out the same DocumentNode for the same query text, so each distinct query is measured once.
    // Costs here do not depend on variables (no estimator reads arguments).
    const measured = new WeakMap<object, Map<string, string | null>>();
    // Variables this request's values cannot be coerced to: not a verdict on the query (and not to be cached for
    // it); execution reports the bad value with BAD_USER_INPUT.
    const BAD_VARIABLES = Symbol('bad variables');
    const check = (document: DocumentNode, operationName: string | undefined, variables: Record<string, unknown>): string | null | typeof BAD_VARIABLES => {
      const depth = queryDepth(document, operationName);
      if (depth > maxDepth) {
        return `query depth ${depth} exceeds the limit of ${maxDepth}`;
      }
      let cost: number;
      try {
        cost = queryComplexity(schema, document, operationName, variables);
      } catch (err) {
        if (/^Variable "\$/.test((err as Error).message)) return BAD_VARIABLES;
        // The estimator refuses documents beyond its own node limit: that is the same verdict.
        return `query too complex to estimate: ${(err as Error).message}`;
      }
      if (cost > maxComplexity) {
        return `query complexity ${cost} exceeds the limit of ${maxComplexity}`;
      }
      return null;
    };
    return {
      async requestDidStart() {
        return {
          async didResolveOperation({ request, document }) {
            const name = request.operationName ?? '';
            let byName = measured.get(document);
            if (!byName) measured.set(document, (byName = new Map()));
            let verdict = byName.get(name);
            if (verdict === undefined) {
              const result = check(document, request.operationName ?? undefined, request.variables ?? {});
              if (result === BAD_VARIABLES) return;
              verdict = result;
              byName.set(name, verdict);
            }
            if (verdict) throw new GraphQLError(verdict, { extensions: { code: 'QUERY_TOO_COMPLEX', http: { status: 400 } } });
          },
        };
      },
    };
  }

  private errorMetricsPlugin(): ApolloServerPlugin<GraphQLContext> {
    const { metrics, log } = this.o;
    return {
      async requestDidStart() {
        return {
          async didEncounterErrors({ errors, contextValue }) {
            for (const error of errors) {
              const original = rootCause(error);
              const expected = original instanceof AppError || original instanceof ArgumentValidationError || (error.extensions?.code && error.extensions.code !== 'INTERNAL_SERVER_ERROR');
              if (!expected) log.error({ err: original, requestId: contextValue.requestId, path: error.path }, 'unexpected error in resolver');
            }
          },
          async willSendResponse({ response, operationName }) {
            const errors = response.body.kind === 'single' ? (response.body.singleResult.errors ?? []) : [];
            metrics.graphqlOperation(operationName ?? 'anonymous', errors.length > 0 ? 'error' : 'ok');
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
    const code = formatted.extensions?.code;
    if (typeof code === 'string' && code !== 'INTERNAL_SERVER_ERROR') return formatted;
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

async function readBody(req: IncomingMessage): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
