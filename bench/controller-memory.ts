// The controller's memory against the number of Pods in the cluster (issue 12): its RSS idle, with
// N realistic Pods arriving through the watch, and after a restart with the N Pods there (the
// initial list), and the marginal cost per Pod over the idle floor. Target: 150,000 Pods inside
// the Deployment's 256Mi limit, i.e. at most ~0.85 KB per Pod over an idle floor of ~127 MB.
// Starts its own control plane and the controller compiled, with the node flags and environment of
// config/controller/deployment.yaml (bench/run.ts), with leader election as deployed.
//   BENCH_CONTROLLER_PODS="5000,20000"  the Pod counts measured, in order (default 5000)
//   BENCH_CONTROLLER_CLI=/path/main.js  measure another build (e.g. the code before a change)
import { startControlPlane, type ControlPlane } from '../test/env/controlplane.js';
import { createNamespace, createNode, waitFor } from '../test/env/fixtures.js';
import { ensureInstalled, getLocal, startController, type NetwardenProcess } from '../test/env/netwarden.js';
import { COMPILED_CLI_ENV, useCompiledCli } from './build.js';
import { procStatusMB } from './memory.js';
import { applyRealisticPods, type PodSet } from './pods.js';
import type { BenchResult, BenchRow } from './types.js';

export interface ControllerMemoryOptions {
  pods?: number[];
  /** How long RSS is left to settle (GC, allocator) before it is read. */
  settleMs?: number;
}

const NS = 'bench-memory';
const NODES = 10;
/** 150,000 Pods in 256 MiB over a 127 MB floor: (256 - 127) MiB / 150,000. */
const TARGET_KB_PER_POD = 0.85;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function startReady(cp: ControlPlane, name: string): Promise<NetwardenProcess> {
  const controller = await startController(cp, name, ['--leader-elect', `--leader-election-id=${name}`]);
  await waitFor(async () => (await getLocal(controller.metricsPort, '/readyz').catch(() => ({ status: 0 }))).status === 200, { timeoutMs: 300_000, intervalMs: 250, description: `${name} ready (informers synced)` });
  return controller;
}

interface Sample {
  rss: number;
  /** V8 heap in use, V8 heap reserved, memory outside the heap (Buffers), in MiB, from /metrics. */
  heap: number;
  heapTotal: number;
  external: number;
}

/** RSS and the process's own memory breakdown (its /metrics), after `settleMs`. */
async function settled(controller: NetwardenProcess, settleMs: number): Promise<Sample> {
  await sleep(settleMs);
  const metrics = (await getLocal(controller.metricsPort, '/metrics')).body;
  const mb = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(metrics)?.[1] ?? NaN) / 1024 / 1024;
  return { rss: procStatusMB(controller.child.pid!, 'VmRSS'), heap: mb('nodejs_heap_size_used_bytes'), heapTotal: mb('nodejs_heap_size_total_bytes'), external: mb('nodejs_external_memory_bytes') };
}

export async function benchControllerMemory(opts: ControllerMemoryOptions = {}): Promise<BenchResult> {
  const counts = opts.pods ?? (process.env.BENCH_CONTROLLER_PODS ?? '5000').split(',').map(Number);
  const settleMs = opts.settleMs ?? 10_000;
  const override = process.env.BENCH_CONTROLLER_CLI;
  if (override) process.env[COMPILED_CLI_ENV] = override;
  else await useCompiledCli();
  process.stdout.write(`controller: ${process.env[COMPILED_CLI_ENV]}\n`);
  const cp = await startControlPlane();
  const previousLevel = process.env.NETWARDEN_CHILD_LOG_LEVEL;
  process.env.NETWARDEN_CHILD_LOG_LEVEL = 'warn';
  const rows: BenchRow[] = [];
  try {
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNamespace(kc, NS);
    const set: PodSet = { namespace: NS, nodes: [] };
    for (let n = 0; n < NODES; n++) {
      const node = { name: `bench-memory-node-${n}`, ip: `10.127.0.${n + 1}` };
      await createNode(kc, node.name, { internalIP: node.ip });
      set.nodes.push(node);
    }
    let controller = await startReady(cp, 'bench-memory-0');
    const idle = await settled(controller, settleMs);
    rows.push(
      { metric: 'controller RSS, 0 Pods', value: idle.rss, unit: 'MiB' },
      { metric: 'controller V8 heap used, 0 Pods', value: idle.heap, unit: 'MiB' },
      { metric: 'controller V8 heap reserved, 0 Pods', value: idle.heapTotal, unit: 'MiB' },
      { metric: 'controller external (Buffers), 0 Pods', value: idle.external, unit: 'MiB' },
    );
    let have = 0;
    for (const n of counts) {
      const started = performance.now();
      await applyRealisticPods(kc, set, have, n);
      have = n;
      process.stdout.write(`  ${n} Pods applied in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
      const watched = await settled(controller, settleMs);
      const watchPeak = procStatusMB(controller.child.pid!, 'VmHWM');
      await controller.kill();
      // A restart reads the N Pods through the initial list: its peak is the list's cost.
      controller = await startReady(cp, `bench-memory-${n}`);
      const listed = await settled(controller, settleMs);
      const listPeak = procStatusMB(controller.child.pid!, 'VmHWM');
      const perPod = ((listed.rss - idle.rss) * 1024) / n;
      rows.push(
        { metric: `controller RSS, ${n} Pods arrived by watch`, value: watched.rss, unit: 'MiB' },
        { metric: `controller RSS peak, ${n} Pods arrived by watch`, value: watchPeak, unit: 'MiB', reference: 256, ratio: watchPeak / 256 },
        { metric: `controller RSS, restarted with ${n} Pods`, value: listed.rss, unit: 'MiB' },
        { metric: `controller RSS peak, restarted with ${n} Pods (initial list)`, value: listPeak, unit: 'MiB', reference: 256, ratio: listPeak / 256 },
        { metric: `controller V8 heap used, restarted with ${n} Pods`, value: listed.heap, unit: 'MiB' },
        { metric: `controller V8 heap reserved, restarted with ${n} Pods`, value: listed.heapTotal, unit: 'MiB' },
        { metric: `controller external (Buffers), restarted with ${n} Pods`, value: listed.external, unit: 'MiB' },
        { metric: `marginal RSS per Pod at ${n} (restarted, over idle)`, value: perPod, unit: 'KB', reference: TARGET_KB_PER_POD, ratio: perPod / TARGET_KB_PER_POD },
        { metric: `marginal V8 heap per Pod at ${n} (restarted, over idle)`, value: ((listed.heap - idle.heap) * 1024) / n, unit: 'KB', reference: TARGET_KB_PER_POD },
      );
    }
    await controller.kill();
    return { name: 'controller-memory (controller RSS against Pods in the cluster)', rows };
  } finally {
    if (previousLevel === undefined) delete process.env.NETWARDEN_CHILD_LOG_LEVEL;
    else process.env.NETWARDEN_CHILD_LOG_LEVEL = previousLevel;
    await cp.stop();
  }
}
