// bench/read-path: entitlement check throughput and latency for 100,000 customers on PostgreSQL, next to
// a bare node:http + pg endpoint doing the same indexed lookup, measured in the same run.
// Usage: npm run bench   (BENCH_POSTGRES_URL, BENCH_CUSTOMERS, BENCH_SECONDS, BENCH_CONNECTIONS to override)
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import pg from 'pg';
import { BENCH_API_KEY as API_KEY, withBenchDatabase } from '../support/bench-database.js';
import { readyPort } from '../support/server-process.js';

const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 100_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const QUERY = 'query E($id: String!) { entitlements(appUserId: $id) { identifier isActive expiresAt willRenew productId } }';

async function main(): Promise<void> {
  await withBenchDatabase(async (dbUrl) => {
    await seed(dbUrl);
    const uniform = [
      await measure('bare node:http + pg (baseline)', 'bare', dbUrl, [], 'uniform'),
      await measure('iap-entitlements GraphQL, cache on (5 s TTL)', 'app', dbUrl, ['5000'], 'uniform'),
      await measure('iap-entitlements GraphQL, cache off', 'app', dbUrl, ['0'], 'uniform'),
    ];
    const hot = [
      await measure('bare node:http + pg (baseline)', 'bare', dbUrl, [], 'hot'),
      await measure('iap-entitlements GraphQL, cache on (5 s TTL)', 'app', dbUrl, ['5000'], 'hot'),
    ];
    console.log(`\nread path: ${CUSTOMERS.toLocaleString('en')} customers, ${CONNECTIONS} connections, ${SECONDS} s each, node ${process.version}`);
    table('uniformly random customer per request (worst case for the cache)', uniform);
    table(`hot set: 90% of requests go to ${HOT_CUSTOMERS.toLocaleString('en')} customers (apps re-checking at launch and on resume)`, hot);
  });
}

function table(title: string, results: Result[]): void {
  const base = results[0]!.rps;
  console.log(`\n${title}`);
  console.log('| server | requests/s | p50 ms | p99 ms | ratio to baseline |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const r of results) console.log(`| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${(r.rps / base).toFixed(2)}x |`);
}

type Distribution = 'uniform' | 'hot';
const HOT_CUSTOMERS = Math.max(1, Math.floor(CUSTOMERS / 100));

function pickCustomer(distribution: Distribution): number {
  if (distribution === 'hot' && Math.random() < 0.9) return 1 + Math.floor(Math.random() * HOT_CUSTOMERS);
  return 1 + Math.floor(Math.random() * CUSTOMERS);
}

async function seed(dbUrl: string): Promise<void> {
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  const started = Date.now();
  // Every customer holds one monthly subscription source; every tenth also a lifetime unlock.
  await c.query(
    `insert into customer (id, app_user_id, entitlement_sources, revision, created_at, updated_at)
     select gen_random_uuid(), 'user-' || i,
       jsonb_build_array(jsonb_build_object(
         'entitlement', 'pro', 'productId', 'com.example.app.pro.monthly', 'store', 'APP_STORE', 'environment', 'PRODUCTION',
         'kind', 'AUTO_RENEWABLE', 'state', 'ACTIVE', 'purchasedAt', now() - interval '10 days',
         'expiresAt', now() + interval '20 days', 'gracePeriodExpiresAt', null, 'willRenew', true, 'revokedAt', null))
       || case when i % 10 = 0 then jsonb_build_array(jsonb_build_object(
         'entitlement', 'no_ads', 'productId', 'com.example.app.no_ads', 'store', 'APP_STORE', 'environment', 'PRODUCTION',
         'kind', 'NON_CONSUMABLE', 'state', null, 'purchasedAt', now() - interval '100 days', 'expiresAt', null,
         'gracePeriodExpiresAt', null, 'willRenew', false, 'revokedAt', null)) else '[]'::jsonb end,
       1, now(), now()
     from generate_series(1, $1::int) as i`,
    [CUSTOMERS],
  );
  await c.query('analyze customer');
  await c.end();
  console.log(`seeded ${CUSTOMERS.toLocaleString('en')} customers in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

interface Result {
  name: string;
  rps: number;
  p50: number;
  p99: number;
}

async function measure(name: string, mode: 'bare' | 'app', dbUrl: string, extra: string[], distribution: Distribution): Promise<Result> {
  const serve = fileURLToPath(new URL('./serve.js', import.meta.url));
  const child = spawn(process.execPath, [serve, mode, dbUrl, ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await readyPort(child);
    const target = `http://127.0.0.1:${port}/graphql`;
    await load(target, 3, distribution); // warm-up: JIT, connection pools, caches
    const r = await load(target, SECONDS, distribution);
    if (r.non2xx > 0 || r.errors > 0) throw new Error(`${name}: ${r.non2xx} non-2xx responses, ${r.errors} errors`);
    return { name, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99 };
  } finally {
    child.kill('SIGTERM');
  }
}

function load(url: string, seconds: number, distribution: Distribution): Promise<autocannon.Result> {
  return autocannon({
    url,
    connections: CONNECTIONS,
    duration: seconds,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
    requests: [
      {
        setupRequest: (req) => ({
          ...req,
          body: JSON.stringify({ query: QUERY, variables: { id: `user-${pickCustomer(distribution)}` } }),
        }),
      },
    ],
  });
}

await main();
