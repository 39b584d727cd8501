// What the background jobs are doing, for operators: the re-check backlog per store (as the metrics show it,
// but from the database, so it covers every instance) and the last run of each job.
import type { Store } from '../domain/types.js';
import type { Orm } from '../persistence/orm.js';
import { toDate } from '../persistence/snapshot-codec.js';
import type { SubscriptionRevalidator } from './revalidation.js';
import type { StoreBudgets } from './store-budget.js';

type Row = Record<string, unknown>;

export interface StoreRecheckStatus {
  store: Store;
  due: number;
  oldestDueAt: Date | null;
  lagSeconds: number;
  answeredLastHour: number;
  failedLastHour: number;
  refusedLastHour: number;
  consecutiveFailures: number;
  pausedUntil: Date | null;
  requestsPerMinute: number;
}

export interface JobRunView {
  job: string;
  slot: Date;
  instance: string;
  startedAt: Date;
  finishedAt: Date | null;
  outcome: string | null;
}

export class SchedulerStatus {
  constructor(
    private readonly orm: Orm,
    private readonly revalidator: SubscriptionRevalidator,
    private readonly budgets: StoreBudgets,
    private readonly stores: readonly Store[],
    private readonly requestsPerMinute: Record<Store, number>,
  ) {}

  async storesAt(now: Date): Promise<StoreRecheckStatus[]> {
    const backlog = new Map((await this.revalidator.backlog(now)).map((b) => [b.store, b]));
    const hour = (await this.orm.em.getConnection().execute(
      `select outcome from job_run where job = 'revalidate-subscriptions' and slot > ? and outcome is not null`,
      [new Date(now.getTime() - 3_600_000)],
    )) as Row[];
    const sums: Record<string, Record<string, number>> = {};
    for (const r of hour) {
      let parsed: Record<string, Record<string, number>> | null = null;
      try {
        parsed = JSON.parse(r.outcome as string) as Record<string, Record<string, number>>;
      } catch {
        continue;
      }
      for (const kind of ['answered', 'failed', 'refused']) {
        for (const [store, n] of Object.entries(parsed?.[kind] ?? {})) {
          sums[store] ??= {};
          sums[store][kind] = (sums[store][kind] ?? 0) + Number(n);
        }
      }
    }
    const out: StoreRecheckStatus[] = [];
    for (const store of this.stores) {
      const b = backlog.get(store);
      const budget = await this.budgets.state(store);
      out.push({
        store,
        due: b?.due ?? 0,
        oldestDueAt: b?.oldestDueAt ?? null,
        lagSeconds: b?.oldestDueAt ? Math.max(0, (now.getTime() - b.oldestDueAt.getTime()) / 1000) : 0,
        answeredLastHour: sums[store]?.answered ?? 0,
        failedLastHour: sums[store]?.failed ?? 0,
        refusedLastHour: sums[store]?.refused ?? 0,
        consecutiveFailures: budget.consecutiveFailures,
        pausedUntil: budget.pausedUntil && budget.pausedUntil > now ? budget.pausedUntil : null,
        requestsPerMinute: this.requestsPerMinute[store],
      });
    }
    return out;
  }

  /** The latest run of each job, across instances. */
  async lastRuns(): Promise<JobRunView[]> {
    const rows = (await this.orm.em.getConnection().execute(
      `select distinct on (job) job, slot, instance, started_at, finished_at, outcome from job_run order by job, slot desc`,
    )) as Row[];
    return rows.map((r) => ({
      job: r.job as string,
      slot: toDate(r.slot)!,
      instance: r.instance as string,
      startedAt: toDate(r.started_at)!,
      finishedAt: toDate(r.finished_at),
      outcome: (r.outcome as string | null) ?? null,
    }));
  }
}
