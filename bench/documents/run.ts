// bench/documents: what many distinct GraphQL documents cost a running instance. A caller may send any number of
// different (valid) documents; the service keeps per-document work (parsed documents, limits verdicts, compiled
// operations) and must stay bounded. Prints the instance's RSS and time per request for N distinct documents
// beside the same number of requests repeating one document, measured in the same run on the same database.
// Usage: npm run bench:documents   (BENCH_POSTGRES_URL, BENCH_DOCUMENTS, BENCH_ALIASES to override)
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BENCH_API_KEY, withBenchDatabase } from '../support/bench-database.js';
import { readyPort } from '../support/server-process.js';

const DOCUMENTS = Number(process.env.BENCH_DOCUMENTS ?? 700);
const ALIASES = Number(process.env.BENCH_ALIASES ?? 30);

/** A valid, cheap query of `ALIASES` aliased catalog reads, made distinct by `tag`. */
const documentOf = (tag: string) =>
  `query Q${tag} { ${Array.from({ length: ALIASES }, (_, j) => `f${j}_${tag}: products { productId kind store entitlements durationDays displayName credits { currency amount } }`).join(' ')} }`;

async function main(): Promise<void> {
  await withBenchDatabase(async (url) => {
    const repeated = await measure('one document, repeated (baseline)', url, () => 'same');
    const distinct = await measure(`${DOCUMENTS} distinct documents`, url, (i) => `d${i}`);
    console.log(`\ndistinct documents: ${DOCUMENTS} requests of ${ALIASES} aliases each, one connection, node ${process.version}`);
    console.log('| requests | RSS before MB | RSS after MB | growth MB | ms/request | growth vs baseline |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const r of [repeated, distinct]) {
      console.log(`| ${r.name} | ${r.before} | ${r.after} | ${r.after - r.before} | ${r.msPerRequest.toFixed(1)} | ${((r.after - r.before) / Math.max(1, repeated.after - repeated.before)).toFixed(1)}x |`);
    }
  });
}

interface Result {
  name: string;
  before: number;
  after: number;
  msPerRequest: number;
}

async function measure(name: string, dbUrl: string, tagOf: (i: number) => string): Promise<Result> {
  const serve = fileURLToPath(new URL('../read-path/serve.js', import.meta.url));
  const child = spawn(process.execPath, [serve, 'app', dbUrl], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await readyPort(child);
    const target = `http://127.0.0.1:${port}/graphql`;
    const send = async (tag: string) => {
      const res = await fetch(target, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${BENCH_API_KEY}` },
        body: JSON.stringify({ query: documentOf(tag) }),
      });
      const body = (await res.json()) as { errors?: unknown[] };
      if (res.status !== 200 || body.errors) throw new Error(`${name}: HTTP ${res.status} ${JSON.stringify(body.errors)}`);
    };
    await send('warmup');
    const before = rssOf(child.pid!);
    const started = performance.now();
    for (let i = 0; i < DOCUMENTS; i++) await send(tagOf(i));
    const msPerRequest = (performance.now() - started) / DOCUMENTS;
    return { name, before, after: rssOf(child.pid!), msPerRequest };
  } finally {
    child.kill('SIGTERM');
  }
}

/** Resident set size of a process in MB, from /proc (Linux). */
function rssOf(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return Math.round(kb / 1024);
}

await main();
