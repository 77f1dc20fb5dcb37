// One AuditForwarder on one node: follow the audit log, filter, buffer on disk, batch, deliver,
// checkpoint.
//
//   LineFollower ─► LogReader (parse, quarantine, filter) ─► DiskBuffer ─► BatchSender ─► Sink
//
// Two positions are checkpointed (atomically, in one file): how far the log has been read into
// the buffer, saved only once the buffer is fsynced, and how far the buffer has been delivered,
// saved only after the sink acknowledged a batch. So once a line is read, the audit log file may
// go (--audit-log-maxbackup): a crash, a restart or a sink outage loses nothing the reader got to,
// and while the sink is down the reader keeps reading until the buffer is full (then the follower
// holds the files open, up to its own limit, and only then does deletion cost lines: a gap).
// Delivery is at least once: after a crash the unacknowledged batch is sent again, and lines read
// since the last commit are read again (each event has auditID + stage). Any other failure (say, a
// full disk under the buffer) is reported in the status and the pipeline starts over from its
// checkpoint after a backoff, so nothing accepted is skipped and the forwarder never stops for good.
//
// A batch is sealed when it reaches maxBytes (uncompressed body), maxEvents, or maxWait after
// its first event was taken from the buffer. A single event larger than maxBytes travels alone in
// its own batch: events are never split or dropped.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { AuditNodeReport } from '../../apis/nodereport.js';
import { rfc3339 } from '../../runtime/status.js';
import { errorMessage, loggerFor, type Logger } from '../../util/log.js';
import {
  CheckpointStore,
  DEFAULT_MAX_LINE_BYTES,
  describeGap,
  identityOfPath,
  isNonNegInt,
  isTailCheckpoint,
  LineFollower,
  listRotated,
  type TailCheckpoint,
  type TailEvent,
  type TailGap,
  type TailStart,
} from '../tail/index.js';
import { sleep } from '../../util/sleep.js';
import { retryDelayMs } from './backoff.js';
import { DiskBuffer, isBufferPosition, type BufferPosition } from './buffer.js';
import { removeSpool, type EncodedBatch } from './encoder.js';
import { compileFilter, type AuditFilter } from './filter.js';
import { measureLag } from './lag.js';
import { auditBufferedBytes, auditGaps, auditLagBytes, auditShippedBytes, auditShippedEvents, auditSkippedBytes } from './metrics.js';
import { LogReader, type ReadCommit } from './reader.js';
import { BatchSender } from './sender.js';
import type { AuditSettings } from './settings.js';
import type { Sink } from './sinks/index.js';
import type { BatchInfo } from './sinks/types.js';

export { measureLag } from './lag.js';

/** What survives a restart (stored with CheckpointStore as <stateDir>/checkpoint.json). */
export interface ForwarderState {
  /** How far the log has been read into the buffer (before the buffer existed: delivered). */
  tail: TailCheckpoint | null;
  /** Path the checkpointed file was read under, for the status. */
  file: string;
  /** How far the buffer has been delivered; absent in checkpoints written before it existed. */
  delivered?: BufferPosition;
  /** The end of the buffer that `tail` corresponds to: appended after it is read again. */
  committed?: BufferPosition;
  shippedBytes: number;
  shippedEvents: number;
  seq: number;
  lastOffloadTime?: string;
  /** Absent in checkpoints written before it was counted. */
  quarantinedLines?: number;
  lastQuarantinedLine?: string;
  /** Times lines were skipped (a file deleted before it was read to its end). */
  gaps?: number;
  /** The last of them: <time>: <reason>: <what was skipped>. */
  lastGap?: string;
  /** Bytes known to be skipped in them. */
  skippedBytes?: number;
}

function isForwarderState(v: unknown): v is ForwarderState {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    (o.tail === null || isTailCheckpoint(o.tail)) &&
    typeof o.file === 'string' &&
    (o.delivered === undefined || isBufferPosition(o.delivered)) &&
    (o.committed === undefined || isBufferPosition(o.committed)) &&
    isNonNegInt(o.shippedBytes) &&
    isNonNegInt(o.shippedEvents) &&
    isNonNegInt(o.seq) &&
    (o.quarantinedLines === undefined || isNonNegInt(o.quarantinedLines)) &&
    (o.lastQuarantinedLine === undefined || typeof o.lastQuarantinedLine === 'string') &&
    (o.gaps === undefined || isNonNegInt(o.gaps)) &&
    (o.lastGap === undefined || typeof o.lastGap === 'string') &&
    (o.skippedBytes === undefined || isNonNegInt(o.skippedBytes))
  );
}

