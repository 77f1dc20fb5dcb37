// The node's byte quota (--capture-max-bytes) and disk floor (--capture-min-free-disk) against the
// real control plane, with real packets on real veths: once the capture files on a node reach the
// agent's ceiling, a running capture stops writing and a new one does not start; both say why in
// their conditions (Ready=False, QuotaExceeded, naming the limit) and go on by themselves once
// another capture's files go. The floor, given in bytes, on a 4 MiB tmpfs state directory, stops
// writing with the cause in the node entry and lets the capture go on once room frees.
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, statfsSync, statSync } from 'node:fs';
import path from 'node:path';
import { cluster } from './hooks.js';
import { registerExitCleanup } from '../env/controlplane.js';
import { applyCapture, condition, entryOn, getCapture, sendUdp, sendUdpUntil } from '../env/captures.js';
import { createNamespace, createNode, createPod, waitFor } from '../env/fixtures.js';
import { ensureInstalled, mustKubectl, nextNodeIP, startAgent, startController, type NetwardenProcess } from '../env/netwarden.js';
import { createPodNetwork, type PodNetwork } from '../env/podnet.js';
import type { PacketCapture } from '../../src/apis/packetcapture.js';

const NS = 'cnb';
const NODE = 'cnb-node';
const DISK_NODE = 'cnb-disk';
const SRC_IP = '10.244.215.10';
const DST_IP = '10.244.215.11';
const DISK_IP = '10.244.215.20';
const DISK_DST_IP = '10.244.215.21';
/** The node's ceiling: five 64 KiB files. */
const MAX_BYTES = 320 * 1024;
const FILE = 65536;
/** Datagrams of 1000 bytes: 1058-byte pcap records, 61 to a 64 KiB file. */
const SIZE = 1000;

/** What the capture files on the node's disk take, every capture's together. */
function bytesOnDisk(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += statSync(path.join(entry.parentPath, entry.name)).size;
  }
  return total;
}

function spec(port: number, extra = '', app = 'src'): string {
  return `  selector: app == "${app}"\n  filters: [{protocol: UDP, ports: [${port}]}]\n  fileSizeBytes: ${FILE}\n  maxFiles: 100${extra}`;
}

/** The capture once its Ready condition says a node quota holds it. */
async function heldByQuota(name: string): Promise<PacketCapture> {
  return waitFor(async () => {
    const c = await getCapture(cluster(), NS, name);
    const ready = condition(c, 'Ready');
    return ready?.status === 'False' && ready.reason === 'QuotaExceeded' ? c : undefined;
  }, { timeoutMs: 60_000, description: `${name} Ready=False QuotaExceeded` });
}

/** Ready=False with the node's limit named: the ceiling in bytes and the flag that sets it. */
function expectNodeLimitNamed(c: PacketCapture): void {
  const message = condition(c, 'Ready')!.message;
  expect(message).to.match(new RegExp(`^node ${NODE}: pod src: node limit: ${MAX_BYTES} bytes of capture files \\(--capture-max-bytes\\); \\d+ in use or being written, another file needs ${FILE}$`));
  expect(c.status?.phase).to.equal('Queued');
  const entry = c.status?.files?.find((f) => f.node === NODE);
  expect(entry?.state).to.equal('Scheduled');
  expect(entry?.notCaptured?.map((n) => [n.pod, n.reason])).to.deep.equal([['src', 'QuotaExceeded']]);
}

