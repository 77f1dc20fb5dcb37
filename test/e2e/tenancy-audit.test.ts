// AuditForwarder cannot be used to climb, on the real control plane: the admission policy of
// config/admission refuses the attacks (and agrees with `netwarden validate` on every case), and
// where no policy is installed the agent itself refuses them, with RBAC behind it.
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { admissionViolations } from '../../src/apis/admission.js';
import { withDefaults } from '../../src/apis/validate.js';
import { cluster } from './hooks.js';
import { createNode, waitFor } from '../env/fixtures.js';
import { ensureInstalled, mustKubectl, REPO_ROOT, startAgent, startController, SYSTEM_NAMESPACE, type NetwardenProcess } from '../env/netwarden.js';

const NODE = 'tenancy-audit-cp';

interface Case {
  name: string;
  spec: Record<string, unknown>;
}

describe('AuditForwarder tenancy (admission policy, agent limits, RBAC)', function () {
  this.timeout(120_000);
  const processes: NetwardenProcess[] = [];
  let receiver: http.Server;
  let received: Array<{ authorization: string | undefined; body: string }> = [];
  let url = '';
  let logDir = '';

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNode(kc, NODE, { controlPlane: true, labels: { 'netwarden.io/tenancy': 'audit' } });
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedSecret({ namespace: 'kube-system', body: { metadata: { name: 'tenancy-crown-jewel' }, stringData: { token: 'kube-system-secret-value' } } });
    receiver = http.createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (b: Buffer) => parts.push(b));
      req.on('end', () => {
        received.push({ authorization: req.headers.authorization, body: Buffer.concat(parts).toString('utf8') });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/in`;
    logDir = path.join(cp.dir, 'tenancy-audit');
    await mkdir(logDir, { recursive: true });
    await writeFile(path.join(logDir, 'audit.log'), '{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"6b0c0d5e-0000-4000-8000-0000000000aa","stage":"ResponseComplete","verb":"get"}\n');
    processes.push(await startController(cp, 'tenancy-controller'), await startAgent(cp, NODE));
  });

  after(async function () {
    const cp = cluster();
    await Promise.all(processes.map((p) => p.kill()));
    if (receiver) await new Promise<void>((resolve) => receiver.close(() => resolve()));
    await mustKubectl(cp, ['apply', '--server-side', '-f', path.join(REPO_ROOT, 'config', 'admission', 'netwarden-auditforwarder.yaml')]).catch(() => undefined);
  });

  const attacks = (): Case[] => [
    { name: 'steal-secret', spec: { source: { path: path.join(logDir, 'audit.log') }, sink: { webhook: { url, allowInsecure: true, bearerTokenSecretRef: { namespace: 'kube-system', name: 'tenancy-crown-jewel', key: 'token' } } } } },
    { name: 'clear-text', spec: { source: { path: path.join(logDir, 'audit.log') }, sink: { webhook: { url } } } },
    { name: 'read-tls-key', spec: { source: { path: '/etc/netwarden/tls/tls.key' }, sink: { webhook: { url, allowInsecure: true } } } },
    { name: 'read-token', spec: { source: { path: '/var/run/secrets/kubernetes.io/serviceaccount/token' }, sink: { webhook: { url, allowInsecure: true } } } },
    { name: 'climb-out', spec: { source: { path: `${logDir}/../../../etc/passwd` }, sink: { webhook: { url, allowInsecure: true } } } },
  ];
  // Only this suite's node: other suites' control-plane nodes have no agent any more.
  const manifest = (c: Case): string => JSON.stringify({ apiVersion: 'netwarden.io/v1alpha1', kind: 'AuditForwarder', metadata: { name: `tenancy-${c.name}` }, spec: { nodeSelector: { 'netwarden.io/tenancy': 'audit' }, ...c.spec } });

  it('refuses each attack at admission with the reason, as netwarden validate does offline', async function () {
    const cp = cluster();
    const params = { namespace: SYSTEM_NAMESPACE, auditLogDirs: `/var/log/kubernetes/audit,${cp.dir}` };
    const allowed: Case = { name: 'allowed', spec: { source: { path: path.join(logDir, 'audit.log') }, sink: { webhook: { url, allowInsecure: true } } } };
    for (const c of [...attacks(), allowed]) {
      const offline = admissionViolations('AuditForwarder', withDefaults(JSON.parse(manifest(c)) as Record<string, unknown>) as Record<string, unknown>, params);
      const r = await cp.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: manifest(c) });
      if (offline.length === 0) {
        expect(r.code, `${c.name}: ${r.stderr}`).to.equal(0);
        continue;
      }
      expect(r.code, `${c.name} was admitted`).to.not.equal(0);
      expect(r.stderr).to.contain(`ValidatingAdmissionPolicy 'netwarden-auditforwarder'`);
      expect(r.stderr, c.name).to.contain(offline[0]!.split(': ').slice(1).join(': ').slice(0, 60));
    }
  });

  it('gives the agent no way to read another namespace\'s Secrets (a Role, not a ClusterRole)', async function () {
    const cp = cluster();
    const as = `--as=system:serviceaccount:${SYSTEM_NAMESPACE}:netwarden-agent`;
    expect((await cp.kubectl(['auth', 'can-i', 'get', 'secrets', '-n', 'kube-system', as])).stdout.trim()).to.equal('no');
    expect((await cp.kubectl(['auth', 'can-i', 'get', 'secrets', '-n', SYSTEM_NAMESPACE, as])).stdout.trim()).to.equal('yes');
  });

  it('without the policy, the agent refuses them itself and says why in status; nothing reaches the receiver', async function () {
    const cp = cluster();
    // A cluster where the policy is not installed (or its binding was removed).
    await mustKubectl(cp, ['delete', 'validatingadmissionpolicybinding', 'netwarden-auditforwarder']);
    // The API server's policy cache follows the deletion within a moment.
    await waitFor(async () => (await cp.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: manifest(attacks()[0]!) })).code === 0, { timeoutMs: 20_000, description: 'the policy unbound' });
    received = [];
    for (const c of attacks()) await mustKubectl(cp, ['apply', '-f', '-'], manifest(c));
    const expected: Record<string, RegExp> = {
      'steal-secret': /kube-system/,
      'clear-text': /http:\/\/ sends the audit log/,
      'read-tls-key': /outside the directories this agent reads audit logs from/,
      'read-token': /outside the directories this agent reads audit logs from/,
      'climb-out': /outside the directories this agent reads audit logs from/,
    };
    for (const c of attacks()) {
      const entry = await waitFor(async () => {
        const af = JSON.parse(await mustKubectl(cp, ['get', 'auditforwarder', `tenancy-${c.name}`, '-o', 'json'])) as { status?: { problems?: Array<{ node: string; message: string }>; conditions?: Array<{ type: string; status: string; reason: string; message: string }> } };
        const ready = af.status?.conditions?.find((x) => x.type === 'Ready');
        const problem = af.status?.problems?.find((n) => n.node === NODE);
        return ready?.status === 'False' ? { ready, problem } : undefined;
      }, { timeoutMs: 30_000, description: `${c.name}: Ready=False` });
      const said = `${entry.ready.message} ${entry.problem?.message ?? ''}`;
      expect(said, c.name).to.match(expected[c.name]!);
    }
    await new Promise((r) => setTimeout(r, 2_000));
    expect(received.map((r) => r.authorization ?? '').join()).to.not.contain('kube-system-secret-value');
    expect(received).to.deep.equal([]);
    for (const c of attacks()) await mustKubectl(cp, ['delete', 'auditforwarder', `tenancy-${c.name}`]);
  });
});
