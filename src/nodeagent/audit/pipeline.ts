// One AuditForwarder on one node: follow the audit log, filter, batch, deliver, checkpoint.
//
//   LineFollower ──► parse / quarantine / filter ──► BatchEncoder ──► Sink ──► checkpoint
//
// Delivery is at least once. The checkpoint (file identity + offset, shipped counters, batch
// sequence) is written atomically only after the sink acknowledged a batch. While a batch is in
// flight or being retried nothing more is read from the log (back-pressure): there is one batch,
// spooled to a file in the state directory (see encoder.ts), and a sink outage only makes the lag
// grow. After a crash the unacknowledged batch is read again from the log, so the receiver may see
// duplicates (each event has auditID + stage). Any other failure (say, a full disk under the
// spool) is reported in the status and the pipeline starts over from its checkpoint after a
// backoff, so nothing accepted is skipped and the forwarder never stops for good.
//
// A batch is sealed when it reaches maxBytes (uncompressed body), maxEvents, or maxWait after
// its first event was read. A single event larger than maxBytes travels alone in its own batch:
// events are never split or dropped.
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import type { AuditNodeStatus } from '../../apis/auditforwarder.js';
import { rfc3339 } from '../../runtime/status.js';
import { errorMessage, loggerFor, type Logger } from '../../util/log.js';
import {
  CheckpointStore,
  checkpointOf,
  DEFAULT_MAX_LINE_BYTES,
  findIdentified,
  identityOfPath,
  isIdentifiedFile,
  isNonNegInt,
  isTailCheckpoint,
  LineFollower,
  listRotated,
  type RotatedFile,
  type TailCheckpoint,
  type TailEvent,
  type TailRecord,
  type TailStart,
} from '../tail/index.js';
import { sleep } from '../../util/sleep.js';
import { retryDelayMs } from './backoff.js';
import { BatchEncoder, removeSpool, type EncodedBatch } from './encoder.js';
import { parseAuditLine, quarantineEvent, quarantineObject, type QuarantinedLine } from './event.js';
import { compileFilter, type AuditFilter } from './filter.js';
import * as m from './metrics.js';
import type { AuditSettings } from './settings.js';
import { SinkError, type Sink } from './sinks/index.js';
import type { BatchInfo } from './sinks/types.js';

/** What survives a restart (stored with CheckpointStore as <stateDir>/checkpoint.json). */
export interface ForwarderState {
  tail: TailCheckpoint | null;
  /** Path the checkpointed file was read under, for the status. */
  file: string;
  shippedBytes: number;
  shippedEvents: number;
  seq: number;
  lastOffloadTime?: string;
  /** Absent in checkpoints written before it was counted. */
  quarantinedLines?: number;
  lastQuarantinedLine?: string;
  /** Times lines may have been skipped (the checkpointed or a rotated file was gone). */
  gaps?: number;
  /** The last of them: <time>: <reason> (<file>). */
  lastGap?: string;
}

function isForwarderState(v: unknown): v is ForwarderState {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    (o.tail === null || isTailCheckpoint(o.tail)) &&
    typeof o.file === 'string' &&
    isNonNegInt(o.shippedBytes) &&
    isNonNegInt(o.shippedEvents) &&
    isNonNegInt(o.seq) &&
    (o.quarantinedLines === undefined || isNonNegInt(o.quarantinedLines)) &&
    (o.lastQuarantinedLine === undefined || typeof o.lastQuarantinedLine === 'string') &&
    (o.gaps === undefined || isNonNegInt(o.gaps)) &&
    (o.lastGap === undefined || typeof o.lastGap === 'string')
  );
}

export interface PipelineOptions {
  forwarder: string;
  nodeName: string;
  settings: AuditSettings;
  /** This forwarder's own state directory (checkpoint). */
  stateDir: string;
  /** Builds the sink; retried with backoff while it fails (e.g. a missing Secret). */
  buildSink: () => Promise<Sink>;
  /** Longest line kept whole (default: the follower's); longer lines are quarantined with their first bytes. */
  maxLineBytes?: number;
  pollIntervalMs?: number;
}

