// RotationWatcher: finds the rotated files a follower has yet to read, and opens them as soon as
// they appear, so that a writer's cleanup (kube-apiserver's --audit-log-maxbackup, logrotate's
// rotate N) cannot delete them unread while the follower is behind: an open file stays readable.
// It runs on directory events and a timer, not when the consumer asks for lines, because a
// consumer held up by its sink reads nothing for minutes while rotations go on.
//
// A file is new when it is not the one being read (by inode), not a name already seen with the same
// inode (or its .gz), not a renamed known file (inode, size and mtime), and not a copy of a file
// read (the same fingerprint over the same length: copytruncate, a gzip of the current file). New
// files are queued in rotation order. Files it could not open in time, and held files it had to let
// go because the deleted files held open took more disk than allowed, are reported as gaps.
import { errorMessage, type Logger } from '../../util/log.js';
import { fingerprintPath, type FileIdentity } from './identity.js';
import { listRotated, rotatedHasInode, type RotatedCompare, type RotatedFile, type RotatedFilter } from './rotated.js';
import { openSource, type Source, type SourceSettings } from './sources.js';
import type { TailGap } from './types.js';
import type { Waker } from './waker.js';

export const DEFAULT_DISCOVER_INTERVAL_MS = 1000;
/** Deleted files held open for reading take disk space until read; past this, the oldest go. */
export const DEFAULT_MAX_HELD_DELETED_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_MAX_QUEUED_FILES = 512;
const RECENT_IDENTITIES = 32;

export interface RotationWatcherOptions {
  livePath: string;
  filter: RotatedFilter;
  compare: RotatedCompare;
  settings: SourceSettings;
  waker: Waker;
  /** The file being read now, if any. */
  current: () => Source | null;
  onGap: (gap: TailGap) => void;
  onError: (message: string) => void;
  log: Logger;
  discoverIntervalMs?: number;
  maxHeldDeletedBytes?: number;
  maxQueuedFiles?: number;
}

interface Queued {
  source: Source;
  entry: RotatedFile;
}

export class RotationWatcher {
  private queue: Queued[] = [];
  /** The latest listing by logical name: what is not new. */
  private known = new Map<string, RotatedFile>();
  /** Fingerprints of files read lately, to recognise copies of them. */
  private recent: FileIdentity[] = [];
  private newest: string | undefined;
  private running: Promise<void> | null = null;
  private again = false;
  private closed = false;
  private primed = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly maxHeld: number;
  private readonly maxQueued: number;

  constructor(private readonly opts: RotationWatcherOptions) {
    this.maxHeld = opts.maxHeldDeletedBytes ?? DEFAULT_MAX_HELD_DELETED_BYTES;
    this.maxQueued = opts.maxQueuedFiles ?? DEFAULT_MAX_QUEUED_FILES;
  }

  /** Lists the rotated siblings now, oldest first. */
  list(): Promise<RotatedFile[]> {
    return listRotated(this.opts.livePath, this.opts.filter, this.opts.compare);
  }

  /**
   * Starts watching from a listing the follower placed itself by: every file in it is either
   * behind the reading position or queued with enqueue(); what appears later is new.
   */
  prime(list: readonly RotatedFile[]): void {
    if (this.closed || this.primed) return;
    this.primed = true;
    for (const f of list) this.known.set(f.name, f);
    this.newest = list.at(-1)?.name;
    // Writes to the live file do not change what is there to read next; names do.
    this.opts.waker.onChange((change) => {
      if (change === 'names') void this.discover();
    });
    const interval = this.opts.discoverIntervalMs ?? DEFAULT_DISCOVER_INTERVAL_MS;
    this.timer = setInterval(() => void this.discover(), interval);
    this.timer.unref();
  }

  /** Opens rotated files to be read in this order (a resume chain); vanished ones are gaps. */
  async enqueue(files: readonly RotatedFile[]): Promise<void> {
    for (const f of files) {
      const source = await this.openEntry(f);
      if (source) this.insert({ source, entry: f });
    }
  }

  /** Logical name of the newest rotated sibling seen: the live file's rotated name will follow it. */
  newestName(): string | undefined {
    return this.newest;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** The next file to read, oldest first. */
  shift(): Source | undefined {
    return this.queue.shift()?.source;
  }

  /** Name of the next queued file, for a gap's bound. */
  peekName(): string | undefined {
    return this.queue[0]?.entry.name;
  }

  /** A file read (or its content before a truncation): copies of it are not new. */
  remember(identity: FileIdentity): void {
    if (identity.fingerprintLength === 0) return;
    this.recent.push(identity);
    if (this.recent.length > RECENT_IDENTITIES) this.recent.shift();
  }

  /** Looks at the directory now; concurrent calls share one pass (and ask for one more after it). */
  discover(): Promise<void> {
    if (this.closed || !this.primed) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.discoverOnce();
        } while (this.again && !this.closed);
      } catch (err) {
        this.opts.log.warn('cannot look for rotated files', { error: errorMessage(err) });
        this.opts.onError(`looking for rotated files: ${errorMessage(err)}`);
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
    const all = this.queue.splice(0);
    for (const q of all) await q.source.close().catch(() => undefined);
  }

