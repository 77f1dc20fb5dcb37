// Netwarden's own certificates, on a real API server, with no certificate flag anywhere (as
// config/ runs it): the controller keeps a CA and publishes its bundle, each agent gets a
// certificate for its own node's address through the CSR API, the signer refuses everything
// else with a reason, and certificates (the CA's too) rotate under a loop of requests without one
// failing.
import https from 'node:https';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { expect } from 'chai';
import { AuthorizationV1Api, CertificatesV1Api, CoreV1Api, KubeConfig, type V1CertificateSigningRequest } from '@kubernetes/client-node';
import { AGENT_SERVING_SIGNER, CA_BUNDLE_KEY, CA_CONFIGMAP, CA_SECRET, DEFAULT_CA_SECRET_NAMESPACE, agentCommonName } from '../../src/apis/certificates.js';
import { agentFilesPath } from '../../src/apis/capturefiles.js';
import { agentAudience } from '../../src/apis/identity.js';
import { createCertificateRequest, generateKeyPair } from '../../src/util/x509.js';
import { cluster } from './hooks.js';
import { createNode, requestToken, waitFor } from '../env/fixtures.js';
import {
  agentControllerToken, agentKubeconfig, ensureInstalled, mustKubectl, netwardenPorts, nextNodeIP, REPO_ROOT, startAgent, startController, SYSTEM_NAMESPACE, type NetwardenProcess,
} from '../env/netwarden.js';

const controllerUser = `system:serviceaccount:${SYSTEM_NAMESPACE}:netwarden-controller`;
const agentUser = `system:serviceaccount:${SYSTEM_NAMESPACE}:netwarden-agent`;

/** The bundle the controller publishes, as agents and the plugin read it. */
async function publishedBundle(): Promise<string | undefined> {
  const cm = await cluster().kubeConfig().makeApiClient(CoreV1Api).readNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, name: CA_CONFIGMAP }).catch(() => undefined);
  return cm?.data?.[CA_BUNDLE_KEY];
}

/** The certificate a TLS server at host:port presents, verified with the bundle (no name check: the test looks at the names). */
function peerCertificate(host: string, port: number, ca: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, ca, servername: '', checkServerIdentity: () => undefined }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.end();
      if (cert) resolve(cert);
      else reject(new Error('no peer certificate'));
    });
    socket.once('error', reject);
  });
}

/** Creates a CSR for the agent signer with the given client and waits until it is no longer pending. */
async function requestAgentCertificate(kc: KubeConfig, commonName: string, ips: string[]): Promise<V1CertificateSigningRequest> {
  const key = await generateKeyPair();
  const pem = await createCertificateRequest(key, commonName, { ips, dns: [] });
  const created = await kc.makeApiClient(CertificatesV1Api).createCertificateSigningRequest({
    body: { metadata: { generateName: 'certs-test-' }, spec: { request: Buffer.from(pem).toString('base64'), signerName: AGENT_SERVING_SIGNER, usages: ['digital signature', 'server auth'], expirationSeconds: 3600 } },
  });
  const admin = cluster().kubeConfig().makeApiClient(CertificatesV1Api);
  return waitFor(
    async () => {
      const csr = await admin.readCertificateSigningRequest({ name: created.metadata?.name ?? '' });
      return (csr.status?.conditions?.length ?? 0) > 0 || csr.status?.certificate ? csr : undefined;
    },
    { timeoutMs: 30_000, description: 'the signer deciding on the request' },
  );
}

function condition(csr: V1CertificateSigningRequest, type: string): { reason?: string; message?: string } | undefined {
  return csr.status?.conditions?.find((c) => c.type === type && c.status === 'True');
}

async function kubeConfigOf(file: string): Promise<KubeConfig> {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc;
}

async function allowed(user: string, verb: string, resource: string, namespace: string, name?: string): Promise<boolean> {
  const review = await cluster().kubeConfig().makeApiClient(AuthorizationV1Api).createSubjectAccessReview({
    body: { spec: { user, groups: ['system:serviceaccounts', 'system:authenticated'], resourceAttributes: { verb, resource, namespace, name, group: '' } } },
  });
  return review.status?.allowed === true;
}

