import { describe, expect, it } from 'vitest';
import {
  addIntervals,
  billingPeriodOf,
  bucketStart,
  deriveStateSpans,
  monthlyRecurringMicros,
  periodsOf,
  stateAt,
  type AnalyticsInterval,
  type SubscriptionEventFacts,
} from '../../src/domain/analytics.js';
import { AppError } from '../../src/domain/errors.js';
import type { EventType } from '../../src/domain/types.js';

const d = (s: string) => new Date(s);
const DAY = 86_400_000;
const T0 = Date.parse('2026-01-01T00:00:00Z');
const at = (days: number) => new Date(T0 + days * DAY);

describe('period bucketing (UTC)', () => {
  it.each<[string, AnalyticsInterval, string]>([
    ['2026-03-15T13:45:00Z', 'DAY', '2026-03-15T00:00:00.000Z'],
    ['2026-03-15T13:45:00Z', 'WEEK', '2026-03-09T00:00:00.000Z'], // a Sunday belongs to the week from Monday
    ['2026-03-16T00:00:00Z', 'WEEK', '2026-03-16T00:00:00.000Z'],
    ['2026-03-15T13:45:00Z', 'MONTH', '2026-03-01T00:00:00.000Z'],
    ['2026-12-31T23:59:59.999Z', 'MONTH', '2026-12-01T00:00:00.000Z'],
  ])('%s in %s buckets starts at %s', (t, interval, start) => {
    expect(bucketStart(d(t), interval).toISOString()).toBe(start);
  });

  it.each<[string, AnalyticsInterval, number, string]>([
    ['2026-01-31T10:00:00Z', 'MONTH', 1, '2026-02-28T10:00:00.000Z'],
    ['2026-01-31T10:00:00Z', 'MONTH', 2, '2026-03-31T10:00:00.000Z'],
    ['2024-01-31T00:00:00Z', 'MONTH', 1, '2024-02-29T00:00:00.000Z'],
    ['2026-11-15T00:00:00Z', 'MONTH', 3, '2027-02-15T00:00:00.000Z'],
    ['2026-01-01T00:00:00Z', 'WEEK', 2, '2026-01-15T00:00:00.000Z'],
    ['2026-01-01T00:00:00Z', 'DAY', 45, '2026-02-15T00:00:00.000Z'],
  ])('%s + %s x %i = %s', (t, interval, n, expected) => {
    expect(addIntervals(d(t), interval, n).toISOString()).toBe(expected);
  });

  it('cuts the first and last period to the range', () => {
    const periods = periodsOf(d('2026-01-15T00:00:00Z'), d('2026-03-10T00:00:00Z'), 'MONTH');
    expect(periods.map((p) => [p.bucket.toISOString(), p.startsAt.toISOString(), p.endsAt.toISOString()])).toEqual([
      ['2026-01-01T00:00:00.000Z', '2026-01-15T00:00:00.000Z', '2026-02-01T00:00:00.000Z'],
      ['2026-02-01T00:00:00.000Z', '2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z'],
      ['2026-03-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z', '2026-03-10T00:00:00.000Z'],
    ]);
  });

  it.each<[string, string, AnalyticsInterval, string]>([
    ['2026-02-01T00:00:00Z', '2026-01-01T00:00:00Z', 'DAY', 'before to'],
    ['2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'MONTH', 'before to'],
    ['2020-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'DAY', 'more than 400'],
  ])('refuses %s..%s by %s (%s)', (from, to, interval, message) => {
    let error: unknown;
    try {
      periodsOf(d(from), d(to), interval);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe('BAD_USER_INPUT');
    expect((error as AppError).message).toContain(message);
  });
});

describe('monthly recurring revenue of a price', () => {
  it.each<[string, number, number | null, string | null, string, number | null]>([
    ['weekly: x 52 / 12', 7, 2_990_000, null, 'WEEK', Math.round((2_990_000 * 52) / 12)],
    ['monthly (28 days)', 28, 9_990_000, null, 'MONTH', 9_990_000],
    ['monthly (31 days)', 31, 9_990_000, null, 'MONTH', 9_990_000],
    ['quarterly: / 3', 92, 24_990_000, null, 'QUARTER', 8_330_000],
    ['half-yearly: / 6', 181, 47_990_000, null, 'HALF_YEAR', 7_998_333],
    ['yearly: / 12', 365, 59_990_000, null, 'YEAR', 4_999_167],
    ['leap year', 366, 59_990_000, null, 'YEAR', 4_999_167],
    ['odd length: pro rata', 10, 1_000_000, null, 'OTHER', 3_043_688],
    ['free trial counts 0', 7, null, 'FREE_TRIAL', 'WEEK', 0],
    ['unknown price: unpriced', 30, null, null, 'MONTH', null],
  ])('%s', (_name, days, price, offer, period, monthly) => {
    expect(billingPeriodOf(at(0), at(days)).period).toBe(period);
    expect(monthlyRecurringMicros(price, at(0), at(days), offer)).toBe(monthly);
  });

  it('a period without an end is unpriced', () => {
    expect(monthlyRecurringMicros(9_990_000, at(0), null, null)).toBeNull();
  });
});

function ev(type: EventType, day: number, over: Partial<SubscriptionEventFacts> = {}): SubscriptionEventFacts {
  return {
    type,
    occurredAt: at(day),
    productId: 'pro_monthly',
    transactionId: 't1',
    expiresAt: null,
    gracePeriodExpiresAt: null,
    priceMicros: null,
    currency: null,
    offerType: null,
    churn: null,
    ...over,
  };
}
const start = (type: 'INITIAL_PURCHASE' | 'RENEWAL' | 'REACTIVATION', day: number, txn: string, over: Partial<SubscriptionEventFacts> = {}) =>
  ev(type, day, { transactionId: txn, expiresAt: at(day + 30), priceMicros: 9_990_000, currency: 'USD', ...over });

type Expected = [state: string, from: number, to: number | null, cause: string, churn: string | null];

describe('state spans from events', () => {
  it.each<[string, SubscriptionEventFacts[], Expected[]]>([
    ['a period that ends without renewal lapses at its end', [start('INITIAL_PURCHASE', 0, 't1')], [
      ['ACTIVE', 0, 30, 'INITIAL_PURCHASE', null],
      ['EXPIRED', 30, null, 'TIME', 'OTHER'],
    ]],
    ['canceled, then expired: voluntary', [start('INITIAL_PURCHASE', 0, 't1'), ev('CANCELLATION', 10), ev('EXPIRATION', 30, { churn: 'VOLUNTARY' })], [
      ['ACTIVE', 0, 10, 'INITIAL_PURCHASE', null],
      ['CANCELED', 10, 30, 'CANCELLATION', null],
      ['EXPIRED', 30, null, 'EXPIRATION', 'VOLUNTARY'],
    ]],
    ['canceled and lapsed with no word from the store: voluntary by its state', [start('INITIAL_PURCHASE', 0, 't1'), ev('CANCELLATION', 10)], [
      ['ACTIVE', 0, 10, 'INITIAL_PURCHASE', null],
      ['CANCELED', 10, 30, 'CANCELLATION', null],
      ['EXPIRED', 30, null, 'TIME', 'VOLUNTARY'],
    ]],
    ['renewals cut spans per period', [start('INITIAL_PURCHASE', 0, 't1'), start('RENEWAL', 30, 't2', { priceMicros: 4_990_000 })], [
      ['ACTIVE', 0, 30, 'INITIAL_PURCHASE', null],
      ['ACTIVE', 30, 60, 'RENEWAL', null],
      ['EXPIRED', 60, null, 'TIME', 'OTHER'],
    ]],
    ['billing failure with grace, then expired: involuntary', [
      start('INITIAL_PURCHASE', 0, 't1'),
      ev('BILLING_ISSUE', 30, { gracePeriodExpiresAt: at(36) }),
      ev('GRACE_PERIOD', 30, { gracePeriodExpiresAt: at(36) }),
      ev('EXPIRATION', 36, { churn: 'INVOLUNTARY' }),
    ], [
      ['ACTIVE', 0, 30, 'INITIAL_PURCHASE', null],
      ['GRACE', 30, 36, 'BILLING_ISSUE', null],
      ['EXPIRED', 36, null, 'EXPIRATION', 'INVOLUNTARY'],
    ]],
    ['a grace period that runs out is a hold; recovery renews', [
      start('INITIAL_PURCHASE', 0, 't1'),
      ev('BILLING_ISSUE', 30, { gracePeriodExpiresAt: at(33) }),
      start('RENEWAL', 40, 't2'),
      ev('BILLING_RECOVERY', 40, { transactionId: 't2', expiresAt: at(70) }),
    ], [
      ['ACTIVE', 0, 30, 'INITIAL_PURCHASE', null],
      ['GRACE', 30, 33, 'BILLING_ISSUE', null],
      ['ON_HOLD', 33, 40, 'TIME', null],
      ['ACTIVE', 40, 70, 'RENEWAL', null],
      ['EXPIRED', 70, null, 'TIME', 'OTHER'],
    ]],
    ['a hold the store dates at the period end, while grace still runs, begins when the grace ends', [
      start('INITIAL_PURCHASE', 0, 't1'),
      ev('GRACE_PERIOD', 30, { gracePeriodExpiresAt: at(36) }),
      ev('ON_HOLD', 30),
    ], [
      ['ACTIVE', 0, 30, 'INITIAL_PURCHASE', null],
      ['GRACE', 30, 36, 'GRACE_PERIOD', null],
      ['ON_HOLD', 36, null, 'TIME', null],
    ]],
    ['a refund of the current period ends it', [start('INITIAL_PURCHASE', 0, 't1'), ev('REFUND', 5)], [
      ['ACTIVE', 0, 5, 'INITIAL_PURCHASE', null],
      ['REVOKED', 5, null, 'REFUND', 'REVOKED'],
    ]],
    ['a refund of an earlier period does not', [start('INITIAL_PURCHASE', 0, 't1'), start('RENEWAL', 30, 't2'), ev('REFUND', 40, { transactionId: 't1' })], [
      ['ACTIVE', 0, 30, 'INITIAL_PURCHASE', null],
      ['ACTIVE', 30, 60, 'RENEWAL', null],
      ['EXPIRED', 60, null, 'TIME', 'OTHER'],
    ]],
    ['a return after a lapse', [start('INITIAL_PURCHASE', 0, 't1'), ev('EXPIRATION', 30, { churn: 'OTHER' }), start('REACTIVATION', 50, 't2')], [
      ['ACTIVE', 0, 30, 'INITIAL_PURCHASE', null],
      ['EXPIRED', 30, 50, 'EXPIRATION', 'OTHER'],
      ['ACTIVE', 50, 80, 'REACTIVATION', null],
      ['EXPIRED', 80, null, 'TIME', 'OTHER'],
    ]],
    ['paused, then resumed', [start('INITIAL_PURCHASE', 0, 't1'), ev('PAUSE', 30), ev('RESUME', 60, { expiresAt: at(90) })], [
      ['ACTIVE', 0, 30, 'INITIAL_PURCHASE', null],
      ['PAUSED', 30, 60, 'PAUSE', null],
      ['ACTIVE', 60, 90, 'RESUME', null],
      ['EXPIRED', 90, null, 'TIME', 'OTHER'],
    ]],
    ['canceled at the instant of purchase: one span', [start('INITIAL_PURCHASE', 0, 't1'), ev('CANCELLATION', 0)], [
      ['CANCELED', 0, 30, 'INITIAL_PURCHASE', null],
      ['EXPIRED', 30, null, 'TIME', 'VOLUNTARY'],
    ]],
  ])('%s', (_name, events, expected) => {
    const spans = deriveStateSpans(events);
    expect(spans.map((s) => [s.state, (s.startsAt.getTime() - T0) / DAY, s.endsAt && (s.endsAt.getTime() - T0) / DAY, s.cause, s.churn])).toEqual(expected);
  });

  it('carries the period price, its monthly amount and the trial before a paid renewal', () => {
    const spans = deriveStateSpans([
      start('INITIAL_PURCHASE', 0, 't1', { expiresAt: at(7), priceMicros: 0, offerType: 'FREE_TRIAL' }),
      start('RENEWAL', 7, 't2', { expiresAt: at(372), priceMicros: 59_990_000 }),
    ]);
    expect(spans[0]).toMatchObject({ offerType: 'FREE_TRIAL', monthlyMicros: 0, previousOfferType: null });
    expect(spans[1]).toMatchObject({ offerType: null, previousOfferType: 'FREE_TRIAL', priceMicros: 59_990_000, monthlyMicros: 4_999_167 });
    expect(spans.every((s) => s.firstPurchasedAt.getTime() === T0)).toBe(true);
    expect(stateAt(spans, at(-1))).toBeNull();
    expect(stateAt(spans, at(7))).toBe('ACTIVE');
    expect(stateAt(spans, at(400))).toBe('EXPIRED');
  });
});
