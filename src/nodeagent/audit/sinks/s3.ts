// S3 sink: one gzip NDJSON object per batch, keyed so that a plain listing sorts by time and
// names the cluster and node:
//   <prefix>/<clusterID>/<node>/<yyyy>/<mm>/<dd>/<ISO seal time>-<seq>.ndjson.gz
// The key is fixed when the batch is sealed, so a retried upload overwrites the same object
// instead of adding a duplicate. Object metadata repeats cluster-id, node, forwarder, seq, events.
import type { S3Client } from '@aws-sdk/client-s3';
import type { S3Sink } from '../../../apis/auditforwarder.js';
import { createS3Client, putS3Object, type S3Credentials } from '../../../util/s3.js';
import { joinS3Key } from '../../../util/s3key.js';
import type { EncodedBatch } from '../encoder.js';
import { SinkError, type BatchInfo, type Sink } from './types.js';

export type { S3Credentials } from '../../../util/s3.js';
export { crc32Base64 } from '../../../util/s3.js';

/** The object key of a batch (UTC date path, then the seal time and a zero-padded sequence). */
export function s3ObjectKey(prefix: string | undefined, info: BatchInfo): string {
  const iso = info.sealedAt.toISOString();
  const [yyyy, mm, dd] = [iso.slice(0, 4), iso.slice(5, 7), iso.slice(8, 10)];
  return joinS3Key(prefix, [info.clusterID, info.node, yyyy, mm, dd, `${iso}-${String(info.seq).padStart(10, '0')}.ndjson.gz`]);
}

export class S3BucketSink implements Sink {
  readonly format = 'ndjson' as const;
  readonly gzip = true;
  private readonly client: S3Client;

  constructor(
    private readonly spec: S3Sink,
    credentials: S3Credentials | undefined,
  ) {
    this.client = createS3Client(spec, credentials);
  }

  async send(batch: EncodedBatch, info: BatchInfo, signal: AbortSignal): Promise<void> {
    try {
      await putS3Object(
        this.client,
        {
          bucket: this.spec.bucket,
          key: s3ObjectKey(this.spec.prefix, info),
          // Streamed from the spool with its length and checksum known up front.
          body: batch.open(),
          contentLength: batch.bodyBytes,
          crc32: batch.crc32,
          contentType: 'application/x-ndjson',
          contentEncoding: 'gzip',
          metadata: { 'cluster-id': info.clusterID, node: info.node, forwarder: info.forwarder, seq: String(info.seq), events: String(batch.events) },
        },
        signal,
      );
    } catch (err) {
      throw new SinkError((err as Error).message);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
