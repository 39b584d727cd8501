// Every instance draws its store requests for scheduled work from one budget per store kept in PostgreSQL (a
// token bucket), so a backlog never sends more than the configured requests per minute however many instances
// run. A store that keeps failing is paused for a while instead of being hammered.
import type { Store } from '../domain/types.js';
import type { Orm } from '../persistence/orm.js';
import { toDate } from '../persistence/snapshot-codec.js';

type Row = Record<string, unknown>;

/** Failures in a row before the store is paused, and the pause's first length (doubling, capped). */
const FAILURES_BEFORE_PAUSE = 5;
const FIRST_PAUSE_MS = 30_000;
const LONGEST_PAUSE_MS = 15 * 60_000;

/**
 * A limit of N per minute holds over any 60 seconds: a burst of a tenth of N, refilled at the remaining nine
 * tenths per minute (burst + 60 s of refill = N).
 */
export function bucketOf(perMinute: number): { capacity: number; perMs: number } {
  const capacity = Math.max(1, Math.floor(perMinute / 10));
  return { capacity, perMs: Math.max(0, perMinute - capacity) / 60_000 };
}

export class StoreBudgets {
  constructor(
    private readonly orm: Orm,
    private readonly perMinute: Partial<Record<Store, number>>,
  ) {}

  private conn() {
    return this.orm.em.getConnection();
  }

  /** Takes up to `wanted` requests from the store's budget at `now`; returns how many were granted. */
  async take(store: Store, wanted: number, now: Date): Promise<number> {
    const limit = this.perMinute[store];
    if (limit === undefined) return wanted;
    const { capacity, perMs } = bucketOf(limit);
    await this.conn().execute(`insert into store_budget (store, tokens, refilled_at, consecutive_failures) values (?, ?, ?, 0) on conflict (store) do nothing`, [
      store,
      capacity,
      now,
    ]);
    const rows = (await this.conn().execute(
      `with cur as (
         select store, least(?::float8, tokens + greatest(0, extract(epoch from (?::timestamptz - refilled_at)) * 1000) * ?::float8) as available
         from store_budget where store = ? for update)
       update store_budget b set tokens = cur.available - least(?::int, floor(cur.available)), refilled_at = greatest(b.refilled_at, ?::timestamptz)
       from cur where b.store = cur.store
       returning least(?::int, floor(cur.available))::int as taken`,
      [capacity, now, perMs, store, wanted, now, wanted],
    )) as Row[];
    return Number(rows[0]?.taken ?? 0);
  }

  /** How long until `count` requests have refilled (after the budget ran out). */
  refillWaitMs(store: Store, count: number): number {
    const limit = this.perMinute[store];
    if (limit === undefined) return 0;
    const { perMs } = bucketOf(limit);
    return perMs > 0 ? Math.ceil(count / perMs) : Infinity;
  }

  /** Returns requests taken but not sent (less due work than budgeted). */
  async giveBack(store: Store, count: number): Promise<void> {
    const limit = this.perMinute[store];
    if (limit === undefined || count <= 0) return;
    await this.conn().execute(`update store_budget set tokens = least(?::float8, tokens + ?) where store = ?`, [bucketOf(limit).capacity, count, store]);
  }

  /** Until when the store is paused after repeated failures (null: not paused). */
  async pausedUntil(store: Store, now: Date): Promise<Date | null> {
    const rows = (await this.conn().execute(`select paused_until from store_budget where store = ? and paused_until > ?`, [store, now])) as Row[];
    return rows.length > 0 ? toDate(rows[0]!.paused_until) : null;
  }

  /** Counts an answer (any definitive one) or a failure (store down); pauses the store after repeated failures. */
  async recordOutcome(store: Store, answered: boolean, now: Date): Promise<void> {
    if (answered) {
      await this.conn().execute(`update store_budget set consecutive_failures = 0, paused_until = null where store = ? and consecutive_failures > 0`, [store]);
      return;
    }
    await this.conn().execute(
      `insert into store_budget (store, tokens, refilled_at, consecutive_failures) values (?, 0, ?, 0) on conflict (store) do nothing`,
      [store, now],
    );
    // A pause starts once failures reach the threshold and is not extended while it lasts (calls already in
    // flight fail too); each further pause after more failures is twice as long, up to the cap.
    await this.conn().execute(
      `update store_budget set consecutive_failures = consecutive_failures + 1,
         paused_until = case when consecutive_failures + 1 >= ? and (paused_until is null or paused_until <= ?::timestamptz)
           then ?::timestamptz + least(?::float8, ?::float8 * power(2, least(10, (consecutive_failures + 1) / ? - 1))) * interval '1 millisecond'
           else paused_until end
       where store = ?`,
      [FAILURES_BEFORE_PAUSE, now, now, LONGEST_PAUSE_MS, FIRST_PAUSE_MS, FAILURES_BEFORE_PAUSE, store],
    );
  }

  /** For the admin view: the store's state. */
  async state(store: Store): Promise<{ consecutiveFailures: number; pausedUntil: Date | null }> {
    const rows = (await this.conn().execute(`select consecutive_failures, paused_until from store_budget where store = ?`, [store])) as Row[];
    return { consecutiveFailures: Number(rows[0]?.consecutive_failures ?? 0), pausedUntil: toDate(rows[0]?.paused_until ?? null) };
  }
}
