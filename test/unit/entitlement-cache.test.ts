// The entitlement cache is bounded by memory, not by how many customers it holds: long ids or customers with
// many sources cannot grow it past its byte budget.
import { describe, expect, it } from 'vitest';
import { EntitlementReader } from '../../src/services/entitlement-reader.js';

const source = (i: number) => ({
  entitlement: `e${i}`,
  productId: 'p',
  store: 'APP_STORE',
  environment: 'PRODUCTION',
  state: 'ACTIVE',
  purchasedAt: '2026-01-01T00:00:00.000Z',
  expiresAt: null,
  gracePeriodExpiresAt: null,
  revokedAt: null,
});

/** A lookup that answers every id with a customer holding `sources` sources (or none: unknown customers). */
const lookup = (sources: number | null) => async (appUserId: string) =>
  sources === null ? undefined : { id: `id-${appUserId}`, entitlement_sources: Array.from({ length: sources }, (_, i) => source(i)), revision: 1 };

describe('entitlement cache memory bound', () => {
  it.each([
    // budget, sources per customer (null: unknown customers, cached as null), id length, reads
    [64 * 1024, null, 200, 10_000],
    [64 * 1024, 3, 20, 10_000],
    [1024 * 1024, 50, 255, 5_000],
    [256 * 1024, 0, 255, 20_000],
  ])('a %i byte budget holds with %s sources and %i-character ids over %i reads', async (budget, sources, idLength, reads) => {
    const reader = new EntitlementReader(lookup(sources), 60_000, budget);
    let peak = 0;
    for (let i = 0; i < reads; i++) {
      await reader.read(`${i}`.padStart(idLength, 'x'));
      peak = Math.max(peak, reader.heldBytes);
    }
    expect(peak).toBeLessThanOrEqual(budget);
    expect(reader.heldBytes).toBeGreaterThan(budget / 2);
  });

  it('keeps the newest entries and serves them from memory', async () => {
    let calls = 0;
    const reader = new EntitlementReader(async (id) => (calls++, { id, entitlement_sources: [], revision: 1 }), 60_000, 10_000);
    for (let i = 0; i < 1_000; i++) await reader.read(`user-${i}`);
    calls = 0;
    await reader.read('user-999');
    expect(calls).toBe(0);
    await reader.read('user-0');
    expect(calls).toBe(1);
  });

  it('gives back the bytes of invalidated entries', async () => {
    const reader = new EntitlementReader(lookup(2), 60_000, 1024 * 1024);
    for (let i = 0; i < 100; i++) await reader.read(`u${i}`);
    const held = reader.heldBytes;
    reader.invalidate('u5');
    expect(reader.heldBytes).toBeLessThan(held);
    reader.invalidateAll();
    expect(reader.heldBytes).toBe(0);
  });
});
