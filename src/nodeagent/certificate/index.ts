// The agent's serving certificate for its file API, for its own node only. Self-managed (no
// --tls-cert-file): each certificate comes from the CSR API (csr.ts) for the IP addresses of this
// agent's Node, is renewed at 70-90 % of its life, and early when the Node's addresses change.
import type { V1Node } from '@kubernetes/client-node';
import { CertificateRotator } from '../../runtime/tls.js';
import { canonicalIP, certificateNames } from '../../util/certinfo.js';
import { loggerFor } from '../../util/log.js';
import type { AgentContext } from '../context.js';
import { AgentCertificateRequester } from './csr.js';

/** This node's addresses an agent certificate may name: its InternalIP and ExternalIP ones. */
export function nodeIPs(node: V1Node | undefined): string[] {
  const ips = (node?.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP').map((a) => canonicalIP(a.address));
  return [...new Set(ips)].sort();
}

export function agentCertificateRotator(ctx: Pick<AgentContext, 'kc' | 'nodeName' | 'node'>): CertificateRotator {
  const requester = new AgentCertificateRequester(ctx.kc);
  const log = loggerFor('certificates/agent', ctx.nodeName);
  let certified: string[] = [];
  const rotator = new CertificateRotator({
    name: `agent ${ctx.nodeName}`,
    issue: async (signal) => {
      const ips = nodeIPs(ctx.node.get(ctx.nodeName));
      if (ips.length === 0) throw new Error(`node ${ctx.nodeName} has no InternalIP or ExternalIP address yet`);
      const credentials = await requester.request({ nodeName: ctx.nodeName, ips, signal, onCreated: (name) => log.info('certificate requested', { csr: name, addresses: ips }) });
      certified = certificateNames(credentials.cert.toString()).ips.sort();
      return credentials;
    },
  });
  const onNode = (node: V1Node): void => {
    const wanted = nodeIPs(node);
    if (certified.length > 0 && wanted.join(',') !== certified.join(',')) rotator.renewNow(`the node's addresses are now ${wanted.join(', ')}, the certificate has ${certified.join(', ')}`);
  };
  ctx.node.on('add', onNode);
  ctx.node.on('update', onNode);
  return rotator;
}
