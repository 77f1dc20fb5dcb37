// Drop-to-Event latency of the controller (DropTail) at 1,000 distinct drops per second, and the
// controller's RSS meanwhile. Starts its own control plane and the real controller process, POSTs
// drop batches as an agent does (the agent's pod-bound token for the controller, every 100 ms), each drop a new pair
// (a Pod sending to a distinct address), and watches Events: latency is from the POST of a drop's
// batch to the watch delivering its Event. Target (the issue): p99 under one second;
// kube-iptables-tailer polls its log every 5 s by default.
import { readFileSync } from 'node:fs';
import { Watch, type CoreV1Event, type KubeConfig } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../test/env/controlplane.js';
import { createNamespace, createNode, createPod, waitFor } from '../test/env/fixtures.js';
import { agentControllerToken, controllerUrl, ensureInstalled, getLocal, mustKubectl, netwardenCaFile, netwardenPorts, postDropBatch as post, startController, type NetwardenProcess } from '../test/env/netwarden.js';
import type { AggregatedDrop, DropBatch } from '../src/apis/drops.js';
import { useCompiledCli } from './build.js';
import { procStatusMB } from './memory.js';
import type { BenchResult } from './types.js';

export interface DropsLatencyOptions {
  dropsPerSecond?: number;
  seconds?: number;
  pods?: number;
}

const NS = 'bench-drops';
const NODE = 'bench-drops-node';
const DROPTAIL = 'bench-latency';
const BATCHES_PER_SECOND = 10;

const UNBUDGETED = ['--event-qps=1000000', '--event-burst=1000000', '--event-pod-qps=1000000', '--event-pod-burst=1000000'];

export interface DropTailRig {
  kc: KubeConfig;
  controller: NetwardenProcess;
  podIPs: string[];
  /** The intake of the rig's DropTail, its CA and the node agent's token for it. */
  url: string;
  ca: Buffer;
  token: string;
  batchOf(drops: AggregatedDrop[]): string;
}

/** A node with `pods` Pods, the controller (extra flags), a DropTail without reverse DNS, accepting batches. */
export async function dropTailRig(cp: ControlPlane, opts: { pods: number; controllerArgs?: string[] }): Promise<DropTailRig> {
  await ensureInstalled(cp);
  const kc = cp.kubeConfig();
  await createNamespace(kc, NS);
  await createNode(kc, NODE, { internalIP: '127.0.0.250' });
  const podIPs: string[] = [];
  for (let i = 0; i < opts.pods; i++) {
    const ip = `10.244.${90 + Math.floor(i / 200)}.${10 + (i % 200)}`;
    await createPod(kc, { namespace: NS, name: `sender-${i}`, nodeName: NODE, podIP: ip });
    podIPs.push(ip);
  }
  const controller = await startController(cp, 'bench-controller', opts.controllerArgs ?? []);
  await mustKubectl(cp, ['apply', '-f', '-'], `apiVersion: netwarden.io/v1alpha1\nkind: DropTail\nmetadata: {name: ${DROPTAIL}}\nspec: {reverseDNS: false}\n`);
  await mustKubectl(cp, ['wait', '--for=condition=Ready', `droptail/${DROPTAIL}`, '--timeout=60s']);
  const token = await agentControllerToken(cp, NODE);
  const url = `${controllerUrl(await netwardenPorts(cp))}/droptail/${DROPTAIL}/drops`;
  const ca = readFileSync(await netwardenCaFile(cp));
  let sequence = 0;
  const batchOf = (drops: AggregatedDrop[]): string => {
    const batch: DropBatch = { node: NODE, sequence: ++sequence, sentAt: new Date().toISOString(), drops, shedSinceLastBatch: 0 };
    return JSON.stringify(batch);
  };
  await waitFor(async () => (await post(url, ca, token, batchOf([]))) === 202, { timeoutMs: 30_000, description: 'the controller accepting batches' });
  return { kc, controller, podIPs, url, ca, token, batchOf };
}

/** A distinct destination per drop: 198.18.0.0/15 (benchmarking range), never a cluster address. */
export function destination(i: number): string {
  return `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}`;
}

