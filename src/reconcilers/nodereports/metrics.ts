// Prometheus metrics of the node reports: what the intake answered, and how many nodes the leader
// holds reports of. Labels: the kind and a status code, never a node or object name (5,000 nodes).
import { Counter, Gauge } from 'prom-client';
import { registry } from '../../runtime/metrics.js';

export const nodeReports = new Counter({
  name: 'netwarden_node_reports_total',
  help: 'Node reports received from agents, by kind (droptail, auditforwarder) and HTTP status code of the answer.',
  labelNames: ['kind', 'code'] as const,
  registers: [registry],
});

export const reportingNodes = new Gauge({
  name: 'netwarden_node_reports_nodes',
  help: 'Nodes whose last report the leader holds, summed over the objects of a kind (as of the last reconcile of each).',
  labelNames: ['kind'] as const,
  registers: [registry],
});
