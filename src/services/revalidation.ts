// Scheduled re-validation: every stored subscription whose state can still change has a `next_check_at`; this
// job asks its store for the current state when that time comes and records the answer through the same
// recorder as submitReceipt and the notification handlers (a renewal extends the grant with a RENEWAL event, a
// lapse expires it, ...). Rows are claimed in batches with FOR UPDATE SKIP LOCKED and a lease, so instances never
// check one subscription twice at once and the rows of an instance that died are taken over after the lease.
// Requests come out of a per-store budget shared by all instances; a store that keeps failing is paused.
import type { Logger } from 'pino';
import { nextAttemptAt, type JobTiming } from '../domain/job-timing.js';
import { nextCheckAt, type RecheckPolicy } from '../domain/recheck.js';
import type { Store, SubscriptionState } from '../domain/types.js';
import type { Orm } from '../persistence/orm.js';
import { toDate } from '../persistence/snapshot-codec.js';
import type { StoreAdapters, SubscriptionRef } from '../stores/adapter.js';
import type { PurchaseRecorder } from './purchase-recorder.js';
import type { StoreBudgets } from './store-budget.js';
import type { StoreTaskRunner } from './store-tasks.js';

type Row = Record<string, unknown>;

export interface RevalidationSettings {
  /** Rows claimed per batch. */
  batchSize: number;
  /** Store requests in flight at once per store, per instance. */
  concurrency: number;
}

export interface RevalidationMetrics {
  checked(store: Store, outcome: 'answered' | 'failed' | 'refused'): void;
}

interface DueSubscription {
  id: string;
  store: Store;
  appUserId: string;
  attempts: number;
  lease: Date;
  ref: SubscriptionRef;
}

export type PerStore = Partial<Record<Store, number>>;

export interface RevalidationRun {
  /** The store answered and the answer was recorded. */
  answered: PerStore;
  /** The store could not answer (down, credentials): retried with backoff. */
  failed: PerStore;
  /** The store gave a definitive no (e.g. an unknown token): checked again at the slow sweep. */
  refused: PerStore;
  /** Due, but left for a later run: no budget left, or the store is paused. */
  deferred: PerStore;
}

/**
 * Claims due subscriptions of one store (parameters: store, now, limit, lease end). The partial index on
 * (store, next_check_at) keeps this an index range scan whatever the table's size; bench/scheduler times it.
 */
export const CLAIM_DUE_SQL = `with due as (
         select id from subscription
         where store = ? and next_check_at is not null and next_check_at <= ? and customer_id is not null
         order by next_check_at limit ? for update skip locked),
       claimed as (
         update subscription s set next_check_at = ?, check_attempts = s.check_attempts + 1
         from due where s.id = due.id
         returning s.id, s.store, s.environment, s.lineage_id, s.product_id, s.check_attempts, s.customer_id,
           case when ?::boolean then s.app_receipt end as app_receipt)
       select cl.id, cl.environment, cl.lineage_id, cl.product_id, cl.check_attempts, cl.app_receipt, c.app_user_id, tok.purchase_token,
         (select t.package_name from store_task t where t.kind = 'ACKNOWLEDGE_SUBSCRIPTION' and t.token = tok.purchase_token limit 1) as package_name
       from claimed cl
       join customer c on c.id = cl.customer_id
       left join lateral (select p.purchase_token from purchase p where p.store = cl.store and p.lineage_id = cl.lineage_id
                          and p.purchase_token is not null order by p.purchased_at desc limit 1) tok on true`;

/** Failures in a row within one run after which the rest of the batch waits for the store's pause. */
const FAILURES_IN_A_ROW_TO_STOP = 5;

export class SubscriptionRevalidator {
  constructor(
    private readonly orm: Orm,
    private readonly adapters: StoreAdapters,
    private readonly recorder: PurchaseRecorder,
    private readonly tasks: StoreTaskRunner,
    private readonly budgets: StoreBudgets,
    private readonly timing: JobTiming,
    private readonly policy: RecheckPolicy,
    private readonly settings: RevalidationSettings,
    private readonly log: Logger,
    private readonly metrics?: RevalidationMetrics,
  ) {}

