// LineFollower: a lossless, pull-based line follower for rotating log files.
//
// The consumer pulls records with next() (or for-await); the follower reads only when asked and
// keeps at most one read chunk plus one (bounded) partial line in memory, so a slow consumer
// applies back-pressure all the way to the file.
//
// Rotation handling:
//  - rename (lumberjack, logrotate create): the old file descriptor stays open and is read to its
//    end. The follower moves on only when (a) the old fd is at EOF, (b) the path now names a
//    different file, and (c) the writer has visibly moved on: a newer rotated sibling exists or
//    the new live file has data. Files rotated in between (several quick rotations) are found
//    among the siblings and read in order before the live file. There is no timer-based give-up.
//  - copytruncate (or any truncate + rewrite in place): the file's first bytes changed, checked
//    after every read and at end of file, so a rewrite that already went past our offset is caught
//    before any of its bytes are used (else size < offset) → restart at 0 in the same file.
//  - resume from a checkpoint: the live file if inode+fingerprint match; otherwise the rotated
//    sibling whose (decompressed) content fingerprint matches, then all siblings rotated after it,
//    then the live file. Not found → start at the oldest sibling and report possible data loss.
//
// Lines are yielded without the trailing '\n'. A line longer than maxLineBytes is yielded once,
// truncated to maxLineBytes and flagged `oversize` with its real length. A trailing partial line
// is held until its newline arrives; only when its file is finished (rotated away, truncated) is
// it yielded, flagged `incomplete`.

