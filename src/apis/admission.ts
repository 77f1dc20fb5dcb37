// Admission rules that the CRD schemas cannot hold because they depend on the installation (the
// namespace Netwarden runs in and the directories its agents may read) or on who writes
// (nodestatus.ts: each agent only its own node's status entries). They ship as a
// ValidatingAdmissionPolicy with its binding (CEL, run by the API server itself since 1.30; no
// webhook), rendered to config/admission/ by hack/gen-crds.ts; `netwarden validate` evaluates the
// very same expressions offline, and the agent enforces the same rules at run time
// (auditForwarderRefusal in limits.ts, which loads no CEL) where no policy is installed.
//
// Creating an AuditForwarder is an admin-level act all the same: it makes the agent on every
// selected node read a host file and send it, with credentials, to a URL.
import { stringify } from 'yaml';
import { Environment } from '@marcbachmann/cel-js';
import { AuditForwarderType, GROUP, VERSION } from './meta.js';
import { DEFAULT_AUDIT_LOG_DIR, SYSTEM_NAMESPACE } from './limits.js';
import { AGENT_NODE_STATUS_POLICY } from './nodestatus.js';

export interface AdmissionValidation {
  expression: string;
  message: string;
  /** A message with the settings in it; `message` is the fallback. */
  messageExpression?: string;
}

export interface AdmissionPolicy {
  name: string;
  /**
   * The ConfigMap in SYSTEM_NAMESPACE the policy reads its settings from, and their defaults;
   * a policy without settings has neither ConfigMap nor paramRef.
   */
  params?: Record<string, string>;
  /** The netwarden.io resources it checks: plurals, or plural/subresource. */
  resources: string[];
  /** Default CREATE and UPDATE. */
  operations?: string[];
  /** The requests it checks at all (e.g. by who sends them); every request when absent. */
  matchConditions?: Array<{ name: string; expression: string }>;
  /**
   * The kind whose objects `netwarden validate` checks offline with this policy; none for a policy
   * about who writes what, which needs a request to judge.
   */
  kind?: string;
  variables: Array<{ name: string; expression: string }>;
  validations: AdmissionValidation[];
}

const secretRefs: Array<[path: string, cel: string]> = [
  ['spec.sink.webhook.bearerTokenSecretRef', 'object.spec.sink.webhook.bearerTokenSecretRef'],
  ['spec.sink.webhook.headersSecretRef', 'object.spec.sink.webhook.headersSecretRef'],
  ['spec.sink.s3.credentialsSecretRef', 'object.spec.sink.s3.credentialsSecretRef'],
];

/** has() of every field along a CEL path, so that an absent parent is not an error. */
function present(celPath: string): string {
  const parts = celPath.split('.');
  const checks: string[] = [];
  for (let i = 2; i <= parts.length; i++) checks.push(`has(${parts.slice(0, i).join('.')})`);
  return checks.join(' && ');
}

export const AUDIT_FORWARDER_POLICY: AdmissionPolicy = {
  name: 'netwarden-auditforwarder',
  // Settings of the installation: keep them the same as the agents' --namespace and --audit-log-dir.
  params: { namespace: SYSTEM_NAMESPACE, auditLogDirs: DEFAULT_AUDIT_LOG_DIR },
  resources: [AuditForwarderType.plural],
  kind: AuditForwarderType.kind,
  variables: [
    { name: 'systemNamespace', expression: 'params.data.namespace' },
    { name: 'auditLogDirs', expression: "params.data.auditLogDirs.split(',')" },
  ],
  validations: [
    ...secretRefs.map(([path, cel]) => ({
      expression: `!(${present(cel)}) || !has(${cel}.namespace) || ${cel}.namespace == variables.systemNamespace`,
      messageExpression: `'${path}.namespace: Secrets are read only from Netwarden\\'s own namespace ' + variables.systemNamespace + '; leave namespace out or set it to ' + variables.systemNamespace`,
      message: `${path}.namespace: Secrets are read only from Netwarden's own namespace; leave namespace out`,
    })),
    {
      expression: `!(${present('object.spec.sink.webhook')}) || object.spec.sink.webhook.url.startsWith('https://') || (has(object.spec.sink.webhook.allowInsecure) && object.spec.sink.webhook.allowInsecure)`,
      message: 'spec.sink.webhook.url: http:// sends the audit log and any bearer token or headers in clear text; use https://, or set spec.sink.webhook.allowInsecure: true for a receiver on a trusted network',
    },
    {
      expression: `!(${present('object.spec.sink.s3.endpoint')}) || object.spec.sink.s3.endpoint.startsWith('https://') || (has(object.spec.sink.s3.allowInsecure) && object.spec.sink.s3.allowInsecure)`,
      message: 'spec.sink.s3.endpoint: http:// sends the audit log in clear text; use https://, or set spec.sink.s3.allowInsecure: true for an endpoint on a trusted network',
    },
    {
      expression:
        `!(${present('object.spec.source.path')}) || (variables.auditLogDirs.exists(d, object.spec.source.path.startsWith(d + '/')) && ` +
        `!object.spec.source.path.contains('/../') && !object.spec.source.path.endsWith('/..') && !object.spec.source.path.contains('/./') && !object.spec.source.path.contains('//'))`,
      messageExpression: "'spec.source.path: the agents read audit logs only under ' + variables.auditLogDirs.join(', ') + ' (their --audit-log-dir), and the path may have no . or .. segments'",
      message: 'spec.source.path: the agents read audit logs only under their --audit-log-dir directories, and the path may have no . or .. segments',
    },
  ],
};

