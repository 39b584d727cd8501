// Builds verified, normalized purchases as a store adapter would produce them.
import type { NormalizedPurchase } from '../../src/domain/types.js';

let counter = 0;

export function purchase(overrides: Partial<NormalizedPurchase> = {}): NormalizedPurchase {
  counter++;
  const transactionId = overrides.transactionId ?? `tx-${process.pid}-${counter}`;
  const purchasedAt = overrides.purchasedAt ?? new Date('2026-11-01T00:00:00Z');
  return {
    store: 'APP_STORE',
    environment: 'PRODUCTION',
    productId: 'com.example.app.pro.monthly',
    transactionId,
    lineageId: overrides.lineageId ?? transactionId,
    purchaseToken: null,
    previousLineageToken: null,
    purchasedAt,
    expiresAt: null,
    autoRenew: null,
    billingRetry: false,
    gracePeriodExpiresAt: null,
    onHold: false,
    paused: false,
    autoResumeAt: null,
    expirationReason: null,
    revokedAt: null,
    revocationReason: null,
    ownership: 'PURCHASED',
    quantity: 1,
    orderToken: null,
    offerType: null,
    price: null,
    observedAt: overrides.observedAt ?? purchasedAt,
    raw: { fake: true, transactionId },
    ...overrides,
  };
}

const DAY = 86_400_000;

/** A monthly App Store subscription period starting at `start`. */
export function monthly(start: Date, overrides: Partial<NormalizedPurchase> = {}): NormalizedPurchase {
  return purchase({
    productId: 'com.example.app.pro.monthly',
    purchasedAt: start,
    expiresAt: new Date(start.getTime() + 30 * DAY),
    autoRenew: true,
    observedAt: start,
    ...overrides,
  });
}