/** The per-node status entry without the node name. */
export type PipelineStatus = Omit<AuditNodeStatus, 'node'>;

/** One line's bytes in a batch; `quarantined` says where and why when it is not an audit event. */
interface BatchItem {
  bytes: Buffer;
  quarantined?: string;
}

/** The quarantined lines of one batch. */
interface QuarantineCount {
  lines: number;
  last?: string;
}

/** A batch as read: where it ends in the log and what it quarantined. */
interface FilledBatch {
  position: TailCheckpoint | null;
  file: string;
  quarantine: QuarantineCount;
}

/** A line read that did not fit into the batch; it starts the next one. */
interface Carry {
  item: BatchItem;
  position: TailCheckpoint;
  file: string;
}

export class AuditPipeline {
  private readonly log: Logger;
  private readonly filter: AuditFilter;
  private readonly store: CheckpointStore<ForwarderState>;
  private readonly abort = new AbortController();
  private readonly maxLineBytes: number;
  /** The one batch body being built or delivered. */
  private readonly spoolFile: string;
  private state: ForwarderState = { tail: null, file: '', shippedBytes: 0, shippedEvents: 0, seq: 0 };
  private follower: LineFollower | null = null;
  private sink: Sink | null = null;
  private pendingNext: Promise<TailRecord | null> | null = null;
  private carry: Carry | null = null;
  private buffered = 0;
  private lastError: string | undefined;
  private stopped = false;
  private running: Promise<void> | null = null;

  constructor(private readonly opts: PipelineOptions) {
    this.log = loggerFor('audit-forwarder', opts.forwarder);
    this.filter = compileFilter(opts.settings.rules);
    this.store = new CheckpointStore<ForwarderState>(opts.stateDir, 'checkpoint', { validate: isForwarderState });
    this.maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.spoolFile = path.join(opts.stateDir, 'batch.spool');
  }

  start(): void {
    this.running ??= this.run().catch((err: unknown) => {
      this.setError(`forwarder stopped: ${errorMessage(err)}`);
      this.log.error('forwarder stopped', { error: errorMessage(err) });
    });
  }

