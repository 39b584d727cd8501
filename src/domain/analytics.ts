// Subscription analytics, the pure part: period bucketing, the state of a subscription over time derived from its
// recorded events, and the normalisation of a period's price to a monthly amount. No I/O and no clock.
//
// The events of a subscription say what the store said and when it applies (`occurredAt`). Time alone also moves
// a subscription (a period that ends without a renewal lapses; a grace period that runs out becomes a hold), as it
// does for the entitlement engine, so the state at an instant is: the state the last event before it set, then
// moved on by the deadlines that passed since. `deriveStateSpans` turns one subscription's events into the spans
// of time it spent in each state; the analytics queries count those spans.

import { churnOf } from './engine.js';
import { AppError } from './errors.js';
import { ENTITLING_STATES, SUBSCRIPTION_STATES, type EventType, type ExpirationReason, type SubscriptionState } from './types.js';

export const ANALYTICS_INTERVALS = ['DAY', 'WEEK', 'MONTH'] as const;
export type AnalyticsInterval = (typeof ANALYTICS_INTERVALS)[number];

/** Most periods one query may ask for (e.g. a little over a year of days, 33 years of months). */
export const MAX_ANALYTICS_PERIODS = 400;

/** How a subscription stopped: the store's word where it gave one, else the state it lapsed from. */
export const CHURN_KINDS = ['VOLUNTARY', 'INVOLUNTARY', 'REVOKED', 'OTHER'] as const;
export type ChurnKind = (typeof CHURN_KINDS)[number];

/** Every state, in the order answers list them. */
export const SUBSCRIPTION_STATES_ORDER: readonly SubscriptionState[] = SUBSCRIPTION_STATES;

const DAY_MS = 86_400_000;
const ms = (d: Date): number => d.getTime();

// ---------------------------------------------------------------------------------------------------------
// Period bucketing (UTC; weeks start on Monday, as ISO 8601 weeks do)
// ---------------------------------------------------------------------------------------------------------

/** Start of the UTC day, ISO week (Monday) or calendar month containing `t`. */
export function bucketStart(t: Date, interval: AnalyticsInterval): Date {
  const day = Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate());
  if (interval === 'DAY') return new Date(day);
  if (interval === 'WEEK') return new Date(day - ((t.getUTCDay() + 6) % 7) * DAY_MS);
  return new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), 1));
}

/**
 * `t` moved by `n` intervals. Months keep the day of month where it exists and otherwise take the month's last
 * day (Jan 31 + 1 month = Feb 28/29), as PostgreSQL's `+ interval '1 month'` does.
 */
export function addIntervals(t: Date, interval: AnalyticsInterval, n: number): Date {
  if (interval === 'DAY') return new Date(ms(t) + n * DAY_MS);
  if (interval === 'WEEK') return new Date(ms(t) + n * 7 * DAY_MS);
  const y = t.getUTCFullYear();
  const m = t.getUTCMonth() + n;
  const targetYear = y + Math.floor(m / 12);
  const targetMonth = ((m % 12) + 12) % 12;
  const lastDay = new Date(Date.UTC(targetYear, targetMonth + 1, 0)).getUTCDate();
  const day = Math.min(t.getUTCDate(), lastDay);
  return new Date(Date.UTC(targetYear, targetMonth, day, t.getUTCHours(), t.getUTCMinutes(), t.getUTCSeconds(), t.getUTCMilliseconds()));
}

export interface Period {
  /** The calendar bucket (start of day, Monday, first of month) the period belongs to. */
  bucket: Date;
  /** The part of the bucket inside the asked range: [startsAt, endsAt). */
  startsAt: Date;
  endsAt: Date;
}

/** Checks an analytics range; bad input is a BAD_USER_INPUT error naming the problem. */
export function assertRange(from: Date, to: Date): void {
  if (Number.isNaN(ms(from)) || Number.isNaN(ms(to))) throw new AppError('BAD_USER_INPUT', 'from and to must be valid instants');
  if (ms(from) >= ms(to)) {
    throw new AppError('BAD_USER_INPUT', `from (${from.toISOString()}) must be before to (${to.toISOString()})`, {
      problems: ['from: must be before to'],
    });
  }
}

/**
 * The periods of [from, to): calendar buckets of `interval`, the first and last cut to the range.
 * More than `max` periods is a BAD_USER_INPUT error (ask for a coarser interval or a shorter range).
 */
