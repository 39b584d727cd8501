// GraphQL fuzzing over real HTTP against the service on PostgreSQL: random documents from schema.graphql, random
// variable values (huge and NUL-bearing strings included), random credentials and envelopes. Seeded (FUZZ_SEED to
// reproduce) and bounded (FUZZ_REQUESTS, FUZZ_SECONDS). Asserts: never a 5xx nor an INTERNAL_SERVER_ERROR, the
// process alive (/healthz), RSS bounded, the limits honoured for what was executed, and no write and no protected
// data for unauthorised callers.
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join } from 'node:path';
import { buildSchema, GraphQLSchema, Kind, parse, print, type DocumentNode } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAppSchema } from '../../src/graphql/schema.js';
import { databaseDigest, digestChanges, type DatabaseDigest } from '../support/db-digest.js';
import {
  describeRequest,
  generateRequest,
  operationDepth,
  rootFields,
  selectedOperation,
  tryParse,
  type CredentialKind,
  type FuzzEnv,
  type FuzzRequest,
} from '../support/graphql-fuzz.js';
import { purchase, monthly } from '../support/purchases.js';
import { startTestApp, TEST_API_KEY, type TestApp } from '../support/test-app.js';
import { unsignedToken, userToken } from '../support/tokens.js';

const { getComplexity, fieldExtensionsEstimator, simpleEstimator } = createRequire(import.meta.url)('graphql-query-complexity') as typeof import('graphql-query-complexity');

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const TOTAL_REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 3600);
const TOTAL_SECONDS = Number(process.env.FUZZ_SECONDS ?? 35);
const CONCURRENCY = 8;
const REQUEST_TIMEOUT_MS = 10_000;
const RSS_LIMIT_BYTES = 1.5 * 1024 ** 3;
const SHRINK_BUDGET_MS = 6_000;
const MAX_DEPTH = 10; // GRAPHQL_MAX_DEPTH default
const MAX_COMPLEXITY = 1000; // GRAPHQL_MAX_COMPLEXITY default
/** Root fields any authenticated caller may read, whoever the user. */
const PUBLIC_ROOT_FIELDS = new Set(['products', '__typename', '__schema', '__type']);

// The committed schema names its roots (schema { query mutation }): the object type named Subscription is a store
// subscription, not a subscription root.
const schema = buildSchema(readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8'));

/** Keeps the service's error log lines, by request id: the cause behind an INTERNAL_SERVER_ERROR. */
class ServerErrors extends Array<Record<string, unknown>> {
  readonly byRequest = new Map<string, string[]>();
  override push(...lines: Record<string, unknown>[]): number {
    for (const line of lines) {
      if (typeof line.level !== 'number' || typeof line.requestId !== 'string') continue;
      // The access log line of a slow request says when (and whether) the service finally answered.
      const slow = line.msg === 'request' && typeof line.ms === 'number' && line.ms >= 2000;
      if (!slow && (line.level < 50 || line.msg === 'request')) continue;
      const err = line.err as { type?: string; message?: string; code?: string } | undefined;
      const text = slow
        ? `answered ${String(line.status)} after ${String(line.ms)} ms`
        : err
          ? `${line.msg}: ${err.type ?? 'Error'}: ${err.message ?? ''}${err.code ? ` [${err.code}]` : ''}`
          : String(line.msg);
      const list = this.byRequest.get(line.requestId) ?? [];
      list.push(text.slice(0, 300));
      this.byRequest.set(line.requestId, list);
      if (this.byRequest.size > 5000) this.byRequest.delete(this.byRequest.keys().next().value!);
    }
    return 0;
  }
}

interface Outcome {
  status?: number;
  json?: { data?: unknown; errors?: { message?: string; extensions?: { code?: unknown } }[] } | unknown[];
  text?: string;
  error?: string;
  ms: number;
}

interface Failure {
  kind: '5xx' | 'internal-error' | 'no-answer' | 'limits-not-enforced' | 'unauthorised-data';
  signature: string;
  detail: string;
  status?: number;
  codes: string[];
  cause?: string;
  response?: string;
}

interface Group {
  signature: string;
  count: number;
  /** A few of the requests that failed so, in short, with their request ids. */
  examples: { text: string; requestId: string }[];
  credentials: Set<string>;
  features: Map<string, number>;
  smallest: FuzzRequest;
  smallestSize: number;
  first: Failure;
  shrunk?: FuzzRequest;
  shrinkAttempts?: number;
}

const normalize = (s: string) =>
  s
    .replace(/"[^"]{0,200}"/g, '"…"')
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g, '<uuid>')
    .replace(/\d+/g, 'N')
    .slice(0, 160);

