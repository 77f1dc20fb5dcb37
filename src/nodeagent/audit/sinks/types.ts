// What every sink gets and how it reports failure. A sink acknowledges a batch by resolving
// send(); only then is the checkpoint advanced (at-least-once delivery).
import type { BatchFormat, EncodedBatch } from '../encoder.js';

/** Where a batch came from and what it is, for headers, object keys and file names. */
export interface BatchInfo {
  forwarder: string;
  clusterID: string;
  node: string;
  /** Per-forwarder sequence number of the batch (survives agent restarts via the checkpoint). */
  seq: number;
  /** When the batch was sealed; fixed for its re-sends, so an S3 retry overwrites the same key. */
  sealedAt: Date;
}

export interface Sink {
  /** The body format this sink wants and whether it is gzip-compressed while built. */
  readonly format: BatchFormat;
  readonly gzip: boolean;
  /** Delivers one batch; throws SinkError (or any error) when the sink did not take it. */
  send(batch: EncodedBatch, info: BatchInfo, signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export class SinkError extends Error {
  constructor(
    message: string,
    /** Server-requested delay (Retry-After), if any. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'SinkError';
  }
}

/** The one Retry-After parser is in src/util/http.ts; named here too, where the sinks' tests look. */
export { parseRetryAfter } from '../../../util/http.js';