export function periodsOf(from: Date, to: Date, interval: AnalyticsInterval, max = MAX_ANALYTICS_PERIODS): Period[] {
  assertRange(from, to);
  const periods: Period[] = [];
  let bucket = bucketStart(from, interval);
  while (ms(bucket) < ms(to)) {
    if (periods.length >= max) {
      throw new AppError('BAD_USER_INPUT', `from..to spans more than ${max} ${interval} periods; use a longer interval or a shorter range`, {
        problems: [`interval: more than ${max} periods from..to`],
        maxPeriods: max,
      });
    }
    const next = addIntervals(bucket, interval, 1);
    periods.push({ bucket, startsAt: ms(bucket) < ms(from) ? from : bucket, endsAt: ms(next) > ms(to) ? to : next });
    bucket = next;
  }
  return periods;
}

// ---------------------------------------------------------------------------------------------------------
// Monthly recurring revenue of one period's price
// ---------------------------------------------------------------------------------------------------------

export const BILLING_PERIODS = ['WEEK', 'TWO_WEEKS', 'MONTH', 'TWO_MONTHS', 'QUARTER', 'HALF_YEAR', 'YEAR', 'OTHER'] as const;
export type BillingPeriod = (typeof BILLING_PERIODS)[number];

/** Standard store billing periods by length in days, and how many of them make a month. */
const STANDARD_PERIODS: readonly { period: BillingPeriod; minDays: number; maxDays: number; perMonth: number }[] = [
  { period: 'WEEK', minDays: 6, maxDays: 8, perMonth: 52 / 12 },
  { period: 'TWO_WEEKS', minDays: 13, maxDays: 15, perMonth: 26 / 12 },
  { period: 'MONTH', minDays: 27, maxDays: 32, perMonth: 1 },
  { period: 'TWO_MONTHS', minDays: 58, maxDays: 63, perMonth: 1 / 2 },
  { period: 'QUARTER', minDays: 88, maxDays: 93, perMonth: 1 / 3 },
  { period: 'HALF_YEAR', minDays: 180, maxDays: 185, perMonth: 1 / 6 },
  { period: 'YEAR', minDays: 364, maxDays: 367, perMonth: 1 / 12 },
];

/** Average days in a month (365.2425 / 12), for periods of no standard length. */
const DAYS_PER_MONTH = 30.436875;

/**
 * The billing period a paid period's length corresponds to. Stores bill in calendar units, so a month is 28 to 31
 * days and a year 365 or 366; a length that matches none (e.g. a prorated upgrade period) is OTHER.
 */
export function billingPeriodOf(startsAt: Date, endsAt: Date): { period: BillingPeriod; perMonth: number } {
  const days = (ms(endsAt) - ms(startsAt)) / DAY_MS;
  const standard = STANDARD_PERIODS.find((p) => days >= p.minDays && days <= p.maxDays);
  if (standard) return { period: standard.period, perMonth: standard.perMonth };
  return { period: 'OTHER', perMonth: days > 0 ? DAYS_PER_MONTH / days : 0 };
}

/**
 * A period's price as a monthly amount, in micro-units of its currency: weekly x 52/12, monthly as is, yearly / 12,
 * other lengths pro rata. A free trial counts 0. Null when the price or the period's end is not known: the
 * subscription is then reported as unpriced, never guessed.
 */
export function monthlyRecurringMicros(
  priceMicros: number | null,
  periodStartsAt: Date,
  periodEndsAt: Date | null,
  offerType: string | null,
): number | null {
  if (offerType === 'FREE_TRIAL') return 0;
  if (priceMicros === null || periodEndsAt === null || ms(periodEndsAt) <= ms(periodStartsAt)) return null;
  return Math.round(priceMicros * billingPeriodOf(periodStartsAt, periodEndsAt).perMonth);
}

// ---------------------------------------------------------------------------------------------------------
// State spans of one subscription, from its events
// ---------------------------------------------------------------------------------------------------------

/** One recorded event of a subscription, with the facts of its `data` the analytics need. */
export interface SubscriptionEventFacts {
  type: EventType;
  occurredAt: Date;
  productId: string | null;
  transactionId: string | null;
  /** Period starts, billing events: the end of the period. */
  expiresAt: Date | null;
  gracePeriodExpiresAt: Date | null;
  priceMicros: number | null;
  currency: string | null;
  offerType: string | null;
  /** EXPIRATION: VOLUNTARY, INVOLUNTARY or OTHER, as the engine classified it. */
  churn: string | null;
}

/** What started a span: the event that moved the subscription, or TIME (a period or grace period ran out). */
export type SpanCause = EventType | 'TIME';

