// Builds one batch body as events are added: an audit.k8s.io/v1 EventList or NDJSON, optionally
// gzip-compressed while it is being built (compression runs on the libuv thread pool while the
// main thread parses the next lines).
//
// The body is spooled to a file in the forwarder's state directory, not held in memory: a batch
// may be 50 MB (the default maxBytes) and stays until the sink acknowledges it, which may take a
// long outage. So memory holds one slice of lines and zlib's window whatever the batch size,
// with or without gzip, and every delivery attempt streams the body from the file again. The
// spool is only a copy: after a crash the batch is built again from the disk buffer (buffer.ts,
// whose delivered position has not moved), so it is neither fsynced nor kept across restarts.
//
// Sizes: `payloadBytes` is the uncompressed body size, the one batch.maxBytes limits.
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { crc32, createGzip, type Gzip } from 'node:zlib';
import { collectYoungGarbage } from '../../util/gc.js';

export type BatchFormat = 'eventList' | 'ndjson';

export interface EncodedBatch {
  /** The spool file holding the body. */
  file: string;
  /** Encoded (maybe compressed) body size. */
  bodyBytes: number;
  /** Uncompressed body size. */
  payloadBytes: number;
  /** Items in the batch (events and quarantined lines). */
  events: number;
  contentType: string;
  contentEncoding?: 'gzip';
  /** CRC-32 of the body as sent (S3 checks it as x-amz-checksum-crc32). */
  crc32: number;
  /** A fresh stream of the body; each delivery attempt reads the spool again. */
  open(): Readable;
}

const EVENT_LIST_PREFIX = Buffer.from('{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[');
const EVENT_LIST_SUFFIX = Buffer.from(']}\n');
const COMMA = Buffer.from(',');
const NEWLINE = Buffer.from('\n');
/** Lines are written (or handed to zlib) in slices of this size, not one call per line; the spool is read back in the same. */
const SLICE_BYTES = 256 * 1024;
/** While a batch is read back, its dead read buffers are collected after every this many bytes. */
const COLLECT_EVERY_BYTES = 16 * 1024 * 1024;

export class BatchEncoder {
  private readonly gzip: Gzip | null;
  private readonly out: WriteStream;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private items = 0;
  private bytes: number;
  private bodyCrc = 0;
  private failure: Error | null = null;
  /** Settles once either stream failed (never rejects: callers look at this.failure). */
  private readonly failed: Promise<void>;

  constructor(
    readonly format: BatchFormat,
    compress: boolean,
    /** Where the body is spooled; replaced if it exists. */
    readonly spoolFile: string,
  ) {
    this.bytes = format === 'eventList' ? EVENT_LIST_PREFIX.length + EVENT_LIST_SUFFIX.length : 0;
    let signalFailure: () => void = () => undefined;
    this.failed = new Promise((resolve) => (signalFailure = resolve));
    const fail = (err: Error): void => {
      this.failure ??= err;
      signalFailure();
    };
    this.out = createWriteStream(spoolFile, { flags: 'w', mode: 0o600, highWaterMark: SLICE_BYTES });
    this.out.on('error', (err: Error) => fail(spoolError(spoolFile, err)));
    this.gzip = compress ? createGzip({ level: 1 }) : null;
    if (this.gzip) {
      this.gzip.on('error', fail);
      this.gzip.on('data', (b: Buffer) => (this.bodyCrc = crc32(b, this.bodyCrc)));
      this.gzip.pipe(this.out);
    }
    if (format === 'eventList') this.push(EVENT_LIST_PREFIX);
  }

  get events(): number {
    return this.items;
  }

  /** Uncompressed body size so far, as it would be sent now. */
  get payloadBytes(): number {
    return this.bytes;
  }

  /** Uncompressed body size if `item` were added. */
  sizeWith(item: Buffer): number {
    return this.bytes + item.length + (this.format === 'ndjson' || this.items > 0 ? 1 : 0);
  }

  /** Adds one JSON item; resolves when the spool (or the compressor) has room again. */
  async add(item: Buffer): Promise<void> {
    this.bytes = this.sizeWith(item);
    if (this.format === 'eventList' && this.items > 0) this.push(COMMA);
    this.push(item);
    if (this.format === 'ndjson') this.push(NEWLINE);
    this.items++;
    if (this.pendingBytes >= SLICE_BYTES) await this.flushSlice();
  }

  /** Seals the body; when the spool could not be written (e.g. a full disk), discards it and throws. */
  async finish(): Promise<EncodedBatch> {
    if (this.format === 'eventList') this.push(EVENT_LIST_SUFFIX);
    try {
      await this.flushSlice();
      const written = once(this.out, 'finish').catch(() => undefined); // an error is this.failure
      if (this.gzip) this.gzip.end(); // the pipe ends the spool stream after the last gzip bytes
      else this.out.end();
      await Promise.race([written, this.failed]);
      if (this.failure) throw this.failure;
    } catch (err) {
      await this.discard();
      throw err;
    }
    const file = this.spoolFile;
    return {
      file,
      bodyBytes: this.out.bytesWritten,
      payloadBytes: this.bytes,
      events: this.items,
      contentType: this.format === 'eventList' ? 'application/json' : 'application/x-ndjson',
      ...(this.gzip ? { contentEncoding: 'gzip' as const } : {}),
      crc32: this.bodyCrc,
      open: () => Readable.from(readSpool(file), { objectMode: false }),
    };
  }

  /** Releases a batch that will not be finished, and its spool. */
  async discard(): Promise<void> {
    this.gzip?.destroy();
    this.out.destroy();
    await removeSpool(this.spoolFile);
  }

  private push(b: Buffer): void {
    this.pending.push(b);
    this.pendingBytes += b.length;
  }

  private async flushSlice(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.pendingBytes === 0) return;
    const slice = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    const target = this.gzip ?? this.out;
    if (!this.gzip) this.bodyCrc = crc32(slice, this.bodyCrc);
    if (!target.write(slice)) await Promise.race([once(target, 'drain').catch(() => undefined), this.failed]);
    if (this.failure) throw this.failure;
  }
}

/**
 * The spool's bytes in fresh SLICE_BYTES buffers (a sink may keep a chunk, so none is reused).
 * Sending a batch allocates few JS objects, so V8 would run no GC for the whole 50 MB; a young
 * collection every COLLECT_EVERY_BYTES frees the chunks already sent.
 */
async function* readSpool(file: string): AsyncGenerator<Buffer> {
  const handle = await open(file, 'r');
  try {
    let sinceCollect = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafeSlow(SLICE_BYTES);
      const { bytesRead } = await handle.read(chunk, 0, SLICE_BYTES, null);
      if (bytesRead === 0) return;
      yield bytesRead === SLICE_BYTES ? chunk : chunk.subarray(0, bytesRead);
      sinceCollect += bytesRead;
      if (sinceCollect >= COLLECT_EVERY_BYTES) {
        sinceCollect = 0;
        collectYoungGarbage();
      }
    }
  } finally {
    await handle.close();
  }
}

/** Deletes a spool file (a delivered or abandoned batch); a missing file is fine. */
export async function removeSpool(file: string): Promise<void> {
  await rm(file, { force: true });
}

function spoolError(file: string, err: Error): Error {
  return new Error(`cannot write the batch spool ${file}: ${err.message}`, { cause: err });
}