describe("Netwarden's own certificates", function () {
  const nodeA = 'certs-a';
  const nodeB = 'certs-b';
  let ipA: string;
  let ipB: string;
  const processes: NetwardenProcess[] = [];

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    ipA = nextNodeIP();
    ipB = nextNodeIP();
    await createNode(cp.kubeConfig(), nodeA, { internalIP: ipA });
    await createNode(cp.kubeConfig(), nodeB, { internalIP: ipB });
    processes.push(await startController(cp, 'certs-controller'), await startAgent(cp, nodeA), await startAgent(cp, nodeB));
  });

  after(async function () {
    await Promise.all(processes.map((p) => p.kill()));
  });

  it('serves each agent with a certificate for its own node address only, from the published CA', async function () {
    const ca = await waitFor(publishedBundle, { description: 'the CA bundle in ConfigMap netwarden-ca' });
    const { agentFiles } = await netwardenPorts(cluster());
    for (const [node, ip, other] of [[nodeA, ipA, ipB], [nodeB, ipB, ipA]] as const) {
      const cert = await waitFor(() => peerCertificate(ip, agentFiles, ca), { timeoutMs: 60_000, description: `agent ${node} serving its file API` });
      expect(cert.subjectAltName).to.equal(`IP Address:${ip}`);
      expect(cert.subject).to.equal(`CN=${agentCommonName(node)}`);
      expect(cert.checkIP(other)).to.equal(undefined);
      expect(cert.checkHost(node)).to.equal(undefined);
      expect(cert.keyUsage ?? []).to.deep.equal(['1.3.6.1.5.5.7.3.1']); // server auth only
    }
    const controller = await peerCertificate('127.0.0.1', (await netwardenPorts(cluster())).controllerHttps, ca);
    expect(controller.checkHost('netwarden-controller.netwarden-system.svc')).to.equal('netwarden-controller.netwarden-system.svc');
    expect(controller.checkHost('localhost')).to.equal('localhost');
  });

  it("denies a request made with agent A's pod-bound token for node B's address, saying why", async function () {
    const kc = await kubeConfigOf(await agentKubeconfig(cluster(), nodeA));
    const csr = await requestAgentCertificate(kc, agentCommonName(nodeA), [ipB]);
    expect(csr.status?.certificate).to.equal(undefined);
    const denied = condition(csr, 'Denied');
    expect(denied?.reason).to.equal('NotNodeAddress');
    expect(denied?.message).to.contain(ipB).and.contain(`node ${nodeA}`);
  });

  it("denies agent A a certificate in node B's name, even for its own address", async function () {
    const kc = await kubeConfigOf(await agentKubeconfig(cluster(), nodeA));
    const csr = await requestAgentCertificate(kc, agentCommonName(nodeB), [ipA]);
    expect(csr.status?.certificate).to.equal(undefined);
    expect(condition(csr, 'Denied')?.reason).to.equal('WrongCommonName');
  });

  it('signs nothing for a requester that is not an agent on a node', async function () {
    const cp = cluster();
    // The cluster admin, asking for agent A's own name and address.
    const byAdmin = await requestAgentCertificate(cp.kubeConfig(), agentCommonName(nodeA), [ipA]);
    expect(byAdmin.status?.certificate).to.equal(undefined);
    expect(condition(byAdmin, 'Denied')?.reason).to.equal('NotAnAgent');
    // The agent ServiceAccount with a token bound to no pod: no node to be.
    const unbound = new KubeConfig();
    unbound.loadFromOptions({
      clusters: [{ name: 'c', server: cp.server, caFile: cp.caCertPath }],
      users: [{ name: 'u', token: await requestToken(cp.kubeConfig(), SYSTEM_NAMESPACE, 'netwarden-agent') }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const noNode = await requestAgentCertificate(unbound, agentCommonName(nodeA), [ipA]);
    expect(noNode.status?.certificate).to.equal(undefined);
    expect(condition(noNode, 'Denied')?.reason).to.equal('NoNodeIdentity');
  });

  it("keeps the CA's key where only the controller can read it", async function () {
    expect(await allowed(agentUser, 'get', 'secrets', DEFAULT_CA_SECRET_NAMESPACE, CA_SECRET)).to.equal(false);
    expect(await allowed(agentUser, 'list', 'secrets', DEFAULT_CA_SECRET_NAMESPACE)).to.equal(false);
    expect(await allowed(controllerUser, 'get', 'secrets', DEFAULT_CA_SECRET_NAMESPACE, CA_SECRET)).to.equal(true);
    expect(await allowed(controllerUser, 'get', 'secrets', DEFAULT_CA_SECRET_NAMESPACE, 'something-else')).to.equal(false);
    expect(await allowed(agentUser, 'get', 'configmaps', SYSTEM_NAMESPACE, CA_CONFIGMAP)).to.equal(true);
    const out = await mustKubectl(cluster(), ['get', 'secret', CA_SECRET, '-n', DEFAULT_CA_SECRET_NAMESPACE, '-o', 'jsonpath={.data}']);
    expect(Object.keys(JSON.parse(out) as object)).to.include.members(['ca.crt', 'ca.key']);
  });
});

describe('certificate rotation under load', function () {
  const node = 'certs-rot';
  const dropTail = 'certs-rot';
  const processes: NetwardenProcess[] = [];
  let ip: string;

  /** A fresh CA for this suite (short-lived), and a fresh default one for the suites after it. */
  async function forgetCa(): Promise<void> {
    await mustKubectl(cluster(), ['delete', 'secret', CA_SECRET, '-n', DEFAULT_CA_SECRET_NAMESPACE, '--ignore-not-found']);
    // And its published bundle: the next suite's controller makes a new CA, and a client reading
    // the old bundle before that one is published would trust the wrong CA.
    await mustKubectl(cluster(), ['delete', 'configmap', CA_CONFIGMAP, '-n', SYSTEM_NAMESPACE, '--ignore-not-found']);
  }

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    ip = nextNodeIP();
    await createNode(cp.kubeConfig(), node, { internalIP: ip, labels: { 'certs-rot': 'yes' } });
    await mustKubectl(cp, ['apply', '-f', '-'], `apiVersion: netwarden.io/v1alpha1\nkind: DropTail\nmetadata: {name: ${dropTail}}\nspec: {nodeSelector: {certs-rot: 'yes'}}\n`);
    await forgetCa();
    // Lifetimes in seconds: serving certificates renew every ~15 s, the CA is replaced after ~48 s.
    processes.push(await startController(cp, 'certs-rot-controller', ['--serving-cert-validity=20s', '--ca-validity=60s']));
    processes.push(await startAgent(cp, node));
  });

  after(async function () {
    await Promise.all(processes.map((p) => p.kill()));
    await forgetCa();
  });

  it("rotates the controller's and the agent's certificates and the CA while requests run, failing none", async function () {
    this.timeout(240_000);
    const cp = cluster();
    const ports = await netwardenPorts(cp);
    // The tokens each side really sends: the agent's pod-bound one for the controller's audience,
    // and the controller's one made for this node's agent alone.
    const agentToken = await agentControllerToken(cp, node);
    const controllerToken = await requestToken(cp.kubeConfig(), SYSTEM_NAMESPACE, 'netwarden-controller', [agentAudience(node)]);
    // A client as the agents are: it follows the published bundle, which a CA rotation extends first.
    let bundle = await waitFor(publishedBundle, { description: 'the CA bundle' });
    const follow = setInterval(() => void publishedBundle().then((b) => (bundle = b ?? bundle)), 500);
    const seen = { controller: new Set<string>(), agent: new Set<string>(), controllerCas: new Set<string>(), agentCas: new Set<string>() };
    const failures: string[] = [];
    let requests = 0;
    let sequence = 0;
    const request = (target: 'controller' | 'agent'): Promise<void> =>
      new Promise((resolve) => {
        const body = JSON.stringify({ node, sequence: ++sequence, sentAt: new Date().toISOString(), drops: [], shedSinceLastBatch: 0 });
        const options: https.RequestOptions =
          target === 'controller'
            ? { host: '127.0.0.1', port: ports.controllerHttps, method: 'POST', path: `/droptail/${dropTail}/drops`, headers: { authorization: `Bearer ${agentToken}`, 'content-type': 'application/json' } }
            : { host: ip, port: ports.agentFiles, method: 'GET', path: agentFilesPath('default', 'rotation'), servername: '', headers: { authorization: `Bearer ${controllerToken}` } };
        // A new connection each time: every handshake during the rotations must verify.
        const req = https.request({ ...options, ca: bundle, agent: false }, (res) => {
          const cert = (res.socket as tls.TLSSocket).getPeerCertificate(true);
          seen[target].add(cert.serialNumber);
          seen[target === 'controller' ? 'controllerCas' : 'agentCas'].add(cert.issuerCertificate?.fingerprint256 ?? '?');
          res.resume();
          res.on('end', () => {
            // The agent knows no capture 'rotation': 404 comes only after TLS, TokenReview and SubjectAccessReview passed.
            const expected = target === 'controller' ? 202 : 404;
            if (res.statusCode !== expected) failures.push(`${target}: ${res.statusCode}`);
            resolve();
          });
        });
        req.on('error', (err) => {
          failures.push(`${target}: ${err.message}`);
          resolve();
        });
        req.end(target === 'controller' ? body : undefined);
      });
    const agentUp = (): Promise<boolean> => peerCertificate(ip, ports.agentFiles, bundle).then(() => true);
    await waitFor(agentUp, { timeoutMs: 60_000, description: 'the agent serving its file API' });
    const rotated = (): boolean => seen.controller.size >= 3 && seen.agent.size >= 3 && seen.controllerCas.size >= 2 && seen.agentCas.size >= 2;
    try {
      const deadline = Date.now() + 180_000;
      while (!rotated() && Date.now() < deadline) {
        await request('controller');
        await request('agent');
        requests += 2;
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      clearInterval(follow);
    }
    const summary = `${requests} requests, controller certificates ${seen.controller.size} from ${seen.controllerCas.size} CA(s), agent certificates ${seen.agent.size} from ${seen.agentCas.size} CA(s)`;
    expect(failures, `${summary}; failed: ${failures.slice(0, 5).join("; ")}`).to.deep.equal([]);
    expect(rotated(), summary).to.equal(true);
    console.log(`      ${summary}`);
  });
});

describe('config/ without hand-made Secrets', function () {
  it('references no Secret and mounts no certificate in the workloads', async function () {
    const out = await mustKubectl(cluster(), ['kustomize', path.join(REPO_ROOT, 'config')]);
    expect(out).to.not.match(/secretName:/);
    expect(out).to.not.match(/--tls-cert-file|--ca-file/);
    expect(await allowed(controllerUser, 'get', 'configmaps', SYSTEM_NAMESPACE, CA_CONFIGMAP)).to.equal(true);
  });
});
