// Keyed, rate-limited work queue with client-go semantics:
//  - a key waiting in the queue is stored once however often it is added (dirty set);
//  - a key is handed to at most one worker at a time: added while being processed, it is marked
//    dirty and queued again when the worker calls done();
//  - addAfter() delays an add (earliest pending time wins), addRateLimited() delays it by a
//    per-key exponential backoff (the shared one, src/util/backoff.ts: full jitter) that forget()
//    resets.

import { backoffCeiling, backoffDelay } from '../util/backoff.js';
import { errorMessage, loggerFor } from '../util/log.js';
import { workqueueAdds, workqueueDepth, workqueueRetries } from './metrics.js';

/** Decides how long a key waits before it is retried. */
export interface RateLimiter {
  /** Delay for the next retry of key; counts one more failure. */
  when(key: string): number;
  /** Resets the failure count of key. */
  forget(key: string): void;
  /** Failures counted for key since the last forget(). */
  numRequeues(key: string): number;
}

export interface ExponentialBackoffOptions {
  /** First retry delay; client-go default 5ms. */
  baseDelayMs?: number;
  /** Largest delay; client-go default 1000s. */
  maxDelayMs?: number;
  /** Full jitter (a random delay up to the exponential one), default true; false: the exponential delay itself. */
  jitter?: boolean;
  /** Source of randomness in [0,1), for tests. */
  random?: () => number;
}

/** Per-key exponential failure backoff (client-go ItemExponentialFailureRateLimiter) with full jitter. */
export class ExponentialBackoffRateLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly jitter: boolean;
  private readonly random: () => number;

  constructor(opts: ExponentialBackoffOptions = {}) {
    this.baseDelayMs = opts.baseDelayMs ?? 5;
    this.maxDelayMs = opts.maxDelayMs ?? 1_000_000;
    this.jitter = opts.jitter ?? true;
    this.random = opts.random ?? Math.random;
  }

  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    return this.jitter ? backoffDelay(n, this.baseDelayMs, this.maxDelayMs, this.random) : backoffCeiling(n, this.baseDelayMs, this.maxDelayMs);
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

export interface WorkQueueOptions extends ExponentialBackoffOptions {
  /** Label of the queue's metrics and logs. */
  name?: string;
  /** Replaces the default exponential rate limiter. */
  rateLimiter?: RateLimiter;
}

/** Processes one key; a thrown error is logged by run() — retries are the handler's business. */
export type KeyHandler = (key: string) => Promise<void>;

export class WorkQueue {
  readonly name: string;
  private readonly rateLimiter: RateLimiter;
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  /** Delayed keys: when they become ready and the timer that adds them. */
  private readonly waiting = new Map<string, { readyAt: number; timer: NodeJS.Timeout }>();
  private readonly getters: Array<(key: string | undefined) => void> = [];
  private readonly idleWaiters: Array<() => void> = [];
  private shuttingDown = false;
  private workers: Promise<void>[] = [];
  private readonly log;

  constructor(opts: WorkQueueOptions = {}) {
    this.name = opts.name ?? 'default';
    this.rateLimiter = opts.rateLimiter ?? new ExponentialBackoffRateLimiter(opts);
    this.log = loggerFor('workqueue', this.name);
    workqueueDepth.set({ name: this.name }, 0);
  }

  /** Queues key unless it already waits; a key being processed is re-queued after done(). */
  add(key: string): void {
    if (this.shuttingDown) return;
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    workqueueAdds.inc({ name: this.name });
    if (!this.processing.has(key)) this.handOut(key);
  }

  /** Adds key once ms have passed; if key is already delayed, the earlier time wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const readyAt = Date.now() + ms;
    const existing = this.waiting.get(key);
    if (existing) {
      if (existing.readyAt <= readyAt) return;
      clearTimeout(existing.timer);
    }
    const timer = setTimeout(() => {
      this.waiting.delete(key);
      this.add(key);
    }, ms);
    this.waiting.set(key, { readyAt, timer });
  }

  /** Adds key after its rate-limited backoff delay (counts one more failure). */
  addRateLimited(key: string): void {
    if (this.shuttingDown) return;
    workqueueRetries.inc({ name: this.name });
    this.addAfter(key, this.rateLimiter.when(key));
  }

  /** Clears the failure history of key (call after a success). */
  forget(key: string): void {
    this.rateLimiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.rateLimiter.numRequeues(key);
  }

  /** Keys waiting to be handed to a worker (delayed keys are not counted). */
  len(): number {
    return this.queue.length;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Next key, waiting for one; undefined once the queue shuts down. Call done(key) afterwards. */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.take(key);
      this.updateDepth();
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.getters.push(resolve));
  }

  /** Marks key processed; if it was added meanwhile it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key) && !this.shuttingDown) this.handOut(key);
    if (this.processing.size === 0) this.idleWaiters.splice(0).forEach((w) => w());
  }

  /** Starts `workers` loops that take keys and run handler on them until shutDown(). */
  run(handler: KeyHandler, workers = 1): void {
    for (let i = 0; i < workers; i++) this.workers.push(this.worker(handler));
  }

  /**
   * Stops handing out keys, drops waiting and delayed keys and resolves once every key being
   * processed is done (drain). Adds after this are ignored.
   */
  async shutDown(): Promise<void> {
    this.shuttingDown = true;
    for (const { timer } of this.waiting.values()) clearTimeout(timer);
    this.waiting.clear();
    this.queue.splice(0);
    this.updateDepth();
    this.getters.splice(0).forEach((g) => g(undefined));
    if (this.processing.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await Promise.all(this.workers);
    this.workers = [];
  }

  /** Gives a dirty key to a waiting worker, or queues it. */
  private handOut(key: string): void {
    const getter = this.getters.shift();
    if (getter) {
      this.take(key);
      getter(key);
    } else {
      this.queue.push(key);
      this.updateDepth();
    }
  }

  private take(key: string): void {
    this.processing.add(key);
    this.dirty.delete(key);
  }

  private updateDepth(): void {
    workqueueDepth.set({ name: this.name }, this.queue.length);
  }

  private async worker(handler: KeyHandler): Promise<void> {
    for (;;) {
      const key = await this.get();
      if (key === undefined) return;
      try {
        await handler(key);
      } catch (err) {
        this.log.error('work item handler failed', { key, error: errorMessage(err) });
      } finally {
        this.done(key);
      }
    }
  }
}