/** A stretch of time [startsAt, endsAt) a subscription spent in one state within one paid period. */
export interface StateSpan {
  state: SubscriptionState;
  startsAt: Date;
  /** Null: still so, as far as the events say. */
  endsAt: Date | null;
  productId: string;
  /** The state (and product) of the span before; null for the first. */
  previousState: SubscriptionState | null;
  previousProductId: string | null;
  cause: SpanCause;
  /** Set on the span that ended the subscription (EXPIRED or REVOKED after a live state). */
  churn: ChurnKind | null;
  /** The period the span belongs to: its transaction, start, end, price and offer. */
  transactionId: string;
  periodStartsAt: Date;
  periodEndsAt: Date | null;
  priceMicros: number | null;
  currency: string | null;
  offerType: string | null;
  /** The previous period's offer (FREE_TRIAL then a paid RENEWAL is a trial conversion). */
  previousOfferType: string | null;
  /** The price as a monthly amount (see monthlyRecurringMicros); null when unpriced. */
  monthlyMicros: number | null;
  /** The subscription's first purchase: its cohort. */
  firstPurchasedAt: Date;
}

const PERIOD_STARTS: ReadonlySet<EventType> = new Set(['INITIAL_PURCHASE', 'RENEWAL', 'REACTIVATION']);
const TERMINAL: ReadonlySet<SubscriptionState> = new Set(['EXPIRED', 'REVOKED']);

export const isEntitlingState = (s: SubscriptionState | null): boolean => s !== null && ENTITLING_STATES.has(s);

interface CurrentPeriod {
  transactionId: string;
  productId: string;
  startsAt: Date;
  expiresAt: Date | null;
  priceMicros: number | null;
  currency: string | null;
  offerType: string | null;
  previousOfferType: string | null;
}

const ENGINE_CHURN: Record<string, ChurnKind> = { VOLUNTARY: 'VOLUNTARY', INVOLUNTARY: 'INVOLUNTARY', OTHER: 'OTHER' };

/** The churn kind of a lapse the store did not describe: from the state it lapsed from, as the engine does. */
function churnFromState(previous: SubscriptionState, reason: ExpirationReason | null = null): ChurnKind {
  return churnOf(previous, reason);
}

/**
 * The spans of one subscription from its events (in recorded order: by occurredAt, then as appended).
 * Spans are cut at every state change and at every period start, so each carries its period's price.
 * Deadlines that pass between events move the state as the engine's rule does: ACTIVE or CANCELED past the
 * period's end is EXPIRED (churn from that state), GRACE past the grace end is ON_HOLD.
 */
