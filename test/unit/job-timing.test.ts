import { describe, expect, it } from 'vitest';
import { DEFAULT_JOB_TIMING, nextAttemptAt } from '../../src/domain/job-timing.js';
import { everySeconds } from '../../src/scheduler/scheduler.js';

const NOW = new Date('2026-11-30T12:00:00Z');
const FAST = { retryBaseMs: 200, retryMaxMs: 1_000, leaseMs: 3_000 };

describe('retry backoff', () => {
  it.each([
    // attempts, timing, jitter draw, expected delay in ms
    [1, DEFAULT_JOB_TIMING, 0.5, 60_000],
    [2, DEFAULT_JOB_TIMING, 0.5, 120_000],
    [5, DEFAULT_JOB_TIMING, 0.5, 960_000],
    [30, DEFAULT_JOB_TIMING, 0.5, 6 * 3_600_000],
    [1, DEFAULT_JOB_TIMING, 0, 30_000],
    [1, DEFAULT_JOB_TIMING, 0.999, 89_940],
    [0, FAST, 0.5, 200],
    [3, FAST, 0.5, 800],
    [4, FAST, 0.5, 1_000],
    [4, FAST, 0, 500],
  ])('attempt %i with %j and jitter %f waits %i ms', (attempts, timing, draw, delay) => {
    expect(nextAttemptAt(NOW, attempts, timing, () => draw).getTime() - NOW.getTime()).toBe(delay);
  });
});

describe('scheduler interval', () => {
  it.each([
    [60, '* * * * *'],
    [30, '*/30 * * * * *'],
    [1, '*/1 * * * * *'],
  ])('%i s runs as %s', (seconds, cron) => {
    expect(everySeconds(seconds)).toBe(cron);
  });
});
