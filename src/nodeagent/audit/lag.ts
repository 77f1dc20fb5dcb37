// How far the forwarder is behind the audit log: the bytes written and not read yet, counted in
// uncompressed bytes (what it reads and ships) also for gzipped rotations.
import { open } from 'node:fs/promises';
import { findIdentified, isIdentifiedFile, listRotated, type RotatedFile, type TailCheckpoint } from '../tail/index.js';

/**
 * Bytes in the log not read yet: the rest of the checkpointed file plus every newer rotated file
 * and the live file.
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
