// One DropTail on this node: its sources feed the aggregator; every window (and whenever the
// aggregator is full) the aggregated drops and the sources' read positions go to the bounded send
// queue; the sender pushes them to the controller. A failing source is retried with backoff and
// never stops the others.
//
// Delivery: at least once. A source's position is saved only when the drops read before it have
// left the queue (accepted, refused as malformed, or shed and counted), so a crash or restart
// re-reads, and may re-send, what was still queued or in flight; the controller de-duplicates a
// re-sent aggregated drop by (node, source, dropKey, firstSeen). A graceful stop first tries to
// send what is queued, for a few seconds.
import type { DropSourceType, PacketDrop } from '../../apis/drops.js';
import { errorMessage, loggerFor, type Logger } from '../../util/log.js';
import { DropAggregator, type AggregatorOptions } from './aggregator.js';
import { sleep } from '../../util/sleep.js';
import { Backoff, type BackoffOptions } from '../../util/backoff.js';
import { dropsSeen as dropsSeenMetric, forgetDropTailMetrics, kernelDuplicates, recordsRead, sourceGaps, sourceHealthy, sourceSkippedBytes } from './metrics.js';
import { LoggedDropMatcher } from './logged.js';
import { DropQueue, type CheckpointMark, type QueueOptions } from './queue.js';
import { DropSender, type BatchPoster, type SenderOptions } from './sender.js';
import type { DropSourceRunner, SourceEvents } from './sources/types.js';

export interface SourceHealth {
  type: DropSourceType;
  healthy: boolean;
  message: string;
  /** Times lines were skipped (a rotated log file deleted before it was read), and the last. */
  gaps?: number;
  lastGap?: string;
}

/** What this node's report to the controller shows. */
export interface PipelineSnapshot {
  sources: SourceHealth[];
  dropsSeen: number;
  lastError?: string;
}

export interface DropTailPipelineOptions {
  name: string;
  node: string;
  sources: DropSourceRunner[];
  poster: BatchPoster;
  /** Aggregation window. Default 1 s. */
  windowMs?: number;
  aggregator?: AggregatorOptions;
  queue?: QueueOptions;
  sender?: Pick<SenderOptions, 'maxBatchDrops' | 'maxBatchBytes' | 'retryBackoff' | 'refusedBackoff'>;
  /** Restarts of a failed source. Default 1 s .. 60 s. */
  sourceBackoff?: BackoffOptions;
  /** dropsSeen carried over from the last run (seen.ts), so the count survives agent restarts. */
  initialDropsSeen?: number;
  /** Called when anything the status entry shows has changed. */
  onChange?: () => void;
  /** How long a kernel drop waits for a logged twin (with kernel and log sources). */
  matcher?: { holdMs?: number };
}

/** How often held kernel drops are looked at. */
const MATCH_TICK_MS = 100;

export const DEFAULT_WINDOW_MS = 1_000;
/** A source that ran this long before failing starts its backoff afresh. */
const SOURCE_STABLE_MS = 30_000;
/** How long a graceful stop tries to send what is queued. */
export const DEFAULT_DRAIN_MS = 3_000;

export class DropTailPipeline {
  readonly name: string;
  readonly sender: DropSender;
  private readonly queue: DropQueue;
  private readonly aggregator: DropAggregator;
  private readonly health = new Map<string, SourceHealth>();
  private readonly log: Logger;
  private readonly abort = new AbortController();
  private readonly tasks: Promise<void>[] = [];
  private timer: NodeJS.Timeout | undefined;
  /**
   * Records read and drops seen per source since the last window, added to the Prometheus counters
   * once per window: prom-client builds a label key string on every inc(), which at 50,000 lines/s
   * was a tenth of all the agent allocated.
   */
  private readonly unpublished = new Map<string, { records: number; drops: number }>();
  private seen: number;
  private stopping: Promise<void> | undefined;
  /** With a kernel source beside a log source: one packet seen by both is counted once. */
  private readonly matcher: LoggedDropMatcher | undefined;
  private matchTimer: NodeJS.Timeout | undefined;
  private matchedPublished = 0;

