// The create form's fields and the PacketCapture YAML they stand for: exactly what the console
// creates, and shows beside the form for a user to apply by hand.
import { stringify } from 'yaml';

export interface CaptureForm {
  name: string;
  selector: string;
  protocol: string;
  ports: string;
  direction: string;
  duration: string;
  maxMiBPerPod: string;
  /** pcap (Calico's default) or pcapng, whose packets name their pod in Wireshark. */
  format: string;
  /** Seconds after the capture finishes that its files are deleted; kept when empty. */
  ttlSeconds: string;
}

export const DEFAULT_FORM: CaptureForm = { name: '', selector: 'all()', protocol: '', ports: '', direction: 'both', duration: '10m', maxMiBPerPod: '100', format: 'pcap', ttlSeconds: '' };

/** The PacketCapture the form describes, as YAML: exactly what is created. */
export function captureYaml(namespace: string, f: CaptureForm): string {
  const ports = f.ports.split(/[\s,]+/).filter(Boolean).map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  const filter: Record<string, unknown> = {};
  if (f.protocol) filter.protocol = f.protocol;
  if (ports.length) filter.ports = ports;
  const spec: Record<string, unknown> = { selector: f.selector.trim() || 'all()' };
  if (Object.keys(filter).length) spec.filters = [filter];
  spec.direction = f.direction;
  if (f.duration.trim()) spec.duration = f.duration.trim();
  if (f.maxMiBPerPod.trim()) spec.maxBytesPerPod = Math.round(Number(f.maxMiBPerPod) * 1024 * 1024);
  // Defaults stay out of the YAML, as a user would leave them out.
  if (f.format && f.format !== 'pcap') spec.format = f.format;
  if (/^\d+$/.test(f.ttlSeconds.trim())) spec.ttlSecondsAfterFinished = Number(f.ttlSeconds.trim());
  return stringify({ apiVersion: 'netwarden.io/v1alpha1', kind: 'PacketCapture', metadata: { name: f.name || '<name>', namespace }, spec });
}
