// A token bucket: up to `burst` at once, refilled at `ratePerSecond`. Over any span of t seconds
// it lets through at most burst + ratePerSecond * t.

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    now = Date.now(),
  ) {
    if (!(ratePerSecond > 0) || !(burst >= 1)) throw new Error(`a token bucket needs a positive rate and a burst of at least 1 (got ${ratePerSecond}/s, burst ${burst})`);
    this.tokens = burst;
    this.last = now;
  }

  /** Takes one token if there is one. */
  take(now = Date.now()): boolean {
    if (!this.hasToken(now)) return false;
    this.tokens -= 1;
    return true;
  }

  /** Whether take() would succeed now, without taking (to check a second bucket first). */
  hasToken(now = Date.now()): boolean {
    this.refill(now);
    return this.tokens >= 1;
  }

  /** Milliseconds until take() can succeed (0 when it can now). */
  msUntilNext(now = Date.now()): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.ratePerSecond) * 1000);
  }

  private refill(now: number): void {
    if (now > this.last) this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSecond);
    this.last = Math.max(this.last, now);
  }
}
