// `npm start` as a newcomer runs it: no configuration at all, embedded database, loopback, development mode;
// SIGTERM lets in-flight requests finish and exits cleanly. Runs the compiled service (npm test builds first).
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const MAIN = 'dist/src/main.js';

function requireBuild(): void {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first (\`npm test\` does)`);
}

describe('the service process (compiled)', () => {
  let child: ChildProcess;
  let dataDir: string;
  let url = '';
  const lines: Record<string, unknown>[] = [];
  let exited: Promise<number | null>;

  beforeAll(async () => {
    requireBuild();
    dataDir = mkdtempSync(join(tmpdir(), 'iap-process-'));
    const env = { PATH: process.env.PATH, DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'info' };
    child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    // 'close' (not 'exit'): the last log lines are read only once stdout has closed.
    exited = new Promise((resolve) => child.on('close', (code) => resolve(code)));
    let buffer = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`service did not start: ${buffer}`)), 60_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          try {
            const entry = JSON.parse(line) as Record<string, unknown>;
            lines.push(entry);
            if (entry.msg === 'listening') {
              url = entry.url as string;
              clearTimeout(timer);
              resolve();
            }
          } catch {
            // not a log line
          }
        }
      });
      child.on('exit', (code) => reject(new Error(`service exited with ${code}`)));
    });
  });
  afterAll(() => {
    if (!child) return;
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('starts on loopback in development mode and says how to call it', async () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/graphql$/);
    const warning = lines.find((l) => String(l.msg).startsWith('LOCAL DEVELOPMENT MODE'));
    expect(warning?.msg).toContain(`curl -s ${url}`);
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ products { productId } }' }) });
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).data.products.length).toBeGreaterThan(0);
    const ready = await fetch(url.replace('/graphql', '/readyz'));
    expect(await ready.json()).toMatchObject({ status: 'ready', database: 'pglite' });
  });

  it('finishes an in-flight request after SIGTERM, then exits cleanly', async () => {
    // A request whose body is still arriving when the signal comes: it must still be answered.
    const body = JSON.stringify({ query: '{ products { productId } }' });
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
    const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
      req.on('response', (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
    });
    req.write(body.slice(0, 10));
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    req.end(body.slice(10));
    const res = await response;
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text).data.products.length).toBeGreaterThan(0);
    expect(await exited).toBe(0);
    expect(lines.some((l) => l.msg === 'stopped')).toBe(true);
    // No new connections once stopped.
    await expect(fetch(url.replace('/graphql', '/healthz'))).rejects.toThrow();
  });
});

describe('start-up errors (compiled)', () => {
  beforeAll(requireBuild);

  const run = (env: Record<string, string>) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      p.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      p.on('exit', (code) => resolve({ code, stderr }));
    });

  it.each([
    [{ PORT: 'abc' }, 'config PORT: "abc" is not a whole number'],
    [{ CATALOG_PATH: '/nonexistent/catalog.yaml' }, 'catalog /nonexistent/catalog.yaml: cannot read (ENOENT)'],
  ])('stops with one line naming the key: %j', async (env, message) => {
    const { code, stderr } = await run(env);
    expect(code).toBe(2);
    expect(stderr.trim()).toBe(message);
  });
});

describe('the worker process (compiled): background jobs only, no HTTP', () => {
  it('runs every job at start-up on PostgreSQL, records the runs, and stops on SIGTERM', async () => {
    requireBuild();
    const { createTestDatabase } = await import('../support/databases.js');
    const pg = (await import('pg')).default;
    const db = await createTestDatabase('postgresql');
    const child = spawn(process.execPath, ['dist/src/worker.js'], {
      env: { PATH: process.env.PATH, DATABASE_URL: db.url!, LOG_LEVEL: 'info', SCHEDULER_ENABLED: 'false', PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    const sql = new pg.Client({ connectionString: db.url! });
    try {
      // The catch-up run at start-up is recorded per job; no schedule slot is waited for.
      const expected = ['store-tasks', 'pending-proofs', 'revalidate-subscriptions', 'expire-orders'];
      let jobs: string[] = [];
      let connected = false;
      // The catch-up runs finish in any order: wait for all of them (bounded).
      for (let i = 0; i < 600 && !expected.every((j) => jobs.includes(j)); i++) {
        await new Promise((r) => setTimeout(r, 50));
        if (!out.includes('worker running the background jobs')) continue;
        if (!connected) {
          await sql.connect();
          connected = true;
        }
        jobs = (await sql.query(`select distinct job from job_run where finished_at is not null`).catch(() => ({ rows: [] }))).rows.map((r) => r.job as string);
      }
      // SCHEDULER_ENABLED=false is for API instances; the worker runs the jobs regardless.
      expect(jobs).toEqual(expect.arrayContaining(expected));
      expect(out).not.toContain('"msg":"listening"');
      // Monitoring only: metrics and health, no GraphQL.
      const metricsUrl = /"metrics":"([^"]+)"/.exec(out)![1]!;
      expect(await (await fetch(metricsUrl)).text()).toContain('iap_job_runs_total{job="revalidate-subscriptions",outcome="ok"}');
      expect((await fetch(metricsUrl.replace('/metrics', '/graphql'), { method: 'POST' })).status).toBe(404);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await sql.end().catch(() => undefined);
      await db.drop();
    }
  });
});
