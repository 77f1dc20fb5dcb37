// Agent memory under a flood: this process appends 50,000 distinct drop lines per second to a file
// for FLOOD_SECONDS while the measured process follows it. Three runs:
//  - the DropTail pipeline alone (file source → parser → aggregator → bounded queue → HTTPS sender)
//    in a child process, with the controller unreachable (everything queues and the oldest are
//    shed), then with a controller that accepts every batch (a local HTTPS server with a
//    self-signed certificate). The child (bench/drops-pipeline-child.ts) runs compiled (dist/), not
//    through tsx. It is not the agent: no Kubernetes client, informers or metrics server.
//  - the whole agent process (`netwarden agent`, compiled CLI) on a local control plane, with a
//    DropTail that selects its Node and follows the flooded file, sending to the accepting server.
// Reported: peak RSS (VmHWM) against the 100 MB target; for the pipeline child its split
// (V8 heap, buffers outside it) at the moment the RSS was highest among samples, drops seen and
// drops shed; for the whole agent its idle RSS, the highest RSS sampled during the flood, and the
// drops it got accepted (the run fails when none were). Prints nothing.
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startControlPlane } from '../test/env/controlplane.js';
import { createNode, waitFor } from '../test/env/fixtures.js';
import { ensureInstalled, getLocal, mustKubectl, nextNodeIP, startAgent, type NetwardenProcess } from '../test/env/netwarden.js';
import { measureChild, useCompiledCli } from './build.js';
import { procStatusMB } from './memory.js';
import type { ChildConfig, ChildReport } from './drops-pipeline-child.js';
import type { BenchResult, BenchRow } from './types.js';

const RATE_PER_SECOND = 50_000;
const FLOOD_SECONDS = 10;
const RSS_TARGET_MB = 100;
const TICK_MS = 100;
const NODE = 'bench-agent-node';
const DROPTAIL = 'bench-agent-flood';
const NODE_LABEL = 'netwarden.io/bench-agent';

/** One distinct drop per line: source address and destination port vary. */
function line(i: number): string {
  return `2026-11-23T03:20:56.${String(i % 1_000_000).padStart(6, '0')}+00:00 node-1 kernel: nftables-metal-dropped: IN=vrf09 OUT= MAC=12:99:fd:3b:ce:f8:1a:ae:e9:a7:95:50:08:00 SRC=10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255} DST=10.244.0.1 LEN=40 TOS=0x00 PREC=0x00 TTL=238 ID=46474 PROTO=TCP SPT=59265 DPT=${1 + (i % 60000)} WINDOW=1024 RES=0x00 SYN URGP=0\n`;
}

/**
 * Appends RATE_PER_SECOND distinct lines per second to file for FLOOD_SECONDS, one chunk per tick,
 * then gives the process following the file 2 s to catch up.
 */
async function writeFlood(file: string): Promise<void> {
  let written = 0;
  const perTick = (RATE_PER_SECOND * TICK_MS) / 1000;
  const start = Date.now();
  for (let tick = 0; tick < (FLOOD_SECONDS * 1000) / TICK_MS; tick++) {
    let chunk = '';
    for (let k = 0; k < perTick; k++) chunk += line(written++);
    appendFileSync(file, chunk);
    const next = start + (tick + 1) * TICK_MS;
    await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
  }
  await new Promise((r) => setTimeout(r, 2_000));
}

/** The pipeline child following config.file through the flood and the catch-up; its report. */
async function flood(config: ChildConfig): Promise<ChildReport> {
  const { report } = await measureChild<ChildReport, void>('bench/drops-pipeline-child.ts', config, () => writeFlood(config.file), { ...process.env, NETWARDEN_LOG_LEVEL: 'error' });
  return report;
}

interface WholeAgentReport {
  idleRssMB: number;
  /** VmHWM after the flood: the whole process lifetime, start-up included. */
  peakRssMB: number;
  /** Highest VmRSS of the samples taken every TICK_MS during the flood and the catch-up. */
  sampledPeakRssMB: number;
  seen: number;
  shed: number;
}

/** procStatusMB, 0 when the process is gone (the sampler runs in a timer, where a throw would crash the bench). */
function procMB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    return procStatusMB(pid, field);
  } catch {
    return 0;
  }
}

/** One sample of the agent's Prometheus output, summed over the label sets (0 when absent). */
function metricSum(body: string, name: string): number {
  let sum = 0;
  for (const m of body.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'gm'))) sum += Number(m[1]);
  return sum;
}

/**
 * The whole agent under the flood: a local control plane, a Node labelled for a DropTail that
 * follows file, and `netwarden agent` (compiled CLI, deployed runtime env via process.env) sending
 * to controllerUrl. The file must exist: the file source starts at its end, so the flood begins
 * only once the source reports it follows the file.
 */
async function floodWholeAgent(file: string, controllerUrl: string, caFile: string, accepted: () => number): Promise<WholeAgentReport> {
  await useCompiledCli(); // the agent runs compiled, as users run it
  const cp = await startControlPlane();
  try {
    await ensureInstalled(cp);
    await createNode(cp.kubeConfig(), NODE, { internalIP: nextNodeIP(), labels: { [NODE_LABEL]: 'yes' } });
    // Default prefixes (the CRD's), which include the flood's `nftables-metal-dropped: `.
    const dropTail = { apiVersion: 'netwarden.io/v1alpha1', kind: 'DropTail', metadata: { name: DROPTAIL }, spec: { nodeSelector: { [NODE_LABEL]: 'yes' }, sources: [{ type: 'file', path: file }] } };
    await mustKubectl(cp, ['apply', '-f', '-'], JSON.stringify(dropTail));
    // Later flags win (commander keeps the last value): the bench's server, not the test CA's controller.
    const agent = await startAgent(cp, NODE, [`--controller-url=${controllerUrl}`, `--ca-file=${caFile}`]);
    try {
      return await measureAgent(agent, file, accepted);
    } finally {
      await agent.kill();
    }
  } finally {
    await cp.stop();
  }
}

