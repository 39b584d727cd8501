// Crash safety, end to end: the built service runs as a child process on PostgreSQL, talking to both fake
// stores over HTTP while they fail a fifth of their calls (5xx or a hang past the client timeout). Apps submit
// purchases concurrently, a fifth of them twice; the service is killed with SIGKILL several times mid-run and
// restarted. Once the stores recover and retries settle, nothing the stores consider paid may be lost or doubled.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeAppStore } from '../fakes/app-store.js';
import { FakeGooglePlay } from '../fakes/google-play.js';
import { APP_APPLE_ID, appleConfig, BUNDLE_ID, COINS, MONTHLY, NO_ADS, SHARED_SECRET } from '../support/apple.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { DAY, PACKAGE, subscription } from '../support/google.js';
import { TEST_API_KEY } from '../support/test-app.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

const ROOT = resolve(import.meta.dirname, '../..');
const PURCHASES = Number(process.env.CRASH_TEST_PURCHASES ?? 1000);
const DUPLICATE_SHARE = 0.2;
const FAILURE_RATE = 0.2;
const CONCURRENCY = 16;
const CUSTOMERS = 150;
const KILL_AT = [0.2, 0.45, 0.7]; // shares of submissions done; one more kill while retries settle
const WEBHOOK_SECRET = 'crash-test-webhook-secret-0123456789abcdef';
const SPEND = 40;
const COINS_PER_PACK = 100;

type Kind = 'SUBSCRIPTION' | 'CONSUMABLE' | 'NON_CONSUMABLE';
interface PlannedPurchase {
  index: number;
  store: 'APP_STORE' | 'PLAY_STORE';
  kind: Kind;
  appUserId: string;
  /** The store transaction id the service records (Apple transactionId, Google orderId). */
  transactionId: string;
  googleToken: string | null;
  input: Record<string, unknown>;
}

/** Seeded, so a failing run can be repeated. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The child runs the compiled service; compile it when the sources are newer (vitest alone does not build). */
function ensureBuilt(): void {
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((m, e) => Math.max(m, e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs), 0);
  let built = 0;
  try {
    built = statSync(join(ROOT, 'dist/src/main.js')).mtimeMs;
  } catch {
    built = 0;
  }
  if (built < Math.max(newest(join(ROOT, 'src')), newest(join(ROOT, 'migrations')))) {
    execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The service as an operator runs it: `node dist/src/main.js` with its configuration in the environment. */
class ServiceProcess {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  readonly stderr: string[] = [];
  starts = 0;
  kills = 0;

  constructor(
    readonly port: number,
    private readonly env: Record<string, string>,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/graphql`;
  }

  async start(): Promise<void> {
    const child = spawn(process.execPath, [join(ROOT, 'dist/src/main.js')], { cwd: ROOT, env: { ...process.env, ...this.env }, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (c: Buffer) => this.stderr.push(c.toString()));
    this.exited = new Promise((r) => child.once('exit', () => r()));
    this.child = child;
    this.starts++;
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}: ${this.stderr.join('')}`);
      try {
        const res = await fetch(`http://127.0.0.1:${this.port}/readyz`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`service did not become ready: ${this.stderr.join('')}`);
      await sleep(50);
    }
  }

  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    this.kills++;
    await this.exited;
  }

  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    await this.exited;
  }
}

