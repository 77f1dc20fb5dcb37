// The client-side budget of the controller's Event writes, so that a drop flood cannot hurt the API
// server, after client-go's EventCorrelator (tools/record/events_cache.go):
//  - one token bucket for ALL drops of the controller (--event-qps, --event-burst): every create
//    or patch of an Event takes a token, aggregated ones too, so over any span of t seconds the
//    controller writes at most burst + qps * t Events;
//  - per Pod, a spam filter like client-go's EventSourceObjectSpamFilter (--event-pod-qps,
//    --event-pod-burst; client-go's 1/300 and 25), so one noisy Pod cannot use the whole budget.
// What is over budget is not lost from view: it is folded, per DropTail and Pod, into one pending
// aggregate (drops, packets, first and last time, the last drop), and written as ONE aggregated
// Event per Pod (like client-go's EventAggregator, "(combined from similar events)") when a global
// token is free and the Pod's aggregate was not written in the last foldIntervalMs. While an
// aggregate waits for a global token, every new drop folds too: the backlog is written before new
// pairs, and a flood turns into one Event per noisy Pod every foldIntervalMs at most.
import { ExpiringLru } from '../../util/lru.js';
import { TokenBucket } from '../../util/tokenbucket.js';
import { eventsSuppressed } from './metrics.js';

/** Why a write was not made: which budget was used up. */
export type Suppression = 'global_budget' | 'pod_budget';

export interface EventBudgetOptions {
  /** Event writes per second for the whole controller. */
  qps: number;
  burst: number;
  /** Event writes per second for one Pod. */
  podQps: number;
  podBurst: number;
  /** An aggregate is written at most once per this interval per DropTail and Pod. */
  foldIntervalMs?: number;
  /** Pods whose bucket and aggregate are kept (least recently used forgotten first). */
  maxPods?: number;
  now?: () => number;
}

export const DEFAULT_EVENT_BUDGET = { qps: 10, burst: 50, podQps: 1 / 300, podBurst: 25 } as const;

/** One write that asks for the budget; if it is over, this is what gets folded. */
export interface FoldInput<T> {
  /** The Pod ("namespace/name"): whose spam filter applies. */
  pod: string;
  /** The aggregate it folds into: DropTail and Pod. */
  key: string;
  /** The DropTail, to forget its aggregates when it is deleted. */
  owner: string;
  packets: number;
  firstSeen: string;
  lastSeen: string;
  sample: T;
}

/** What an aggregated Event reports: the writes folded since the last one, and the last drop. */
export interface Fold<T> {
  key: string;
  owner: string;
  reason: Suppression;
  /** Writes (drops on this Pod) not made. */
  drops: number;
  packets: number;
  firstSeen: string;
  lastSeen: string;
  last: T;
}

export class EventBudget<T> {
  private readonly global: TokenBucket;
  private readonly pods: ExpiringLru<string, TokenBucket>;
  private readonly podBucketTtlMs: number;
  /** Aggregates waiting to be written, oldest first. */
  private readonly pending = new Map<string, Fold<T>>();
  /** When each aggregate was last written (entries expire after foldIntervalMs: ready again). */
  private readonly written: ExpiringLru<string, true>;
  private readonly foldIntervalMs: number;
  private readonly maxPods: number;
  private readonly now: () => number;
  /** A ready aggregate waits for a global token: new drops fold behind it. */
  private backlog = false;

  constructor(readonly opts: EventBudgetOptions) {
    this.now = opts.now ?? Date.now;
    this.global = new TokenBucket(opts.qps, opts.burst, this.now());
    this.maxPods = opts.maxPods ?? 50_000;
    this.pods = new ExpiringLru(this.maxPods);
    this.written = new ExpiringLru(this.maxPods);
    // After this long a Pod's bucket is full again: forgetting it changes nothing.
    this.podBucketTtlMs = (opts.podBurst / opts.podQps) * 1000;
    this.foldIntervalMs = opts.foldIntervalMs ?? 10_000;
  }

  /** true: write it (a token of both buckets is taken); false: it was folded and counted. */
  admit(input: FoldInput<T>): boolean {
    const now = this.now();
    const folding = this.pending.get(input.key);
    if (folding) return this.fold(input, folding.reason, now);
    if (this.backlog) return this.fold(input, 'global_budget', now);
    const bucket = this.podBucket(input.pod, now);
    if (!bucket.hasToken(now)) return this.fold(input, 'pod_budget', now);
    if (!this.global.take(now)) return this.fold(input, 'global_budget', now);
    bucket.take(now);
    return true;
  }

  /** A second request of an admitted write (the Event had expired: create it anew). */
  admitRetry(input: FoldInput<T>): boolean {
    const now = this.now();
    return this.global.take(now) || this.fold(input, 'global_budget', now);
  }

  /**
   * The aggregates to write now, oldest first, a global token taken for each; they leave the
   * pending set (restore() puts back one whose write failed).
   */
  takeDue(): Array<Fold<T>> {
    const now = this.now();
    const due: Array<Fold<T>> = [];
    this.backlog = false;
    for (const [key, fold] of this.pending) {
      if (this.written.get(key, now)) continue;
      if (!this.global.take(now)) {
        this.backlog = true;
        break;
      }
      this.pending.delete(key);
      this.written.set(key, true, this.foldIntervalMs, now);
      due.push(fold);
    }
    return due;
  }

  /** A failed aggregate write: its drops go back, merged with what folded meanwhile. */
  restore(fold: Fold<T>): void {
    const current = this.pending.get(fold.key);
    this.pending.delete(fold.key);
    this.pending.set(fold.key, current ? merge(fold, current) : fold);
  }

  /** Aggregates waiting (for tests and the log). */
  get pendingCount(): number {
    return this.pending.size;
  }

  forget(owner: string): void {
    for (const [key, fold] of this.pending) if (fold.owner === owner) this.pending.delete(key);
  }

  private podBucket(pod: string, now: number): TokenBucket {
    let bucket = this.pods.get(pod, now);
    if (!bucket) bucket = new TokenBucket(this.opts.podQps, this.opts.podBurst, now);
    this.pods.set(pod, bucket, this.podBucketTtlMs, now);
    return bucket;
  }

  /** Always false: the write is not made, but counted in the metric and its aggregate. */
  private fold(input: FoldInput<T>, reason: Suppression, now: number): false {
    eventsSuppressed.inc({ reason });
    const folded: Fold<T> = { key: input.key, owner: input.owner, reason, drops: 1, packets: input.packets, firstSeen: input.firstSeen, lastSeen: input.lastSeen, last: input.sample };
    const current = this.pending.get(input.key);
    if (current) {
      this.pending.set(input.key, merge(current, folded));
      return false;
    }
    if (this.pending.size >= this.maxPods) this.pending.delete(this.pending.keys().next().value!);
    this.pending.set(input.key, folded);
    if (!this.written.get(input.key, now)) this.backlog = this.backlog || !this.global.hasToken(now);
    return false;
  }
}

/** `later` folded after `earlier`: counts added, times widened, the later drop kept as the last. */
function merge<T>(earlier: Fold<T>, later: Fold<T>): Fold<T> {
  return {
    ...earlier,
    drops: earlier.drops + later.drops,
    packets: earlier.packets + later.packets,
    firstSeen: Date.parse(earlier.firstSeen) <= Date.parse(later.firstSeen) ? earlier.firstSeen : later.firstSeen,
    lastSeen: Date.parse(earlier.lastSeen) >= Date.parse(later.lastSeen) ? earlier.lastSeen : later.lastSeen,
    last: later.last,
  };
}
