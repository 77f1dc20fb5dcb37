// PacketCapture between tenants, against the real control plane with real packets on real veths:
// an agent captures only IPs that its node's pods show the capture's namespace owns, whatever the
// status says; a capture never sees the files of an older one with its name; the node quotas
// (the 13th pod capture at the default ceiling of 12) and the namespace quotas from the admin's
// ConfigMap hold captures back with QuotaExceeded and start them when room frees; and the disk
// floor stops writing before the kubelet's eviction threshold (a tmpfs state directory).
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statfsSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { cluster } from './hooks.js';
import { registerExitCleanup } from '../env/controlplane.js';
import { createNamespace, createNode, createPod, createServiceAccount, kubeconfigForToken, requestToken, waitFor } from '../env/fixtures.js';
import { ensureInstalled, getLocal, metricValue, mustKubectl, netwardenCaFile, netwardenPorts, nextNodeIP, startAgent, startController, SYSTEM_NAMESPACE, type NetwardenProcess } from '../env/netwarden.js';
import { createPodNetwork, type PodNetwork } from '../env/podnet.js';
import { applyCapture, condition, entryOn as captureEntryOn, getCapture, sendUdp, sendUdpUntil } from '../env/captures.js';
import { agentAudience } from '../../src/apis/identity.js';
import { PacketCaptureType } from '../../src/apis/meta.js';
import type { CaptureFiles, PacketCapture } from '../../src/apis/packetcapture.js';
import { applyStatus } from '../../src/runtime/status.js';

const NS_A = 'ctn-a';
const NS_B = 'ctn-b';
const NODE = 'ctn-node';
const QUOTA_NODE = 'ctn-quota';
const DISK_NODE = 'ctn-disk';
const WEB_IP = '10.244.211.10';
const DB_IP = '10.244.211.11';
/** A network namespace with a host route like a pod's, but no Pod object owns its address. */
const STRAY_IP = '10.244.211.12';
const Q_IP = '10.244.211.20';
const DISK_IP = '10.244.211.30';
const QUOTAS = 'netwarden-capture-quotas';

function get(namespace: string, name: string): Promise<PacketCapture> {
  return getCapture(cluster(), namespace, name);
}

function entryOn(namespace: string, name: string, node: string): Promise<CaptureFiles | undefined> {
  return captureEntryOn(cluster(), namespace, name, node);
}

function apply(namespace: string, name: string, spec: string): Promise<string> {
  return applyCapture(cluster(), namespace, name, spec);
}