const bodySize = (req: FuzzRequest) => (req.rawBody?.length ?? 0) + JSON.stringify({ q: req.query, v: req.variables, o: req.operationName, e: req.extensions }).length;

describe('GraphQL fuzzing on postgresql', () => {
  let t: TestApp;
  const serverErrors = new ServerErrors();
  let appSchema: GraphQLSchema;
  const tokens = new Map<string, string>();
  const orderIds: string[] = [];
  let base: string;

  beforeAll(async () => {
    t = await startTestApp('postgresql', { logLines: serverErrors });
    base = t.url.replace(/\/graphql$/, '');
    appSchema = await buildAppSchema();
    for (const [name, sub] of [
      ['alice', 'alice'],
      ['bob', 'bob'],
      ['mallory', 'mallory'],
      ['eve', 'eve'],
      ['nul-sub', 'alice\u0000'],
      ['long-sub', 'u'.repeat(300)],
    ]) {
      tokens.set(`user:${name}`, await userToken(sub!));
    }
    tokens.set('expired-token', await userToken('alice', { expiresIn: '-1m' }));
    tokens.set('wrong-secret-token', await userToken('alice', { secret: 'not-the-secret-not-the-secret-not-the-secret' }));
    tokens.set('token-without-exp', await userToken('alice', { exp: false }));
    tokens.set('unsigned-token', unsignedToken('alice'));

    // Something to read, spend, cancel and revoke: alice and bob have purchases, credits, orders, a promotion.
    const rec = t.app.services.recorder;
    const now = new Date();
    await rec.record('alice', [monthly(new Date(now.getTime() - 5 * 86_400_000), { transactionId: 'fuzz-alice-sub' })], now);
    await rec.record('alice', [purchase({ productId: 'com.example.app.no_ads', transactionId: 'fuzz-alice-noads' })], now);
    await rec.record('alice', [purchase({ store: 'PLAY_STORE', productId: 'coins_100', transactionId: 'fuzz-alice-coins', quantity: 3 })], now);
    await rec.record('bob', [purchase({ store: 'PLAY_STORE', productId: 'pro_monthly', transactionId: 'fuzz-bob-sub', expiresAt: new Date(now.getTime() + 86_400_000) })], now);
    for (const [user, productId] of [
      ['alice', 'com.example.app.pro.yearly'],
      ['alice', 'com.example.app.season_pass'],
      ['bob', 'com.example.app.pro.monthly'],
    ]) {
      const res = await t.server<{ createOrder: { id: string } }>(`mutation($i: CreateOrderInput!) { createOrder(input: $i) { id } }`, { i: { appUserId: user, store: 'APP_STORE', productId } });
      expect(res.errors).toBeUndefined();
      orderIds.push(res.data!.createOrder.id);
    }
    const grant = await t.server(`mutation { grantPromotionalEntitlement(input: { appUserId: "alice", entitlement: "pro", reason: "fuzz seed" }) { id } }`);
    expect(grant.errors).toBeUndefined();
    const spend = await t.server(`mutation { spendCredits(input: { appUserId: "alice", currency: "coins", amount: 10, idempotencyKey: "fuzz-seed" }) { balance } }`);
    expect(spend.errors).toBeUndefined();
  });
  afterAll(async () => {
    await t?.close();
  });

  function credentialHeaders(kind: CredentialKind): Record<string, string> {
    switch (kind) {
      case 'none':
        return {};
      case 'server-key':
        return { authorization: `Bearer ${TEST_API_KEY}` };
      case 'wrong-key-header':
        return { 'x-api-key': 'wrong-key-0123456789abcdef-wrong' };
      case 'wrong-key-bearer':
        return { authorization: `Bearer ${TEST_API_KEY.slice(0, -1)}X` };
      case 'garbage-bearer':
        return { authorization: 'Bearer not.a.token%%\t~' };
      case 'basic-auth':
        return { authorization: `Basic ${Buffer.from(`admin:${TEST_API_KEY}`).toString('base64')}` };
      default: {
        const token = tokens.get(kind);
        if (!token) throw new Error(`no token for ${kind}`);
        return { authorization: `Bearer ${token}` };
      }
    }
  }

  async function send(req: FuzzRequest, requestId: string): Promise<Outcome> {
    const started = performance.now();
    const headers: Record<string, string> = { 'x-request-id': requestId, ...req.headers, ...credentialHeaders(req.credential) };
    if (req.contentType) headers['content-type'] = req.contentType;
    let url = t.url;
    let body: Buffer | undefined;
    if (req.method === 'GET') {
      const u = new URL(t.url);
      if (typeof req.query === 'string') u.searchParams.set('query', req.query);
      if (req.variables !== undefined) u.searchParams.set('variables', JSON.stringify(req.variables));
      if (typeof req.operationName === 'string') u.searchParams.set('operationName', req.operationName);
      if (req.extensions !== undefined) u.searchParams.set('extensions', JSON.stringify(req.extensions));
      url = u.toString();
    } else if (req.method !== 'HEAD' && req.method !== 'OPTIONS') {
      // Bytes, so that fetch adds no content-type of its own.
      body = Buffer.from(req.rawBody ?? JSON.stringify({ query: req.query, variables: req.variables, operationName: req.operationName, extensions: req.extensions }));
    }
    try {
      const res = await fetch(url, { method: req.method, headers, body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      const text = await res.text();
      let json: Outcome['json'];
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      return { status: res.status, json, text: text.slice(0, 400), ms: performance.now() - started };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      return { error: `${e.name}: ${e.message}${e.cause ? ` (${e.cause.code ?? ''} ${e.cause.message ?? ''})` : ''}`, ms: performance.now() - started };
    }
  }

  const errorCodes = (out: Outcome): string[] => {
    const list = Array.isArray(out.json) ? out.json.flatMap((r) => (r as { errors?: unknown[] })?.errors ?? []) : (out.json?.errors ?? []);
    return (list as { extensions?: { code?: unknown } }[]).map((e) => String(e?.extensions?.code ?? 'NO_CODE'));
  };

  /** What the response says is wrong with the service. */
  function check(req: FuzzRequest, out: Outcome, requestId: string): Failure[] {
    const failures: Failure[] = [];
    const codes = errorCodes(out);
    // What the service logged about this request (its errors; "answered … after" lines are about timing, not cause).
    const cause = serverErrors.byRequest.get(requestId)?.filter((l) => !l.startsWith('answered ')).join(' / ') || undefined;
    const firstMessage = Array.isArray(out.json) ? undefined : out.json?.errors?.[0]?.message;
    const fail = (kind: Failure['kind'], detail: string) =>
      failures.push({
        kind,
        detail,
        status: out.status,
        codes,
        cause,
        response: out.text,
        signature: `${kind} | HTTP ${out.status ?? '-'} | ${[...new Set(codes)].sort().join(',')} | ${normalize((kind === '5xx' || kind === 'internal-error' ? cause : undefined) ?? detail)}`,
      });
    if (out.error) {
      fail('no-answer', out.error);
      return failures;
    }
    if (out.status! >= 500) fail('5xx', firstMessage ?? out.text ?? '');
    else if (codes.includes('INTERNAL_SERVER_ERROR')) fail('internal-error', firstMessage ?? '');
    const json = out.json;
    const data = json && !Array.isArray(json) ? json.data : undefined;
    if (data && typeof data === 'object') {
      const doc = tryParse(req.query);
      const op = doc ? selectedOperation(doc, req.operationName) : null;
      // Unauthorised callers: no data at all without valid credentials; a user token reads only public fields
      // (phase 1 never lets a token act on its own subject).
      if (req.phase === 1 || !(req.credential === 'server-key' || req.credential.startsWith('user:'))) {
        const keys = doc ? rootFields(doc, req.operationName) : new Map<string, string>();
        for (const [key, value] of Object.entries(data)) {
          const field = keys.get(key) ?? key;
          if (value !== null && (!req.credential.startsWith('user:') || !PUBLIC_ROOT_FIELDS.has(field))) {
            fail('unauthorised-data', `${req.credential.startsWith('user:') ? 'a user token' : req.credential} got ${field}`);
          }
        }
      }
      // What ran must be within the limits, for the variables and the operation of this very request.
      if (doc && op) {
        const depth = operationDepth(doc, op);
        if (depth > MAX_DEPTH) fail('limits-not-enforced', `depth ${depth} > ${MAX_DEPTH} executed`);
        const cost = complexity(doc, req);
        if (cost !== null && cost > MAX_COMPLEXITY) fail('limits-not-enforced', `complexity ${cost} > ${MAX_COMPLEXITY} executed`);
      }
    }
    return failures;
  }

  function complexity(doc: DocumentNode, req: FuzzRequest): number | null {
    try {
      const variables = req.variables && typeof req.variables === 'object' && !Array.isArray(req.variables) ? (req.variables as Record<string, unknown>) : {};
      return getComplexity({
        schema: appSchema,
        query: doc,
        operationName: typeof req.operationName === 'string' && req.operationName ? req.operationName : undefined,
        variables,
        estimators: [fieldExtensionsEstimator(), simpleEstimator({ defaultComplexity: 1 })],
      });
    } catch {
      return null;
    }
  }

  it(
    'never answers 5xx or INTERNAL_SERVER_ERROR, stays up within bounded memory, and lets no unauthorised caller write',
    async () => {
      // First, so that a run that dies half-way can still be reproduced.
      console.log(`graphql-fuzz: FUZZ_SEED=${SEED} FUZZ_REQUESTS=${TOTAL_REQUESTS} FUZZ_SECONDS=${TOTAL_SECONDS}`);
      const started = Date.now();
      const deadline = started + TOTAL_SECONDS * 1000;
      const stats = {
        requests: 0,
        byPhase: [0, 0, 0],
        statuses: new Map<string, number>(),
        codes: new Map<string, number>(),
        withData: [0, 0, 0],
        authenticatedGraphQL: 0,
        authenticatedWithData: 0,
        serverGraphQL: 0,
        serverWithData: 0,
        features: new Map<string, number>(),
        slowest: { ms: 0, req: null as FuzzRequest | null },
        /** First error message of server-key requests, for FUZZ_VERBOSE. */
        serverMessages: new Map<string, number>(),
      };
      const groups = new Map<string, Group>();
      const healthProblems: string[] = [];
      let peakRss = process.memoryUsage().rss;
      const baselineRss = peakRss;
      const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);
      sampler.unref();
      // The service runs in this process: a long event-loop stall is the service not answering anyone.
      const loopDelay = monitorEventLoopDelay({ resolution: 20 });
      loopDelay.enable();
      const inc = (m: Map<string, number>, k: string, by = 1) => m.set(k, (m.get(k) ?? 0) + by);

      const health = async (when: string) => {
        try {
          const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(5000) });
          if (res.status !== 200) healthProblems.push(`${when}: /healthz answered ${res.status}`);
          await res.text();
        } catch (err) {
          healthProblems.push(`${when}: /healthz failed: ${(err as Error).message}`);
        }
      };

      const record = (req: FuzzRequest, out: Outcome, requestId: string) => {
        stats.requests++;
        stats.byPhase[req.phase]!++;
        inc(stats.statuses, out.error ? 'no answer' : String(out.status));
        for (const c of errorCodes(out)) inc(stats.codes, c);
        for (const f of req.features) inc(stats.features, f);
        const data = out.json && !Array.isArray(out.json) ? out.json.data : undefined;
        if (data && typeof data === 'object') stats.withData[req.phase]!++;
        // Cost toggles probe the limits (refusing them is right): they do not count towards the share with data.
        if ((req.credential === 'server-key' || req.credential.startsWith('user:')) && req.method === 'POST' && req.contentType === 'application/json' && !req.rawBody && !req.features.includes('cost-toggle')) {
          stats.authenticatedGraphQL++;
          if (data && typeof data === 'object') stats.authenticatedWithData++;
          if (req.credential === 'server-key') {
            stats.serverGraphQL++;
            if (data && typeof data === 'object') stats.serverWithData++;
            const first = Array.isArray(out.json) ? undefined : out.json?.errors?.[0];
            if (first) inc(stats.serverMessages, `${String(first.extensions?.code)}: ${normalize(String(first.message))}${req.features.includes('broken-document') ? ' [broken]' : ''}`);
          }
        }
        if (out.ms > stats.slowest.ms) stats.slowest = { ms: out.ms, req };
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
        // A request the client gave up on is judged at the end: answered late, or never.
        if (out.error?.startsWith('TimeoutError')) unanswered.push({ req, out, requestId });
        else for (const f of check(req, out, requestId)) addFailure(req, out, requestId, f);
      };

      const unanswered: { req: FuzzRequest; out: Outcome; requestId: string }[] = [];
      const lateAnswers: string[] = [];
      const addFailure = (req: FuzzRequest, out: Outcome, requestId: string, f: Failure) => {
        const size = bodySize(req);
        const g = groups.get(f.signature);
        const example = { text: `#${req.phase}.${req.index} ${req.credential} ${req.method} ${req.contentType ?? '-'} [${req.features.join(' ')}] ${Math.round(out.ms)} ms`, requestId };
        if (!g) {
          groups.set(f.signature, { signature: f.signature, count: 1, examples: [example], credentials: new Set([req.credential]), features: new Map(req.features.map((x) => [x, 1])), smallest: req, smallestSize: size, first: f });
        } else {
          g.count++;
          if (g.examples.length < 5) g.examples.push(example);
          g.credentials.add(req.credential);
          for (const x of req.features) inc(g.features, x);
          if (size < g.smallestSize) {
            g.smallest = req;
            g.smallestSize = size;
            g.first = f;
          }
        }
      };

      const runPhase = async (env: FuzzEnv, maxRequests: number, phaseDeadline: number) => {
        let next = 0;
        const worker = async () => {
          for (;;) {
            const i = next++;
            if (i >= maxRequests || Date.now() > phaseDeadline) return;
            const req = generateRequest(env, i);
            const requestId = `fuzz-${env.phase}-${i}`;
            record(req, await send(req, requestId), requestId);
            if (i % 100 === 99) await health(`after request ${i} of phase ${env.phase}`);
          }
        };
        await Promise.all(Array.from({ length: CONCURRENCY }, worker));
        await health(`end of phase ${env.phase}`);
      };

      // Phase 1: only callers that may not write anything: no or invalid credentials, and user tokens whose subject
      // is never the customer a document names. Nothing in the database may change.
      const before: DatabaseDigest = await databaseDigest(t);
      const phase1: FuzzEnv = {
        schema,
        seed: SEED,
        phase: 1,
        credentials: {
          none: 10,
          'wrong-key-header': 6,
          'wrong-key-bearer': 6,
          'garbage-bearer': 5,
          'basic-auth': 2,
          'expired-token': 3,
          'wrong-secret-token': 3,
          'unsigned-token': 3,
          'token-without-exp': 3,
          'user:mallory': 35,
          'user:eve': 24,
        },
        appUserIds: ['alice', 'alice', 'bob', 'carol', 'Mallory', 'MALLORY', 'mallory ', ' mallory', 'mallory\u0000', 'eve\u0000', 'ev', 'éve'],
        forbiddenStrings: new Set(['mallory', 'eve']),
        orderIds,
        hugeChance: 0.04,
      };
      const phase1Share = 0.4;
      await runPhase(phase1, Math.round(TOTAL_REQUESTS * phase1Share), started + TOTAL_SECONDS * 1000 * phase1Share);
      const phase1Changes = digestChanges(before, await databaseDigest(t));

      // Phase 2: every kind of caller, the server key and users acting on themselves included.
      const phase2: FuzzEnv = {
        ...phase1,
        phase: 2,
        credentials: {
          'server-key': 35,
          'user:alice': 14,
          'user:bob': 8,
          'user:mallory': 5,
          'user:nul-sub': 1,
          'user:long-sub': 1,
          none: 8,
          'wrong-key-header': 5,
          'wrong-key-bearer': 4,
          'garbage-bearer': 5,
          'basic-auth': 2,
          'expired-token': 3,
          'wrong-secret-token': 3,
          'unsigned-token': 3,
          'token-without-exp': 3,
        },
        appUserIds: ['alice', 'alice', 'bob', 'mallory', 'carol', 'dave'],
        forbiddenStrings: new Set(),
      };
      await runPhase(phase2, TOTAL_REQUESTS - Math.round(TOTAL_REQUESTS * phase1Share), deadline);
      const fuzzSeconds = (Date.now() - started) / 1000;

      // Requests that timed out on the client: did the service answer them at all (its access log says)?
      const answered = (id: string) => serverErrors.byRequest.get(id)?.find((l) => l.startsWith('answered '));
      for (const waitUntil = Date.now() + 3000; unanswered.some((u) => !answered(u.requestId)) && Date.now() < waitUntil; ) await new Promise((r) => setTimeout(r, 100));
      for (const u of unanswered) {
        const late = answered(u.requestId);
        if (late) lateAnswers.push(`#${u.req.phase}.${u.req.index} ${u.req.credential} [${u.req.features.join(' ')}] ${late}`);
        else for (const f of check(u.req, u.out, u.requestId)) addFailure(u.req, u.out, u.requestId, f);
      }

      // Shrink each distinct failure to a smaller request that still fails the same way.
      // (Not the limits: a cached verdict depends on the requests before; not timeouts: too slow to retry.)
      const shrinkDeadline = Date.now() + SHRINK_BUDGET_MS;
      let shrinkCounter = 0;
      const toShrink = [...groups.values()].sort((a, b) => b.count - a.count).filter((g) => g.first.kind !== 'no-answer' && g.first.kind !== 'limits-not-enforced').slice(0, 12);
      for (const [n, g] of toShrink.entries()) {
        const groupDeadline = Date.now() + (shrinkDeadline - Date.now()) / (toShrink.length - n);
        let current = g.smallest;
        let attempts = 0;
        outer: while (Date.now() < groupDeadline && attempts < 120) {
          for (const candidate of shrinkCandidates(current)) {
            if (Date.now() > groupDeadline || attempts >= 120) break outer;
            attempts++;
            const id = `shrink-${shrinkCounter++}`;
            const out = await send(candidate, id);
            if (process.env.FUZZ_VERBOSE && out.ms > 1000) console.log(`graphql-fuzz: shrinking "${g.signature}" took ${Math.round(out.ms)} ms: ${JSON.stringify(describeRequest(candidate, 300))}`);
            if (check(candidate, out, id).some((f) => f.signature === g.signature)) {
              current = candidate;
              continue outer;
            }
          }
          break;
        }
        g.shrunk = current;
        g.shrinkAttempts = attempts;
      }
      await health('after shrinking');
      const shrinkSeconds = (Date.now() - started) / 1000 - fuzzSeconds;
      clearInterval(sampler);
      loopDelay.disable();
      peakRss = Math.max(peakRss, process.memoryUsage().rss);

      const mb = (n: number) => `${Math.round(n / 1024 / 1024)} MB`;
      const hist = (m: Map<string, number>) => JSON.stringify(Object.fromEntries([...m].sort((a, b) => b[1] - a[1])));
      const distinct = [...groups.values()].sort((a, b) => b.count - a.count);
      const summary =
        `graphql-fuzz seed=${SEED} requests=${stats.requests} (phase 1: ${stats.byPhase[1]}, phase 2: ${stats.byPhase[2]}) in ${fuzzSeconds.toFixed(1)}s (then ${shrinkSeconds.toFixed(1)}s shrinking); ` +
        `with data: ${((100 * (stats.withData[1]! + stats.withData[2]!)) / Math.max(1, stats.requests)).toFixed(1)}% of all, ` +
        `${((100 * stats.authenticatedWithData) / Math.max(1, stats.authenticatedGraphQL)).toFixed(1)}% of ${stats.authenticatedGraphQL} authenticated JSON POSTs, ` +
        `${((100 * stats.serverWithData) / Math.max(1, stats.serverGraphQL)).toFixed(1)}% of ${stats.serverGraphQL} with the server key; ` +
        `statuses ${hist(stats.statuses)}; codes ${hist(stats.codes)}; peak RSS ${mb(peakRss)} (baseline ${mb(baselineRss)}); ` +
        `slowest ${Math.round(stats.slowest.ms)} ms; answered only after the client's ${REQUEST_TIMEOUT_MS / 1000}s timeout: ${lateAnswers.length}; event loop stalled up to ${Math.round(loopDelay.max / 1e6)} ms; failures ${distinct.reduce((s, g) => s + g.count, 0)} (${distinct.length} distinct); phase 1 database changes: ${phase1Changes.length}`;
      console.log(summary);
      console.log(`graphql-fuzz features ${hist(stats.features)}`);
      if (lateAnswers.length > 0) console.log(`graphql-fuzz: slow (not failures): ${lateAnswers.join('; ')}`);
      if (process.env.FUZZ_VERBOSE) console.log(`graphql-fuzz server-key errors ${hist(stats.serverMessages).replace(/,"/g, ',\n  "')}`);
      const report = distinct.map((g) => ({
        signature: g.signature,
        count: g.count,
        credentials: [...g.credentials],
        commonFeatures: [...g.features].filter(([, n]) => n === g.count).map(([f]) => f),
        status: g.first.status,
        codes: g.first.codes,
        serverLog: g.first.cause,
        response: g.first.response,
        // What the service logged for them by now (a request the client gave up on may have been answered later).
        examples: g.examples.map((e) => `${e.text}${serverErrors.byRequest.has(e.requestId) ? ` — service: ${serverErrors.byRequest.get(e.requestId)!.join(' / ')}` : ''}`),
        repro: describeRequest(g.shrunk ?? g.smallest),
        ...(g.shrunk ? { shrinkAttempts: g.shrinkAttempts } : {}),
      }));
      const file = join(tmpdir(), `graphql-fuzz-${SEED}.json`);
      writeFileSync(file, JSON.stringify({ summary, failures: report, lateAnswers, slowest: stats.slowest.req && describeRequest(stats.slowest.req, 300) }, null, 2));
      if (distinct.length > 0) console.log(`graphql-fuzz: every distinct failure with its repro is in ${file}`);

      const shown = report.slice(0, 6).map((r, i) => `#${i + 1} ${r.signature} (x${r.count}; ${r.credentials.join(', ')})\n    server log: ${r.serverLog ?? '-'}\n    response: ${r.response ?? '-'}\n    repro: ${JSON.stringify(r.repro)}`);
      expect.soft(phase1Changes, `phase 1 (unauthorised callers only) changed the database (seed ${SEED})`).toEqual([]);
      expect.soft(healthProblems, `the service stopped answering /healthz (seed ${SEED})`).toEqual([]);
      expect.soft(peakRss, `peak RSS ${mb(peakRss)} over ${mb(RSS_LIMIT_BYTES)} (seed ${SEED})`).toBeLessThan(RSS_LIMIT_BYTES);
      // Reaching only the error paths would prove little: a good share of what authenticated callers send must run.
      expect.soft(stats.serverWithData / Math.max(1, stats.serverGraphQL), `share of server-key JSON POSTs answered with data (seed ${SEED})`).toBeGreaterThan(0.25);
      expect(distinct.length, `${summary}\n\n${distinct.length} distinct failures (FUZZ_SEED=${SEED} reproduces; all in ${file}):\n${shown.join('\n')}`).toBe(0);
    },
    (TOTAL_SECONDS + 45) * 1000,
  );
});

