// Builds one batch body as events are added: an audit.k8s.io/v1 EventList or NDJSON, optionally
// gzip-compressed while it is being built (so a 50 MB batch is held as a few MB of gzip, and
// compression runs on the libuv thread pool while the main thread parses the next lines).
//
// Sizes: `payloadBytes` is the uncompressed body size, the one batch.maxBytes limits.
import { once } from 'node:events';
import { createGzip, type Gzip } from 'node:zlib';

export type BatchFormat = 'eventList' | 'ndjson';

export interface EncodedBatch {
  /** Body chunks in order (sent as they are; never concatenated for raw bodies). */
  chunks: Buffer[];
  /** Encoded (maybe compressed) body size. */
  bodyBytes: number;
  /** Uncompressed body size. */
  payloadBytes: number;
  /** Items in the batch (events and quarantined lines). */
  events: number;
  contentType: string;
  contentEncoding?: 'gzip';
}

const EVENT_LIST_PREFIX = Buffer.from('{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[');
const EVENT_LIST_SUFFIX = Buffer.from(']}\n');
const COMMA = Buffer.from(',');
const NEWLINE = Buffer.from('\n');
/** Lines are handed to zlib in slices of this size: one thread-pool job per line would dominate. */
const GZIP_SLICE_BYTES = 256 * 1024;

export class BatchEncoder {
  private readonly raw: Buffer[] = [];
  private readonly compressed: Buffer[] = [];
  private readonly gzip: Gzip | null;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private items = 0;
  private bytes: number;
  private failure: Error | null = null;

  constructor(
    readonly format: BatchFormat,
    compress: boolean,
  ) {
    this.bytes = format === 'eventList' ? EVENT_LIST_PREFIX.length + EVENT_LIST_SUFFIX.length : 0;
    this.gzip = compress ? createGzip({ level: 1 }) : null;
    this.gzip?.on('data', (b: Buffer) => this.compressed.push(b));
    this.gzip?.on('error', (err: Error) => (this.failure = err));
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

  /** Adds one JSON item; resolves when the compressor has room again (bounded memory). */
  async add(item: Buffer): Promise<void> {
    this.bytes = this.sizeWith(item);
    if (this.format === 'eventList' && this.items > 0) this.push(COMMA);
    this.push(item);
    if (this.format === 'ndjson') this.push(NEWLINE);
    this.items++;
    if (this.pendingBytes >= GZIP_SLICE_BYTES) await this.flushSlice();
  }

  async finish(): Promise<EncodedBatch> {
    if (this.format === 'eventList') this.push(EVENT_LIST_SUFFIX);
    const contentType = this.format === 'eventList' ? 'application/json' : 'application/x-ndjson';
    if (!this.gzip) return { chunks: this.raw, bodyBytes: this.bytes, payloadBytes: this.bytes, events: this.items, contentType };
    await this.flushSlice();
    const ended = once(this.gzip, 'end');
    this.gzip.end();
    await ended;
    if (this.failure) throw this.failure;
    const bodyBytes = this.compressed.reduce((n, b) => n + b.length, 0);
    return { chunks: this.compressed, bodyBytes, payloadBytes: this.bytes, events: this.items, contentType, contentEncoding: 'gzip' };
  }

  /** Releases the compressor of a batch that will not be finished. */
  discard(): void {
    this.gzip?.destroy();
  }

  private push(b: Buffer): void {
    if (!this.gzip) {
      this.raw.push(b);
      return;
    }
    this.pending.push(b);
    this.pendingBytes += b.length;
  }

  private async flushSlice(): Promise<void> {
    if (!this.gzip || this.pendingBytes === 0) return;
    const slice = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    if (this.failure) throw this.failure;
    if (!this.gzip.write(slice)) await once(this.gzip, 'drain');
  }
}
