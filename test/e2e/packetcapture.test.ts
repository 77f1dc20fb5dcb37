// The storefront story of PacketCapture, end to end: real control plane, the real controller and
// one real agent per simulated node capturing on real veths, RBAC deciding who may read packets,
// the kubectl plugin downloading the zip, and tshark reading what was captured.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { expect } from 'chai';
import { cluster } from './hooks.js';
import { run, trackChild, type ExecResult } from '../env/controlplane.js';
import { createNamespace, createNode, createPod, createServiceAccount, kubeconfigForToken, requestToken, waitFor } from '../env/fixtures.js';
import { controllerUrl, ensureInstalled, mustKubectl, netwardenCaFile, netwardenPorts, nextNodeIP, REPO_ROOT, startAgent, startController, type NetwardenProcess } from '../env/netwarden.js';
import { createPodNetwork, DNS_CLIENT, type PodNetwork } from '../env/podnet.js';

const NS = 'storefront';
const CAPTURE = 'pc-storefront-logging-dns';
const NODE_A = 'pc-node-a';
const NODE_B = 'pc-node-b';
const LOGGING_IP = '10.244.77.3';
const DNS_IP = '10.244.77.10';
const WEB_IP = '10.244.77.12';

// Traffic the DNS capture must not contain: UDP to another port.
const UDP_NOISE = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(5):
    s.sendto(b'not dns', (sys.argv[1], 5353))
`;

function jsonpath(kind: string, name: string, p: string, namespace = NS): Promise<string> {
  return mustKubectl(cluster(), ['get', kind, name, '-n', namespace, '-o', `jsonpath={${p}}`]);
}

/** A kubeconfig for a ServiceAccount of the given namespace (created if missing). */
async function serviceAccountKubeconfig(namespace: string, name: string): Promise<string> {
  const cp = cluster();
  await createServiceAccount(cp.kubeConfig(), namespace, name).catch(() => undefined);
  const token = await requestToken(cp.kubeConfig(), namespace, name);
  return kubeconfigForToken(cp, token, path.join(cp.dir, `kubeconfig-${namespace}-${name}`));
}

async function tokenOf(namespace: string, name: string): Promise<string> {
  await createServiceAccount(cluster().kubeConfig(), namespace, name).catch(() => undefined);
  return requestToken(cluster().kubeConfig(), namespace, name);
}

/** Runs the kubectl plugin through its launcher, as `kubectl netwarden ...` would. */
async function plugin(args: string[], kubeconfig: string): Promise<ExecResult> {
  const cp = cluster();
  const url = controllerUrl(await netwardenPorts(cp));
  // No --ca-file: the plugin reads the CA bundle the controller publishes, as a user's does.
  return run(path.join(REPO_ROOT, 'bin/kubectl-netwarden'), [...args, `--kubeconfig=${kubeconfig}`, `--controller-url=${url}`], {
    timeoutMs: 120_000,
    env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` },
  });
}