  /**
   * Checks due subscriptions of every configured store, as far as each store's budget allows. `now` is the
   * run's start (injected in tests); time moves on from it as the run goes, so leases and records stay current.
   * With `waitForBudgetMs` the run waits for the budget to refill (up to that long) while work is due: the
   * scheduler passes its interval, so a backlog is worked off at the configured rate, not one burst per slot.
   */
  async runDue(now: Date, options: { waitForBudgetMs?: number } = {}): Promise<RevalidationRun> {
    const run: RevalidationRun = { answered: {}, failed: {}, refused: {}, deferred: {} };
    const startedAt = performance.now();
    const clock = () => new Date(now.getTime() + (performance.now() - startedAt));
    const deadline = startedAt + (options.waitForBudgetMs ?? 0);
    const stores = (Object.keys(this.adapters) as Store[]).filter((s) => this.adapters[s]?.recheck);
    await Promise.all(stores.map((store) => this.runStore(store, clock, deadline, run)));
    return run;
  }

  private async runStore(store: Store, clock: () => Date, deadline: number, run: RevalidationRun): Promise<void> {
    for (;;) {
      if (await this.budgets.pausedUntil(store, clock())) {
        add(run.deferred, store, await this.countDue(store, clock()));
        return;
      }
      const budget = await this.budgets.take(store, this.settings.batchSize, clock());
      if (budget === 0) {
        const wait = Math.min(this.budgets.refillWaitMs(store, Math.min(this.settings.batchSize, 10)), deadline - performance.now());
        if (wait > 0 && (await this.countDue(store, clock(), 1)) > 0) {
          await new Promise((r) => setTimeout(r, wait));
          continue;
        }
        add(run.deferred, store, await this.countDue(store, clock()));
        return;
      }
      const batch = await this.claim(store, clock(), budget);
      await this.budgets.giveBack(store, budget - batch.length);
      if (batch.length === 0) return;
      const stopped = await this.checkBatch(store, batch, clock, run);
      if (stopped) return;
    }
  }

