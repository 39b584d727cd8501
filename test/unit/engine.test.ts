import { describe, it, expect } from 'vitest';
import {
  churnOf,
  deriveOneTimePurchase,
  deriveSubscription,
  orderHistory,
  resolveEntitlements,
  snapshotState,
  type CatalogLookup,
  type EntitlementSource,
} from '../../src/domain/engine.js';
import {
  PLAIN_PURCHASE_FACTS,
  type CatalogProduct,
  type EventType,
  type ExpirationReason,
  type NormalizedPurchase,
  type SubscriptionState,
} from '../../src/domain/types.js';

// ---------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------

const T0 = Date.parse('2025-01-01T00:00:00.000Z');
const DAY = 86_400_000;
/** `at(1.5)` = T0 + 1.5 days. */
const at = (days: number): Date => new Date(T0 + days * DAY);

/** One subscription snapshot: period [day 0, day 30), auto-renew on, observed at day 0. */
function snap(over: Partial<NormalizedPurchase> = {}): NormalizedPurchase {
  return {
    ...PLAIN_PURCHASE_FACTS,
    store: 'APP_STORE',
    environment: 'PRODUCTION',
    productId: 'pro_monthly',
    transactionId: 't1',
    lineageId: 'L1',
    purchasedAt: at(0),
    expiresAt: at(30),
    autoRenew: true,
    observedAt: at(0),
    raw: null,
    ...over,
  };
}

/** Period n of the default subscription: transaction `t${n}`, days [30(n-1), 30n). */
const period = (n: number, over: Partial<NormalizedPurchase> = {}): NormalizedPurchase =>
  snap({ transactionId: `t${n}`, purchasedAt: at(30 * (n - 1)), expiresAt: at(30 * n), observedAt: at(30 * (n - 1)), ...over });

function product(over: Partial<CatalogProduct> & Pick<CatalogProduct, 'productId' | 'kind'>): CatalogProduct {
  return { store: 'APP_STORE', entitlements: ['pro'], durationDays: null, credits: {}, displayName: null, ...over };
}

const PRODUCTS: CatalogProduct[] = [
  product({ productId: 'pro_monthly', kind: 'AUTO_RENEWABLE' }),
  product({ productId: 'pro_yearly', kind: 'AUTO_RENEWABLE', entitlements: ['pro', 'premium'] }),
  product({ store: 'PLAY_STORE', productId: 'pro_monthly', kind: 'AUTO_RENEWABLE' }),
  product({ productId: 'lifetime', kind: 'NON_CONSUMABLE', entitlements: ['pro', 'no_ads'] }),
  product({ productId: 'pass_30', kind: 'NON_RENEWING', durationDays: 30 }),
  product({ productId: 'coins_pack', kind: 'CONSUMABLE', entitlements: [], credits: { gems: 5, coins: 100 } }),
];
const catalog: CatalogLookup = (store, productId) => PRODUCTS.find((p) => p.store === store && p.productId === productId);
const productOf = (productId: string): CatalogProduct => PRODUCTS.find((p) => p.store === 'APP_STORE' && p.productId === productId)!;

const NOW = at(1000);
const derive = (history: NormalizedPurchase[], now: Date = NOW) => deriveSubscription(history, catalog, now);
const eventTypes = (history: NormalizedPurchase[]): EventType[] => derive(history).events.map((e) => e.type);
const eventOf = (history: NormalizedPurchase[], type: EventType) => {
  const found = derive(history).events.filter((e) => e.type === type);
  expect(found, `exactly one ${type}`).toHaveLength(1);
  return found[0];
};

