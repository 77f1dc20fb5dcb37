// The scale benchmark (issue 12): N Nodes and M realistic Pods (bench/pods.ts) in the real local
// control plane, the controller compiled and run as config/ deploys it, and S simulated nodes that
// push drops with the agent's own client and batch code (DropBatchClient, encodeDropBatch) and report
// their health with the agent's NodeReporter (one in a hundred with a failing source), each
// from its own loopback address with its own pod-bound token, as the agents of S nodes would.
// Prints, each beside its target:
//   - the controller's RSS per Pod over its floor (the floor: the same controller with the Nodes
//     and no Pods) against 0.85 KB (150,000 Pods inside the 256Mi limit);
//   - the time from the controller's start to its first sync with every Pod listed;
//   - drop-to-Event p50/p99 with the index full, from a probe of one drop a second before the flood
//     (within the Event budget, so each gets its own Event); under the flood most drops fold into
//     aggregated Events, and the wait of those that get one of their own is printed apart;
//   - the apiserver writes per second the controller and the agents made while S nodes pushed
//     drops (from the audit log), against the budget they should stay within;
//   - the largest Netwarden object (DropTail, PacketCapture, AuditForwarder) in bytes of JSON.
// Sizes: BENCH_SCALE_NODES (default 1000, also the simulated nodes unless BENCH_SCALE_SIMULATED),
// BENCH_SCALE_PODS (20000), BENCH_SCALE_SECONDS (30), BENCH_SCALE_DROPS_PER_NODE (drops per second
// per simulated node, 2). The defaults fit a 2-core machine.
import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Watch, type CoreV1Event } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../test/env/controlplane.js';
import { createNamespace, createNode, waitFor } from '../test/env/fixtures.js';
import { agentControllerToken, controllerUrl, ensureInstalled, getLocal, mustKubectl, netwardenCaFile, netwardenPorts, startController, SYSTEM_NAMESPACE, type NetwardenProcess } from '../test/env/netwarden.js';
import type { AggregatedDrop } from '../src/apis/drops.js';
import { encodeDropBatch } from '../src/nodeagent/droptail/batchbody.js';
import { DropBatchClient } from '../src/nodeagent/droptail/client.js';
import { NodeReporter } from '../src/nodeagent/report.js';
import { reportPath, type DropTailNodeReport } from '../src/apis/nodereport.js';
import type { DropTail } from '../src/apis/droptail.js';
import { FileTrustBundle } from '../src/runtime/tls.js';
import { useCompiledCli } from './build.js';
import { procStatusMB } from './memory.js';
import { applyRealisticPods, benchPodIP, type PodSet } from './pods.js';
import type { BenchResult, BenchRow } from './types.js';

export interface ScaleOptions {
  nodes?: number;
  pods?: number;
  simulated?: number;
  seconds?: number;
  dropsPerNode?: number;
}

const NS = 'bench-scale';
const DROPTAIL = 'bench-scale';
/** 150,000 Pods in 256 MiB over a ~127 MB floor. */
const TARGET_KB_PER_POD = 0.85;
/** The default Event budget (--event-qps, --event-burst) plus status writes: what Netwarden may write per second whatever S. */
const TARGET_WRITES_PER_SECOND = 20;
/** A tenth of etcd's request limit (1.5 MiB): room for the object to be read and watched cheaply. */
const TARGET_LARGEST_OBJECT_BYTES = 150 * 1024;
const TARGET_EVENT_P99_MS = 1000;
const TARGET_SYNC_SECONDS = 60;
/** Drops of the latency probe, one a second. */
const PROBE_DROPS = 30;

/** Creates the apiserver answers without storing anything. */
const REVIEWS = new Set(['tokenreviews', 'subjectaccessreviews', 'localsubjectaccessreviews', 'selfsubjectaccessreviews']);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs `work` for 0..n-1, `concurrency` at a time. */
async function forEachConcurrently(n: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, async () => {
    for (let i = next++; i < n; i = next++) await work(i);
  }));
}

