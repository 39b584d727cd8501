// How background work is paced: the backoff between retries of work a store or a receiver could not finish,
// and how long a claimed row stays hidden from other instances (after that, a crashed instance's claim is
// taken over). Defaults suit production; tests and drills shorten them through configuration.

export interface JobTiming {
  /** First retry delay; each further attempt doubles it. */
  retryBaseMs: number;
  /** The longest delay between two attempts. */
  retryMaxMs: number;
  /** How long a claimed row is hidden from other runs (must outlast processing one batch). */
  leaseMs: number;
}

export const DEFAULT_JOB_TIMING: JobTiming = { retryBaseMs: 60_000, retryMaxMs: 6 * 3_600_000, leaseMs: 5 * 60_000 };

/** Exponential backoff with jitter: base, 2×base, 4×base, … capped at the maximum, each ×[0.5, 1.5). */
export function nextAttemptAt(now: Date, attempts: number, timing: JobTiming = DEFAULT_JOB_TIMING, random: () => number = Math.random): Date {
  const base = Math.min(timing.retryBaseMs * 2 ** Math.max(0, attempts - 1), timing.retryMaxMs);
  return new Date(now.getTime() + base * (0.5 + random()));
}

export function leaseEnd(now: Date, timing: JobTiming): Date {
  return new Date(now.getTime() + timing.leaseMs);
}
