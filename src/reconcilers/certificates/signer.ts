// The signer of netwarden.io/agent-serving: for each pending request, the verdict of policy.ts
// becomes an Approved or a Denied condition (with the reason), and an approved request gets its
// certificate from the controller's CA. Level-triggered: a request is looked at until it has a
// certificate or a terminal condition, whichever replica leads; writes go through the approval and
// status subresources with the resourceVersion read, so a conflict is retried, never doubled.
//
// A request approved by someone else (anyone with `approve` on this signer, e.g. kubectl
// certificate approve) is still checked before signing, and marked Failed when it does not pass:
// approval is a human's yes, the signer decides what the CA puts its name to.
import { CertificatesV1Api, type KubeConfig, type V1CertificateSigningRequest, type V1CertificateSigningRequestCondition, type V1Node, type V1Service } from '@kubernetes/client-node';
import { AGENT_SERVING_SIGNER } from '../../apis/certificates.js';
import type { Reconciler } from '../../runtime/controller.js';
import type { Informer } from '../../runtime/informer.js';
import type { ObjectKey } from '../../runtime/keys.js';
import { canonicalIP } from '../../util/certinfo.js';
import { errorMessage, loggerFor } from '../../util/log.js';
import { parseCertificateRequest, type ParsedCertificateRequest } from '../../util/x509.js';
import type { CaStore } from './ca.js';
import { reviewAgentRequest, type SignerPolicy, type Verdict } from './policy.js';

export interface SignerOptions extends SignerPolicy {
  /** Addresses of the controller's own serving certificate: no agent gets one of them. */
  controllerAddresses: readonly string[];
}

type Terminal = 'Denied' | 'Failed';

export class AgentCsrSigner implements Reconciler {
  private readonly api: CertificatesV1Api;

  constructor(
    kc: KubeConfig,
    private readonly csrs: Pick<Informer<V1CertificateSigningRequest>, 'get'>,
    private readonly nodes: Pick<Informer<V1Node>, 'get' | 'list'>,
    private readonly services: Pick<Informer<V1Service>, 'list'>,
    private readonly ca: Pick<CaStore, 'sign'>,
    private readonly opts: SignerOptions,
  ) {
    this.api = kc.makeApiClient(CertificatesV1Api);
  }

  async reconcile(key: ObjectKey): Promise<void> {
    const csr = this.csrs.get(key.name);
    if (!csr || csr.spec.signerName !== AGENT_SERVING_SIGNER || csr.status?.certificate || terminal(csr)) return;
    const log = loggerFor('certificates/signer', key.name);
    const verdict = await this.review(csr);
    const approved = hasCondition(csr, 'Approved');
    if (!verdict.approve) {
      // Not ours to deny once approved: the signer refuses to sign instead (Failed, on status).
      const type: Terminal = approved ? 'Failed' : 'Denied';
      await this.setTerminal(csr, type, verdict.reason, verdict.message);
      log.info(`request ${type.toLowerCase()}`, { requester: csr.spec.username, reason: verdict.reason, message: verdict.message });
      return;
    }
    const current = approved ? csr : await this.approve(csr, verdict);
    const certificate = await this.ca.sign(verdict.request, verdict.commonName, { ips: verdict.ips, dns: [] }, verdict.lifetimeMs);
    await this.api.replaceCertificateSigningRequestStatus({
      name: key.name,
      body: { ...current, status: { ...current.status, certificate: Buffer.from(certificate).toString('base64') } },
    });
    log.info('certificate issued', { node: verdict.nodeName, addresses: verdict.ips, lifetimeSeconds: Math.round(verdict.lifetimeMs / 1000) });
  }

  private async review(csr: V1CertificateSigningRequest): Promise<Verdict> {
    let request: ParsedCertificateRequest | { error: string };
    try {
      request = await parseCertificateRequest(Buffer.from(csr.spec.request, 'base64').toString('utf8'));
    } catch (err) {
      request = { error: errorMessage(err) };
    }
    return reviewAgentRequest({ csr, request, nodes: this.nodes, reserved: this.reservedAddresses() }, this.opts);
  }

  /** The controller's addresses and every Service's cluster IPs: clients reach those by IP too. */
  private reservedAddresses(): Map<string, string> {
    const reserved = new Map<string, string>();
    for (const ip of this.opts.controllerAddresses) reserved.set(canonicalIP(ip), "an address of the controller's own certificate");
    for (const svc of this.services.list()) {
      for (const ip of svc.spec?.clusterIPs ?? []) {
        if (ip !== 'None') reserved.set(canonicalIP(ip), `the cluster IP of Service ${svc.metadata?.namespace}/${svc.metadata?.name}`);
      }
    }
    return reserved;
  }

  private async approve(csr: V1CertificateSigningRequest, verdict: Verdict & { approve: true }): Promise<V1CertificateSigningRequest> {
    const condition = newCondition('Approved', 'AgentServingCertificate', `agent of node ${verdict.nodeName}, for ${verdict.ips.join(', ')}`);
    return this.api.replaceCertificateSigningRequestApproval({ name: csr.metadata?.name ?? '', body: withCondition(csr, condition) });
  }

  private async setTerminal(csr: V1CertificateSigningRequest, type: Terminal, reason: string, message: string): Promise<void> {
    const body = withCondition(csr, newCondition(type, reason, message));
    const name = csr.metadata?.name ?? '';
    if (type === 'Denied') await this.api.replaceCertificateSigningRequestApproval({ name, body });
    else await this.api.replaceCertificateSigningRequestStatus({ name, body });
  }
}

function newCondition(type: string, reason: string, message: string): V1CertificateSigningRequestCondition {
  const now = new Date();
  return { type, status: 'True', reason, message, lastUpdateTime: now, lastTransitionTime: now };
}

function withCondition(csr: V1CertificateSigningRequest, condition: V1CertificateSigningRequestCondition): V1CertificateSigningRequest {
  return { ...csr, status: { ...csr.status, conditions: [...(csr.status?.conditions ?? []), condition] } };
}

function hasCondition(csr: V1CertificateSigningRequest, type: string): boolean {
  return (csr.status?.conditions ?? []).some((c) => c.type === type && c.status === 'True');
}

function terminal(csr: V1CertificateSigningRequest): boolean {
  return hasCondition(csr, 'Denied') || hasCondition(csr, 'Failed');
}
