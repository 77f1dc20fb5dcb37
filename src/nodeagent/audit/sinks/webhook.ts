// Webhook sink: POSTs each batch to a URL, like the kube-apiserver's audit webhook backend (an
// audit.k8s.io/v1 EventList as application/json) or as NDJSON. 2xx acknowledges the batch;
// anything else is retried (honouring Retry-After), since a receiver that rejects a batch today
// may take it after a fix, and dropping audit events is not an option.
//
// Every request carries X-Netwarden-Cluster-ID, X-Netwarden-Node and X-Netwarden-Batch
// (<node>/<forwarder>/<seq>, the same on re-sends). The EventList body itself is left exactly in
// the apiserver's schema.
import { Agent, ProxyAgent, request, type Dispatcher } from 'undici';
import type { WebhookSink } from '../../../apis/auditforwarder.js';
import type { EncodedBatch } from '../encoder.js';
import { parseRetryAfter } from '../../../util/http.js';
import { SinkError, type BatchInfo, type Sink } from './types.js';

export interface WebhookCredentials {
  /** Extra headers from the headers Secret. */
  headers: Record<string, string>;
  bearerToken?: string | undefined;
}

/** "Name: value" per line; blank lines and # comments are skipped. */
export function parseHeaderLines(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim() : '';
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new Error(`headers line ${i + 1}: expected "Name: value"`);
    out[name] = line.slice(colon + 1).trim();
  }
  return out;
}

const REQUEST_TIMEOUT_MS = 60_000;

export class HttpWebhookSink implements Sink {
  readonly format;
  readonly gzip;
  private readonly dispatcher: Dispatcher;

  constructor(
    private readonly spec: WebhookSink,
    private readonly credentials: () => Promise<WebhookCredentials>,
  ) {
    this.format = spec.format ?? 'eventList';
    this.gzip = spec.gzip ?? false;
    const ca = spec.caBundle ? Buffer.from(spec.caBundle, 'base64').toString('utf8') : undefined;
    const timeouts = { headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS };
    this.dispatcher = spec.proxyURL
      ? new ProxyAgent({ uri: spec.proxyURL, ...(ca ? { requestTls: { ca } } : {}), ...timeouts })
      : new Agent({ ...(ca ? { connect: { ca } } : {}), ...timeouts });
  }

  async send(batch: EncodedBatch, info: BatchInfo, signal: AbortSignal): Promise<void> {
    const creds = await this.credentials();
    const headers: Record<string, string> = {
      ...creds.headers,
      'content-type': batch.contentType,
      'content-length': String(batch.bodyBytes),
      'x-netwarden-cluster-id': info.clusterID,
      'x-netwarden-node': info.node,
      'x-netwarden-batch': `${info.node}/${info.forwarder}/${info.seq}`,
    };
    if (batch.contentEncoding) headers['content-encoding'] = batch.contentEncoding;
    if (creds.bearerToken) headers.authorization = `Bearer ${creds.bearerToken}`;
    // A fresh stream of the spooled body per attempt.
    let res: Dispatcher.ResponseData;
    try {
      res = await request(this.spec.url, { method: 'POST', headers, body: batch.open(), dispatcher: this.dispatcher, signal });
    } catch (err) {
      const via = this.spec.proxyURL ? ` (through the proxy ${withoutPassword(this.spec.proxyURL)})` : '';
      throw new SinkError(`POST ${withoutPassword(this.spec.url)}${via}: ${describe(err)}`);
    }
    const text = await res.body.text().catch(() => '');
    if (res.statusCode >= 200 && res.statusCode < 300) return;
    const retryAfter = res.headers['retry-after'];
    const sizeAdvice = refusedAsTooLarge(res.statusCode, text)
      ? `; this body of ${batch.bodyBytes} bytes is over the receiver's limit: set spec.batch.maxBytes below it (Falco's k8saudit plugin takes 12 MiB by default)`
      : '';
    throw new SinkError(
      `POST ${withoutPassword(this.spec.url)}: HTTP ${res.statusCode}${text ? `: ${text.slice(0, 200).trim()}` : ''}${sizeAdvice}`,
      parseRetryAfter(retryAfter),
    );
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

/**
 * 413, or the 400 that Go's http.MaxBytesReader gives ("http: request body too large"), which is
 * what Falco's k8saudit webhook answers past its webhookMaxBatchSize. Our default maxBytes (50 MB)
 * is above that, so this is the first thing a Falco user meets; the batch is kept and retried
 * until the spec changes, and the new spec re-reads it from the checkpoint in smaller batches.
 */
function refusedAsTooLarge(status: number, body: string): boolean {
  return status === 413 || (status === 400 && /too large/i.test(body));
}

/** The URL for a status message: a proxy URL may carry user:password. */
function withoutPassword(url: string): string {
  const u = new URL(url);
  if (!u.password) return url;
  u.password = '***';
  return u.toString();
}

/** OpenSSL's codes for a server certificate that does not chain to a trusted CA. */
const UNTRUSTED_CERTIFICATE = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
]);

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: unknown }).cause;
  const code = (err as NodeJS.ErrnoException).code ?? (cause as NodeJS.ErrnoException | undefined)?.code;
  // Node's advice to restart it with --use-system-ca is not something a user of the resource can do.
  const message = err.message.replace(/; if the root CA is installed locally, try running Node\.js with --use-system-ca/, '');
  const described = code && !message.includes(code) ? `${message} (${code})` : message;
  return code && UNTRUSTED_CERTIFICATE.has(code) ? `${described}: set caBundle to the CA that signed the receiver's certificate` : described;
}
