// The S3 client both uploaders share (the AuditForwarder's S3 sink and PacketCapture's export):
// one PUT per object with its length and CRC-32 known up front, so the SDK sends a plain PUT (no
// aws-chunked encoding, which S3-compatible servers often lack) that S3 still verifies, and errors
// that name the bucket, key and HTTP status. Imported on demand: the AWS SDK costs tens of MB.
import type { Readable } from 'node:stream';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
export { joinS3Key } from './s3key.js';

export interface S3Target {
  endpoint?: string | undefined;
  region?: string | undefined;
  forcePathStyle?: boolean | undefined;
}

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface S3Object {
  bucket: string;
  key: string;
  body: Readable;
  contentLength: number;
  /** CRC-32 of the body (zlib.crc32). */
  crc32: number;
  contentType: string;
  contentEncoding?: string | undefined;
  metadata?: Record<string, string> | undefined;
}

/** A client that tries once: both callers retry with their own backoff. */
export function createS3Client(target: S3Target, credentials: S3Credentials | undefined): S3Client {
  return new S3Client({
    region: target.region ?? 'us-east-1',
    forcePathStyle: target.forcePathStyle ?? false,
    ...(target.endpoint ? { endpoint: target.endpoint } : {}),
    ...(credentials ? { credentials } : {}),
    maxAttempts: 1,
  });
}

/** PUTs one object; an Error saying `s3 put <bucket>/<key>: HTTP <status>: <message>` when it fails. */
export async function putS3Object(client: S3Client, object: S3Object, signal?: AbortSignal): Promise<void> {
  try {
    await client.send(
      new PutObjectCommand({
        Bucket: object.bucket,
        Key: object.key,
        Body: object.body,
        ContentLength: object.contentLength,
        ChecksumCRC32: crc32Base64(object.crc32),
        ContentType: object.contentType,
        ...(object.contentEncoding ? { ContentEncoding: object.contentEncoding } : {}),
        ...(object.metadata ? { Metadata: object.metadata } : {}),
      }),
      signal ? { abortSignal: signal } : {},
    );
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    throw new Error(`s3 put ${object.bucket}/${object.key}: ${status ? `HTTP ${status}: ` : ''}${(err as Error).message}`, { cause: err });
  }
}

/** x-amz-checksum-crc32: the big-endian CRC-32 of the body, base64. */
export function crc32Base64(crc: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc >>> 0);
  return b.toString('base64');
}
