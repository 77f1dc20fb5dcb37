// The measured child of bench/drops-agent.ts: the DropTail pipeline alone (file source → parser →
// aggregator → bounded queue → HTTPS sender) following one file. A module of its own so the child
// loads only what the pipeline needs, not the bench's control-plane helpers (Kubernetes client,
// test fixtures), which would be measured along with it.
import { procStatusMB, sampleMemory, type MemoryAtPeak } from './memory.js';

export interface ChildConfig {
  file: string;
  stateDir: string;
  url: string;
  caFile: string;
}

export interface ChildReport {
  peakRssMB: number;
  /** process.memoryUsage() at the sample with the highest RSS (every 100 ms). */
  atPeak: MemoryAtPeak;
  seen: number;
  shed: number;
  queued: number;
}

/** The child: one pipeline following config.file; reports its counters and VmHWM on SIGTERM. */
async function runChild(config: ChildConfig): Promise<void> {
  const { DropTailPipeline } = await import('../src/nodeagent/droptail/pipeline.js');
  const { FileSource } = await import('../src/nodeagent/droptail/sources/file.js');
  const { DropBatchClient } = await import('../src/nodeagent/droptail/client.js');
  const source = new FileSource({ path: config.file, prefixes: ['nftables-metal-dropped: '], stateDir: config.stateDir, logKey: 'bench', pollIntervalMs: 50 });
  const poster = new DropBatchClient({ url: config.url, caFile: config.caFile, token: () => Promise.resolve('bench-token') });
  const pipeline = new DropTailPipeline({ name: 'bench', node: 'node-1', sources: [source], poster, sender: { retryBackoff: { initialMs: 100, maxMs: 1_000 } } });
  pipeline.start();
  const memory = sampleMemory();
  process.stdout.write('ready\n');
  process.once('SIGTERM', () => {
    const atPeak = memory.stop();
    void pipeline.stop(500).then(() => {
      const report: ChildReport = { peakRssMB: procStatusMB('self', 'VmHWM'), atPeak, seen: pipeline.snapshot().dropsSeen, shed: pipeline.sender.shed, queued: pipeline.queued };
      process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0));
    });
  });
}

void runChild(JSON.parse(process.argv[2] ?? '{}') as ChildConfig);