/** The disk buffer holds at least this much, and at least two batches. */
export const DEFAULT_BUFFER_BYTES = 256 * 1024 * 1024;

export interface AuditPipelineOptions {
  forwarder: string;
  nodeName: string;
  settings: AuditSettings;
  /** This forwarder's own state directory (checkpoint, buffer, batch spool). */
  stateDir: string;
  /** Builds the sink; retried with backoff while it fails (e.g. a missing Secret). */
  buildSink: () => Promise<Sink>;
  /** Longest line kept whole (default: the follower's); longer lines are quarantined with their first bytes. */
  maxLineBytes?: number;
  pollIntervalMs?: number;
  /** Why this forwarder may not run on this agent: nothing is read, the status says why. */
  refusal?: string;
  /** Bytes read and not delivered that the disk buffer holds at most (default: DEFAULT_BUFFER_BYTES or two batches). */
  bufferBytes?: number;
}

/** This node's report to the controller without the node name. */
export type PipelineStatus = Omit<AuditNodeReport, 'node'>;

export class AuditPipeline {
  private readonly log: Logger;
  private readonly filter: AuditFilter;
  private readonly store: CheckpointStore<ForwarderState>;
  private readonly abort = new AbortController();
  private readonly maxLineBytes: number;
  /** The one batch body being built or delivered. */
  private readonly spoolFile: string;
  private readonly bufferDir: string;
  private state: ForwarderState = { tail: null, file: '', shippedBytes: 0, shippedEvents: 0, seq: 0 };
  private follower: LineFollower | null = null;
  private buffer: DiskBuffer | null = null;
  private sink: Sink | null = null;
  /** Ends the current run: on stop, or when either half failed. */
  private runAbort: AbortController | null = null;
  private reading: Promise<void> | null = null;
  private lastError: string | undefined;
  private stopped = false;
  private running: Promise<void> | null = null;

  constructor(private readonly opts: AuditPipelineOptions) {
    this.log = loggerFor('audit-forwarder', opts.forwarder);
    this.filter = compileFilter(opts.settings.rules);
    this.store = new CheckpointStore<ForwarderState>(opts.stateDir, 'checkpoint', { validate: isForwarderState });
    this.maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.spoolFile = path.join(opts.stateDir, 'batch.spool');
    this.bufferDir = path.join(opts.stateDir, 'buffer');
  }

  start(): void {
    this.running ??= this.run().catch((err: unknown) => {
      this.setError(`forwarder stopped: ${errorMessage(err)}`);
      this.log.error('forwarder stopped', { error: errorMessage(err) });
    });
  }

  /** Stops reading and delivering; what was read and not delivered stays in the buffer. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.runAbort?.abort();
    // Reading ends first (its last position committed), then the buffer closes under the sender.
    await this.follower?.close();
    await this.reading?.catch(() => undefined);
    await this.buffer?.close();
    await this.running;
    await this.sink?.close().catch(() => undefined);
    // A stop right after an acknowledgement comes before the next batch truncates the spool;
    // what is left is either delivered or still in the buffer, so it is never needed.
    await removeSpool(this.spoolFile).catch(() => undefined);
    await this.buffer?.dropIfDelivered().catch(() => undefined);
    auditBufferedBytes.set({ forwarder: this.opts.forwarder }, 0);
  }

  /** The status entry as of now; lag is measured against the files on disk. */
  async status(): Promise<PipelineStatus> {
    const lagBytes = await measureLag(this.opts.settings.sourcePath, this.state.tail).catch(() => 0);
    auditLagBytes.set({ forwarder: this.opts.forwarder }, lagBytes);
    const bufferedBytes = this.buffer?.bytes ?? 0;
    auditBufferedBytes.set({ forwarder: this.opts.forwarder }, bufferedBytes);
    const s: PipelineStatus = {
      shippedBytes: this.state.shippedBytes,
      shippedEvents: this.state.shippedEvents,
      lagBytes,
      bufferedBytes,
    };
    if (this.state.file) s.file = this.state.file;
    if (this.state.tail) s.offset = this.state.tail.offset;
    if (this.state.lastOffloadTime) s.lastOffloadTime = this.state.lastOffloadTime;
    if (this.lastError) s.lastError = this.lastError.slice(0, 1024);
    if (this.state.quarantinedLines) s.quarantinedLines = this.state.quarantinedLines;
    if (this.state.lastQuarantinedLine) s.lastQuarantinedLine = this.state.lastQuarantinedLine.slice(0, 1024);
    if (this.state.gaps) s.gaps = this.state.gaps;
    if (this.state.lastGap) s.lastGap = this.state.lastGap.slice(0, 1024);
    if (this.state.skippedBytes) s.skippedBytes = this.state.skippedBytes;
    return s;
  }

