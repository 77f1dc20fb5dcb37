// DiskBuffer: the forwarder's bounded, durable buffer between reading the audit log and
// delivering it (Vector's disk buffer is the model). What the reader has appended and flushed
// survives a crash, so the log file may be deleted (--audit-log-maxbackup) once it has been read,
// and a sink outage no longer holds the reading back until the buffer is full.
//
// On disk: <dir>/<segment number, 12 digits>.seg, each a run of records
//   [u32 LE payload length][u32 LE CRC-32 of the payload][payload]
// written append-only. A segment is closed at SEGMENT_BYTES; segments wholly delivered are
// deleted. Positions ({segment, offset}) name the byte after a record; the pipeline's checkpoint
// stores two: how far the buffer was delivered, and how far it was committed (fsynced, with the
// log position it corresponds to saved beside it). Only committed records are handed to the
// sender, and on open the buffer is cut back to the committed end, so what is appended after a
// commit and lost in a crash is read from the log again exactly once.
import { mkdir, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { collectYoungGarbage } from '../../util/gc.js';

export interface BufferPosition {
  segment: number;
  offset: number;
}

export interface BufferRecord {
  payload: Buffer;
  /** The position after this record: delivered up to here once it is acknowledged. */
  end: BufferPosition;
}

export interface DiskBufferOptions {
  /** Bytes not yet delivered that the buffer holds at most; append() waits beyond. */
  maxBytes: number;
  /** Size at which a segment is closed. Default 16 MiB. */
  segmentBytes?: number;
}

const HEADER_BYTES = 8;
const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;
/** Appended records are written in slices of this size. */
const WRITE_SLICE_BYTES = 256 * 1024;
const READ_CHUNK_BYTES = 256 * 1024;
/** Read-ahead chunks die as their records are batched; collect them after every this many bytes. */
const COLLECT_EVERY_BYTES = 16 * 1024 * 1024;
const SEGMENT_NAME = /^(\d{12})\.seg$/;

export function isBufferPosition(v: unknown): v is BufferPosition {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return Number.isSafeInteger(o.segment) && (o.segment as number) >= 0 && Number.isSafeInteger(o.offset) && (o.offset as number) >= 0;
}

function comparePositions(a: BufferPosition, b: BufferPosition): number {
  return a.segment !== b.segment ? a.segment - b.segment : a.offset - b.offset;
}

export class DiskBuffer {
  private readonly segmentBytes: number;
  /** Segments on disk, oldest first, with their sizes. */
  private segments: Array<{ n: number; size: number }> = [];
  private writer: FileHandle | null = null;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private unflushed = false;
  /** Where the reader is; records before it have been handed out. */
  private read: BufferPosition;
  private delivered: BufferPosition;
  /** Records up to here are committed: the sender may have them. */
  private committed: BufferPosition;
  private readerHandle: { n: number; fh: FileHandle } | null = null;
  private chunk: Buffer = Buffer.alloc(0);
  private chunkAt: BufferPosition = { segment: -1, offset: 0 };
  private readSinceCollect = 0;
  /** Bytes appended and not delivered (kept up to date, as append() asks for it per record). */
  private held = 0;
  private waiting: (() => void) | null = null;
  private roomWaiters: Array<() => void> = [];
  private closed = false;
  /** Writes and fsyncs one at a time: each goes at the end the one before it left. */
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    private readonly opts: DiskBufferOptions,
    delivered: BufferPosition,
  ) {
    this.segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.delivered = delivered;
    this.read = delivered;
    this.committed = delivered;
  }

  /**
   * Opens (or creates) the buffer: records before `delivered` are dropped, and so are those after
   * `committed` (appended, but their log lines are read again); with nothing committed, all are.
   */
  static async open(dir: string, delivered: BufferPosition | null, committed: BufferPosition | null, opts: DiskBufferOptions): Promise<DiskBuffer> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const found = (await readdir(dir)).map((f) => SEGMENT_NAME.exec(f)).filter((m): m is RegExpExecArray => m !== null).map((m) => Number(m[1]));
    found.sort((a, b) => a - b);
    const first = found[0] ?? delivered?.segment ?? 0;
    const buffer = new DiskBuffer(dir, opts, delivered ?? { segment: first, offset: 0 });
    await buffer.recover(found, committed);
    return buffer;
  }

  /** Bytes appended and not delivered yet (what the status calls buffered). */
  get bytes(): number {
    return this.held;
  }

  /** The count behind `bytes`, from the segments: once per delivery, not per append. */
  private countHeld(): number {
    let total = 0;
    for (const s of this.segments) {
      if (s.n < this.delivered.segment) continue;
      total += s.n === this.delivered.segment ? Math.max(0, s.size - this.delivered.offset) : s.size;
    }
    return total + this.pendingBytes;
  }

  get full(): boolean {
    return this.bytes >= this.opts.maxBytes;
  }

  // --- writing ---------------------------------------------------------------------------------

  /** Appends one record; waits while the buffer is full. Durable only after flush(). */
  async append(payload: Buffer): Promise<void> {
    while (this.full && !this.closed) await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    if (this.closed) throw new Error('audit buffer closed');
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    header.writeUInt32LE(payload.length, 0);
    header.writeUInt32LE(crc32(payload), 4);
    this.pending.push(header, payload);
    this.pendingBytes += HEADER_BYTES + payload.length;
    this.held += HEADER_BYTES + payload.length;
    this.unflushed = true;
    if (this.pendingBytes >= WRITE_SLICE_BYTES) await this.writePending();
  }

  /** Makes every appended record durable (written and fsynced); resolves to the end of them. */
  flush(): Promise<BufferPosition> {
    let end: BufferPosition = this.committed;
    return this.serially(async () => {
      await this.writeNow();
      if (this.writer && this.unflushed) await this.writer.sync();
      this.unflushed = false;
      const last = this.segments.at(-1);
      end = last ? { segment: last.n, offset: last.size } : this.committed;
    }).then(() => end);
  }

  /** The records up to `end` (a flush()'s) are committed: hand them to the sender. */
  commit(end: BufferPosition): void {
    if (comparePositions(end, this.committed) <= 0) return;
    this.committed = end;
    this.wakeReader();
  }

  private writePending(): Promise<void> {
    return this.serially(() => this.writeNow());
  }

  private serially(step: () => Promise<void>): Promise<void> {
    const run = this.writing.then(step);
    this.writing = run.catch(() => undefined);
    return run;
  }

  private async writeNow(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const tail = this.segments.at(-1);
    if (!this.writer || !tail || tail.size >= this.segmentBytes) await this.startSegment();
    const seg = this.segments.at(-1)!;
    const parts = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    // A full disk may take part of a write and refuse the rest: write on until it says why.
    let written = 0;
    let rest = parts;
    try {
      while (written < bytes) {
        const { bytesWritten } = await this.writer!.writev(rest, seg.size + written);
        if (bytesWritten === 0) throw new Error('no bytes written');
        written += bytesWritten;
        if (written < bytes) rest = [Buffer.concat(parts).subarray(written)];
      }
    } catch (err) {
      throw new Error(`cannot write the audit buffer ${this.segmentPath(seg.n)}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    seg.size += bytes;
  }

  private async startSegment(): Promise<void> {
    if (this.writer) {
      if (this.unflushed) await this.writer.sync();
      await this.writer.close();
    }
    const n = (this.segments.at(-1)?.n ?? this.delivered.segment - 1) + 1;
    this.writer = await open(this.segmentPath(n), 'a', 0o600);
    this.segments.push({ n, size: 0 });
  }

  // --- reading ---------------------------------------------------------------------------------

  /** The next committed record after the last one handed out; waits for one. Null once closed. */
  async next(): Promise<BufferRecord | null> {
    for (;;) {
      if (this.closed) return null;
      if (this.readable) {
        const here = this.segments.find((s) => s.n === this.read.segment);
        if (this.read.offset >= (here?.size ?? 0)) {
          // The end of a segment (or one that was never written): go on to the next.
          const later = this.segments.find((s) => s.n > this.read.segment);
          if (!later) throw new Error(`audit buffer ${this.dir}: committed up to ${this.committed.segment}:${this.committed.offset}, beyond its segments`);
          this.read = { segment: later.n, offset: 0 };
          continue;
        }
        const rec = await this.readAt(this.read);
        if (rec === null) throw new Error(`audit buffer ${this.segmentPath(this.read.segment)}: no whole record at ${this.read.offset}, below the committed end`);
        this.read = rec.end;
        return rec;
      }
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  /** Whether a committed record is there to be handed out now. */
  get readable(): boolean {
    return comparePositions(this.read, this.committed) < 0;
  }

  /** Hands out the records after `position` again (a batch that was never acknowledged). */
  rewind(position: BufferPosition): void {
    this.read = position;
    this.chunk = Buffer.alloc(0);
  }

  /** Everything before `position` was delivered: whole segments before it are deleted. */
  async acknowledge(position: BufferPosition): Promise<void> {
    if (comparePositions(position, this.delivered) <= 0) return;
    this.delivered = position;
    const done = this.segments.filter((s) => s.n < position.segment);
    this.segments = this.segments.filter((s) => s.n >= position.segment);
    this.held = this.countHeld();
    for (const s of done) {
      if (this.readerHandle?.n === s.n) {
        await this.readerHandle.fh.close().catch(() => undefined);
        this.readerHandle = null;
      }
      await rm(this.segmentPath(s.n), { force: true });
    }
    const waiters = this.roomWaiters.splice(0);
    for (const w of waiters) w();
  }

  /** Once closed: removes the segments (and the directory) if everything in them was delivered. */
  async dropIfDelivered(): Promise<void> {
    if (!this.closed || this.bytes > 0) return;
    this.segments = [];
    this.held = 0;
    await rm(this.dir, { recursive: true, force: true });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.waiting?.();
    for (const w of this.roomWaiters.splice(0)) w();
    await this.writing;
    await this.writer?.close().catch(() => undefined);
    this.writer = null;
    await this.readerHandle?.fh.close().catch(() => undefined);
    this.readerHandle = null;
  }

  // -------------------------------------------------------------------------------------------

  private segmentPath(n: number): string {
    return path.join(this.dir, `${String(n).padStart(12, '0')}.seg`);
  }

  private wakeReader(): void {
    const w = this.waiting;
    this.waiting = null;
    w?.();
  }

  /** The record at `at`, or null when none is whole there yet. */
  private async readAt(at: BufferPosition): Promise<BufferRecord | null> {
    const seg = this.segments.find((s) => s.n === at.segment);
    if (!seg || seg.size - at.offset < HEADER_BYTES) return null;
    const header = await this.bytesAt(at, HEADER_BYTES);
    const length = header.readUInt32LE(0);
    if (seg.size - at.offset < HEADER_BYTES + length) return null;
    // A view into a read-ahead chunk that is never reused, so no copy.
    const payload = await this.bytesAt({ segment: at.segment, offset: at.offset + HEADER_BYTES }, length);
    if (crc32(payload) !== header.readUInt32LE(4)) throw new Error(`audit buffer ${this.segmentPath(at.segment)} is damaged at ${at.offset}`);
    return { payload, end: { segment: at.segment, offset: at.offset + HEADER_BYTES + length } };
  }

  /** `length` bytes at `at`, through a read-ahead chunk. */
  private async bytesAt(at: BufferPosition, length: number): Promise<Buffer> {
    const from = at.offset - this.chunkAt.offset;
    if (this.chunkAt.segment === at.segment && from >= 0 && from + length <= this.chunk.length) return this.chunk.subarray(from, from + length);
    if (this.readerHandle?.n !== at.segment) {
      await this.readerHandle?.fh.close().catch(() => undefined);
      this.readerHandle = { n: at.segment, fh: await open(this.segmentPath(at.segment), 'r') };
    }
    const size = Math.max(length, READ_CHUNK_BYTES);
    const chunk = Buffer.allocUnsafe(size);
    const { bytesRead } = await this.readerHandle.fh.read(chunk, 0, size, at.offset);
    // Like the spool's read-back: few JS objects are made per chunk, so V8 would not collect the
    // dead ones for tens of MB (the forwarder without gzip peaked at 156 MB instead of 137).
    this.readSinceCollect += bytesRead;
    if (this.readSinceCollect >= COLLECT_EVERY_BYTES) {
      this.readSinceCollect = 0;
      collectYoungGarbage();
    }
    this.chunk = chunk.subarray(0, bytesRead);
    this.chunkAt = at;
    if (bytesRead < length) throw new Error(`audit buffer ${this.segmentPath(at.segment)} is shorter than its records`);
    return this.chunk.subarray(0, length);
  }

  /**
   * Takes stock of the segments left by the last run: those wholly delivered go, and the rest is
   * cut back to the committed end (a write cut short by a crash goes with what follows it).
   */
  private async recover(found: number[], committed: BufferPosition | null): Promise<void> {
    for (const n of found) {
      if (n < this.delivered.segment || committed === null || n > committed.segment) {
        await rm(this.segmentPath(n), { force: true });
        continue;
      }
      const fh = await open(this.segmentPath(n), 'r+');
      try {
        const size = (await fh.stat()).size;
        const keep = n === committed.segment ? Math.min(size, committed.offset) : size;
        if (keep < size) await fh.truncate(keep);
        this.segments.push({ n, size: keep });
      } finally {
        await fh.close();
      }
    }
    const first = this.segments[0];
    if (first && first.n > this.delivered.segment) this.delivered = { segment: first.n, offset: 0 };
    // Everything delivered and the segments removed (see dropIfDelivered): number on after it.
    if (!first && this.delivered.offset > 0) this.delivered = { segment: this.delivered.segment + 1, offset: 0 };
    // Records delivered before they were fsynced, then lost with the page cache in a crash: the
    // segment is shorter than what was delivered of it. It is done; new records go to a new one.
    const at = this.segments.find((x) => x.n === this.delivered.segment);
    if (at && at.size < this.delivered.offset) {
      await rm(this.segmentPath(at.n), { force: true });
      this.segments = this.segments.filter((x) => x !== at);
      this.delivered = { segment: at.n + 1, offset: 0 };
    }
    this.read = this.delivered;
    const last = this.segments.at(-1);
    this.committed = last ? { segment: last.n, offset: last.size } : this.delivered;
    this.held = this.countHeld();
  }
}