  /** Stops reading and delivering; an unacknowledged batch is left to be re-read next time. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.follower?.close();
    await this.running;
    await this.sink?.close().catch(() => undefined);
    // A stop right after an acknowledgement comes before the next batch truncates the spool;
    // what is left is either delivered or read again from the log, so it is never needed.
    await removeSpool(this.spoolFile).catch(() => undefined);
    m.auditBufferedBytes.set({ forwarder: this.opts.forwarder }, 0);
  }

  /** The status entry as of now; lag is measured against the files on disk. */
  async status(): Promise<PipelineStatus> {
    const lagBytes = await measureLag(this.opts.settings.sourcePath, this.state.tail).catch(() => 0);
    m.auditLagBytes.set({ forwarder: this.opts.forwarder }, lagBytes);
    const s: PipelineStatus = {
      shippedBytes: this.state.shippedBytes,
      shippedEvents: this.state.shippedEvents,
      lagBytes,
      bufferedBytes: this.buffered,
    };
    if (this.state.file) s.file = this.state.file;
    if (this.state.tail) s.offset = this.state.tail.offset;
    if (this.state.lastOffloadTime) s.lastOffloadTime = this.state.lastOffloadTime;
    if (this.lastError) s.lastError = this.lastError.slice(0, 1024);
    if (this.state.quarantinedLines) s.quarantinedLines = this.state.quarantinedLines;
    if (this.state.lastQuarantinedLine) s.lastQuarantinedLine = this.state.lastQuarantinedLine.slice(0, 1024);
    if (this.state.gaps) s.gaps = this.state.gaps;
    if (this.state.lastGap) s.lastGap = this.state.lastGap.slice(0, 1024);
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

  private async runFromCheckpoint(): Promise<void> {
    if (!(await this.setUp())) return;
    while (!this.stopped) {
      const { encoder, position, file, quarantine } = await this.fillBatch();
      if (this.stopped) {
        await encoder.discard();
        return;
      }
      if (encoder.events === 0) {
        // Only filtered lines since the last batch: remember how far we got.
        await encoder.discard();
        if (position) await this.saveCheckpoint({ ...this.state, tail: position, file });
        continue;
      }
      const info: BatchInfo = { forwarder: this.opts.forwarder, clusterID: this.opts.settings.clusterID, node: this.opts.nodeName, seq: this.state.seq + 1, sealedAt: new Date() };
      const batch = await encoder.finish();
      if (!(await this.deliver(batch, info))) return;
      this.acknowledged(batch, info, position!, file, quarantine);
      await this.saveCheckpoint(this.state);
      // The spool is not removed here: the next batch's encoder truncates it right away.
    }
  }

  /** Drops what was read past the checkpoint, so the next setUp() reads it again. */
  private async reset(): Promise<void> {
    await this.follower?.close().catch(() => undefined);
    this.follower = null;
    this.pendingNext = null;
    this.carry = null;
    await this.sink?.close().catch(() => undefined);
    this.sink = null;
    this.setBuffered(0);
  }

  /** Loads the checkpoint, builds the sink and opens the log; retried until it works or stop(). */
  private async setUp(): Promise<boolean> {
    const loaded = await this.store.load();
    if (loaded.error) this.setError(`checkpoint unusable, starting over: ${loaded.error}`);
    if (loaded.checkpoint) this.state = loaded.checkpoint;
    // A spool left by a crash holds a batch that was never acknowledged: it is read again.
    await mkdir(this.opts.stateDir, { recursive: true, mode: 0o700 });
    await removeSpool(this.spoolFile);
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
    this.log.info('following the audit log', { path: this.opts.settings.sourcePath, mode: started.mode, file: started.path, possibleDataLoss: started.possibleDataLoss });
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

  private async fillBatch(): Promise<{ encoder: BatchEncoder } & FilledBatch> {
    const encoder = new BatchEncoder(this.sink!.format, this.sink!.gzip, this.spoolFile);
    try {
      return { encoder, ...(await this.fill(encoder)) };
    } catch (err) {
      await encoder.discard();
      throw err;
    }
  }

  /** Reads lines into the encoder until the batch is sealed; returns the position after them. */
  private async fill(encoder: BatchEncoder): Promise<FilledBatch> {
    const { maxBytes, maxEvents, maxWaitMs } = this.opts.settings;
    let position: TailCheckpoint | null = null;
    let file = this.state.file;
    let firstReadAt: number | null = null;
    let openedAt = Date.now();
    const quarantine: QuarantineCount = { lines: 0 };
    // Not async: one more async frame per line cost a fifth of the throughput.
    const add = (item: BatchItem): Promise<void> => {
      if (item.quarantined !== undefined) {
        quarantine.lines++;
        quarantine.last = item.quarantined;
      }
      return encoder.add(item.bytes);
    };
    if (this.carry) {
      await add(this.carry.item);
      ({ position, file } = this.carry);
      firstReadAt = Date.now();
      this.carry = null;
    }
    for (;;) {
      this.setBuffered(encoder.payloadBytes);
      if (firstReadAt !== null && (encoder.events >= maxEvents || encoder.payloadBytes >= maxBytes)) break;
      // Even a batch of only filtered lines ends after maxWait, so their progress is checkpointed.
      const wait = (firstReadAt ?? openedAt) + maxWaitMs - Date.now();
      if (wait <= 0) {
        if (firstReadAt !== null || position !== null) break;
        openedAt = Date.now();
        continue;
      }
      const rec = await this.nextRecord(wait);
      if (rec === null) break; // stopped
      if (rec === 'timeout') continue;
      const item = this.toItem(rec);
      if (item && encoder.events > 0 && encoder.sizeWith(item.bytes) > maxBytes) {
        this.carry = { item, position: checkpointOf(rec), file: rec.path };
        break;
      }
      position = checkpointOf(rec);
      file = rec.path;
      if (!item) continue;
      await add(item);
      firstReadAt ??= Date.now();
    }
    return { position, file, quarantine };
  }

  /** The next line, or 'timeout' after timeoutMs (the pending read is kept for the next call). */
  private async nextRecord(timeoutMs: number): Promise<TailRecord | null | 'timeout'> {
    this.pendingNext ??= this.follower!.next();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const r = await Promise.race([this.pendingNext, timeout]);
    clearTimeout(timer);
    if (r !== 'timeout') this.pendingNext = null;
    return r;
  }

  /** What to batch for one line: the event itself, a quarantine item, or null (filtered/blank). */
  private toItem(rec: TailRecord): BatchItem | null {
    const forwarder = this.opts.forwarder;
    m.auditReadBytes.inc({ forwarder }, rec.length + (rec.incomplete ? 0 : 1));
    m.auditReadEvents.inc({ forwarder });
    if (rec.length === 0 || (!rec.oversize && rec.line.every((b) => b === 0x20 || b === 0x09 || b === 0x0d))) return null;
    let reason: string;
    if (rec.oversize) {
      reason = `line of ${rec.length} bytes is longer than the ${this.maxLineBytes}-byte line limit`;
    } else {
      const parsed = parseAuditLine(rec.line);
      if (parsed.ok) {
        if (this.filter(parsed.fields)) return { bytes: rec.line };
        m.auditFilteredEvents.inc({ forwarder });
        return null;
      }
      reason = rec.incomplete ? `incomplete last line (no newline before the file was rotated): ${parsed.reason}` : parsed.reason;
    }
    const q: QuarantinedLine = { file: rec.path, offset: rec.offset, length: rec.length, reason, line: rec.line, truncated: rec.oversize };
    m.auditMalformedLines.inc({ forwarder, reason: rec.oversize ? 'oversize' : rec.incomplete ? 'incomplete' : 'malformed' });
    this.log.warn('malformed audit log line forwarded in quarantine form', { file: rec.path, offset: rec.offset, length: rec.length, reason });
    return { bytes: this.sink!.format === 'eventList' ? quarantineEvent(q, new Date()) : quarantineObject(q), quarantined: `${rec.path}:${rec.offset}: ${reason}` };
  }

  /** Sends until the sink acknowledges; false when stopped first. */
  private async deliver(batch: EncodedBatch, info: BatchInfo): Promise<boolean> {
    const forwarder = this.opts.forwarder;
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await this.sink!.send(batch, info, this.abort.signal);
        m.auditBatches.inc({ forwarder, result: 'success' });
        return true;
      } catch (err) {
        if (this.stopped) return false;
        m.auditBatches.inc({ forwarder, result: 'error' });
        m.auditRetries.inc({ forwarder });
        const retryAfter = err instanceof SinkError ? err.retryAfterMs : undefined;
        const delay = retryDelayMs(attempt, retryAfter);
        this.setError(errorMessage(err));
        this.log.warn('batch not delivered; retrying', { error: errorMessage(err), seq: info.seq, events: batch.events, attempt: attempt + 1, retryInMs: delay, retryAfterMs: retryAfter });
        await sleep(delay, this.abort.signal);
      }
    }
    return false;
  }

