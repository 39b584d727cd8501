// Scheduled re-checks at scale: 1,000,000 stored subscriptions of which 10,000 are due, on PostgreSQL.
// Prints (1) the time to claim one batch of 500 due rows through the service beside the same statement run bare
// in psql in the same run, with the plan PostgreSQL picks; (2) the time for 1 and for 2 instances (separate
// processes) to claim and re-check every due subscription against the fake Play Developer API.
//   npm run bench:scheduler   (BENCH_POSTGRES_URL, BENCH_SUBSCRIPTIONS, BENCH_DUE, BENCH_BATCH to override)
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import pino from 'pino';
import { createApp } from '../../src/app.js';
import { parseConfig } from '../../src/config/config.js';
import { migrate, openDatabase } from '../../src/persistence/orm.js';
import { CLAIM_DUE_SQL } from '../../src/services/revalidation.js';
import { FakeGooglePlay } from '../../test/fakes/google-play.js';

const ADMIN_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const SUBSCRIPTIONS = Number(process.env.BENCH_SUBSCRIPTIONS ?? 1_000_000);
const DUE = Number(process.env.BENCH_DUE ?? 10_000);
const BATCH = Number(process.env.BENCH_BATCH ?? 500);
const CLAIM_SAMPLES = 10;
const DAY = 86_400_000;

/** The service's configuration for the bench database and the fake store: no request budget in the way. */
function serviceConfig(dbUrl: string, google: { serviceAccount: unknown; rootUrl: string; tokenUrl: string }) {
  return {
    DATABASE_URL: dbUrl,
    LOG_LEVEL: 'silent',
    SCHEDULER_ENABLED: 'false',
    GOOGLE_SERVICE_ACCOUNT_JSON: JSON.stringify(google.serviceAccount),
    GOOGLE_PACKAGE_NAMES: 'com.example.app',
    GOOGLE_API_ROOT_URL: google.rootUrl,
    GOOGLE_TOKEN_URL: google.tokenUrl,
    GOOGLE_REQUESTS_PER_MINUTE: '1000000',
    RECHECK_BATCH_SIZE: String(BATCH),
    STORE_CONCURRENCY: '16',
  };
}

/** One instance: a separate process that re-checks until nothing is due, timed from "go". */
async function instance(): Promise<void> {
  const config = parseConfig(JSON.parse(process.env.BENCH_INSTANCE_CONFIG!) as Record<string, string>);
  const app = await createApp({ config, log: pino({ level: 'silent' }) });
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) => createInterface({ input: process.stdin }).once('line', () => resolve()));
  const started = performance.now();
  let processed = 0;
  let failed = 0;
  for (;;) {
    const run = await app.services.revalidator.runDue(new Date());
    const answered = run.answered.PLAY_STORE ?? 0;
    processed += answered;
    failed += run.failed.PLAY_STORE ?? 0;
    if (answered === 0 && (run.failed.PLAY_STORE ?? 0) === 0) break;
  }
  process.stdout.write(JSON.stringify({ processed, failed, ms: performance.now() - started }) + '\n');
  await app.close();
  process.exit(0); // stdin (the "go" line) would keep the process alive
}

async function runInstances(count: number, config: Record<string, string>): Promise<{ wallMs: number; processed: number[]; failed: number }> {
  const script = fileURLToPath(import.meta.url);
  const children = Array.from({ length: count }, () =>
    spawn(process.execPath, [script, '--instance'], { env: { ...process.env, BENCH_INSTANCE_CONFIG: JSON.stringify(config) }, stdio: ['pipe', 'pipe', 'inherit'] }),
  );
  const lines = children.map((c) => createInterface({ input: c.stdout! })[Symbol.asyncIterator]());
  for (const l of lines) if ((await l.next()).value !== 'ready') throw new Error('an instance did not start');
  const started = performance.now();
  for (const c of children) c.stdin!.write('go\n');
  const results = await Promise.all(lines.map(async (l) => JSON.parse((await l.next()).value as string) as { processed: number; failed: number; ms: number }));
  const wallMs = performance.now() - started;
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
  return { wallMs, processed: results.map((r) => r.processed), failed: results.reduce((n, r) => n + r.failed, 0) };
}

