// Background jobs: thin node-cron triggers that call services. Each schedule slot runs on one instance (the
// first to claim it in PostgreSQL, node-cron's `distributed` run coordinator), and every job claims its rows with
// a lease (FOR UPDATE SKIP LOCKED), so any number of instances may run the scheduler without doing work twice.
import { isDatabaseUnavailable } from '../persistence/database-errors.js';
import { schedule, type RunCoordinator, type ScheduledTask, type TaskContext } from 'node-cron';
import type { Logger } from 'pino';
import type { Orm } from '../persistence/orm.js';
import type { Services } from '../services/container.js';

export interface Job {
  name: string;
  cron: string;
  run: () => Promise<unknown>;
}

/** A cron expression for "every `seconds` seconds" (a divisor of 60; 60 is every minute). */
export function everySeconds(seconds: number): string {
  return seconds >= 60 ? '* * * * *' : `*/${seconds} * * * * *`;
}

export function jobsFor(services: Services, intervalSeconds = 60): Job[] {
  const now = () => services.clock();
  const often = everySeconds(intervalSeconds);
  const jobs: Job[] = [
    { name: 'store-tasks', cron: often, run: () => services.storeTasks.runDue(now()) },
    { name: 'pending-proofs', cron: often, run: () => services.receipts.retryPending(now()) },
    // A run may wait for the store budget to refill until shortly before the next slot: a backlog drains at the
    // configured rate instead of one burst per slot.
    {
      name: 'revalidate-subscriptions',
      cron: often,
      run: () => services.revalidator.runDue(now(), { waitForBudgetMs: Math.max(0, intervalSeconds * 1000 - 2000) }),
    },
    { name: 'expire-orders', cron: '*/5 * * * *', run: () => services.orders.expireDue(now()) },
    // Analytics spans of subscriptions recorded before the rollup existed; a no-op once done.
    { name: 'backfill-analytics', cron: often, run: () => services.analytics.backfillSpans() },
    { name: 'prune-job-runs', cron: '41 * * * *', run: () => pruneJobRuns(services.orm, now()) },
    { name: 'prune-verified-proofs', cron: '23 * * * *', run: () => services.pendingProofs.pruneVerified(now(), services.verifiedProofRetentionMs) },
  ];
  const google = services.googleNotifications;
  if (google) {
    jobs.push({ name: 'google-notifications', cron: often, run: () => google.processDue(now()) });
    jobs.push({ name: 'google-voided-purchases', cron: '17 * * * *', run: () => google.syncVoidedPurchases(now()) });
  }
  const apple = services.appleNotifications;
  if (apple) jobs.push({ name: 'apple-notifications', cron: often, run: () => apple.processDue(now()) });
  const webhooks = services.webhooks;
  // Every 5 seconds (node-cron's optional seconds field), not every minute: a commit on this instance already
  // nudges delivery at once, but retries fall due at 30 s, 1 min, ... and writes that do not nudge still queue
  // deliveries; 5 s keeps those close to their due time for one indexed query per run when nothing is due.
  if (webhooks.enabled) jobs.push({ name: 'webhooks', cron: everySeconds(Math.min(5, intervalSeconds)), run: () => webhooks.deliverDue(now()) });
  return jobs;
}

/** Job runs are kept a week: enough to see what ran when, without growing forever. */
async function pruneJobRuns(orm: Orm, now: Date): Promise<{ deleted: number }> {
  const rows = (await orm.em.getConnection().execute(`delete from job_run where slot < ? returning key`, [new Date(now.getTime() - 7 * 86_400_000)])) as unknown[];
  return { deleted: rows.length };
}

/**
 * node-cron's run coordinator backed by PostgreSQL: a slot runs on the instance whose insert of
 * (job, slot) succeeds; the row then records when the run finished and what it did.
 */
export class PgRunCoordinator implements RunCoordinator {
  private readonly outcomes = new Map<string, string>();

  constructor(
    private readonly orm: Orm,
    readonly instance: string,
  ) {}

