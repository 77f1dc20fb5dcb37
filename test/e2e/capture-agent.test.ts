// PacketCapture on the node agent, against the real control plane with the controller computing
// targets: real pod network namespaces, real packets, libpcap on the pod's host-side veth, pcap
// files that tshark reads, the agent's file API with TokenReview/SubjectAccessReview, rotation and
// the byte limit, the start and end times, and deletion removing the files.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { cluster } from './hooks.js';
import { ensureInstalled, mustKubectl, netwardenCaFile, netwardenPorts, nextNodeIP, startAgent, startController, SYSTEM_NAMESPACE, type NetwardenProcess } from '../env/netwarden.js';
import { createNamespace, createNode, createPod, createServiceAccount, requestToken, waitFor } from '../env/fixtures.js';
import { createPodNetwork, type PodNetwork } from '../env/podnet.js';
import { agentAudience } from '../../src/apis/identity.js';
import type { CaptureFiles } from '../../src/apis/packetcapture.js';

const ns = 'capture-agent-e2e';
const node = 'capag-node';
const LOGGING_IP = '10.244.173.10';
const OTHER_IP = '10.244.173.11';

interface HttpResult {
  status: number;
  body: Buffer;
  headers: Record<string, string | string[] | undefined>;
}

/** Sends UDP datagrams (a DNS query for each name when port is 53) from inside a pod network. */
async function sendUdp(pod: PodNetwork, dst: string, port: number, names: string[], padTo = 0): Promise<void> {
  const py = `
import socket, struct, sys
dst, port, pad = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i, name in enumerate(sys.argv[4:]):
    q = struct.pack('!HHHHHH', i + 1, 0x0100, 1, 0, 0, 0) + b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\\0' + struct.pack('!HH', 1, 1)
    s.sendto(q + b'\\0' * max(0, pad - len(q)), (dst, port))
`;
  const r = await pod.exec(['python3', '-c', py, dst, String(port), String(padTo), ...names]);
  if (r.code !== 0) throw new Error(`sending UDP from ${pod.name} failed: ${r.stderr}`);
}

/** A TCP SYN and an ICMP echo from the pod: traffic the UDP/53 filter must leave out. */
async function sendOtherTraffic(pod: PodNetwork, dst: string): Promise<void> {
  await pod.exec(['python3', '-c', `import socket\ns=socket.socket(); s.settimeout(0.3)\ntry: s.connect(('${dst}', 53))\nexcept Exception: pass`]);
  await pod.ping(dst, 1);
}

function agentRequest(method: string, urlPath: string, token?: string): Promise<HttpResult> {
  const cp = cluster();
  return Promise.all([netwardenPorts(cp), netwardenCaFile(cp)]).then(
    ([ports, caFile]) =>
      new Promise<HttpResult>((resolve, reject) => {
        const req = https.request(
          { host: nodeIP, port: ports.agentFiles, path: urlPath, method, ca: readFileSync(caFile), headers: token ? { authorization: `Bearer ${token}` } : {} },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }));
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end();
      }),
  );
}

async function capture(name: string): Promise<{ status?: { phase?: string; files?: CaptureFiles[]; targets?: Array<{ pod: string; node?: string; ip?: string; interface?: string }> } }> {
  return JSON.parse(await mustKubectl(cluster(), ['get', 'packetcapture', name, '-n', ns, '-o', 'json'])) as never;
}

async function nodeEntry(name: string): Promise<CaptureFiles | undefined> {
  return (await capture(name)).status?.files?.find((f) => f.node === node);
}

/** Every capture of this name on the node: one directory per capture UID below it. */
function nameDir(name: string): string {
  return path.join(cluster().dir, 'nodes', node, 'captures', ns, name);
}

/** The files of the capture of this name that exists now. */
async function captureDir(name: string): Promise<string> {
  return path.join(nameDir(name), await mustKubectl(cluster(), ['get', 'packetcapture', name, '-n', ns, '-o', 'jsonpath={.metadata.uid}']));
}