const literal = (v: unknown): string => (typeof v === 'number' ? String(v) : `'${String(v instanceof Date ? v.toISOString() : v).replace(/'/g, "''")}'`);
/** The service's statement with its parameters written in, for psql. */
function bareClaim(now: Date, lease: Date): string {
  const params = ['PLAY_STORE', now, BATCH, lease, 'false'];
  let i = 0;
  return CLAIM_DUE_SQL.replace(/\?/g, () => literal(params[i++]));
}

async function main(): Promise<void> {
  const dbName = `iap_bench_scheduler_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${dbName}`;
  const dbUrl = url.toString();
  const fake = await FakeGooglePlay.start();
  const sql = new pg.Client({ connectionString: dbUrl });
  try {
    const orm = await openDatabase({ url: dbUrl, dataDir: '' });
    await migrate(orm);
    await orm.close(true);
    await sql.connect();

    // --- 1,000,000 subscriptions (5 per customer), DUE of them due now, the rest over the next 30 days ----------
    let t = performance.now();
    const customers = Math.ceil(SUBSCRIPTIONS / 5);
    await sql.query(
      `insert into customer (id, app_user_id, entitlement_sources, revision, created_at, updated_at)
       select md5('c' || g)::uuid, 'bench-user-' || g, '[]', 0, now(), now() from generate_series(1, $1) g`,
      [customers],
    );
    await sql.query(
      `insert into subscription (id, customer_id, store, environment, lineage_id, product_id, state, original_purchased_at,
         current_period_starts_at, expires_at, will_renew, ownership, latest_transaction_id, next_check_at, check_attempts, created_at, updated_at)
       select md5('s' || g)::uuid, md5('c' || (g % $2 + 1))::uuid, 'PLAY_STORE', 'PRODUCTION', 'bench-tok-' || g, 'pro_monthly', 'ACTIVE',
         now() - interval '20 days', now() - interval '20 days', now() + interval '10 days', true, 'PURCHASED', 'GPA.bench-' || g,
         case when g <= $3 then now() - (g % 600) * interval '1 second' else now() + interval '1 hour' + (g % 720) * interval '1 hour' end,
         0, now(), now()
       from generate_series(1, $1) g`,
      [SUBSCRIPTIONS, customers, DUE],
    );
    await sql.query(
      `insert into purchase (id, customer_id, store, environment, store_transaction_id, product_id, kind, lineage_id, purchase_token,
         purchased_at, expires_at, ownership, quantity, raw, created_at, updated_at)
       select md5('p' || g)::uuid, md5('c' || (g % $2 + 1))::uuid, 'PLAY_STORE', 'PRODUCTION', 'GPA.bench-' || g, 'pro_monthly', 'AUTO_RENEWABLE',
         'bench-tok-' || g, 'bench-tok-' || g, now() - interval '20 days', now() + interval '10 days', 'PURCHASED', 1, '{}', now(), now()
       from generate_series(1, $1) g`,
      [SUBSCRIPTIONS, customers],
    );
    await sql.query('analyze');
    const generatedMs = performance.now() - t;
    const now = Date.now();
    for (let g = 1; g <= DUE; g++) {
      fake.setSubscription(`bench-tok-${g}`, {
        subscriptionState: 'SUBSCRIPTION_STATE_ACTIVE',
        startTime: new Date(now - 20 * DAY).toISOString(),
        acknowledgementState: 'ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED',
        lineItems: [{ productId: 'pro_monthly', expiryTime: new Date(now + 40 * DAY).toISOString(), latestSuccessfulOrderId: `GPA.bench-${g}..0`, autoRenewingPlan: { autoRenewEnabled: true } }],
      });
    }
    const config = serviceConfig(dbUrl, fake);
    const dueIds = async () => (await sql.query(`select id from subscription where next_check_at <= now()`)).rows.length;
    // Claimed rows have their next check at the lease's end (5 minutes ahead): due again, as before the claim.
    const RESET_DUE = `update subscription set next_check_at = now() - interval '1 minute', check_attempts = 0 where next_check_at > now() + interval '1 minute' and next_check_at < now() + interval '10 minutes'`;
    const makeDueAgain = async () => {
      await sql.query(`update subscription set next_check_at = now() - interval '1 minute', check_attempts = 0 where lineage_id = any($1::text[])`, [
        Array.from({ length: DUE }, (_, i) => `bench-tok-${i + 1}`),
      ]);
      await sql.query('delete from store_budget');
    };

    // --- claiming one batch: through the service, and the same statement bare in psql -------------------------
    const app = await createApp({ config: parseConfig(config), log: pino({ level: 'silent' }) });
    const ours: number[] = [];
    for (let i = 0; i < CLAIM_SAMPLES; i++) {
      const start = performance.now();
      const claimed = await app.services.revalidator.claim('PLAY_STORE', new Date(), BATCH);
      ours.push(performance.now() - start);
      if (claimed.length !== Math.min(BATCH, DUE)) throw new Error(`claimed ${claimed.length}`);
      await sql.query(RESET_DUE);
    }
    await app.close();
    await makeDueAgain();
    // Each claim is followed by the same reset as above; only the claims' timings are kept.
    const statements = Array.from({ length: CLAIM_SAMPLES }, () => `${bareClaim(new Date(), new Date(Date.now() + 300_000))};\n${RESET_DUE};`).join('\n');
    const psqlRun = spawnSync('psql', [dbUrl, '-X', '-q'], { input: `\\timing on\n\\o /dev/null\n${statements}\n`, encoding: 'utf8' });
    const bare = [...psqlRun.stdout.matchAll(/Time: ([\d.]+) ms/g)].map((m) => Number(m[1])).filter((_, i) => i % 2 === 0);
    if (bare.length !== CLAIM_SAMPLES) throw new Error(`psql: ${psqlRun.stderr || psqlRun.stdout}`);
    await makeDueAgain();
    const plan = (await sql.query(`explain ${bareClaim(new Date(), new Date(Date.now() + 300_000))}`)).rows.map((r) => r['QUERY PLAN'] as string);
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

    // --- re-checking every due subscription with 1 and with 2 instances ------------------------------------------
    if ((await dueIds()) !== DUE) throw new Error('setup: due count');
    let readsBefore = fake.calls.length;
    const one = await runInstances(1, config);
    const readsOne = fake.calls.length - readsBefore;
    await makeDueAgain();
    readsBefore = fake.calls.length;
    const two = await runInstances(2, config);
    const readsTwo = fake.calls.length - readsBefore;
    t = performance.now();

    const rate = (n: number, ms: number) => Math.round((n / ms) * 1000).toLocaleString('en-US');
    console.log(`\nbench/scheduler: ${SUBSCRIPTIONS.toLocaleString('en-US')} subscriptions, ${DUE.toLocaleString('en-US')} due (generated in ${(generatedMs / 1000).toFixed(1)} s)\n`);
    console.log(`claim one batch of ${BATCH} due rows (FOR UPDATE SKIP LOCKED, next_check_at moved to the lease), median of ${CLAIM_SAMPLES}:`);
    console.log(`  through the service   ${median(ours).toFixed(1)} ms   (all: ${ours.map((x) => x.toFixed(1)).join(', ')})`);
    console.log(`  bare in psql          ${median(bare).toFixed(1)} ms   (all: ${bare.map((x) => x.toFixed(1)).join(', ')})`);
    console.log(`  plan: ${plan.filter((l) => /Scan|Sort|Limit|LockRows/.test(l)).map((l) => l.trim().replace(/\s+\(cost.*$/, '')).join(' | ')}\n`);
    console.log(`claim and re-check all ${DUE.toLocaleString('en-US')} due subscriptions against the fake Play Developer API:`);
    console.log(`  1 instance    ${(one.wallMs / 1000).toFixed(1)} s   ${rate(DUE, one.wallMs)}/s   processed ${one.processed.join(' + ')}, store reads ${readsOne}, failed ${one.failed}`);
    console.log(`  2 instances   ${(two.wallMs / 1000).toFixed(1)} s   ${rate(DUE, two.wallMs)}/s   processed ${two.processed.join(' + ')}, store reads ${readsTwo}, failed ${two.failed}`);
    const ok = one.processed.reduce((a, b) => a + b, 0) === DUE && two.processed.reduce((a, b) => a + b, 0) === DUE && readsOne === DUE && readsTwo === DUE;
    console.log(`  each due subscription checked exactly once per round: ${ok ? 'yes' : 'NO'}`);
    if (!ok) process.exitCode = 1;
  } finally {
    await sql.end().catch(() => undefined);
    await fake.close();
    await admin.query(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  }
}

if (process.argv.includes('--instance')) {
  instance().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
