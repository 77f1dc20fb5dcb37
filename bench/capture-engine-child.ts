// The measured child of bench/capture.ts: the agent's capture engine (PodCapture) on one
// interface until SIGTERM. A module of its own so the child loads the engine and nothing of the
// bench's helpers (pod networks, control-plane tools), which would be measured along with it.
import { OPEN_GATE, PodCapture } from '../src/nodeagent/capture/engine.js';
import { DEFAULT_CEILINGS } from '../src/nodeagent/capture/plan.js';

export interface EngineConfig {
  dir: string;
  device: string;
  filter: string;
  /** libpcap buffer; the agent's default when unset. */
  ringBytes?: number;
  /** spec.format; pcap when unset. */
  format?: 'pcap' | 'pcapng';
}

export interface EngineReport {
  captured: number;
  cpuSeconds: number;
  peakRssMiB: number;
}

/** Child side: capture until SIGTERM, sampling RSS, then report on stdout. */
function runEngineChild(config: EngineConfig): void {
  const capture = new PodCapture({
    dir: config.dir, pod: 'bench', device: config.device, filter: config.filter, snapLen: 262144, fileSizeBytes: 1024 ** 3, maxFiles: 10, maxBytes: 4 * 1024 ** 3,
    existingFiles: [], existingBytes: 0, firstSequence: 1, ringBytes: config.ringBytes ?? DEFAULT_CEILINGS.ringBytes, gate: OPEN_GATE,
    format: config.format ?? 'pcap', label: { namespace: 'bench', node: 'bench-node', direction: 'egress', capture: 'bench/bench' },
  });
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
  const cpuBefore = process.cpuUsage();
  capture.start();
  const flusher = setInterval(() => capture.flush(), 1000);
  process.once('SIGTERM', () => {
    capture.stop('finished', 'bench over');
    const cpu = process.cpuUsage(cpuBefore);
    clearInterval(flusher);
    clearInterval(sampler);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    const report: EngineReport = { captured: capture.packets, cpuSeconds: (cpu.user + cpu.system) / 1e6, peakRssMiB: peakRss / 1024 / 1024 };
    process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0));
  });
  process.stdout.write('ready\n');
}

runEngineChild(JSON.parse(process.argv[2] ?? '{}') as EngineConfig);