describe("the node's byte quota (--capture-max-bytes)", function () {
  this.timeout(300_000);
  const processes: NetwardenProcess[] = [];
  const nets: PodNetwork[] = [];
  let src: PodNetwork;
  let capturesDir = '';

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNamespace(kc, NS);
    await createNode(kc, NODE, { internalIP: nextNodeIP() });
    nets.push((src = await createPodNetwork({ name: 'cnb-src', ip: SRC_IP })));
    nets.push(await createPodNetwork({ name: 'cnb-dst', ip: DST_IP }));
    await createPod(kc, { namespace: NS, name: 'src', nodeName: NODE, labels: { app: 'src' }, podIP: SRC_IP });
    await createPod(kc, { namespace: NS, name: 'dst', nodeName: NODE, labels: { app: 'dst' }, podIP: DST_IP });
    capturesDir = path.join(cp.dir, 'nodes', NODE, 'captures');
    // Without eviction: pc-keep (finished) holds its place until it is deleted.
    processes.push(await startController(cp, 'cnb-controller'), await startAgent(cp, NODE, [`--capture-max-bytes=${MAX_BYTES / 1024}Ki`, '--no-capture-evict-finished']));
  });

  after(async function () {
    await Promise.all(processes.map((p) => p.kill()));
    for (const n of nets) await n.destroy();
  });

  it('stops writing and holds new captures at the ceiling, saying so in Ready, and resumes both when another capture is deleted', async function () {
    const cp = cluster();
    const entry = (name: string) => entryOn(cp, NS, name, NODE);
    // pc-keep: three files' worth, then done (maxBytesPerPod); its files stay until it is deleted.
    await applyCapture(cp, NS, 'pc-keep', spec(5801, `\n  maxBytesPerPod: ${3 * FILE}`));
    await waitFor(async () => (await entry('pc-keep'))?.state === 'WaitingForTraffic', { timeoutMs: 60_000, description: 'pc-keep capturing' });
    await sendUdp(src, DST_IP, 5801, 'keep', 250, SIZE);
    const kept = await waitFor(async () => {
      const e = await entry('pc-keep');
      return e?.state === 'Finished' ? e : undefined;
    }, { timeoutMs: 60_000, description: 'pc-keep finished at its maxBytesPerPod' });
    expect(kept.bytes).to.be.greaterThan(2 * FILE);

    // pc-fill: more than the room left; it writes until the next file would pass the ceiling.
    await applyCapture(cp, NS, 'pc-fill', spec(5800));
    await waitFor(async () => (await entry('pc-fill'))?.state === 'WaitingForTraffic', { timeoutMs: 60_000, description: 'pc-fill capturing' });
    await sendUdp(src, DST_IP, 5800, 'fill', 300, SIZE);
    expectNodeLimitNamed(await heldByQuota('pc-fill'));
    const full = (await entry('pc-fill'))!;
    expect(full.packets, 'pc-fill wrote some before the ceiling').to.be.greaterThan(0);
    expect(bytesOnDisk(capturesDir), 'capture bytes on the node').to.be.at.most(MAX_BYTES);

    // Held: more traffic for it writes nothing.
    await sendUdp(src, DST_IP, 5800, 'held', 100, SIZE);
    await new Promise((r) => setTimeout(r, 2500)); // the agent flushes every second, reports every two
    expect((await entry('pc-fill'))?.bytes).to.equal(full.bytes);
    expect(bytesOnDisk(capturesDir)).to.be.at.most(MAX_BYTES);

    // A new capture does not start while the node is full.
    await applyCapture(cp, NS, 'pc-late', spec(5802));
    expectNodeLimitNamed(await heldByQuota('pc-late'));
    await sendUdp(src, DST_IP, 5802, 'early', 10, SIZE);
    await new Promise((r) => setTimeout(r, 2500));
    expect((await entry('pc-late'))?.packets ?? 0).to.equal(0);

    // Room frees: pc-keep and its files go; both held captures go on by themselves.
    await mustKubectl(cp, ['delete', 'packetcapture', 'pc-keep', '-n', NS, '--timeout=60s']);
    for (const name of ['pc-fill', 'pc-late']) {
      await waitFor(async () => {
        const c = await getCapture(cp, NS, name);
        const e = c.status?.files?.find((f) => f.node === NODE);
        return condition(c, 'Ready')?.status === 'True' && (e?.state === 'WaitingForTraffic' || e?.state === 'Capturing') && !e.notCaptured;
      }, { timeoutMs: 60_000, description: `${name} going on once pc-keep was deleted` });
    }
    await sendUdp(src, DST_IP, 5800, 'more', 20, SIZE);
    await sendUdp(src, DST_IP, 5802, 'late', 20, SIZE);
    await waitFor(async () => ((await entry('pc-fill'))?.bytes ?? 0) > (full.bytes ?? 0), { timeoutMs: 30_000, description: 'pc-fill writing again' });
    await waitFor(async () => ((await entry('pc-late'))?.packets ?? 0) >= 20, { timeoutMs: 30_000, description: 'pc-late counting its packets' });
    expect(bytesOnDisk(capturesDir)).to.be.at.most(MAX_BYTES);
    await mustKubectl(cp, ['delete', 'packetcapture', 'pc-fill', 'pc-late', '-n', NS, '--timeout=60s']);
  });
});

