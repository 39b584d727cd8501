// The entitlement engine: pure functions from the stored history of store statements (and `now`) to
// state, grants, events and credits. No I/O and no clock: `now` is always a parameter.
//
// Subscriptions are replayed observation by observation (Kill Bill style). Events that describe a store
// fact (a period started, a refund) are keyed by that fact, so replaying a history that gained duplicate or
// late snapshots yields the same keys and persistence appends nothing new.

import {
  ENTITLING_STATES,
  type CatalogProduct,
  type CreditChange,
  type DerivedEvent,
  type Environment,
  type EntitlementStore,
  type EventType,
  type ExpirationReason,
  type GrantSpan,
  type NormalizedPurchase,
  type Ownership,
  type ProductKind,
  type Store,
  type SubscriptionState,
} from './types.js';

export type CatalogLookup = (store: Store, productId: string) => CatalogProduct | undefined;

export type Churn = 'VOLUNTARY' | 'INVOLUNTARY' | 'OTHER';

// ---------------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------------

const DAY_MS = 86_400_000;

const ms = (d: Date): number => d.getTime();
const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());
const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Earliest of the given ends, where null means "no end" (so it never wins over a date). */
function earliestEnd(...ends: (Date | null)[]): Date | null {
  let best: Date | null = null;
  for (const end of ends) if (end !== null && (best === null || ms(end) < ms(best))) best = end;
  return best;
}

/** "Is `end` still ahead of `t`?", with null meaning open-ended. */
const endsAfter = (end: Date | null, t: Date): boolean => end === null || ms(end) > ms(t);

const isRetrying = (state: SubscriptionState): boolean => state === 'GRACE' || state === 'ON_HOLD';

// ---------------------------------------------------------------------------------------------------------
// Snapshot state and history ordering
// ---------------------------------------------------------------------------------------------------------

/** State of one subscription snapshot as of time t (pure). Order of checks:
 * revokedAt set and <= t -> REVOKED; paused -> PAUSED; onHold -> ON_HOLD;
 * billingRetry && gracePeriodExpiresAt > t -> GRACE; billingRetry (no grace left) -> ON_HOLD;
 * expiresAt <= t -> EXPIRED; autoRenew === false -> CANCELED; else ACTIVE. */
export function snapshotState(s: NormalizedPurchase, t: Date): SubscriptionState {
  if (s.revokedAt !== null && ms(s.revokedAt) <= ms(t)) return 'REVOKED';
  if (s.paused) return 'PAUSED';
  if (s.onHold) return 'ON_HOLD';
  if (s.billingRetry) return s.gracePeriodExpiresAt !== null && ms(s.gracePeriodExpiresAt) > ms(t) ? 'GRACE' : 'ON_HOLD';
  if (s.expiresAt !== null && ms(s.expiresAt) <= ms(t)) return 'EXPIRED';
  if (s.autoRenew === false) return 'CANCELED';
  return 'ACTIVE';
}

/** Every fact of a snapshot except the verbatim `raw` payload, in a fixed order: equal strings = same statement. */
function factsKey(s: NormalizedPurchase): string {
  const { raw: _raw, price, ...rest } = s;
  const fields = Object.keys(rest).sort() as (keyof typeof rest)[];
  return JSON.stringify([fields.map((f) => rest[f]), price && [price.amountMicros, price.currency]]);
}

/**
 * The history in replay order: by (observedAt, purchasedAt, transactionId), then by the facts themselves so
 * that even conflicting statements made at the same instant order the same way every time.
 * Exact duplicates (same facts, whatever their raw payload) are dropped.
 */
export function orderHistory(history: readonly NormalizedPurchase[]): NormalizedPurchase[] {
  const keyed = history.map((s) => ({ s, key: factsKey(s) }));
  keyed.sort(
    (a, b) =>
      ms(a.s.observedAt) - ms(b.s.observedAt) ||
      ms(a.s.purchasedAt) - ms(b.s.purchasedAt) ||
      compareStrings(a.s.transactionId, b.s.transactionId) ||
      compareStrings(a.key, b.key),
  );
  return keyed.filter((k, i) => i === 0 || k.key !== keyed[i - 1].key).map((k) => k.s);
}

/** Statements made at the same instant form one observation (e.g. every transaction in one legacy receipt). */
function groupByObservedAt(ordered: readonly NormalizedPurchase[]): NormalizedPurchase[][] {
  const batches: NormalizedPurchase[][] = [];
  for (const s of ordered) {
    const last = batches.at(-1);
    if (last && ms(last[0].observedAt) === ms(s.observedAt)) last.push(s);
    else batches.push([s]);
  }
  return batches;
}