function tsharkRows(file: string, fields: string[]): string[][] {
  const out = execFileSync('tshark', ['-r', file, '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter(Boolean).map((l) => l.split('|'));
}

function applyCapture(name: string, spec: string): Promise<string> {
  return mustKubectl(cluster(), ['apply', '-f', '-'], `apiVersion: netwarden.io/v1alpha1\nkind: PacketCapture\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n${spec}\n`);
}

let nodeIP = '';

describe('capture: node agent', function () {
  this.timeout(120_000);
  const processes: NetwardenProcess[] = [];
  let logging: PodNetwork;
  let other: PodNetwork;

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    nodeIP = nextNodeIP();
    await createNamespace(kc, ns);
    await createNode(kc, node, { internalIP: nodeIP });
    logging = await createPodNetwork({ name: 'capag-log', ip: LOGGING_IP });
    other = await createPodNetwork({ name: 'capag-oth', ip: OTHER_IP });
    await createPod(kc, { namespace: ns, name: 'logging', nodeName: node, labels: { app: 'logging' }, podIP: LOGGING_IP });
    await createPod(kc, { namespace: ns, name: 'other', nodeName: node, labels: { app: 'other' }, podIP: OTHER_IP });
    processes.push(await startController(cp, 'capag-controller'), await startAgent(cp, node));
  });

  after(async function () {
    await Promise.all(processes.map((p) => p.kill()));
    await logging?.destroy();
    await other?.destroy();
  });

  it("captures only the selected pod's UDP/53, in both directions, into pcap files tshark reads", async function () {
    await applyCapture('pc-dns', '  selector: app == "logging"\n  filters: [{protocol: UDP, ports: [53]}]\n  includeMetadata: true');
    await waitFor(async () => (await nodeEntry('pc-dns'))?.state === 'WaitingForTraffic', { timeoutMs: 30_000, description: 'agent waiting for traffic' });

    const queries = Array.from({ length: 20 }, (_, i) => `q${i}.logging.test`);
    await sendUdp(logging, OTHER_IP, 53, queries); // egress of the pod
    await sendUdp(other, LOGGING_IP, 53, ['in.logging.test']); // ingress of the pod
    await sendUdp(logging, OTHER_IP, 54, ['wrong-port.test']);
    await sendUdp(other, OTHER_IP, 53, ['not-logging.test']); // the other pod talking to itself (never on logging's veth)
    await sendOtherTraffic(logging, OTHER_IP);

    const entry = await waitFor(async () => {
      const e = await nodeEntry('pc-dns');
      return e?.state === 'Capturing' && (e.packets ?? 0) >= 21 ? e : undefined;
    }, { timeoutMs: 30_000, description: 'Capturing with 21 packets' });
    expect(entry.packets).to.equal(21);
    expect(entry.kernelDropped).to.equal(0);
    expect(entry.directory).to.equal(await captureDir('pc-dns'));
    const pcaps = (entry.fileNames ?? []).filter((f) => f.endsWith('.pcap'));
    expect(pcaps).to.deep.equal([`logging_${logging.hostInterface}_00001.pcap`]);
    expect(entry.fileNames).to.include(`metadata-${node}.txt`);

    const rows = tsharkRows(path.join(await captureDir('pc-dns'), pcaps[0]!), ['ip.src', 'ip.dst', 'udp.dstport', 'dns.qry.name']);
    expect(rows.every(([src, dst, port]) => port === '53' && (src === LOGGING_IP || dst === LOGGING_IP))).to.equal(true, JSON.stringify(rows));
    expect(rows.map((r) => r[3]).sort()).to.deep.equal([...queries, 'in.logging.test'].sort());
    expect(entry.bytes).to.be.greaterThan(21 * 16);
  });

  it("sets the interface on the controller's target entry by server-side apply, keeping the controller's fields", async function () {
    const target = await waitFor(async () => (await capture('pc-dns')).status?.targets?.find((t) => t.pod === 'logging' && t.interface), { description: 'interface on the target' });
    expect(target).to.deep.equal({ pod: 'logging', node, ip: LOGGING_IP, interface: logging.hostInterface });
    expect((await capture('pc-dns')).status?.targets?.map((t) => t.pod)).to.deep.equal(['logging']);
  });

  it('writes the network snapshot with includeMetadata', async function () {
    const text = readFileSync(path.join(await captureDir('pc-dns'), `metadata-${node}.txt`), 'utf8');
    for (const section of ['### ip -d addr', '### ip route', '### ip neigh', '### nft list ruleset']) expect(text).to.include(section);
    expect(text).to.include(`${LOGGING_IP} dev ${logging.hostInterface}`);
  });

  it("serves the files to the controller's ServiceAccount only: 401 without a token, 403 for others, 400 for ../", async function () {
    const kc = cluster().kubeConfig();
    // What the controller requests for this node's agent; nosy's token has the same audience, so RBAC refuses it.
    const controllerToken = await requestToken(kc, SYSTEM_NAMESPACE, 'netwarden-controller', [agentAudience(node)]);
    await createServiceAccount(kc, ns, 'nosy');
    const nosyToken = await requestToken(kc, ns, 'nosy', [agentAudience(node)]);

    const list = await agentRequest('GET', `/captures/${ns}/pc-dns/files`, controllerToken);
    expect(list.status).to.equal(200);
    const listing = JSON.parse(list.body.toString()) as { node: string; files: Array<{ pod: string; fileName: string; bytes: number; complete: boolean }> };
    expect(listing.node).to.equal(node);
    const pcap = listing.files.find((f) => f.pod === 'logging')!;
    expect(pcap).to.include({ fileName: `logging_${logging.hostInterface}_00001.pcap`, complete: false });

    const file = await agentRequest('GET', `/captures/${ns}/pc-dns/files/${pcap.fileName}`, controllerToken);
    expect(file.status).to.equal(200);
    expect(file.headers['content-type']).to.equal('application/vnd.tcpdump.pcap');
    expect(file.body.length).to.equal(Number(file.headers['content-length']));
    expect(file.body.readUInt32LE(0).toString(16)).to.equal('a1b2c3d4');
    expect(file.body.equals(readFileSync(path.join(await captureDir('pc-dns'), pcap.fileName)).subarray(0, file.body.length))).to.equal(true);

    expect((await agentRequest('GET', `/captures/${ns}/pc-dns/files`)).status).to.equal(401);
    expect((await agentRequest('GET', `/captures/${ns}/pc-dns/files`, 'not-a-token')).status).to.equal(401);
    const denied = await agentRequest('GET', `/captures/${ns}/pc-dns/files/${pcap.fileName}`, nosyToken);
    expect(denied.status).to.equal(403);
    expect((await agentRequest('DELETE', `/captures/${ns}/pc-dns/files`, nosyToken)).status).to.equal(403);
    expect((await agentRequest('GET', `/captures/${ns}/pc-dns/files/..%2F..%2F..%2Fkubeconfig`, controllerToken)).status).to.equal(400);
    expect((await agentRequest('GET', `/captures/${ns}/pc-dns/files/etc-passwd`, controllerToken)).status).to.equal(400);
    expect((await agentRequest('GET', `/captures/..%2F${ns}/pc-dns/files`, controllerToken)).status).to.equal(400);
    expect((await agentRequest('GET', `/captures/${ns}/pc-dns/files/logging_${logging.hostInterface}_00099.pcap`, controllerToken)).status).to.equal(404);
  });

  it('rotates by size, keeps maxFiles, then stops at maxBytesPerPod', async function () {
    await applyCapture('pc-size', '  selector: app == "logging"\n  filters: [{protocol: UDP, ports: [5353]}]\n  fileSizeBytes: 65536\n  maxFiles: 2\n  maxBytesPerPod: 300000');
    await waitFor(async () => (await nodeEntry('pc-size'))?.state === 'WaitingForTraffic', { timeoutMs: 30_000, description: 'pc-size started' });
    // 400 datagrams of 1000 bytes: 1058-byte records, 61 per file, ~283 fit in 300000 bytes.
    for (let i = 0; i < 4; i++) await sendUdp(logging, OTHER_IP, 5353, Array.from({ length: 100 }, (_, j) => `r${i}-${j}.test`), 1000);
    const entry = await waitFor(async () => {
      const e = await nodeEntry('pc-size');
      return e?.state === 'Finished' ? e : undefined;
    }, { timeoutMs: 30_000, description: 'pc-size Finished at the byte limit' });
    expect(entry.message).to.match(/logging: reached maxBytesPerPod \(300000 bytes\)/);
    const names = entry.fileNames ?? [];
    expect(names).to.have.length(2);
    // Five files written (61+61+61+61+39 records); the oldest three were deleted.
    expect(names).to.deep.equal([`logging_${logging.hostInterface}_00004.pcap`, `logging_${logging.hostInterface}_00005.pcap`]);
    expect(readdirSync(await captureDir('pc-size')).sort()).to.deep.equal(names);
    expect(entry.bytes).to.be.at.most(2 * 65536);
    const dir = await captureDir('pc-size');
    const counted = names.map((f) => tsharkRows(path.join(dir, f), ['udp.dstport']).length);
    expect(counted[0]).to.equal(61);
  });

  it('stops at endTime: the node entry and the phase say Finished', async function () {
    const end = new Date(Date.now() + 8_000).toISOString().replace(/\.\d+Z$/, 'Z');
    await applyCapture('pc-end', `  selector: app == "logging"\n  filters: [{protocol: UDP, ports: [53]}]\n  endTime: "${end}"`);
    await waitFor(async () => (await nodeEntry('pc-end'))?.state === 'WaitingForTraffic', { timeoutMs: 30_000, description: 'pc-end started' });
    await sendUdp(logging, OTHER_IP, 53, ['before-end.test']);
    await waitFor(async () => (await nodeEntry('pc-end'))?.state === 'Capturing', { timeoutMs: 30_000, description: 'pc-end capturing' });
    const finished = await waitFor(async () => {
      const e = await nodeEntry('pc-end');
      return e?.state === 'Finished' ? e : undefined;
    }, { timeoutMs: 30_000, description: 'pc-end Finished' });
    expect(Date.now()).to.be.at.least(new Date(end).getTime());
    await sendUdp(logging, OTHER_IP, 53, ['after-end.test']);
    await new Promise((r) => setTimeout(r, 1500));
    const file = path.join(await captureDir('pc-end'), (finished.fileNames ?? [])[0]!);
    expect(tsharkRows(file, ['dns.qry.name']).map((r) => r[0])).to.deep.equal(['before-end.test']);
    await waitFor(async () => (await capture('pc-end')).status?.phase === 'Finished', { description: 'phase Finished' });
  });

  it('waits for startTime: Scheduled (phase and node entry) until then, then captures only what is sent from then on', async function () {
    // Whole seconds, as users write RFC 3339 times; far enough ahead for the status to say Scheduled first.
    const startMs = Math.ceil((Date.now() + 8_000) / 1000) * 1000;
    const start = new Date(startMs).toISOString().replace('.000Z', 'Z');
    await applyCapture('pc-sched', `  selector: app == "logging"\n  filters: [{protocol: UDP, ports: [53]}]\n  startTime: "${start}"`);
    const scheduled = await waitFor(async () => {
      const c = await capture('pc-sched');
      const entry = c.status?.files?.find((f) => f.node === node);
      return c.status?.phase === 'Scheduled' && entry?.state === 'Scheduled' ? entry : undefined;
    }, { timeoutMs: 6_000, intervalMs: 100, description: 'phase and node entry Scheduled' });
    expect(Date.now()).to.be.lessThan(startMs);
    expect(scheduled.fileNames).to.deep.equal([]);
    expect(scheduled.packets ?? 0).to.equal(0);

    // A DNS query every 100 ms from 2.5 s before startTime to 3 s after it, each named by its send time.
    const sender = logging.exec(['python3', '-c', `
import socket, struct, sys, time
dst, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
time.sleep(max(0, first / 1000 - time.time()))
sent = []
while True:
    t = int(time.time() * 1000)
    if t > last: break
    name = 't%d.sched.test' % t
    q = struct.pack('!HHHHHH', len(sent) & 0xffff, 0x0100, 1, 0, 0, 0) + b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\\0' + struct.pack('!HH', 1, 1)
    s.sendto(q, (dst, 53))
    sent.append(t)
    time.sleep(0.1)
print(' '.join(map(str, sent)))
`, OTHER_IP, String(startMs - 2_500), String(startMs + 3_000)], { timeoutMs: 30_000 });

    // Until startTime every look says Scheduled; the first look after it that does not, says when it started.
    const looks: Array<{ before: number; after: number; phase?: string; state?: string }> = [];
    const started = await waitFor(async () => {
      const before = Date.now();
      const c = await capture('pc-sched');
      const look = { before, after: Date.now(), phase: c.status?.phase, state: c.status?.files?.find((f) => f.node === node)?.state };
      looks.push(look);
      return look.state !== 'Scheduled' ? look : undefined;
    }, { timeoutMs: 20_000, intervalMs: 100, description: 'the node entry leaving Scheduled' });
    const early = looks.filter((l) => l.after < startMs);
    expect(early.length).to.be.greaterThan(5);
    expect(early.every((l) => l.phase === 'Scheduled' && l.state === 'Scheduled'), JSON.stringify(early)).to.equal(true);
    expect(started.after - startMs, 'started on time').to.be.lessThan(3_000);

    const result = await sender;
    expect(result.code, result.stderr).to.equal(0);
    const sent = result.stdout.trim().split(' ').map(Number);
    expect(sent.filter((t) => t < startMs).length, 'queries sent before startTime').to.be.at.least(15);
    // The phase follows the node entry; the file holds what the entry counted once the last write is flushed.
    const captured = await waitFor(async () => {
      const c = await capture('pc-sched');
      const e = c.status?.files?.find((f) => f.node === node);
      const pcap = (e?.fileNames ?? []).find((f) => f.endsWith('.pcap'));
      if (c.status?.phase !== 'Capturing' || e?.state !== 'Capturing' || !pcap) return undefined;
      const names = tsharkRows(path.join(await captureDir('pc-sched'), pcap), ['dns.qry.name']).map((r) => r[0]!);
      return names.length > 0 && names.length === e.packets ? names.map((n) => Number(/^t(\d+)\./.exec(n)?.[1])) : undefined;
    }, { timeoutMs: 20_000, description: 'phase Capturing, the pcap holding the packets counted' });
    // Nothing sent before startTime is in the file; everything sent from shortly after it is.
    expect(captured.filter((t) => t < startMs), 'queries from before startTime').to.deep.equal([]);
    const late = sent.filter((t) => t >= started.after);
    expect(late.length).to.be.greaterThan(0);
    expect(late.every((t) => captured.includes(t)), `sent after the start ${JSON.stringify(late)}, captured ${JSON.stringify(captured)}`).to.equal(true);
    expect(captured.every((t) => sent.includes(t))).to.equal(true);
  });

  it('reports a pod it cannot capture (no host route to its IP) as Error with the cause, and still captures the others', async function () {
    await createPod(cluster().kubeConfig(), { namespace: ns, name: 'ghost', nodeName: node, labels: { app: 'ghost' }, podIP: '10.244.173.99' });
    await applyCapture('pc-ghost', '  selector: app in {"ghost", "logging"}');
    const entry = await waitFor(async () => {
      const e = await nodeEntry('pc-ghost');
      return e?.state === 'Error' ? e : undefined;
    }, { timeoutMs: 30_000, description: 'pc-ghost Error' });
    expect(entry.message).to.match(/^ghost: /);
    expect(entry.message).to.include('10.244.173.99');
    expect(entry.fileNames?.some((f) => f.startsWith('logging_'))).to.equal(true);
  });

  it('refuses to start when free disk is below the agent threshold, saying so in the node entry', async function () {
    const cp = cluster();
    const kc = cp.kubeConfig();
    await createNode(kc, 'capag-full', { internalIP: nextNodeIP() });
    await createPod(kc, { namespace: ns, name: 'full', nodeName: 'capag-full', labels: { app: 'full' }, podIP: '10.244.173.20' });
    processes.push(await startAgent(cp, 'capag-full', ['--capture-min-free-disk=99.99%']));
    await applyCapture('pc-full', '  selector: app == "full"');
    const entry = await waitFor(async () => (await capture('pc-full')).status?.files?.find((f) => f.node === 'capag-full' && f.state === 'Error'), { timeoutMs: 30_000, description: 'pc-full Error on capag-full' });
    expect(entry.message).to.match(/free disk on the node is \d+ bytes, below the agent's threshold of \d+ bytes \(--capture-min-free-disk\): not capturing/);
    expect(entry.fileNames).to.deep.equal([]);
  });

  it('deleting the PacketCapture stops it, removes its files and releases the node entry', async function () {
    const cp = cluster();
    expect(existsSync(await captureDir('pc-dns'))).to.equal(true);
    await mustKubectl(cp, ['delete', 'packetcapture', 'pc-dns', '-n', ns, '--wait=true', '--timeout=60s']);
    await waitFor(() => !existsSync(nameDir('pc-dns')), { timeoutMs: 30_000, description: 'pc-dns files removed' });
    const gone = await cp.kubectl(['get', 'packetcapture', 'pc-dns', '-n', ns]);
    expect(gone.stderr).to.match(/NotFound/);
  });
});
