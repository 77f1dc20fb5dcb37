// LineFollower: a lossless, pull-based line follower for rotating log files.
//
// The consumer pulls records with next() (or for-await); the follower reads only when asked and
// keeps at most one read chunk plus one (bounded) partial line in memory, so a slow consumer
// applies back-pressure all the way to the file. Its parts, as in Vector's file source: the
// readers (sources.ts), the fingerprints (identity.ts), the rotation watcher (watcher.ts) and the
// checkpoint (checkpoint.ts).
//
// Rotation handling:
//  - rename (lumberjack, logrotate create): the old file descriptor stays open and is read to its
//    end. The follower moves on only when (a) the old fd is at EOF, (b) the path now names a
//    different file, and (c) the writer has visibly moved on: a newer rotated file exists or the
//    new live file has data. There is no timer-based give-up.
//  - files rotated after the current one are opened by the rotation watcher the moment they
//    appear, and read in order before the live file, even if the writer's cleanup deletes them or
//    the current file meanwhile. The live file is never opened while a newer rotated file is unread.
//  - copytruncate (or any truncate + rewrite in place): the file's first bytes changed, checked
//    after every read and at end of file, so a rewrite that already went past our offset is caught
//    before any of its bytes are used (else size < offset) → restart at 0 in the same file.
//  - resume from a checkpoint: the live file if inode+fingerprint match; otherwise the rotated
//    sibling whose (decompressed) content fingerprint matches, then all siblings rotated after it,
//    then the live file. Not found → start at the oldest sibling and report a gap.
//
// Every skip is a `dataLoss` event (a TailGap): a rotated file deleted before it could be opened,
// the checkpointed file gone after a restart, a checkpoint beyond a file's end, a held file let go
// to free disk.
//
// Lines are yielded without the trailing '\n'. A line longer than maxLineBytes is yielded once,
// truncated to maxLineBytes and flagged `oversize` with its real length. A trailing partial line
// is held until its newline arrives; only when its file is finished (rotated away, truncated) is
// it yielded, flagged `incomplete`.

import { stat, open, type FileHandle } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { errorMessage, loggerFor, type Logger } from '../../util/log.js';
import type { TailCheckpoint } from './checkpoint.js';
import { DEFAULT_FINGERPRINT_BYTES, isGzipHandle, isIdentifiedFile, isFingerprintComplete } from './identity.js';
import { defaultRotatedCompare, defaultRotatedFilter, findIdentified, type RotatedCompare, type RotatedFile, type RotatedFilter } from './rotated.js';
import { isEnoent, openSource, sourceFromHandle, type Source, type SourceSettings, type PlainSource } from './sources.js';
import type { TailEvent, TailGap, TailRecord, TailStart, TailStartResult } from './types.js';
import { LineAssembler } from './lines.js';
import { Waker } from './waker.js';
import { RotationWatcher } from './watcher.js';

export type { RotationPlace, TailEvent, TailGap, TailRecord, TailStart, TailStartResult } from './types.js';
export { describeGap } from './types.js';

export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_READ_CHUNK_BYTES = 64 * 1024;
export const DEFAULT_POLL_INTERVAL_MS = 250;

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
  /** How often the directory is listed for new rotated files besides on its events. Default 1 s. */
  discoverIntervalMs?: number;
  /** Disk that deleted, still unread rotated files may keep taken while held open. Default 1 GiB. */
  maxHeldDeletedBytes?: number;
  /** Observer for rotations, truncations, gaps (also logged). */
  onEvent?: (ev: TailEvent) => void;
  /** Logger key; defaults to the path. */
  logKey?: string;
}

async function statBig(path: string): Promise<BigIntStats | null> {
  try {
    return await stat(path, { bigint: true });
  } catch (err) {
    if (isEnoent(err)) return null;
    throw err;
  }
}

/** Checkpoint after a consumed record. */
export function checkpointOf(rec: TailRecord): TailCheckpoint {
  const cp: TailCheckpoint = { identity: rec.file, offset: rec.endOffset };
  if (rec.place.name !== undefined || rec.place.after !== undefined) cp.place = rec.place;
  return cp;
}

export class LineFollower implements AsyncIterable<TailRecord> {
  readonly path: string;
  private readonly base: string;
  private readonly startSpec: TailStart;
  private readonly maxLineBytes: number;
  private readonly pollMs: number;
  private readonly settings: SourceSettings;
  private readonly onEvent: ((ev: TailEvent) => void) | undefined;
  private readonly log: Logger;
  private readonly waker: Waker;
  private readonly watcher: RotationWatcher;
  private readonly scratch: Buffer;

  private cur: Source | null = null;
  private readonly lines: LineAssembler;

  private started: Promise<TailStartResult> | null = null;
  private inflight: Promise<void> = Promise.resolve();
  private closed = false;
  private last: TailCheckpoint | null = null;

