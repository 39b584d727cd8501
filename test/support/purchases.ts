// Builds verified, normalized purchases as a store adapter would produce them.
import { PLAIN_PURCHASE_FACTS, type NormalizedPurchase } from '../../src/domain/types.js';

let counter = 0;

export function purchase(overrides: Partial<NormalizedPurchase> = {}): NormalizedPurchase {
  counter++;
  const transactionId = overrides.transactionId ?? `tx-${process.pid}-${counter}`;
  const purchasedAt = overrides.purchasedAt ?? new Date('2026-11-01T00:00:00Z');
  return {
    ...PLAIN_PURCHASE_FACTS,
    store: 'APP_STORE',
    environment: 'PRODUCTION',
    productId: 'com.example.app.pro.monthly',
    transactionId,
    lineageId: overrides.lineageId ?? transactionId,
    purchasedAt,
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