/** The admin's quota ConfigMap, as `kubectl apply` writes it. */
function setQuotas(namespaces: string): Promise<string> {
  const yaml = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ${QUOTAS}, namespace: ${SYSTEM_NAMESPACE}}\ndata:\n  namespaces: |\n${namespaces.split('\n').map((l) => `    ${l}`).join('\n')}\n`;
  return mustKubectl(cluster(), ['apply', '-f', '-'], yaml);
}

/** The payload markers tshark finds in a pcap file. */
function markers(file: string): string[] {
  const out = execFileSync('tshark', ['-r', file, '-T', 'fields', '-e', 'data.data'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter(Boolean).map((hex) => Buffer.from(hex.replaceAll(':', ''), 'hex').toString('latin1').split(' ')[0]!);
}

function nameDir(node: string, namespace: string, name: string): string {
  return path.join(cluster().dir, 'nodes', node, 'captures', namespace, name);
}

/** A request to an agent's file API as the controller. */
async function agentFiles(node: string, nodeIP: string, urlPath: string): Promise<{ status: number; body: string }> {
  const cp = cluster();
  // The controller's token for this node's agent alone, as the controller requests it.
  const token = await requestToken(cp.kubeConfig(), SYSTEM_NAMESPACE, 'netwarden-controller', [agentAudience(node)]);
  const port = (await netwardenPorts(cp)).agentFiles;
  const ca = readFileSync(await netwardenCaFile(cp));
  return new Promise((resolve, reject) => {
    const req = https.request({ host: nodeIP, port, path: urlPath, ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('capture tenancy: ownership, UIDs, quotas, the disk floor', function () {
  this.timeout(240_000);
  const processes: NetwardenProcess[] = [];
  const nets: PodNetwork[] = [];
  let web: PodNetwork;
  let db: PodNetwork;
  let stray: PodNetwork;
  let agent: NetwardenProcess;
  let controller: NetwardenProcess;
  let nodeIP = '';
  let tmpfs = '';
  let unregisterUnmount: (() => void) | undefined;

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    nodeIP = nextNodeIP();
    await createNamespace(kc, NS_A);
    await createNamespace(kc, NS_B);
    await createNode(kc, NODE, { internalIP: nodeIP });
    nets.push((web = await createPodNetwork({ name: 'ctn-web', ip: WEB_IP })));
    nets.push((db = await createPodNetwork({ name: 'ctn-db', ip: DB_IP })));
    nets.push((stray = await createPodNetwork({ name: 'ctn-stray', ip: STRAY_IP })));
    await createPod(kc, { namespace: NS_A, name: 'web', nodeName: NODE, labels: { app: 'web' }, podIP: WEB_IP });
    await createPod(kc, { namespace: NS_B, name: 'db', nodeName: NODE, labels: { app: 'db' }, podIP: DB_IP });
    // The admin's quotas: room for the 13 captures of one node in ctn-a, one capture at a time in ctn-b.
    await setQuotas(`${NS_A}: {maxConcurrentCaptures: 20}\n${NS_B}: {maxConcurrentCaptures: 1}`);
    processes.push((controller = await startController(cp, 'ctn-controller')), (agent = await startAgent(cp, NODE)));
  });

  after(async function () {
    await Promise.all(processes.map((p) => p.kill()));
    for (const n of nets) await n.destroy();
    await cluster().kubectl(['delete', 'configmap', QUOTAS, '-n', SYSTEM_NAMESPACE, '--ignore-not-found']);
    if (tmpfs) spawnSync('umount', [tmpfs], { stdio: 'ignore' });
    unregisterUnmount?.();
  });

  it('captures nothing for target IPs no pod of the namespace owns on the node, and says why in the status', async function () {
    await apply(NS_A, 'pc-owned', '  selector: app == "web"\n  filters: [{protocol: UDP}]');
    await waitFor(async () => (await entryOn(NS_A, 'pc-owned', NODE))?.state === 'WaitingForTraffic', { timeoutMs: 60_000, description: 'pc-owned capturing web' });
    // Someone who may write the status adds targets: an address no Pod has (though the node
    // routes it to a veth), and the address of a pod of another namespace, named as if it were ours.
    await applyStatus(cluster().kubeConfig(), PacketCaptureType, { namespace: NS_A, name: 'pc-owned' }, { targets: [{ pod: 'stray', node: NODE, ip: STRAY_IP }, { pod: 'db', node: NODE, ip: DB_IP }] }, 'intruder', false);

    const entry = await waitFor(async () => {
      const e = await entryOn(NS_A, 'pc-owned', NODE);
      return (e?.notCaptured ?? []).length === 2 ? e : undefined;
    }, { timeoutMs: 30_000, description: 'the agent refusing both injected targets' });
    expect([...(entry.notCaptured ?? [])].sort((a, b) => a.pod.localeCompare(b.pod))).to.deep.equal([
      { pod: 'db', ip: DB_IP, reason: 'TargetNotOwned', message: `IP ${DB_IP}: no pod ${NS_A}/db on node ${NODE}, so no pod of namespace ${NS_A} owns it here; not capturing` },
      { pod: 'stray', ip: STRAY_IP, reason: 'TargetNotOwned', message: `IP ${STRAY_IP}: no pod ${NS_A}/stray on node ${NODE}, so no pod of namespace ${NS_A} owns it here; not capturing` },
    ]);
    expect(entry.message).to.contain(`stray: IP ${STRAY_IP}: no pod ${NS_A}/stray`);
    // The real target goes on being captured.
    expect(entry.state).to.equal('WaitingForTraffic');

    await sendUdp(stray, DB_IP, 5300, 'stray', 5);
    await sendUdp(db, STRAY_IP, 5300, 'db', 5);
    await sendUdp(web, DB_IP, 5300, 'web', 3);
    const after = await waitFor(async () => {
      const e = await entryOn(NS_A, 'pc-owned', NODE);
      return (e?.packets ?? 0) >= 3 ? e : undefined;
    }, { timeoutMs: 30_000, description: "web's packets counted" });
    expect(after.fileNames).to.deep.equal([`web_${web.hostInterface}_00001.pcap`]);
    const uid = (await get(NS_A, 'pc-owned')).metadata.uid!;
    expect(readdirSync(path.join(nameDir(NODE, NS_A, 'pc-owned'), uid))).to.deep.equal([`web_${web.hostInterface}_00001.pcap`]);
    await new Promise((r) => setTimeout(r, 1500)); // the agent flushes every second
    expect(markers(path.join(nameDir(NODE, NS_A, 'pc-owned'), uid, after.fileNames![0]!))).to.deep.equal(['web-0', 'web-1', 'web-2']);

    const verified = await waitFor(async () => {
      const c = condition(await get(NS_A, 'pc-owned'), 'TargetsVerified');
      return c?.status === 'False' ? c : undefined;
    }, { timeoutMs: 30_000, description: 'TargetsVerified=False' });
    expect(verified.reason).to.equal('TargetNotOwned');
    expect(verified.message).to.contain(`node ${NODE}: pod stray: IP ${STRAY_IP}: no pod ${NS_A}/stray`);
    expect(verified.message).to.contain(`node ${NODE}: pod db: IP ${DB_IP}`);
    const logged = agent.logs().filter((l) => l.message === 'refusing a target: its IP is not owned by a running pod of the namespace on this node' && l.key === `${NS_A}/pc-owned`);
    expect(logged.map((l) => l.pod).sort()).to.deep.equal(['db', 'stray']);
  });

  it('a new capture with the name of an older one never sees its files, which are removed', async function () {
    const cp = cluster();
    await apply(NS_A, 'pc-reuse', '  selector: app == "web"\n  filters: [{protocol: UDP, ports: [5301]}]');
    await waitFor(async () => (await entryOn(NS_A, 'pc-reuse', NODE))?.state === 'WaitingForTraffic', { timeoutMs: 60_000, description: 'pc-reuse capturing' });
    await sendUdp(web, DB_IP, 5301, 'old', 4);
    await waitFor(async () => ((await entryOn(NS_A, 'pc-reuse', NODE))?.packets ?? 0) >= 4, { timeoutMs: 30_000, description: 'the old capture counting its packets' });
    const oldUid = (await get(NS_A, 'pc-reuse')).metadata.uid!;
    const oldDir = path.join(nameDir(NODE, NS_A, 'pc-reuse'), oldUid);

    // The agent is down while the capture is deleted (its finalizer removed by hand): the files stay.
    await agent.kill('SIGKILL');
    await mustKubectl(cp, ['delete', 'packetcapture', 'pc-reuse', '-n', NS_A, '--wait=false']);
    await mustKubectl(cp, ['patch', 'packetcapture', 'pc-reuse', '-n', NS_A, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
    await waitFor(async () => (await cp.kubectl(['get', 'packetcapture', 'pc-reuse', '-n', NS_A])).code !== 0, { description: 'pc-reuse gone' });
    expect(readdirSync(oldDir)).to.deep.equal([`web_${web.hostInterface}_00001.pcap`]);
    // And a file of the layout before UIDs, with the very name the new capture writes first.
    writeFileSync(path.join(nameDir(NODE, NS_A, 'pc-reuse'), `web_${web.hostInterface}_00001.pcap`), 'left over');

    await apply(NS_A, 'pc-reuse', '  selector: app == "web"\n  filters: [{protocol: UDP, ports: [5301]}]');
    const newUid = (await get(NS_A, 'pc-reuse')).metadata.uid!;
    expect(newUid).to.not.equal(oldUid);
    processes.push((agent = await startAgent(cp, NODE)));
    await waitFor(async () => (await entryOn(NS_A, 'pc-reuse', NODE))?.state === 'WaitingForTraffic', { timeoutMs: 60_000, description: 'the new pc-reuse capturing' });
    await sendUdp(web, DB_IP, 5301, 'new', 2);
    const entry = await waitFor(async () => {
      const e = await entryOn(NS_A, 'pc-reuse', NODE);
      return (e?.packets ?? 0) >= 2 ? e : undefined;
    }, { timeoutMs: 30_000, description: 'the new capture counting its packets' });
    // Its own directory, its own first file: not the old capture's continued.
    expect(entry.directory).to.equal(path.join(nameDir(NODE, NS_A, 'pc-reuse'), newUid));
    expect(entry.fileNames).to.deep.equal([`web_${web.hostInterface}_00001.pcap`]);
    expect(readdirSync(nameDir(NODE, NS_A, 'pc-reuse'))).to.deep.equal([newUid]);
    expect(existsSync(oldDir)).to.equal(false);
    await new Promise((r) => setTimeout(r, 1500));
    expect(markers(path.join(entry.directory!, entry.fileNames![0]!))).to.deep.equal(['new-0', 'new-1']);
    // The file API serves the new capture, and nothing under the old one's UID.
    const listing = await agentFiles(NODE, nodeIP, `/captures/${NS_A}/pc-reuse/files?uid=${newUid}`);
    expect(listing.status).to.equal(200);
    expect((JSON.parse(listing.body) as { files: Array<{ fileName: string }> }).files.map((f) => f.fileName)).to.deep.equal([`web_${web.hostInterface}_00001.pcap`]);
    const old = await agentFiles(NODE, nodeIP, `/captures/${NS_A}/pc-reuse/files/web_${web.hostInterface}_00001.pcap?uid=${oldUid}`);
    expect(old.status).to.equal(404);
  });

  it('holds the 13th pod capture on a node at the default ceiling of 12 back (QuotaExceeded), and starts it when one is deleted', async function () {
    const cp = cluster();
    const kc = cp.kubeConfig();
    await createNode(kc, QUOTA_NODE, { internalIP: nextNodeIP() });
    const q = await createPodNetwork({ name: 'ctn-q', ip: Q_IP });
    nets.push(q);
    await createPod(kc, { namespace: NS_A, name: 'q', nodeName: QUOTA_NODE, labels: { app: 'q' }, podIP: Q_IP });
    const quotaAgent = await startAgent(cp, QUOTA_NODE); // the agent's defaults: --capture-max-concurrent=12
    processes.push(quotaAgent);
    const names = Array.from({ length: 13 }, (_, i) => `pc-q-${String(i + 1).padStart(2, '0')}`);
    const spec = '  selector: app == "q"\n  filters: [{protocol: UDP, ports: [5400]}]';
    for (const name of names.slice(0, 12)) await apply(NS_A, name, spec);
    await waitFor(async () => {
      const states = await Promise.all(names.slice(0, 12).map((n) => entryOn(NS_A, n, QUOTA_NODE)));
      return states.every((e) => e?.state === 'WaitingForTraffic');
    }, { timeoutMs: 90_000, description: 'twelve pod captures running' });

    await apply(NS_A, names[12]!, spec);
    const held = await waitFor(async () => {
      const c = await get(NS_A, names[12]!);
      const ready = condition(c, 'Ready');
      return ready?.status === 'False' && ready.reason === 'QuotaExceeded' ? c : undefined;
    }, { timeoutMs: 30_000, description: 'the 13th capture QuotaExceeded' });
    expect(condition(held, 'Ready')!.message).to.equal(`node ${QUOTA_NODE}: pod q: node limit: 12 concurrent pod captures (--capture-max-concurrent); 12 running`);
    expect(held.status?.phase).to.equal('Queued');
    const entry = held.status?.files?.find((f) => f.node === QUOTA_NODE);
    expect(entry?.state).to.equal('Scheduled');
    expect(entry?.notCaptured?.map((n) => [n.pod, n.reason])).to.deep.equal([['q', 'QuotaExceeded']]);
    // What NetwardenCaptureNodeQuotaHit counts: one pod capture held back, once.
    expect((await getLocal(quotaAgent.metricsPort, '/metrics')).body).to.match(/^netwarden_capture_node_quota_held_total 1$/m);
    // Held, so it captures nothing of what the others do.
    await sendUdp(q, DB_IP, 5400, 'early', 3);
    await waitFor(async () => ((await entryOn(NS_A, names[0]!, QUOTA_NODE))?.packets ?? 0) >= 3, { timeoutMs: 30_000, description: 'the first capture counting' });
    expect((await entryOn(NS_A, names[12]!, QUOTA_NODE))?.packets ?? 0).to.equal(0);

    await mustKubectl(cp, ['delete', 'packetcapture', names[4]!, '-n', NS_A, '--timeout=60s']);
    const started = await waitFor(async () => {
      const c = await get(NS_A, names[12]!);
      const e = c.status?.files?.find((f) => f.node === QUOTA_NODE);
      return e?.state === 'WaitingForTraffic' && condition(c, 'Ready')?.status === 'True' ? c : undefined;
    }, { timeoutMs: 60_000, description: 'the 13th capture started once a slot freed' });
    expect(started.status?.phase).to.equal('WaitingForTraffic');
    expect(started.status?.files?.find((f) => f.node === QUOTA_NODE)?.notCaptured).to.equal(undefined);
    await sendUdp(q, DB_IP, 5400, 'late', 3);
    await waitFor(async () => ((await entryOn(NS_A, names[12]!, QUOTA_NODE))?.packets ?? 0) >= 3, { timeoutMs: 30_000, description: 'the 13th capture counting packets' });
    await mustKubectl(cp, ['delete', 'packetcapture', '-n', NS_A, ...names.filter((n) => n !== names[4]), '--timeout=90s']);
  });

  it("holds a capture back by the namespace quota of the admin's ConfigMap, which tenants cannot change, and starts it when room frees", async function () {
    const cp = cluster();
    await apply(NS_B, 'pc-b1', '  selector: app == "db"\n  filters: [{protocol: UDP, ports: [5500]}]');
    await waitFor(async () => (await entryOn(NS_B, 'pc-b1', NODE))?.state === 'WaitingForTraffic', { timeoutMs: 60_000, description: 'pc-b1 capturing' });
    await apply(NS_B, 'pc-b2', '  selector: app == "db"\n  filters: [{protocol: UDP, ports: [5500]}]');
    const held = await waitFor(async () => {
      const c = await get(NS_B, 'pc-b2');
      return condition(c, 'Ready')?.reason === 'QuotaExceeded' ? c : undefined;
    }, { timeoutMs: 30_000, description: 'pc-b2 QuotaExceeded' });
    const source = `ConfigMap ${SYSTEM_NAMESPACE}/${QUOTAS}, namespaces.${NS_B}`;
    expect(condition(held, 'Ready')).to.include({ status: 'False', message: `namespace quota: 1 concurrent captures (${source}); namespace ${NS_B} runs 1 (pc-b1)` });
    expect(condition(held, 'QuotaReserved')).to.include({ status: 'False', reason: 'QuotaExceeded' });
    expect(held.status?.phase).to.equal('Queued');
    expect(held.status?.targets).to.deep.equal([]);
    expect(held.status?.files ?? []).to.deep.equal([]);

    // The namespace's own admin may not raise it.
    await createServiceAccount(cp.kubeConfig(), NS_B, 'owner');
    await mustKubectl(cp, ['create', 'rolebinding', 'owner-admin', '-n', NS_B, '--clusterrole=admin', `--serviceaccount=${NS_B}:owner`]);
    const owner = await kubeconfigForToken(cp, await requestToken(cp.kubeConfig(), NS_B, 'owner'), path.join(cp.dir, 'kubeconfig-ctn-b-owner'));
    const raise = await cp.kubectl(['patch', 'configmap', QUOTAS, '-n', SYSTEM_NAMESPACE, '--type=merge', '-p', JSON.stringify({ data: { namespaces: `${NS_B}: {maxConcurrentCaptures: 9}` } })], { kubeconfig: owner });
    expect(raise.code).to.not.equal(0);
    expect(raise.stderr).to.match(/forbidden/i);

    // What NetwardenCaptureNamespaceQuotaHit counts: one capture of the namespace queued, not each recheck.
    expect(await metricValue(controller.metricsPort, 'netwarden_capture_namespace_quota_exceeded_total', { namespace: NS_B })).to.equal(1);
    await mustKubectl(cp, ['delete', 'packetcapture', 'pc-b1', '-n', NS_B, '--timeout=60s']);
    await waitFor(async () => (await entryOn(NS_B, 'pc-b2', NODE))?.state === 'WaitingForTraffic', { timeoutMs: 60_000, description: 'pc-b2 started by itself' });
    const admitted = await get(NS_B, 'pc-b2');
    expect(condition(admitted, 'Ready')?.status).to.equal('True');
    expect(condition(admitted, 'QuotaReserved')?.status).to.equal('True');
    await sendUdp(db, WEB_IP, 5500, 'b2', 5, 200);
    await waitFor(async () => ((await entryOn(NS_B, 'pc-b2', NODE))?.packets ?? 0) >= 5, { timeoutMs: 30_000, description: 'pc-b2 counting packets' });

    // Bytes: once the namespace's files reach its byte quota, the running capture is held too.
    await waitFor(async () => ((await entryOn(NS_B, 'pc-b2', NODE))?.bytes ?? 0) > 1000, { timeoutMs: 30_000, description: 'pc-b2 bytes reported' });
    await setQuotas(`${NS_A}: {maxConcurrentCaptures: 20}\n${NS_B}: {maxConcurrentCaptures: 1, maxBytes: 1000}`);
    const full = await waitFor(async () => {
      const c = await get(NS_B, 'pc-b2');
      return c.status?.phase === 'Queued' ? c : undefined;
    }, { timeoutMs: 30_000, description: 'pc-b2 held at the byte quota' });
    expect(condition(full, 'Ready')?.message).to.match(new RegExp(`^namespace quota: 1000 bytes of capture files \\(${source.replaceAll('/', '\\/').replaceAll('.', '\\.')}\\); namespace ${NS_B} holds \\d+: delete captures or their files to make room$`));
    const stopped = await waitFor(async () => {
      const e = await entryOn(NS_B, 'pc-b2', NODE);
      return e?.state === 'Finished' ? e : undefined;
    }, { timeoutMs: 30_000, description: 'the agent stopping pc-b2' });
    await sendUdp(db, WEB_IP, 5500, 'over', 5, 200);
    await new Promise((r) => setTimeout(r, 2500));
    expect((await entryOn(NS_B, 'pc-b2', NODE))?.bytes).to.equal(stopped.bytes);
  });

  it('stops writing at the disk floor (15% free on a 4 MiB tmpfs) and says so, while a capture rotating within maxFiles goes on', async function () {
    const cp = cluster();
    const kc = cp.kubeConfig();
    tmpfs = path.join(cp.dir, 'nodes', DISK_NODE);
    mkdirSync(tmpfs, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', tmpfs]);
    unregisterUnmount = registerExitCleanup(() => spawnSync('umount', ['-l', tmpfs], { stdio: 'ignore' }));
    await createNode(kc, DISK_NODE, { internalIP: nextNodeIP() });
    const disk = await createPodNetwork({ name: 'ctn-disk', ip: DISK_IP });
    nets.push(disk);
    await createPod(kc, { namespace: NS_A, name: 'disk', nodeName: DISK_NODE, labels: { app: 'disk' }, podIP: DISK_IP });
    processes.push(await startAgent(cp, DISK_NODE)); // the default floor: --capture-min-free-disk=15%
    const spec = (maxFiles: number) => `  selector: app == "disk"\n  filters: [{protocol: UDP, ports: [5600]}]\n  fileSizeBytes: 65536\n  maxFiles: ${maxFiles}`;
    await apply(NS_A, 'pc-disk-rotate', spec(2));
    await apply(NS_A, 'pc-disk-fill', spec(100));
    for (const name of ['pc-disk-rotate', 'pc-disk-fill']) await waitFor(async () => (await entryOn(NS_A, name, DISK_NODE))?.state === 'WaitingForTraffic', { timeoutMs: 60_000, description: `${name} capturing` });

    // Until the tmpfs is full: about 4 MB of datagrams, more where libpcap's ring loses some.
    const stopped = await sendUdpUntil(disk, DB_IP, 5600, 'fill', 1000, async () => {
      const e = await entryOn(NS_A, 'pc-disk-fill', DISK_NODE);
      return e?.state === 'Error' ? e : undefined;
    }, { description: 'pc-disk-fill stopped at the floor' });
    expect(stopped.message).to.match(/^disk: stopped writing: free disk \d+ bytes \(\d+ more promised to files being written\) would fall below the agent's floor of \d+ bytes \(15% of the filesystem, --capture-min-free-disk\) with another 65536-byte file/);
    expect((stopped.fileNames ?? []).length).to.be.greaterThan(10);
    const fs = statfsSync(tmpfs);
    expect(fs.bavail / fs.blocks, 'free share of the state directory').to.be.at.least(0.15);

    // The rotating capture deletes its oldest file before each new one: the floor never stops it.
    // Its entry says Capturing at its next status write (every 2 s at most).
    const before = await waitFor(async () => {
      const e = await entryOn(NS_A, 'pc-disk-rotate', DISK_NODE);
      return e?.state === 'Capturing' ? e : undefined;
    }, { timeoutMs: 30_000, description: 'pc-disk-rotate capturing the flood' });
    await sendUdp(disk, DB_IP, 5600, 'more', 300, 1000);
    const rotating = await waitFor(async () => {
      const e = await entryOn(NS_A, 'pc-disk-rotate', DISK_NODE);
      return (e?.packets ?? 0) >= (before.packets ?? 0) + 200 ? e : undefined;
    }, { timeoutMs: 30_000, description: 'pc-disk-rotate still counting' });
    expect(rotating.state).to.equal('Capturing');
    expect(rotating.fileNames?.length).to.be.at.most(2);
    const after = statfsSync(tmpfs);
    expect(after.bavail / after.blocks).to.be.at.least(0.15);
    expect((await entryOn(NS_A, 'pc-disk-fill', DISK_NODE))?.fileNames).to.deep.equal(stopped.fileNames);
  });
});
