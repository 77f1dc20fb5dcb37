// Capture metrics on the agent's /metrics (labels: the capture's namespace and name, and the pod).
import { Counter, Gauge } from 'prom-client';
import { registry } from '../../runtime/metrics.js';

export const capturedPackets = new Counter({
  name: 'netwarden_capture_packets_total',
  help: 'Packets written to pcap files.',
  labelNames: ['namespace', 'name'] as const,
  registers: [registry],
});

export const capturedBytes = new Counter({
  name: 'netwarden_capture_bytes_total',
  help: 'Bytes of pcap written (record headers included).',
  labelNames: ['namespace', 'name'] as const,
  registers: [registry],
});

export const activeCaptures = new Gauge({
  name: 'netwarden_capture_active_pods',
  help: 'Pod interfaces being captured on this node.',
  registers: [registry],
});

export const captureErrors = new Counter({
  name: 'netwarden_capture_errors_total',
  help: 'Pod captures that could not start or stopped on an error.',
  labelNames: ['reason'] as const,
  registers: [registry],
});

// Counted once each time a pod capture is held back (not on every retry while it waits).
export const captureNodeQuotaHeld = new Counter({
  name: 'netwarden_capture_node_quota_held_total',
  help: "Pod captures held back by this node's capture quota (--capture-max-concurrent, --capture-max-bytes, --capture-ring-budget); they start when there is room.",
  registers: [registry],
});
