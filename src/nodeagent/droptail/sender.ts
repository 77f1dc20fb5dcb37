// Sends the queue's aggregated drops to the controller, one batch at a time, in queue order.
// Retries: unreachable / 5xx with exponential backoff and jitter (honouring Retry-After); 401, 403
// and 404 with a long backoff (RBAC or the controller's cache must change first, so no hot loop);
// a batch refused as malformed (400) or too large as a single drop (413) is given up and logged.
import type { AggregatedDrop } from '../../apis/drops.js';
import { errorMessage, loggerFor, type Logger } from '../../util/log.js';
import { sleep } from '../../util/sleep.js';
import { Backoff, type BackoffOptions } from '../../util/backoff.js';
import { encodeDropBatch } from './batchbody.js';
import type { SendOutcome } from './client.js';
import { batchesSent, queueBytes, queueDrops, shedDrops } from './metrics.js';
import type { CheckpointMark, DropQueue, ShedResult } from './queue.js';
import { aborted } from './sources/types.js';

/** What posts a batch: DropBatchClient, or a test double of the network. */
export interface BatchPoster {
  /** Posts the JSON of one DropBatch (encodeDropBatch). */
  post(body: Buffer): Promise<SendOutcome>;
  resetConnections(): void;
}

export interface SenderOptions {
  /** The DropTail's name (metrics label, log key). */
  name: string;
  node: string;
  queue: DropQueue;
  poster: BatchPoster;
  /** Default 1,000 aggregated drops per batch. */
  maxBatchDrops?: number;
  /** Default 1 MiB per batch. */
  maxBatchBytes?: number;
  /** Unreachable / 5xx. Default 500 ms .. 30 s. */
  retryBackoff?: BackoffOptions;
  /** 401 / 403 / 404. Default 5 s .. 5 min. */
  refusedBackoff?: BackoffOptions;
  /** Told whenever the sender's error changes (undefined once a batch is accepted again). */
  onError?: (message: string | undefined) => void;
  log?: Logger;
}

export const DEFAULT_MAX_BATCH_DROPS = 1_000;
export const DEFAULT_MAX_BATCH_BYTES = 1024 * 1024;

/** Full jitter, but never sooner than half the first delay: a refusal waits for an RBAC or cache
 * change, and an agent that lost the controller must not hammer the replica that answers 503. */
function withHalfFloor(opts: BackoffOptions & { initialMs: number }): Backoff {
  return new Backoff({ minMs: opts.initialMs / 2, ...opts });
}

export class DropSender {
  private readonly queue: DropQueue;
  private readonly retryBackoff: Backoff;
  private readonly refusedBackoff: Backoff;
  private readonly log: Logger;
  private maxBatchDrops: number;
  private readonly maxBatchBytes: number;
  private sequence = 0;
  /** The first drop (its queued JSON) and number of the last failed batch: a retry of it keeps its number. */
  private lastFailed: { first: Buffer; sequence: number } | undefined;
  private shedPending = 0;
  private shedTotal = 0;
  private lastError: string | undefined;

  constructor(private readonly opts: SenderOptions) {
    this.queue = opts.queue;
    this.retryBackoff = withHalfFloor({ initialMs: 500, maxMs: 30_000, ...opts.retryBackoff });
    this.refusedBackoff = withHalfFloor({ initialMs: 5_000, maxMs: 300_000, ...opts.refusedBackoff });
    this.maxBatchDrops = Math.max(1, opts.maxBatchDrops ?? DEFAULT_MAX_BATCH_DROPS);
    this.maxBatchBytes = Math.max(1024, opts.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES);
    this.log = opts.log ?? loggerFor('droptail-sender', opts.name);
  }

  /** Appends a window's drops and checkpoint mark to the queue, shedding the oldest past its bounds. */
  enqueue(drops: readonly AggregatedDrop[], mark?: CheckpointMark): void {
    this.recordShed(this.queue.push(drops, mark));
  }

  /** Packet drops shed since this sender started. */
  get shed(): number {
    return this.shedTotal;
  }

  get error(): string | undefined {
    return this.lastError;
  }

  /** Sends until the signal aborts, waiting for drops and backing off between failures. */
  async run(signal: AbortSignal): Promise<void> {
    const stopped = aborted(signal);
    while (!signal.aborted) {
      await Promise.race([this.queue.waitForDrops(), stopped]);
      if (signal.aborted) break;
      const delayMs = await this.sendOnce();
      if (delayMs > 0) await sleep(delayMs, signal);
    }
  }

