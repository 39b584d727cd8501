// An in-memory token bucket: at most `burst` at once, refilled at `perSecond`. Pure: the caller passes the
// (monotonic) time, so it can be tested without waiting.

export type Take = { ok: true } | { ok: false; retryAfterSeconds: number };

export class TokenBucket {
  private tokens: number;
  private lastMs: number;

  constructor(
    readonly perSecond: number,
    readonly burst: number,
    nowMs: number,
  ) {
    if (!(perSecond > 0) || !(burst >= 1)) throw new Error('a token bucket needs a positive rate and a burst of at least 1');
    this.tokens = burst;
    this.lastMs = nowMs;
  }

  /** Takes one token if there is one; otherwise says how long until there is (whole seconds, at least 1). */
  take(nowMs: number): Take {
    // A clock that stepped back refills nothing rather than draining the bucket.
    const elapsedMs = Math.max(0, nowMs - this.lastMs);
    this.tokens = Math.min(this.burst, this.tokens + (elapsedMs / 1000) * this.perSecond);
    this.lastMs = Math.max(this.lastMs, nowMs);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - this.tokens) / this.perSecond)) };
  }
}
