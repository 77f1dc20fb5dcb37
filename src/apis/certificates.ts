// Netwarden's own certificates, as the controller, the agents and the plugin agree on them.
//
// The controller keeps a CA (its key in a Secret of a namespace no agent can read) and publishes
// the CA certificates every client should trust in the ConfigMap `netwarden-ca` of Netwarden's
// namespace. Each agent gets a serving certificate for its own node's IP addresses through the
// CSR API with the signer below; the controller approves and signs only such requests.

/** signerName of an agent's serving certificate request (certificates.k8s.io/v1). */
export const AGENT_SERVING_SIGNER = 'netwarden.io/agent-serving';

/** The ConfigMap of Netwarden's namespace with the CA bundle, under CA_BUNDLE_KEY. */
export const CA_CONFIGMAP = 'netwarden-ca';
export const CA_BUNDLE_KEY = 'ca.crt';

/** Where the controller keeps the CA's key by default: a namespace of its own, see config/namespace.yaml. */
export const DEFAULT_CA_SECRET_NAMESPACE = 'netwarden-pki';
export const CA_SECRET = 'netwarden-ca';

/** The agents' ServiceAccount, in Netwarden's namespace: the only requester the signer serves. */
export const AGENT_SERVICE_ACCOUNT = 'netwarden-agent';

/** The key of a pod-bound token's user info (and so of a CSR's spec.extra) that names the pod's node. */
export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';

/** What an agent's request asks for: a key that signs TLS handshakes of a server. */
export const AGENT_CSR_USAGES = ['digital signature', 'server auth'] as const;

/** The lifetime an agent asks for; the signer shortens it to its own maximum. */
export const AGENT_REQUESTED_SECONDS = 7 * 24 * 3600;

/** The subject CN of the serving certificate of a node's agent. */
export function agentCommonName(nodeName: string): string {
  return `netwarden:agent:${nodeName}`;
}

/** The username a ServiceAccount authenticates as. */
export function serviceAccountUsername(namespace: string, name: string): string {
  return `system:serviceaccount:${namespace}:${name}`;
}
