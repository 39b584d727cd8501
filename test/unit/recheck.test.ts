import { describe, expect, it } from 'vitest';
import { DEFAULT_RECHECK_POLICY, nextCheckAfterNotification, nextCheckAt, type RecheckSubject } from '../../src/domain/recheck.js';
import type { SubscriptionState } from '../../src/domain/types.js';
import { bucketOf } from '../../src/services/store-budget.js';

const NOW = new Date('2026-11-30T12:00:00Z');
const MIN = 60_000;
const HOUR = 60 * MIN;
const at = (offsetMs: number) => new Date(NOW.getTime() + offsetMs);
const subject = (state: SubscriptionState, o: Partial<RecheckSubject> = {}): RecheckSubject => ({
  state,
  expiresAt: null,
  gracePeriodExpiresAt: null,
  autoResumeAt: null,
  ...o,
});

describe('next re-check of a subscription (default policy: 10 min after expiry, 1 h in billing retry, daily sweep)', () => {
  it.each<[string, RecheckSubject, number | null]>([
    ['active: 10 minutes after the period ends', subject('ACTIVE', { expiresAt: at(3 * HOUR) }), 3 * HOUR + 10 * MIN],
    ['canceled, still in its period: after it ends (it may be renewed again)', subject('CANCELED', { expiresAt: at(2 * HOUR) }), 2 * HOUR + 10 * MIN],
    ['active for a year: the daily sweep comes first (refunds have no due time)', subject('ACTIVE', { expiresAt: at(365 * 24 * HOUR) }), 24 * HOUR],
    ['active with its end already past (store slow to renew): not sooner than 10 minutes', subject('ACTIVE', { expiresAt: at(-HOUR) }), 10 * MIN],
    ['active without an end: the sweep', subject('ACTIVE'), 24 * HOUR],
    ['in grace: every hour', subject('GRACE', { expiresAt: at(-HOUR), gracePeriodExpiresAt: at(5 * 24 * HOUR) }), HOUR],
    ['in grace ending in 20 minutes: 10 minutes after it ends', subject('GRACE', { gracePeriodExpiresAt: at(20 * MIN) }), 30 * MIN],
    ['on hold: every hour', subject('ON_HOLD', { expiresAt: at(-HOUR) }), HOUR],
    ['paused for 3 days: the sweep comes first', subject('PAUSED', { autoResumeAt: at(3 * 24 * HOUR) }), 24 * HOUR],
    ['paused, resuming in 2 hours', subject('PAUSED', { autoResumeAt: at(2 * HOUR) }), 2 * HOUR + 10 * MIN],
    ['expired: never', subject('EXPIRED', { expiresAt: at(-HOUR) }), null],
    ['revoked: never', subject('REVOKED', { expiresAt: at(HOUR) }), null],
  ])('%s', (_name, s, offset) => {
    const next = nextCheckAt(s, NOW, DEFAULT_RECHECK_POLICY);
    expect(next === null ? null : next.getTime() - NOW.getTime()).toBe(offset);
  });

  it.each<[string, RecheckSubject, number | null]>([
    ['active: a minute after the notification', subject('ACTIVE', { expiresAt: at(30 * 24 * HOUR) }), MIN],
    ['expired: never', subject('EXPIRED'), null],
  ])('after a notification, %s', (_name, s, offset) => {
    const next = nextCheckAfterNotification(s, NOW);
    expect(next === null ? null : next.getTime() - NOW.getTime()).toBe(offset);
  });
});

describe('store request budget', () => {
  it.each([
    // per minute, burst, refill per minute: burst + one minute of refill never exceeds the limit
    [600, 60, 540],
    [100, 10, 90],
    [5, 1, 4],
    [1, 1, 0],
  ])('%i per minute: burst %i, refill %i per minute', (perMinute, capacity, refillPerMinute) => {
    const b = bucketOf(perMinute);
    expect(b.capacity).toBe(capacity);
    expect(Math.round(b.perMs * 60_000)).toBe(refillPerMinute);
    expect(b.capacity + b.perMs * 60_000).toBeLessThanOrEqual(perMinute);
  });
});
