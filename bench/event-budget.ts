// Event writes of the controller under a flood of 50,000 distinct drops per second (each a new
// pair on one of 100 Pods), with the default event budget (--event-qps 10, --event-burst 50): the
// writes the API server received (its audit log), per second, against the budget's qps, and what
// the flood costs the controller (CPU per drop, peak RSS) now that it writes almost no Events.
import { readAuditEvents, startControlPlane } from '../test/env/controlplane.js';
import { waitFor } from '../test/env/fixtures.js';
import { getLocal, postDropBatch } from '../test/env/netwarden.js';
import type { AggregatedDrop } from '../src/apis/drops.js';
import { DEFAULT_EVENT_BUDGET } from '../src/reconcilers/droptail/budget.js';
import { useCompiledCli } from './build.js';
import { cpuSeconds, destination, dropTailRig } from './drops-latency.js';
import { procStatusMB } from './memory.js';
import type { BenchResult } from './types.js';

const BATCHES_PER_SECOND = 10;

function metricSum(metrics: string, name: string, labels = ''): number {
  const re = new RegExp(`^${name}\\{${labels}[^}]*\\} (\\d+)$`, 'gm');
  return [...metrics.matchAll(re)].reduce((sum, m) => sum + Number(m[1]), 0);
}

/** Writes while the flood was being handled: the span the bound is for. */
function isWithin(t: number, from: number, to: number): boolean {
  return t >= from && t <= to;
}

export async function benchEventBudget(opts: { dropsPerSecond?: number; seconds?: number; pods?: number } = {}): Promise<BenchResult> {
  const rate = opts.dropsPerSecond ?? 50_000;
  const seconds = opts.seconds ?? 10;
  await useCompiledCli();
  const cp = await startControlPlane();
  const previousLevel = process.env.NETWARDEN_LOG_LEVEL;
  process.env.NETWARDEN_LOG_LEVEL = 'warn';
  try {
    const { controller, podIPs, url, ca, token, batchOf } = await dropTailRig(cp, { pods: opts.pods ?? 100 });
    const pid = controller.child.pid!;
    const perBatch = Math.round(rate / BATCHES_PER_SECOND);
    const answers: Array<Promise<number>> = [];
    let next = 0;
    let peakRss = procStatusMB(pid, 'VmRSS');
    const cpuBefore = cpuSeconds(pid);
    const started = Date.now();
    for (let b = 0; b < BATCHES_PER_SECOND * seconds; b++) {
      const wait = started + (b * 1000) / BATCHES_PER_SECOND - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const now = new Date().toISOString();
      const drops: AggregatedDrop[] = [];
      for (let k = 0; k < perBatch; k++, next++) {
        drops.push({
          drop: { time: now, timeSource: 'nflog', prefix: 'bench:', family: 'ipv4', src: podIPs[next % podIPs.length]!, dst: destination(next), protocol: 'UDP', srcPort: 40000, dstPort: 1 + (next % 60000) },
          count: 1, firstSeen: now, lastSeen: now, source: 'nflog',
        });
      }
      answers.push(postDropBatch(url, ca, token, batchOf(drops)).catch(() => 0));
      if (b % BATCHES_PER_SECOND === 0) peakRss = Math.max(peakRss, procStatusMB(pid, 'VmRSS'));
    }
    const offeredSeconds = (Date.now() - started) / 1000;
    const codes = await Promise.all(answers);
    const accepted = codes.filter((c) => c === 202).length * perBatch;
    const metrics = await waitFor(async () => {
      const text = (await getLocal(controller.metricsPort, '/metrics')).body;
      return metricSum(text, 'netwarden_droptail_batch_drops_total', 'result="processed"') >= accepted ? text : undefined;
    }, { timeoutMs: 180_000, intervalMs: 500, description: `${accepted} drops processed` });
    const handledAt = Date.now();
    const handledSeconds = (handledAt - started) / 1000;
    peakRss = Math.max(peakRss, procStatusMB(pid, 'VmRSS'));
    const cpuPerDropUs = ((cpuSeconds(pid) - cpuBefore) * 1e6) / Math.max(1, accepted);
    await controller.kill();
    const writes = (await readAuditEvents(cp)).filter((e) => {
      const ref = e.objectRef as { resource?: string } | undefined;
      return ref?.resource === 'events' && ['create', 'patch', 'update'].includes(String(e.verb)) && isWithin(Date.parse(String(e.requestReceivedTimestamp)), started, handledAt);
    }).length;
    const writesPerSecond = writes / handledSeconds;
    const bound = DEFAULT_EVENT_BUDGET.burst + DEFAULT_EVENT_BUDGET.qps * handledSeconds;
    return {
      name: 'event-budget (controller: Event writes under a drop flood, default budget)',
      rows: [
        { metric: 'offered drops/s', value: (codes.length * perBatch) / offeredSeconds, unit: 'drops/s', reference: rate, ratio: (codes.length * perBatch) / offeredSeconds / rate },
        { metric: 'accepted drops', value: accepted, unit: 'drops', reference: codes.length * perBatch, ratio: accepted / (codes.length * perBatch) },
        { metric: 'drops handled per second (until the last was processed)', value: accepted / handledSeconds, unit: 'drops/s' },
        { metric: 'Event writes the API server received', value: writes, unit: 'writes', reference: bound, ratio: writes / bound },
        { metric: 'Event writes per second', value: writesPerSecond, unit: 'writes/s', reference: DEFAULT_EVENT_BUDGET.qps, ratio: writesPerSecond / DEFAULT_EVENT_BUDGET.qps },
        { metric: 'Events suppressed (folded)', value: metricSum(metrics, 'netwarden_drop_events_suppressed_total'), unit: 'drops' },
        { metric: 'controller CPU per drop', value: cpuPerDropUs, unit: 'µs' },
        { metric: 'controller RSS peak (compiled JS)', value: peakRss, unit: 'MiB' },
      ],
    };
  } finally {
    if (previousLevel === undefined) delete process.env.NETWARDEN_LOG_LEVEL;
    else process.env.NETWARDEN_LOG_LEVEL = previousLevel;
    await cp.stop();
  }
}
