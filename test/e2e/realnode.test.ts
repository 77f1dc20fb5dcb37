// The real node (test/env/realnode.ts): kubelet + containerd + runc + CNI bridge, kube-proxy and
// CoreDNS. Pods of a Deployment and of a hostNetwork DaemonSet run from a locally built image,
// reach a Service and the apiserver by their cluster DNS names, and the host is as before at the end.
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import YAML from 'yaml';
import { loggerFor } from '../../src/util/log.js';
import { readAuditEvents, run } from '../env/controlplane.js';
import { captureHostState, bridgeName, realNodeUnsupported, startRealNode, type HostState, type RealNode } from '../env/realnode.js';

const log = loggerFor('realnode-test');
const ns = 'rn-test';
const image = 'localhost/netwarden-probe:test';

/**
 * Runs wherever the machine allows (root, cgroups, nft, Go); NETWARDEN_REALNODE=0 skips it and
 * NETWARDEN_REALNODE=1 makes an unsupported machine a failure instead of a skip. The reason is one line.
 */
function skipReason(): string | undefined {
  if (process.env.NETWARDEN_REALNODE === '0') return 'real-node suite skipped: NETWARDEN_REALNODE=0';
  const why = realNodeUnsupported();
  if (why && process.env.NETWARDEN_REALNODE === '1') throw new Error(`NETWARDEN_REALNODE=1 but no real node here: ${why}`);
  return why ? `real-node suite skipped: ${why} (NETWARDEN_REALNODE=1 makes this a failure)` : undefined;
}

const manifests = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
  {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'echo', namespace: ns },
    spec: {
      replicas: 1, selector: { matchLabels: { app: 'echo' } },
      template: {
        metadata: { labels: { app: 'echo' } },
        spec: {
          terminationGracePeriodSeconds: 1,
          securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [{
            name: 'echo', image, imagePullPolicy: 'Never', args: ['serve', ':8080'],
            ports: [{ name: 'http', containerPort: 8080 }],
            readinessProbe: { httpGet: { path: '/', port: 'http' }, periodSeconds: 1 },
          }],
        },
      },
    },
  },
  {
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: ns },
    spec: {
      selector: { app: 'echo' },
      ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }, { name: 'udp', port: 9000, targetPort: 8080, protocol: 'UDP' }],
    },
  },
  {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'client', namespace: ns },
    spec: {
      replicas: 1, selector: { matchLabels: { app: 'client' } },
      template: {
        metadata: { labels: { app: 'client' } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [{ name: 'client', image, imagePullPolicy: 'Never', command: ['/bin/sleep', '86400'] }],
        },
      },
    },
  },
  {
    apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'hostnet', namespace: ns },
    spec: {
      selector: { matchLabels: { app: 'hostnet' } },
      template: {
        metadata: { labels: { app: 'hostnet' } },
        spec: {
          hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet', terminationGracePeriodSeconds: 1,
          tolerations: [{ operator: 'Exists' }],
          containers: [{
            name: 'agent', image, imagePullPolicy: 'Never', command: ['/bin/sleep', '86400'],
            securityContext: { capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] }, readOnlyRootFilesystem: true },
          }],
        },
      },
    },
  },
];

