// Exponential backoff with "equal jitter": attempt n waits a random time in
// [base·2ⁿ/2, base·2ⁿ], capped at max. The random half keeps many agents that lost the controller
// at the same moment from retrying in lockstep; the lower half bound keeps the delay growing.

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  /** Random number in [0, 1); injectable for tests. */
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  readonly initialMs: number;
  readonly maxMs: number;
  private readonly random: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = Math.max(1, opts.initialMs ?? 500);
    this.maxMs = Math.max(this.initialMs, opts.maxMs ?? 30_000);
    this.random = opts.random ?? Math.random;
  }

  /** The delay before the next retry; each call doubles the ceiling up to maxMs. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt += 1;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  /** Failures since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}