/** CPU seconds (user + system) a process has used. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export async function benchDropsLatency(opts: DropsLatencyOptions = {}): Promise<BenchResult> {
  const rate = opts.dropsPerSecond ?? 1000;
  const seconds = opts.seconds ?? 10;
  const podCount = opts.pods ?? 50;
  await useCompiledCli(); // the controller runs compiled, as users run it
  const cp = await startControlPlane();
  const previousLevel = process.env.NETWARDEN_LOG_LEVEL;
  process.env.NETWARDEN_LOG_LEVEL = 'warn';
  try {
    // Every drop's own Event is what is timed: the event budget (bench event-budget) is lifted.
    const { kc, controller, podIPs, url, ca, token, batchOf } = await dropTailRig(cp, { pods: podCount, controllerArgs: UNBUDGETED });

    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    const watch = new Watch(kc);
    const abort = await watch.watch(`/api/v1/namespaces/${NS}/events`, {}, (phase, obj: CoreV1Event) => {
      if (phase !== 'ADDED') return;
      const ip = /\(IP: ([0-9.]+),/.exec(obj.message ?? '')?.[1];
      const sent = ip ? sentAt.get(ip) : undefined;
      if (sent !== undefined) {
        latencies.push(performance.now() - sent);
        sentAt.delete(ip!);
      }
    }, () => {});

    const perBatch = Math.round(rate / BATCHES_PER_SECOND);
    const total = perBatch * BATCHES_PER_SECOND * seconds;
    let next = 0;
    let refused = 0;
    const idleRss = procStatusMB(controller.child.pid!, 'VmRSS');
    const cpuBefore = cpuSeconds(controller.child.pid!);
    let peakRss = idleRss;
    const started = performance.now();
    for (let b = 0; b < BATCHES_PER_SECOND * seconds; b++) {
      const due = started + (b * 1000) / BATCHES_PER_SECOND;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const now = new Date().toISOString();
      const drops: AggregatedDrop[] = [];
      for (let k = 0; k < perBatch; k++, next++) {
        const dst = destination(next);
        drops.push({
          drop: { time: now, timeSource: 'nflog', prefix: 'bench:', family: 'ipv4', src: podIPs[next % podIPs.length]!, dst, protocol: 'UDP', srcPort: 40000, dstPort: 53 },
          count: 1, firstSeen: now, lastSeen: now, source: 'nflog',
        });
      }
      const body = batchOf(drops);
      const postedAt = performance.now();
      for (const d of drops) sentAt.set(d.drop.dst, postedAt);
      void post(url, ca, token, body).then(
        (code) => (refused += code === 202 ? 0 : 1),
        () => (refused += 1),
      );
      if (b % BATCHES_PER_SECOND === 0) peakRss = Math.max(peakRss, procStatusMB(controller.child.pid!, 'VmRSS'));
    }
    const sendSeconds = (performance.now() - started) / 1000;
    await waitFor(() => latencies.length >= total, { timeoutMs: 60_000, intervalMs: 100, description: `${total} Events` }).catch(() => undefined);
    peakRss = Math.max(peakRss, procStatusMB(controller.child.pid!, 'VmRSS'));
    const cpuPerDropMs = ((cpuSeconds(controller.child.pid!) - cpuBefore) * 1000) / total;
    abort.abort();
    const histogram = (await getLocal(controller.metricsPort, '/metrics')).body;
    if (process.env.BENCH_DEBUG) process.stdout.write(histogram.split('\n').filter((l) => l.includes('receive_to_event') || l.includes('pipeline_pending')).join('\n') + '\n');
    await controller.kill();

    const sorted = [...latencies].sort((a, b) => a - b);
    const p99 = percentile(sorted, 99);
    return {
      name: 'drops-latency (controller: drop batch to Event on the Pod)',
      rows: [
        { metric: 'offered drops/s', value: total / sendSeconds, unit: 'drops/s', reference: rate, ratio: total / sendSeconds / rate },
        { metric: 'Events seen', value: latencies.length, unit: 'events', reference: total, ratio: latencies.length / total },
        { metric: 'drop-to-Event p50', value: percentile(sorted, 50), unit: 'ms' },
        { metric: 'drop-to-Event p99', value: p99, unit: 'ms', reference: 1000, ratio: p99 / 1000 },
        { metric: 'drop-to-Event max', value: sorted[sorted.length - 1] ?? NaN, unit: 'ms' },
        { metric: 'controller RSS idle (compiled JS)', value: idleRss, unit: 'MiB' },
        { metric: 'controller RSS peak under load (compiled JS)', value: peakRss, unit: 'MiB' },
        { metric: 'batches refused', value: refused, unit: 'batches' },
        { metric: 'controller CPU per drop (incl. its Event write)', value: cpuPerDropMs, unit: 'ms' },
      ],
    };
  } finally {
    if (previousLevel === undefined) delete process.env.NETWARDEN_LOG_LEVEL;
    else process.env.NETWARDEN_LOG_LEVEL = previousLevel;
    await cp.stop();
  }
}

// `node --import tsx bench/drops-latency.ts` runs it alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await benchDropsLatency({ seconds: Number(process.env.BENCH_SECONDS ?? 10) });
  for (const row of result.rows) process.stdout.write(`${row.metric}: ${row.value.toFixed(1)} ${row.unit}${row.reference ? ` (reference ${row.reference})` : ''}\n`);
  process.exit(0);
}
