// Prometheus metrics of the AuditForwarder on the node agent, labelled by forwarder name.
import { Counter, Gauge } from 'prom-client';
import { registry } from '../../runtime/metrics.js';

const labelNames = ['forwarder'] as const;

export const auditReadBytes = new Counter({
  name: 'netwarden_audit_read_bytes_total',
  help: 'Bytes of audit log lines read (newlines included).',
  labelNames,
  registers: [registry],
});

export const auditReadEvents = new Counter({
  name: 'netwarden_audit_read_events_total',
  help: 'Audit log lines read (events, malformed lines included).',
  labelNames,
  registers: [registry],
});

export const auditFilteredEvents = new Counter({
  name: 'netwarden_audit_filtered_events_total',
  help: 'Events dropped by the forwarder filter rules.',
  labelNames,
  registers: [registry],
});

export const auditMalformedLines = new Counter({
  name: 'netwarden_audit_malformed_lines_total',
  help: 'Lines that were not a valid audit event, forwarded in quarantine form.',
  labelNames: ['forwarder', 'reason'] as const,
  registers: [registry],
});

export const auditGaps = new Counter({
  name: 'netwarden_audit_gaps_total',
  help: 'Times lines were skipped: a rotated or the checkpointed file was deleted before it was read to its end.',
  labelNames,
  registers: [registry],
});

export const auditSkippedBytes = new Counter({
  name: 'netwarden_audit_skipped_bytes_total',
  help: 'Bytes known to be skipped in gaps (files deleted before they were read; unknown for compressed or unseen files).',
  labelNames,
  registers: [registry],
});

export const auditShippedBytes = new Counter({
  name: 'netwarden_audit_shipped_bytes_total',
  help: 'Uncompressed payload bytes acknowledged by the sink.',
  labelNames,
  registers: [registry],
});

export const auditShippedEvents = new Counter({
  name: 'netwarden_audit_shipped_events_total',
  help: 'Events (and quarantined lines) acknowledged by the sink.',
  labelNames,
  registers: [registry],
});

export const auditBatches = new Counter({
  name: 'netwarden_audit_batches_total',
  help: 'Batch delivery attempts by result (success, error).',
  labelNames: ['forwarder', 'result'] as const,
  registers: [registry],
});

export const auditRetries = new Counter({
  name: 'netwarden_audit_retries_total',
  help: 'Batch deliveries retried after a sink error.',
  labelNames,
  registers: [registry],
});

export const auditLagBytes = new Gauge({
  name: 'netwarden_audit_lag_bytes',
  help: 'Bytes written to the audit log but not shipped yet (approximate for gzipped rotations).',
  labelNames,
  registers: [registry],
});

export const auditBufferedBytes = new Gauge({
  name: 'netwarden_audit_buffered_bytes',
  help: 'Payload bytes held in memory in the open or in-flight batch.',
  labelNames,
  registers: [registry],
});

/** Drops a deleted forwarder's series so /metrics does not keep reporting it. */
export function removeForwarderMetrics(forwarder: string): void {
  for (const m of [auditReadBytes, auditReadEvents, auditFilteredEvents, auditShippedBytes, auditShippedEvents, auditRetries, auditLagBytes, auditBufferedBytes]) {
    m.remove({ forwarder });
  }
}