  // -------------------------------------------------------------------------------------------

  private async discoverOnce(): Promise<void> {
    const list = await this.list();
    if (this.closed) return;
    const current = this.opts.current();
    const previous = this.known;
    const next = new Map<string, RotatedFile>();
    for (const f of list) {
      next.set(f.name, f);
      if (current && rotatedHasInode(f, current.ino, current.dev)) {
        current.place = { ...current.place, name: f.name }; // the file being read was rotated
        continue;
      }
      if (this.isQueued(f) || isKnown(f, previous)) continue;
      const copy = await this.copyOf(f, current);
      if (copy === 'current' && current) current.place = { ...current.place, name: f.name }; // the file being read, rotated and compressed
      if (copy !== null) continue;
      if (this.queue.length >= this.maxQueued) {
        next.delete(f.name); // not taken yet: looked at again next time
        continue;
      }
      const source = await this.openEntry(f);
      if (this.closed) {
        await source?.close();
        return;
      }
      if (source) this.insert({ source, entry: f });
    }
    this.known = next;
    const newest = list.at(-1);
    if (newest && (this.newest === undefined || newest.name !== this.newest)) this.newest = newest.name;
    await this.releaseOverBudget();
  }

  private isQueued(f: RotatedFile): boolean {
    return this.queue.some((q) => q.entry.name === f.name || rotatedHasInode(f, q.source.ino, q.source.dev));
  }

  /**
   * Whether `f` has the content of the file being read, of a queued file or of one read lately:
   * the same fingerprint over the same length. Below the full fingerprint size that means the
   * whole content is the same, so a new file that merely starts alike is not taken for a copy.
   */
  private async copyOf(f: RotatedFile, current: Source | null): Promise<'current' | 'other' | null> {
    const others = [...this.queue.map((q) => q.source.identity), ...this.recent];
    if (!current && others.length === 0) return null;
    let fp;
    try {
      fp = await fingerprintPath(f.path, this.opts.settings.fingerprintBytes);
    } catch {
      return null; // gone already: openEntry reports it
    }
    if (fp.length === 0) return null;
    const same = (c: FileIdentity) => c.fingerprintLength === fp.length && c.fingerprint === fp.fingerprint;
    if (current && same(current.identity)) return 'current';
    return others.some(same) ? 'other' : null;
  }

  /** Opens a rotated file from 0, following a plain file to its .gz if it was compressed meanwhile. */
  private async openEntry(f: RotatedFile): Promise<Source | null> {
    const candidates = [...new Set([f.path, ...(f.twin ? [f.twin.path] : []), ...(f.compressed ? [] : [`${f.path}.gz`])])];
    for (const p of candidates) {
      const source = await openSource(p, 0, this.opts.settings);
      if (source) {
        source.place = { name: f.name };
        return source;
      }
    }
    this.opts.onGap({
      reason: 'rotated file deleted before it could be opened',
      files: [f.path],
      ...(f.compressed ? {} : { bytes: f.size }),
    });
    return null;
  }

  private insert(q: Queued): void {
    const at = this.queue.findIndex((other) => this.opts.compare(q.entry, other.entry) < 0);
    if (at < 0) this.queue.push(q);
    else this.queue.splice(at, 0, q);
  }

  /** Lets go of the oldest deleted queued files while the deleted ones held take more than allowed. */
  private async releaseOverBudget(): Promise<void> {
    const deleted: Array<{ q: Queued; bytes: number }> = [];
    let held = 0;
    for (const q of this.queue) {
      const st = await q.source.fh.stat().catch(() => null);
      if (!st || st.nlink > 0) continue;
      deleted.push({ q, bytes: st.size });
      held += st.size;
    }
    while (held > this.maxHeld && deleted.length > 0) {
      const { q, bytes } = deleted.shift()!;
      held -= bytes;
      this.queue = this.queue.filter((other) => other !== q);
      await q.source.close().catch(() => undefined);
      this.opts.onGap({
        reason: `rotated file deleted while unread, and the deleted files held open for reading took more than ${this.maxHeld} bytes of disk`,
        files: [q.source.path],
        ...(q.source.kind === 'plain' ? { bytes } : {}),
      });
    }
  }
}

/** Seen in the previous listing: the same name and inode (or its compression), or renamed. */
function isKnown(f: RotatedFile, previous: ReadonlyMap<string, RotatedFile>): boolean {
  const byName = previous.get(f.name);
  if (byName && (rotatedHasInode(f, byName.ino, byName.dev) || (f.compressed && !byName.compressed))) return true;
  // logrotate's numbered names shift on every rotation: the same inode, size and mtime is a rename
  // (a deleted file's inode may be reused by a new file, which then differs in size or mtime).
  for (const p of previous.values()) {
    if (p.ino === f.ino && p.dev === f.dev && p.size === f.size && p.mtimeMs === f.mtimeMs) return true;
  }
  return false;
}
