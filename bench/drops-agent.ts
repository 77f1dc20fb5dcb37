// Agent memory under a flood: the DropTail pipeline (file source → parser → aggregator → bounded
// queue → HTTPS sender) runs in a child process while this process appends 50,000 distinct drop
// lines per second to the file it follows, for FLOOD_SECONDS. Two runs: the controller unreachable
// (everything queues and the oldest are shed) and a controller that accepts every batch (a local
// HTTPS server with a self-signed certificate). The child runs this file compiled (dist/, see
// bench/build.ts), as users run the agent, not through tsx. Reported: the child's peak RSS (VmHWM)
// against the 100 MB target, with its split (V8 heap, buffers outside it) at the moment the
// RSS was highest among samples, drops seen, and drops shed. Prints nothing.
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compiled } from './build.js';
import type { BenchResult, BenchRow } from './types.js';
import { sampleMemory, type MemoryAtPeak } from './memory.js';

const RATE_PER_SECOND = 50_000;
const FLOOD_SECONDS = 10;
const RSS_TARGET_MB = 100;
const TICK_MS = 100;

interface ChildConfig {
  file: string;
  stateDir: string;
  url: string;
  caFile: string;
}

interface ChildReport {
  peakRssMB: number;
  /** process.memoryUsage() at the sample with the highest RSS (every 100 ms). */
  atPeak: MemoryAtPeak;
  seen: number;
  shed: number;
  queued: number;
}

/** One distinct drop per line: source address and destination port vary. */
function line(i: number): string {
  return `2026-11-23T03:20:56.${String(i % 1_000_000).padStart(6, '0')}+00:00 node-1 kernel: nftables-metal-dropped: IN=vrf09 OUT= MAC=12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00 SRC=10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255} DST=10.244.0.1 LEN=40 TOS=0x00 PREC=0x00 TTL=238 ID=46474 PROTO=TCP SPT=59265 DPT=${1 + (i % 60000)} WINDOW=1024 RES=0x00 SYN URGP=0\n`;
}

async function flood(config: ChildConfig): Promise<ChildReport> {
  const child = spawn(process.execPath, [await compiled('bench/drops-agent.ts'), '--child', JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NETWARDEN_LOG_LEVEL: 'error' },
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  await waitForLine(() => out, 'ready');
  let written = 0;
  const perTick = (RATE_PER_SECOND * TICK_MS) / 1000;
  const start = Date.now();
  for (let tick = 0; tick < (FLOOD_SECONDS * 1000) / TICK_MS; tick++) {
    let chunk = '';
    for (let k = 0; k < perTick; k++) chunk += line(written++);
    appendFileSync(config.file, chunk);
    const next = start + (tick + 1) * TICK_MS;
    await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
  }
  await new Promise((r) => setTimeout(r, 2_000)); // let the child catch up
  child.kill('SIGTERM');
  await exited;
  const report = out.split('\n').filter((l) => l.startsWith('{')).pop();
  if (!report) throw new Error(`the agent child reported nothing: ${out}`);
  return JSON.parse(report) as ChildReport;
}

async function waitForLine(text: () => string, word: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (text().includes(word)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`agent child not ${word}`);
}

/** Where the memory was at the highest sampled RSS: the V8 heap, and buffers outside it. */
function splitRows(report: ChildReport, run: string): BenchRow[] {
  return [
    { metric: `  V8 heap used / allocated at peak, ${run}`, value: report.atPeak.heapUsedMB, unit: 'MB', reference: report.atPeak.heapTotalMB },
    { metric: `  external (of which ArrayBuffers) at peak, ${run}`, value: report.atPeak.externalMB, unit: 'MB', reference: report.atPeak.arrayBuffersMB },
  ];
}

export async function benchDropsAgent(): Promise<BenchResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'nw-bench-agent-'));
  try {
    const caFile = path.join(dir, 'cert.pem');
    const keyFile = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', caFile], { stdio: 'ignore' });
    const rows: BenchRow[] = [];

    const downFile = path.join(dir, 'down.log');
    writeFileSync(downFile, '');
    const down = await flood({ file: downFile, stateDir: path.join(dir, 'state-down'), url: 'https://127.0.0.1:1/droptail/bench/drops', caFile });
    rows.push(
      { metric: 'agent peak RSS (compiled JS), controller unreachable', value: down.peakRssMB, unit: 'MB', reference: RSS_TARGET_MB, ratio: down.peakRssMB / RSS_TARGET_MB },
      ...splitRows(down, 'controller unreachable'),
      { metric: 'drops seen, controller unreachable', value: down.seen, unit: 'drops', reference: RATE_PER_SECOND * FLOOD_SECONDS, ratio: down.seen / (RATE_PER_SECOND * FLOOD_SECONDS) },
      { metric: 'drops shed, controller unreachable', value: down.shed, unit: 'drops' },
    );

    let accepted = 0;
    const server = createServer({ key: readFileSync(keyFile), cert: readFileSync(caFile) }, (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        accepted += (JSON.parse(body) as { drops: unknown[] }).drops.length;
        res.writeHead(202, { 'content-type': 'application/json' }).end('{"accepted":1}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const upFile = path.join(dir, 'up.log');
    writeFileSync(upFile, '');
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/droptail/bench/drops`;
    const up = await flood({ file: upFile, stateDir: path.join(dir, 'state-up'), url, caFile });
    server.closeAllConnections();
    server.close();
    rows.push(
      { metric: 'agent peak RSS (compiled JS), controller accepting', value: up.peakRssMB, unit: 'MB', reference: RSS_TARGET_MB, ratio: up.peakRssMB / RSS_TARGET_MB },
      ...splitRows(up, 'controller accepting'),
      { metric: 'aggregated drops accepted by the controller', value: accepted, unit: 'drops' },
      { metric: 'drops shed, controller accepting', value: up.shed, unit: 'drops' },
    );
    return { name: 'drops-agent', rows };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
      const report: ChildReport = { peakRssMB: Number(hwm?.[1] ?? 0) / 1024, atPeak, seen: pipeline.snapshot().dropsSeen, shed: pipeline.sender.shed, queued: pipeline.queued };
      process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0));
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--child') {
  void runChild(JSON.parse(process.argv[3] ?? '{}') as ChildConfig);
}