// ---------------------------------------------------------------------------------------------------------------
// Shrinking: smaller variants of a request, the most reducing first.

/** Lazily: each candidate is built only when tried (copying a large document for every possible edit is not cheap). */
function* shrinkCandidates(req: FuzzRequest): Generator<FuzzRequest> {
  const variant = (patch: Partial<FuzzRequest>): FuzzRequest => ({ ...req, ...patch });
  let doc: DocumentNode | null = null;
  if (typeof req.query === 'string') {
    try {
      doc = parse(req.query, { noLocation: true });
    } catch {
      doc = null;
    }
  }
  const vars = req.variables && typeof req.variables === 'object' && !Array.isArray(req.variables) ? (req.variables as Record<string, unknown>) : null;
  if (doc) {
    for (const edit of documentEdits(doc)) {
      const copy = structuredClone(doc) as DocumentNode;
      edit(copy);
      const declared = tidy(copy);
      const query = print(copy);
      if (query === req.query) continue;
      // Values of variables no operation declares any more go too.
      yield variant({ query, ...(vars ? { variables: Object.fromEntries(Object.entries(vars).filter(([k]) => declared.has(k))) } : {}) });
    }
  }
  if (req.extensions !== undefined) yield variant({ extensions: undefined });
  if (req.operationName !== undefined) yield variant({ operationName: undefined });
  if (Object.keys(req.headers).length > 0) yield variant({ headers: {} });
  if (req.method !== 'POST' || req.contentType !== 'application/json') yield variant({ method: 'POST', contentType: 'application/json' });
  if (vars) {
    const entries = Object.entries(vars);
    for (const [k, v] of entries) for (const simpler of simplerValues(v, 0)) yield variant({ variables: { ...vars, [k]: simpler } });
  }
  if (req.rawBody && req.rawBody.length > 64 && !req.features.includes('oversized-body')) yield variant({ rawBody: req.rawBody.slice(0, Math.floor(req.rawBody.length / 2)) });
}