  constructor(path: string, opts: LineFollowerOptions = {}) {
    this.path = path;
    this.base = basename(path);
    this.startSpec = opts.start ?? 'end';
    this.maxLineBytes = Math.max(1, opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    this.pollMs = Math.max(10, opts.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS);
    this.settings = {
      fingerprintBytes: Math.max(1, opts.fingerprintBytes ?? DEFAULT_FINGERPRINT_BYTES),
      readChunkBytes: Math.max(1024, opts.readChunkBytes ?? DEFAULT_READ_CHUNK_BYTES),
    };
    const filter = opts.rotatedFilter ?? defaultRotatedFilter(this.base);
    this.onEvent = opts.onEvent;
    this.log = loggerFor('tail', opts.logKey ?? path);
    this.scratch = Buffer.allocUnsafe(this.settings.readChunkBytes);
    this.lines = new LineAssembler(this.maxLineBytes);
    this.waker = new Waker(dirname(path), (name) => name === null || name === this.base || filter(name), opts.watch ?? true);
    this.watcher = new RotationWatcher({
      livePath: path,
      filter,
      compare: opts.rotatedCompare ?? defaultRotatedCompare,
      settings: this.settings,
      waker: this.waker,
      current: () => this.cur,
      onGap: (gap) => this.event({ type: 'dataLoss', ...gap }),
      onError: (message) => this.event({ type: 'error', path, message }),
      log: this.log,
      ...(opts.discoverIntervalMs !== undefined ? { discoverIntervalMs: opts.discoverIntervalMs } : {}),
      ...(opts.maxHeldDeletedBytes !== undefined ? { maxHeldDeletedBytes: opts.maxHeldDeletedBytes } : {}),
    });
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
    await this.watcher.close();
    const cur = this.cur;
    this.cur = null;
    await cur?.close().catch(() => undefined);
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

  private gap(gap: TailGap): void {
    this.event({ type: 'dataLoss', ...gap });
  }

  private async pull(): Promise<TailRecord | null> {
    await this.start();
    for (;;) {
      if (this.closed) return null;
      const rec = this.lines.take(this.cur);
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
        this.lines.feed(chunk, cur.pos - chunk.length);
        continue;
      }
      if (!(await this.atEof(cur))) await this.waker.wait(this.pollMs);
    }
  }

  private emit(rec: TailRecord): TailRecord {
    this.last = checkpointOf(rec);
    if (rec.oversize) this.event({ type: 'oversize', path: rec.path, offset: rec.offset, length: rec.length });
    return rec;
  }

  // --- switching files -------------------------------------------------------------------------

  private async switchTo(src: Source): Promise<void> {
    const old = this.cur;
    if (old) {
      this.lines.finishFile(old);
      if (old.kind === 'gzip') {
        if (old.error) this.event({ type: 'error', path: old.path, message: `gzip: ${old.error}` });
        if (old.shortBy > 0) this.gap({ reason: `checkpoint offset beyond the end of the file by ${old.shortBy} bytes`, files: [old.path], path: src.path });
      }
      if (isFingerprintComplete(old.identity, this.settings.fingerprintBytes)) this.watcher.remember(old.identity);
      await old.close().catch(() => undefined);
      this.event({ type: 'rotated', from: old.path, to: src.path });
    }
    this.cur = src;
    this.lines.startFile(src.start);
    this.event({ type: 'opened', path: src.path, identity: src.identity, offset: src.start, compressed: src.kind === 'gzip' });
  }

  /** The live file as the current source; every rotated file that exists now is older than it. */
  private async switchToLive(src: Source): Promise<void> {
    if (src.place.name === undefined) src.place = { ...(this.watcher.newestName() !== undefined ? { after: this.watcher.newestName()! } : {}) };
    await this.switchTo(src);
  }

  private async openLiveInitial(): Promise<boolean> {
    const src = await openSource(this.path, 0, this.settings);
    if (!src) return false;
    this.watcher.prime(await this.watcher.list());
    await this.switchToLive(src);
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
      const src = await sourceFromHandle(fh, this.path, offset, this.settings);
      // Listed after the live file was opened: whatever rotates from now on is new.
      this.watcher.prime(await this.watcher.list());
      await this.switchToLive(src);
      if (midLine) this.lines.skipFirstLine(); // started mid-line: drop the fragment up to the next newline
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
        const src = await sourceFromHandle(fh, this.path, cp.offset, this.settings);
        this.watcher.prime(await this.watcher.list());
        return this.startIn(src, cp.offset, 'live');
      }
      await fh.close();
    }
    // 2. a rotated sibling: same inode and content, else same content (newest first)
    const list = await this.watcher.list();
    const idx = await findIdentified(list, id);
    if (idx >= 0) {
      const found = list[idx] as RotatedFile;
      const src = (await openSource(found.path, cp.offset, this.settings)) ?? (found.twin ? await openSource(found.twin.path, cp.offset, this.settings) : null);
      if (src) {
        src.place = { name: found.name };
        this.watcher.prime(list);
        await this.watcher.enqueue(list.slice(idx + 1));
        return this.startIn(src, cp.offset, 'rotated');
      }
    }
    // 3. not found: deleted before it was read to its end. Start at the oldest file there is.
    this.watcher.prime(list);
    await this.watcher.enqueue(list);
    const first = this.watcher.shift() ?? (await openSource(this.path, 0, this.settings));
    const reason = 'checkpointed file not found (deleted before it was read to its end); starting at the oldest file there is';
    const gap: TailGap = { reason, files: [], ...(first ? { path: first.path, before: first.place.name ?? this.base } : {}) };
    // Named if it was a rotated file; a live file's rotated name follows the newest sibling it knew.
    if (cp.place?.name !== undefined) {
      gap.files.push(join(dirname(this.path), cp.place.name));
      gap.after = cp.place.name;
    } else if (cp.place?.after !== undefined) {
      gap.after = cp.place.after;
    }
    this.gap(gap);
    if (first) {
      if (first.path === this.path) await this.switchToLive(first);
      else await this.switchTo(first);
    }
    return { mode: 'oldest', path: first?.path ?? null, possibleDataLoss: true, reason };
  }

  private async startIn(src: Source, offset: number, mode: 'live' | 'rotated'): Promise<TailStartResult> {
    if (src.kind === 'plain') {
      const size = await src.size();
      if (offset > size) {
        // the file shrank below the checkpoint (copytruncate while stopped): start over in it
        src.pos = 0;
        src.start = 0;
        await (mode === 'live' ? this.switchToLive(src) : this.switchTo(src));
        const reason = `checkpoint offset ${offset} is beyond the file size ${size}; reading it from the start`;
        this.gap({ reason, files: [src.path], path: src.path });
        return { mode, path: src.path, possibleDataLoss: true, reason };
      }
    }
    await (mode === 'live' ? this.switchToLive(src) : this.switchTo(src));
    return { mode, path: src.path, possibleDataLoss: false };
  }

  // --- end of file: wait, truncation, rotation -------------------------------------------------

  /** Called when the current source has no more data. Returns true if something changed (read again). */
  private async atEof(cur: Source): Promise<boolean> {
    if (cur.kind === 'plain') {
      const size = await cur.size();
      if (size < cur.pos) {
        await this.truncated(cur);
        return true;
      }
      if (size > cur.pos) return true;
    }
    const pst = await statBig(this.path);
    const curIsLive = pst !== null && pst.ino === cur.ino && pst.dev === cur.dev;
    if (curIsLive && this.watcher.queued === 0) return false; // still the live file: wait
    // The path names another file (or none): cur was rotated away. Look for what came after it.
    await this.watcher.discover();
    const liveHasData = pst !== null && pst.isFile() && pst.size > 0n && !curIsLive;
    if (cur.kind === 'plain') {
      // The writer may still append to the renamed file until it reopens; move on only once it
      // visibly has (a newer rotated file exists, or the new live file has data) and cur is drained.
      if (this.watcher.queued === 0 && !liveHasData) return false;
      if ((await cur.size()) > cur.pos) return true;
    }
    if (curIsLive) return false;
    const next = this.watcher.shift();
    if (next) {
      this.noteUnseenRotation(cur, next.place.name);
      await this.switchTo(next);
      return true;
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
    await this.watcher.discover();
    if (this.watcher.queued > 0) {
      await fh.close();
      return true; // another rotation happened meanwhile: read the rotated file first
    }
    this.noteUnseenRotation(cur, this.base);
    await this.switchToLive(await sourceFromHandle(fh, this.path, 0, this.settings));
    return true;
  }

  /**
   * A live file whose rotated name never showed in a listing was rotated and deleted between two
   * looks at the directory; files rotated after it may have come and gone unseen too.
   */
  private noteUnseenRotation(cur: Source, nextName: string | undefined): void {
    // Without rotated files around, the live file was replaced without rotation (deleted, recreated).
    if (cur.place.name !== undefined || cur.path !== this.path || this.watcher.newestName() === undefined) return;
    this.gap({
      reason: `the rotated name of ${cur.path} never showed in the directory (rotated and deleted between two looks); files rotated after it may have been deleted unseen`,
      files: [],
      ...(cur.place.after !== undefined ? { after: cur.place.after } : {}),
      ...(nextName !== undefined ? { before: nextName } : {}),
    });
  }

  private async truncated(cur: PlainSource): Promise<void> {
    const previousOffset = cur.pos;
    this.lines.finishFile(cur);
    if (isFingerprintComplete(cur.identity, this.settings.fingerprintBytes)) this.watcher.remember(cur.identity); // its copy (kern.log.1) is not new
    await cur.restart();
    this.lines.startFile(0);
    this.event({ type: 'truncated', path: cur.path, previousOffset });
  }
}
