// LogReader: the first half of a forwarder. It follows the audit log, turns each line into what
// the sink will get (the event's own bytes, or a quarantine item; filtered events are skipped),
// appends it to the disk buffer, and commits how far it has read: the buffer is fsynced first, then
// the position is handed to the pipeline's checkpoint. So a committed position never runs ahead of
// what survives a crash, and after one the lines read since the last commit are read again (at
// most COMMIT_INTERVAL_MS of them: duplicates, not losses).
import { loggerFor, type Logger } from '../../util/log.js';
import { checkpointOf, type LineFollower, type TailCheckpoint, type TailRecord } from '../tail/index.js';
import type { BufferPosition, DiskBuffer } from './buffer.js';
import { parseAuditLine, quarantineEvent, quarantineObject, type QuarantinedLine } from './event.js';
import type { AuditFilter } from './filter.js';
import { auditFilteredEvents, auditMalformedLines, auditReadBytes, auditReadEvents } from './metrics.js';
import type { BatchFormat } from './encoder.js';

/** How often the read position is committed while lines keep coming. */
export const COMMIT_INTERVAL_MS = 1_000;

/** What the reader has read, as far as it is durable in the buffer. */
export interface ReadCommit {
  position: TailCheckpoint;
  file: string;
  /** The end of the buffer as fsynced, which that log position corresponds to. */
  bufferEnd: BufferPosition;
  /** Lines quarantined since the last commit, and the last of them. */
  quarantinedLines: number;
  lastQuarantinedLine?: string;
}

export interface LogReaderOptions {
  forwarder: string;
  follower: LineFollower;
  buffer: DiskBuffer;
  filter: AuditFilter;
  format: BatchFormat;
  maxLineBytes: number;
  /** Takes a commit into the checkpoint. */
  commit: (c: ReadCommit) => Promise<void>;
}

export class LogReader {
  private readonly log: Logger;
  private position: TailCheckpoint | null = null;
  private file = '';
  private quarantined = 0;
  private lastQuarantined: string | undefined;
  private dirty = false;
  private committing: Promise<void> = Promise.resolve();
  private failure: unknown;
  private idle = false;
  private inCommit = false;
  private commitDue = false;

  constructor(private readonly opts: LogReaderOptions) {
    this.log = loggerFor('audit-forwarder', opts.forwarder);
  }

  /** Reads until the follower is closed; throws when the buffer cannot be written. */
  async run(): Promise<void> {
    const { follower, buffer } = this.opts;
    // Commits are due by a timer, not by a clock read per line. A commit never runs beside an
    // append, so the buffer end it fsyncs is exactly the lines up to its position: the loop
    // commits when one is due, and the timer commits itself only while the loop waits for a line.
    const timer = setInterval(() => {
      if (this.idle) void this.commitQueued().catch((err: unknown) => (this.failure ??= err));
      else this.commitDue = true;
    }, COMMIT_INTERVAL_MS);
    try {
      for (;;) {
        this.idle = true;
        const rec = await follower.next();
        this.idle = false;
        if (this.failure !== undefined) throw this.failure;
        if (rec === null) break;
        if (this.inCommit) await this.committing;
        const item = this.toItem(rec);
        if (item) {
          if (buffer.full) await this.commitQueued(); // about to wait for room: what was read is safe first
          await buffer.append(item);
        }
        this.position = checkpointOf(rec);
        this.file = rec.path;
        this.dirty = true;
        if (this.commitDue) await this.commitQueued();
      }
    } finally {
      clearInterval(timer);
    }
    await this.commitQueued();
  }

  /** One commit at a time, in order. */
  private commitQueued(): Promise<void> {
    const run = this.committing.then(() => this.commit());
    this.committing = run.catch(() => undefined);
    return run;
  }

  private async commit(): Promise<void> {
    this.commitDue = false;
    if (!this.dirty || this.position === null) return;
    this.inCommit = true;
    try {
      await this.commitNow(this.position);
    } finally {
      this.inCommit = false;
    }
  }

  private async commitNow(position: TailCheckpoint): Promise<void> {
    const file = this.file;
    const quarantinedLines = this.quarantined;
    const last = this.lastQuarantined;
    this.dirty = false;
    this.quarantined = 0;
    this.lastQuarantined = undefined;
    const bufferEnd = await this.opts.buffer.flush();
    const c: ReadCommit = { position, file, bufferEnd, quarantinedLines, ...(last !== undefined ? { lastQuarantinedLine: last } : {}) };
    await this.opts.commit(c);
    // Only now may the sender have these records: a crash before this would read them again.
    this.opts.buffer.commit(bufferEnd);
  }

  /** What to ship for one line: the event itself, a quarantine item, or null (filtered or blank). */
  private toItem(rec: TailRecord): Buffer | null {
    const { forwarder, maxLineBytes } = this.opts;
    auditReadBytes.inc({ forwarder }, rec.length + (rec.incomplete ? 0 : 1));
    auditReadEvents.inc({ forwarder });
    if (rec.length === 0 || (!rec.oversize && rec.line.every((b) => b === 0x20 || b === 0x09 || b === 0x0d))) return null;
    let reason: string;
    if (rec.oversize) {
      reason = `line of ${rec.length} bytes is longer than the ${maxLineBytes}-byte line limit`;
    } else {
      const parsed = parseAuditLine(rec.line);
      if (parsed.ok) {
        if (this.opts.filter(parsed.fields)) return rec.line;
        auditFilteredEvents.inc({ forwarder });
        return null;
      }
      reason = rec.incomplete ? `incomplete last line (no newline before the file was rotated): ${parsed.reason}` : parsed.reason;
    }
    const q: QuarantinedLine = { file: rec.path, offset: rec.offset, length: rec.length, reason, line: rec.line, truncated: rec.oversize };
    auditMalformedLines.inc({ forwarder, reason: rec.oversize ? 'oversize' : rec.incomplete ? 'incomplete' : 'malformed' });
    this.log.warn('malformed audit log line forwarded in quarantine form', { file: rec.path, offset: rec.offset, length: rec.length, reason });
    this.quarantined++;
    this.lastQuarantined = `${rec.path}:${rec.offset}: ${reason}`;
    return this.opts.format === 'eventList' ? quarantineEvent(q, new Date()) : quarantineObject(q);
  }
}