/** Deterministic shuffle (mulberry32) so a failure reproduces. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let a = seed >>> 0;
  const random = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

// Reusable snapshots of the first period.
const canceled = (observedDay: number, over: Partial<NormalizedPurchase> = {}) => snap({ autoRenew: false, observedAt: at(observedDay), ...over });
const inGrace = (observedDay: number, over: Partial<NormalizedPurchase> = {}) =>
  snap({ billingRetry: true, gracePeriodExpiresAt: at(36), observedAt: at(observedDay), ...over });
const onHold = (observedDay: number, over: Partial<NormalizedPurchase> = {}) => snap({ onHold: true, observedAt: at(observedDay), ...over });
const expired = (observedDay: number, over: Partial<NormalizedPurchase> = {}) => snap({ observedAt: at(observedDay), ...over });

// ---------------------------------------------------------------------------------------------------------
// snapshotState
// ---------------------------------------------------------------------------------------------------------

describe('snapshotState', () => {
  const cases: [string, Partial<NormalizedPurchase>, Date, SubscriptionState][] = [
    ['active before expiry', {}, at(10), 'ACTIVE'],
    ['autoRenew unknown counts as active', { autoRenew: null }, at(10), 'ACTIVE'],
    ['no expiry never expires', { expiresAt: null }, at(10_000), 'ACTIVE'],
    ['canceled: auto-renew off before expiry', { autoRenew: false }, at(10), 'CANCELED'],
    ['one ms before expiry is still active', {}, new Date(T0 + 30 * DAY - 1), 'ACTIVE'],
    ['expiresAt == t is expired', {}, at(30), 'EXPIRED'],
    ['canceled and past expiry is expired', { autoRenew: false }, at(31), 'EXPIRED'],
    ['billing retry within grace', { billingRetry: true, gracePeriodExpiresAt: at(36) }, at(31), 'GRACE'],
    ['grace end == t is on hold', { billingRetry: true, gracePeriodExpiresAt: at(36) }, at(36), 'ON_HOLD'],
    ['billing retry without grace is on hold', { billingRetry: true }, at(31), 'ON_HOLD'],
    ['billing retry beats expiry (grace after expiresAt)', { billingRetry: true, gracePeriodExpiresAt: at(36) }, at(35), 'GRACE'],
    ['Google account hold', { onHold: true }, at(31), 'ON_HOLD'],
    ['hold beats grace', { onHold: true, billingRetry: true, gracePeriodExpiresAt: at(36) }, at(31), 'ON_HOLD'],
    ['paused', { paused: true, autoResumeAt: at(45) }, at(31), 'PAUSED'],
    ['paused beats hold', { paused: true, onHold: true }, at(31), 'PAUSED'],
    ['revoked in the past', { revokedAt: at(5) }, at(10), 'REVOKED'],
    ['revokedAt == t is revoked', { revokedAt: at(10) }, at(10), 'REVOKED'],
    ['revocation in the future does not count yet', { revokedAt: at(20) }, at(10), 'ACTIVE'],
    ['revoked beats paused', { revokedAt: at(5), paused: true }, at(10), 'REVOKED'],
  ];
  it.each(cases)('%s', (_name, over, t, expected) => {
    expect(snapshotState(snap(over), t)).toBe(expected);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------------------

describe('deriveSubscription events: transitions between observations', () => {
  const PLAY = { store: 'PLAY_STORE' } as const;
  const cases: [string, NormalizedPurchase[], EventType[]][] = [
    ['first observation ACTIVE', [snap()], ['INITIAL_PURCHASE']],
    ['first observation already CANCELED', [canceled(2)], ['INITIAL_PURCHASE', 'CANCELLATION']],
    ['first observation already in GRACE', [inGrace(31)], ['INITIAL_PURCHASE', 'BILLING_ISSUE', 'GRACE_PERIOD']],
    ['first observation already ON_HOLD', [onHold(31, PLAY)], ['INITIAL_PURCHASE', 'BILLING_ISSUE', 'ON_HOLD']],
    ['first observation already PAUSED', [snap({ ...PLAY, paused: true, observedAt: at(31) })], ['INITIAL_PURCHASE', 'PAUSE']],
    ['first observation already EXPIRED', [expired(40, { autoRenew: false })], ['INITIAL_PURCHASE', 'EXPIRATION']],
    ['first observation already REVOKED', [snap({ revokedAt: at(3), observedAt: at(4) })], ['INITIAL_PURCHASE', 'REFUND']],
    ['renewal (new transaction)', [period(1), period(2)], ['INITIAL_PURCHASE', 'RENEWAL']],
    ['auto-renew turned off -> CANCELLATION', [snap(), canceled(5)], ['INITIAL_PURCHASE', 'CANCELLATION']],
    ['auto-renew turned back on -> UNCANCELLATION', [snap(), canceled(5), snap({ observedAt: at(6) })], ['INITIAL_PURCHASE', 'CANCELLATION', 'UNCANCELLATION']],
    ['ACTIVE -> GRACE', [snap(), inGrace(31)], ['INITIAL_PURCHASE', 'BILLING_ISSUE', 'GRACE_PERIOD']],
    ['CANCELED -> GRACE', [canceled(5), inGrace(31, { autoRenew: false })], ['INITIAL_PURCHASE', 'CANCELLATION', 'BILLING_ISSUE', 'GRACE_PERIOD']],
    ['ACTIVE -> ON_HOLD (Google hold)', [snap(PLAY), onHold(31, PLAY)], ['INITIAL_PURCHASE', 'BILLING_ISSUE', 'ON_HOLD']],
    ['ACTIVE -> ON_HOLD (Apple retry, no grace)', [snap(), snap({ billingRetry: true, observedAt: at(31) })], ['INITIAL_PURCHASE', 'BILLING_ISSUE', 'ON_HOLD']],
    ['GRACE -> ON_HOLD when grace is over', [inGrace(31), inGrace(37)], ['INITIAL_PURCHASE', 'BILLING_ISSUE', 'GRACE_PERIOD', 'ON_HOLD']],
    [
      'GRACE -> renewal: BILLING_RECOVERY',
      [inGrace(31), period(2, { purchasedAt: at(33), expiresAt: at(63), observedAt: at(33) })],
      ['INITIAL_PURCHASE', 'BILLING_ISSUE', 'GRACE_PERIOD', 'RENEWAL', 'BILLING_RECOVERY'],
    ],
    [
      'ON_HOLD -> same transaction extended: BILLING_RECOVERY',
      [snap(PLAY), onHold(31, PLAY), snap({ ...PLAY, expiresAt: at(62), observedAt: at(32) })],
      ['INITIAL_PURCHASE', 'BILLING_ISSUE', 'ON_HOLD', 'BILLING_RECOVERY'],
    ],
    [
      'PAUSED -> resumed with a new order: RESUME',
      [snap(PLAY), snap({ ...PLAY, paused: true, autoResumeAt: at(45), observedAt: at(31) }), period(2, { ...PLAY, purchasedAt: at(45), expiresAt: at(75), observedAt: at(45) })],
      ['INITIAL_PURCHASE', 'PAUSE', 'RENEWAL', 'RESUME'],
    ],
    ['CANCELED -> EXPIRED', [snap(), canceled(5), canceled(31)], ['INITIAL_PURCHASE', 'CANCELLATION', 'EXPIRATION']],
    ['GRACE -> EXPIRED', [inGrace(31), expired(60, { expirationReason: 'BILLING_ERROR' })], ['INITIAL_PURCHASE', 'BILLING_ISSUE', 'GRACE_PERIOD', 'EXPIRATION']],
    ['ACTIVE -> REVOKED (refund)', [snap(), snap({ revokedAt: at(10), observedAt: at(10) })], ['INITIAL_PURCHASE', 'REFUND']],
    [
      'family-shared ACTIVE -> REVOKED: REVOCATION',
      [snap({ ownership: 'FAMILY_SHARED' }), snap({ ownership: 'FAMILY_SHARED', revokedAt: at(10), observedAt: at(10) })],
      ['INITIAL_PURCHASE', 'REVOCATION'],
    ],
    [
      'REVOKED -> ACTIVE (revocation lifted): REFUND_REVERSED',
      [snap(), snap({ revokedAt: at(10), observedAt: at(10) }), snap({ observedAt: at(12) })],
      ['INITIAL_PURCHASE', 'REFUND', 'REFUND_REVERSED'],
    ],
    [
      'upgrade to another product: RENEWAL + PRODUCT_CHANGE',
      [snap(), period(2, { productId: 'pro_yearly', purchasedAt: at(10), expiresAt: at(375), observedAt: at(10) })],
      ['INITIAL_PURCHASE', 'RENEWAL', 'PRODUCT_CHANGE'],
    ],
    [
      'renewal observed after the previous expiry, no gap: RENEWAL',
      [period(1), period(2, { observedAt: at(32) })],
      ['INITIAL_PURCHASE', 'RENEWAL'],
    ],
    [
      'expiry observed, then a renewal with no gap: still RENEWAL',
      [period(1), expired(31), period(2, { observedAt: at(32) })],
      ['INITIAL_PURCHASE', 'EXPIRATION', 'RENEWAL'],
    ],
    [
      'expiry observed, then a new period after a gap: REACTIVATION',
      [canceled(5), canceled(31), period(2, { purchasedAt: at(40), expiresAt: at(70), observedAt: at(40) })],
      ['INITIAL_PURCHASE', 'CANCELLATION', 'EXPIRATION', 'REACTIVATION'],
    ],
    [
      'lapse observed, expiry restated later, then a gap: still one EXPIRATION',
      [canceled(5), canceled(31), canceled(35, { expiresAt: at(32) }), period(2, { purchasedAt: at(40), expiresAt: at(70), observedAt: at(40) })],
      ['INITIAL_PURCHASE', 'CANCELLATION', 'EXPIRATION', 'REACTIVATION'],
    ],
    [
      'reactivation with another product: REACTIVATION + PRODUCT_CHANGE',
      [canceled(31), period(2, { productId: 'pro_yearly', purchasedAt: at(40), expiresAt: at(405), observedAt: at(40) })],
      ['INITIAL_PURCHASE', 'EXPIRATION', 'REACTIVATION', 'PRODUCT_CHANGE'],
    ],
    [
      'expiry never observed before a gap: EXPIRATION recorded from the store facts',
      [canceled(5), period(2, { purchasedAt: at(40), expiresAt: at(70), observedAt: at(40) })],
      ['INITIAL_PURCHASE', 'CANCELLATION', 'EXPIRATION', 'REACTIVATION'],
    ],
    [
      'legacy receipt: three periods stated at one instant (no spurious EXPIRATION)',
      [period(1, { observedAt: at(61) }), period(2, { observedAt: at(61) }), period(3, { observedAt: at(61) })],
      ['INITIAL_PURCHASE', 'RENEWAL', 'RENEWAL'],
    ],
    [
      'late refund of a past period: REFUND of that transaction only',
      [period(1), period(2), period(1, { revokedAt: at(35), observedAt: at(35) })],
      ['INITIAL_PURCHASE', 'RENEWAL', 'REFUND'],
    ],
    [
      'PAUSED -> resumed on the same order: RESUME',
      [snap({ ...PLAY, paused: true, observedAt: at(31) }), snap({ ...PLAY, expiresAt: at(75), observedAt: at(45) })],
      ['INITIAL_PURCHASE', 'PAUSE', 'RESUME'],
    ],
    [
      'hold recovered by a new order after a gap: RENEWAL, not REACTIVATION',
      [snap(PLAY), onHold(31, PLAY), period(2, { ...PLAY, purchasedAt: at(50), expiresAt: at(80), observedAt: at(50) })],
      ['INITIAL_PURCHASE', 'BILLING_ISSUE', 'ON_HOLD', 'RENEWAL', 'BILLING_RECOVERY'],
    ],
    [
      'resubscribing after a refund: REACTIVATION, no EXPIRATION',
      [snap({ revokedAt: at(10), observedAt: at(10) }), period(2, { purchasedAt: at(20), expiresAt: at(50), observedAt: at(20) })],
      ['INITIAL_PURCHASE', 'REFUND', 'REACTIVATION'],
    ],
    ['auto-renew off in a non-entitling state is no CANCELLATION', [snap(), expired(31, { autoRenew: false })], ['INITIAL_PURCHASE', 'EXPIRATION']],
    ['identical re-observation emits nothing', [snap(), snap({ observedAt: at(3) }), snap({ observedAt: at(9) })], ['INITIAL_PURCHASE']],
    // Apple transactions without renewal info say nothing about whether the subscription went on.
    ['a past period seen without renewal info is no EXPIRATION', [period(1, { autoRenew: null, observedAt: at(40) })], ['INITIAL_PURCHASE']],
    [
      'an old transaction seen now, then the renewal it did not know of: RENEWAL only',
      [period(1, { autoRenew: null, observedAt: at(40) }), period(2, { observedAt: at(41) })],
      ['INITIAL_PURCHASE', 'RENEWAL'],
    ],
    [
      'silent about renewal, then the store says it lapsed: one EXPIRATION',
      [period(1, { autoRenew: null, observedAt: at(40) }), period(1, { autoRenew: false, expirationReason: 'VOLUNTARY', observedAt: at(41) })],
      ['INITIAL_PURCHASE', 'EXPIRATION'],
    ],
    ['silent about renewal, then auto-renew off: CANCELLATION', [snap({ autoRenew: null }), canceled(5)], ['INITIAL_PURCHASE', 'CANCELLATION']],
    // The app's copy of a transaction submitted again says nothing about renewal: what the store said stands.
    ['GRACE, then the same transaction without renewal info: still GRACE', [inGrace(31), snap({ autoRenew: null, observedAt: at(32) })], ['INITIAL_PURCHASE', 'BILLING_ISSUE', 'GRACE_PERIOD']],
    ['CANCELED, then silent, then CANCELED again: one CANCELLATION', [canceled(5), snap({ autoRenew: null, observedAt: at(6) }), canceled(7)], ['INITIAL_PURCHASE', 'CANCELLATION']],
    [
      'CANCELED, then silent, then auto-renew on: UNCANCELLATION',
      [canceled(5), snap({ autoRenew: null, observedAt: at(6) }), snap({ observedAt: at(7) })],
      ['INITIAL_PURCHASE', 'CANCELLATION', 'UNCANCELLATION'],
    ],
    ['silent about renewal, then auto-renew on: nothing new', [snap({ autoRenew: null }), snap({ observedAt: at(5) })], ['INITIAL_PURCHASE']],
  ];
  it.each(cases)('%s', (_name, history, expected) => {
    expect(eventTypes(history)).toEqual(expected);
  });
});

describe('deriveSubscription events: occurredAt and data', () => {
  const cases: [string, NormalizedPurchase[], EventType, Date][] = [
    ['INITIAL_PURCHASE at the earliest purchasedAt', [period(2, { observedAt: at(31) }), period(1, { observedAt: at(31) })], 'INITIAL_PURCHASE', at(0)],
    ['RENEWAL at its purchasedAt', [period(1), period(2, { observedAt: at(32) })], 'RENEWAL', at(30)],
    ['REACTIVATION at its purchasedAt', [canceled(31), period(2, { purchasedAt: at(40), observedAt: at(41) })], 'REACTIVATION', at(40)],
    ['CANCELLATION at observedAt', [snap(), canceled(5)], 'CANCELLATION', at(5)],
    ['UNCANCELLATION at observedAt', [canceled(5), snap({ observedAt: at(7) })], 'UNCANCELLATION', at(7)],
    ['BILLING_ISSUE at the failed period end', [snap(), inGrace(31)], 'BILLING_ISSUE', at(30)],
    ['GRACE_PERIOD at the failed period end', [snap(), inGrace(31)], 'GRACE_PERIOD', at(30)],
    ['ON_HOLD at the failed period end', [snap(), onHold(33)], 'ON_HOLD', at(30)],
    ['PAUSE at the paused period end', [snap(), snap({ paused: true, observedAt: at(31) })], 'PAUSE', at(30)],
    ['EXPIRATION at expiresAt', [snap(), canceled(5), canceled(31)], 'EXPIRATION', at(30)],
    ['EXPIRATION after grace at the grace end', [inGrace(31), expired(60)], 'EXPIRATION', at(36)],
    ['unobserved EXPIRATION at the lapsed expiry', [canceled(5), period(2, { purchasedAt: at(40), observedAt: at(40) })], 'EXPIRATION', at(30)],
    ['REFUND at revokedAt', [snap(), snap({ revokedAt: at(10), observedAt: at(11) })], 'REFUND', at(10)],
    ['REFUND_REVERSED at observedAt', [snap({ revokedAt: at(10), observedAt: at(11) }), snap({ observedAt: at(12) })], 'REFUND_REVERSED', at(12)],
    ['BILLING_RECOVERY with a new transaction at its purchasedAt', [inGrace(31), period(2, { purchasedAt: at(33), observedAt: at(34) })], 'BILLING_RECOVERY', at(33)],
  ];
  it.each(cases)('%s', (_name, history, type, expected) => {
    expect(eventOf(history, type).occurredAt).toEqual(expected);
  });

  it('keys are `${store}:${lineageId}:${type}:${transactionId}:${occurredAt ISO}`, period starts sharing one type', () => {
    const keys = derive([period(1), period(2), period(2, { autoRenew: false, observedAt: at(40) })]).events.map((e) => e.key);
    expect(keys).toEqual([
      'APP_STORE:L1:PERIOD_START:t1:2025-01-01T00:00:00.000Z',
      'APP_STORE:L1:PERIOD_START:t2:2025-01-31T00:00:00.000Z',
      'APP_STORE:L1:CANCELLATION:t2:2025-02-10T00:00:00.000Z',
    ]);
  });

  it('a late statement that reclassifies a period start keeps one key for it', () => {
    // Without the late statement, t2 starts after a lapse (REACTIVATION); the late billing-retry statement for t1
    // makes it a RENEWAL after recovery. Either way the period start has the same key: it is recorded once.
    const t2 = period(2, { purchasedAt: at(45), expiresAt: at(75), observedAt: at(45) });
    const before = derive([period(1), t2]).events.filter((e) => e.transactionId === 't2' && (e.type === 'REACTIVATION' || e.type === 'RENEWAL'));
    const late = period(1, { billingRetry: true, observedAt: at(31) });
    const after = derive([period(1), t2, late]).events.filter((e) => e.transactionId === 't2' && (e.type === 'REACTIVATION' || e.type === 'RENEWAL'));
    expect(before.map((e) => e.type)).toEqual(['REACTIVATION']);
    expect(after.map((e) => e.type)).toEqual(['RENEWAL']);
    expect(after.map((e) => e.key)).toEqual(before.map((e) => e.key));
  });

  it.each([
    ['billing retry, renewed within 60 days: renewal', { billingRetry: true }, 80, 'RENEWAL'],
    ['billing retry, renewed after 60 days: the store gave up, so a return', { billingRetry: true }, 95, 'REACTIVATION'],
    ['on hold, renewed after 60 days', { onHold: true }, 120, 'REACTIVATION'],
    ['paused until day 60, resumed then', { paused: true, autoResumeAt: at(60) }, 60, 'RENEWAL'],
    ['paused until day 60, back on day 100', { paused: true, autoResumeAt: at(60) }, 100, 'REACTIVATION'],
  ])('%s', (_name, previousFacts, startDay, type) => {
    const stalled = period(1, { ...previousFacts, observedAt: at(31) });
    const next = period(2, { purchasedAt: at(startDay), expiresAt: at(startDay + 30), observedAt: at(startDay) });
    const starts = derive([period(1), stalled, next]).events.filter((e) => e.transactionId === 't2' && (e.type === 'RENEWAL' || e.type === 'REACTIVATION'));
    expect(starts.map((e) => e.type)).toEqual([type]);
  });

  it('events carry the transaction and product they are about', () => {
    const events = derive([snap(), period(2, { productId: 'pro_yearly', purchasedAt: at(10), expiresAt: at(375), observedAt: at(10) })]).events;
    const change = events.find((e) => e.type === 'PRODUCT_CHANGE')!;
    expect(change).toMatchObject({ transactionId: 't2', productId: 'pro_yearly' });
    expect(change.data).toMatchObject({ productId: 'pro_yearly', previousProductId: 'pro_monthly', environment: 'PRODUCTION' });
    expect(events.find((e) => e.type === 'RENEWAL')!.data).toMatchObject({ previousTransactionId: 't1', expiresAt: at(375).toISOString() });
  });

  it('family-shared revocation carries the ownership and reason', () => {
    const ev = eventOf([snap({ ownership: 'FAMILY_SHARED', revokedAt: at(10), revocationReason: 'FAMILY_REVOKED', observedAt: at(10) })], 'REVOCATION');
    expect(ev.data).toMatchObject({ ownership: 'FAMILY_SHARED', reason: 'FAMILY_REVOKED' });
  });

  it('event data is JSON-serializable (dates as ISO strings)', () => {
    const offer = { price: { amountMicros: 1_990_000, currency: 'USD' }, offerType: 'INTRO' };
    const history = [snap(offer), canceled(5, offer), inGrace(31, { ...offer, autoRenew: false }), expired(60, offer)];
    for (const e of derive(history).events) {
      expect(JSON.parse(JSON.stringify(e.data))).toEqual(e.data);
    }
    expect(derive(history).events[0].data).toMatchObject({ price: { amountMicros: 1_990_000, currency: 'USD' }, offerType: 'INTRO' });
  });
});

describe('deriveSubscription: voluntary vs involuntary EXPIRATION', () => {
  /** Churn of the last EXPIRATION. */
  const churn = (history: NormalizedPurchase[]) => derive(history).events.filter((e) => e.type === 'EXPIRATION').at(-1)!.data.churn;
  const cases: [string, NormalizedPurchase[], string][] = [
    ['CANCELED -> EXPIRED is voluntary', [snap(), canceled(5), canceled(31)], 'VOLUNTARY'],
    ['GRACE -> EXPIRED is involuntary', [inGrace(31), expired(60)], 'INVOLUNTARY'],
    ['ON_HOLD -> EXPIRED is involuntary', [onHold(31), expired(60)], 'INVOLUNTARY'],
    ['ACTIVE -> EXPIRED, reason BILLING_ERROR: involuntary', [snap(), expired(31, { expirationReason: 'BILLING_ERROR' })], 'INVOLUNTARY'],
    ['ACTIVE -> EXPIRED, reason VOLUNTARY: voluntary', [snap(), expired(31, { expirationReason: 'VOLUNTARY' })], 'VOLUNTARY'],
    ['ACTIVE -> EXPIRED, reason PRICE_INCREASE: voluntary', [snap(), expired(31, { expirationReason: 'PRICE_INCREASE' })], 'VOLUNTARY'],
    ['ACTIVE -> EXPIRED, reason PRODUCT_UNAVAILABLE: other', [snap(), expired(31, { expirationReason: 'PRODUCT_UNAVAILABLE' })], 'OTHER'],
    ['ACTIVE -> EXPIRED, no reason: other', [snap(), expired(31)], 'OTHER'],
    ['first seen expired with auto-renew off: voluntary', [expired(40, { autoRenew: false })], 'VOLUNTARY'],
    [
      'reactivated period first seen already lapsed, auto-renew off: voluntary',
      [canceled(5), period(2, { purchasedAt: at(40), expiresAt: at(70), autoRenew: false, observedAt: at(100) })],
      'VOLUNTARY',
    ],
    ['unobserved lapse of a canceled period: voluntary', [canceled(5), period(2, { purchasedAt: at(40), observedAt: at(40) })], 'VOLUNTARY'],
  ];
  it.each(cases)('%s', (_name, history, expected) => {
    expect(churn(history)).toBe(expected);
  });

  const table: [SubscriptionState, ExpirationReason | null, string][] = [
    ['CANCELED', null, 'VOLUNTARY'],
    ['GRACE', null, 'INVOLUNTARY'],
    ['ON_HOLD', null, 'INVOLUNTARY'],
    ['ACTIVE', null, 'OTHER'],
    ['ACTIVE', 'OTHER', 'OTHER'],
    ['GRACE', 'VOLUNTARY', 'VOLUNTARY'],
    ['CANCELED', 'BILLING_ERROR', 'INVOLUNTARY'],
  ];
  it.each(table)('churnOf(%s, %s) = %s', (previous, reason, expected) => {
    expect(churnOf(previous, reason)).toBe(expected);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Ordering, duplicates, determinism
// ---------------------------------------------------------------------------------------------------------

describe('deriveSubscription: order and duplicates do not matter', () => {
  // A rich lineage: renewal, cancel, un-cancel, billing grace, recovery, upgrade, refund of the last period.
  const rich: NormalizedPurchase[] = [
    period(1, { orderToken: 'order-1', price: { amountMicros: 990_000, currency: 'EUR' } }),
    period(1, { autoRenew: false, observedAt: at(5) }),
    period(1, { observedAt: at(6) }),
    period(2),
    period(2, { billingRetry: true, gracePeriodExpiresAt: at(66), observedAt: at(61) }),
    period(3, { purchasedAt: at(63), expiresAt: at(93), observedAt: at(63) }),
    period(4, { productId: 'pro_yearly', purchasedAt: at(70), expiresAt: at(435), observedAt: at(70) }),
    period(4, { productId: 'pro_yearly', purchasedAt: at(70), expiresAt: at(435), revokedAt: at(80), revocationReason: '1', observedAt: at(80) }),
  ];
  const expected = derive(rich);

  it('the rich lineage yields the expected story', () => {
    expect(expected.events.map((e) => e.type)).toEqual([
      'INITIAL_PURCHASE',
      'CANCELLATION',
      'UNCANCELLATION',
      'RENEWAL',
      'BILLING_ISSUE',
      'GRACE_PERIOD',
      'RENEWAL',
      'BILLING_RECOVERY',
      'RENEWAL',
      'PRODUCT_CHANGE',
      'REFUND',
    ]);
    expect(expected).toMatchObject({ state: 'REVOKED', productId: 'pro_yearly', latestTransactionId: 't4', orderToken: 'order-1' });
  });

  it.each([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])('shuffled history (seed %i) gives identical output', (seed) => {
    expect(derive(shuffled(rich, seed))).toEqual(expected);
  });

  it.each([11, 12, 13])('shuffled history with duplicates (seed %i) gives identical output', (seed) => {
    const withDuplicates = [...rich, ...rich.map((s) => ({ ...s, raw: { resent: true } })), rich[3], rich[3]];
    expect(derive(shuffled(withDuplicates, seed))).toEqual(expected);
  });

  it('orderHistory drops exact duplicates (raw payload aside) and sorts by observedAt, purchasedAt, transactionId', () => {
    const a = period(1, { observedAt: at(40) });
    const b = period(2, { observedAt: at(40) });
    const c = period(1, { observedAt: at(10) });
    const ordered = orderHistory([b, a, { ...a, raw: 'other bytes' }, c, b]);
    expect(ordered.map((s) => [s.transactionId, s.observedAt.toISOString()])).toEqual([
      ['t1', at(10).toISOString()],
      ['t1', at(40).toISOString()],
      ['t2', at(40).toISOString()],
    ]);
  });

  it('conflicting statements at the same instant resolve the same way in any input order', () => {
    const x = snap({ observedAt: at(5) });
    const y = snap({ observedAt: at(5), autoRenew: false });
    expect(derive([snap(), y, x])).toEqual(derive([x, snap(), y]));
    expect(derive([y, x]).events.map((e) => e.key)).toEqual(derive([x, y]).events.map((e) => e.key));
  });

  it('same observedAt for several periods: ordered by purchasedAt, the newest one is current', () => {
    const history = [period(3, { observedAt: at(61) }), period(1, { observedAt: at(61) }), period(2, { observedAt: at(61) })];
    const d = derive(history, at(70));
    expect(d).toMatchObject({ latestTransactionId: 't3', state: 'ACTIVE', currentPeriodStartsAt: at(60), originalPurchasedAt: at(0) });
  });

  it('learning of an unobserved expiry later adds no new keys (same facts, same keys)', () => {
    const gap = period(2, { purchasedAt: at(40), expiresAt: at(70), observedAt: at(40) });
    const without = derive([canceled(5), gap]).events.map((e) => e.key);
    const withLate = derive([canceled(5), gap, canceled(31)]).events.map((e) => e.key);
    expect(withLate).toEqual(without);
  });

  it('throws on an empty history', () => {
    expect(() => derive([])).toThrow(/empty/);
  });
  it.each([
    ['lineages', { lineageId: 'L2' }, /lineageId/],
    ['stores', { store: 'PLAY_STORE' as const }, /store/],
    ['environments', { environment: 'SANDBOX' as const }, /environment/],
  ])('throws when the history mixes %s', (_name, over, message) => {
    expect(() => derive([snap(), period(2, over)])).toThrow(message);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Current state and entitlement
// ---------------------------------------------------------------------------------------------------------

describe('deriveSubscription: state as of now', () => {
  const cases: [string, NormalizedPurchase[], Date, { state: SubscriptionState; isEntitled: boolean; entitledUntil: Date | null; willRenew: boolean }][] = [
    ['active', [snap()], at(10), { state: 'ACTIVE', isEntitled: true, entitledUntil: at(30), willRenew: true }],
    ['time passed: expired, no longer entitled', [snap()], at(40), { state: 'EXPIRED', isEntitled: false, entitledUntil: at(30), willRenew: false }],
    ['canceled: entitled until expiry, will not renew', [canceled(5)], at(10), { state: 'CANCELED', isEntitled: true, entitledUntil: at(30), willRenew: false }],
    ['grace: entitled until the grace end', [inGrace(31)], at(32), { state: 'GRACE', isEntitled: true, entitledUntil: at(36), willRenew: true }],
    ['grace over: on hold, not entitled', [inGrace(31)], at(37), { state: 'ON_HOLD', isEntitled: false, entitledUntil: at(30), willRenew: true }],
    ['paused: not entitled', [snap({ paused: true, observedAt: at(31) })], at(32), { state: 'PAUSED', isEntitled: false, entitledUntil: at(30), willRenew: true }],
    ['revoked: entitled until the revocation only', [snap({ revokedAt: at(10), observedAt: at(10) })], at(12), { state: 'REVOKED', isEntitled: false, entitledUntil: at(10), willRenew: false }],
    ['late refund of a past period keeps the current one', [period(1), period(2), period(1, { revokedAt: at(35), observedAt: at(35) })], at(40), { state: 'ACTIVE', isEntitled: true, entitledUntil: at(60), willRenew: true }],
  ];
  it.each(cases)('%s', (_name, history, now, expected) => {
    expect(derive(history, now)).toMatchObject(expected);
  });

  it('the passing of time changes state but emits no event', () => {
    const history = [snap(), canceled(5)];
    const before = derive(history, at(10));
    const after = derive(history, at(400));
    expect([before.state, after.state]).toEqual(['CANCELED', 'EXPIRED']);
    expect(after.events).toEqual(before.events);
    expect(after.grants).toEqual(before.grants);
  });

  it('reports lineage facts: original purchase, current period, first order token, current product', () => {
    const d = derive([period(1), period(2, { orderToken: 'order-9' }), period(3, { productId: 'pro_yearly', orderToken: 'order-10' })], at(65));
    expect(d).toMatchObject({
      store: 'APP_STORE',
      environment: 'PRODUCTION',
      lineageId: 'L1',
      productId: 'pro_yearly',
      originalPurchasedAt: at(0),
      latestTransactionId: 't3',
      currentPeriodStartsAt: at(60),
      expiresAt: at(90),
      orderToken: 'order-9',
      ownership: 'PURCHASED',
    });
  });
});

// ---------------------------------------------------------------------------------------------------------
// Grants
// ---------------------------------------------------------------------------------------------------------

describe('deriveSubscription grants', () => {
  const spans = (history: NormalizedPurchase[]) =>
    derive(history).grants.map((g) => [g.entitlement, g.transactionId, g.reason, g.startsAt.toISOString(), g.endsAt?.toISOString() ?? null]);
  const span = (entitlement: string, txn: string, reason: string, from: number, to: number | null) => [
    entitlement,
    txn,
    reason,
    at(from).toISOString(),
    to === null ? null : at(to).toISOString(),
  ];
  const cases: [string, NormalizedPurchase[], unknown[]][] = [
    ['one period', [snap()], [span('pro', 't1', 'PAID', 0, 30)]],
    ['renewals: one span per period', [period(1), period(2)], [span('pro', 't1', 'PAID', 0, 30), span('pro', 't2', 'PAID', 30, 60)]],
    [
      'upgrade cuts the old span where the new period starts',
      [snap(), period(2, { productId: 'pro_yearly', purchasedAt: at(10), expiresAt: at(375), observedAt: at(10) })],
      [span('pro', 't1', 'PAID', 0, 10), span('pro', 't2', 'PAID', 10, 375), span('premium', 't2', 'PAID', 10, 375)],
    ],
    ['revocation cuts the span', [snap(), snap({ revokedAt: at(10), observedAt: at(10) })], [span('pro', 't1', 'PAID', 0, 10)]],
    [
      'refund of a past period cuts only that period',
      [period(1), period(2), period(1, { revokedAt: at(20), observedAt: at(35) })],
      [span('pro', 't1', 'PAID', 0, 20), span('pro', 't2', 'PAID', 30, 60)],
    ],
    ['revoked at purchase: empty span omitted', [snap({ revokedAt: at(0), observedAt: at(1) })], []],
    ['billing grace adds a GRACE span', [snap(), inGrace(31)], [span('pro', 't1', 'PAID', 0, 30), span('pro', 't1', 'GRACE', 30, 36)]],
    [
      'grace ended by a recovery is cut at the new period',
      [inGrace(31), period(2, { purchasedAt: at(33), expiresAt: at(63), observedAt: at(33) })],
      [span('pro', 't1', 'PAID', 0, 30), span('pro', 't1', 'GRACE', 30, 33), span('pro', 't2', 'PAID', 33, 63)],
    ],
    ['billing retry without grace adds nothing', [snap({ billingRetry: true, observedAt: at(31) })], [span('pro', 't1', 'PAID', 0, 30)]],
    ['product missing from the catalog grants nothing', [snap({ productId: 'unknown_sku' })], []],
  ];
  it.each(cases)('%s', (_name, history, expected) => {
    expect(spans(history)).toEqual(expected);
  });

  it('grants do not depend on now', () => {
    const history = [snap(), inGrace(31)];
    expect(derive(history, at(1)).grants).toEqual(derive(history, at(5000)).grants);
  });
});

// ---------------------------------------------------------------------------------------------------------
// One-time purchases
// ---------------------------------------------------------------------------------------------------------

describe('deriveOneTimePurchase', () => {
  const oneTime = (productId: string, over: Partial<NormalizedPurchase> = {}) =>
    snap({ productId, transactionId: 'ot1', lineageId: 'ot1', expiresAt: null, autoRenew: null, ...over });
  const deriveOne = (productId: string, history: NormalizedPurchase[], now: Date = NOW) => deriveOneTimePurchase(history, productOf(productId), now);

  it('NON_CONSUMABLE grants every entitlement for ever', () => {
    const d = deriveOne('lifetime', [oneTime('lifetime', { orderToken: 'o-1' })]);
    expect(d).toMatchObject({ kind: 'NON_CONSUMABLE', isEntitled: true, expiresAt: null, orderToken: 'o-1', credits: [] });
    expect(d.grants.map((g) => [g.entitlement, g.startsAt, g.endsAt, g.reason])).toEqual([
      ['pro', at(0), null, 'PAID'],
      ['no_ads', at(0), null, 'PAID'],
    ]);
    expect(d.events.map((e) => [e.type, e.occurredAt, e.key])).toEqual([
      ['NON_CONSUMABLE_PURCHASE', at(0), 'APP_STORE:ot1:NON_CONSUMABLE_PURCHASE:ot1:2025-01-01T00:00:00.000Z'],
    ]);
  });

  const refunds: [string, NormalizedPurchase['ownership'], EventType][] = [
    ['refund', 'PURCHASED', 'REFUND'],
    ['family-sharing revoke', 'FAMILY_SHARED', 'REVOCATION'],
  ];
  it.each(refunds)('NON_CONSUMABLE %s ends the grant at revokedAt', (_name, ownership, type) => {
    const history = [oneTime('lifetime', { ownership }), oneTime('lifetime', { ownership, revokedAt: at(50), observedAt: at(51) })];
    const d = deriveOne('lifetime', history);
    expect(d.grants.map((g) => g.endsAt)).toEqual([at(50), at(50)]);
    expect(d.events.map((e) => [e.type, e.occurredAt])).toEqual([
      ['NON_CONSUMABLE_PURCHASE', at(0)],
      [type, at(50)],
    ]);
    expect([d.isEntitled, deriveOne('lifetime', history, at(49)).isEntitled]).toEqual([false, true]);
  });

  it('NON_RENEWING grants purchasedAt + durationDays', () => {
    const history = [oneTime('pass_30', { purchasedAt: at(10), observedAt: at(10) })];
    const d = deriveOne('pass_30', history, at(20));
    expect(d).toMatchObject({ kind: 'NON_RENEWING', expiresAt: at(40), isEntitled: true });
    expect(d.grants.map((g) => [g.entitlement, g.startsAt, g.endsAt])).toEqual([['pro', at(10), at(40)]]);
    expect(d.events.map((e) => e.type)).toEqual(['NON_RENEWING_PURCHASE']);
    expect(deriveOne('pass_30', history, at(40)).isEntitled).toBe(false);
  });

  it('NON_RENEWING refunded early is cut at revokedAt', () => {
    const d = deriveOne('pass_30', [oneTime('pass_30', { revokedAt: at(5), observedAt: at(6) })], at(3));
    expect(d.grants.map((g) => g.endsAt)).toEqual([at(5)]);
    expect(d.isEntitled).toBe(true);
    expect(d.events.map((e) => e.type)).toEqual(['NON_RENEWING_PURCHASE', 'REFUND']);
  });

  it('CONSUMABLE credits quantity x credits once per currency, grants nothing', () => {
    const d = deriveOne('coins_pack', [oneTime('coins_pack', { quantity: 3 })]);
    expect(d.grants).toEqual([]);
    expect(d.isEntitled).toBe(false);
    expect(d.credits).toEqual([
      { key: 'credit:APP_STORE:ot1:coins', currency: 'coins', amount: 300, transactionId: 'ot1', reason: 'PURCHASE', occurredAt: at(0) },
      { key: 'credit:APP_STORE:ot1:gems', currency: 'gems', amount: 15, transactionId: 'ot1', reason: 'PURCHASE', occurredAt: at(0) },
    ]);
    expect(d.events.map((e) => [e.type, e.data.credits])).toEqual([['CONSUMABLE_CREDIT', { coins: 300, gems: 15 }]]);
  });

  it('CONSUMABLE refunded: clawback of the same amounts, CREDIT_CLAWBACK event', () => {
    const d = deriveOne('coins_pack', [oneTime('coins_pack', { quantity: 2 }), oneTime('coins_pack', { quantity: 2, revokedAt: at(3), observedAt: at(4) })]);
    expect(d.credits.map((c) => [c.key, c.amount, c.reason, c.occurredAt])).toEqual([
      ['credit:APP_STORE:ot1:coins', 200, 'PURCHASE', at(0)],
      ['credit:APP_STORE:ot1:gems', 10, 'PURCHASE', at(0)],
      ['clawback:APP_STORE:ot1:coins', -200, 'REFUND_CLAWBACK', at(3)],
      ['clawback:APP_STORE:ot1:gems', -10, 'REFUND_CLAWBACK', at(3)],
    ]);
    expect(d.events.map((e) => [e.type, e.occurredAt])).toEqual([
      ['CONSUMABLE_CREDIT', at(0)],
      ['REFUND', at(3)],
      ['CREDIT_CLAWBACK', at(3)],
    ]);
    expect(d.events[2].data.credits).toEqual({ coins: -200, gems: -10 });
  });

  it('a lifted refund restores the grant and records REFUND_REVERSED', () => {
    const history = [oneTime('lifetime', { revokedAt: at(5), observedAt: at(6) }), oneTime('lifetime', { observedAt: at(9) })];
    const d = deriveOne('lifetime', history);
    expect(d.events.map((e) => [e.type, e.occurredAt])).toEqual([
      ['NON_CONSUMABLE_PURCHASE', at(0)],
      ['REFUND', at(5)],
      ['REFUND_REVERSED', at(9)],
    ]);
    expect([d.isEntitled, d.revokedAt, d.grants[0].endsAt]).toEqual([true, null, null]);
  });

  it('shuffled and duplicated history gives identical output', () => {
    const history = [oneTime('coins_pack'), oneTime('coins_pack', { observedAt: at(1) }), oneTime('coins_pack', { revokedAt: at(3), observedAt: at(4) })];
    const expected = deriveOne('coins_pack', history);
    for (const seed of [1, 2, 3, 4]) {
      expect(deriveOne('coins_pack', shuffled([...history, ...history], seed))).toEqual(expected);
    }
  });

  it.each([
    ['an AUTO_RENEWABLE product', () => deriveOne('pro_monthly', [oneTime('pro_monthly')]), /AUTO_RENEWABLE/],
    ['an empty history', () => deriveOne('lifetime', []), /empty/],
    ['a history mixing transactions', () => deriveOne('lifetime', [oneTime('lifetime'), oneTime('lifetime', { transactionId: 'ot2' })]), /transactionId/],
    ['a history of another product', () => deriveOne('lifetime', [oneTime('pass_30')]), /catalog product/],
  ])('throws for %s', (_name, run, message) => {
    expect(run).toThrow(message);
  });
});

// ---------------------------------------------------------------------------------------------------------
// resolveEntitlements
// ---------------------------------------------------------------------------------------------------------

describe('resolveEntitlements', () => {
  const source = (over: Partial<EntitlementSource> = {}): EntitlementSource => ({
    entitlement: 'pro',
    productId: 'pro_monthly',
    store: 'APP_STORE',
    environment: 'PRODUCTION',
    kind: 'AUTO_RENEWABLE',
    state: 'ACTIVE',
    purchasedAt: at(0),
    expiresAt: at(30),
    gracePeriodExpiresAt: null,
    willRenew: true,
    revokedAt: null,
    ...over,
  });
  const lifetime = (over: Partial<EntitlementSource> = {}) =>
    source({ productId: 'lifetime', kind: 'NON_CONSUMABLE', state: null, expiresAt: null, willRenew: false, purchasedAt: at(-100), ...over });
  const expiredSub = source({ productId: 'old_monthly', state: 'EXPIRED', purchasedAt: at(-60), expiresAt: at(-30), willRenew: false });
  const pick = (sources: EntitlementSource[], now = at(10)) => {
    const views = resolveEntitlements(sources, now);
    expect(views).toHaveLength(1);
    return views[0];
  };

  const choices: [string, EntitlementSource[], string, boolean][] = [
    ['lifetime beats an active subscription', [source({ expiresAt: at(300) }), lifetime()], 'lifetime', true],
    ['active subscription beats an expired one', [expiredSub, source()], 'pro_monthly', true],
    ['later end wins among active subscriptions', [source({ expiresAt: at(20) }), source({ productId: 'pro_yearly', expiresAt: at(365) })], 'pro_yearly', true],
    [
      'grace end counts as the end in GRACE',
      [source({ expiresAt: at(25) }), source({ productId: 'pro_b', state: 'GRACE', expiresAt: at(5), gracePeriodExpiresAt: at(26) })],
      'pro_b',
      true,
    ],
    ['active beats inactive even with an earlier end', [source({ productId: 'held', state: 'ON_HOLD', expiresAt: at(90) }), source({ expiresAt: at(20) })], 'pro_monthly', true],
    ['active subscription beats a revoked lifetime', [lifetime({ revokedAt: at(5) }), source()], 'pro_monthly', true],
    ['among inactive, the latest end wins', [expiredSub, source({ productId: 'recent', state: 'EXPIRED', expiresAt: at(-1) })], 'recent', false],
    ['active non-renewing pass beats an expired subscription', [expiredSub, source({ productId: 'pass_30', kind: 'NON_RENEWING', state: null, expiresAt: at(20) })], 'pass_30', true],
    ['active sandbox beats inactive production', [expiredSub, source({ productId: 'sandbox_monthly', environment: 'SANDBOX' })], 'sandbox_monthly', true],
  ];
  it.each(choices)('%s', (_name, sources, productId, isActive) => {
    expect(pick(sources)).toMatchObject({ productId, isActive });
    expect(pick([...sources].reverse())).toMatchObject({ productId, isActive });
  });

  const views: [string, EntitlementSource, Date, { isActive: boolean; state: SubscriptionState; willRenew: boolean }][] = [
    ['active subscription', source(), at(10), { isActive: true, state: 'ACTIVE', willRenew: true }],
    ['entitling state past its end shows EXPIRED', source(), at(30), { isActive: false, state: 'EXPIRED', willRenew: false }],
    ['grace within its end', source({ state: 'GRACE', gracePeriodExpiresAt: at(36) }), at(33), { isActive: true, state: 'GRACE', willRenew: true }],
    ['grace past its end shows EXPIRED', source({ state: 'GRACE', gracePeriodExpiresAt: at(36) }), at(36), { isActive: false, state: 'EXPIRED', willRenew: false }],
    ['on hold does not entitle', source({ state: 'ON_HOLD' }), at(10), { isActive: false, state: 'ON_HOLD', willRenew: true }],
    ['revoked subscription', source({ revokedAt: at(5), state: 'REVOKED', willRenew: false }), at(10), { isActive: false, state: 'REVOKED', willRenew: false }],
    ['lifetime', lifetime(), at(10), { isActive: true, state: 'ACTIVE', willRenew: false }],
    ['lifetime revoked later is still active now', lifetime({ revokedAt: at(20) }), at(10), { isActive: true, state: 'ACTIVE', willRenew: false }],
    ['lifetime revoked', lifetime({ revokedAt: at(5) }), at(10), { isActive: false, state: 'REVOKED', willRenew: false }],
    ['non-renewing pass past its end', source({ kind: 'NON_RENEWING', state: null, expiresAt: at(9), willRenew: false }), at(10), { isActive: false, state: 'EXPIRED', willRenew: false }],
  ];
  it.each(views)('%s', (_name, src, now, expected) => {
    expect(pick([src], now)).toMatchObject(expected);
  });

  it('shows sandbox sources as sandbox', () => {
    expect(pick([source({ environment: 'SANDBOX' })]).isSandbox).toBe(true);
    expect(pick([source()]).isSandbox).toBe(false);
  });

  it('ignores consumables, groups by identifier and sorts by identifier', () => {
    const result = resolveEntitlements(
      [
        source({ entitlement: 'pro' }),
        lifetime({ entitlement: 'no_ads' }),
        source({ entitlement: 'coins', kind: 'CONSUMABLE', state: null, expiresAt: null }),
        expiredSub,
      ],
      at(10),
    );
    expect(result.map((v) => [v.identifier, v.productId, v.isActive])).toEqual([
      ['no_ads', 'lifetime', true],
      ['pro', 'pro_monthly', true],
    ]);
  });

  it('breaks ties deterministically by store then productId', () => {
    const a = source({ store: 'PLAY_STORE', productId: 'a' });
    const b = source({ store: 'APP_STORE', productId: 'z' });
    const c = source({ store: 'APP_STORE', productId: 'm' });
    expect(pick([a, b, c]).productId).toBe('m');
    expect(pick([c, b, a]).productId).toBe('m');
  });

  it('copies the chosen source facts into the view', () => {
    expect(pick([source({ state: 'GRACE', gracePeriodExpiresAt: at(36), purchasedAt: at(-5) })], at(33))).toEqual({
      identifier: 'pro',
      isActive: true,
      state: 'GRACE',
      expiresAt: at(30),
      gracePeriodExpiresAt: at(36),
      willRenew: true,
      productId: 'pro_monthly',
      store: 'APP_STORE',
      isSandbox: false,
      ownership: 'PURCHASED',
      purchasedAt: at(-5),
    });
  });

  it('shows a family-shared source as such', () => {
    expect(pick([source({ ownership: 'FAMILY_SHARED' })], at(1)).ownership).toBe('FAMILY_SHARED');
  });
});
