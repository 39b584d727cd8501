// Store server notifications are stored before anything else happens (deduplicated by the store's message
// id), then processed; one whose processing could not finish (store unreachable, database hiccup) is picked up
// again by the scheduler with backoff. Shared by the App Store and Google Play.
import type { Store } from '../domain/types.js';
import type { Orm } from '../persistence/orm.js';
import { DEFAULT_JOB_TIMING, leaseEnd, nextAttemptAt, type JobTiming } from '../domain/job-timing.js';

type Row = Record<string, unknown>;

export interface StoredNotification<P> {
  id: number;
  payload: P;
  attempts: number;
  authenticated: boolean;
}

export class NotificationInbox<P> {
  constructor(
    private readonly orm: Orm,
    private readonly store: Store,
    private readonly clock: () => Date,
    private readonly timing: JobTiming = DEFAULT_JOB_TIMING,
  ) {}

  /** Stores a notification once. Returns its id (leased for inline processing), or null when already stored. */
  async receive(messageId: string, type: string, payload: P, authenticated: boolean): Promise<number | null> {
    const now = this.clock();
    const rows = (await this.orm.em.getConnection().execute(
      `insert into store_notification (store, message_id, type, payload, authenticated, status, attempts, next_attempt_at, received_at)
       values (?, ?, ?, ?, ?, 'RECEIVED', 1, ?, ?)
       on conflict (store, message_id) do nothing
       returning id`,
      [this.store, messageId, type.slice(0, 64), JSON.stringify(payload), authenticated, leaseEnd(now, this.timing), now],
    )) as Row[];
    return rows.length === 0 ? null : Number(rows[0]!.id);
  }

  /** Claims stored notifications whose processing is due again (another instance skips what this one took). */
  async claimDue(now: Date, limit: number): Promise<StoredNotification<P>[]> {
    const rows = (await this.orm.em.getConnection().execute(
      `update store_notification set attempts = attempts + 1, next_attempt_at = ?
       where id in (select id from store_notification where store = ? and status = 'RECEIVED' and next_attempt_at <= ?
                    order by next_attempt_at limit ? for update skip locked)
       returning id, payload, attempts, authenticated`,
      [leaseEnd(now, this.timing), this.store, now, limit],
    )) as Row[];
    return rows.map((row) => ({
      id: Number(row.id),
      payload: (typeof row.payload === 'string' ? JSON.parse(row.payload) : row.payload) as P,
      attempts: Number(row.attempts),
      authenticated: Boolean(row.authenticated),
    }));
  }

  async done(id: number, outcome: string): Promise<void> {
    await this.orm.em.getConnection().execute(`update store_notification set status = ?, processed_at = ?, outcome = ?, last_error = null where id = ?`, [
      outcome.startsWith('ignored') ? 'IGNORED' : 'PROCESSED',
      this.clock(),
      outcome.slice(0, 1000),
      id,
    ]);
  }

  async retryLater(id: number, attempts: number, error: string): Promise<void> {
    await this.orm.em.getConnection().execute('update store_notification set next_attempt_at = ?, last_error = ? where id = ?', [
      nextAttemptAt(this.clock(), attempts, this.timing),
      error.slice(0, 1000),
      id,
    ]);
  }
}
