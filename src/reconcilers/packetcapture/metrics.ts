// Metrics of the controller's PacketCapture feature: capture downloads and namespace quota hits.
import { Counter } from 'prom-client';
import { registry } from '../../runtime/metrics.js';

export const captureDownloads = new Counter({
  name: 'netwarden_capture_downloads_total',
  help: 'Capture zip downloads by result (ok, partial: some nodes could not be listed, failed: cut mid-stream).',
  labelNames: ['result'] as const,
  registers: [registry],
});
export const captureDownloadBytes = new Counter({
  name: 'netwarden_capture_download_bytes_total',
  help: 'Bytes of zip sent to capture downloaders.',
  registers: [registry],
});
// Counted when a capture goes from admitted (or undecided) to Queued, not on every recheck, so a
// rate is of captures turned away, not of reconciles. The PrometheusRule's quota alert reads it.
export const captureQuotaExceeded = new Counter({
  name: 'netwarden_capture_namespace_quota_exceeded_total',
  help: 'PacketCaptures queued because their namespace was over its capture quota (netwarden-capture-quotas), counted when the Quota condition turns to QuotaExceeded.',
  labelNames: ['namespace'] as const,
  registers: [registry],
});
