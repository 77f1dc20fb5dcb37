// `npm run bench [-- NAME ...] [--save-baseline]`: runs the benchmarks and prints, per measurement,
// the value, the reference it is compared with in the same run (cat, grep, gzip -1, tcpdump or the
// issue's target) and their ratio, and, side by side, the ratio against the saved reference run
// (bench/baseline.json, written by --save-baseline) so a regression shows as a number below 1.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Bench, BenchResult } from './types.js';
import { DEPLOYED_RUNTIME_ENV, deployedRuntime, type WorkloadRuntime } from './build.js';
import { benchAudit } from './audit.js';
import { benchAuditChaos } from './audit-chaos.js';
import { benchCapture } from './capture.js';
import { benchCaptureDownload } from './capture-download.js';
import { benchControllerMemory } from './controller-memory.js';
import { benchDropsAgent } from './drops-agent.js';
import { benchDropsLatency } from './drops-latency.js';
import { benchDropsNflog } from './drops-nflog.js';
import { benchDropsKernel } from './drops-kernel.js';
import { benchDropsParse } from './drops-parse.js';
import { benchScale } from './scale.js';
import { benchEventBudget } from './event-budget.js';

const BENCHES: Record<string, Bench> = {
  'drops-parse': () => benchDropsParse(),
  'drops-nflog': () => benchDropsNflog(),
  'drops-kernel': () => benchDropsKernel(),
  'drops-agent': () => benchDropsAgent(),
  'drops-latency': () => benchDropsLatency(),
  'event-budget': () => benchEventBudget(),
  capture: () => benchCapture(),
  'capture-download': () => benchCaptureDownload(),
  'capture-download-pcapng': () => benchCaptureDownload('pcapng'),
  audit: () => benchAudit(),
  'audit-chaos': () => benchAuditChaos(),
  'controller-memory': () => benchControllerMemory(),
  scale: () => benchScale(),
};

const here = path.dirname(fileURLToPath(import.meta.url));
const baselineFile = path.join(here, 'baseline.json');

type Baseline = Record<string, Record<string, number>>;

function loadBaseline(): Baseline {
  return existsSync(baselineFile) ? (JSON.parse(readFileSync(baselineFile, 'utf8')) as Baseline) : {};
}

function format(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '';
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  return Number(n.toPrecision(3)).toString();
}

function printResult(result: BenchResult, baseline: Record<string, number> | undefined): void {
  const header = ['metric', 'value', 'unit', 'reference', 'ratio', 'vs baseline'];
  const rows = result.rows.map((r) => {
    const before = baseline?.[r.metric];
    return [r.metric, format(r.value), r.unit, format(r.reference), r.ratio === undefined ? '' : `${format(r.ratio)}x`, before ? `${format(r.value / before)}x` : ''];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 || i === 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  process.stdout.write(`\n## ${result.name}\n${line(header)}\n${rows.map(line).join('\n')}\n`);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const save = args.includes('--save-baseline');
  const wanted = args.filter((a) => !a.startsWith('--'));
  const unknown = wanted.filter((w) => !BENCHES[w]);
  if (unknown.length) throw new Error(`unknown benchmark(s) ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}`);
  // Child processes (agent, controller, forwarder) run with the runtime settings config/ deploys.
  const deployed = deployedRuntime();
  process.env[DEPLOYED_RUNTIME_ENV] = JSON.stringify(deployed);
  const describe = (r: WorkloadRuntime) => [...Object.entries(r.env).map(([k, v]) => `${k}=${v}`), 'node', ...r.nodeArgs].join(' ');
  process.stdout.write(`measured processes run as config/ deploys them:\n  agent: ${describe(deployed.agent)}\n  controller: ${describe(deployed.controller)}\n`);
  const baseline = loadBaseline();
  const next: Baseline = { ...baseline };
  for (const [name, bench] of Object.entries(BENCHES)) {
    if (wanted.length && !wanted.includes(name)) continue;
    process.stdout.write(`\nrunning ${name} ...\n`);
    const result = await bench();
    printResult(result, baseline[result.name]);
    next[result.name] = Object.fromEntries(result.rows.map((r) => [r.metric, r.value]));
  }
  if (save) {
    writeFileSync(baselineFile, `${JSON.stringify(next, null, 2)}\n`);
    process.stdout.write(`\nsaved the reference run to ${path.relative(process.cwd(), baselineFile)}\n`);
  }
}

await main();