/** Simulated node k's address in 127.1.0.0/16 (hosts .1-.250 of each /24), one per node, never a test pod's or the control plane's. */
const nodeAddress = (k: number): string => `127.1.${Math.floor(k / 250) % 256}.${(k % 250) + 1}`;
const nodeName = (k: number): string => `scale-node-${k}`;
/** One simulated node in a hundred reports a failing source. */
const unhealthy = (k: number): boolean => k % 100 === 7;
/** A distinct destination per drop: 198.18.0.0/15 (benchmarking range), never a cluster address. */
const destination = (i: number): string => `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}`;

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function startReady(cp: ControlPlane, name: string): Promise<{ controller: NetwardenProcess; syncSeconds: number }> {
  const started = performance.now();
  const controller = await startController(cp, name);
  await waitFor(async () => (await getLocal(controller.metricsPort, '/readyz').catch(() => ({ status: 0 }))).status === 200, { timeoutMs: 600_000, intervalMs: 200, description: `${name} ready (informers synced)` });
  return { controller, syncSeconds: (performance.now() - started) / 1000 };
}

async function settledRss(controller: NetwardenProcess): Promise<number> {
  await sleep(10_000);
  return procStatusMB(controller.child.pid!, 'VmRSS');
}

/** Writes (create, update, patch, delete) by Netwarden's ServiceAccounts in the audit log from byte `offset` on, by resource. */
async function netwardenWrites(cp: ControlPlane, offset: number): Promise<Map<string, number>> {
  const writes = new Map<string, number>();
  const lines = createInterface({ input: createReadStream(cp.auditLogPath, { start: offset }) });
  for await (const line of lines) {
    if (!line.includes(`system:serviceaccount:${SYSTEM_NAMESPACE}:`)) continue;
    const event = JSON.parse(line) as { verb?: string; stage?: string; user?: { username?: string }; objectRef?: { resource?: string; subresource?: string } };
    if (event.stage !== 'ResponseComplete' || !event.user?.username?.startsWith(`system:serviceaccount:${SYSTEM_NAMESPACE}:`)) continue;
    if (!['create', 'update', 'patch', 'delete'].includes(event.verb ?? '')) continue;
    const resource = `${event.objectRef?.resource ?? '?'}${event.objectRef?.subresource ? `/${event.objectRef.subresource}` : ''}`;
    writes.set(resource, (writes.get(resource) ?? 0) + 1);
  }
  return writes;
}

/** The JSON size of the largest DropTail, PacketCapture or AuditForwarder. */
async function largestNetwardenObject(cp: ControlPlane): Promise<{ bytes: number; name: string }> {
  const out = await mustKubectl(cp, ['get', 'droptails,packetcaptures,auditforwarders', '-A', '-o', 'json']);
  const items = (JSON.parse(out) as { items: Array<{ kind: string; metadata: { name: string } }> }).items;
  let largest = { bytes: 0, name: '(none)' };
  for (const item of items) {
    const bytes = Buffer.byteLength(JSON.stringify(item));
    if (bytes > largest.bytes) largest = { bytes, name: `${item.kind}/${item.metadata.name}` };
  }
  return largest;
}

interface SimulatedNode {
  name: string;
  client: DropBatchClient;
  /** The agent's node reporter for the DropTail: health and drops seen, a heartbeat every 30 s. */
  reporter: NodeReporter<DropTailNodeReport>;
  dropsSeen: number;
  /** IPs of Pods on this node: the senders of its drops. */
  podIPs: string[];
  sequence: number;
}

/** S simulated nodes: a Node each (its InternalIP its loopback address), an agent Pod and that Pod's token for the controller. */
async function simulateNodes(cp: ControlPlane, count: number, set: PodSet, pods: number, controller: string, caFile: string): Promise<SimulatedNode[]> {
  const trust = new FileTrustBundle(caFile);
  const nodes: SimulatedNode[] = [];
  await forEachConcurrently(count, 16, async (k) => {
    const token = await agentControllerToken(cp, nodeName(k));
    const podIPs: string[] = [];
    for (let i = k; i < pods; i += set.nodes.length) podIPs.push(benchPodIP(i));
    const client = (path: string) => new DropBatchClient({ url: `${controller}${path}`, trust, token: async () => token, localAddress: nodeAddress(k) });
    const node: SimulatedNode = {
      name: nodeName(k), client: client(`/droptail/${DROPTAIL}/drops`), podIPs, sequence: 0, dropsSeen: 0,
      reporter: new NodeReporter<DropTailNodeReport>({
        name: DROPTAIL, component: 'bench-scale', poster: client(reportPath('droptail', DROPTAIL)), pollMs: 5_000,
        snapshot: () => ({ node: nodeName(k), dropsSeen: node.dropsSeen, sources: [unhealthy(k) ? { type: 'nflog', healthy: false, message: 'nflog group 100: Operation not permitted' } : { type: 'nflog', healthy: true }] }),
      }),
    };
    nodes[k] = node;
  });
  return nodes;
}

