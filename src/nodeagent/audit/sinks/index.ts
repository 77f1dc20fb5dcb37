// Builds the sink an AuditForwarder names, reading its Secrets with the agent's own client.
// Secret values are re-read at most once a minute, so a rotated token is picked up without a
// restart and a busy forwarder does not GET the Secret for every batch.
import type { KubeConfig } from '@kubernetes/client-node';
import { readOwnNamespaceSecret, s3CredentialsOf, type SecretRef } from '../../../runtime/secrets.js';
import type { AuditSink } from '../../../apis/auditforwarder.js';
import { RotatingFileSink } from './file.js';
import type { Sink } from './types.js';
import { HttpWebhookSink, parseHeaderLines, type WebhookCredentials } from './webhook.js';

export type { Sink } from './types.js';
export { SinkError } from './types.js';

const SECRET_TTL_MS = 60_000;

async function readSecretData(kc: KubeConfig, ref: SecretRef, namespace: string): Promise<Record<string, string>> {
  return (await readOwnNamespaceSecret(kc, ref, namespace)).data;
}

async function readSecretKey(kc: KubeConfig, ref: SecretRef & { key: string }, namespace: string): Promise<string> {
  const data = await readSecretData(kc, ref, namespace);
  const value = data[ref.key];
  if (value === undefined) throw new Error(`Secret ${namespace}/${ref.name} has no key ${ref.key}`);
  return value;
}

/** Caches an async value for ttl; a failed load is not cached. */
function cached<T>(load: () => Promise<T>, ttlMs = SECRET_TTL_MS): () => Promise<T> {
  let value: { v: T; at: number } | null = null;
  return async () => {
    if (value && Date.now() - value.at < ttlMs) return value.v;
    value = { v: await load(), at: Date.now() };
    return value.v;
  };
}

/** The sink of a spec; its Secrets are read from `namespace`, Netwarden's own. */
export async function buildSink(kc: KubeConfig, sink: AuditSink, stateDir: string, namespace: string): Promise<Sink> {
  if (sink.webhook) {
    const spec = sink.webhook;
    const credentials = cached<WebhookCredentials>(async () => ({
      headers: spec.headersSecretRef ? parseHeaderLines(await readSecretKey(kc, spec.headersSecretRef, namespace)) : {},
      bearerToken: spec.bearerTokenSecretRef ? (await readSecretKey(kc, spec.bearerTokenSecretRef, namespace)).trim() : undefined,
    }));
    await credentials(); // a missing Secret shows up now, in the status, not at the first batch
    return new HttpWebhookSink(spec, credentials);
  }
  if (sink.s3) {
    const ref = sink.s3.credentialsSecretRef;
    let creds;
    if (ref) {
      creds = s3CredentialsOf(await readOwnNamespaceSecret(kc, ref, namespace), `${namespace}/${ref.name}`);
    }
    // Loaded on demand: the AWS SDK costs tens of MB of memory that webhook and file sinks never need.
    const { S3BucketSink } = await import('./s3.js');
    return new S3BucketSink(sink.s3, creds);
  }
  if (sink.file) return new RotatingFileSink(sink.file, stateDir);
  throw new Error('spec.sink names no sink (webhook, s3 or file)');
}