describe('real node: kubelet, containerd, kube-proxy and CoreDNS', function () {
  this.timeout(600_000);
  let node: RealNode | undefined;
  let stopped = false;

  before(async function () {
    // A cold first run installs containerd and builds kubelet, kube-controller-manager, kube-proxy and CoreDNS (~13 min here).
    this.timeout(2_700_000);
    const reason = skipReason();
    if (reason) {
      console.log(`      ${reason}`);
      this.skip();
    }
    node = await startRealNode();
  });

  after(async function () {
    if (node && !stopped) await node.stop();
  });

  const kubectl = async (args: string[], input?: string): Promise<string> => {
    const r = await node!.cp.kubectl(args, { input, timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const podOf = async (app: string): Promise<string> =>
    (await kubectl(['-n', ns, 'get', 'pod', '-l', `app=${app}`, '-o', 'jsonpath={.items[0].metadata.name}'])).trim();
  const exec = (pod: string, args: string[]): Promise<string> => kubectl(['-n', ns, 'exec', pod, '--', '/bin/nwprobe', ...args]);
  /** exec until it succeeds (kube-proxy and CoreDNS catch up with new Endpoints within seconds), 15 s at most. */
  const execSoon = async (pod: string, args: string[]): Promise<string> => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        return await exec(pod, args);
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };

  it('registers the node and turns it Ready, with the versions it was built from', async function () {
    const n = JSON.parse(await kubectl(['get', 'node', node!.nodeName, '-o', 'json'])) as {
      status: { conditions: { type: string; status: string }[]; nodeInfo: { kubeletVersion: string; containerRuntimeVersion: string; kubeProxyVersion: string } };
    };
    expect(n.status.conditions.find((c) => c.type === 'Ready')?.status).to.equal('True');
    expect(n.status.nodeInfo.kubeletVersion).to.equal('v1.35.4');
    expect(n.status.nodeInfo.containerRuntimeVersion).to.match(/^containerd:\/\//);
    // The node's own identity, in the audit log the apiserver writes.
    const users = new Set((await readAuditEvents(node!.cp)).map((e) => (e.user as { username?: string } | undefined)?.username));
    expect(users).to.include(`system:node:${node!.nodeName}`);
    log.info('node up', {
      ...node!.timings, kubeletRssMiB: node!.rssMiB('kubelet'), containerdRssMiB: node!.rssMiB('containerd'),
      kubeProxyRssMiB: node!.rssMiB('kube-proxy'), corednsRssMiB: node!.rssMiB('coredns'),
    });
  });

  it('runs a Deployment\'s pods and a hostNetwork DaemonSet\'s pod until Ready', async function () {
    const t0 = performance.now();
    await kubectl(['apply', '-f', '-'], YAML.stringify({ apiVersion: 'v1', kind: 'List', items: manifests }));
    for (const what of ['deployment/echo', 'deployment/client', 'daemonset/hostnet']) {
      await kubectl(['-n', ns, 'rollout', 'status', what, '--timeout=120s']);
    }
    const hostPod = JSON.parse(await kubectl(['-n', ns, 'get', 'pod', await podOf('hostnet'), '-o', 'json'])) as { status: { podIP: string } };
    expect(hostPod.status.podIP).to.equal('10.247.0.1');
    log.info('pods ready', { ms: Math.round(performance.now() - t0), kubeletRssMiB: node!.rssMiB('kubelet'), containerdRssMiB: node!.rssMiB('containerd') });
  });

  for (const from of ['client', 'hostnet']) {
    it(`resolves and reaches <svc>.<ns>.svc from a ${from === 'client' ? 'pod' : 'hostNetwork pod'}`, async function () {
      const pod = await podOf(from);
      const clusterIP = (await kubectl(['-n', ns, 'get', 'svc', 'echo', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
      const echoPod = await podOf('echo');
      expect((await execSoon(pod, ['lookup', `echo.${ns}.svc`])).trim()).to.equal(clusterIP);
      expect(await execSoon(pod, ['get', `http://echo.${ns}.svc/`])).to.equal(`200 hello from ${echoPod}\n`);
      expect((await execSoon(pod, ['udp', `echo.${ns}.svc:9000`, 'ping'])).trim()).to.equal(`echo ${echoPod} ping`);
      expect((await exec(pod, ['lookup', 'kubernetes.default.svc'])).trim()).to.equal('10.96.0.1');
      const version = await exec(pod, ['get', 'https://kubernetes.default.svc/version']);
      expect(version).to.match(/^200 /);
      expect(JSON.parse(version.slice(4)) as { gitVersion: string }).to.include({ gitVersion: 'v1.35.4' });
    });
  }

  it('serves kubectl logs and exec through the kubelet', async function () {
    const echoPod = await podOf('echo');
    const logs = await kubectl(['-n', ns, 'logs', echoPod]);
    expect(logs).to.contain('serving :8080');
    expect(logs).to.contain('request GET /');
    const id = await kubectl(['-n', ns, 'exec', echoPod, '--', '/bin/id', '-u']);
    expect(id.trim()).to.equal('65532');
  });

  it('signs a CertificateSigningRequest once approved (the way the agents get certificates)', async function () {
    const csr = await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', path.join(node!.dir, 'csr-test.key'), '-subj', '/CN=realnode-csr-test']);
    expect(csr.code, csr.stderr).to.equal(0);
    await kubectl(['apply', '-f', '-'], YAML.stringify({
      apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { name: 'realnode-csr-test' },
      spec: { request: Buffer.from(csr.stdout).toString('base64'), signerName: 'kubernetes.io/kube-apiserver-client', usages: ['client auth'] },
    }));
    await kubectl(['certificate', 'approve', 'realnode-csr-test']);
    let cert = '';
    for (let i = 0; i < 100 && !cert; i++) {
      cert = (await kubectl(['get', 'csr', 'realnode-csr-test', '-o', 'jsonpath={.status.certificate}'])).trim();
      if (!cert) await new Promise((r) => setTimeout(r, 200));
    }
    const text = await run('openssl', ['x509', '-noout', '-subject', '-issuer'], { input: Buffer.from(cert, 'base64').toString() });
    expect(text.stdout).to.contain('CN = realnode-csr-test');
    expect(text.stdout).to.contain('netwarden-test-ca');
  });

  it('leaves the host as it was: sysctls, directories, nftables, links, mounts, cgroups', async function () {
    const before: HostState = node!.before;
    const problems = await node!.stop();
    stopped = true;
    const after = captureHostState();
    log.info('node down', { downMs: node!.timings.downMs });
    expect(problems).to.deep.equal([]);
    expect(after.sysctls).to.deep.equal(before.sysctls);
    expect(after.dirs).to.deep.equal(before.dirs);
    // Another run on the machine may add or drop tables, netns and tmpfs mounts of its own meanwhile:
    // ours must be gone, and what is still there unchanged.
    for (const [t, text] of Object.entries(before.nftTables)) if (after.nftTables[t] !== undefined) expect(after.nftTables[t], t).to.equal(text);
    expect(Object.keys(after.nftTables).filter((t) => !before.nftTables[t] && /kube-proxy|^ip6? (filter|nat|mangle)$/.test(t))).to.deep.equal([]);
    expect(after.iptablesLegacy).to.equal(before.iptablesLegacy);
    expect(after.links).to.not.include(bridgeName);
    expect(after.links.filter((l) => l.startsWith('veth') && !before.links.includes(l))).to.deep.equal([]);
    const transient = (m: string): boolean => m.startsWith('/run/netns/') || m.startsWith(os.tmpdir() + '/');
    expect(before.mounts.filter((m) => !transient(m) && !after.mounts.includes(m))).to.deep.equal([]);
    expect(after.mounts.filter((m) => m.startsWith(node!.dir) || m.startsWith('/run/containerd') || m.startsWith('/var/lib/kubelet'))).to.deep.equal([]);
    expect(after.cgroupRoots).to.deep.equal(before.cgroupRoots);
  });
});