  constructor(private readonly opts: DropTailPipelineOptions) {
    this.name = opts.name;
    this.log = loggerFor('droptail-agent', opts.name);
    this.aggregator = new DropAggregator(opts.aggregator);
    this.queue = new DropQueue(opts.queue, (mark) => this.commit(mark));
    this.sender = new DropSender({ ...opts.sender, name: opts.name, node: opts.node, queue: this.queue, poster: opts.poster, onError: () => this.changed() });
    this.seen = opts.initialDropsSeen ?? 0;
    for (const source of opts.sources) {
      this.health.set(source.id, { type: source.type, healthy: false, message: 'starting' });
      this.unpublished.set(source.id, { records: 0, drops: 0 });
      sourceHealthy.set({ droptail: opts.name, source: source.id }, 0);
    }
    const kernel = opts.sources.some((s) => s.type === 'kernel');
    const logged = opts.sources.some((s) => s.type !== 'kernel');
    if (kernel && logged) this.matcher = new LoggedDropMatcher(opts.matcher);
  }

  start(): void {
    const signal = this.abort.signal;
    for (const source of this.opts.sources) this.tasks.push(this.supervise(source, signal));
    this.tasks.push(this.sender.run(signal));
    this.timer = setInterval(() => this.flush(), this.opts.windowMs ?? DEFAULT_WINDOW_MS);
    // In the check phase, after the poll phase: when the event loop was blocked longer than the
    // hold, the logged twins waiting on their sockets are read before the held drops are let go.
    if (this.matcher) this.matchTimer = setInterval(() => setImmediate(() => this.releaseHeld(this.matcher!.released())), MATCH_TICK_MS);
    this.log.info('started', { sources: this.opts.sources.map((s) => s.id) });
  }

  /** Stops the sources, hands the last window to the queue and tries to send it until drainMs. */
  stop(drainMs = DEFAULT_DRAIN_MS): Promise<void> {
    this.stopping ??= this.doStop(drainMs);
    return this.stopping;
  }

  snapshot(): PipelineSnapshot {
    const snap: PipelineSnapshot = { sources: [...this.health.values()].map((h) => ({ ...h })), dropsSeen: this.seen };
    const error = this.sender.error;
    if (error !== undefined) snap.lastError = error;
    return snap;
  }

  /** Aggregated drops waiting to be sent. */
  get queued(): number {
    return this.queue.drops;
  }

