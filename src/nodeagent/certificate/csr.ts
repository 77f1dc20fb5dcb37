// The agent's serving certificate from the CSR API, as the kubelet gets its own: a new ECDSA P-256
// key (kept in memory only), a CertificateSigningRequest for its node's IP addresses with signer
// netwarden.io/agent-serving, then a wait until the controller's signer issues the certificate or
// says why not (a Denied or Failed condition, whose reason and message are the error).
import { CertificatesV1Api, Watch, type KubeConfig, type V1CertificateSigningRequest } from '@kubernetes/client-node';
import { AGENT_CSR_USAGES, AGENT_REQUESTED_SECONDS, AGENT_SERVING_SIGNER, agentCommonName } from '../../apis/certificates.js';
import type { ServingCredentials } from '../../runtime/https.js';
import { sleep } from '../../util/sleep.js';
import { createCertificateRequest, generateKeyPair } from '../../util/x509.js';

/** How long one request may stay pending before the agent makes a new one (the kubelet waits 15 min). */
const WAIT_MS = 15 * 60_000;
/** A watch that ends without news is opened again after reading the request once more. */
const WATCH_ROUND_MS = 60_000;

export class CertificateRequestDenied extends Error {}

export interface RequestOptions {
  nodeName: string;
  ips: string[];
  signal: AbortSignal;
  /** Called with the request's name once it exists (for logs). */
  onCreated?: (name: string) => void;
}

export class AgentCertificateRequester {
  private readonly api: CertificatesV1Api;

  constructor(private readonly kc: KubeConfig) {
    this.api = kc.makeApiClient(CertificatesV1Api);
  }

  async request(opts: RequestOptions): Promise<ServingCredentials> {
    const key = await generateKeyPair();
    const pem = await createCertificateRequest(key, agentCommonName(opts.nodeName), { ips: opts.ips, dns: [] });
    const created = await this.api.createCertificateSigningRequest({
      body: {
        // generateName: every request is new (the API server keeps issued ones for an hour).
        metadata: { generateName: `netwarden-agent-${opts.nodeName}-`, labels: { 'app.kubernetes.io/name': 'netwarden-agent', 'app.kubernetes.io/part-of': 'netwarden' } },
        spec: {
          request: Buffer.from(pem).toString('base64'),
          signerName: AGENT_SERVING_SIGNER,
          usages: [...AGENT_CSR_USAGES],
          expirationSeconds: AGENT_REQUESTED_SECONDS,
        },
      },
    });
    const name = created.metadata?.name ?? '';
    opts.onCreated?.(name);
    const cert = await this.waitForCertificate(name, opts.signal);
    return { cert, key: key.keyPem };
  }

  /** Reads the request, then watches it, until it has a certificate or a terminal condition. */
  private async waitForCertificate(name: string, signal: AbortSignal): Promise<string> {
    const deadline = Date.now() + WAIT_MS;
    while (!signal.aborted && Date.now() < deadline) {
      const csr = await this.api.readCertificateSigningRequest({ name });
      const outcome = outcomeOf(csr);
      if (outcome) return outcome;
      const watched = await this.watchOnce(name, csr.metadata?.resourceVersion, signal);
      if (watched) return watched;
      await sleep(1000, signal); // a watch that keeps ending at once must not become a hot loop
    }
    if (signal.aborted) throw new Error('stopped');
    throw new Error(`certificate request ${name} was neither signed nor denied within ${WAIT_MS / 60_000} minutes: is the Netwarden controller running?`);
  }

  private async watchOnce(name: string, resourceVersion: string | undefined, signal: AbortSignal): Promise<string | undefined> {
    let settle: (value: string | undefined) => void = () => {};
    let fail: (err: Error) => void = () => {};
    const result = new Promise<string | undefined>((resolve, reject) => {
      settle = resolve;
      fail = reject;
    });
    const abort = await new Watch(this.kc).watch(
      '/apis/certificates.k8s.io/v1/certificatesigningrequests',
      { fieldSelector: `metadata.name=${name}`, resourceVersion },
      (_phase, obj: V1CertificateSigningRequest) => {
        try {
          const outcome = outcomeOf(obj);
          if (outcome) settle(outcome);
        } catch (err) {
          fail(err as Error);
        }
      },
      () => settle(undefined),
    );
    try {
      return await Promise.race([result, sleep(WATCH_ROUND_MS, signal).then(() => undefined)]);
    } finally {
      abort.abort();
    }
  }
}

/** The certificate (PEM) once issued; throws on Denied or Failed; undefined while pending. */
function outcomeOf(csr: V1CertificateSigningRequest): string | undefined {
  for (const type of ['Denied', 'Failed']) {
    const c = csr.status?.conditions?.find((cond) => cond.type === type && cond.status === 'True');
    if (c) throw new CertificateRequestDenied(`certificate request ${csr.metadata?.name} ${type.toLowerCase()}: ${c.reason ?? ''}: ${c.message ?? ''}`);
  }
  const certificate = csr.status?.certificate;
  return certificate ? Buffer.from(certificate, 'base64').toString('utf8') : undefined;
}