describe('crash safety: SIGKILL mid-run while both stores fail a fifth of their calls', () => {
  let db: TestDatabase;
  let sql: pg.Client;
  let apple: FakeAppStore;
  let google: FakeGooglePlay;
  let receiver: WebhookReceiver;
  let service: ServiceProcess;
  const random = mulberry32(20261130);

  beforeAll(async () => {
    ensureBuilt();
    db = await createTestDatabase('postgresql');
    sql = new pg.Client({ connectionString: db.url! });
    await sql.connect();
    apple = await FakeAppStore.start({ bundleId: BUNDLE_ID, appAppleId: APP_APPLE_ID, sharedSecret: SHARED_SECRET });
    google = await FakeGooglePlay.start();
    receiver = await WebhookReceiver.start();
    const env = Object.fromEntries(
      Object.entries({
        DATABASE_URL: db.url!,
        HOST: '127.0.0.1',
        API_KEYS: TEST_API_KEY,
        LOG_LEVEL: 'error',
        CATALOG_PATH: join(ROOT, 'examples/catalog.yaml'),
        ...appleConfig(apple),
        APPLE_REQUEST_TIMEOUT_MS: 800,
        GOOGLE_SERVICE_ACCOUNT_JSON: JSON.stringify(google.serviceAccount),
        GOOGLE_PACKAGE_NAMES: PACKAGE,
        GOOGLE_API_ROOT_URL: google.rootUrl,
        GOOGLE_TOKEN_URL: google.tokenUrl,
        GOOGLE_REQUEST_TIMEOUT_MS: 800,
        WEBHOOK_URLS: receiver.url,
        WEBHOOK_SECRET,
        WEBHOOK_TIMEOUT_MS: 2000,
        // Production pacing is minutes; a drill runs the same code with seconds.
        SCHEDULER_INTERVAL_SECONDS: 1,
        RETRY_BASE_DELAY_MS: 200,
        RETRY_MAX_DELAY_MS: 2000,
        JOB_LEASE_SECONDS: 3,
      }).map(([k, v]) => [k, String(v)]),
    );
    const port = await freePort();
    service = new ServiceProcess(port, { ...env, PORT: String(port) });
    await service.start();
  }, 120_000);

  afterAll(async () => {
    await service?.stop();
    await receiver?.stop();
    await apple?.close();
    await google?.close();
    await sql?.end();
    await db?.drop();
  });

  it('grants every paid purchase exactly once, acknowledges every Google purchase, keeps balances exact and delivers every event', async () => {
    // --- the purchases, as the stores see them -----------------------------------------------------------
    const now = Date.now();
    const plans: PlannedPurchase[] = [];
    for (let index = 0; index < PURCHASES; index++) {
      const appUserId = `crash-user-${Math.floor(random() * CUSTOMERS)}`;
      const r = random();
      const kind: Kind = r < 0.4 ? 'SUBSCRIPTION' : r < 0.75 ? 'CONSUMABLE' : 'NON_CONSUMABLE';
      if (random() < 0.5) {
        const account = `acct-${appUserId}`;
        const productId = kind === 'SUBSCRIPTION' ? MONTHLY : kind === 'CONSUMABLE' ? COINS : NO_ADS;
        const type = kind === 'SUBSCRIPTION' ? 'Auto-Renewable Subscription' : kind === 'CONSUMABLE' ? 'Consumable' : 'Non-Consumable';
        const tx = apple.buy({ productId, type, account, environment: 'Production' });
        // Half the apps send StoreKit 2 signed transactions, half legacy receipts (which list the whole account).
        const proof =
          random() < 0.5
            ? { signedTransaction: apple.signedTransaction(tx.transactionId) }
            : { appReceipt: apple.appReceipt({ account, environment: 'Production' }), transactionId: tx.transactionId };
        plans.push({ index, store: 'APP_STORE', kind, appUserId, transactionId: tx.transactionId, googleToken: null, input: { appUserId, store: 'APP_STORE', apple: proof } });
      } else {
        const token = `crash-token-${index}-${Math.floor(random() * 1e9)}`;
        const orderId = `GPA.3300-${String(index).padStart(4, '0')}-${String(Math.floor(random() * 1e4)).padStart(4, '0')}-00000`;
        const productId = kind === 'SUBSCRIPTION' ? 'pro_monthly' : kind === 'CONSUMABLE' ? 'coins_100' : 'no_ads';
        if (kind === 'SUBSCRIPTION') {
          google.setSubscription(token, subscription('ACTIVE', { start: new Date(now - 60_000), expiry: new Date(now + 30 * DAY), orderId }));
        } else {
          google.setProduct(token, { packageName: PACKAGE, productId, purchaseState: 0, orderId, purchaseTimeMillis: String(now - 60_000) });
        }
        plans.push({ index, store: 'PLAY_STORE', kind, appUserId, transactionId: orderId, googleToken: token, input: { appUserId, store: 'PLAY_STORE', google: { productId, purchaseToken: token } } });
      }
    }
    // A fifth are sent twice, the copy right behind the original so two requests race.
    const submissions: PlannedPurchase[] = [];
    let duplicates = 0;
    for (const plan of plans) {
      submissions.push(plan);
      if (random() < DUPLICATE_SHARE) {
        submissions.push(plan);
        duplicates++;
      }
    }

    // --- the apps: retry on a dead connection (the service is being killed), as real apps do ---------------
    let clientRetries = 0;
    async function call(query: string, variables: Record<string, unknown>): Promise<{ data?: any; errors?: { message: string; extensions?: { code?: string } }[] }> {
      for (;;) {
        try {
          const res = await fetch(service.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${TEST_API_KEY}` },
            body: JSON.stringify({ query, variables }),
            signal: AbortSignal.timeout(15_000),
          });
          return (await res.json()) as { data?: any; errors?: { message: string; extensions?: { code?: string } }[] };
        } catch {
          clientRetries++;
          await sleep(50 + random() * 150);
        }
      }
    }
    const SUBMIT = `mutation($input: SubmitReceiptInput!) { submitReceipt(input: $input) { status reason } }`;
    const SPEND_CREDITS = `mutation($input: SpendCreditsInput!) { spendCredits(input: $input) { balance replayed } }`;
    const answers = new Map<string, number>();
    const unexpected: string[] = [];
    const spent = new Map<string, number>();
    const spendKeys = new Set<string>();

    async function submit(plan: PlannedPurchase): Promise<void> {
      const res = await call(SUBMIT, { input: plan.input });
      const answer = res.data?.submitReceipt as { status: string; reason: string } | undefined;
      if (!answer) {
        unexpected.push(`#${plan.index} ${plan.store}: ${JSON.stringify(res.errors)}`);
        return;
      }
      answers.set(answer.status, (answers.get(answer.status) ?? 0) + 1);
      if (answer.status === 'REJECTED') unexpected.push(`#${plan.index} ${plan.store} ${plan.kind}: REJECTED ${answer.reason}`);
      // Some players spend coins as soon as the pack shows up (once per pack; a retry reuses the key).
      const key = `spend-${plan.index}`;
      if (plan.kind === 'CONSUMABLE' && answer.status !== 'PENDING' && !spendKeys.has(key) && random() < 0.3) {
        spendKeys.add(key);
        const s = await call(SPEND_CREDITS, { input: { appUserId: plan.appUserId, currency: 'coins', amount: SPEND, idempotencyKey: key } });
        if (s.data?.spendCredits) spent.set(plan.appUserId, (spent.get(plan.appUserId) ?? 0) + SPEND);
        else if (s.errors?.[0]?.extensions?.code !== 'INSUFFICIENT_CREDITS') unexpected.push(`spend ${key}: ${JSON.stringify(s.errors)}`);
      }
    }

    // --- the run: stores failing, the service killed at the marks ------------------------------------------
    apple.failRandomly({ rate: FAILURE_RATE, hangMs: 1500, random });
    google.failRandomly({ rate: FAILURE_RATE, hangMs: 1500, random });
    let done = 0;
    let next = 0;
    const kills: Promise<void>[] = [];
    let nextKill = 0;
    const killAndRestart = async () => {
      await service.kill();
      await sleep(200);
      await service.start();
    };
    const started = Date.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < submissions.length) {
          const plan = submissions[next++]!;
          await submit(plan);
          done++;
          if (nextKill < KILL_AT.length && done >= KILL_AT[nextKill]! * submissions.length) {
            nextKill++;
            kills.push(killAndRestart());
          }
        }
      }),
    );
    await Promise.all(kills);
    const driveMs = Date.now() - started;
    // One more while the retry jobs are busy with what the outages left.
    await sleep(500);
    await killAndRestart();
    apple.failRandomly(null);
    google.failRandomly(null);

    // --- let the retries settle -----------------------------------------------------------------------------
    const backlog = async () => {
      const { rows } = await sql.query(`select
        (select count(*) from pending_proof where status = 'PENDING')::int as proofs,
        (select count(*) from store_task where status = 'PENDING')::int as tasks,
        (select count(*) from webhook_delivery where status = 'PENDING')::int as webhooks`);
      return rows[0] as { proofs: number; tasks: number; webhooks: number };
    };
    const settleDeadline = Date.now() + 240_000;
    let left = await backlog();
    while (left.proofs + left.tasks + left.webhooks > 0 && Date.now() < settleDeadline) {
      await sleep(500);
      left = await backlog();
    }
    expect(left).toEqual({ proofs: 0, tasks: 0, webhooks: 0 });
    expect(unexpected).toEqual([]);

    // --- every paid purchase recorded once, for its customer, and granted once -----------------------------
    const recorded = await sql.query(
      `select p.store, p.store_transaction_id, c.app_user_id, count(*) over (partition by p.store, p.store_transaction_id)::int as copies
       from purchase p join customer c on c.id = p.customer_id`,
    );
    const owner = new Map(recorded.rows.map((r) => [`${r.store}:${r.store_transaction_id}`, r.app_user_id as string]));
    const grants = await sql.query(
      `select store, store_transaction_id, count(*)::int as n from event
       where type in ('INITIAL_PURCHASE', 'NON_CONSUMABLE_PURCHASE', 'CONSUMABLE_CREDIT') group by store, store_transaction_id`,
    );
    const grantCount = new Map(grants.rows.map((r) => [`${r.store}:${r.store_transaction_id}`, r.n as number]));
    const credits = await sql.query(`select store_transaction_id, count(*)::int as n from credit_ledger where reason <> 'SPEND' group by store_transaction_id`);
    const creditCount = new Map(credits.rows.map((r) => [r.store_transaction_id as string, r.n as number]));
    let lost = 0;
    let doubled = 0;
    const problems: string[] = [];
    for (const plan of plans) {
      const key = `${plan.store}:${plan.transactionId}`;
      const grantsOfPlan = grantCount.get(key) ?? 0;
      const creditsOfPlan = creditCount.get(plan.transactionId) ?? 0;
      if (owner.get(key) !== plan.appUserId || grantsOfPlan === 0 || (plan.kind === 'CONSUMABLE' && creditsOfPlan === 0)) {
        lost++;
        problems.push(`lost #${plan.index} ${key} ${plan.kind}: owner ${owner.get(key)}, grants ${grantsOfPlan}, credits ${creditsOfPlan}`);
      }
      if (grantsOfPlan > 1 || creditsOfPlan > 1) {
        doubled++;
        problems.push(`doubled #${plan.index} ${key}: grants ${grantsOfPlan}, credits ${creditsOfPlan}`);
      }
    }
    expect(recorded.rows.every((r) => r.copies === 1)).toBe(true);
    expect(recorded.rows.length).toBe(plans.length);

    // --- Google got every acknowledgement or consumption ------------------------------------------------------
    let unacknowledged = 0;
    for (const plan of plans.filter((p) => p.googleToken !== null)) {
      if (plan.kind === 'SUBSCRIPTION') {
        if (google.getSubscription(plan.googleToken!)!.acknowledgementState !== 'ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED') unacknowledged++;
      } else {
        const p = google.getProduct(plan.googleToken!)!;
        if (plan.kind === 'CONSUMABLE' ? p.consumptionState !== 1 : p.acknowledgementState !== 1) unacknowledged++;
      }
    }

    // --- balances: credited packs minus spends, as the API reports them ------------------------------------
    const packs = new Map<string, number>();
    for (const plan of plans.filter((p) => p.kind === 'CONSUMABLE')) packs.set(plan.appUserId, (packs.get(plan.appUserId) ?? 0) + 1);
    const wrongBalances: string[] = [];
    for (const [appUserId, n] of packs) {
      const res = await call(`query($id: String!) { customer(appUserId: $id) { creditBalances { currency balance } } }`, { id: appUserId });
      const balance = (res.data?.customer?.creditBalances as { currency: string; balance: number }[]).find((b) => b.currency === 'coins')?.balance ?? 0;
      const expected = n * COINS_PER_PACK - (spent.get(appUserId) ?? 0);
      if (balance !== expected) wrongBalances.push(`${appUserId}: ${balance}, expected ${expected}`);
    }

    // --- every event reached the webhook receiver -------------------------------------------------------------
    const events = await sql.query(`select id from event`);
    const delivered = new Set(receiver.received.map((r) => r.payload.id));
    const undelivered = events.rows.filter((r) => !delivered.has(`evt_${r.id}`)).length;
    const failedDeliveries = Number((await sql.query(`select count(*) from webhook_delivery where status <> 'DELIVERED'`)).rows[0].count);

    const retries = Number((await sql.query(`select coalesce(sum(greatest(attempts - 1, 0)), 0) as n from pending_proof`)).rows[0].n);
    const taskRetries = Number((await sql.query(`select coalesce(sum(greatest(attempts - 1, 0)), 0) as n from store_task`)).rows[0].n);
    console.log(
      `crash safety: purchases ${plans.length} (apple ${plans.filter((p) => p.store === 'APP_STORE').length}, google ${plans.filter((p) => p.store === 'PLAY_STORE').length}), ` +
        `submissions ${submissions.length}, duplicates ${duplicates}, answers ${JSON.stringify(Object.fromEntries(answers))}, kills ${service.kills}, ` +
        `store failures injected ${apple.randomFailures + google.randomFailures}, proof retries ${retries}, store-call retries ${taskRetries}, client retries ${clientRetries}, ` +
        `spends ${[...spent.values()].reduce((a, b) => a + b, 0) / SPEND}, events ${events.rows.length}, webhook requests ${receiver.received.length}, ` +
        `lost ${lost}, doubled ${doubled}, unacknowledged ${unacknowledged}, wrong balances ${wrongBalances.length}, undelivered events ${undelivered}; drive ${driveMs} ms`,
    );
    expect(problems).toEqual([]);
    expect({ lost, doubled, unacknowledged, undelivered, failedDeliveries }).toEqual({ lost: 0, doubled: 0, unacknowledged: 0, undelivered: 0, failedDeliveries: 0 });
    expect(wrongBalances).toEqual([]);
    // The drill really drilled: kills happened, stores failed, retries ran.
    expect(service.kills).toBeGreaterThanOrEqual(4);
    expect(apple.randomFailures).toBeGreaterThan(0);
    expect(google.randomFailures).toBeGreaterThan(0);
    expect(answers.get('PENDING') ?? 0).toBeGreaterThan(0);
  }, 600_000);
});