function simplerValues(v: unknown, depth: number): unknown[] {
  if (typeof v === 'string') {
    const nul = v.includes('\u0000');
    if (v.length > 64) return [v.slice(0, 16).replace(/\u0000/g, '') + (nul ? '\u0000' : ''), v.slice(0, Math.floor(v.length / 2))];
    if (nul && v !== '\u0000') return ['\u0000'];
    return [];
  }
  if (Array.isArray(v)) {
    if (v.length > 1) return [v.slice(0, 1), []];
    if (v.length === 1) return [[], ...simplerValues(v[0], depth + 1).map((x) => [x])];
    return [];
  }
  if (v && typeof v === 'object') {
    if (depth > 12) return [{}];
    const entries = Object.entries(v);
    return [
      ...entries.map(([k]) => Object.fromEntries(entries.filter(([x]) => x !== k))),
      ...entries.flatMap(([k, x]) => simplerValues(x, depth + 1).slice(0, 3).map((s) => ({ ...(v as object), [k]: s }))),
    ].slice(0, 12);
  }
  return [];
}

type Edit = (doc: DocumentNode) => void;

/**
 * Edits of a document (each applied to a copy), most reducing first: drop a definition; halve, then thin, each
 * selection set (outermost first); drop arguments, directives, aliases.
 */
