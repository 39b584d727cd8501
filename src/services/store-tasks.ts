// Acknowledgements and consumptions Google must receive after a grant. They are queued in the grant's
// transaction and sent after commit; failures are retried with backoff until Google accepts (an
// unacknowledged purchase is refunded after 3 days). Work is claimed with a lease, so several instances
// never send the same call at once and a crashed instance's claims are taken over when the lease ends.
import type { Logger } from 'pino';
import type { Orm } from '../persistence/orm.js';
import { PermanentStoreTaskError, type StoreTaskSpec } from '../stores/adapter.js';
import { DEFAULT_JOB_TIMING, leaseEnd, nextAttemptAt, type JobTiming } from '../domain/job-timing.js';

type Row = Record<string, unknown>;

export interface StoreTaskPerformer {
  perform(task: StoreTaskSpec): Promise<void>;
}

export class StoreTaskRunner {
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(
    private readonly orm: Orm,
    private readonly performer: StoreTaskPerformer | null,
    private readonly clock: () => Date,
    private readonly log: Logger,
    private readonly timing: JobTiming = DEFAULT_JOB_TIMING,
  ) {}

  /** Sends the given freshly queued tasks in the background, right after the commit that queued them. */
  runSoon(ids: readonly number[]): void {
    if (ids.length === 0 || !this.performer) return;
    const work = this.run(this.clock(), ids.length, ids).catch((err: unknown) => this.log.error({ err }, 'sending store acknowledgements failed; they will be retried'));
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  /** Sends tasks that are due (new, or whose retry time or lease has come). */
  runDue(now: Date, limit = 100): Promise<{ done: number; failed: number }> {
    return this.run(now, limit);
  }

  /** Waits for background sends (shutdown, tests). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }

  private async run(now: Date, limit: number, ids?: readonly number[]): Promise<{ done: number; failed: number }> {
    if (!this.performer) return { done: 0, failed: 0 };
    const claimed = await this.claim(now, limit, ids);
    let done = 0;
    let failed = 0;
    for (const task of claimed) {
      try {
        await this.performer.perform(task);
        await this.orm.em.getConnection().execute(`update store_task set status = 'DONE', done_at = ?, last_error = null where id = ?`, [this.clock(), task.id]);
        done++;
      } catch (err) {
        failed++;
        if (err instanceof PermanentStoreTaskError) {
          this.log.error({ task: task.id, kind: task.kind, token: task.token, err: err.message }, 'the store refused this call for good; closed as FAILED');
          await this.orm.em.getConnection().execute(`update store_task set status = 'FAILED', last_error = ? where id = ?`, [err.message.slice(0, 1000), task.id]);
          continue;
        }
        const retryAt = nextAttemptAt(this.clock(), task.attempts, this.timing);
        this.log.warn({ task: task.id, kind: task.kind, attempts: task.attempts, retryAt, err: (err as Error).message }, 'store call failed; retrying later');
        await this.orm.em.getConnection().execute('update store_task set next_attempt_at = ?, last_error = ? where id = ?', [retryAt, (err as Error).message.slice(0, 1000), task.id]);
      }
    }
    return { done, failed };
  }

  private async claim(now: Date, limit: number, ids?: readonly number[]): Promise<(StoreTaskSpec & { id: number; attempts: number })[]> {
    const only = ids ? `and id in (${ids.map(() => '?').join(', ')})` : '';
    const rows = (await this.orm.em.getConnection().execute(
      `update store_task set attempts = attempts + 1, next_attempt_at = ?
       where id in (select id from store_task where status = 'PENDING' and next_attempt_at <= ? ${only}
                    order by next_attempt_at limit ? for update skip locked)
       returning id, kind, package_name, product_id, token, attempts`,
      [leaseEnd(now, this.timing), now, ...(ids ?? []), limit],
    )) as Row[];
    return rows.map((r) => ({
      id: Number(r.id),
      kind: r.kind as StoreTaskSpec['kind'],
      packageName: r.package_name as string,
      productId: r.product_id as string,
      token: r.token as string,
      attempts: Number(r.attempts),
    }));
  }
}
