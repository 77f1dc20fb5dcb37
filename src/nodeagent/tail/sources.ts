// The readers a LineFollower pulls chunks from: a plain file read positionally (and checked for an
// in-place rewrite), and a gzip file decompressed as a stream. Both hold their file descriptor, so
// a file deleted by log rotation stays readable to its end.
import { open, type FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream';
import { createGunzip, type Gunzip } from 'node:zlib';
import { errorMessage } from '../../util/log.js';
import { hashPrefix, identityOfHandle, isGzipHandle, readPlainPrefix, type FileIdentity } from './identity.js';
import type { RotationPlace } from './types.js';

interface SourceCommon {
  readonly path: string;
  readonly ino: bigint;
  readonly dev: bigint;
  /** Offset the source was opened at. */
  readonly start: number;
  identity: FileIdentity;
  pos: number;
  /** Where the file stands among its rotated siblings, learnt as the directory is watched. */
  place: RotationPlace;
  read(scratch: Buffer): Promise<Buffer | null>;
  close(): Promise<void>;
}

export class PlainSource implements SourceCommon {
  readonly kind = 'plain';
  pos: number;
  identity: FileIdentity;
  place: RotationPlace = {};
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

export class GzipSource implements SourceCommon {
  readonly kind = 'gzip';
  pos = 0;
  place: RotationPlace = {};
  /** Set when the gzip stream failed (corrupt or truncated file). */
  error: string | null = null;
  /** Made on the first read: a queued file costs a descriptor, not a zlib stream. */
  private gunzip: Gunzip | null = null;
  private it: AsyncIterator<unknown> | null = null;
  private skip: number;
  private ended = false;

  constructor(
    readonly fh: FileHandle,
    readonly path: string,
    readonly ino: bigint,
    readonly dev: bigint,
    public identity: FileIdentity,
    readonly start: number,
    private readonly chunkBytes: number,
  ) {
    this.skip = start;
  }

  /** Decompressed bytes the checkpoint offset lay beyond the end of the content (0 if none). */
  get shortBy(): number {
    return this.ended ? this.skip : 0;
  }

  private iterator(): AsyncIterator<unknown> {
    if (this.it === null) {
      const rs = this.fh.createReadStream({ start: 0, autoClose: false, highWaterMark: this.chunkBytes });
      this.gunzip = createGunzip({ chunkSize: Math.max(1024, Math.min(this.chunkBytes, 64 * 1024)) });
      pipeline(rs, this.gunzip, () => undefined);
      this.it = this.gunzip[Symbol.asyncIterator]();
    }
    return this.it;
  }

  async read(): Promise<Buffer | null> {
    while (!this.ended) {
      let r: IteratorResult<unknown>;
      try {
        r = await this.iterator().next();
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
    this.gunzip?.destroy();
    await this.fh.close();
  }
}

export type Source = PlainSource | GzipSource;

/** Reading settings shared by every source of one follower. */
export interface SourceSettings {
  fingerprintBytes: number;
  readChunkBytes: number;
}

/** A source over an open handle (gzip by its magic bytes); the handle is closed on failure. */
export async function sourceFromHandle(fh: FileHandle, path: string, offset: number, settings: SourceSettings): Promise<Source> {
  try {
    const st = await fh.stat({ bigint: true });
    if (await isGzipHandle(fh)) {
      return new GzipSource(fh, path, st.ino, st.dev, await identityOfHandle(fh, settings.fingerprintBytes, true), offset, settings.readChunkBytes);
    }
    return new PlainSource(fh, path, st.ino, st.dev, await readPlainPrefix(fh, settings.fingerprintBytes), offset, settings.fingerprintBytes);
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/** Opens a file as a source; null if it does not exist. */
export async function openSource(path: string, offset: number, settings: SourceSettings): Promise<Source | null> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if (isEnoent(err)) return null;
    throw err;
  }
  return sourceFromHandle(fh, path, offset, settings);
}

export function isEnoent(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}
