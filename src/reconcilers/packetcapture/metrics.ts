// Metrics of the controller's PacketCapture feature: capture downloads.
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
