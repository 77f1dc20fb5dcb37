// The shared local control plane and pod network, checked the way a user would see them.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { AuthenticationV1Api, CoreV1Api } from '@kubernetes/client-node';
import { expect } from 'chai';
import { readAuditEvents } from '../env/controlplane.js';
import {
  createNamespace, createNode, createPod, createServiceAccount, kubeconfigForToken, requestToken, waitFor,
} from '../env/fixtures.js';
import { createPodNetwork } from '../env/podnet.js';
import { cluster } from './hooks.js';

const suffix = randomBytes(3).toString('hex');
const ns = `cp-e2e-${suffix}`;

/** A random pod IP in 10.244.0.0/16, so parallel runs on one host rarely collide. */
function randomPodIP(): string {
  const b = randomBytes(2);
  return `10.244.${b[0]! % 250 + 1}.${b[1]! % 250 + 2}`;
}

describe('local control plane', function () {
  before(async function () {
    await createNamespace(cluster().kubeConfig(), ns);
  });

  it('answers /readyz through kubectl', async function () {
    const r = await cluster().kubectl(['get', '--raw', '/readyz']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.equal('ok');
  });

  it('shows fixture Nodes and running Pods with their IPs', async function () {
    const kc = cluster().kubeConfig();
    await createNode(kc, `node-${suffix}`, { internalIP: '192.0.2.10', controlPlane: true, labels: { zone: 'a' } });
    await createPod(kc, { namespace: ns, name: 'web', nodeName: `node-${suffix}`, labels: { app: 'web' }, podIP: '10.244.1.7', containerPort: 8080 });

    const nodes = await cluster().kubectl(['get', 'node', `node-${suffix}`, '-o', 'wide', '--no-headers']);
    expect(nodes.code, nodes.stderr).to.equal(0);
    expect(nodes.stdout).to.match(/\bReady\b/).and.match(/control-plane/).and.match(/192\.0\.2\.10/);

    const pods = await cluster().kubectl(['get', 'pod', 'web', '-n', ns, '-o', 'wide', '--no-headers']);
    expect(pods.code, pods.stderr).to.equal(0);
    const cols = pods.stdout.trim().split(/\s+/);
    // NAME READY STATUS RESTARTS AGE IP NODE ...
    expect(cols[2]).to.equal('Running');
    expect(cols[5]).to.equal('10.244.1.7');
    expect(cols[6]).to.equal(`node-${suffix}`);
  });

  it('enforces RBAC for a fresh ServiceAccount', async function () {
    const cp = cluster();
    await createServiceAccount(cp.kubeConfig(), ns, 'nobody');
    const token = await requestToken(cp.kubeConfig(), ns, 'nobody');
    const kubeconfig = await kubeconfigForToken(cp, token, path.join(cp.dir, `nobody-${suffix}.kubeconfig`));

    const list = await cp.kubectl(['get', 'pods', '-n', ns], { kubeconfig });
    expect(list.code).to.not.equal(0);
    expect(list.stderr).to.match(/Forbidden/).and.include(`system:serviceaccount:${ns}:nobody`);

    const canI = await cp.kubectl(['auth', 'can-i', 'list', 'pods', '-n', ns, `--as=system:serviceaccount:${ns}:nobody`]);
    expect(canI.stdout.trim()).to.equal('no');
    expect(canI.code).to.equal(1);

    const admin = await cp.kubectl(['auth', 'can-i', 'list', 'pods', '-n', ns]);
    expect(admin.stdout.trim(), 'the admin (system:masters) may').to.equal('yes');
  });

  it('authenticates a TokenRequest token through TokenReview', async function () {
    const kc = cluster().kubeConfig();
    await createServiceAccount(kc, ns, 'reviewed');
    const token = await requestToken(kc, ns, 'reviewed', ['netwarden-test']);
    const auth = kc.makeApiClient(AuthenticationV1Api);

    const ok = await auth.createTokenReview({ body: { spec: { token, audiences: ['netwarden-test'] } } });
    expect(ok.status?.authenticated).to.equal(true);
    expect(ok.status?.user?.username).to.equal(`system:serviceaccount:${ns}:reviewed`);
    expect(ok.status?.audiences).to.deep.equal(['netwarden-test']);

    const tampered = await auth.createTokenReview({ body: { spec: { token: token.slice(0, -4) + 'AAAA' } } });
    expect(tampered.status?.authenticated ?? false).to.equal(false);
  });

  it('writes JSON audit events to the audit log', async function () {
    const cp = cluster();
    expect(existsSync(cp.auditLogPath), cp.auditLogPath).to.equal(true);
    // Our own namespace creation must be there, attributed to the admin client certificate.
    const event = await waitFor(async () => (await readAuditEvents(cp)).find((e) => {
      const ref = e.objectRef as { resource?: string; name?: string } | undefined;
      return e.verb === 'create' && ref?.resource === 'namespaces' && ref.name === ns;
    }), { description: `audit event for creating namespace ${ns}`, timeoutMs: 10_000 });
    expect(event.kind).to.equal('Event');
    expect(event.apiVersion).to.equal('audit.k8s.io/v1');
    expect(event.auditID).to.be.a('string').and.not.empty;
    expect(event.level).to.equal('Metadata');
    expect((event.user as { username?: string }).username).to.equal('admin');
  });

  it('routes between two pod networks through the host', async function () {
    const [ipA, ipB] = [randomPodIP(), randomPodIP()];
    if (ipA === ipB) this.skip();
    const a = await createPodNetwork({ name: `a-${suffix}`, ip: ipA });
    const b = await createPodNetwork({ name: `b-${suffix}`, ip: ipB });
    try {
      const addr = await a.exec(['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      expect(addr.stdout).to.include(`${ipA}/32`);
      const ab = await a.ping(ipB);
      expect(ab.code, ab.stdout + ab.stderr).to.equal(0);
      const ba = await b.ping(ipA);
      expect(ba.code, ba.stdout + ba.stderr).to.equal(0);
    } finally {
      await a.destroy();
      await b.destroy();
    }
    const gone = await a.exec(['true']);
    expect(gone.code, 'the namespace is deleted').to.not.equal(0);
  });

  it('serves the same data again after an apiserver restart', async function () {
    const cp = cluster();
    const api = cp.kubeConfig().makeApiClient(CoreV1Api);
    await cp.restartApiServer();
    const ready = await cp.kubectl(['get', '--raw', '/readyz']);
    expect(ready.code, ready.stderr).to.equal(0);
    // The client made before the restart reconnects, and etcd kept the Pod.
    const pod = await waitFor(() => api.readNamespacedPod({ namespace: ns, name: 'web' }), { description: 'pod after restart', timeoutMs: 20_000 });
    expect(pod.status?.podIP).to.equal('10.244.1.7');
  });
});
