// Store server notifications are stored before anything else happens (deduplicated by the store's message
// id), then processed; one whose processing could not finish (store unreachable, database hiccup) is picked up
// again by the scheduler with backoff, up to MAX_NOTIFICATION_ATTEMPTS, and then parked as FAILED with its last
// error (kept for support, not retried). Shared by the App Store and Google Play.
import type { Store } from '../domain/types.js';
import type { Orm } from '../persistence/orm.js';
import { DEFAULT_JOB_TIMING, leaseEnd, nextAttemptAt, type JobTiming } from '../domain/job-timing.js';
import { LONE_SURROGATE, unstorableText } from '../domain/text-rules.js';

type Row = Record<string, unknown>;

/**
 * Attempts (the inline one included) before a notification that keeps failing is parked as FAILED. With the
 * default backoff (1 min doubling, at most 6 h) the 12th attempt comes about 20 h after the first: an outage or
 * a credentials fix within a day still gets through, and the scheduled re-checks cover known subscriptions
 * after that.
 */
export const MAX_NOTIFICATION_ATTEMPTS = 12;

/** Deeper than any store's notification (Google's are 2 levels, Apple's decoded payload 3). */
export const MAX_NOTIFICATION_DEPTH = 16;

/** What a failed attempt led to: another attempt later, or the notification parked as FAILED. */
export type AttemptFailed = 'RETRY_LATER' | 'FAILED';

/**
 * Why PostgreSQL could not store this as text or jsonb, or null when it can: it refuses U+0000 in both, and
 * lone UTF-16 surrogates in jsonb. Such a notification must be refused before it is stored, or the insert
 * fails, the push gets a 5xx and the store delivers it again forever. Keys are checked as well as values.
 */
export function unstorableReason(value: unknown, maxDepth = MAX_NOTIFICATION_DEPTH): string | null {
  // Iterative: a hostile document must not be able to exhaust the stack.
  const stack: { value: unknown; depth: number }[] = [{ value, depth: 0 }];
  while (stack.length > 0) {
    const { value: v, depth } = stack.pop()!;
    if (typeof v === 'string') {
      const problem = unstorableText(v);
      if (problem) return problem;
    } else if (typeof v === 'object' && v !== null) {
      if (depth >= maxDepth) return `nested deeper than ${maxDepth} levels`;
      for (const [key, child] of Object.entries(v)) {
        const problem = unstorableText(key);
        if (problem) return problem;
        stack.push({ value: child, depth: depth + 1 });
      }
    }
  }
  return null;
}

const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'gu');

/** Error texts and outcomes may quote what the store sent: never let them make the update itself fail. */
function storableText(text: string): string {
  // Cut first: cutting afterwards could split a surrogate pair.
  return text.slice(0, 1000).replaceAll('\u0000', '').replace(LONE_SURROGATES, '\uFFFD');
}

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
      storableText(outcome),
      id,
    ]);
  }

  /** Records a failed attempt: another one later with backoff, or, once the attempts are used up, FAILED. */
  async retryLater(id: number, attempts: number, error: string): Promise<AttemptFailed> {
    if (attempts >= MAX_NOTIFICATION_ATTEMPTS) {
      await this.fail(id, attempts, error);
      return 'FAILED';
    }
    await this.orm.em.getConnection().execute('update store_notification set next_attempt_at = ?, last_error = ? where id = ?', [
      nextAttemptAt(this.clock(), attempts, this.timing),
      storableText(error),
      id,
    ]);
    return 'RETRY_LATER';
  }

  /** Parks a notification: kept with its reason for support, never claimed again. */
  private async fail(id: number, attempts: number, error: string): Promise<void> {
    await this.orm.em.getConnection().execute(`update store_notification set status = 'FAILED', processed_at = ?, outcome = ?, last_error = ? where id = ?`, [
      this.clock(),
      `failed: gave up after ${attempts} attempts`,
      storableText(error),
      id,
    ]);
  }
}
