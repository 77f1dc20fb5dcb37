// Reads the entries of a zip file from its central directory, so each entry can be streamed from
// disk (STORE, what the controller writes) or inflated (DEFLATE, if someone re-zipped it) without
// loading the archive into memory. Zip64 is not needed: jszip does not write it either.
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable, Transform, pipeline } from 'node:stream';
import { createInflateRaw } from 'node:zlib';

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD_SIGNATURE = 0x06054b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;

export class ZipFormatError extends Error {}

export async function listZip(file: string): Promise<ZipEntry[]> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    // The end record is 22 bytes plus a comment of up to 65535 bytes.
    const tailLength = Math.min(size, 22 + 65535);
    const tail = Buffer.alloc(tailLength);
    await handle.read(tail, 0, tailLength, size - tailLength);
    let eocd = -1;
    for (let i = tailLength - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === EOCD_SIGNATURE) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw new ZipFormatError(`${file} is not a zip file (no end of central directory): was the download cut off?`);
    const count = tail.readUInt16LE(eocd + 10);
    const directorySize = tail.readUInt32LE(eocd + 12);
    const directoryOffset = tail.readUInt32LE(eocd + 16);
    const directory = Buffer.alloc(directorySize);
    await handle.read(directory, 0, directorySize, directoryOffset);
    const entries: ZipEntry[] = [];
    let offset = 0;
    for (let i = 0; i < count; i++) {
      if (directory.readUInt32LE(offset) !== CENTRAL_SIGNATURE) throw new ZipFormatError(`${file}: corrupt central directory at entry ${i}`);
      const nameLength = directory.readUInt16LE(offset + 28);
      const extraLength = directory.readUInt16LE(offset + 30);
      const commentLength = directory.readUInt16LE(offset + 32);
      entries.push({
        method: directory.readUInt16LE(offset + 10),
        compressedSize: directory.readUInt32LE(offset + 20),
        size: directory.readUInt32LE(offset + 24),
        localHeaderOffset: directory.readUInt32LE(offset + 42),
        name: directory.toString('utf8', offset + 46, offset + 46 + nameLength),
      });
      offset += 46 + nameLength + extraLength + commentLength;
    }
    return entries;
  } finally {
    await handle.close();
  }
}

/**
 * The uncompressed bytes of one entry, streamed from the file. The stream fails (instead of ending
 * short) when the file cannot be read, the DEFLATE data is corrupt, or the entry has fewer or more
 * bytes than its central directory record says, as in a zip cut off while downloading.
 */
export async function openZipEntry(file: string, entry: ZipEntry): Promise<Readable> {
  const handle = await open(file, 'r');
  const header = Buffer.alloc(30);
  try {
    await handle.read(header, 0, 30, entry.localHeaderOffset);
  } finally {
    await handle.close();
  }
  if (header.readUInt32LE(0) !== LOCAL_SIGNATURE) throw new ZipFormatError(`${file}: corrupt local header of ${entry.name}`);
  const start = entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  if (entry.compressedSize === 0) return Readable.from([]);
  if (entry.method !== 0 && entry.method !== 8) {
    throw new ZipFormatError(`${file}: ${entry.name} uses compression method ${entry.method}, which this tool does not read`);
  }
  const raw = createReadStream(file, { start, end: start + entry.compressedSize - 1 });
  const checked = checkSize(`${file}: ${entry.name}`, entry.size);
  // pipeline, not pipe: an error of any stage must fail the stream the caller reads.
  const stages = entry.method === 8 ? [raw, createInflateRaw(), checked] : [raw, checked];
  pipeline(stages, () => undefined);
  return checked;
}

/** Passes bytes through and fails at the end unless there were exactly `size` of them. */
function checkSize(what: string, size: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      done(null, chunk);
    },
    flush(done) {
      done(seen === size ? null : new ZipFormatError(`${what} has ${seen} bytes instead of ${size}: the zip is damaged or cut off`));
    },
  });
}

/** Entry names become paths: refuse anything that could land outside the target directory. */
export function safeEntryPath(name: string): string[] {
  const parts = name.split('/');
  if (name.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\\'))) {
    throw new ZipFormatError(`refusing the zip entry name ${JSON.stringify(name)}`);
  }
  return parts;
}
