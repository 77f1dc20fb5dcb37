// Prometheus metrics of the controller's drop pipeline. Label values are bounded by what the
// cluster has (DropTails, nodes, namespaces) and a fixed set of words: never pod names, IPs or
// ports, so a port scan cannot blow up the series count.
import { Counter, Gauge, Histogram } from 'prom-client';
import { registry } from '../../runtime/metrics.js';

export const packetDrops = new Counter({
  name: 'netwarden_packet_drops_total',
  help: 'Dropped packets by DropTail, node, protocol, namespace pair and kernel drop reason. A namespace is the Pod\'s; "node" for Nodes and hostNetwork Pods, "service:<ns>" for Service IPs, "external" for anything else. reason is the kernel\'s (NETFILTER_DROP, NO_SOCKET, ...) for kernel sources, empty for logged drops.',
  labelNames: ['droptail', 'node', 'protocol', 'src_namespace', 'dst_namespace', 'reason'] as const,
  registers: [registry],
});

export const dropBatches = new Counter({
  name: 'netwarden_droptail_batches_total',
  help: 'Drop batches received from agents, by HTTP status code of the answer.',
  labelNames: ['code'] as const,
  registers: [registry],
});

export const batchDrops = new Counter({
  name: 'netwarden_droptail_batch_drops_total',
  help: 'Aggregated drop entries in accepted batches, by what became of them (processed, duplicate, expired, unknown_droptail).',
  labelNames: ['result'] as const,
  registers: [registry],
});

export const agentShedDrops = new Counter({
  name: 'netwarden_droptail_agent_shed_drops_total',
  help: 'Drops the agents report they had to shed (controller unreachable, queue full).',
  labelNames: ['node'] as const,
  registers: [registry],
});

export const batchSequenceGaps = new Counter({
  name: 'netwarden_droptail_batch_sequence_gaps_total',
  help: 'Batches missing between two batches of one agent process (sequence numbers skipped).',
  labelNames: ['node'] as const,
  registers: [registry],
});

export const dropEvents = new Counter({
  name: 'netwarden_droptail_events_total',
  help: 'Event writes on Pods for drops: created, bumped (count raised), failed.',
  labelNames: ['result'] as const,
  registers: [registry],
});

export const eventsSuppressed = new Counter({
  name: 'netwarden_drop_events_suppressed_total',
  help: 'Drop Events on Pods not written because they were over the event budget: global_budget (--event-qps/--event-burst), pod_budget (--event-pod-qps/--event-pod-burst). Each is counted in its Pod\'s aggregated Event instead.',
  labelNames: ['reason'] as const,
  registers: [registry],
});

export const dnsLookups = new Counter({
  name: 'netwarden_droptail_reverse_dns_total',
  help: 'Reverse DNS lookups: cached, found, not_found, error, skipped (too many in flight).',
  labelNames: ['result'] as const,
  registers: [registry],
});

export const dropToEventSeconds = new Histogram({
  name: 'netwarden_droptail_receive_to_event_seconds',
  help: 'Time from a batch arriving to the Event write for one of its drops.',
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

export const pipelinePending = new Gauge({
  name: 'netwarden_droptail_pipeline_pending',
  help: 'Accepted drops the controller has not turned into Events yet.',
  registers: [registry],
});