  /** On stop: tries to send what is queued until the deadline, without backing off past it. */
  async drain(deadlineMs: number): Promise<void> {
    while (this.queue.drops > 0 && Date.now() < deadlineMs) {
      const delayMs = await this.sendOnce();
      if (delayMs > 0) {
        if (Date.now() + delayMs >= deadlineMs) break;
        await sleep(delayMs);
      }
    }
  }

  /** Posts one batch from the front of the queue; returns how long to wait before the next. */
  async sendOnce(): Promise<number> {
    const batch = this.queue.take(this.maxBatchDrops, this.maxBatchBytes);
    if (batch === undefined) return 0;
    const first = batch.parts[0]!;
    const sequence = this.lastFailed?.first === first ? this.lastFailed.sequence : ++this.sequence;
    const shedReported = this.shedPending;
    const body = encodeDropBatch({ node: this.opts.node, sequence, sentAt: new Date().toISOString(), shedSinceLastBatch: shedReported }, batch.parts);
    let outcome: SendOutcome;
    try {
      outcome = await this.opts.poster.post(body);
    } catch (err) {
      outcome = { kind: 'retry', message: errorMessage(err) };
    }
    // settle() below leaves the counts as take() left them; putBack() paths update again in recordShed().
    this.updateQueueGauges();

    if (outcome.kind === 'accepted') {
      this.queue.settle(batch);
      this.lastFailed = undefined;
      this.shedPending -= shedReported;
      this.retryBackoff.reset();
      this.refusedBackoff.reset();
      batchesSent.inc({ droptail: this.opts.name, result: 'accepted' });
      this.setError(undefined);
      return 0;
    }

    this.lastFailed = { first, sequence };
    if (outcome.kind === 'retry') {
      batchesSent.inc({ droptail: this.opts.name, result: 'retried' });
      this.recordShed(this.queue.putBack(batch));
      const delayMs = Math.min(this.retryBackoff.maxMs, Math.max(this.retryBackoff.next(), outcome.retryAfterMs ?? 0));
      this.setError(outcome.message, `retrying in ${delayMs} ms`);
      return delayMs;
    }

    batchesSent.inc({ droptail: this.opts.name, result: 'refused' });
    if (outcome.status === 413 && batch.parts.length > 1) {
      // Too large for the controller: smaller batches from now on, this one again at once.
      this.maxBatchDrops = Math.max(1, Math.floor(batch.parts.length / 2));
      this.recordShed(this.queue.putBack(batch));
      this.setError(outcome.message, `batch size lowered to ${this.maxBatchDrops} drops`);
      return 0;
    }
    if (outcome.status === 400 || outcome.status === 413) {
      // Sending this batch again cannot succeed: give it up (and move its checkpoints on).
      this.queue.settle(batch);
      this.lastFailed = undefined;
      this.setError(outcome.message, `gave up a batch of ${batch.parts.length} drops`);
      return 0;
    }
    this.recordShed(this.queue.putBack(batch));
    const delayMs = this.refusedBackoff.next();
    this.setError(outcome.message, `retrying in ${delayMs} ms`);
    return delayMs;
  }

  private recordShed(shed: ShedResult): void {
    if (shed.entries > 0) {
      this.shedPending += shed.drops;
      this.shedTotal += shed.drops;
      shedDrops.inc({ droptail: this.opts.name }, shed.drops);
      this.log.warn('send queue full, shed the oldest drops', { entries: shed.entries, drops: shed.drops, queued: this.queue.drops, queuedBytes: this.queue.bytes });
    }
    this.updateQueueGauges();
  }

  private updateQueueGauges(): void {
    queueDrops.set({ droptail: this.opts.name }, this.queue.drops);
    queueBytes.set({ droptail: this.opts.name }, this.queue.bytes);
  }

  private setError(message: string | undefined, action?: string): void {
    if (message !== undefined) {
      // Logged on every change, and then only every 10th repeat, so a long outage does not flood the log.
      const attempts = this.retryBackoff.attempts + this.refusedBackoff.attempts;
      if (message !== this.lastError || attempts % 10 === 0) this.log.warn('sending drops failed', { error: message, action, queued: this.queue.drops });
    } else if (this.lastError !== undefined) {
      this.log.info('sending drops works again');
    }
    if (message === this.lastError) return;
    this.lastError = message;
    this.opts.onError?.(message);
  }
}