/** The agent's last warnings and errors, for a failure message: its log goes with the control plane's directory. */
function lastProblems(agent: NetwardenProcess): string {
  return JSON.stringify(agent.logs().filter((l) => l.level === 'warn' || l.level === 'error').slice(-5));
}

async function measureAgent(agent: NetwardenProcess, file: string, accepted: () => number): Promise<WholeAgentReport> {
  const pid = agent.child.pid;
  if (pid === undefined) throw new Error(`the agent did not start: ${lastProblems(agent)}`);
  // The pipeline's 'started' log line comes before the file is opened; the source's health gauge
  // turns 1 only once the follower sits at the file's end.
  const healthy = new RegExp(`^netwarden_agent_droptail_source_healthy\\{[^}]*source="file:${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"[^}]*\\} 1$`, 'm');
  await waitFor(async () => {
    if (agent.child.exitCode !== null) throw new Error(`the agent exited (${agent.child.exitCode}): ${lastProblems(agent)}`);
    return healthy.test((await getLocal(agent.metricsPort, '/metrics')).body);
  }, { timeoutMs: 60_000, intervalMs: 100, description: `the agent following ${file}` });
  await new Promise((r) => setTimeout(r, 2_000)); // start-up work (informer lists, first status write) settles
  const idleRssMB = procMB(pid, 'VmRSS');
  let sampledPeakRssMB = idleRssMB;
  const sampler = setInterval(() => (sampledPeakRssMB = Math.max(sampledPeakRssMB, procMB(pid, 'VmRSS'))), TICK_MS);
  try {
    await writeFlood(file);
  } finally {
    clearInterval(sampler);
  }
  if (agent.child.exitCode !== null) throw new Error(`the agent exited during the flood (${agent.child.exitCode}): ${lastProblems(agent)}`);
  const peakRssMB = procMB(pid, 'VmHWM');
  const metrics = (await getLocal(agent.metricsPort, '/metrics')).body;
  // A bench that silently measured an agent sending nothing is worse than none.
  if (accepted() === 0) throw new Error(`the whole agent got no drops accepted (drops seen: ${metricSum(metrics, 'netwarden_agent_droptail_drops_seen_total')}): ${lastProblems(agent)}`);
  return {
    idleRssMB,
    peakRssMB,
    sampledPeakRssMB,
    seen: metricSum(metrics, 'netwarden_agent_droptail_drops_seen_total'),
    shed: metricSum(metrics, 'netwarden_agent_droptail_shed_drops_total'),
  };
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
      { metric: 'DropTail pipeline process peak RSS (compiled JS), controller unreachable', value: down.peakRssMB, unit: 'MB', reference: RSS_TARGET_MB, ratio: down.peakRssMB / RSS_TARGET_MB },
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
    try {
      const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const upFile = path.join(dir, 'up.log');
      writeFileSync(upFile, '');
      const up = await flood({ file: upFile, stateDir: path.join(dir, 'state-up'), url: `${origin}/droptail/bench/drops`, caFile });
      rows.push(
        { metric: 'DropTail pipeline process peak RSS (compiled JS), controller accepting', value: up.peakRssMB, unit: 'MB', reference: RSS_TARGET_MB, ratio: up.peakRssMB / RSS_TARGET_MB },
        ...splitRows(up, 'controller accepting'),
        { metric: 'aggregated drops accepted by the controller', value: accepted, unit: 'drops' },
        { metric: 'drops shed, controller accepting', value: up.shed, unit: 'drops' },
      );

      accepted = 0;
      const agentFile = path.join(dir, 'agent.log');
      writeFileSync(agentFile, ''); // before the agent starts: its source would otherwise wait for the file
      const whole = await floodWholeAgent(agentFile, origin, caFile, () => accepted);
      rows.push(
        { metric: 'whole agent process RSS idle (netwarden agent, compiled JS, on a local control plane)', value: whole.idleRssMB, unit: 'MB' },
        { metric: 'whole agent process peak RSS under the flood, controller accepting', value: whole.peakRssMB, unit: 'MB', reference: RSS_TARGET_MB, ratio: whole.peakRssMB / RSS_TARGET_MB },
        { metric: '  highest sampled RSS during the flood, whole agent', value: whole.sampledPeakRssMB, unit: 'MB' },
        { metric: 'drops seen by the whole agent', value: whole.seen, unit: 'drops', reference: RATE_PER_SECOND * FLOOD_SECONDS, ratio: whole.seen / (RATE_PER_SECOND * FLOOD_SECONDS) },
        { metric: 'drops accepted from the whole agent', value: accepted, unit: 'drops' },
        { metric: 'drops shed, whole agent', value: whole.shed, unit: 'drops' },
      );
    } finally {
      server.closeAllConnections();
      server.close();
    }
    return { name: 'drops-agent', rows };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