  private acknowledged(batch: EncodedBatch, info: BatchInfo, position: TailCheckpoint, file: string, quarantine: QuarantineCount): void {
    const forwarder = this.opts.forwarder;
    m.auditShippedBytes.inc({ forwarder }, batch.payloadBytes);
    m.auditShippedEvents.inc({ forwarder }, batch.events);
    const previous = this.state;
    // Counts of quarantined lines and gaps carry over; only this batch's position and totals change.
    this.state = {
      ...previous,
      tail: position,
      file,
      shippedBytes: previous.shippedBytes + batch.payloadBytes,
      shippedEvents: previous.shippedEvents + batch.events,
      seq: info.seq,
      lastOffloadTime: rfc3339(new Date()),
    };
    if (quarantine.lines > 0) {
      this.state.quarantinedLines = (previous.quarantinedLines ?? 0) + quarantine.lines;
      this.state.lastQuarantinedLine = quarantine.last!;
    }
    this.lastError = undefined;
    this.setBuffered(0);
  }

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
    else if (ev.type === 'dataLoss') this.recordGap(ev.reason, ev.path);
    else if (ev.type === 'error') this.setError(`${ev.path}: ${ev.message}`);
  }

  /**
   * Lines that may never be read (e.g. --audit-log-maxbackup deleted the checkpointed file while
   * the agent was down). lastError is cleared by the next delivery, so the count and the last gap
   * stay in the status, and in the checkpoint across restarts.
   */
  private recordGap(reason: string, file: string | undefined): void {
    const where = file ? ` (${file})` : '';
    this.setError(`possible data loss: ${reason}${where}`);
    this.state = { ...this.state, gaps: (this.state.gaps ?? 0) + 1, lastGap: `${rfc3339(new Date())}: ${reason}${where}` };
    m.auditGaps.inc({ forwarder: this.opts.forwarder });
  }

  private setError(message: string): void {
    this.lastError = message;
  }

  private setBuffered(bytes: number): void {
    if (bytes === this.buffered) return;
    this.buffered = bytes;
    m.auditBufferedBytes.set({ forwarder: this.opts.forwarder }, bytes);
  }
}

