// BatchSender: the second half of a forwarder. It takes records from the disk buffer into a batch
// until maxBytes, maxEvents or maxWait (from the batch's first record), delivers it with retries
// and backoff (honouring Retry-After), and only then acknowledges it: the buffer may drop it, and
// the pipeline moves the delivered position in its checkpoint. A single record larger than
// maxBytes travels alone in its own batch: records are never split or dropped.
import { errorMessage, loggerFor, type Logger } from '../../util/log.js';
import { sleep } from '../../util/sleep.js';
import { retryDelayMs } from './backoff.js';
import type { BufferPosition, BufferRecord, DiskBuffer } from './buffer.js';
import { BatchEncoder, type EncodedBatch } from './encoder.js';
import { auditBatches, auditRetries } from './metrics.js';
import type { AuditSettings } from './settings.js';
import { SinkError, type Sink } from './sinks/index.js';
import type { BatchInfo } from './sinks/types.js';

export interface BatchSenderOptions {
  forwarder: string;
  nodeName: string;
  settings: AuditSettings;
  buffer: DiskBuffer;
  sink: Sink;
  /** Where the batch being built or delivered is spooled. */
  spoolFile: string;
  signal: AbortSignal;
  /** Sequence number of the next batch. */
  nextSeq: () => number;
  onError: (message: string) => void;
  /** The sink took the batch; records up to `end` are delivered. */
  acknowledged: (batch: EncodedBatch, info: BatchInfo, end: BufferPosition) => Promise<void>;
}

export class BatchSender {
  private readonly log: Logger;
  private pending: Promise<BufferRecord | null> | null = null;
  private carry: BufferRecord | null = null;

  constructor(private readonly opts: BatchSenderOptions) {
    this.log = loggerFor('audit-forwarder', opts.forwarder);
  }

  /** Sends until the buffer is closed or the signal aborts. */
  async run(): Promise<void> {
    const { sink, settings } = this.opts;
    while (!this.opts.signal.aborted) {
      const encoder = new BatchEncoder(sink.format, sink.gzip, this.opts.spoolFile);
      let end: BufferPosition | null;
      try {
        end = await this.fill(encoder);
      } catch (err) {
        await encoder.discard();
        throw err;
      }
      if (end === null || this.opts.signal.aborted) {
        await encoder.discard();
        return;
      }
      const info: BatchInfo = { forwarder: this.opts.forwarder, clusterID: settings.clusterID, node: this.opts.nodeName, seq: this.opts.nextSeq(), sealedAt: new Date() };
      const batch = await encoder.finish();
      if (!(await this.deliver(batch, info))) return;
      await this.opts.buffer.acknowledge(end);
      await this.opts.acknowledged(batch, info, end);
      // The spool is not removed here: the next batch's encoder truncates it right away.
    }
  }

  /** Fills one batch; the position after its last record, or null when the buffer was closed first. */
  private async fill(encoder: BatchEncoder): Promise<BufferPosition | null> {
    const { maxBytes, maxEvents, maxWaitMs } = this.opts.settings;
    let end: BufferPosition | null = null;
    let firstAt: number | null = null;
    if (this.carry) {
      await encoder.add(this.carry.payload);
      end = this.carry.end;
      firstAt = Date.now();
      this.carry = null;
    }
    for (;;) {
      if (firstAt !== null && (encoder.events >= maxEvents || encoder.payloadBytes >= maxBytes)) return end;
      const rec = firstAt === null ? await this.next() : await this.nextWithin(firstAt + maxWaitMs - Date.now());
      if (rec === 'timeout') return end;
      if (rec === null) return null;
      if (encoder.events > 0 && encoder.sizeWith(rec.payload) > maxBytes) {
        this.carry = rec;
        return end;
      }
      await encoder.add(rec.payload);
      end = rec.end;
      firstAt ??= Date.now();
    }
  }

  private next(): Promise<BufferRecord | null> {
    const p = this.pending ?? this.opts.buffer.next();
    this.pending = null;
    return p;
  }

  /** The next record, or 'timeout' after ms; a timer only when none is there to take now. */
  private async nextWithin(ms: number): Promise<BufferRecord | null | 'timeout'> {
    if (ms <= 0) return 'timeout';
    if (this.pending === null && this.opts.buffer.readable) return this.next();
    this.pending ??= this.opts.buffer.next();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
    const r = await Promise.race([this.pending, timeout]);
    clearTimeout(timer);
    if (r !== 'timeout') this.pending = null;
    return r;
  }

  /** Sends until the sink acknowledges; false when stopped first. */
  private async deliver(batch: EncodedBatch, info: BatchInfo): Promise<boolean> {
    const { forwarder, signal } = this.opts;
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        await this.opts.sink.send(batch, info, signal);
        auditBatches.inc({ forwarder, result: 'success' });
        return true;
      } catch (err) {
        if (signal.aborted) return false;
        auditBatches.inc({ forwarder, result: 'error' });
        auditRetries.inc({ forwarder });
        const retryAfter = err instanceof SinkError ? err.retryAfterMs : undefined;
        const delay = retryDelayMs(attempt, retryAfter);
        this.opts.onError(errorMessage(err));
        this.log.warn('batch not delivered; retrying', { error: errorMessage(err), seq: info.seq, events: batch.events, attempt: attempt + 1, retryInMs: delay, retryAfterMs: retryAfter });
        await sleep(delay, signal);
      }
    }
    return false;
  }
}
