// Reading a Secret of Netwarden's own namespace with the caller's client: the one place that turns
// a Secret reference into its values, for every kind that names credentials (AuditForwarder sinks,
// PacketCapture export). A reference to any other namespace is refused here too, not only by the
// admission policy and RBAC, so that no object ships another team's Secret to its destination.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';

export interface SecretRef {
  name: string;
  namespace?: string | undefined;
}

export interface SecretContents {
  data: Record<string, string>;
  annotations: Record<string, string>;
}

/** The Secret's keys, decoded, and its annotations; `namespace` is Netwarden's own. */
export async function readOwnNamespaceSecret(kc: KubeConfig, ref: SecretRef, namespace: string): Promise<SecretContents> {
  if (ref.namespace !== undefined && ref.namespace !== namespace) {
    throw new Error(`Secret ${ref.namespace}/${ref.name} refused: Secrets are read only from Netwarden's own namespace ${namespace}`);
  }
  let secret;
  try {
    secret = await kc.makeApiClient(CoreV1Api).readNamespacedSecret({ name: ref.name, namespace });
  } catch (err) {
    const code = (err as { code?: number }).code;
    throw new Error(`cannot read Secret ${namespace}/${ref.name}${code ? ` (HTTP ${code})` : ''}`, { cause: err });
  }
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(secret.data ?? {})) data[k] = Buffer.from(v, 'base64').toString('utf8');
  for (const [k, v] of Object.entries(secret.stringData ?? {})) data[k] = v;
  return { data, annotations: secret.metadata?.annotations ?? {} };
}

/** S3 access keys from a Secret's accessKeyID and secretAccessKey. */
export function s3CredentialsOf(contents: SecretContents, where: string): { accessKeyId: string; secretAccessKey: string } {
  const { accessKeyID, secretAccessKey } = contents.data;
  if (!accessKeyID || !secretAccessKey) throw new Error(`Secret ${where} needs keys accessKeyID and secretAccessKey`);
  return { accessKeyId: accessKeyID, secretAccessKey };
}
