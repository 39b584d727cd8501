// Google Play resources -> normalized purchases, table-driven.
import { describe, expect, it } from 'vitest';
import type { SubscriptionState } from '../../src/domain/types.js';
import { snapshotState } from '../../src/domain/engine.js';
import { fromProductPurchase, fromSubscriptionPurchase } from '../../src/stores/google/normalize.js';

const observedAt = new Date('2026-05-10T00:00:00Z');
const ctx = { packageName: 'com.example.app', token: 'tok', observedAt };
const line = (over: Record<string, unknown> = {}) => ({
  productId: 'pro_monthly',
  expiryTime: '2026-06-01T00:00:00Z',
  latestSuccessfulOrderId: 'GPA.1..2',
  autoRenewingPlan: { autoRenewEnabled: true, recurringPrice: { currencyCode: 'USD', units: '9', nanos: 990_000_000 } },
  ...over,
});

describe('subscriptionsv2 -> normalized purchase', () => {
  it.each<[string, Record<string, unknown>, Record<string, unknown>, SubscriptionState]>([
    ['ACTIVE', {}, { autoRenew: true, billingRetry: false }, 'ACTIVE'],
    ['ACTIVE', { lineItems: [line({ autoRenewingPlan: { autoRenewEnabled: false } })] }, { autoRenew: false }, 'CANCELED'],
    ['CANCELED', { canceledStateContext: { userInitiatedCancellation: {} } }, { autoRenew: false, expirationReason: 'VOLUNTARY' }, 'CANCELED'],
    ['IN_GRACE_PERIOD', {}, { billingRetry: true, gracePeriodExpiresAt: new Date('2026-06-01T00:00:00Z') }, 'GRACE'],
    ['ON_HOLD', { lineItems: [line({ expiryTime: '2026-05-01T00:00:00Z' })] }, { onHold: true, billingRetry: true }, 'ON_HOLD'],
    ['PAUSED', { pausedStateContext: { autoResumeTime: '2026-07-01T00:00:00Z' } }, { paused: true, autoResumeAt: new Date('2026-07-01T00:00:00Z') }, 'PAUSED'],
    ['EXPIRED', { lineItems: [line({ expiryTime: '2026-05-01T00:00:00Z' })], canceledStateContext: { systemInitiatedCancellation: {} } }, { autoRenew: false, expirationReason: 'BILLING_ERROR' }, 'EXPIRED'],
  ])('%s %j', (state, over, expected, engineState) => {
    const reading = fromSubscriptionPurchase({ subscriptionState: `SUBSCRIPTION_STATE_${state}`, startTime: '2026-01-01T00:00:00Z', lineItems: [line()], ...over }, 'pro_monthly', ctx);
    expect(reading.status).toBe('VERIFIED');
    if (reading.status !== 'VERIFIED') return;
    expect(reading.purchase).toMatchObject({ store: 'PLAY_STORE', transactionId: 'GPA.1..2', lineageId: 'tok', purchaseToken: 'tok', ...expected });
    expect(snapshotState(reading.purchase, observedAt)).toBe(engineState);
  });

  it('carries price, sandbox, lineage, order token and the acknowledgement to send', () => {
    const reading = fromSubscriptionPurchase(
      {
        subscriptionState: 'SUBSCRIPTION_STATE_ACTIVE',
        startTime: '2026-01-01T00:00:00Z',
        testPurchase: {},
        linkedPurchaseToken: 'old-token',
        externalAccountIdentifiers: { obfuscatedExternalAccountId: 'order-123' },
        acknowledgementState: 'ACKNOWLEDGEMENT_STATE_PENDING',
        lineItems: [line({ offerPhase: { freeTrial: {} } })],
      },
      'pro_monthly',
      ctx,
    );
    if (reading.status !== 'VERIFIED') throw new Error('expected VERIFIED');
    expect(reading.purchase).toMatchObject({
      environment: 'SANDBOX',
      previousLineageToken: 'old-token',
      orderToken: 'order-123',
      offerType: 'FREE_TRIAL',
      price: { currency: 'USD', amountMicros: 9_990_000 },
      purchasedAt: new Date('2026-01-01T00:00:00Z'),
    });
    expect(reading.followUps).toEqual([{ kind: 'ACKNOWLEDGE_SUBSCRIPTION', packageName: 'com.example.app', productId: 'pro_monthly', token: 'tok' }]);
  });

  it('never lets EXPIRED entitle, even with a line item expiry in the future', () => {
    const reading = fromSubscriptionPurchase({ subscriptionState: 'SUBSCRIPTION_STATE_EXPIRED', lineItems: [line({ expiryTime: '2026-09-01T00:00:00Z' })] }, 'pro_monthly', ctx);
    if (reading.status !== 'VERIFIED') throw new Error('expected VERIFIED');
    expect(reading.purchase.expiresAt).toEqual(observedAt);
    expect(snapshotState(reading.purchase, observedAt)).toBe('EXPIRED');
  });

  it.each([
    ['SUBSCRIPTION_STATE_UNSPECIFIED', 'PENDING', 'STORE_UNAVAILABLE'],
    ['SUBSCRIPTION_STATE_SOMETHING_NEW', 'PENDING', 'STORE_UNAVAILABLE'],
    ['SUBSCRIPTION_STATE_PENDING', 'PENDING', 'PURCHASE_PENDING'],
    ['SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED', 'REJECTED', 'PURCHASE_CANCELED'],
  ])('%s is %s', (subscriptionState, status, reason) => {
    expect(fromSubscriptionPurchase({ subscriptionState, lineItems: [line()] }, 'pro_monthly', ctx)).toMatchObject({ status, reason });
  });
});

describe('products.get -> normalized purchase', () => {
  it.each([
    [0, 'CONSUMABLE', { consumptionState: 0 }, 'VERIFIED', ['CONSUME_PRODUCT']],
    [0, 'CONSUMABLE', { consumptionState: 1 }, 'VERIFIED', []],
    [0, 'NON_CONSUMABLE', { acknowledgementState: 0 }, 'VERIFIED', ['ACKNOWLEDGE_PRODUCT']],
    [0, 'NON_CONSUMABLE', { acknowledgementState: 1 }, 'VERIFIED', []],
    [2, 'NON_CONSUMABLE', {}, 'PENDING', []],
    [1, 'NON_CONSUMABLE', {}, 'REJECTED', []],
  ] as const)('purchaseState %i %s %j -> %s, then %j', (purchaseState, kind, over, status, followUps) => {
    const reading = fromProductPurchase({ purchaseState, orderId: 'GPA.9', purchaseTimeMillis: '1767225600000', quantity: 3, purchaseType: 0, ...over }, 'sku', kind, ctx);
    expect(reading.status).toBe(status);
    if (reading.status !== 'VERIFIED') return;
    expect(reading.purchase).toMatchObject({ transactionId: 'GPA.9', lineageId: 'tok', quantity: 3, environment: 'SANDBOX', purchasedAt: new Date(1767225600000) });
    expect(reading.followUps.map((f) => f.kind)).toEqual(followUps);
  });
});
