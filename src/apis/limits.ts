// What the agent refuses to do whatever an object says: the run-time side of the admission rules
// in admission.ts, with the agent's own namespace and directories. No CEL here: the agent loads
// this, and an agent process should not carry an expression evaluator.
import type { AuditForwarderSpec } from './auditforwarder.js';

/** The namespace config/ installs Netwarden in: the only one whose Secrets it reads. */
export const SYSTEM_NAMESPACE = 'netwarden-system';
/** Where kube-apiserver's audit log lives on kubeadm nodes; the agent's --audit-log-dir default. */
export const DEFAULT_AUDIT_LOG_DIR = '/var/log/kubernetes/audit';

export interface AuditForwarderLimits {
  /** The namespace whose Secrets the agent reads. */
  namespace: string;
  /** Directories audit logs may be read from (the agent's --audit-log-dir). */
  auditLogDirs: readonly string[];
}

/** Why the agent refuses to run this forwarder, or undefined. Paths are checked lexically here. */
export function auditForwarderRefusal(spec: AuditForwarderSpec, limits: AuditForwarderLimits): string | undefined {
  const refusal = sinkRefusal(spec, limits.namespace);
  if (refusal) return refusal;
  const path = spec.source?.path;
  if (path !== undefined && !isInsideLexically(path, limits.auditLogDirs)) {
    return `spec.source.path ${path} is outside the directories this agent reads audit logs from (${limits.auditLogDirs.join(', ')}; set with --audit-log-dir)`;
  }
  return undefined;
}

/** Why the sink may not be used: a Secret outside `namespace`, or http:// without allowInsecure. */
export function sinkRefusal(spec: AuditForwarderSpec, namespace: string): string | undefined {
  const refs: Array<[string, { namespace?: string } | undefined]> = [
    ['spec.sink.webhook.bearerTokenSecretRef', spec.sink.webhook?.bearerTokenSecretRef],
    ['spec.sink.webhook.headersSecretRef', spec.sink.webhook?.headersSecretRef],
    ['spec.sink.s3.credentialsSecretRef', spec.sink.s3?.credentialsSecretRef],
  ];
  for (const [path, ref] of refs) {
    if (ref?.namespace !== undefined && ref.namespace !== namespace) {
      return `${path}.namespace: Secrets are read only from Netwarden's own namespace ${namespace}, not ${ref.namespace}`;
    }
  }
  const webhook = spec.sink.webhook;
  if (webhook && !webhook.url.startsWith('https://') && webhook.allowInsecure !== true) {
    return 'spec.sink.webhook.url: http:// sends the audit log and any credentials in clear text; use https://, or set spec.sink.webhook.allowInsecure: true';
  }
  const s3 = spec.sink.s3;
  if (s3?.endpoint !== undefined && !s3.endpoint.startsWith('https://') && s3.allowInsecure !== true) {
    return 'spec.sink.s3.endpoint: http:// sends the audit log in clear text; use https://, or set spec.sink.s3.allowInsecure: true';
  }
  return undefined;
}

/** An absolute path strictly inside one of `dirs`, with no ., .. or empty segments. */
export function isInsideLexically(path: string, dirs: readonly string[]): boolean {
  if (!path.startsWith('/')) return false;
  const segments = path.slice(1).split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..')) return false;
  return dirs.some((d) => {
    const dir = d.endsWith('/') ? d.slice(0, -1) : d;
    return path.startsWith(`${dir}/`);
  });
}