export function deriveStateSpans(events: readonly SubscriptionEventFacts[]): StateSpan[] {
  const spans: StateSpan[] = [];
  let period: CurrentPeriod | null = null;
  let firstPurchasedAt: Date | null = null;
  let state: SubscriptionState | null = null;
  let willRenew = true;
  let graceEnd: Date | null = null;
  let beforeRevocation: SubscriptionState | null = null;

  const open = (): StateSpan | undefined => spans.at(-1);

  const moveTo = (next: SubscriptionState, at: Date, cause: SpanCause, churn: ChurnKind | null = null, newPeriod = false): void => {
    const current = open();
    const p = period!;
    if (current && !newPeriod && current.state === next && current.transactionId === p.transactionId) {
      if (churn && TERMINAL.has(next) && current.churn !== null) current.churn = churn;
      return;
    }
    const base = {
      state: next,
      endsAt: null,
      productId: p.productId,
      cause,
      churn: TERMINAL.has(next) ? churn : null,
      transactionId: p.transactionId,
      periodStartsAt: p.startsAt,
      periodEndsAt: p.expiresAt,
      priceMicros: p.priceMicros,
      currency: p.currency,
      offerType: p.offerType,
      previousOfferType: p.previousOfferType,
      monthlyMicros: monthlyRecurringMicros(p.priceMicros, p.startsAt, p.expiresAt, p.offerType),
      firstPurchasedAt: firstPurchasedAt!,
    };
    if (current && ms(current.startsAt) === ms(at)) {
      // Two moves at one instant: the later one stands; the span keeps what came before it.
      const churnNow = TERMINAL.has(next) && current.previousState !== null && !TERMINAL.has(current.previousState) ? (churn ?? churnFromState(current.previousState)) : null;
      Object.assign(current, base, { churn: churnNow, cause: newPeriod || !PERIOD_STARTS.has(current.cause as EventType) ? cause : current.cause });
      return;
    }
    if (current) current.endsAt = at;
    const churnNow = TERMINAL.has(next) && current !== undefined && !TERMINAL.has(current.state) ? (churn ?? churnFromState(current.state)) : null;
    spans.push({ ...base, startsAt: at, previousState: current?.state ?? null, previousProductId: current?.productId ?? null, churn: churnNow });
  };

  /** Moves on by the deadlines that passed before `t` (strictly before: an event at the deadline decides). */
  const passTime = (t: Date | null): void => {
    if (state === 'GRACE' && graceEnd !== null && (t === null || ms(graceEnd) < ms(t))) {
      state = 'ON_HOLD';
      moveTo('ON_HOLD', graceEnd, 'TIME');
    }
    const end = period?.expiresAt ?? null;
    if ((state === 'ACTIVE' || state === 'CANCELED') && end !== null && (t === null || ms(end) < ms(t))) {
      const from: SubscriptionState = state;
      state = 'EXPIRED';
      moveTo('EXPIRED', end, 'TIME', churnFromState(from));
    }
  };

  const live = (at: Date): SubscriptionState => {
    const end = period?.expiresAt ?? null;
    if (end !== null && ms(end) <= ms(at)) return 'EXPIRED';
    return willRenew ? 'ACTIVE' : 'CANCELED';
  };

  for (const e of events) {
    if (period === null && !PERIOD_STARTS.has(e.type)) continue;
    passTime(e.occurredAt);
    const at = e.occurredAt;
    switch (e.type) {
      case 'INITIAL_PURCHASE':
      case 'RENEWAL':
      case 'REACTIVATION': {
        firstPurchasedAt ??= at;
        const previous = period as CurrentPeriod | null;
        period = {
          transactionId: e.transactionId ?? '',
          productId: e.productId ?? previous?.productId ?? '',
          startsAt: at,
          expiresAt: e.expiresAt,
          priceMicros: e.priceMicros,
          currency: e.currency,
          offerType: e.offerType,
          previousOfferType: previous?.offerType ?? null,
        };
        willRenew = true;
        graceEnd = null;
        beforeRevocation = null;
        state = live(at);
        moveTo(state, at, e.type, null, true);
        break;
      }
      case 'CANCELLATION':
        willRenew = false;
        if (state === 'ACTIVE') moveTo((state = 'CANCELED'), at, e.type);
        break;
      case 'UNCANCELLATION':
        willRenew = true;
        if (state === 'CANCELED') moveTo((state = 'ACTIVE'), at, e.type);
        break;
      case 'BILLING_ISSUE':
      case 'GRACE_PERIOD':
      case 'ON_HOLD': {
        // A hold recorded while the grace period still runs (the engine dates it at the period's end) begins when
        // the grace ends: passing time moves GRACE to ON_HOLD there.
        if (e.type === 'ON_HOLD' && state === 'GRACE' && graceEnd !== null && ms(graceEnd) > ms(at)) break;
        const grace = e.type === 'ON_HOLD' ? null : e.gracePeriodExpiresAt;
        if (grace !== null && ms(grace) > ms(at)) {
          graceEnd = grace;
          state = 'GRACE';
        } else {
          state = 'ON_HOLD';
        }
        moveTo(state, at, e.type);
        break;
      }
      case 'BILLING_RECOVERY':
      case 'RESUME':
        if (e.expiresAt !== null) period = { ...(period as CurrentPeriod), expiresAt: e.expiresAt };
        graceEnd = null;
        if (state !== 'REVOKED') moveTo((state = live(at)), at, e.type);
        break;
      case 'PAUSE':
        if (state !== 'REVOKED') moveTo((state = 'PAUSED'), at, e.type);
        break;
      case 'EXPIRATION': {
        if (state === 'REVOKED') break;
        const churn = ENGINE_CHURN[e.churn ?? ''] ?? (state ? churnFromState(state) : 'OTHER');
        state = 'EXPIRED';
        moveTo('EXPIRED', at, e.type, churn);
        break;
      }
      case 'REFUND':
      case 'REVOCATION':
        // A refund of an earlier period leaves the subscription as it is; one of the current period ends it.
        if (e.transactionId === period!.transactionId && state !== 'REVOKED') {
          beforeRevocation = state;
          state = 'REVOKED';
          moveTo('REVOKED', at, e.type, 'REVOKED');
        }
        break;
      case 'REFUND_REVERSED':
        if (state === 'REVOKED' && e.transactionId === period!.transactionId) {
          state = beforeRevocation === 'ON_HOLD' || beforeRevocation === 'PAUSED' || beforeRevocation === 'GRACE' ? beforeRevocation : live(at);
          moveTo(state, at, e.type);
        }
        break;
      default:
        break;
    }
  }
  passTime(null);
  return spans;
}

/** The state a list of spans gives at `t`; null before the first purchase. */
export function stateAt(spans: readonly StateSpan[], t: Date): SubscriptionState | null {
  for (const s of spans) if (ms(s.startsAt) <= ms(t) && (s.endsAt === null || ms(s.endsAt) > ms(t))) return s.state;
  return null;
}

/** Ratio rounded to 4 decimals; null when there is nothing to divide by. */
export function rate(numerator: number, denominator: number): number | null {
  return denominator > 0 ? Math.round((numerator / denominator) * 10_000) / 10_000 : null;
}
