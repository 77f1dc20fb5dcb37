// PacketCapture export on one node: each of the capture's files goes to spec.export.s3 once it is
// complete (rotated, or the capture finished), as <prefix>/<namespace>/<capture>/<node>/<file>,
// with the AuditForwarder's S3 code (src/util/s3.ts). The files stay on the node.
//
// The credentials Secret is read from Netwarden's own namespace only (the tenancy rule, as for
// AuditForwarder sinks) and, the capture being a tenant's object, only when the Secret's
// netwarden.io/allowed-namespaces annotation names the capture's namespace: otherwise nothing is
// uploaded and the node's entry says Refused, which the controller turns into Exported=False.
//
// What was uploaded is appended to <capture dir>/.uploads (not a capture file name, so never served
// or listed), so an agent restart neither uploads again nor counts twice.
import { appendFileSync, closeSync, createReadStream, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import type { KubeConfig } from '@kubernetes/client-node';
import type { S3Client } from '@aws-sdk/client-s3';
import { captureObjectKey, MAX_LISTED_UPLOADS, secretAllowsNamespace, ALLOWED_NAMESPACES_ANNOTATION, type UploadState } from '../../apis/captureretention.js';
import type { PacketCaptureSpec } from '../../apis/packetcapture.js';
import { readOwnNamespaceSecret, s3CredentialsOf, type SecretContents } from '../../runtime/secrets.js';
import { errorMessage, loggerFor, type Logger } from '../../util/log.js';
import type { CaptureRef } from './store.js';

export type CaptureS3Export = NonNullable<NonNullable<PacketCaptureSpec['export']>['s3']>;

/** What the exporter needs of the agent. */
export interface ExportNode {
  /** Netwarden's own namespace: the only one whose Secrets are read. */
  namespace: string;
  name: string;
  /** Reads a Secret of that namespace (readOwnNamespaceSecret with the agent's client). */
  readSecret(name: string): Promise<SecretContents>;
}

/** The agent's ExportNode: Secrets read with its own client, from its own namespace only. */
export function agentExportNode(kc: KubeConfig, namespace: string, name: string): ExportNode {
  return { namespace, name, readSecret: (secret) => readOwnNamespaceSecret(kc, { name: secret }, namespace) };
}

export interface UploadsEntry {
  state: UploadState;
  message?: string;
  objects: Array<{ key: string; bytes: number }>;
  count: number;
  bytes: number;
  pending: number;
}

const UPLOADS_FILE = '.uploads';
const CHUNK = 1024 * 1024;
/** A failed upload is tried again after this long (doubling to the maximum). */
const RETRY_MIN_MS = 2_000;
const RETRY_MAX_MS = 60_000;
/** A refusal (the Secret's annotation) is looked at again this often: the admin may fix it. */
const REFUSED_RETRY_MS = 30_000;
/** Credentials are read again after this long (a rotated Secret). */
const CREDENTIALS_TTL_MS = 60_000;

/** Not an upload failure: this namespace may not upload with that Secret (or in clear text). */
class RefusedError extends Error {}

export class CaptureExporter {
  private readonly uploaded = new Map<string, { key: string; bytes: number }>();
  private readonly listed: Array<{ key: string; bytes: number }> = [];
  private bytes = 0;
  private readonly queue: string[] = [];
  /** Closed files opened at once, so that a rotation deleting them (maxFiles) loses nothing. */
  private readonly pinned = new Map<string, number>();
  private spec: CaptureS3Export;
  private specKey: string;
  private client: { s3: S3Client; at: number } | undefined;
  private draining = false;
  private closed = false;
  private failure: { state: 'Error' | 'Refused'; message: string; retryAt: number; delay: number } | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;

  constructor(
    private readonly ref: CaptureRef,
    private readonly dir: string,
    spec: CaptureS3Export,
    private readonly node: ExportNode,
    /** Called when the entry changed (an upload done, a failure): the status is written again. */
    private readonly onChange: () => void,
  ) {
    this.spec = spec;
    this.specKey = JSON.stringify(spec);
    this.log = loggerFor('capture-export', `${ref.namespace}/${ref.name}`);
    this.loadRecord();
  }

  /** A new spec.export.s3: a new client and credentials; what was uploaded stays uploaded. */
  update(spec: CaptureS3Export): void {
    const key = JSON.stringify(spec);
    if (key === this.specKey) return;
    this.spec = spec;
    this.specKey = key;
    this.resetClient();
    this.failure = undefined;
    void this.drain();
  }

  /** A file was closed (rotation or stop): pinned now, uploaded in turn. */
  fileClosed(fileName: string): void {
    if (this.closed || this.uploaded.has(fileName) || this.pinned.has(fileName)) return;
    try {
      this.pinned.set(fileName, openSync(path.join(this.dir, fileName), 'r'));
    } catch {
      return; // gone already
    }
    this.enqueue(fileName);
  }

  /** Every complete file of the capture on this node: those not uploaded yet are queued. */
  sync(complete: readonly string[]): void {
    for (const name of complete) this.enqueue(name);
  }

  /** Files still to be uploaded: node eviction leaves them alone. */
  pendingFiles(): ReadonlySet<string> {
    return new Set(this.queue);
  }

  busy(): boolean {
    return this.queue.length > 0;
  }

  entry(): UploadsEntry {
    const pending = this.queue.length;
    const state: UploadState = this.failure?.state ?? (pending > 0 ? 'Uploading' : 'Uploaded');
    return {
      state,
      ...(this.failure ? { message: this.failure.message.slice(0, 1024) } : {}),
      objects: [...this.listed],
      count: this.uploaded.size,
      bytes: this.bytes,
      pending,
    };
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const fd of this.pinned.values()) closeQuietly(fd);
    this.pinned.clear();
    this.queue.length = 0;
    this.resetClient();
  }

  private enqueue(fileName: string): void {
    if (this.closed || this.uploaded.has(fileName) || this.queue.includes(fileName)) return;
    this.queue.push(fileName);
    void this.drain();
  }

  /** Uploads the queue one file at a time; a failure waits its backoff (a refusal longer). */
  private async drain(): Promise<void> {
    if (this.draining || this.closed) return;
    if (this.failure && Date.now() < this.failure.retryAt) return this.scheduleRetry();
    this.draining = true;
    let changed = false;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const fileName = this.queue[0]!;
        const s3 = await this.s3();
        const done = await this.upload(s3, fileName);
        this.queue.shift();
        if (done) this.record(fileName, done.key, done.bytes);
        if (this.failure) this.failure = undefined;
        changed = true;
      }
    } catch (err) {
      const refused = err instanceof RefusedError;
      const delay = refused ? REFUSED_RETRY_MS : Math.min(RETRY_MAX_MS, (this.failure?.delay ?? RETRY_MIN_MS / 2) * 2);
      const message = errorMessage(err);
      if (this.failure?.message !== message) (refused ? this.log.warn('export refused', { reason: message }) : this.log.warn('upload failed; will retry', { error: message, retryInMs: delay }));
      this.failure = { state: refused ? 'Refused' : 'Error', message, retryAt: Date.now() + delay, delay };
      if (!refused) this.resetClient();
      changed = true;
      this.scheduleRetry();
    } finally {
      this.draining = false;
    }
    if (changed) this.onChange();
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closed || !this.failure) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.drain();
    }, Math.max(0, this.failure.retryAt - Date.now()));
    this.retryTimer.unref();
  }

  /** The client, with credentials the tenancy rule allows for this capture's namespace. */
  private async s3(): Promise<S3Client> {
    if (this.client && Date.now() - this.client.at < CREDENTIALS_TTL_MS) return this.client.s3;
    const spec = this.spec;
    if (spec.endpoint !== undefined && !spec.endpoint.startsWith('https://') && spec.allowInsecure !== true) {
      throw new RefusedError('spec.export.s3.endpoint: http:// sends the packets in clear text; use https://, or set spec.export.s3.allowInsecure: true');
    }
    // Ambient credentials would be the node's own identity (an instance role), which the admin
    // cannot grant to one namespace: a capture names a Secret, always (the schema requires it).
    const ref = spec.credentialsSecretRef;
    if (!ref?.name) throw new RefusedError("spec.export.s3.credentialsSecretRef is required: the node's own credentials are never used for a namespace's export");
    const where = `${this.node.namespace}/${ref.name}`;
    const contents = await this.node.readSecret(ref.name);
    if (!secretAllowsNamespace(contents.annotations, this.ref.namespace)) {
      throw new RefusedError(
        `Secret ${where} may not be used by PacketCaptures in namespace ${this.ref.namespace}: its annotation ${ALLOWED_NAMESPACES_ANNOTATION} does not name it (the admin lists the namespaces allowed, or "*"); nothing is uploaded`,
      );
    }
    const credentials = s3CredentialsOf(contents, where);
    this.resetClient();
    // Loaded on demand, as the audit sink does: the AWS SDK costs tens of MB that most nodes never need.
    const { createS3Client } = await import('../../util/s3.js');
    const s3 = createS3Client(spec, credentials);
    this.client = { s3, at: Date.now() };
    return s3;
  }

  /** PUTs one file as it is now; undefined when it is gone (evicted, rotated away before closing). */
  private async upload(s3: S3Client, fileName: string): Promise<{ key: string; bytes: number } | undefined> {
    let fd = this.pinned.get(fileName);
    if (fd === undefined) {
      try {
        fd = openSync(path.join(this.dir, fileName), 'r');
      } catch {
        return undefined;
      }
    }
    this.pinned.delete(fileName);
    try {
      const size = fstatSync(fd).size;
      const crc = crcOf(fd, size);
      const key = captureObjectKey(this.spec.prefix, this.ref.namespace, this.ref.name, this.node.name, fileName);
      const body = size === 0 ? Readable.from([]) : createReadStream('', { fd, start: 0, end: size - 1, autoClose: false });
      const { putS3Object } = await import('../../util/s3.js');
      await putS3Object(s3, {
        bucket: this.spec.bucket,
        key,
        body,
        contentLength: size,
        crc32: crc,
        contentType: fileName.endsWith('.pcap') ? 'application/vnd.tcpdump.pcap' : fileName.endsWith('.pcapng') ? 'application/x-pcapng' : 'text/plain; charset=utf-8',
        metadata: { namespace: this.ref.namespace, capture: this.ref.name, node: this.node.name },
      });
      this.log.info('uploaded', { key, bytes: size });
      return { key, bytes: size };
    } catch (err) {
      // Pinned again for the retry: a rotation may have removed the name meanwhile.
      this.pinned.set(fileName, fd);
      fd = undefined;
      throw err;
    } finally {
      if (fd !== undefined) closeQuietly(fd);
    }
  }

  private record(fileName: string, key: string, bytes: number): void {
    if (this.closed) return; // discarded meanwhile: the directory is gone
    this.remember(fileName, key, bytes);
    try {
      appendFileSync(path.join(this.dir, UPLOADS_FILE), `${JSON.stringify({ fileName, key, bytes })}\n`, { mode: 0o600 });
    } catch (err) {
      this.log.warn('could not record an upload (it may be uploaded again after a restart)', { error: errorMessage(err) });
    }
  }

  private remember(fileName: string, key: string, bytes: number): void {
    if (this.uploaded.has(fileName)) return;
    this.uploaded.set(fileName, { key, bytes });
    this.bytes += bytes;
    if (this.listed.length < MAX_LISTED_UPLOADS) this.listed.push({ key, bytes });
  }

  private loadRecord(): void {
    let text: string;
    try {
      text = readFileSync(path.join(this.dir, UPLOADS_FILE), 'utf8');
    } catch {
      return;
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const r = JSON.parse(line) as { fileName?: unknown; key?: unknown; bytes?: unknown };
        if (typeof r.fileName === 'string' && typeof r.key === 'string' && typeof r.bytes === 'number') this.remember(r.fileName, r.key, r.bytes);
      } catch {
        // a line cut short by a crash: that file is uploaded again
      }
    }
  }

  private resetClient(): void {
    this.client?.s3.destroy();
    this.client = undefined;
  }
}

function crcOf(fd: number, size: number): number {
  const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(1, size)));
  let crc = 0;
  for (let at = 0; at < size; ) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, size - at), at);
    if (n === 0) break;
    crc = crc32(buf.subarray(0, n), crc);
    at += n;
  }
  return crc;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // closed already
  }
}