describe("the node's disk floor (--capture-min-free-disk in bytes)", function () {
  this.timeout(300_000);
  const processes: NetwardenProcess[] = [];
  const nets: PodNetwork[] = [];
  let disk: PodNetwork;
  let tmpfs = '';
  let unregisterUnmount: (() => void) | undefined;
  /** Free space the agent keeps on its state directory: half of the 4 MiB tmpfs. */
  const FLOOR = 2 * 1024 * 1024;

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNamespace(kc, NS).catch(() => undefined); // the quota suite may have made it
    tmpfs = path.join(cp.dir, 'nodes', DISK_NODE);
    mkdirSync(tmpfs, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', tmpfs]);
    unregisterUnmount = registerExitCleanup(() => spawnSync('umount', ['-l', tmpfs], { stdio: 'ignore' }));
    await createNode(kc, DISK_NODE, { internalIP: nextNodeIP() });
    nets.push((disk = await createPodNetwork({ name: 'cnb-disk', ip: DISK_IP })));
    nets.push(await createPodNetwork({ name: 'cnb-ddst', ip: DISK_DST_IP }));
    await createPod(kc, { namespace: NS, name: 'disk', nodeName: DISK_NODE, labels: { app: 'disk' }, podIP: DISK_IP });
    processes.push(await startController(cp, 'cnb-disk-controller'), await startAgent(cp, DISK_NODE, ['--capture-min-free-disk=2Mi']));
  });

  after(async function () {
    await Promise.all(processes.map((p) => p.kill()));
    for (const n of nets) await n.destroy();
    if (tmpfs) spawnSync('umount', [tmpfs], { stdio: 'ignore' });
    unregisterUnmount?.();
  });

  it('stops writing before free disk falls below the floor, says so, and goes on once another capture is deleted', async function () {
    const cp = cluster();
    const entry = (name: string) => entryOn(cp, NS, name, DISK_NODE);
    const free = () => {
      const s = statfsSync(tmpfs);
      return s.bavail * s.bsize;
    };
    // pc-dkeep: 1 MiB of files, then done; they stay until it is deleted.
    await applyCapture(cp, NS, 'pc-dkeep', spec(5811, `\n  maxBytesPerPod: ${16 * FILE}`, 'disk'));
    await waitFor(async () => (await entry('pc-dkeep'))?.state === 'WaitingForTraffic', { timeoutMs: 60_000, description: 'pc-dkeep capturing' });
    await sendUdpUntil(disk, DISK_DST_IP, 5811, 'keep', SIZE, async () => ((await entry('pc-dkeep'))?.state === 'Finished' ? true : undefined), { description: 'pc-dkeep finished at its maxBytesPerPod' });

    await applyCapture(cp, NS, 'pc-dfill', spec(5810, '', 'disk'));
    await waitFor(async () => (await entry('pc-dfill'))?.state === 'WaitingForTraffic', { timeoutMs: 60_000, description: 'pc-dfill capturing' });
    const stopped = await sendUdpUntil(disk, DISK_DST_IP, 5810, 'fill', SIZE, async () => {
      const e = await entry('pc-dfill');
      return e?.state === 'Error' ? e : undefined;
    }, { description: 'pc-dfill stopped at the floor' });
    expect(stopped.message).to.match(new RegExp(`^disk: stopped writing: free disk \\d+ bytes \\(\\d+ more promised to files being written\\) would fall below the agent's floor of ${FLOOR} bytes \\(${FLOOR} bytes, --capture-min-free-disk\\) with another ${FILE}-byte file`));
    expect(free(), 'free bytes on the state directory').to.be.at.least(FLOOR);

    // Still stopped a moment later, whatever arrives for it.
    await sendUdp(disk, DISK_DST_IP, 5810, 'held', 100, SIZE);
    await new Promise((r) => setTimeout(r, 2500));
    expect((await entry('pc-dfill'))?.bytes).to.equal(stopped.bytes);

    await mustKubectl(cp, ['delete', 'packetcapture', 'pc-dkeep', '-n', NS, '--timeout=60s']);
    const resumed = await waitFor(async () => {
      const e = await entry('pc-dfill');
      return e?.state === 'Capturing' || e?.state === 'WaitingForTraffic' ? e : undefined;
    }, { timeoutMs: 60_000, description: 'pc-dfill going on once pc-dkeep was deleted' });
    expect(resumed.message ?? '').to.not.contain('--capture-min-free-disk');
    await sendUdp(disk, DISK_DST_IP, 5810, 'more', 50, SIZE);
    await waitFor(async () => ((await entry('pc-dfill'))?.bytes ?? 0) > (stopped.bytes ?? 0), { timeoutMs: 30_000, description: 'pc-dfill writing again' });
    expect(free()).to.be.at.least(FLOOR);
    await mustKubectl(cp, ['delete', 'packetcapture', 'pc-dfill', '-n', NS, '--timeout=60s']);
  });
});