function documentEdits(doc: DocumentNode): Edit[] {
  const byPriority: Edit[][] = [[], [], [], [], []];
  if (doc.definitions.length > 1) {
    for (let i = 0; i < doc.definitions.length; i++) byPriority[0]!.push((d) => void (d.definitions as unknown[]).splice(i, 1));
  }
  // Paths to every node, to find it again in a copy.
  const paths: { path: (string | number)[]; node: Record<string, unknown> }[] = [];
  const walk = (node: unknown, path: (string | number)[]) => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node)) return node.forEach((n, i) => walk(n, [...path, i]));
    const n = node as Record<string, unknown>;
    if (typeof n.kind === 'string') paths.push({ path, node: n });
    for (const [k, v] of Object.entries(n)) if (v && typeof v === 'object') walk(v, [...path, k]);
  };
  walk(doc, []);
  const at = (d: unknown, path: (string | number)[]) => path.reduce<unknown>((n, k) => (n as Record<string | number, unknown>)[k], d) as Record<string, unknown>;
  for (const { path, node } of [...paths].sort((a, b) => a.path.length - b.path.length)) {
    if (node.kind === Kind.SELECTION_SET) {
      const n = (node.selections as unknown[]).length;
      if (n > 1) {
        byPriority[1]!.push((d) => void (at(d, path).selections as unknown[]).splice(Math.ceil(n / 2)));
        byPriority[1]!.push((d) => void (at(d, path).selections as unknown[]).splice(0, Math.floor(n / 2)));
        if (n <= 8) for (let i = 0; i < n; i++) byPriority[2]!.push((d) => void (at(d, path).selections as unknown[]).splice(i, 1));
      }
    }
    if (node.kind === Kind.FIELD) {
      const args = node.arguments as unknown[];
      for (let i = 0; i < args.length; i++) byPriority[3]!.push((d) => void (at(d, path).arguments as unknown[]).splice(i, 1));
      if (node.alias) byPriority[4]!.push((d) => void (at(d, path).alias = undefined));
    }
    if (Array.isArray(node.directives) && node.directives.length > 0) byPriority[3]!.push((d) => void (at(d, path).directives = []));
  }
  return byPriority.flat();
}

