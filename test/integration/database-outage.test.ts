// A database outage is not a bug. The service runs on a private PostgreSQL cluster this test starts (its own data
// directory and port), under a steady load of writes (createOrder) and hot reads (entitlements) over real HTTP.
// 1. PostgreSQL is stopped mid-load: /readyz answers 503, requests get SERVICE_UNAVAILABLE (HTTP 503 with
//    Retry-After), none gets INTERNAL_SERVER_ERROR and none is logged at error level. PostgreSQL starts again:
//    the same process becomes ready, every write it acknowledged is in the database, and new requests succeed.
// 2. PostgreSQL is frozen (SIGSTOP): /readyz still answers 503 within its timeout, and a request fails with
//    SERVICE_UNAVAILABLE after the statement or connect timeout instead of hanging. Then it thaws (SIGCONT).
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDatabaseUnavailable } from '../../src/persistence/database-errors.js';
import { withDeadline } from '../../src/persistence/pg-timeouts.js';
import { startTestApp, TEST_API_KEY, type TestApp } from '../support/test-app.js';

const run = promisify(execFile);
const PG_BIN = process.env.TEST_POSTGRES_BIN ?? '/usr/lib/postgresql/15/bin';
const PRODUCT = 'com.example.app.pro.monthly';
const STATEMENT_TIMEOUT_MS = 1000;
const CONNECT_TIMEOUT_MS = 1000;
const READINESS_TIMEOUT_MS = 500;
/** No request may take this long: the client gives up and the test counts a hang. */
const CLIENT_ABORT_MS = 5000;
const CREATE_ORDER = `mutation($input: CreateOrderInput!) { createOrder(input: $input) { id } }`;
const ENTITLEMENTS = `query($u: String!) { entitlements(appUserId: $u) { identifier isActive } }`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A PostgreSQL cluster of this test's own, run as the postgres OS user (PostgreSQL refuses to run as root). */
class PrivateCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'iap-outage-'));
  readonly data = join(this.dir, 'data');
  port = 0;
  private frozen: number[] = [];

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/iap`;
  }

  private command(cmd: string, args: string[]): [string, string[]] {
    const asRoot = process.getuid?.() === 0;
    return asRoot ? ['runuser', ['-u', 'postgres', '--', join(PG_BIN, cmd), ...args]] : [join(PG_BIN, cmd), args];
  }

  private async asPostgres(cmd: string, args: string[]): Promise<void> {
    await run(...this.command(cmd, args), { timeout: 60_000 });
  }

  /** Last resort if the test process ends without afterAll having run (a killed hook): no cluster is left behind. */
  private readonly onExit = () => {
    this.thaw();
    try {
      execFileSync(...this.command('pg_ctl', ['stop', '-m', 'immediate', '-w', '-t', '10', '-D', this.data]), { stdio: 'ignore' });
    } catch {
      // not running
    }
    rmSync(this.dir, { recursive: true, force: true });
  };

  async init(): Promise<void> {
    process.once('exit', this.onExit);
    if (process.getuid?.() === 0) chownSync(this.dir, Number((await run('id', ['-u', 'postgres'])).stdout.trim()), Number((await run('id', ['-g', 'postgres'])).stdout.trim()));
    this.port = await freePort();
    await this.asPostgres('initdb', ['-D', this.data, '-A', 'trust', '-U', 'postgres', '--no-sync', '--no-instructions']);
    await this.start();
    const admin = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${this.port}/postgres`, connectionTimeoutMillis: 5000 });
    await admin.connect();
    try {
      await admin.query('create database iap');
    } finally {
      await admin.end();
    }
  }

  start(): Promise<void> {
    const options = `-p ${this.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${this.dir} -c max_connections=60`;
    return this.asPostgres('pg_ctl', ['start', '-w', '-t', '30', '-D', this.data, '-l', join(this.dir, 'server.log'), '-o', options]);
  }

  stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    return this.asPostgres('pg_ctl', ['stop', '-w', '-t', '30', '-m', mode, '-D', this.data]);
  }

  /** SIGSTOP to the postmaster and every backend: the server keeps its sockets but answers nothing. */
  async freeze(): Promise<void> {
    const postmaster = Number(readFileSync(join(this.data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const children = (await run('pgrep', ['-P', String(postmaster)]).catch(() => ({ stdout: '' }))).stdout
      .split('\n')
      .filter(Boolean)
      .map(Number);
    this.frozen = [postmaster, ...children];
    for (const pid of this.frozen) process.kill(pid, 'SIGSTOP');
  }

  thaw(): void {
    for (const pid of this.frozen) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // already gone
      }
    }
    this.frozen = [];
  }

  async destroy(): Promise<void> {
    process.removeListener('exit', this.onExit);
    this.thaw();
    await this.stop('immediate').catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = 55432 + Math.floor(Math.random() * 5000);
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port for the private PostgreSQL cluster');
}

interface Outcome {
  op: 'write' | 'read';
  phase: string;
  status: number;
  /** extensions.code of the first error; null when the request succeeded. */
  code: string | null;
  retryAfter: string | null;
  orderId: string | null;
  /** The client gave up (CLIENT_ABORT_MS) or could not connect. */
  hung: boolean;
}

let cluster: PrivateCluster;
let t: TestApp;
const logLines: Record<string, unknown>[] = [];

async function post(query: string, variables: Record<string, unknown>, abortMs = CLIENT_ABORT_MS) {
  const res = await fetch(t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TEST_API_KEY}` },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(abortMs),
  });
  const body = (await res.json()) as { data?: Record<string, any> | null; errors?: { extensions?: { code?: string } }[] };
  return { status: res.status, body, retryAfter: res.headers.get('retry-after') };
}

async function request(op: 'write' | 'read', phase: () => string, appUserId: string, abortMs = CLIENT_ABORT_MS): Promise<Outcome> {
  const started = phase();
  try {
    const { status, body, retryAfter } = op === 'write'
      ? await post(CREATE_ORDER, { input: { appUserId, store: 'APP_STORE', productId: PRODUCT } }, abortMs)
      : await post(ENTITLEMENTS, { u: appUserId }, abortMs);
    const code = body.errors?.length ? (body.errors[0]!.extensions?.code ?? 'NO_CODE') : null;
    const orderId = op === 'write' && status === 200 && !code ? ((body.data?.createOrder?.id as string | undefined) ?? null) : null;
    return { op, phase: started, status, code, retryAfter, orderId, hung: false };
  } catch {
    return { op, phase: started, status: 0, code: null, retryAfter: null, orderId: null, hung: true };
  }
}

async function readyz(abortMs = CLIENT_ABORT_MS): Promise<{ status: number; body: Record<string, unknown> } | null> {
  try {
    const res = await fetch(t.url.replace(/\/graphql$/, '/readyz'), { signal: AbortSignal.timeout(abortMs) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  } catch {
    return null;
  }
}

async function waitReady(maxMs = 20_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  for (let i = 0; i < 200 && Date.now() < deadline; i++) {
    if ((await readyz(2000))?.status === 200) return;
    await sleep(100);
  }
  throw new Error(`the service did not become ready within ${maxMs} ms`);
}

async function storedOrders(ids: string[]): Promise<Set<string>> {
  const c = new pg.Client({ connectionString: cluster.url, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    const { rows } = await c.query<{ id: string }>('select id from purchase_order where id = any($1::uuid[])', [ids]);
    return new Set(rows.map((r) => r.id));
  } finally {
    await c.end();
  }
}

/** Connections the ORM's pool has handed out and not got back (once the load has stopped, any is a leak). */
async function checkedOut(): Promise<number> {
  const pool = (await t.app.orm.em.getConnection().getNativeClient()) as pg.Pool;
  return pool.totalCount - pool.idleCount;
}

/** The service's log lines at error level or above (pino: 50 error, 60 fatal) from index `from` on. */
function errorLogs(from: number): Record<string, unknown>[] {
  return logLines.slice(from).filter((l) => typeof l.level === 'number' && l.level >= 50);
}

describe('database outage (PostgreSQL)', () => {
  beforeAll(async () => {
    cluster = new PrivateCluster();
    await cluster.init();
    t = await startTestApp('postgresql', {
      db: { kind: 'postgresql', url: cluster.url, dataDir: '', drop: async () => undefined },
      config: {
        DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
        DB_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
        READINESS_TIMEOUT_MS: String(READINESS_TIMEOUT_MS),
        // Every read goes to the database, so reads see the outage too.
        ENTITLEMENT_CACHE_TTL_MS: '0',
      },
      logLines,
    });
  });

  afterAll(async () => {
    cluster?.thaw();
    try {
      // Bounded: a pool waiting for a connection that was never given back would otherwise hang the run.
      if (t) expect(await withDeadline(t.close().then(() => 'closed'), 15_000, () => 'close timed out')).toBe('closed');
    } finally {
      await cluster?.destroy();
    }
  });

  it('answers SERVICE_UNAVAILABLE while PostgreSQL is stopped, loses no acknowledged write, and recovers without a restart', async () => {
    const logStart = logLines.length;
    let phase = 'up';
    const outcomes: Outcome[] = [];
    let loading = true;
    const worker = async (op: 'write' | 'read', n: number) => {
      // Bounded in count as well as by the loading flag.
      for (let i = 0; loading && i < 5000; i++) {
        outcomes.push(await request(op, () => phase, `outage-${op}-${n}-${i % 20}`));
        if (phase === 'down') await sleep(20); // failures come back fast; do not spin
      }
    };
    const workers = [...[0, 1, 2, 3].map((n) => worker('write', n)), ...[0, 1].map((n) => worker('read', n))];
    try {
      await sleep(1500);
      expect(outcomes.some((o) => o.orderId !== null)).toBe(true);

      await cluster.stop('fast');
      phase = 'down';
      const readiness: ({ status: number; body: Record<string, unknown> } | null)[] = [];
      for (let i = 0; i < 5; i++) {
        readiness.push(await readyz());
        await sleep(400);
      }
      // Answered (before the client gave up) and not ready.
      expect(readiness.every((r) => r !== null && r.status === 503 && r.body.status === 'not ready'), JSON.stringify(readiness)).toBe(true);

      await cluster.start();
      phase = 'recovering';
      await waitReady();
      phase = 'up again';
      await sleep(1500);
    } finally {
      loading = false;
      await Promise.all(workers);
    }

    const summary = JSON.stringify(
      Object.entries(
        outcomes.reduce<Record<string, number>>((acc, o) => {
          const key = `${o.phase} ${o.op} ${o.hung ? 'HUNG' : `${o.status} ${o.code ?? 'ok'}`}`;
          acc[key] = (acc[key] ?? 0) + 1;
          return acc;
        }, {}),
      ),
    );
    // No request hung, and none was treated as a bug.
    expect(outcomes.filter((o) => o.hung), summary).toEqual([]);
    expect(outcomes.filter((o) => o.code === 'INTERNAL_SERVER_ERROR'), summary).toEqual([]);
    // The outage was noticed, and every failure says "try again later" the same way.
    const failures = outcomes.filter((o) => o.code !== null);
    expect(failures.length, summary).toBeGreaterThan(0);
    expect(outcomes.filter((o) => o.phase === 'down' && o.code === 'SERVICE_UNAVAILABLE').length, summary).toBeGreaterThan(0);
    for (const f of failures) {
      expect({ code: f.code, status: f.status, retryAfter: f.retryAfter !== null && /^\d+$/.test(f.retryAfter) }, summary).toEqual({
        code: 'SERVICE_UNAVAILABLE',
        status: 503,
        retryAfter: true,
      });
    }
    // Warnings, not errors, in the log.
    expect(errorLogs(logStart).map((l) => l.msg)).toEqual([]);

    // Every acknowledged write survived.
    const acknowledged = outcomes.flatMap((o) => (o.orderId ? [o.orderId] : []));
    expect(acknowledged.length).toBeGreaterThan(0);
    const stored = await storedOrders(acknowledged);
    expect(acknowledged.filter((id) => !stored.has(id))).toEqual([]);

    // The same process serves again: requests after the restart succeeded, and new ones do.
    expect(outcomes.filter((o) => o.phase === 'up again' && o.code === null).length, summary).toBeGreaterThan(0);
    // Connections broken by the outage went back to the pool (a leak would shrink it for good).
    expect(await checkedOut()).toBe(0);
    const write = await request('write', () => 'after', 'outage-after');
    const read = await request('read', () => 'after', 'outage-after');
    expect([write.code, read.code, write.status, read.status]).toEqual([null, null, 200, 200]);
    expect((await storedOrders([write.orderId!])).size).toBe(1);
  });

  it('with PostgreSQL frozen, /readyz answers 503 within its timeout and requests fail with SERVICE_UNAVAILABLE instead of hanging', async () => {
    await waitReady();
    // Warm both pools so requests meet established connections (the case only a client-side timeout ends),
    // and let a fresh customer row exist for the read.
    await Promise.all([0, 1, 2].map((i) => request('write', () => 'warm', `frozen-${i}`)));
    await Promise.all([0, 1, 2].map((i) => request('read', () => 'warm', `frozen-${i}`)));
    const logStart = logLines.length;
    await cluster.freeze();
    try {
      const ready = await readyz();
      expect(ready).not.toBeNull(); // answered before the client gave up
      expect(ready!.status).toBe(503);
      expect(String(ready!.body.error ?? '')).toContain(`did not answer within ${READINESS_TIMEOUT_MS} ms`);

      // Statement timeout + answer grace (2 s) or connect timeout (1 s), well before the client gives up.
      const [write, read] = await Promise.all([request('write', () => 'frozen', 'frozen-0', 8000), request('read', () => 'frozen', 'frozen-1', 8000)]);
      expect(write.hung || read.hung, JSON.stringify([write, read])).toBe(false);
      for (const o of [write, read]) {
        expect({ code: o.code, status: o.status, retryAfter: o.retryAfter !== null }, JSON.stringify(o)).toEqual({ code: 'SERVICE_UNAVAILABLE', status: 503, retryAfter: true });
      }
    } finally {
      cluster.thaw();
    }
    await waitReady();
    const after = await request('write', () => 'thawed', 'frozen-after');
    expect([after.status, after.code]).toEqual([200, null]);
    expect(await checkedOut()).toBe(0);
    expect(errorLogs(logStart).map((l) => l.msg)).toEqual([]);
  });

  it('PostgreSQL itself: statement_timeout is applied to pooled connections', async () => {
    // The ORM's pool carries the configured statement_timeout (the server cancels, SQLSTATE 57014).
    const rows = (await t.app.orm.em.getConnection().execute("select setting from pg_settings where name = 'statement_timeout'")) as { setting: string }[];
    expect(rows[0]!.setting).toBe(String(STATEMENT_TIMEOUT_MS));
    const err = await t.app.orm.em
      .getConnection()
      .execute('select pg_sleep(3)')
      .then(() => null, (e: unknown) => e);
    expect(err).toMatchObject({ code: '57014' });
    expect(isDatabaseUnavailable(err)).toBe(true);
  });
});