/** A raw request to the controller: the status code and message a client sees. */
async function call(method: string, rawPath: string, token?: string): Promise<{ status: number; message: string }> {
  const cp = cluster();
  const url = new URL(controllerUrl(await netwardenPorts(cp)));
  const ca = readFileSync(await netwardenCaFile(cp));
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: url.hostname, port: url.port, method, path: rawPath, ca, headers: token ? { authorization: `Bearer ${token}` } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let message = text;
          try {
            message = (JSON.parse(text) as { message?: string }).message ?? text;
          } catch {
            // a zip
          }
          resolve({ status: res.statusCode ?? 0, message });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** tshark's view of a pcap: one row per packet with the fields asked for. */
async function tshark(file: string, fields: string[]): Promise<string[][]> {
  const r = await run('tshark', ['-n', '-r', file, '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])], { timeoutMs: 60_000 });
  expect(r.code, r.stderr).to.equal(0);
  return r.stdout.split('\n').filter(Boolean).map((l) => l.split('|'));
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) if (entry.isFile()) out.push(path.join(entry.parentPath, entry.name));
  return out.sort();
}

function captureDir(node: string, namespace: string, name: string): string {
  return path.join(cluster().dir, 'nodes', node, 'captures', namespace, name);
}

async function waitCapturing(name: string, nodes: string[], namespace = NS): Promise<void> {
  await waitFor(
    async () => {
      const raw = await jsonpath('packetcapture', name, '.status.files', namespace);
      const entries = raw ? (JSON.parse(raw) as Array<{ node: string; state?: string }>) : [];
      // Like Calico, an agent says WaitingForTraffic until its first packet.
      return nodes.every((n) => entries.some((e) => e.node === n && (e.state === 'WaitingForTraffic' || e.state === 'Capturing')));
    },
    { timeoutMs: 60_000, description: `${name} running on ${nodes.join(', ')}` },
  );
}

describe('PacketCapture files: the storefront story', function () {
  this.timeout(240_000);
  const processes: NetwardenProcess[] = [];
  const pods: PodNetwork[] = [];
  let dnsServer: ChildProcess | undefined;
  let editorKubeconfig: string;
  let workDir: string;
  const queries = Array.from({ length: 6 }, (_, i) => `q${i}.logging.storefront.test`);

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNode(kc, NODE_A, { internalIP: nextNodeIP() });
    await createNode(kc, NODE_B, { internalIP: nextNodeIP() });
    await createNamespace(kc, NS);
    await createNamespace(kc, 'pc-other');
    await createPod(kc, { namespace: NS, name: 'logging-7d9', nodeName: NODE_A, labels: { app: 'logging' }, podIP: LOGGING_IP });
    await createPod(kc, { namespace: NS, name: 'web-5f4', nodeName: NODE_B, labels: { app: 'web' }, podIP: WEB_IP });
    // No controller-manager: kube-system has no default ServiceAccount until someone makes one.
    await createServiceAccount(kc, 'kube-system', 'default').catch(() => undefined);
    await createPod(kc, { namespace: 'kube-system', name: 'coredns-pc', nodeName: NODE_B, labels: { 'k8s-app': 'kube-dns' }, podIP: DNS_IP });
    pods.push(await createPodNetwork({ name: 'pcx-logging', ip: LOGGING_IP }));
    pods.push(await createPodNetwork({ name: 'pcx-dns', ip: DNS_IP }));
    pods.push(await createPodNetwork({ name: 'pcx-web', ip: WEB_IP }));
    // A real DNS server in the kube-dns pod, answering every *.storefront.test name.
    dnsServer = spawn('ip', ['netns', 'exec', 'nw-pcx-dns', 'dnsmasq', '-k', '-C', '/dev/null', '--no-resolv', '--no-hosts', '--pid-file=', '--user=root', `--listen-address=${DNS_IP}`, '--bind-interfaces', '--address=/storefront.test/10.244.77.99'], { stdio: 'ignore' });
    trackChild(dnsServer);
    process.env.NETWARDEN_CAPTURE_FILES_RELEASE_TIMEOUT = '20s';
    processes.push(await startController(cp), await startAgent(cp, NODE_A), await startAgent(cp, NODE_B));
    workDir = await mkdtemp(path.join(cp.dir, 'pc-downloads-'));
    editorKubeconfig = await serviceAccountKubeconfig(NS, 'capture-editor');
    await mustKubectl(cp, ['create', 'rolebinding', 'capture-editor', '-n', NS, '--clusterrole=netwarden-packetcapture-editor', `--serviceaccount=${NS}:capture-editor`]);
  });

  after(async function () {
    dnsServer?.kill();
    await Promise.all(processes.map((p) => p.kill()));
    for (const pod of pods) await pod.destroy();
  });

  it('lets a ServiceAccount that may only edit PacketCaptures create one for the logging pod\'s DNS traffic', async function () {
    const cp = cluster();
    const r = await cp.kubectl(['apply', '-f', path.join(REPO_ROOT, 'examples/packetcapture-storefront-logging-dns.yaml')], { kubeconfig: editorKubeconfig });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain(`packetcapture.netwarden.io/${CAPTURE} created`);
    await mustKubectl(cp, ['wait', '--for=condition=Ready', `packetcapture/${CAPTURE}`, '-n', NS, '--timeout=30s']);
    expect(await jsonpath('packetcapture', CAPTURE, '.status.targets[*].pod')).to.equal('logging-7d9');
    expect(await jsonpath('packetcapture', CAPTURE, '.metadata.finalizers')).to.contain('netwarden.io/capture-files');
    await waitCapturing(CAPTURE, [NODE_A]);
    expect(await jsonpath('packetcapture', CAPTURE, '.status.phase')).to.equal('WaitingForTraffic');
  });

  it('captures the DNS queries the logging pod sends, and nothing else', async function () {
    const logging = pods[0]!;
    const sent = await logging.exec(['python3', '-c', DNS_CLIENT, DNS_IP, ...queries]);
    expect(sent.code, sent.stderr).to.equal(0);
    expect(sent.stdout.match(/^answered/gm) ?? [], sent.stdout).to.have.length(queries.length);
    await logging.exec(['python3', '-c', UDP_NOISE, DNS_IP]);
    await logging.ping(DNS_IP);
    // Every query and its answer: 2 packets per query, counted by the agent in status.files.
    await waitFor(async () => Number(await jsonpath('packetcapture', CAPTURE, `.status.files[?(@.node=="${NODE_A}")].packets`)) >= 2 * queries.length, {
      timeoutMs: 30_000,
      description: 'the agent reporting the DNS packets',
    });
    await waitFor(async () => (await jsonpath('packetcapture', CAPTURE, '.status.phase')) === 'Capturing', { timeoutMs: 20_000, description: 'phase Capturing' });
    const row = await mustKubectl(cluster(), ['get', 'packetcapture', CAPTURE, '-n', NS, '--no-headers']);
    expect(row).to.match(new RegExp(`^${CAPTURE}\\s+Capturing\\s+1\\s+[1-9]\\d*\\s+[1-9]\\d*\\s+`));
  });

  it('refuses the download with 403 until the ServiceAccount may get packetcaptures/files', async function () {
    const denied = await plugin(['capture', 'download', '-n', NS, CAPTURE, '-o', workDir], editorKubeconfig);
    expect(denied.code).to.not.equal(0);
    expect(denied.stderr).to.match(/error: 403 Forbidden: system:serviceaccount:storefront:capture-editor may not get packetcaptures\/files\.netwarden\.io in namespace storefront/);
    expect(existsSync(path.join(workDir, `${NS}-${CAPTURE}.zip`))).to.equal(false);
  });

  it('downloads a zip with the plugin once granted; tshark finds only UDP/53 of the logging pod, every query included', async function () {
    const cp = cluster();
    await mustKubectl(cp, ['create', 'rolebinding', 'capture-files-reader', '-n', NS, '--clusterrole=netwarden-packetcapture-files-reader', `--serviceaccount=${NS}:capture-editor`]);
    // The controller caches access decisions for a few seconds.
    const ok = await waitFor(async () => {
      const r = await plugin(['capture', 'download', '-n', NS, CAPTURE, '-o', workDir, '--extract'], editorKubeconfig);
      return r.code === 0 ? r : undefined;
    }, { timeoutMs: 30_000, intervalMs: 2000, description: 'download allowed' });
    const zipPath = path.join(workDir, `${NS}-${CAPTURE}.zip`);
    expect(ok.stdout.split('\n')[0]).to.equal(zipPath);
    const pcaps = (await filesUnder(path.join(workDir, `${NS}-${CAPTURE}`))).filter((f) => f.endsWith('.pcap'));
    expect(pcaps.map((f) => path.relative(path.join(workDir, `${NS}-${CAPTURE}`), f))).to.satisfy((names: string[]) => names.length > 0 && names.every((n) => n.startsWith(`${NODE_A}/logging-7d9_`)));
    const rows = (await Promise.all(pcaps.map((f) => tshark(f, ['ip.src', 'ip.dst', 'ip.proto', 'udp.srcport', 'udp.dstport', 'dns.qry.name'])))).flat();
    expect(rows.length).to.be.at.least(2 * queries.length);
    for (const [src, dst, proto, sport, dport] of rows) {
      expect(proto, 'UDP only').to.equal('17');
      expect([src, dst], 'the logging pod on one end').to.include(LOGGING_IP);
      expect([sport, dport], 'port 53 on one end').to.include('53');
    }
    const names = new Set(rows.map((r) => r[5]));
    for (const q of queries) expect(names, `query ${q}`).to.include(q);
  });

  it('lists the same packets with `kubectl netwarden capture summary`, tcpdump-like', async function () {
    const r = await plugin(['capture', 'summary', '-n', NS, CAPTURE], editorKubeconfig);
    expect(r.code, r.stderr).to.equal(0);
    for (const q of queries) expect(r.stdout).to.match(new RegExp(`IP ${LOGGING_IP.replaceAll('.', '\\.')}\\.\\d+ > ${DNS_IP.replaceAll('.', '\\.')}\\.53: \\d+\\+ A\\? ${q.replaceAll('.', '\\.')}\\.`));
  });

  it('answers 401, 403, 404 and 400 where they apply', async function () {
    const download = `/packet-capture/download/${NS}/${CAPTURE}/files.zip`;
    expect((await call('GET', download)).status).to.equal(401);
    expect((await call('GET', download, 'not-a-token')).status).to.equal(401);
    // Files reader in its own namespace only: not for storefront.
    const cp = cluster();
    await mustKubectl(cp, ['create', 'rolebinding', 'other-reader', '-n', 'pc-other', '--clusterrole=netwarden-packetcapture-files-reader', '--serviceaccount=pc-other:reader']);
    const other = await call('GET', download, await tokenOf('pc-other', 'reader'));
    expect(other.status).to.equal(403);
    expect(other.message).to.contain('system:serviceaccount:pc-other:reader may not get packetcaptures/files');
    // get but not delete on the files.
    await mustKubectl(cp, ['create', 'role', 'files-get-only', '-n', NS, '--verb=get', '--resource=packetcaptures.netwarden.io/files']);
    await mustKubectl(cp, ['create', 'rolebinding', 'files-get-only', '-n', NS, '--role=files-get-only', `--serviceaccount=${NS}:getter`]);
    const getter = await tokenOf(NS, 'getter');
    expect((await call('GET', download, getter)).status).to.equal(200);
    const del = await call('DELETE', `/packet-capture/files/${NS}/${CAPTURE}`, getter);
    expect(del.status).to.equal(403);
    expect(del.message).to.contain('may not delete packetcaptures/files');
    const admin = await tokenOf(NS, 'capture-editor');
    const unknown = await call('GET', `/packet-capture/download/${NS}/no-such-capture/files.zip`, admin);
    expect(unknown).to.deep.equal({ status: 404, message: `packetcapture ${NS}/no-such-capture not found` });
    const traversal = await call('GET', `/packet-capture/download/${NS}/..%2F..%2Fetc%2Fpasswd/files.zip`, admin);
    expect(traversal.status).to.equal(400);
    expect(traversal.message).to.contain('malformed name "../../etc/passwd"');
    // The same without encoding, as `curl --path-as-is` sends it.
    const raw = await call('GET', `/packet-capture/download/${NS}/../../etc/passwd/files.zip`, admin);
    expect(raw.status).to.equal(400);
    expect(raw.message).to.contain('"." and ".." segments are not allowed');
  });

  it('refuses to delete the files of a running capture with 409, and deletes them once it ended', async function () {
    const editor = await tokenOf(NS, 'capture-editor');
    const running = await call('DELETE', `/packet-capture/files/${NS}/${CAPTURE}`, editor);
    expect(running.status).to.equal(409);
    expect(running.message).to.match(/is still running \(phase Capturing\): it ends at /);
    // An end time in the past stops the capture (duration and endTime are exclusive).
    const past = new Date(Date.now() - 1000).toISOString().replace(/\.\d+Z$/, 'Z');
    await mustKubectl(cluster(), ['patch', 'packetcapture', CAPTURE, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: { duration: null, endTime: past, startTime: null } })]);
    await waitFor(async () => (await jsonpath('packetcapture', CAPTURE, '.status.phase')) === 'Finished', { timeoutMs: 30_000, description: 'Finished' });
    expect(existsSync(captureDir(NODE_A, NS, CAPTURE))).to.equal(true);
    const r = await plugin(['capture', 'delete', '-n', NS, CAPTURE], editorKubeconfig);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain(`files of packetcapture ${NS}/${CAPTURE} removed on 1 node(s)`);
    await waitFor(() => !existsSync(captureDir(NODE_A, NS, CAPTURE)), { timeoutMs: 20_000, description: 'files removed on the node' });
  });

  it('merges the files of two nodes into one zip', async function () {
    const cp = cluster();
    const yaml = ['apiVersion: netwarden.io/v1alpha1', 'kind: PacketCapture', `metadata: {name: pc-two-nodes, namespace: ${NS}}`, 'spec:', '  selector: app in {"logging", "web"}', '  filters: [{protocol: ICMP}]'].join('\n');
    await mustKubectl(cp, ['apply', '-f', '-'], yaml);
    await waitCapturing('pc-two-nodes', [NODE_A, NODE_B]);
    await pods[2]!.ping(LOGGING_IP);
    await pods[2]!.ping(LOGGING_IP);
    await waitFor(async () => {
      const raw = JSON.parse((await jsonpath('packetcapture', 'pc-two-nodes', '.status.files')) || '[]') as Array<{ node: string; packets?: number }>;
      return raw.filter((e) => (e.packets ?? 0) >= 2).length === 2;
    }, { timeoutMs: 30_000, description: 'both nodes counting packets' });
    const admin = await serviceAccountKubeconfig(NS, 'capture-editor');
    const r = await plugin(['capture', 'download', '-n', NS, 'pc-two-nodes', '-o', workDir, '--extract'], admin);
    expect(r.code, r.stderr).to.equal(0);
    const files = (await filesUnder(path.join(workDir, `${NS}-pc-two-nodes`))).map((f) => path.relative(path.join(workDir, `${NS}-pc-two-nodes`), f));
    expect(files.some((f) => f.startsWith(`${NODE_A}/logging-7d9_`) && f.endsWith('.pcap')), files.join(',')).to.equal(true);
    expect(files.some((f) => f.startsWith(`${NODE_B}/web-5f4_`) && f.endsWith('.pcap')), files.join(',')).to.equal(true);
    for (const f of files.filter((x) => x.endsWith('.pcap'))) {
      const rows = await tshark(path.join(workDir, `${NS}-pc-two-nodes`, f), ['ip.proto']);
      expect(rows.length, f).to.be.at.least(2);
      expect(rows.every(([p]) => p === '1'), f).to.equal(true);
    }
  });

  it('spec.format pcapng: one pcapng per node whose packets name their pod for tshark, and ?merge=true one file of both nodes sorted by time', async function () {
    const cp = cluster();
    const yaml = ['apiVersion: netwarden.io/v1alpha1', 'kind: PacketCapture', `metadata: {name: pc-ng, namespace: ${NS}}`, 'spec:', '  selector: app in {"logging", "web"}', '  filters: [{protocol: ICMP}]', '  format: pcapng'].join('\n');
    await mustKubectl(cp, ['apply', '-f', '-'], yaml);
    await waitCapturing('pc-ng', [NODE_A, NODE_B]);
    // Both nodes must have written their pcapng header before the pings, or WaitingForTraffic would
    // say Capturing too early; the ping's request and reply cross both pods' interfaces.
    await pods[2]!.ping(LOGGING_IP);
    await pods[2]!.ping(LOGGING_IP);
    await waitFor(async () => {
      const raw = JSON.parse((await jsonpath('packetcapture', 'pc-ng', '.status.files')) || '[]') as Array<{ node: string; packets?: number; state?: string }>;
      return raw.filter((e) => (e.packets ?? 0) >= 2 && e.state === 'Capturing').length === 2;
    }, { timeoutMs: 30_000, description: 'both nodes Capturing pcapng' });
    const admin = await serviceAccountKubeconfig(NS, 'capture-editor');
    const podOf = { [NODE_A]: 'logging-7d9', [NODE_B]: 'web-5f4' };

    // Per node: <node>/<node>.pcapng, and nothing else but what the nodes wrote besides (no pcap).
    const perNode = path.join(workDir, 'ng-per-node');
    const r = await plugin(['capture', 'download', '-n', NS, 'pc-ng', '-o', perNode, '--extract'], admin);
    expect(r.code, r.stderr).to.equal(0);
    const root = path.join(perNode, `${NS}-pc-ng`);
    const files = (await filesUnder(root)).map((f) => path.relative(root, f));
    expect(files).to.deep.equal([`${NODE_A}/${NODE_A}.pcapng`, `${NODE_B}/${NODE_B}.pcapng`]);
    let total = 0;
    for (const [node, pod] of Object.entries(podOf)) {
      const rows = await tshark(path.join(root, node, `${node}.pcapng`), ['frame.comment', 'frame.interface_name', 'ip.proto']);
      expect(rows.length, node).to.be.at.least(2);
      for (const [comment, iface, proto] of rows) {
        expect(comment, node).to.equal(`${NS}/${pod}`);
        expect(iface, node).to.match(new RegExp(`^${NS}/${pod}@${node}/\\S+$`));
        expect(proto, node).to.equal('1');
      }
      total += rows.length;
    }

    // Merged: one file at the top of the zip, both pods' packets, in time order.
    const mergedDir = path.join(workDir, 'ng-merged');
    const m = await plugin(['capture', 'download', '-n', NS, 'pc-ng', '--merge', '-o', mergedDir, '--extract'], admin);
    expect(m.code, m.stderr).to.equal(0);
    const mergedRoot = path.join(mergedDir, `${NS}-pc-ng`);
    expect((await filesUnder(mergedRoot)).map((f) => path.relative(mergedRoot, f))).to.deep.equal([`${NS}-pc-ng.pcapng`]);
    const rows = await tshark(path.join(mergedRoot, `${NS}-pc-ng.pcapng`), ['frame.time_epoch', 'frame.comment', 'frame.interface_name']);
    // At least what the per-node download had (the capture still runs: it may have more).
    expect(rows.length).to.be.at.least(total);
    expect(new Set(rows.map((x) => x[1]))).to.deep.equal(new Set([`${NS}/logging-7d9`, `${NS}/web-5f4`]));
    expect(new Set(rows.map((x) => x[2]!.split('@')[1]!.split('/')[0]))).to.deep.equal(new Set([NODE_A, NODE_B]));
    const micros = rows.map((x) => BigInt(x[0]!.replace('.', '')));
    for (let i = 1; i < micros.length; i++) expect(micros[i]! >= micros[i - 1]!, `packet ${i + 1} is not before packet ${i}`).to.equal(true);

    // The summary shows each packet's pod.
    const summary = await plugin(['capture', 'summary', '-n', NS, 'pc-ng', '--merge'], admin);
    expect(summary.code, summary.stderr).to.equal(0);
    expect(summary.stdout).to.match(new RegExp(`\\[${NS}/web-5f4\\] IP ${WEB_IP.replaceAll('.', '\\.')} > ${LOGGING_IP.replaceAll('.', '\\.')}: ICMP echo request`));
    expect(summary.stdout).to.match(new RegExp(`\\[${NS}/logging-7d9\\] IP ${LOGGING_IP.replaceAll('.', '\\.')} > ${WEB_IP.replaceAll('.', '\\.')}: ICMP echo reply`));

    // A pcap capture cannot be merged: a 400 that says why.
    const pcapMerge = await call('GET', `/packet-capture/download/${NS}/pc-two-nodes/files.zip?merge=true`, await tokenOf(NS, 'capture-editor'));
    expect(pcapMerge.status).to.equal(400);
    expect(pcapMerge.message).to.contain('?merge=true needs spec.format: pcapng');
    await mustKubectl(cp, ['delete', 'packetcapture', 'pc-ng', '-n', NS, '--timeout=60s']);
  });

  it('removes the files from every node when the resource is deleted', async function () {
    const cp = cluster();
    expect(existsSync(captureDir(NODE_A, NS, 'pc-two-nodes'))).to.equal(true);
    expect(existsSync(captureDir(NODE_B, NS, 'pc-two-nodes'))).to.equal(true);
    await mustKubectl(cp, ['delete', 'packetcapture', 'pc-two-nodes', '-n', NS, '--timeout=60s']);
    expect(existsSync(captureDir(NODE_A, NS, 'pc-two-nodes'))).to.equal(false);
    expect(existsSync(captureDir(NODE_B, NS, 'pc-two-nodes'))).to.equal(false);
  });

  it('accepts Calico\'s documented PacketCapture with only apiVersion changed, and captures the same', async function () {
    const cp = cluster();
    // From Calico's docs (projectcalico.org/v3), apiVersion changed to netwarden.io/v1alpha1.
    const calico = [
      'apiVersion: netwarden.io/v1alpha1',
      'kind: PacketCapture',
      'metadata:',
      '  name: sample-capture-dns',
      '  namespace: kube-system',
      'spec:',
      '  selector: k8s-app == "kube-dns"',
      '  filters:',
      '    - protocol: UDP',
      '      ports:',
      '        - 53',
    ].join('\n');
    await mustKubectl(cp, ['apply', '-f', '-'], calico);
    await mustKubectl(cp, ['wait', '--for=condition=Ready', 'packetcapture/sample-capture-dns', '-n', 'kube-system', '--timeout=30s']);
    expect(await jsonpath('packetcapture', 'sample-capture-dns', '.status.targets[*].pod', 'kube-system')).to.equal('coredns-pc');
    await waitCapturing('sample-capture-dns', [NODE_B], 'kube-system');
    await pods[2]!.exec(['python3', '-c', DNS_CLIENT, DNS_IP, 'calico.storefront.test']);
    await pods[2]!.exec(['python3', '-c', UDP_NOISE, DNS_IP]);
    await waitFor(async () => Number(await jsonpath('packetcapture', 'sample-capture-dns', '.status.files[0].packets', 'kube-system')) >= 2, { timeoutMs: 30_000, description: 'DNS packets counted' });
    await mustKubectl(cp, ['create', 'rolebinding', 'dns-files', '-n', 'kube-system', '--clusterrole=netwarden-packetcapture-files-reader', `--serviceaccount=${NS}:capture-editor`]);
    const kubeconfig = await serviceAccountKubeconfig(NS, 'capture-editor');
    const r = await waitFor(async () => {
      const res = await plugin(['capture', 'download', '-n', 'kube-system', 'sample-capture-dns', '-o', workDir, '--extract'], kubeconfig);
      return res.code === 0 ? res : undefined;
    }, { timeoutMs: 30_000, intervalMs: 2000, description: 'download allowed' });
    expect(r.code).to.equal(0);
    const pcaps = (await filesUnder(path.join(workDir, 'kube-system-sample-capture-dns'))).filter((f) => f.endsWith('.pcap'));
    const rows = (await Promise.all(pcaps.map((f) => tshark(f, ['udp.dstport', 'udp.srcport', 'dns.qry.name'])))).flat();
    expect(rows.map((x) => x[2])).to.include('calico.storefront.test');
    expect(rows.every(([d, s]) => d === '53' || s === '53')).to.equal(true);
  });

  it('reports an invalid selector as Ready=False naming the problem, and refuses an invalid filter at apply', async function () {
    const cp = cluster();
    const bad = ['apiVersion: netwarden.io/v1alpha1', 'kind: PacketCapture', `metadata: {name: pc-bad-selector, namespace: ${NS}}`, 'spec:', '  selector: app in {"logging"', '  filters: [{protocol: UDP, ports: [53]}]'].join('\n');
    await mustKubectl(cp, ['apply', '-f', '-'], bad);
    const condition = await waitFor(async () => {
      const raw = await jsonpath('packetcapture', 'pc-bad-selector', '.status.conditions[?(@.type=="Ready")]');
      const c = raw ? (JSON.parse(raw) as { status: string; reason: string; message: string }) : undefined;
      return c?.status === 'False' ? c : undefined;
    }, { timeoutMs: 20_000, description: 'Ready=False' });
    expect(condition.reason).to.equal('InvalidSelector');
    expect(condition.message).to.contain('invalid selector');
    const filter = ['apiVersion: netwarden.io/v1alpha1', 'kind: PacketCapture', `metadata: {name: pc-bad-filter, namespace: ${NS}}`, 'spec:', '  filters: [{protocol: ICMP, ports: ["80:70"]}]'].join('\n');
    const r = await cp.kubectl(['apply', '-f', '-'], { input: filter });
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.contain('a port range must be "low:high" with 1 <= low <= high <= 65535');
  });
});