  private async doStop(drainMs: number): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.matchTimer);
    this.abort.abort();
    this.queue.wakeAll();
    await Promise.all(this.tasks);
    if (this.matcher) this.releaseHeld(this.matcher.releaseAll());
    this.flush();
    await this.sender.drain(Date.now() + drainMs);
    if (this.queue.drops > 0) this.log.warn('stopped with drops still queued; they are read again after a restart', { queued: this.queue.drops });
    forgetDropTailMetrics(this.name, this.opts.sources.map((s) => s.id));
    this.log.info('stopped');
  }

  /** Hands the window's aggregated drops and the sources' positions to the send queue. */
  private flush(): void {
    this.publishCounts();
    const drops = this.aggregator.flush();
    const mark: CheckpointMark = new Map();
    for (const source of this.opts.sources) {
      const commit = source.mark();
      if (commit !== undefined) mark.set(source.id, commit);
    }
    if (drops.length === 0 && mark.size === 0) return;
    this.sender.enqueue(drops, mark);
  }

  private publishCounts(): void {
    if (this.matcher && this.matcher.matched > this.matchedPublished) {
      kernelDuplicates.inc({ droptail: this.name }, this.matcher.matched - this.matchedPublished);
      this.matchedPublished = this.matcher.matched;
    }
    for (const [source, counts] of this.unpublished) {
      const labels = { droptail: this.name, source };
      if (counts.records > 0) recordsRead.inc(labels, counts.records);
      if (counts.drops > 0) dropsSeenMetric.inc(labels, counts.drops);
      counts.records = counts.drops = 0;
    }
  }

  private commit(mark: CheckpointMark): void {
    for (const [source, save] of mark) {
      save().catch((err: unknown) => this.log.error('saving the read position failed', { source, error: errorMessage(err) }));
    }
  }

  /** Runs a source until the pipeline stops, restarting it with backoff when it fails. */
  private async supervise(source: DropSourceRunner, signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ initialMs: 1_000, maxMs: 60_000, ...this.opts.sourceBackoff });
    const counts = this.unpublished.get(source.id)!;
    const events: SourceEvents = {
      record: () => {
        counts.records += 1;
      },
      drop: (drop) => {
        const matcher = this.matcher;
        if (matcher) {
          if (source.type !== 'kernel') matcher.noteLogged(drop);
          else if (LoggedDropMatcher.mayBeLogged(drop) && matcher.hold(drop) !== 'pass') return;
        }
        this.accept(drop, source.type, counts);
      },
      health: (healthy, message) => this.setHealth(source, healthy, message),
      skipped: (what, bytes) => this.recordGap(source, what, bytes),
    };
    while (!signal.aborted) {
      const started = Date.now();
      let failure: string;
      try {
        await source.run(signal, events);
        if (signal.aborted) break;
        failure = 'stopped unexpectedly';
      } catch (err) {
        if (signal.aborted) break;
        failure = errorMessage(err);
      }
      if (Date.now() - started > SOURCE_STABLE_MS) backoff.reset();
      const delayMs = backoff.next();
      this.setHealth(source, false, failure);
      this.log.warn('source failed, retrying', { source: source.id, error: failure, retryInMs: delayMs });
      await sleep(delayMs, signal);
    }
  }

  private accept(drop: PacketDrop, type: DropSourceType, counts: { drops: number }): void {
    this.seen += 1;
    counts.drops += 1;
    if (this.aggregator.add(drop, type)) this.flush();
  }

  /** Kernel drops no logged drop stood for: counted now, under the kernel source. */
  private releaseHeld(drops: PacketDrop[]): void {
    if (drops.length === 0) return;
    const kernel = this.opts.sources.find((s) => s.type === 'kernel');
    const counts = kernel ? this.unpublished.get(kernel.id) : undefined;
    if (!counts) return;
    for (const drop of drops) this.accept(drop, 'kernel', counts);
  }

  /** Lines this source will never read: counted in its status entry, the metrics and the log. */
  private recordGap(source: DropSourceRunner, what: string, bytes: number | undefined): void {
    sourceGaps.inc({ droptail: this.name, source: source.id });
    if (bytes) sourceSkippedBytes.inc({ droptail: this.name, source: source.id }, bytes);
    this.log.warn('drop source skipped records', { source: source.id, skipped: what, bytes });
    const current = this.health.get(source.id);
    if (!current) return;
    const lastGap = `${new Date().toISOString()}: ${what}`;
    this.health.set(source.id, { ...current, gaps: (current.gaps ?? 0) + 1, lastGap: lastGap.length > 1024 ? `${lastGap.slice(0, 1021)}...` : lastGap });
    this.changed();
  }

  private setHealth(source: DropSourceRunner, healthy: boolean, message: string): void {
    const current = this.health.get(source.id);
    const text = message.length > 1024 ? `${message.slice(0, 1021)}...` : message;
    if (current?.healthy === healthy && current.message === text) return;
    this.health.set(source.id, { ...current, type: source.type, healthy, message: text });
    sourceHealthy.set({ droptail: this.name, source: source.id }, healthy ? 1 : 0);
    this.changed();
  }

  private changed(): void {
    this.opts.onChange?.();
  }
}