import { watch, type FSWatcher, type BigIntStats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { pipeline } from 'node:stream';
import { createGunzip, type Gunzip } from 'node:zlib';
import { errorMessage, loggerFor, type Logger } from '../../util/log.js';
import type { TailCheckpoint } from './checkpoint.js';
import {
  contentMatchesPath,
  DEFAULT_FINGERPRINT_BYTES,
  hashPrefix,
  identityOfHandle,
  isGzipHandle,
  isIdentifiedFile,
  readPlainPrefix,
  type FileIdentity,
} from './identity.js';
import {
  defaultRotatedCompare,
  defaultRotatedFilter,
  findIdentified,
  listRotated,
  rotatedHasInode,
  type RotatedCompare,
  type RotatedFile,
  type RotatedFilter,
} from './rotated.js';

export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_READ_CHUNK_BYTES = 64 * 1024;
export const DEFAULT_POLL_INTERVAL_MS = 250;

/** One line of a followed file. */
export interface TailRecord {
  /** Line content without the trailing newline (truncated to maxLineBytes when `oversize`). */
  line: Buffer;
  /** Identity of the file the line came from; its fingerprint covers ≥ min(fingerprintBytes, endOffset). */
  file: FileIdentity;
  /** Path the file was opened under (a rotated file keeps the path it was opened as). */
  path: string;
  /** Byte offset of the line start (decompressed offset for gzip files). */
  offset: number;
  /** Offset after the newline: the checkpoint offset once this line is consumed. */
  endOffset: number;
  /** Real length of the line in bytes, without the newline. */
  length: number;
  /** The line was longer than maxLineBytes; `line` holds its first maxLineBytes bytes. */
  oversize: boolean;
  /** The line has no newline: its file was finished (rotated away or truncated) mid-line. */
  incomplete: boolean;
  /** Read from a gzip file. */
  compressed: boolean;
}

export type TailStart = 'beginning' | 'end' | { checkpoint: TailCheckpoint };

export type TailEvent =
  | { type: 'opened'; path: string; identity: FileIdentity; offset: number; compressed: boolean }
  | { type: 'rotated'; from: string; to: string }
  | { type: 'truncated'; path: string; previousOffset: number }
  | { type: 'dataLoss'; reason: string; path?: string }
  | { type: 'oversize'; path: string; offset: number; length: number }
  | { type: 'error'; path: string; message: string };

export interface TailStartResult {
  /**
   * live: checkpointed file is the live file; rotated: found among rotated siblings; oldest:
   * checkpointed file not found, started at the oldest sibling (or the live file);
   * beginning/end: no checkpoint. waiting: the file does not exist yet (read from 0 once it does).
   */
  mode: 'live' | 'rotated' | 'oldest' | 'beginning' | 'end' | 'waiting';
  /** File reading starts in, if any. */
  path: string | null;
  /** Lines may have been skipped (checkpoint not found, or its offset is past the file's end). */
  possibleDataLoss: boolean;
  reason?: string;
}

export interface LineFollowerOptions {
  /** Default 'end'. */
  start?: TailStart;
  /** Longest line yielded whole; longer lines become `oversize` records. Default 16 MiB. */
  maxLineBytes?: number;
  /** Bytes per read. Default 64 KiB. */
  readChunkBytes?: number;
  /** Fallback poll interval while idle (fs.watch wakes earlier). Default 250 ms. */
  pollIntervalMs?: number;
  /** Use fs.watch on the directory in addition to polling. Default true. */
  watch?: boolean;
  /** Bytes covered by a complete fingerprint. Default 1024. */
  fingerprintBytes?: number;
  /** Which names in the directory are rotated siblings. Default: defaultRotatedFilter(basename). */
  rotatedFilter?: RotatedFilter;
  /** Order of rotated siblings, oldest first. Default: defaultRotatedCompare. */
  rotatedCompare?: RotatedCompare;
  /** Observer for rotations, truncations, data-loss warnings (also logged). */
  onEvent?: (ev: TailEvent) => void;
  /** Logger key; defaults to the path. */
  logKey?: string;
}

// ---------------------------------------------------------------------------------------------

interface SourceCommon {
  readonly path: string;
  readonly ino: bigint;
  readonly dev: bigint;
  /** Offset the source was opened at. */
  readonly start: number;
  identity: FileIdentity;
  pos: number;
  read(scratch: Buffer): Promise<Buffer | null>;
  close(): Promise<void>;
}

class PlainSource implements SourceCommon {
  readonly kind = 'plain';
  pos: number;
  identity: FileIdentity;
  /** The file's first bytes as last seen (what identity.fingerprint hashes), to notice a rewrite. */
  private prefix: Buffer;
  constructor(
    readonly fh: FileHandle,
    readonly path: string,
    readonly ino: bigint,
    readonly dev: bigint,
    prefix: Buffer,
    public start: number,
    private readonly fpBytes: number,
  ) {
    this.pos = start;
    this.prefix = prefix;
    this.identity = { inode: ino.toString(), device: dev.toString(), fingerprint: hashPrefix(prefix), fingerprintLength: prefix.length };
  }

  /** Set by read() when it returned null because the file was replaced in place. */
  replaced = false;

  /**
   * The next chunk at pos; null at end of file, or when the file was replaced in place (truncated
   * and rewritten, see replacedInPlace; `replaced` is set): then nothing of the chunk is used.
   */
  async read(scratch: Buffer): Promise<Buffer | null> {
    this.replaced = false;
    const { bytesRead } = await this.fh.read(scratch, 0, scratch.length, this.pos);
    // Checked AFTER the read: a truncate+rewrite that happened before or during it shows in the
    // prefix now, so a chunk from the new content at the old offset is never used. Also checked
    // at end of file: new content may have been written up to exactly our old offset.
    if (this.pos > 0 && (await this.replacedInPlace())) {
      this.replaced = true;
      return null;
    }
    if (bytesRead === 0) return null;
    const chunk = scratch.subarray(0, bytesRead);
    if (this.prefix.length < this.fpBytes) this.extendPrefix(chunk, this.pos);
    this.pos += bytesRead;
    return chunk;
  }

  async size(): Promise<number> {
    return (await this.fh.stat()).size;
  }

  /**
   * True when the file's first bytes are no longer the ones seen before: it was truncated and
   * written again (copytruncate, `> file`), possibly past our offset, so size and inode look fine.
   * One positional read of at most fpBytes (1 KiB, in the page cache) and a byte compare per chunk:
   * the cheapest check that catches a rewrite past the offset. size < pos misses it, and
   * mtime/ctime change with every append. A rewrite that starts with the very same fpBytes bytes is
   * indistinguishable from an append by any content check; the inode does not change either.
   */
  async replacedInPlace(): Promise<boolean> {
    if (this.prefix.length === 0) return false;
    const now = await readPlainPrefix(this.fh, this.prefix.length);
    return !now.equals(this.prefix);
  }

  /** Starts over at 0 in the rewritten file. */
  async restart(): Promise<void> {
    this.pos = 0;
    this.prefix = await readPlainPrefix(this.fh, this.fpBytes);
    this.identity = { ...this.identity, fingerprint: hashPrefix(this.prefix), fingerprintLength: this.prefix.length };
  }

  /**
   * Grows an incomplete prefix (file shorter than fpBytes when it was taken) with the bytes of a
   * chunk read at `at`. Taken from the chunk itself rather than re-read, so prefix and chunk are the
   * same content even if the file is rewritten right now. While the prefix is incomplete, pos never
   * lies beyond it (it covered the whole file when taken), so the chunk continues it.
   */
  private extendPrefix(chunk: Buffer, at: number): void {
    const from = this.prefix.length - at;
    if (from < 0 || from >= chunk.length) return;
    const take = Math.min(this.fpBytes - this.prefix.length, chunk.length - from);
    this.prefix = Buffer.concat([this.prefix, chunk.subarray(from, from + take)]); // a copy: chunk is the reused scratch
    this.identity = { ...this.identity, fingerprint: hashPrefix(this.prefix), fingerprintLength: this.prefix.length };
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

class GzipSource implements SourceCommon {
  readonly kind = 'gzip';
  pos = 0;
  /** Set when the gzip stream failed (corrupt or truncated file). */
  error: string | null = null;
  private readonly gunzip: Gunzip;
  private readonly it: AsyncIterator<unknown>;
  private skip: number;
  private ended = false;

  constructor(
    readonly fh: FileHandle,
    readonly path: string,
    readonly ino: bigint,
    readonly dev: bigint,
    public identity: FileIdentity,
    readonly start: number,
    chunkBytes: number,
  ) {
    const rs = fh.createReadStream({ start: 0, autoClose: false, highWaterMark: chunkBytes });
    this.gunzip = createGunzip({ chunkSize: Math.max(1024, Math.min(chunkBytes, 64 * 1024)) });
    pipeline(rs, this.gunzip, () => undefined);
    this.it = this.gunzip[Symbol.asyncIterator]();
    this.skip = start;
  }

  /** Decompressed bytes the checkpoint offset lay beyond the end of the content (0 if none). */
  get shortBy(): number {
    return this.ended ? this.skip : 0;
  }

  async read(): Promise<Buffer | null> {
    while (!this.ended) {
      let r: IteratorResult<unknown>;
      try {
        r = await this.it.next();
      } catch (err) {
        this.error = errorMessage(err);
        this.ended = true;
        return null;
      }
      if (r.done) {
        this.ended = true;
        return null;
      }
      let chunk = r.value as Buffer;
      if (this.skip > 0) {
        if (chunk.length <= this.skip) {
          this.skip -= chunk.length;
          this.pos += chunk.length;
          continue;
        }
        chunk = chunk.subarray(this.skip);
        this.pos += this.skip;
        this.skip = 0;
      }
      if (chunk.length === 0) continue;
      this.pos += chunk.length;
      return chunk;
    }
    return null;
  }

  async close(): Promise<void> {
    this.gunzip.destroy();
    await this.fh.close();
  }
}

type Source = PlainSource | GzipSource;

/** Wakes a waiting follower on directory events, with a poll-interval fallback. */
class Waker {
  private watcher: FSWatcher | null = null;
  private lastWatchAttempt = 0;
  private pending = false;
  private wake: (() => void) | null = null;
  private closed = false;

  constructor(
    private readonly dir: string,
    private readonly relevant: (name: string | null) => boolean,
    private readonly enabled: boolean,
  ) {
    this.ensureWatch();
  }

  private ensureWatch(): void {
    if (!this.enabled || this.closed || this.watcher !== null) return;
    const now = Date.now();
    if (now - this.lastWatchAttempt < 10_000) return;
    this.lastWatchAttempt = now;
    try {
      const w = watch(this.dir, { persistent: false }, (_ev, name) => {
        if (this.relevant(typeof name === 'string' ? name : null)) this.notify();
      });
      w.on('error', () => {
        w.close();
        if (this.watcher === w) this.watcher = null;
        this.notify();
      });
      this.watcher = w;
    } catch {
      this.watcher = null; // no inotify (or no dir yet): poll only, retry later
    }
  }

  notify(): void {
    this.pending = true;
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  wait(ms: number): Promise<void> {
    this.ensureWatch();
    if (this.pending || this.closed) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.wake === done) this.wake = null;
        this.pending = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = null;
    this.notify();
  }
}

async function statBig(path: string): Promise<BigIntStats | null> {
  try {
    return await stat(path, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function isEnoent(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

// ---------------------------------------------------------------------------------------------

/** Checkpoint after a consumed record. */
export function checkpointOf(rec: TailRecord): TailCheckpoint {
  return { identity: rec.file, offset: rec.endOffset };
}

export class LineFollower implements AsyncIterable<TailRecord> {
  readonly path: string;
  private readonly dir: string;
  private readonly startSpec: TailStart;
  private readonly maxLineBytes: number;
  private readonly pollMs: number;
  private readonly fpBytes: number;
  private readonly chunkBytes: number;
  private readonly filter: RotatedFilter;
  private readonly compare: RotatedCompare;
  private readonly onEvent: ((ev: TailEvent) => void) | undefined;
  private readonly log: Logger;
  private readonly waker: Waker;
  private readonly scratch: Buffer;

  private cur: Source | null = null;
  private queue: Source[] = [];
  // unconsumed part of the last chunk read
  private buf: Buffer | null = null;
  private bufIdx = 0;
  private bufOffset = 0;
  // the line being assembled
  private parts: Buffer[] = [];
  private keptLen = 0;
  private lineLen = 0;
  private lineStart = 0;
  private skipFirst = false;
  private out: TailRecord[] = [];

  private started: Promise<TailStartResult> | null = null;
  private inflight: Promise<void> = Promise.resolve();
  private closed = false;
  private last: TailCheckpoint | null = null;
  private warnedUnlocated = false;

  constructor(path: string, opts: LineFollowerOptions = {}) {
    this.path = path;
    this.dir = dirname(path);
    const base = basename(path);
    this.startSpec = opts.start ?? 'end';
    this.maxLineBytes = Math.max(1, opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    this.pollMs = Math.max(10, opts.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS);
    this.fpBytes = Math.max(1, opts.fingerprintBytes ?? DEFAULT_FINGERPRINT_BYTES);
    this.chunkBytes = Math.max(1024, opts.readChunkBytes ?? DEFAULT_READ_CHUNK_BYTES);
    this.filter = opts.rotatedFilter ?? defaultRotatedFilter(base);
    this.compare = opts.rotatedCompare ?? defaultRotatedCompare;
    this.onEvent = opts.onEvent;
    this.log = loggerFor('tail', opts.logKey ?? path);
    this.scratch = Buffer.allocUnsafe(this.chunkBytes);
    const filter = this.filter;
    this.waker = new Waker(this.dir, (name) => name === null || name === base || filter(name), opts.watch ?? true);
  }

  /** Opens the start file (idempotent; next() calls it implicitly). */
  start(): Promise<TailStartResult> {
    this.started ??= this.doStart();
    return this.started;
  }

  /** Next line; waits for data. Resolves null once the follower is closed. */
  next(): Promise<TailRecord | null> {
    if (this.closed) return Promise.resolve(null);
    const p = this.inflight.then(() => this.pull());
    this.inflight = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  }

  /** Iterates until close(). Breaking out of the loop does not close the follower. */
  async *[Symbol.asyncIterator](): AsyncIterator<TailRecord> {
    for (;;) {
      const r = await this.next();
      if (r === null) return;
      yield r;
    }
  }

  /** Checkpoint after the last record returned by next(), or null if none yet. */
  position(): TailCheckpoint | null {
    return this.last;
  }

  /** Stops following: a pending next() resolves null; open files are closed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.waker.close();
    await this.inflight;
    await this.started?.catch(() => undefined);
    const all = [...(this.cur ? [this.cur] : []), ...this.queue];
    this.cur = null;
    this.queue = [];
    for (const s of all) await s.close().catch(() => undefined);
  }

  // -------------------------------------------------------------------------------------------

  private event(ev: TailEvent): void {
    if (ev.type === 'dataLoss' || ev.type === 'truncated' || ev.type === 'error' || ev.type === 'oversize') this.log.warn(`tail ${ev.type}`, ev);
    else this.log.debug(`tail ${ev.type}`, ev);
    try {
      this.onEvent?.(ev);
    } catch (err) {
      this.log.error('tail onEvent callback threw', { error: errorMessage(err) });
    }
  }

  private async pull(): Promise<TailRecord | null> {
    await this.start();
    for (;;) {
      if (this.closed) return null;
      const queued = this.out.shift();
      if (queued) return this.emit(queued);
      const rec = this.takeLine();
      if (rec) return this.emit(rec);
      const cur = this.cur;
      if (cur === null) {
        if (!(await this.openLiveInitial())) await this.waker.wait(this.pollMs);
        continue;
      }
      const chunk = await cur.read(this.scratch);
      if (chunk === null && cur.kind === 'plain' && cur.replaced) {
        await this.truncated(cur); // rewritten in place: the bytes at our offset belong to new content
        continue;
      }
      if (chunk !== null) {
        this.buf = chunk;
        this.bufIdx = 0;
        this.bufOffset = cur.pos - chunk.length;
        continue;
      }
      if (!(await this.atEof(cur))) await this.waker.wait(this.pollMs);
    }
  }

  private emit(rec: TailRecord): TailRecord {
    this.last = { identity: rec.file, offset: rec.endOffset };
    if (rec.oversize) this.event({ type: 'oversize', path: rec.path, offset: rec.offset, length: rec.length });
    return rec;
  }

  // --- line assembly ---------------------------------------------------------------------------

  private takeLine(): TailRecord | null {
    while (this.buf !== null) {
      const buf = this.buf;
      const nl = buf.indexOf(0x0a, this.bufIdx);
      if (nl === -1) {
        this.appendPart(buf, this.bufIdx, buf.length);
        this.buf = null;
        return null;
      }
      this.appendPart(buf, this.bufIdx, nl);
      this.bufIdx = nl + 1;
      if (this.bufIdx >= buf.length) this.buf = null;
      const end = this.bufOffset + nl + 1;
      if (this.skipFirst) {
        this.skipFirst = false;
        this.resetLine(end);
        continue;
      }
      const rec = this.makeRecord(end, false);
      this.resetLine(end);
      return rec;
    }
    return null;
  }

  private appendPart(buf: Buffer, from: number, to: number): void {
    const len = to - from;
    if (len <= 0) return;
    this.lineLen += len;
    if (this.skipFirst) return;
    const room = this.maxLineBytes - this.keptLen;
    if (room <= 0) return;
    const take = Math.min(room, len);
    this.parts.push(Buffer.from(buf.subarray(from, from + take))); // copy: buf may be the reused scratch
    this.keptLen += take;
  }

  private makeRecord(endOffset: number, incomplete: boolean): TailRecord {
    const cur = this.cur;
    if (cur === null) throw new Error('internal: record without a source');
    const line = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.keptLen);
    return {
      line,
      file: cur.identity,
      path: cur.path,
      offset: this.lineStart,
      endOffset,
      length: this.lineLen,
      oversize: this.lineLen > this.maxLineBytes,
      incomplete,
      compressed: cur.kind === 'gzip',
    };
  }

  private resetLine(start: number): void {
    this.parts = [];
    this.keptLen = 0;
    this.lineLen = 0;
    this.lineStart = start;
  }

  /** Yields (queues) a held partial line of the current file, which will not be completed. */
  private flushPartial(): void {
    if (this.lineLen > 0 && !this.skipFirst) this.out.push(this.makeRecord(this.lineStart + this.lineLen, true));
    this.skipFirst = false;
    this.buf = null;
    this.resetLine(0);
  }

  // --- sources ---------------------------------------------------------------------------------

  private async sourceFromHandle(fh: FileHandle, path: string, offset: number): Promise<Source> {
    try {
      const st = await fh.stat({ bigint: true });
      if (await isGzipHandle(fh)) return new GzipSource(fh, path, st.ino, st.dev, await identityOfHandle(fh, this.fpBytes, true), offset, this.chunkBytes);
      return new PlainSource(fh, path, st.ino, st.dev, await readPlainPrefix(fh, this.fpBytes), offset, this.fpBytes);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  /** Opens a file; null if it does not exist. */
  private async openSource(path: string, offset: number): Promise<Source | null> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if (isEnoent(err)) return null;
      throw err;
    }
    return this.sourceFromHandle(fh, path, offset);
  }

  /** Opens rotated files from 0, following a plain file to its .gz if it vanished meanwhile. */
  private async openAll(files: RotatedFile[]): Promise<Source[]> {
    const out: Source[] = [];
    try {
      for (const f of files) {
        const candidates = [f.path, ...(f.twin ? [f.twin.path] : []), ...(f.compressed ? [] : [`${f.path}.gz`])];
        let src: Source | null = null;
        for (const p of [...new Set(candidates)]) {
          src = await this.openSource(p, 0);
          if (src) break;
        }
        if (src) out.push(src);
        else this.event({ type: 'dataLoss', reason: 'rotated file vanished before it could be opened', path: f.path });
      }
    } catch (err) {
      for (const s of out) await s.close().catch(() => undefined);
      throw err;
    }
    return out;
  }

  private async switchTo(src: Source): Promise<void> {
    const old = this.cur;
    if (old) {
      this.flushPartial();
      if (old.kind === 'gzip') {
        if (old.error) this.event({ type: 'error', path: old.path, message: `gzip: ${old.error}` });
        if (old.shortBy > 0) this.event({ type: 'dataLoss', reason: `checkpoint offset beyond the end of the file by ${old.shortBy} bytes`, path: old.path });
      }
      await old.close().catch(() => undefined);
      this.event({ type: 'rotated', from: old.path, to: src.path });
    }
    this.cur = src;
    this.buf = null;
    this.skipFirst = false;
    this.resetLine(src.start);
    this.event({ type: 'opened', path: src.path, identity: src.identity, offset: src.start, compressed: src.kind === 'gzip' });
  }

  private async openLiveInitial(): Promise<boolean> {
    const src = await this.openSource(this.path, 0);
    if (!src) return false;
    await this.switchTo(src);
    return true;
  }

  // --- start / resume --------------------------------------------------------------------------

  private async doStart(): Promise<TailStartResult> {
    const spec = this.startSpec;
    if (spec === 'beginning' || spec === 'end') {
      let fh: FileHandle;
      try {
        fh = await open(this.path, 'r');
      } catch (err) {
        if (isEnoent(err)) return { mode: 'waiting', path: null, possibleDataLoss: false };
        throw err;
      }
      let offset = 0;
      let midLine = false;
      if (spec === 'end' && !(await isGzipHandle(fh))) {
        offset = (await fh.stat()).size;
        if (offset > 0) {
          const last = Buffer.alloc(1);
          await fh.read(last, 0, 1, offset - 1);
          midLine = last[0] !== 0x0a;
        }
      }
      await this.switchTo(await this.sourceFromHandle(fh, this.path, offset));
      this.skipFirst = midLine; // started mid-line: drop the fragment up to the next newline
      return { mode: spec, path: this.path, possibleDataLoss: false };
    }
    return this.resume(spec.checkpoint);
  }

  private async resume(cp: TailCheckpoint): Promise<TailStartResult> {
    const id = cp.identity;
    // 1. the live file: same inode and same content prefix
    let fh: FileHandle | null = null;
    try {
      fh = await open(this.path, 'r');
    } catch (err) {
      if (!isEnoent(err)) throw err;
    }
    if (fh) {
      if (await isIdentifiedFile(id, fh, await fh.stat({ bigint: true }))) {
        const src = await this.sourceFromHandle(fh, this.path, cp.offset);
        return this.startIn(src, cp.offset, 'live');
      }
      await fh.close();
    }
    // 2. a rotated sibling: same inode and content, else same content (newest first)
    const list = await listRotated(this.path, this.filter, this.compare);
    const idx = await findIdentified(list, id);
    if (idx >= 0) {
      const found = list[idx] as RotatedFile;
      const src = (await this.openSource(found.path, cp.offset)) ?? (found.twin ? await this.openSource(found.twin.path, cp.offset) : null);
      if (src) {
        this.queue = await this.openAll(list.slice(idx + 1));
        return this.startIn(src, cp.offset, 'rotated');
      }
    }
    // 3. not found: oldest available
    const reason = 'checkpointed file not found; starting at the oldest available file';
    this.event({ type: 'dataLoss', reason, path: this.path });
    this.queue = await this.openAll(list);
    const first = this.queue.shift();
    if (first) {
      await this.switchTo(first);
      return { mode: 'oldest', path: first.path, possibleDataLoss: true, reason };
    }
    const live = await this.openSource(this.path, 0);
    if (live) await this.switchTo(live);
    return { mode: 'oldest', path: live ? this.path : null, possibleDataLoss: true, reason };
  }

  private async startIn(src: Source, offset: number, mode: 'live' | 'rotated'): Promise<TailStartResult> {
    if (src.kind === 'plain') {
      const size = await src.size();
      if (offset > size) {
        // the file shrank below the checkpoint (copytruncate while stopped): start over in it
        src.pos = 0;
        src.start = 0;
        await this.switchTo(src);
        const reason = `checkpoint offset ${offset} is beyond the file size ${size}; reading it from the start`;
        this.event({ type: 'dataLoss', reason, path: src.path });
        return { mode, path: src.path, possibleDataLoss: true, reason };
      }
    }
    await this.switchTo(src);
    return { mode, path: src.path, possibleDataLoss: false };
  }

  // --- end of file: wait, truncation, rotation -------------------------------------------------

  /** Called when the current source has no more data. Returns true if something changed (read again). */
  private async atEof(cur: Source): Promise<boolean> {
    if (this.queue.length > 0) {
      // a finished rotated file (resume chain or several rotations): move on to the next one
      await this.switchTo(this.queue.shift() as Source);
      return true;
    }
    if (cur.kind === 'plain') {
      const size = await cur.size();
      if (size < cur.pos) {
        await this.truncated(cur);
        return true;
      }
      if (size > cur.pos) return true;
    }
    const pst = await statBig(this.path);
    if (pst && pst.ino === cur.ino && pst.dev === cur.dev) return false; // still the live file: wait
    // The path names another file (or none): cur was rotated away.
    const after = await this.rotatedAfter(cur);
    const liveHasData = pst !== null && pst.isFile() && pst.size > 0n;
    if (cur.kind === 'plain') {
      // The writer may still append to the renamed file until it reopens; move on only once it
      // visibly has (a newer rotated file exists, or the new live file has data) and cur is drained.
      if (after.length === 0 && !liveHasData) return false;
      if ((await cur.size()) > cur.pos) return true;
    }
    if (after.length > 0) {
      const opened = await this.openAll(after);
      const first = opened.shift();
      if (first) {
        this.queue = opened;
        await this.switchTo(first);
        return true;
      }
    }
    if (pst === null || (cur.kind === 'plain' && !liveHasData)) return false;
    // Open the live file, then make sure no rotation slipped in between listing and opening.
    let fh: FileHandle;
    try {
      fh = await open(this.path, 'r');
    } catch (err) {
      if (isEnoent(err)) return false;
      throw err;
    }
    const fst = await fh.stat({ bigint: true });
    if (fst.ino === cur.ino && fst.dev === cur.dev) {
      await fh.close();
      return false;
    }
    const again = (await this.rotatedAfter(cur)).filter((f) => !rotatedHasInode(f, fst.ino, fst.dev));
    if (again.length > 0) {
      await fh.close();
      return true; // another rotation happened meanwhile: re-evaluate with the new listing
    }
    await this.switchTo(await this.sourceFromHandle(fh, this.path, 0));
    return true;
  }

  private async truncated(cur: PlainSource): Promise<void> {
    const previousOffset = cur.pos;
    this.flushPartial();
    await cur.restart();
    this.resetLine(0);
    this.event({ type: 'truncated', path: cur.path, previousOffset });
  }

  /** Rotated siblings newer than `cur`, oldest first ([] if cur cannot be located among them). */
  private async rotatedAfter(cur: Source): Promise<RotatedFile[]> {
    const list = await listRotated(this.path, this.filter, this.compare);
    let idx = list.findIndex((f) => rotatedHasInode(f, cur.ino, cur.dev));
    if (idx < 0 && cur.identity.fingerprintLength > 0) {
      // renamed then compressed and removed: find its .gz by content, newest first
      for (let i = list.length - 1; i >= 0; i--) {
        if (await contentMatchesPath(cur.identity, (list[i] as RotatedFile).path)) {
          idx = i;
          break;
        }
      }
    }
    if (idx < 0) {
      if (list.length > 0 && !this.warnedUnlocated) {
        this.warnedUnlocated = true;
        this.log.warn('rotated file not found among siblings; continuing with the live file', { path: cur.path });
      }
      return [];
    }
    this.warnedUnlocated = false;
    return list.slice(idx + 1).filter((f) => !rotatedHasInode(f, cur.ino, cur.dev));
  }
}
