// Agent-side DropTail metrics on the process-wide registry. Labels stay bounded: the DropTail name
// and the source id (at most 16 sources per DropTail, from its spec), never addresses or ports.
// Parse failures are counted by the parsers themselves (src/nodeagent/drops/metrics.ts).
import { Counter, Gauge } from 'prom-client';
import { registry } from '../../runtime/metrics.js';

export const recordsRead = new Counter({
  name: 'netwarden_agent_droptail_records_read_total',
  help: 'Log lines, journal entries or NFLOG packets read by a DropTail source.',
  labelNames: ['droptail', 'source'] as const,
  registers: [registry],
});

export const dropsSeen = new Counter({
  name: 'netwarden_agent_droptail_drops_seen_total',
  help: 'Packet drops recognised by a DropTail source (before aggregation).',
  labelNames: ['droptail', 'source'] as const,
  registers: [registry],
});

export const sourceHealthy = new Gauge({
  name: 'netwarden_agent_droptail_source_healthy',
  help: '1 while a DropTail source is reading, 0 while it fails and is retried.',
  labelNames: ['droptail', 'source'] as const,
  registers: [registry],
});

export const sourceGaps = new Counter({
  name: 'netwarden_agent_droptail_source_gaps_total',
  help: 'Times a DropTail file source skipped lines: a rotated log file deleted before it was read to its end.',
  labelNames: ['droptail', 'source'] as const,
  registers: [registry],
});

export const sourceSkippedBytes = new Counter({
  name: 'netwarden_agent_droptail_source_skipped_bytes_total',
  help: 'Bytes known to be skipped in those gaps.',
  labelNames: ['droptail', 'source'] as const,
  registers: [registry],
});

export const queueDrops = new Gauge({
  name: 'netwarden_agent_droptail_queue_drops',
  help: 'Aggregated drops waiting to be sent to the controller.',
  labelNames: ['droptail'] as const,
  registers: [registry],
});

export const queueBytes = new Gauge({
  name: 'netwarden_agent_droptail_queue_bytes',
  help: 'Approximate JSON size of the aggregated drops waiting to be sent.',
  labelNames: ['droptail'] as const,
  registers: [registry],
});

export const shedDrops = new Counter({
  name: 'netwarden_agent_droptail_shed_drops_total',
  help: 'Packet drops discarded because the send queue was full (oldest first).',
  labelNames: ['droptail'] as const,
  registers: [registry],
});

export const batchesSent = new Counter({
  name: 'netwarden_agent_droptail_batches_total',
  help: 'Drop batches POSTed to the controller by result: accepted, retried (unreachable or 5xx), refused (4xx).',
  labelNames: ['droptail', 'result'] as const,
  registers: [registry],
});

/** Removes the per-DropTail series when its pipeline stops, so deleted DropTails leave no stale gauges. */
export function forgetDropTailMetrics(droptail: string, sourceIds: readonly string[]): void {
  queueDrops.remove({ droptail });
  queueBytes.remove({ droptail });
  for (const source of sourceIds) {
    sourceHealthy.remove({ droptail, source });
    sourceGaps.remove({ droptail, source });
    sourceSkippedBytes.remove({ droptail, source });
  }
}

export const kernelDuplicates = new Counter({
  name: 'netwarden_agent_droptail_kernel_duplicates_total',
  help: 'Kernel NETFILTER_DROP drops not counted because a log or NFLOG source of the same DropTail saw the same packet (counted once, as the logged drop).',
  labelNames: ['droptail'] as const,
  registers: [registry],
});

/** Read from the kernel program's own counters when scraped (one program per agent). */
export const kernelSamples = new Counter({
  name: 'netwarden_agent_droptail_kernel_samples_total',
  help: "Drop samples of the kernel source's eBPF program: result=submitted reached the ring buffer, result=lost did not fit in it (the agent read too slowly) and were never seen.",
  labelNames: ['result'] as const,
  registers: [registry],
});