  // --- main loop -------------------------------------------------------------------------------

  /** Runs until stop(); after an unexpected failure, starts over from the checkpoint. */
  private async run(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await this.runFromCheckpoint();
        return;
      } catch (err) {
        if (this.stopped) return;
        const delay = retryDelayMs(attempt);
        this.setError(`forwarding interrupted, starting over from the checkpoint: ${errorMessage(err)}`);
        this.log.error('forwarding interrupted; starting over from the checkpoint', { error: errorMessage(err), retryInMs: delay });
        await this.reset();
        await sleep(delay, this.abort.signal);
      }
    }
  }

  /** Reads into the buffer and sends from it until stop(), or until either fails. */
  private async runFromCheckpoint(): Promise<void> {
    if (!(await this.setUp())) return;
    const runAbort = new AbortController();
    this.runAbort = runAbort;
    if (this.stopped) runAbort.abort();
    const buffer = this.buffer!;
    const halt = (): void => {
      runAbort.abort();
      void this.follower?.close();
      void buffer.close();
    };
    const reader = new LogReader({
      forwarder: this.opts.forwarder,
      follower: this.follower!,
      buffer,
      filter: this.filter,
      format: this.sink!.format,
      maxLineBytes: this.maxLineBytes,
      commit: (c) => this.committed(c),
    });
    const sender = new BatchSender({
      forwarder: this.opts.forwarder,
      nodeName: this.opts.nodeName,
      settings: this.opts.settings,
      buffer,
      sink: this.sink!,
      spoolFile: this.spoolFile,
      signal: runAbort.signal,
      nextSeq: () => this.state.seq + 1,
      onError: (message) => this.setError(message),
      acknowledged: (batch, info, end) => this.acknowledged(batch, info, end),
    });
    const reading = reader.run();
    this.reading = reading;
    const results = await Promise.allSettled([
      reading.catch((err: unknown) => {
        halt();
        throw err;
      }),
      sender.run().catch((err: unknown) => {
        halt();
        throw err;
      }),
    ]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed && !this.stopped) throw failed.reason;
  }

  /** Drops what was read past the checkpoint, so the next setUp() reads it again. */
  private async reset(): Promise<void> {
    await this.follower?.close().catch(() => undefined);
    this.follower = null;
    await this.buffer?.close().catch(() => undefined);
    this.buffer = null;
    this.reading = null;
    await this.sink?.close().catch(() => undefined);
    this.sink = null;
  }

  /** Loads the checkpoint, opens the buffer, builds the sink and opens the log; retried until it works or stop(). */
  private async setUp(): Promise<boolean> {
    if (this.opts.refusal !== undefined) {
      this.setError(`refused: ${this.opts.refusal}`);
      return false;
    }
    const loaded = await this.store.load();
    if (loaded.error) this.setError(`checkpoint unusable, starting over: ${loaded.error}`);
    if (loaded.checkpoint) this.state = loaded.checkpoint;
    // A spool left by a crash holds a batch that was never acknowledged: it is still in the buffer.
    await mkdir(this.opts.stateDir, { recursive: true, mode: 0o700 });
    await removeSpool(this.spoolFile);
    const bufferBytes = this.opts.bufferBytes ?? Math.max(DEFAULT_BUFFER_BYTES, 2 * this.opts.settings.maxBytes);
    this.buffer = await DiskBuffer.open(this.bufferDir, this.state.delivered ?? null, this.state.committed ?? null, { maxBytes: bufferBytes });
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        this.sink = await this.opts.buildSink();
        break;
      } catch (err) {
        this.setError(errorMessage(err));
        this.log.warn('cannot set up the sink', { error: errorMessage(err) });
        await sleep(retryDelayMs(attempt), this.abort.signal);
      }
    }
    if (this.stopped) return false;
    const start = await this.startPosition();
    this.follower = new LineFollower(this.opts.settings.sourcePath, {
      start,
      maxLineBytes: this.maxLineBytes,
      ...(this.opts.pollIntervalMs ? { pollIntervalMs: this.opts.pollIntervalMs } : {}),
      onEvent: (ev) => this.onTailEvent(ev),
      logKey: `${this.opts.forwarder}:${this.opts.settings.sourcePath}`,
    });
    const started = await this.follower.start();
    this.log.info('following the audit log', { path: this.opts.settings.sourcePath, mode: started.mode, file: started.path, possibleDataLoss: started.possibleDataLoss, buffered: this.buffer.bytes });
    // Most often a wrong spec.source.path or a missing host mount: say so where the user looks.
    if (started.mode === 'waiting') this.setError(this.missingLogMessage());
    return true;
  }

  private missingLogMessage(): string {
    return `${this.opts.settings.sourcePath} does not exist: waiting for it (check spec.source.path and that the agent mounts the audit log directory)`;
  }

  /** The checkpoint; without one, the oldest rotated file on disk (ship what is there). */
  private async startPosition(): Promise<TailStart> {
    if (this.state.tail) return { checkpoint: this.state.tail };
    const rotated = await listRotated(this.opts.settings.sourcePath);
    const oldest = rotated[0];
    if (!oldest) return 'beginning';
    return { checkpoint: { identity: await identityOfPath(oldest.path), offset: 0 } };
  }

  /** The reader made lines durable in the buffer: the log may be read on from there after a crash. */
  private async committed(c: ReadCommit): Promise<void> {
    const previous = this.state;
    const next: ForwarderState = { ...previous, tail: c.position, file: c.file, committed: c.bufferEnd };
    if (c.quarantinedLines > 0) {
      next.quarantinedLines = (previous.quarantinedLines ?? 0) + c.quarantinedLines;
      if (c.lastQuarantinedLine !== undefined) next.lastQuarantinedLine = c.lastQuarantinedLine;
    }
    // Not saved, not committed: the sender must not have records the checkpoint does not cover,
    // or they would be read and sent again after a restart. The pipeline starts over instead.
    this.state = next;
    await this.store.save(next);
  }

  private async acknowledged(batch: EncodedBatch, info: BatchInfo, end: BufferPosition): Promise<void> {
    const forwarder = this.opts.forwarder;
    auditShippedBytes.inc({ forwarder }, batch.payloadBytes);
    auditShippedEvents.inc({ forwarder }, batch.events);
    const previous = this.state;
    // Counts of quarantined lines and gaps, and the read position, carry over.
    this.lastError = undefined;
    await this.saveCheckpoint({
      ...previous,
      delivered: end,
      shippedBytes: previous.shippedBytes + batch.payloadBytes,
      shippedEvents: previous.shippedEvents + batch.events,
      seq: info.seq,
      lastOffloadTime: rfc3339(new Date()),
    });
    auditBufferedBytes.set({ forwarder }, this.buffer?.bytes ?? 0);
  }

  /** The new state, now and on disk (saves are serialised, so the last one made wins). */
  private async saveCheckpoint(state: ForwarderState): Promise<void> {
    this.state = state;
    try {
      await this.store.save(state);
    } catch (err) {
      // Delivered but not recorded: after a restart this batch is sent again (a duplicate).
      this.setError(`cannot save checkpoint: ${errorMessage(err)}`);
      this.log.error('cannot save checkpoint', { error: errorMessage(err), file: this.store.file });
    }
  }

  private onTailEvent(ev: TailEvent): void {
    if (ev.type === 'opened' && this.lastError === this.missingLogMessage()) this.lastError = undefined;
    else if (ev.type === 'dataLoss') this.recordGap(ev);
    else if (ev.type === 'error') this.setError(`${ev.path}: ${ev.message}`);
  }

  /**
   * Lines skipped: a file deleted before it was read to its end (e.g. --audit-log-maxbackup while
   * the agent was behind or down). lastError is cleared by the next delivery, so the count and the
   * last gap stay in the status, and in the checkpoint across restarts: saved right away (neither
   * position moves with it).
   */
  private recordGap(gap: TailGap): void {
    const what = describeGap(gap);
    this.log.warn('audit log lines skipped', { reason: gap.reason, files: gap.files, after: gap.after, before: gap.before, bytes: gap.bytes, resumedAt: gap.path });
    this.setError(`lines skipped: ${gap.reason}: ${what}`);
    this.state = {
      ...this.state,
      gaps: (this.state.gaps ?? 0) + 1,
      lastGap: `${rfc3339(new Date())}: ${gap.reason}: ${what}`,
      ...(gap.bytes ? { skippedBytes: (this.state.skippedBytes ?? 0) + gap.bytes } : {}),
    };
    auditGaps.inc({ forwarder: this.opts.forwarder });
    if (gap.bytes) auditSkippedBytes.inc({ forwarder: this.opts.forwarder }, gap.bytes);
    void this.saveCheckpoint(this.state);
  }

  private setError(message: string): void {
    this.lastError = message;
  }
}

/** This forwarder's state directory under the agent's. */
export function forwarderStateDir(agentStateDir: string, forwarder: string): string {
  return path.join(agentStateDir, 'audit', forwarder);
}