/**
 * Bytes in the log not shipped yet: the rest of the checkpointed file plus every newer rotated
 * file and the live file, in uncompressed bytes (what the forwarder reads and ships).
 */
export async function measureLag(sourcePath: string, tail: TailCheckpoint | null): Promise<number> {
  // The checkpointed file is looked for as the follower does on resume (isIdentifiedFile, then
  // findIdentified), so the lag counts from where reading would start again.
  let liveSize = 0;
  const fh = await open(sourcePath, 'r').catch(() => null);
  if (fh) {
    try {
      const live = await fh.stat({ bigint: true });
      liveSize = Number(live.size);
      if (tail && (await isIdentifiedFile(tail.identity, fh, live))) return Math.max(0, liveSize - tail.offset);
    } finally {
      await fh.close();
    }
  }
  const rotated = await listRotated(sourcePath);
  const idx = tail ? await findIdentified(rotated, tail.identity) : -1;
  let lag = liveSize;
  if (idx >= 0) lag += Math.max(0, (await contentSize(rotated[idx]!)) - tail!.offset);
  for (const f of rotated.slice(idx + 1)) lag += await contentSize(f);
  return lag;
}

/**
 * A rotated file's uncompressed size. For gzip, the ISIZE field of the trailer (RFC 1952: the
 * last 4 bytes, little endian, modulo 2^32), which is exact for the single-member files that
 * kube-apiserver (lumberjack) and logrotate write below 4 GiB; the compressed size if unreadable.
 */
export async function contentSize(f: RotatedFile): Promise<number> {
  if (!f.compressed || f.size < 18) return f.size; // 18: the smallest gzip member (header + trailer)
  const fh = await open(f.path, 'r').catch(() => null);
  if (!fh) return f.size;
  try {
    const trailer = Buffer.alloc(4);
    const { bytesRead } = await fh.read(trailer, 0, 4, f.size - 4);
    return bytesRead === 4 ? trailer.readUInt32LE(0) : f.size;
  } finally {
    await fh.close();
  }
}

/** This forwarder's state directory under the agent's. */
export function forwarderStateDir(agentStateDir: string, forwarder: string): string {
  return path.join(agentStateDir, 'audit', forwarder);
}