  async shouldRun(key: string): Promise<boolean> {
    const { job, slot } = parseKey(key);
    const rows = (await this.orm.em
      .getConnection()
      .execute(`insert into job_run (key, job, slot, instance, started_at) values (?, ?, ?, ?, ?) on conflict (key) do nothing returning key`, [
        key,
        job,
        slot,
        this.instance,
        new Date(),
      ])) as unknown[];
    return rows.length === 1;
  }

  /** What the run of `key` did (set by the job wrapper before node-cron calls onComplete). */
  setOutcome(key: string, outcome: string): void {
    this.outcomes.set(key, outcome);
  }

  async onComplete(key: string): Promise<void> {
    const outcome = this.outcomes.get(key) ?? null;
    this.outcomes.delete(key);
    await this.orm.em.getConnection().execute(`update job_run set finished_at = ?, outcome = ? where key = ?`, [new Date(), outcome?.slice(0, 4000) ?? null, key]);
  }

  /** Records a run that was not scheduled (the catch-up run at start-up). */
  async recordUnscheduled(job: string, startedAt: Date, outcome: string): Promise<void> {
    const key = `${job}:${startedAt.toISOString()}:${this.instance}`;
    await this.orm.em
      .getConnection()
      .execute(`insert into job_run (key, job, slot, instance, started_at, finished_at, outcome) values (?, ?, ?, ?, ?, ?, ?) on conflict (key) do nothing`, [
        key,
        job,
        startedAt,
        this.instance,
        startedAt,
        new Date(),
        outcome.slice(0, 4000),
      ]);
  }
}

/** node-cron's coordinator key is `<task name>:<slot ISO time>`. */
function parseKey(key: string): { job: string; slot: Date } {
  const i = key.indexOf(':');
  return { job: key.slice(0, i), slot: new Date(key.slice(i + 1)) };
}

export interface JobRunObserver {
  jobRun(job: string, outcome: 'ok' | 'failed' | 'skipped'): void;
}

export class Scheduler {
  private readonly tasks: ScheduledTask[] = [];

  constructor(
    private readonly jobs: readonly Job[],
    private readonly log: Logger,
    private readonly coordinator: PgRunCoordinator | null = null,
    private readonly observer?: JobRunObserver,
  ) {}

  start(): void {
    for (const job of this.jobs) {
      const task = schedule(job.cron, (ctx) => this.runJob(job, ctx), {
        name: job.name,
        noOverlap: true,
        ...(this.coordinator ? { distributed: true, runCoordinator: this.coordinator } : {}),
      });
      task.on('execution:skipped', () => this.observer?.jobRun(job.name, 'skipped'));
      task.unref();
      this.tasks.push(task);
    }
    this.log.info({ jobs: this.jobs.map((j) => `${j.name} (${j.cron})`), instance: this.coordinator?.instance }, 'scheduler started');
  }

  /** Runs every job once now (at start-up: work left by a crash is picked up without waiting). */
  async runAllOnce(): Promise<void> {
    for (const job of this.jobs) await this.runJob(job);
  }

  async stop(): Promise<void> {
    await Promise.all(this.tasks.splice(0).map((t) => t.destroy()));
  }

  private async runJob(job: Job, ctx?: TaskContext): Promise<void> {
    const startedAt = new Date();
    let outcome: string;
    try {
      const result = await job.run();
      outcome = JSON.stringify(result ?? null);
      this.observer?.jobRun(job.name, 'ok');
      this.log.debug({ job: job.name, result }, 'job finished');
    } catch (err) {
      outcome = JSON.stringify({ error: (err as Error).message });
      this.observer?.jobRun(job.name, 'failed');
      // An outage is not a bug: every job fails until the database is back, then catches up.
      if (isDatabaseUnavailable(err)) this.log.warn({ job: job.name, err: (err as Error).message }, 'job stopped: the database is unavailable; it runs again at its next slot');
      else this.log.error({ job: job.name, err }, 'job failed; it runs again at its next slot');
    }
    if (!this.coordinator) return;
    if (ctx) this.coordinator.setOutcome(`${job.name}:${ctx.date.toISOString()}`, outcome);
    else await this.coordinator.recordUnscheduled(job.name, startedAt, outcome).catch((err: unknown) => this.log.warn({ err }, 'could not record a job run'));
  }
}