function assertSame(ordered: readonly NormalizedPurchase[], fields: readonly (keyof NormalizedPurchase)[], what: string): void {
  if (ordered.length === 0) throw new Error(`${what}: history is empty`);
  for (const field of fields) {
    const values = new Set(ordered.map((s) => String(s[field])));
    if (values.size > 1) throw new Error(`${what}: history mixes ${field} values (${[...values].sort().join(', ')})`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Event log: deterministic keys, one event per key
// ---------------------------------------------------------------------------------------------------------

class EventLog {
  private readonly events = new Map<string, DerivedEvent>();
  private readonly store: Store;
  private readonly scope: string;

  constructor(store: Store, scope: string) {
    this.store = store;
    this.scope = scope;
  }

  /** Records an event about snapshot `s`'s transaction; a second event with the same key is the same fact. */
  add(type: EventType, s: NormalizedPurchase, occurredAt: Date, data: Record<string, unknown> = {}, keyType: string = type): void {
    const key = `${this.store}:${this.scope}:${keyType}:${s.transactionId}:${occurredAt.toISOString()}`;
    if (this.events.has(key)) return;
    this.events.set(key, {
      key,
      type,
      occurredAt,
      productId: s.productId,
      transactionId: s.transactionId,
      data: { productId: s.productId, environment: s.environment, ...data },
    });
  }

  /** Chronological; events at the same instant keep the order they were derived in (stable sort). */
  list(): DerivedEvent[] {
    return [...this.events.values()].sort((a, b) => ms(a.occurredAt) - ms(b.occurredAt));
  }
}

/** REFUND / REVOCATION when a transaction becomes revoked, REFUND_REVERSED when the revocation is lifted. */
function recordRevocationChange(log: EventLog, before: NormalizedPurchase | undefined, after: NormalizedPurchase): void {
  const wasRevoked = before !== undefined && before.revokedAt !== null;
  if (!wasRevoked && after.revokedAt !== null) {
    const type = after.ownership === 'FAMILY_SHARED' ? 'REVOCATION' : 'REFUND';
    log.add(type, after, after.revokedAt, { reason: after.revocationReason, ownership: after.ownership });
  } else if (wasRevoked && after.revokedAt === null) {
    log.add('REFUND_REVERSED', after, after.observedAt, { revokedAt: iso(before.revokedAt) });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Subscription periods (one per transaction)
// ---------------------------------------------------------------------------------------------------------

/** What is known so far of one transaction, i.e. one paid period of the subscription. */
interface Period {
  latest: NormalizedPurchase;
  /** Latest grace end the store announced while retrying this period's renewal. */
  graceEnd: Date | null;
}

/**
 * A statement silent about renewal (an Apple transaction without its renewal info, e.g. the app's copy submitted
 * again at launch) keeps what an earlier statement of the same transaction said about renewal and billing.
 */
function withKnownRenewal(previous: NormalizedPurchase | undefined, s: NormalizedPurchase): NormalizedPurchase {
  if (s.autoRenew !== null || previous === undefined || previous.autoRenew === null) return s;
  return {
    ...s,
    autoRenew: previous.autoRenew,
    billingRetry: previous.billingRetry,
    gracePeriodExpiresAt: previous.gracePeriodExpiresAt,
    expirationReason: previous.expirationReason,
  };
}

function observe(periods: Map<string, Period>, statement: NormalizedPurchase): void {
  const s = withKnownRenewal(periods.get(statement.transactionId)?.latest, statement);
  const graceEnd = periods.get(s.transactionId)?.graceEnd ?? null;
  const announced = s.billingRetry ? s.gracePeriodExpiresAt : null;
  const later = announced !== null && (graceEnd === null || ms(announced) > ms(graceEnd));
  periods.set(s.transactionId, { latest: s, graceEnd: later ? announced : graceEnd });
}

const comparePeriods = (a: Period, b: Period): number =>
  ms(a.latest.purchasedAt) - ms(b.latest.purchasedAt) || compareStrings(a.latest.transactionId, b.latest.transactionId);

function orderPeriods(periods: Map<string, Period>): Period[] {
  return [...periods.values()].sort(comparePeriods);
}

/** When access from this period ends: its expiry, extended by a grace period, cut by a revocation. */
function accessEnd(p: Period): Date | null {
  const { expiresAt, revokedAt } = p.latest;
  const extended = expiresAt !== null && p.graceEnd !== null && ms(p.graceEnd) > ms(expiresAt) ? p.graceEnd : expiresAt;
  return earliestEnd(extended, revokedAt);
}

type PeriodStartType = 'INITIAL_PURCHASE' | 'RENEWAL' | 'REACTIVATION';

interface PeriodStart {
  period: Period;
  previous: Period | null;
  type: PeriodStartType;
}

/**
 * A period starting after the previous one's access ended is a reactivation, unless the store was still
 * retrying billing or the subscription was paused: then the gap is a hold or a pause, not a lapse.
 */
/** Stores stop retrying a failed renewal after at most 60 days (Apple's billing retry; Google grace + hold). */
const RETRY_WINDOW_MS = 60 * DAY_MS;
/** Google pauses last at most three months. */
const PAUSE_WINDOW_MS = 92 * DAY_MS;

function startsAfterLapse(previous: Period, start: Date): boolean {
  const s = previous.latest;
  if (s.revokedAt === null && s.expiresAt !== null && (s.billingRetry || s.onHold || s.paused)) {
    // A renewal while the store was still retrying (or paused) continues the subscription; one after the store
    // must have given up is a return.
    const windowEnd = s.paused ? (s.autoResumeAt ? ms(s.autoResumeAt) + DAY_MS : ms(s.expiresAt) + PAUSE_WINDOW_MS) : ms(s.expiresAt) + RETRY_WINDOW_MS;
    return ms(start) > windowEnd;
  }
  if (s.revokedAt === null && (s.billingRetry || s.onHold || s.paused)) return false;
  const end = accessEnd(previous);
  return end !== null && ms(start) > ms(end);
}

/** Classifies each period from the store's facts alone, so the answer does not depend on when we looked. */
function classifyPeriods(ordered: readonly Period[]): PeriodStart[] {
  return ordered.map((period, i) => {
    const previous = i === 0 ? null : ordered[i - 1];
    if (previous === null) return { period, previous, type: 'INITIAL_PURCHASE' };
    const type = startsAfterLapse(previous, period.latest.purchasedAt) ? 'REACTIVATION' : 'RENEWAL';
    return { period, previous, type };
  });
}

function recordPeriodStarts(log: EventLog, starts: readonly PeriodStart[]): void {
  for (const { period, previous, type } of starts) {
    const s = period.latest;
    // One key per period start whatever its type: a late statement that turns a REACTIVATION into a RENEWAL
    // must not record the period's start twice (the first classification recorded stays).
    log.add(
      type,
      s,
      s.purchasedAt,
      {
        expiresAt: iso(s.expiresAt),
        offerType: s.offerType,
        price: s.price && { amountMicros: s.price.amountMicros, currency: s.price.currency },
        ownership: s.ownership,
        previousTransactionId: previous?.latest.transactionId ?? null,
        ...(type === 'REACTIVATION' && previous ? { previousAccessEnd: iso(accessEnd(previous)) } : {}),
      },
      'PERIOD_START',
    );
    if (previous && previous.latest.productId !== s.productId) {
      log.add('PRODUCT_CHANGE', s, s.purchasedAt, { previousProductId: previous.latest.productId });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Subscription state transitions (between consecutive observations)
// ---------------------------------------------------------------------------------------------------------

/** Store-stated reason first (it is the store's word), then the state the subscription left. */
export function churnOf(previous: SubscriptionState, reason: ExpirationReason | null): Churn {
  if (reason === 'VOLUNTARY' || reason === 'PRICE_INCREASE') return 'VOLUNTARY';
  if (reason === 'BILLING_ERROR') return 'INVOLUNTARY';
  if (previous === 'CANCELED') return 'VOLUNTARY';
  if (isRetrying(previous)) return 'INVOLUNTARY';
  return 'OTHER';
}

/** What the transition is measured from. */
interface Baseline {
  state: SubscriptionState;
  autoRenew: boolean | null;
  /** No previous state to compare with (first sight, or a new start after a lapse). */
  fresh: boolean;
  /** The current period is a different transaction than the one last observed. */
  newPeriod: boolean;
}

const FRESH: Baseline = { state: 'ACTIVE', autoRenew: true, fresh: true, newPeriod: true };

/** For a period we never saw lapse: the state its own facts give just before access ended. */
function stateBeforeLapse(p: Period): SubscriptionState {
  const end = accessEnd(p);
  return end === null ? snapshotState(p.latest, p.latest.observedAt) : snapshotState(p.latest, new Date(ms(end) - 1));
}

function recordExpiration(log: EventLog, p: Period, previous: SubscriptionState, expired: Set<string>): void {
  const s = p.latest;
  log.add('EXPIRATION', s, accessEnd(p) ?? s.observedAt, {
    reason: s.expirationReason,
    churn: churnOf(previous, s.expirationReason),
    previousState: previous,
    expiresAt: iso(s.expiresAt),
  });
  expired.add(s.transactionId);
}

function recordTransition(log: EventLog, from: Baseline, p: Period, state: SubscriptionState, expired: Set<string>): void {
  const s = p.latest;
  const failedPeriodEnd = s.expiresAt ?? s.observedAt;
  const restartedAt = from.newPeriod ? s.purchasedAt : s.observedAt;
  const billing = { expiresAt: iso(s.expiresAt), gracePeriodExpiresAt: iso(s.gracePeriodExpiresAt) };
  if (state !== from.state) {
    if (isRetrying(state) && !isRetrying(from.state)) log.add('BILLING_ISSUE', s, failedPeriodEnd, billing);
    if (state === 'GRACE') log.add('GRACE_PERIOD', s, failedPeriodEnd, billing);
    if (state === 'ON_HOLD') log.add('ON_HOLD', s, failedPeriodEnd, billing);
    if (isRetrying(from.state) && (state === 'ACTIVE' || state === 'CANCELED')) {
      log.add('BILLING_RECOVERY', s, restartedAt, { from: from.state, expiresAt: iso(s.expiresAt) });
    }
    if (state === 'PAUSED') log.add('PAUSE', s, failedPeriodEnd, { autoResumeAt: iso(s.autoResumeAt) });
    if (from.state === 'PAUSED' && ENTITLING_STATES.has(state)) log.add('RESUME', s, restartedAt, { expiresAt: iso(s.expiresAt) });
    if (state === 'EXPIRED') recordExpiration(log, p, from.fresh ? stateBeforeLapse(p) : from.state, expired);
  }
  // Not known before (a statement silent about renewal) counts as on, as for a first observation.
  const flipped = s.autoRenew !== null && (from.autoRenew ?? true) !== s.autoRenew;
  if (flipped && ENTITLING_STATES.has(state)) {
    log.add(s.autoRenew ? 'UNCANCELLATION' : 'CANCELLATION', s, s.observedAt, {
      expiresAt: iso(s.expiresAt),
      reason: s.expirationReason,
    });
  }
}

interface Head {
  index: number;
  state: SubscriptionState;
  autoRenew: boolean | null;
}

/**
 * Baseline when the current period changed. Periods started after a lapse begin afresh (after recording
 * the lapse we never observed); otherwise a renewal implies auto-renew was on, and a billing retry or a
 * pause carries over so that its end is recorded as a recovery or a resume.
 */
function baselineForNewPeriod(log: EventLog, head: Head | null, crossed: readonly PeriodStart[], expired: Set<string>): Baseline {
  const lapses = crossed.filter((c) => c.type === 'REACTIVATION');
  for (const { previous } of lapses) {
    if (previous && previous.latest.revokedAt === null && !expired.has(previous.latest.transactionId)) {
      recordExpiration(log, previous, stateBeforeLapse(previous), expired);
    }
  }
  if (head === null || lapses.length > 0) return FRESH;
  const carried = isRetrying(head.state) || head.state === 'PAUSED' ? head.state : 'ACTIVE';
  return { state: carried, autoRenew: true, fresh: false, newPeriod: true };
}

/** Replays observations and records the transitions between them (never the mere passing of time). */
function recordObservations(log: EventLog, ordered: readonly NormalizedPurchase[], starts: readonly PeriodStart[]): void {
  const indexOf = new Map(starts.map((p, i) => [p.period.latest.transactionId, i]));
  const periods = new Map<string, Period>();
  const expired = new Set<string>();
  let head: Head | null = null;

  for (const batch of groupByObservedAt(ordered)) {
    const before = new Map(batch.map((s) => [s.transactionId, periods.get(s.transactionId)?.latest]));
    const discovered = new Set([...before].filter(([, previous]) => previous === undefined).map(([txn]) => txn));
    for (const s of batch) observe(periods, s);

    const current = orderPeriods(periods).at(-1)!;
    const s = current.latest;
    const index = indexOf.get(s.transactionId) ?? 0;
    // Only a statement about the current period can move the subscription's state.
    let from: Baseline | null = null;
    if (head !== null && head.index === index) {
      if (before.has(s.transactionId)) from = { state: head.state, autoRenew: head.autoRenew, fresh: false, newPeriod: false };
    } else {
      from = baselineForNewPeriod(log, head, starts.slice(head === null ? 0 : head.index + 1, index + 1), expired);
    }
    // Emitted in this order so that events at one instant read naturally (lapse, new period, then the rest).
    recordPeriodStarts(log, starts.filter((p) => discovered.has(p.period.latest.transactionId)));
    for (const [txn, previous] of before) recordRevocationChange(log, previous, periods.get(txn)!.latest);
    if (from === null) continue;
    const state = snapshotState(s, s.observedAt);
    // A statement silent about renewal (an Apple transaction without its renewal info) whose period is over
    // cannot tell a lapse from a renewal it has not heard of: it moves nothing.
    if (state === 'EXPIRED' && s.autoRenew === null && s.revokedAt === null) continue;
    recordTransition(log, from, current, state, expired);
    head = { index, state, autoRenew: s.autoRenew };
  }
}

// ---------------------------------------------------------------------------------------------------------
// Subscription grants
// ---------------------------------------------------------------------------------------------------------

function spansFor(product: CatalogProduct | undefined, s: NormalizedPurchase, startsAt: Date, endsAt: Date | null, reason: GrantSpan['reason']): GrantSpan[] {
  if (!product || !endsAfter(endsAt, startsAt)) return [];
  return [...new Set(product.entitlements)].map((entitlement) => ({
    entitlement,
    productId: s.productId,
    transactionId: s.transactionId,
    startsAt,
    endsAt,
    reason,
  }));
}

/**
 * One PAID span per entitlement per period, cut where the next period starts (upgrade: no double count) and
 * at a revocation; plus a GRACE span while the store retries with access kept. Independent of `now`.
 */
function subscriptionGrants(ordered: readonly Period[], catalog: CatalogLookup): GrantSpan[] {
  const wholeRevokedAt = ordered.at(-1)!.latest.revokedAt;
  return ordered.flatMap((p, i) => {
    const s = p.latest;
    const product = catalog(s.store, s.productId);
    const next = i + 1 < ordered.length ? ordered[i + 1].latest.purchasedAt : null;
    const cut = earliestEnd(next, s.revokedAt, wholeRevokedAt);
    const spans = spansFor(product, s, s.purchasedAt, earliestEnd(s.expiresAt, cut), 'PAID');
    const grace = s.billingRetry ? s.gracePeriodExpiresAt : null;
    if (s.expiresAt !== null && grace !== null && ms(grace) > ms(s.expiresAt)) {
      spans.push(...spansFor(product, s, s.expiresAt, earliestEnd(grace, cut), 'GRACE'));
    }
    return spans;
  });
}

// ---------------------------------------------------------------------------------------------------------
// deriveSubscription
// ---------------------------------------------------------------------------------------------------------

export interface SubscriptionDerivation {
  store: Store;
  environment: Environment;
  lineageId: string;
  /** Current product (of the latest snapshot). */
  productId: string;
  /** As of `now`. */
  state: SubscriptionState;
  /** Earliest purchasedAt in the lineage. */
  originalPurchasedAt: Date;
  latestTransactionId: string;
  currentPeriodStartsAt: Date;
  expiresAt: Date | null;
  gracePeriodExpiresAt: Date | null;
  autoResumeAt: Date | null;
  /** autoRenew true and state not EXPIRED/REVOKED. */
  willRenew: boolean;
  ownership: Ownership;
  revokedAt: Date | null;
  revocationReason: string | null;
  expirationReason: ExpirationReason | null;
  /** At `now`: ENTITLING_STATES and entitledUntil > now (null entitledUntil: no end). */
  isEntitled: boolean;
  /** Grace end when in GRACE, else expiresAt; revokedAt if revoked earlier. */
  entitledUntil: Date | null;
  /** First non-null one in the history. */
  orderToken: string | null;
  grants: GrantSpan[];
  events: DerivedEvent[];
}

/**
 * Derives one subscription lineage from all its snapshots (any order, duplicates allowed).
 * "Latest snapshot" means the latest observation of the most recent period (by purchasedAt), so a late
 * statement about an older period (e.g. its refund) never turns the subscription back in time.
 */
export function deriveSubscription(history: readonly NormalizedPurchase[], catalog: CatalogLookup, now: Date): SubscriptionDerivation {
  const ordered = orderHistory(history);
  assertSame(ordered, ['store', 'environment', 'lineageId'], 'deriveSubscription');
  const periods = new Map<string, Period>();
  for (const s of ordered) observe(periods, s);
  const byStart = orderPeriods(periods);
  const starts = classifyPeriods(byStart);

  const log = new EventLog(ordered[0].store, ordered[0].lineageId);
  recordObservations(log, ordered, starts);

  const head = byStart.at(-1)!.latest;
  const state = snapshotState(head, now);
  const entitledUntil = earliestEnd(state === 'GRACE' ? head.gracePeriodExpiresAt : head.expiresAt, head.revokedAt);
  return {
    store: head.store,
    environment: head.environment,
    lineageId: head.lineageId,
    productId: head.productId,
    state,
    originalPurchasedAt: byStart[0].latest.purchasedAt,
    latestTransactionId: head.transactionId,
    currentPeriodStartsAt: head.purchasedAt,
    expiresAt: head.expiresAt,
    gracePeriodExpiresAt: head.gracePeriodExpiresAt,
    autoResumeAt: head.autoResumeAt,
    willRenew: head.autoRenew === true && state !== 'EXPIRED' && state !== 'REVOKED',
    ownership: head.ownership,
    revokedAt: head.revokedAt,
    revocationReason: head.revocationReason,
    expirationReason: head.expirationReason,
    isEntitled: ENTITLING_STATES.has(state) && endsAfter(entitledUntil, now),
    entitledUntil,
    orderToken: ordered.find((s) => s.orderToken !== null)?.orderToken ?? null,
    grants: subscriptionGrants(byStart, catalog),
    events: log.list(),
  };
}

// ---------------------------------------------------------------------------------------------------------
// deriveOneTimePurchase
// ---------------------------------------------------------------------------------------------------------

export interface OneTimeDerivation {
  store: Store;
  environment: Environment;
  kind: ProductKind;
  productId: string;
  transactionId: string;
  purchasedAt: Date;
  /** NON_RENEWING: purchasedAt + durationDays; null otherwise. */
  expiresAt: Date | null;
  revokedAt: Date | null;
  revocationReason: string | null;
  ownership: Ownership;
  orderToken: string | null;
  /** At `now`. Consumables never entitle. */
  isEntitled: boolean;
  grants: GrantSpan[];
  events: DerivedEvent[];
  credits: CreditChange[];
}

const PURCHASE_EVENT: Record<Exclude<ProductKind, 'AUTO_RENEWABLE'>, EventType> = {
  NON_CONSUMABLE: 'NON_CONSUMABLE_PURCHASE',
  NON_RENEWING: 'NON_RENEWING_PURCHASE',
  CONSUMABLE: 'CONSUMABLE_CREDIT',
};

function nonRenewingEnd(s: NormalizedPurchase, product: CatalogProduct): Date {
  if (product.durationDays !== null) return new Date(ms(s.purchasedAt) + product.durationDays * DAY_MS);
  if (s.expiresAt !== null) return s.expiresAt;
  throw new Error(`deriveOneTimePurchase: NON_RENEWING product ${product.productId} has no durationDays`);
}

/** Credit amounts per currency, sorted by currency; zero amounts are left out. */
function creditAmounts(product: CatalogProduct, quantity: number, sign: 1 | -1): [string, number][] {
  return Object.keys(product.credits)
    .sort()
    .map((currency): [string, number] => [currency, sign * quantity * product.credits[currency]])
    .filter(([, amount]) => amount !== 0);
}

/** +quantity x credits once per currency; the same amount back out if the purchase was revoked. */
function consumableCredits(s: NormalizedPurchase, product: CatalogProduct): CreditChange[] {
  const change = (currency: string, amount: number, kind: 'credit' | 'clawback', occurredAt: Date): CreditChange => ({
    key: `${kind}:${s.store}:${s.transactionId}:${currency}`,
    currency,
    amount,
    transactionId: s.transactionId,
    reason: kind === 'credit' ? 'PURCHASE' : 'REFUND_CLAWBACK',
    occurredAt,
  });
  const credits = creditAmounts(product, s.quantity, 1).map(([c, a]) => change(c, a, 'credit', s.purchasedAt));
  const revokedAt = s.revokedAt;
  if (revokedAt === null) return credits;
  return [...credits, ...creditAmounts(product, s.quantity, -1).map(([c, a]) => change(c, a, 'clawback', revokedAt))];
}

function assertOneTimeInputs(ordered: readonly NormalizedPurchase[], product: CatalogProduct): void {
  if (product.kind === 'AUTO_RENEWABLE') throw new Error(`deriveOneTimePurchase: ${product.productId} is AUTO_RENEWABLE`);
  assertSame(ordered, ['store', 'transactionId'], 'deriveOneTimePurchase');
  const s = ordered[0];
  if (s.store !== product.store || s.productId !== product.productId) {
    throw new Error(`deriveOneTimePurchase: purchase of ${s.store}/${s.productId} given catalog product ${product.store}/${product.productId}`);
  }
  if (!Number.isInteger(s.quantity) || s.quantity < 1) throw new Error(`deriveOneTimePurchase: bad quantity ${s.quantity}`);
}

function oneTimeIsEntitled(kind: ProductKind, expiresAt: Date | null, revokedAt: Date | null, now: Date): boolean {
  const revoked = revokedAt !== null && ms(revokedAt) <= ms(now);
  if (kind === 'NON_CONSUMABLE') return !revoked;
  if (kind === 'NON_RENEWING') return !revoked && expiresAt !== null && ms(expiresAt) > ms(now);
  return false;
}

/** history = all snapshots of ONE one-time transaction (same store+transactionId), any order, duplicates allowed. */
export function deriveOneTimePurchase(history: readonly NormalizedPurchase[], product: CatalogProduct, now: Date): OneTimeDerivation {
  const ordered = orderHistory(history);
  assertOneTimeInputs(ordered, product);
  const kind = product.kind as Exclude<ProductKind, 'AUTO_RENEWABLE'>;
  const s = ordered.at(-1)!;
  const expiresAt = kind === 'NON_RENEWING' ? nonRenewingEnd(s, product) : null;
  const credits = kind === 'CONSUMABLE' ? consumableCredits(s, product) : [];

  const log = new EventLog(s.store, s.transactionId);
  const purchased = credits.filter((c) => c.reason === 'PURCHASE');
  log.add(PURCHASE_EVENT[kind], s, s.purchasedAt, {
    quantity: s.quantity,
    expiresAt: iso(expiresAt),
    ownership: s.ownership,
    price: s.price && { amountMicros: s.price.amountMicros, currency: s.price.currency },
    ...(kind === 'CONSUMABLE' ? { credits: Object.fromEntries(purchased.map((c) => [c.currency, c.amount])) } : {}),
  });
  ordered.forEach((cur, i) => recordRevocationChange(log, ordered[i - 1], cur));
  const clawbacks = credits.filter((c) => c.reason === 'REFUND_CLAWBACK');
  if (s.revokedAt !== null && kind === 'CONSUMABLE') {
    log.add('CREDIT_CLAWBACK', s, s.revokedAt, { credits: Object.fromEntries(clawbacks.map((c) => [c.currency, c.amount])) });
  }

  return {
    store: s.store,
    environment: s.environment,
    kind,
    productId: s.productId,
    transactionId: s.transactionId,
    purchasedAt: s.purchasedAt,
    expiresAt,
    revokedAt: s.revokedAt,
    revocationReason: s.revocationReason,
    ownership: s.ownership,
    orderToken: ordered.find((x) => x.orderToken !== null)?.orderToken ?? null,
    isEntitled: oneTimeIsEntitled(kind, expiresAt, s.revokedAt, now),
    grants: kind === 'CONSUMABLE' ? [] : spansFor(product, s, s.purchasedAt, earliestEnd(expiresAt, s.revokedAt), 'PAID'),
    events: log.list(),
    credits,
  };
}

// ---------------------------------------------------------------------------------------------------------
// resolveEntitlements
// ---------------------------------------------------------------------------------------------------------

/** What the API shows per entitlement identifier. */
export interface EntitlementSource {
  entitlement: string;
  productId: string;
  store: EntitlementStore;
  environment: Environment;
  kind: ProductKind;
  /** null for one-time products. */
  state: SubscriptionState | null;
  purchasedAt: Date;
  expiresAt: Date | null;
  gracePeriodExpiresAt: Date | null;
  willRenew: boolean;
  revokedAt: Date | null;
  /** Absent in sources cached before ownership was recorded: those were bought by the customer. */
  ownership?: Ownership;
}

export interface EntitlementView {
  identifier: string;
  isActive: boolean;
  state: SubscriptionState;
  expiresAt: Date | null;
  gracePeriodExpiresAt: Date | null;
  willRenew: boolean;
  productId: string;
  store: EntitlementStore;
  isSandbox: boolean;
  /** FAMILY_SHARED: a family member bought it and shares it through Apple's Family Sharing. */
  ownership: Ownership;
  purchasedAt: Date;
}

interface Candidate {
  source: EntitlementSource;
  isActive: boolean;
  /** End of access: grace end in GRACE, else expiry, cut at a revocation; null = no end. */
  end: Date | null;
  state: SubscriptionState;
}

function evaluateSource(source: EntitlementSource, now: Date): Candidate {
  const graceEnd = source.state === 'GRACE' ? source.gracePeriodExpiresAt : null;
  const end = earliestEnd(graceEnd ?? source.expiresAt, source.revokedAt);
  const revoked = source.revokedAt !== null && ms(source.revokedAt) <= ms(now);
  const lasting = endsAfter(end, now);
  let isActive: boolean;
  if (source.kind === 'AUTO_RENEWABLE') isActive = source.state !== null && ENTITLING_STATES.has(source.state) && lasting && !revoked;
  else if (source.kind === 'NON_RENEWING') isActive = source.expiresAt !== null && lasting && !revoked;
  else isActive = !revoked;
  return { source, isActive, end, state: viewState(source, isActive, revoked) };
}

function viewState(source: EntitlementSource, isActive: boolean, revoked: boolean): SubscriptionState {
  if (revoked) return 'REVOKED';
  if (source.kind !== 'AUTO_RENEWABLE') return isActive ? 'ACTIVE' : 'EXPIRED';
  if (source.state === null) return 'EXPIRED';
  // An entitling state whose end has passed is shown for what it now is.
  return ENTITLING_STATES.has(source.state) && !isActive ? 'EXPIRED' : source.state;
}

/** Later end first; null (no end) before any date. */
function compareEndsDesc(a: Date | null, b: Date | null): number {
  if (a === null || b === null) return (a === null ? 0 : 1) - (b === null ? 0 : 1);
  return ms(b) - ms(a);
}

/** Negative when `a` is the better source for its entitlement. */
function compareCandidates(a: Candidate, b: Candidate): number {
  if (a.isActive !== b.isActive) return a.isActive ? -1 : 1;
  return (
    compareEndsDesc(a.end, b.end) ||
    (a.isActive ? 0 : ms(b.source.purchasedAt) - ms(a.source.purchasedAt)) ||
    compareStrings(a.source.store, b.source.store) ||
    compareStrings(a.source.productId, b.source.productId) ||
    compareStrings(a.source.environment, b.source.environment) ||
    ms(b.source.purchasedAt) - ms(a.source.purchasedAt) ||
    compareStrings(a.source.kind, b.source.kind)
  );
}

function toView(identifier: string, best: Candidate): EntitlementView {
  const { source } = best;
  return {
    identifier,
    isActive: best.isActive,
    state: best.state,
    expiresAt: source.expiresAt,
    gracePeriodExpiresAt: source.gracePeriodExpiresAt,
    willRenew: source.willRenew && best.state !== 'EXPIRED' && best.state !== 'REVOKED',
    productId: source.productId,
    store: source.store,
    isSandbox: source.environment === 'SANDBOX',
    ownership: source.ownership ?? 'PURCHASED',
    purchasedAt: source.purchasedAt,
  };
}

/** One view per entitlement identifier, from its best source; consumables never entitle. Sorted by identifier. */
export function resolveEntitlements(sources: readonly EntitlementSource[], now: Date): EntitlementView[] {
  const byIdentifier = new Map<string, Candidate[]>();
  for (const source of sources) {
    if (source.kind === 'CONSUMABLE') continue;
    const list = byIdentifier.get(source.entitlement) ?? [];
    list.push(evaluateSource(source, now));
    byIdentifier.set(source.entitlement, list);
  }
  return [...byIdentifier.keys()]
    .sort(compareStrings)
    .map((identifier) => toView(identifier, byIdentifier.get(identifier)!.sort(compareCandidates)[0]));
}
