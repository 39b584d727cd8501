import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../src/domain/token-bucket.js';

describe('token bucket', () => {
  it('lets a burst through, then one per refill interval', () => {
    const bucket = new TokenBucket(10, 100, 0);
    const first = Array.from({ length: 150 }, () => bucket.take(0).ok);
    expect(first.filter(Boolean)).toHaveLength(100);
    expect(bucket.take(50)).toEqual({ ok: false, retryAfterSeconds: 1 });
    expect(bucket.take(100).ok).toBe(true);
    expect(bucket.take(100).ok).toBe(false);
  });

  it('never holds more than the burst, however long it was idle', () => {
    const bucket = new TokenBucket(10, 5, 0);
    const taken = Array.from({ length: 20 }, () => bucket.take(3_600_000).ok);
    expect(taken.filter(Boolean)).toHaveLength(5);
  });

  it('refills nothing when the clock steps back', () => {
    const bucket = new TokenBucket(1, 1, 10_000);
    expect(bucket.take(10_000).ok).toBe(true);
    expect(bucket.take(0).ok).toBe(false);
    expect(bucket.take(10_500).ok).toBe(false);
    expect(bucket.take(11_000).ok).toBe(true);
  });

  it('says how long until the next token at a slow rate', () => {
    const bucket = new TokenBucket(0.1, 1, 0);
    bucket.take(0);
    expect(bucket.take(0)).toEqual({ ok: false, retryAfterSeconds: 10 });
  });
});