export async function benchScale(opts: ScaleOptions = {}): Promise<BenchResult> {
  const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
  const nodeCount = opts.nodes ?? env('BENCH_SCALE_NODES', 1000);
  const podCount = opts.pods ?? env('BENCH_SCALE_PODS', 20_000);
  const simulated = Math.min(nodeCount, opts.simulated ?? env('BENCH_SCALE_SIMULATED', nodeCount));
  const seconds = opts.seconds ?? env('BENCH_SCALE_SECONDS', 30);
  const dropsPerNode = opts.dropsPerNode ?? env('BENCH_SCALE_DROPS_PER_NODE', 2);
  await useCompiledCli();
  // A large audit log: the writes are counted from it, and a rotation must not lose them.
  const cp = await startControlPlane({ auditLogMaxSizeMB: 2000, auditLogMaxBackups: 1 });
  const previousLevel = process.env.NETWARDEN_CHILD_LOG_LEVEL;
  process.env.NETWARDEN_CHILD_LOG_LEVEL = 'warn';
  const rows: BenchRow[] = [];
  const say = (text: string) => process.stdout.write(`  scale: ${text}\n`);
  try {
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNamespace(kc, NS);
    const set: PodSet = { namespace: NS, nodes: Array.from({ length: nodeCount }, (_, k) => ({ name: nodeName(k), ip: nodeAddress(k) })) };
    let t = performance.now();
    await forEachConcurrently(nodeCount, 16, (k) => createNode(kc, nodeName(k), { internalIP: nodeAddress(k) }).then(() => undefined));
    say(`${nodeCount} Nodes in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    const floor = await startReady(cp, 'scale-floor');
    const floorRss = await settledRss(floor.controller);
    await floor.controller.kill();

    t = performance.now();
    await applyRealisticPods(kc, set, 0, podCount);
    say(`${podCount} Pods in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    const { controller, syncSeconds } = await startReady(cp, 'scale-controller');
    const syncedRss = await settledRss(controller);
    const kbPerPod = ((syncedRss - floorRss) * 1024) / podCount;
    rows.push(
      { metric: `controller RSS with ${nodeCount} Nodes, no Pods (compiled JS)`, value: floorRss, unit: 'MiB' },
      { metric: `controller RSS with ${podCount} Pods, synced`, value: syncedRss, unit: 'MiB' },
      { metric: 'controller RSS per Pod over that', value: kbPerPod, unit: 'KB', reference: TARGET_KB_PER_POD, ratio: kbPerPod / TARGET_KB_PER_POD },
      { metric: `time to initial sync (${podCount} Pods, ${nodeCount} Nodes)`, value: syncSeconds, unit: 's', reference: TARGET_SYNC_SECONDS, ratio: syncSeconds / TARGET_SYNC_SECONDS },
    );

    await mustKubectl(cp, ['apply', '-f', '-'], `apiVersion: netwarden.io/v1alpha1\nkind: DropTail\nmetadata: {name: ${DROPTAIL}}\nspec: {reverseDNS: false}\n`);
    await mustKubectl(cp, ['wait', '--for=condition=Ready', `droptail/${DROPTAIL}`, '--timeout=120s']);
    const url = controllerUrl(await netwardenPorts(cp)).replace(/\/+$/, '');
    t = performance.now();
    const nodes = await simulateNodes(cp, simulated, set, podCount, url, await netwardenCaFile(cp));
    for (const node of nodes) node.reporter.start();
    // Every node's token reviewed once (its first report) before the probe, as in a running
    // cluster; a probe behind 1,000 first reviews measured the review queue, not the pipeline.
    await waitFor(async () => nodes.every((node) => node.reporter.accepted > 0), { timeoutMs: 300_000, intervalMs: 500, description: 'a first report accepted from every simulated node' });
    say(`first reports of ${simulated} nodes accepted after ${((performance.now() - t) / 1000).toFixed(1)} s`);
    say(`${simulated} simulated nodes with their tokens in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    const abort = await new Watch(kc).watch(`/api/v1/namespaces/${NS}/events`, {}, (phase, obj: CoreV1Event) => {
      if (phase !== 'ADDED') return;
      const ip = /\(IP: ([0-9.]+),/.exec(obj.message ?? '')?.[1];
      const sent = ip ? sentAt.get(ip) : undefined;
      if (sent === undefined) return;
      latencies.push(performance.now() - sent);
      sentAt.delete(ip!);
    }, () => {});

    // Latency first, within the Event budget: one drop a second, each from another node's Pod to
    // a new peer, so every one gets its own Event and the figure is the pipeline's (index lookup,
    // Event write), not the wait of drops folded into aggregated Events under a flood.
    const sendOne = async (node: SimulatedNode, src: string, dst: string): Promise<string> => {
      const now = new Date().toISOString();
      const drop: AggregatedDrop = {
        drop: { time: now, timeSource: 'nflog', prefix: 'bench:', family: 'ipv4', src, dst, protocol: 'UDP', srcPort: 40000, dstPort: 53 },
        count: 1, firstSeen: now, lastSeen: now, source: 'nflog',
      };
      sentAt.set(dst, performance.now());
      const outcome = await node.client.post(encodeDropBatch({ node: node.name, sequence: ++node.sequence, sentAt: now, shedSinceLastBatch: 0 }, [Buffer.from(JSON.stringify(drop))]));
      return outcome.kind === 'refused' ? `refused ${outcome.status}` : outcome.kind;
    };
    for (let i = 0; i < PROBE_DROPS; i++) {
      const node = nodes[(i * 37) % nodes.length]!;
      await sendOne(node, node.podIPs[i % node.podIPs.length]!, `198.19.255.${i + 1}`);
      await sleep(1000);
    }
    await waitFor(async () => latencies.length >= PROBE_DROPS, { timeoutMs: 30_000, intervalMs: 200, description: 'an Event for every probe drop' }).catch(() => undefined);
    const probeLatencies = latencies.splice(0).sort((a, b) => a - b);
    sentAt.clear();

    const auditOffset = statSync(cp.auditLogPath).size;
    const outcomes = new Map<string, number>();
    let nextDrop = 0;
    let peakRss = syncedRss;
    // Where the peak is: V8's heap in use and reserved, and memory outside it, at the highest RSS seen.
    let atPeak = { rss: 0, heap: NaN, heapTotal: NaN, external: NaN, connections: NaN };
    const sampler = setInterval(() => {
      void getLocal(controller.metricsPort, '/metrics').then(({ body }) => {
        const rss = procStatusMB(controller.child.pid!, 'VmRSS');
        if (rss <= atPeak.rss) return;
        const mb = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(body)?.[1] ?? NaN) / 1024 / 1024;
        const connections = Number(/^netwarden_http_open_connections\{server="controller"\} (\S+)/m.exec(body)?.[1] ?? NaN);
        atPeak = { rss, heap: mb('nodejs_heap_size_used_bytes'), heapTotal: mb('nodejs_heap_size_total_bytes'), external: mb('nodejs_external_memory_bytes'), connections };
      }, () => undefined);
    }, 1000);
    const started = performance.now();
    // Each node sends once a second, the nodes spread over the second as real agents' timers are.
    await Promise.all(nodes.map(async (node, k) => {
      await sleep((k / nodes.length) * 1000);
      for (let round = 0; round < seconds; round++) {
        const due = started + (k / nodes.length) * 1000 + round * 1000;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        const now = new Date().toISOString();
        const drops: Buffer[] = [];
        for (let d = 0; d < dropsPerNode; d++) {
          const dst = destination(nextDrop++ % 131_072);
          const drop: AggregatedDrop = {
            drop: { time: now, timeSource: 'nflog', prefix: 'bench:', family: 'ipv4', src: node.podIPs[(round * dropsPerNode + d) % node.podIPs.length]!, dst, protocol: 'UDP', srcPort: 40000, dstPort: 53 },
            count: 1, firstSeen: now, lastSeen: now, source: 'nflog',
          };
          sentAt.set(dst, performance.now());
          drops.push(Buffer.from(JSON.stringify(drop)));
        }
        node.dropsSeen += dropsPerNode;
        const outcome = await node.client.post(encodeDropBatch({ node: node.name, sequence: ++node.sequence, sentAt: now, shedSinceLastBatch: 0 }, drops));
        const key = outcome.kind === 'refused' ? `refused ${outcome.status}` : outcome.kind;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        if (k === 0) peakRss = Math.max(peakRss, procStatusMB(controller.child.pid!, 'VmRSS'));
      }
    }));
    const driveSeconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    await sleep(5_000); // Events of the last batches
    abort.abort();
    const summary = JSON.parse(await mustKubectl(cp, ['get', 'droptail', DROPTAIL, '-o', 'json'])) as DropTail;
    await Promise.all(nodes.map((node) => node.reporter.stop()));
    const reportsAccepted = nodes.reduce((sum, node) => sum + node.reporter.accepted, 0);
    for (const node of nodes) node.client.resetConnections();
    const writes = await netwardenWrites(cp, auditOffset);
    // Reviews are creates that etcd never stores: counted apart.
    const totalWrites = [...writes].filter(([resource]) => !REVIEWS.has(resource)).reduce((sum, [, n]) => sum + n, 0);
    const writesPerSecond = totalWrites / (driveSeconds + 5);
    const largest = await largestNetwardenObject(cp);
    await controller.kill();

    const sorted = latencies.sort((a, b) => a - b);
    const p99 = percentile(probeLatencies, 99);
    const offered = simulated * dropsPerNode * seconds;
    say(`batch outcomes: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}`);
    say(`writes (and reviews) by resource: ${[...writes].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`);
    rows.push(
      { metric: `drops offered by ${simulated} simulated nodes`, value: offered / driveSeconds, unit: 'drops/s' },
      { metric: 'batches accepted', value: (outcomes.get('accepted') ?? 0) / (simulated * seconds), unit: 'share', reference: 1, ratio: (outcomes.get('accepted') ?? 0) / (simulated * seconds) },
      { metric: `drop-to-Event p50 (index full, 1 drop/s, ${probeLatencies.length} of ${PROBE_DROPS} got their Event)`, value: percentile(probeLatencies, 50), unit: 'ms' },
      { metric: 'drop-to-Event p99 (same)', value: p99, unit: 'ms', reference: TARGET_EVENT_P99_MS, ratio: p99 / TARGET_EVENT_P99_MS },
      { metric: 'flood drops that got an Event of their own (the rest within the budget fold into aggregated Events)', value: latencies.length, unit: 'drops' },
      { metric: 'flood drop-to-Event p50 (waiting for the budget)', value: percentile(sorted, 50), unit: 'ms' },
      { metric: 'controller RSS peak while the nodes pushed', value: Math.max(peakRss, atPeak.rss), unit: 'MiB' },
      { metric: 'at the sampled peak: V8 heap used / reserved / external (MiB)', value: atPeak.heap, unit: `/ ${atPeak.heapTotal.toFixed(0)} / ${atPeak.external.toFixed(0)}` },
      { metric: "at the sampled peak: connections open on the controller's HTTPS API", value: atPeak.connections, unit: 'connections' },
      { metric: 'apiserver writes by Netwarden (stored objects)', value: writesPerSecond, unit: 'writes/s', reference: TARGET_WRITES_PER_SECOND, ratio: writesPerSecond / TARGET_WRITES_PER_SECOND },
      { metric: 'nodes reporting in the DropTail summary', value: summary.status?.nodeCount ?? 0, unit: 'nodes', reference: simulated, ratio: (summary.status?.nodeCount ?? 0) / simulated },
      { metric: 'unhealthy nodes in the summary (1 in 100 simulated)', value: summary.status?.unhealthyNodes ?? 0, unit: 'nodes', reference: nodes.filter((_, k) => unhealthy(k)).length, ratio: (summary.status?.unhealthyNodes ?? 0) / Math.max(1, nodes.filter((_, k) => unhealthy(k)).length) },
      { metric: 'node reports accepted (heartbeats and changes)', value: reportsAccepted / (driveSeconds + 5), unit: 'reports/s' },
      { metric: `largest Netwarden object (${largest.name})`, value: largest.bytes, unit: 'bytes', reference: TARGET_LARGEST_OBJECT_BYTES, ratio: largest.bytes / TARGET_LARGEST_OBJECT_BYTES },
    );
    return { name: `scale (${nodeCount} Nodes, ${podCount} Pods, ${simulated} simulated nodes for ${seconds} s)`, rows };
  } finally {
    if (previousLevel === undefined) delete process.env.NETWARDEN_CHILD_LOG_LEVEL;
    else process.env.NETWARDEN_CHILD_LOG_LEVEL = previousLevel;
    await cp.stop();
  }
}

// `node --import tsx bench/scale.ts` runs it alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await benchScale();
  for (const row of result.rows) process.stdout.write(`${row.metric}: ${row.value.toFixed(2)} ${row.unit}${row.reference ? ` (target ${row.reference})` : ''}\n`);
  process.exit(0);
}
