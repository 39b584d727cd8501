// When a stored subscription is next re-checked with its store. Renewals, lapses and refunds happen while the
// app is closed and store notifications can be late, lost or not configured: every subscription whose state
// can still change has a next check, soon after the moment it would change.
import type { SubscriptionState } from './types.js';

export interface RecheckPolicy {
  /** How long after a period's end to ask whether it renewed (stores take a moment to charge). */
  afterExpiryMs: number;
  /** Interval while in grace or on hold (billing retry): the customer may fix payment any time. */
  billingRetryIntervalMs: number;
  /** The slowest re-check of anything still active (refunds have no due time). */
  sweepMs: number;
  /** After a store notification: soon, to confirm it (notifications can arrive out of order). */
  afterNotificationMs: number;
}

export const DEFAULT_RECHECK_POLICY: RecheckPolicy = {
  afterExpiryMs: 10 * 60_000,
  billingRetryIntervalMs: 60 * 60_000,
  sweepMs: 24 * 3_600_000,
  afterNotificationMs: 60_000,
};

export interface RecheckSubject {
  state: SubscriptionState;
  expiresAt: Date | null;
  gracePeriodExpiresAt: Date | null;
  autoResumeAt: Date | null;
}

/**
 * The next re-check of a subscription as of `now`, or null when nothing can change it any more (expired or
 * revoked: a resubscription arrives as a new purchase). Never sooner than `afterExpiryMs` from now, so a store
 * that keeps answering with a past expiry is not asked in a loop; never later than the sweep.
 */
export function nextCheckAt(s: RecheckSubject, now: Date, policy: RecheckPolicy = DEFAULT_RECHECK_POLICY): Date | null {
  const t = now.getTime();
  const after = (d: Date | null) => (d === null ? null : d.getTime() + policy.afterExpiryMs);
  let due: number | null;
  switch (s.state) {
    case 'EXPIRED':
    case 'REVOKED':
      return null;
    case 'ACTIVE':
    case 'CANCELED':
      due = after(s.expiresAt);
      break;
    case 'GRACE':
      due = Math.min(t + policy.billingRetryIntervalMs, after(s.gracePeriodExpiresAt) ?? Infinity);
      break;
    case 'ON_HOLD':
      due = t + policy.billingRetryIntervalMs;
      break;
    case 'PAUSED':
      due = after(s.autoResumeAt);
      break;
  }
  const earliest = t + policy.afterExpiryMs;
  const latest = t + policy.sweepMs;
  return new Date(Math.min(Math.max(due ?? latest, earliest), latest));
}

/** After a store notification the subscription is re-checked soon, or at its own time if that is sooner. */
export function nextCheckAfterNotification(s: RecheckSubject, now: Date, policy: RecheckPolicy = DEFAULT_RECHECK_POLICY): Date | null {
  const due = nextCheckAt(s, now, policy);
  if (due === null) return null;
  return new Date(Math.min(due.getTime(), now.getTime() + policy.afterNotificationMs));
}
