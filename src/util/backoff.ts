// The one retry backoff of Netwarden: exponential with full jitter (AWS architecture blog,
// "Exponential Backoff And Jitter"): attempt n waits a random time in [0, min(max, initial·2ⁿ)).
// The randomness spreads clients that failed at the same moment (every agent when the controller
// restarts, every informer when the API server does) over the whole window instead of letting them
// retry in lockstep, and the growing ceiling keeps a long outage from becoming a hot loop.
// A caller that must never retry sooner than some time (a refusal that only an RBAC change can
// cure) gives a floor: the delay is then spread over [floor, window) instead.

/** The window of attempt n (0-based): initial·2ⁿ capped at max, without overflowing to Infinity. */
export function backoffCeiling(attempt: number, initialMs: number, maxMs: number): number {
  const exp = initialMs * 2 ** Math.max(0, Math.min(attempt, 1024));
  return Number.isFinite(exp) ? Math.min(exp, maxMs) : maxMs;
}

/** A random delay in [minMs, window) for attempt n; `random` in [0, 1) is injectable for tests. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random, minMs = 0): number {
  const ceiling = backoffCeiling(attempt, initialMs, maxMs);
  const floor = Math.min(Math.max(0, minMs), ceiling);
  return floor + random() * (ceiling - floor);
}

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  /** Never less than this (at most initialMs); default 0: full jitter from zero. */
  minMs?: number;
  /** Random number in [0, 1); injectable for tests. */
  random?: () => number;
}

/** Counts failures and hands out the delay before the next retry, until reset(). */
export class Backoff {
  private attempt = 0;
  readonly initialMs: number;
  readonly maxMs: number;
  readonly minMs: number;
  private readonly random: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = Math.max(1, opts.initialMs ?? 500);
    this.maxMs = Math.max(this.initialMs, opts.maxMs ?? 30_000);
    this.minMs = Math.min(this.initialMs, Math.max(0, opts.minMs ?? 0));
    this.random = opts.random ?? Math.random;
  }

  /** The delay (whole ms) before the next retry; each call doubles the window up to maxMs. */
  next(): number {
    return Math.round(backoffDelay(this.attempt++, this.initialMs, this.maxMs, this.random, this.minMs));
  }

  /** Failures since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}