/**
 * After an edit: drops fragments nothing spreads any more and variable definitions nothing uses (either would make
 * the document invalid for a reason of its own). Returns the variable names still declared.
 */
function tidy(doc: DocumentNode): Set<string> {
  const defs = doc.definitions as unknown as Record<string, any>[];
  const spreadsIn = (node: unknown, out: Set<string>) => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node)) return node.forEach((n) => spreadsIn(n, out));
    const n = node as Record<string, any>;
    if (n.kind === Kind.FRAGMENT_SPREAD) out.add(n.name.value);
    for (const v of Object.values(n)) if (v && typeof v === 'object') spreadsIn(v, out);
  };
  const variablesIn = (node: unknown, out: Set<string>) => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node)) return node.forEach((n) => variablesIn(n, out));
    const n = node as Record<string, any>;
    if (n.kind === Kind.VARIABLE_DEFINITION) return;
    if (n.kind === Kind.VARIABLE) out.add(n.name.value);
    for (const v of Object.values(n)) if (v && typeof v === 'object') variablesIn(v, out);
  };
  for (let changed = true; changed; ) {
    changed = false;
    const spread = new Set<string>();
    spreadsIn(defs, spread);
    for (let i = defs.length - 1; i >= 0; i--) {
      if (defs[i]!.kind === Kind.FRAGMENT_DEFINITION && !spread.has(defs[i]!.name.value)) {
        defs.splice(i, 1);
        changed = true;
      }
    }
  }
  const fragments = new Map(defs.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION).map((d) => [d.name.value as string, d]));
  const declared = new Set<string>();
  for (const op of defs.filter((d) => d.kind === Kind.OPERATION_DEFINITION)) {
    const used = new Set<string>();
    const seen = new Set<string>();
    const visitSet = (node: unknown) => {
      variablesIn(node, used);
      const spread = new Set<string>();
      spreadsIn(node, spread);
      for (const name of spread) {
        if (seen.has(name) || !fragments.has(name)) continue;
        seen.add(name);
        visitSet(fragments.get(name)!.selectionSet);
      }
    };
    visitSet(op.selectionSet);
    variablesIn(op.directives, used);
    op.variableDefinitions = (op.variableDefinitions ?? []).filter((v: any) => used.has(v.variable.name.value));
    for (const v of op.variableDefinitions) declared.add(v.variable.name.value);
  }
  return declared;
}