export const ADMISSION_POLICIES: readonly AdmissionPolicy[] = [AUDIT_FORWARDER_POLICY, AGENT_NODE_STATUS_POLICY];

/** The ValidatingAdmissionPolicy and its binding, as API objects. */
export function renderAdmissionPolicy(policy: AdmissionPolicy): Record<string, unknown>[] {
  const labels = { 'app.kubernetes.io/name': 'netwarden', 'app.kubernetes.io/part-of': 'netwarden' };
  return [
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: policy.name, labels },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: {
          resourceRules: [{ apiGroups: [GROUP], apiVersions: [VERSION], operations: policy.operations ?? ['CREATE', 'UPDATE'], resources: policy.resources }],
        },
        ...(policy.matchConditions ? { matchConditions: policy.matchConditions } : {}),
        ...(policy.params ? { paramKind: { apiVersion: 'v1', kind: 'ConfigMap' } } : {}),
        variables: policy.variables,
        validations: policy.validations.map((v) => ({ expression: v.expression, message: v.message, ...(v.messageExpression ? { messageExpression: v.messageExpression } : {}), reason: 'Forbidden' })),
      },
    },
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: policy.name, labels },
      // Without its settings the policy refuses every object rather than letting them all through.
      spec: { policyName: policy.name, validationActions: ['Deny'], ...(policy.params ? { paramRef: { name: policy.name, namespace: SYSTEM_NAMESPACE, parameterNotFoundAction: 'Deny' } } : {}) },
    },
    ...(policy.params
      ? [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: policy.name, namespace: SYSTEM_NAMESPACE, labels }, data: policy.params }]
      : []),
  ];
}

/** config/admission/<name>.yaml: both objects, with a header saying where they come from. */
export function renderAdmissionYaml(policy: AdmissionPolicy): string {
  const header = '# Generated by hack/gen-crds.ts from src/apis/admission.ts; do not edit. Regenerate with: npm run gen:crds\n';
  return header + renderAdmissionPolicy(policy).map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
}

// ---- offline: the same expressions, evaluated as the API server does ----

const cel = new Environment({ unlistedVariablesAreDyn: true, homogeneousAggregateLiterals: false });
const compiled = new Map<string, (ctx: Record<string, unknown>) => unknown>();

function evaluate(expression: string, ctx: Record<string, unknown>): unknown {
  let fn = compiled.get(expression);
  if (!fn) {
    const parsed = cel.parse(expression);
    fn = (c) => parsed(c) as unknown;
    compiled.set(expression, fn);
  }
  return fn(ctx);
}

/**
 * The messages of the policies' validations that `obj` (a defaulted object of `kind`) fails, with
 * the policies' default settings unless `params` gives the installation's.
 */
export function admissionViolations(kind: string, obj: Record<string, unknown>, params?: Record<string, string>): string[] {
  const out: string[] = [];
  for (const policy of ADMISSION_POLICIES) {
    if (policy.kind !== kind) continue;
    const ctx: Record<string, unknown> = { object: obj, params: { data: params ?? policy.params ?? {} } };
    const variables: Record<string, unknown> = {};
    ctx.variables = variables;
    for (const v of policy.variables) variables[v.name] = evaluate(v.expression, ctx);
    for (const v of policy.validations) {
      let ok: unknown;
      try {
        ok = evaluate(v.expression, ctx);
      } catch (err) {
        ok = `rule evaluation error: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
      }
      if (ok === true) continue;
      out.push(typeof ok === 'string' ? ok : v.messageExpression ? String(evaluate(v.messageExpression, ctx)) : v.message);
    }
  }
  return out;
}
