// File identity for log followers: which file is this, across renames, restarts and gzip?
//
// An identity is the inode/device pair plus a fingerprint: the first 16 bytes (hex) of the sha256
// of the first `fingerprintLength` bytes of the (decompressed) content. While a file is shorter
// than the configured fingerprint size the fingerprint is "incomplete": it covers only the bytes
// that exist, and the follower re-takes it as the file grows. A stored identity always says how
// many bytes its fingerprint covers, so a candidate file is compared over exactly that prefix
// (its own first `fingerprintLength` bytes), which also stays correct if the configured size
// changes between runs.
//
// Gzip files are fingerprinted over their decompressed content, so a file that was rotated,
// gzipped and removed is still recognised in its `.gz` form.

import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';

/** Bytes hashed for a complete fingerprint unless configured otherwise. */
export const DEFAULT_FINGERPRINT_BYTES = 1024;

/** Identity of one log file. inode/device are decimal strings (64-bit safe in JSON). */
export interface FileIdentity {
  inode: string;
  device: string;
  /** sha256 of the first fingerprintLength content bytes, first 16 bytes, hex (32 chars). */
  fingerprint: string;
  /** Bytes the fingerprint covers; less than the configured size while the file is shorter. */
  fingerprintLength: number;
}

export interface Fingerprint {
  fingerprint: string;
  /** Bytes actually hashed: min(requested, bytes available). */
  length: number;
}

/** sha256 of data, first 16 bytes as hex. */
export function hashPrefix(data: Buffer): string {
  return createHash('sha256').update(data).digest().subarray(0, 16).toString('hex');
}

/** True when the fingerprint covers the configured number of bytes (it will not change any more). */
export function isFingerprintComplete(id: FileIdentity, fingerprintBytes = DEFAULT_FINGERPRINT_BYTES): boolean {
  return id.fingerprintLength >= fingerprintBytes;
}

/** Reads up to `length` bytes from the start of a plain file (fewer at EOF). */
export async function readPlainPrefix(fh: FileHandle, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/**
 * Decompresses up to `length` bytes from the start of a gzip file. A truncated gzip (still being
 * written) or a corrupt tail yields what could be decompressed before the error.
 */
export async function readGzipPrefix(fh: FileHandle, length: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  if (length <= 0) return Buffer.alloc(0);
  const gunzip = createGunzip();
  gunzip.on('error', () => undefined); // surfaced through the iterator; avoid an unhandled 'error'
  // Feed compressed bytes by hand (positional reads) so nothing closes or moves the handle.
  const feed = (async () => {
    const chunk = Buffer.alloc(16 * 1024);
    let pos = 0;
    try {
      for (;;) {
        if (gunzip.destroyed) return;
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, pos);
        if (bytesRead === 0) break;
        pos += bytesRead;
        const more = gunzip.write(Buffer.from(chunk.subarray(0, bytesRead)));
        if (!more && !gunzip.destroyed) {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              gunzip.off('drain', done).off('close', done);
              resolve();
            };
            gunzip.on('drain', done).on('close', done);
          });
        }
      }
      if (!gunzip.destroyed) gunzip.end();
    } catch {
      gunzip.destroy();
    }
  })();
  try {
    for await (const data of gunzip) {
      const b = data as Buffer;
      parts.push(b);
      got += b.length;
      if (got >= length) break;
    }
  } catch {
    // truncated / corrupt gzip: keep what we have
  } finally {
    gunzip.destroy();
    await feed;
  }
  return Buffer.concat(parts).subarray(0, Math.min(got, length));
}

/** True if the file starts with the gzip magic bytes. */
export async function isGzipHandle(fh: FileHandle): Promise<boolean> {
  const head = await readPlainPrefix(fh, 2);
  return head.length === 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/** Fingerprint of the first `length` content bytes of an open file (decompressed if gzip). */
export async function fingerprintHandle(fh: FileHandle, length: number, compressed?: boolean): Promise<Fingerprint> {
  const gz = compressed ?? (await isGzipHandle(fh));
  const data = gz ? await readGzipPrefix(fh, length) : await readPlainPrefix(fh, length);
  return { fingerprint: hashPrefix(data), length: data.length };
}

/** Fingerprint of a file by path (gzip detected by magic bytes). */
export async function fingerprintPath(path: string, length: number): Promise<Fingerprint> {
  const fh = await open(path, 'r');
  try {
    return await fingerprintHandle(fh, length);
  } finally {
    await fh.close();
  }
}

/** Identity of an open file: inode/device from fstat, fingerprint over min(size, fingerprintBytes). */
export async function identityOfHandle(
  fh: FileHandle,
  fingerprintBytes = DEFAULT_FINGERPRINT_BYTES,
  compressed?: boolean,
): Promise<FileIdentity> {
  const st = await fh.stat({ bigint: true });
  const fp = await fingerprintHandle(fh, fingerprintBytes, compressed);
  return { inode: st.ino.toString(), device: st.dev.toString(), fingerprint: fp.fingerprint, fingerprintLength: fp.length };
}

/** Identity of a file by path (plain or gzip). */
export async function identityOfPath(path: string, fingerprintBytes = DEFAULT_FINGERPRINT_BYTES): Promise<FileIdentity> {
  const fh = await open(path, 'r');
  try {
    return await identityOfHandle(fh, fingerprintBytes);
  } finally {
    await fh.close();
  }
}

/**
 * True if the content of the open file starts with the bytes `id` was fingerprinted over. An
 * identity covering 0 bytes matches nothing by content (use the inode for those).
 */
export async function contentMatches(id: FileIdentity, fh: FileHandle, compressed?: boolean): Promise<boolean> {
  if (id.fingerprintLength <= 0) return false;
  const fp = await fingerprintHandle(fh, id.fingerprintLength, compressed);
  return fp.length === id.fingerprintLength && fp.fingerprint === id.fingerprint;
}

/**
 * True if the open plain file (fstat'ed as `st`) is the one `id` names: same inode and content
 * prefix; an identity without a fingerprint matches by inode and device. The device is not
 * compared otherwise: it can change across node/container restarts for the same hostPath file.
 */
export async function isIdentifiedFile(id: FileIdentity, fh: FileHandle, st: { ino: bigint; dev: bigint }): Promise<boolean> {
  if (st.ino.toString() !== id.inode) return false;
  return id.fingerprintLength > 0 ? contentMatches(id, fh, false) : st.dev.toString() === id.device;
}

/** contentMatches by path; a file that vanished or cannot be read does not match. */
export async function contentMatchesPath(id: FileIdentity, path: string): Promise<boolean> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch {
    return false;
  }
  try {
    return await contentMatches(id, fh);
  } catch {
    return false;
  } finally {
    await fh.close();
  }
}
