// S3 sink: one gzip NDJSON object per batch, keyed so that a plain listing sorts by time and
// names the cluster and node:
//   <prefix>/<clusterID>/<node>/<yyyy>/<mm>/<dd>/<ISO seal time>-<seq>.ndjson.gz
// The key is fixed when the batch is sealed, so a retried upload overwrites the same object
// instead of adding a duplicate. Object metadata repeats cluster-id, node, forwarder, seq, events.
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { S3Sink } from '../../../apis/auditforwarder.js';
import type { EncodedBatch } from '../encoder.js';
import { SinkError, type BatchInfo, type Sink } from './types.js';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** The object key of a batch (UTC date path, then the seal time and a zero-padded sequence). */
export function s3ObjectKey(prefix: string | undefined, info: BatchInfo): string {
  const iso = info.sealedAt.toISOString();
  const [yyyy, mm, dd] = [iso.slice(0, 4), iso.slice(5, 7), iso.slice(8, 10)];
  const parts = [info.clusterID, info.node, yyyy, mm, dd, `${iso}-${String(info.seq).padStart(10, '0')}.ndjson.gz`];
  const head = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  return (head ? [head, ...parts] : parts).join('/');
}

export class S3BucketSink implements Sink {
  readonly format = 'ndjson' as const;
  readonly gzip = true;
  private readonly client: S3Client;

  constructor(
    private readonly spec: S3Sink,
    credentials: S3Credentials | undefined,
  ) {
    this.client = new S3Client({
      region: spec.region ?? 'us-east-1',
      forcePathStyle: spec.forcePathStyle ?? false,
      ...(spec.endpoint ? { endpoint: spec.endpoint } : {}),
      ...(credentials ? { credentials } : {}),
      maxAttempts: 1, // the forwarder retries with its own backoff and back-pressure
    });
  }

  async send(batch: EncodedBatch, info: BatchInfo, signal: AbortSignal): Promise<void> {
    const key = s3ObjectKey(this.spec.prefix, info);
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.spec.bucket,
          Key: key,
          // Streamed from the spool with its length and checksum known up front, so the SDK sends
          // one plain PUT (no aws-chunked encoding) that S3 still verifies.
          Body: batch.open(),
          ContentLength: batch.bodyBytes,
          ChecksumCRC32: crc32Base64(batch.crc32),
          ContentType: 'application/x-ndjson',
          ContentEncoding: 'gzip',
          Metadata: { 'cluster-id': info.clusterID, node: info.node, forwarder: info.forwarder, seq: String(info.seq), events: String(batch.events) },
        }),
        { abortSignal: signal },
      );
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      throw new SinkError(`s3 put ${this.spec.bucket}/${key}: ${status ? `HTTP ${status}: ` : ''}${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

/** x-amz-checksum-crc32: the big-endian CRC-32 of the body, base64. */
export function crc32Base64(crc: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc >>> 0);
  return b.toString('base64');
}