  /** Checks a claimed batch with bounded concurrency; returns true when the store failed too often to go on. */
  private async checkBatch(store: Store, batch: DueSubscription[], clock: () => Date, run: RevalidationRun): Promise<boolean> {
    let next = 0;
    let failuresInARow = 0;
    let stopped = false;
    const worker = async () => {
      while (next < batch.length && !stopped) {
        const item = batch[next++]!;
        const outcome = await this.check(item, clock());
        add(run[outcome], store, 1);
        this.metrics?.checked(store, outcome);
        failuresInARow = outcome === 'failed' ? failuresInARow + 1 : 0;
        if (failuresInARow >= FAILURES_IN_A_ROW_TO_STOP) stopped = true;
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.settings.concurrency, batch.length) }, worker));
    if (stopped) {
      // The store is down: the rest of the batch waits for the pause instead of failing one by one.
      const rest = batch.slice(next);
      const now = clock();
      const until = (await this.budgets.pausedUntil(store, now)) ?? new Date(now.getTime() + this.timing.retryBaseMs);
      await this.release(rest, until);
      add(run.deferred, store, rest.length);
      this.log.warn({ store, failuresInARow, pausedUntil: until }, 'store keeps failing; scheduled re-checks wait');
    }
    return stopped;
  }

  private async check(item: DueSubscription, now: Date): Promise<'answered' | 'failed' | 'refused'> {
    const adapter = this.adapters[item.store]!;
    let result;
    try {
      result = await adapter.recheck!(item.ref);
    } catch (err) {
      result = { status: 'PENDING' as const, reason: 'STORE_UNAVAILABLE' as const, message: (err as Error).message };
    }
    if (result.status === 'VERIFIED') {
      try {
        const recorded = await this.recorder.record(item.appUserId, result.purchases, now, { followUps: result.followUps });
        this.tasks.runSoon(recorded.queuedTaskIds);
      } catch (err) {
        // Not the store's fault: the row is checked again after a backoff.
        this.log.error({ err, subscription: item.id }, 'recording a re-checked subscription failed; it is checked again later');
        await this.reschedule(item, nextAttemptAt(now, item.attempts, this.timing), now, false);
        return 'failed';
      }
      await this.budgets.recordOutcome(item.store, true, now);
      await this.finish(item, now);
      return 'answered';
    }
    if (result.status === 'PENDING') {
      await this.budgets.recordOutcome(item.store, false, now);
      await this.reschedule(item, nextAttemptAt(now, item.attempts, this.timing), now, false);
      this.log.warn({ store: item.store, subscription: item.id, attempts: item.attempts, reason: result.reason, error: result.message }, 're-check failed; retrying later');
      return 'failed';
    }
    await this.budgets.recordOutcome(item.store, true, now);
    this.log.warn({ store: item.store, subscription: item.id, lineageId: item.ref.lineageId, reason: result.reason, error: result.message }, 'the store refused a re-check; trying again at the slow sweep');
    await this.reschedule(item, new Date(now.getTime() + this.policy.sweepMs), now, true);
    return 'refused';
  }

  /**
   * After a recorded answer the recorder has set the next check from the new state. If it did not touch the
   * row (nothing new for this customer), the next check follows from the stored state.
   */
  private async finish(item: DueSubscription, now: Date): Promise<void> {
    const rows = (await this.conn().execute(`select state, expires_at, grace_period_expires_at, auto_resume_at, next_check_at from subscription where id = ?`, [
      item.id,
    ])) as Row[];
    const row = rows[0];
    if (!row) return;
    const next = nextCheckAt(
      {
        state: row.state as SubscriptionState,
        expiresAt: toDate(row.expires_at),
        gracePeriodExpiresAt: toDate(row.grace_period_expires_at),
        autoResumeAt: toDate(row.auto_resume_at),
      },
      now,
      this.policy,
    );
    // Only if the row still holds this run's lease: a concurrent write (a submission, a notification) has set
    // its own next check, which stands.
    const updated = (await this.conn().execute(
      `update subscription set next_check_at = ?, check_attempts = 0, last_checked_at = ? where id = ? and next_check_at = ? returning id`,
      [next, now, item.id, item.lease],
    )) as Row[];
    if (updated.length === 0) await this.conn().execute(`update subscription set check_attempts = 0, last_checked_at = ? where id = ?`, [now, item.id]);
  }

  private async reschedule(item: DueSubscription, at: Date, now: Date, answered: boolean): Promise<void> {
    await this.conn().execute(
      `update subscription set next_check_at = ?, check_attempts = ${answered ? '0' : 'check_attempts'}, last_checked_at = ? where id = ? and next_check_at = ?`,
      [at, now, item.id, item.lease],
    );
  }

  private async release(items: DueSubscription[], at: Date): Promise<void> {
    for (const item of items) {
      await this.conn().execute(`update subscription set next_check_at = ?, check_attempts = greatest(check_attempts - 1, 0) where id = ? and next_check_at = ?`, [
        at,
        item.id,
        item.lease,
      ]);
    }
  }

  /** Claims up to `limit` due subscriptions of a store: their next check moves to the lease's end. */
  async claim(store: Store, now: Date, limit: number): Promise<DueSubscription[]> {
    const lease = new Date(now.getTime() + this.timing.leaseMs);
    // Receipts can be large: read only when this store re-checks with them (Apple without an API key).
    const withReceipt = this.adapters[store]?.recheckNeedsReceipt === true;
    const rows = (await this.conn().execute(CLAIM_DUE_SQL, [store, now, limit, lease, withReceipt])) as Row[];
    const items: DueSubscription[] = [];
    for (const r of rows) {
      const token = (r.purchase_token as string | null) ?? null;
      items.push({
        id: r.id as string,
        store,
        appUserId: r.app_user_id as string,
        attempts: Number(r.check_attempts),
        lease,
        ref: {
          environment: r.environment as SubscriptionRef['environment'],
          lineageId: r.lineage_id as string,
          productId: r.product_id as string,
          purchaseToken: token,
          packageName: (r.package_name as string | null) ?? null,
          appReceipt: (r.app_receipt as string | null) ?? null,
        },
      });
    }
    return items;
  }

  private async countDue(store: Store, now: Date, atMost = 1_000_000): Promise<number> {
    const rows = (await this.conn().execute(
      `select count(*)::int as n from (select 1 from subscription where store = ? and next_check_at is not null and next_check_at <= ? limit ?) due`,
      [store, now, atMost],
    )) as Row[];
    return Number(rows[0]?.n ?? 0);
  }

  /** Due backlog per store at `now`: how many, and the oldest due time (for metrics and the admin view). */
  async backlog(now: Date): Promise<{ store: Store; due: number; oldestDueAt: Date | null }[]> {
    const out: { store: Store; due: number; oldestDueAt: Date | null }[] = [];
    // One store at a time, so each count is a range scan of the partial (store, next_check_at) index.
    for (const store of Object.keys(this.adapters) as Store[]) {
      const rows = (await this.conn().execute(
        `select count(*)::int as due, min(next_check_at) as oldest from subscription where store = ? and next_check_at is not null and next_check_at <= ?`,
        [store, now],
      )) as Row[];
      out.push({ store, due: Number(rows[0]?.due ?? 0), oldestDueAt: toDate(rows[0]?.oldest ?? null) });
    }
    return out;
  }

  private conn() {
    return this.orm.em.getConnection();
  }
}

function add(counts: PerStore, store: Store, n: number): void {
  if (n > 0) counts[store] = (counts[store] ?? 0) + n;
}
