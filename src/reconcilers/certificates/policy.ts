// Which agent certificate requests the signer approves, without I/O. An agent may get a serving
// certificate for its own node's IP addresses and nothing else, so that holding one node's agent
// gives no way to pass for another node (or for the controller) to anyone who trusts the CA.
//
// The requester's identity is the API server's, not the request's: spec.username and spec.extra
// are set from the token that created the CSR. A pod-bound ServiceAccount token (every projected
// token is one) carries the name of the node its pod is bound to.
import type { V1CertificateSigningRequest, V1Node } from '@kubernetes/client-node';
import { agentCommonName, NODE_NAME_EXTRA } from '../../apis/certificates.js';
import { canonicalIP } from '../../util/certinfo.js';
import type { ParsedCertificateRequest } from '../../util/x509.js';

export interface SignerPolicy {
  /** system:serviceaccount:<namespace>:netwarden-agent */
  agentUsername: string;
  /** Longest certificate issued; a request for longer gets this (Kubernetes' signers do the same). */
  maxLifetimeMs: number;
}

export interface RequestFacts {
  csr: V1CertificateSigningRequest;
  /** The PKCS#10 request, or why it could not be read. */
  request: ParsedCertificateRequest | { error: string };
  nodes: { get(name: string): V1Node | undefined; list(): V1Node[] };
  /** Addresses no agent may have a certificate for, with what they are (the controller's, Services'). */
  reserved: ReadonlyMap<string, string>;
}

export type Verdict =
  | { approve: true; nodeName: string; commonName: string; ips: string[]; lifetimeMs: number; request: ParsedCertificateRequest }
  | { approve: false; reason: string; message: string };

const ALLOWED_USAGES = new Set(['digital signature', 'key encipherment', 'server auth']);
const ALLOWED_KEYS = new Set(['ECDSA P-256', 'ECDSA P-384']);

/** A Node's addresses that name it by IP (InternalIP, ExternalIP), in canonical form. */
export function nodeIPAddresses(node: V1Node): string[] {
  return (node.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP').map((a) => canonicalIP(a.address));
}

function deny(reason: string, message: string): Verdict {
  return { approve: false, reason, message };
}

export function reviewAgentRequest(facts: RequestFacts, policy: SignerPolicy): Verdict {
  const { spec } = facts.csr;
  if (spec.username !== policy.agentUsername) {
    return deny('NotAnAgent', `requested by ${JSON.stringify(spec.username ?? '')}; only ${policy.agentUsername} may request agent serving certificates`);
  }
  const nodeNames = spec.extra?.[NODE_NAME_EXTRA] ?? [];
  if (nodeNames.length !== 1 || !nodeNames[0]) {
    return deny('NoNodeIdentity', `the requester's token names no node (spec.extra["${NODE_NAME_EXTRA}"] is ${JSON.stringify(nodeNames)}); the agent must use a token bound to its pod, as projected ServiceAccount tokens are`);
  }
  const nodeName = nodeNames[0];
  const node = facts.nodes.get(nodeName);
  if (!node) return deny('UnknownNode', `the requester's node ${nodeName} does not exist`);
  const usageProblem = checkUsages(spec.usages ?? []);
  if (usageProblem) return usageProblem;
  if ('error' in facts.request) return deny('MalformedRequest', `spec.request is not a PKCS#10 certificate request: ${facts.request.error}`);
  const request = facts.request;
  if (!request.signatureValid) return deny('BadSignature', 'the request is not signed by the key it asks a certificate for');
  if (!ALLOWED_KEYS.has(request.keyAlgorithm)) return deny('UnsupportedKey', `key ${request.keyAlgorithm}; use ECDSA P-256 or P-384`);
  const commonName = agentCommonName(nodeName);
  if (request.commonName !== commonName) return deny('WrongCommonName', `subject CN ${JSON.stringify(request.commonName ?? '')}, expected ${commonName}`);
  if (request.otherExtensions.length > 0) return deny('UnexpectedExtensions', `extensions other than subjectAltName requested: ${request.otherExtensions.join(', ')}`);
  const addressProblem = checkAddresses(request, node, nodeName, facts);
  if (addressProblem) return addressProblem;
  const requestedMs = spec.expirationSeconds ? spec.expirationSeconds * 1000 : policy.maxLifetimeMs;
  return { approve: true, nodeName, commonName, ips: request.ips, lifetimeMs: Math.min(requestedMs, policy.maxLifetimeMs), request };
}

function checkUsages(usages: string[]): Verdict | undefined {
  if (!usages.includes('server auth')) return deny('MissingServerAuth', `usages ${JSON.stringify(usages)} do not include "server auth"`);
  const extra = usages.filter((u) => !ALLOWED_USAGES.has(u));
  if (extra.length > 0) return deny('DisallowedUsage', `usages ${JSON.stringify(extra)} are not allowed; an agent serving certificate is for server auth only`);
  return undefined;
}

/** Only IP addresses, each one of this node's, none another node's or reserved. */
function checkAddresses(request: ParsedCertificateRequest, node: V1Node, nodeName: string, facts: RequestFacts): Verdict | undefined {
  const nonIP = [...request.dns.map((d) => `DNS:${d}`), ...request.otherNames];
  if (nonIP.length > 0) {
    // A Node's hostname and DNS addresses are whatever its kubelet says: a name there could be the controller's Service.
    return deny('NotAnIPAddress', `names ${nonIP.join(', ')} requested; an agent certificate names only its node's IP addresses`);
  }
  if (request.ips.length === 0) return deny('NoAddresses', 'the request names no IP address');
  const own = new Set(nodeIPAddresses(node));
  const foreign = request.ips.filter((ip) => !own.has(ip));
  if (foreign.length > 0) {
    return deny('NotNodeAddress', `${foreign.join(', ')} ${foreign.length === 1 ? 'is not an address' : 'are not addresses'} of node ${nodeName} (its addresses: ${[...own].join(', ') || 'none'})`);
  }
  for (const ip of request.ips) {
    const reserved = facts.reserved.get(ip);
    if (reserved) return deny('ReservedAddress', `${ip} is ${reserved}`);
    const other = facts.nodes.list().find((n) => n.metadata?.name !== nodeName && nodeIPAddresses(n).includes(ip));
    if (other) return deny('AddressOfAnotherNode', `${ip} is also an address of node ${other.metadata?.name}; a certificate for it would let this node pass for that one`);
  }
  return undefined;
}
