// AuditForwarder throughput: forward a generated 1 GB audit log (the backlog;
// NETWARDEN_BENCH_AUDIT_MB for another size) through the real pipeline (LineFollower → parse
// → filter → gzip EventList batches of the default 50 MB → webhook on loopback), and compare with
// `gzip -1` of the same file in the same run (the compression floor). The forwarder runs in a
// child process so its CPU time and peak RSS are its own; the receiver (this process) only drains.
// The child runs this file compiled (dist/, see bench/build.ts), as users run the agent, not tsx.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { AuditPipeline } from '../src/nodeagent/audit/pipeline.js';
import { buildSink } from '../src/nodeagent/audit/sinks/index.js';
import { spawnCompiled } from './build.js';
import type { BenchResult } from './types.js';
import { sampleMemory, type MemoryAtPeak } from './memory.js';

const CHILD_FLAG = '--audit-bench-child';
const MiB = 1024 * 1024;
const USERS = ['system:kube-controller-manager', 'system:serviceaccount:kube-system:replicaset-controller', 'system:node:worker-1', 'admin', 'system:kube-scheduler'];
const VERBS = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
const RESOURCES = ['pods', 'configmaps', 'leases', 'events', 'deployments', 'secrets', 'nodes'];

/** Writes realistic Metadata-level audit events (about 1 KB each) until the file has `bytes`. */
async function generateLog(file: string, bytes: number): Promise<number> {
  const out = createWriteStream(file);
  let written = 0;
  let events = 0;
  const t0 = Date.parse('2026-05-01T10:00:00Z');
  while (written < bytes) {
    const lines: string[] = [];
    for (let i = 0; i < 1000; i++, events++) {
      const verb = VERBS[events % VERBS.length]!;
      const resource = RESOURCES[(events >> 3) % RESOURCES.length]!;
      const user = USERS[(events >> 5) % USERS.length]!;
      const ts = new Date(t0 + events).toISOString().replace('Z', '123Z');
      const id = `${(0x10000000 + events).toString(16)}-4c1e-4a7e-9b1d-${String(events).padStart(12, '0')}`;
      lines.push(JSON.stringify({
        kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Metadata', auditID: id, stage: 'ResponseComplete',
        requestURI: `/api/v1/namespaces/ns-${events % 50}/${resource}/obj-${events % 997}?timeout=10s`, verb,
        user: { username: user, uid: `uid-${events % 13}`, groups: ['system:authenticated', 'system:serviceaccounts'], extra: { 'authentication.kubernetes.io/node-name': ['worker-1'] } },
        sourceIPs: [`10.0.${events % 256}.${events % 251}`], userAgent: 'kube-controller-manager/v1.35.4 (linux/amd64) kubernetes/e30da68/system:serviceaccount:kube-system:replicaset-controller',
        objectRef: { resource, namespace: `ns-${events % 50}`, name: `obj-${events % 997}`, apiVersion: 'v1' },
        responseStatus: { metadata: {}, code: 200 },
        requestReceivedTimestamp: ts, stageTimestamp: ts,
        annotations: { 'authorization.k8s.io/decision': 'allow', 'authorization.k8s.io/reason': 'RBAC: allowed by ClusterRoleBinding "system:controller:replicaset-controller"' },
      }));
    }
    const chunk = lines.join('\n') + '\n';
    written += Buffer.byteLength(chunk);
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return events;
}

function timeCommand(cmd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn('sh', ['-c', cmd], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t0) / 1e9) : reject(new Error(`${cmd}: exit ${code}`))));
  });
}

interface ChildReport {
  seconds: number;
  cpuSeconds: number;
  maxRssMB: number;
  baselineRssMB: number;
  /** process.memoryUsage() at the sample with the highest RSS (every 100 ms). */
  atPeak: MemoryAtPeak;
  shippedEvents: number;
  shippedBytes: number;
}

/** The forwarder side, in the child: ship `events` events of `file`, then report. */
async function runChild(file: string, url: string, events: number, stateDir: string, gzip: boolean): Promise<void> {
  const sink = { webhook: { url, format: 'eventList' as const, gzip } };
  const settings = { sourcePath: file, clusterID: 'bench', maxBytes: 52_428_800, maxWaitMs: 500, maxEvents: Number.POSITIVE_INFINITY, rules: [], sink };
  const baselineRssMB = process.memoryUsage().rss / MiB; // node + libraries, before any forwarding
  const memory = sampleMemory();
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const pipeline = new AuditPipeline({ forwarder: 'bench', nodeName: 'bench-node', settings, stateDir, buildSink: () => buildSink(new KubeConfig(), sink, stateDir, 'netwarden-system') });
  pipeline.start();
  for (;;) {
    const st = await pipeline.status();
    if ((st.shippedEvents ?? 0) >= events) {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpu = process.cpuUsage(cpu0);
      const atPeak = memory.stop();
      const report: ChildReport = { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, maxRssMB: process.resourceUsage().maxRSS / 1024, baselineRssMB, atPeak, shippedEvents: st.shippedEvents ?? 0, shippedBytes: st.shippedBytes ?? 0 };
      process.stdout.write(JSON.stringify(report) + '\n');
      await pipeline.stop();
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Forwards all `events` of file in a child (see runChild); fails unless it shipped every one. */
async function forwardInChild(file: string, url: string, events: number, stateDir: string, gzip: boolean): Promise<ChildReport> {
  const child = await spawnCompiled('bench/audit.ts', [CHILD_FLAG, file, url, String(events), stateDir, gzip ? 'gzip' : 'plain'], { ...process.env, NETWARDEN_LOG_LEVEL: 'error' });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`forwarder child exited with ${code}`);
  const report = JSON.parse(out.trim().split('\n').at(-1)!) as ChildReport;
  if (report.shippedEvents !== events) throw new Error(`shipped ${report.shippedEvents} of ${events} events${gzip ? '' : ' without gzip'}`);
  return report;
}

export async function benchAudit(opts: { megabytes?: number } = {}): Promise<BenchResult> {
  const mb = opts.megabytes ?? Number(process.env.NETWARDEN_BENCH_AUDIT_MB ?? 1024);
  const dir = mkdtempSync(path.join(tmpdir(), 'nw-audit-bench-'));
  const server = http.createServer((req, res) => {
    req.on('data', () => undefined); // drain only: the receiver is not what is measured
    req.on('end', () => res.writeHead(200).end());
  });
  try {
    const file = path.join(dir, 'audit.log');
    const events = await generateLog(file, mb * 1024 * 1024);
    const bytes = statSync(file).size;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/audit`;
    const gzipSeconds = await timeCommand(`gzip -1 -c '${file}' > /dev/null`);
    const r = await forwardInChild(file, url, events, path.join(dir, 'state'), true);
    // The webhook's default is no gzip: then each 50 MB batch body is raw (spooled to disk too).
    const plain = await forwardInChild(file, url, events, path.join(dir, 'state-plain'), false);
    const mbps = bytes / 1e6 / r.seconds;
    const gzipMbps = bytes / 1e6 / gzipSeconds;
    const perCore = bytes / 1e6 / r.cpuSeconds;
    return {
      name: 'audit',
      rows: [
        { metric: 'audit log', value: Math.round(bytes / 1e6), unit: 'MB' },
        { metric: 'events', value: events, unit: 'events' },
        { metric: 'forward throughput (wall, gzip EventList to loopback webhook)', value: Number(mbps.toFixed(1)), unit: 'MB/s', reference: gzipMbps, ratio: mbps / gzipMbps },
        { metric: 'gzip -1 FILE > /dev/null', value: Number(gzipMbps.toFixed(1)), unit: 'MB/s' },
        { metric: 'events per second', value: Math.round(events / r.seconds), unit: 'events/s' },
        { metric: 'throughput per CPU second (target 50)', value: Number(perCore.toFixed(1)), unit: 'MB/s/core', reference: 50, ratio: perCore / 50 },
        { metric: 'forwarder CPU time', value: Number(r.cpuSeconds.toFixed(1)), unit: 's' },
        { metric: 'forwarder peak RSS, compiled JS (target 150)', value: Math.round(r.maxRssMB), unit: 'MB', reference: 150, ratio: r.maxRssMB / 150 },
        { metric: 'RSS before forwarding (node + libraries, compiled)', value: Math.round(r.baselineRssMB), unit: 'MB' },
        { metric: 'RSS added by forwarding the backlog', value: Math.round(r.maxRssMB - r.baselineRssMB), unit: 'MB' },
        { metric: '  V8 heap used / allocated at peak', value: Number(r.atPeak.heapUsedMB.toFixed(1)), unit: 'MB', reference: Number(r.atPeak.heapTotalMB.toFixed(1)) },
        { metric: '  external (of which ArrayBuffers) at peak', value: Number(r.atPeak.externalMB.toFixed(1)), unit: 'MB', reference: Number(r.atPeak.arrayBuffersMB.toFixed(1)) },
        { metric: 'without gzip (the webhook default): forward throughput (wall)', value: Number((bytes / 1e6 / plain.seconds).toFixed(1)), unit: 'MB/s' },
        { metric: 'without gzip: throughput per CPU second (target 50)', value: Number((bytes / 1e6 / plain.cpuSeconds).toFixed(1)), unit: 'MB/s/core', reference: 50, ratio: bytes / 1e6 / plain.cpuSeconds / 50 },
        { metric: 'without gzip: forwarder peak RSS (target 150)', value: Math.round(plain.maxRssMB), unit: 'MB', reference: 150, ratio: plain.maxRssMB / 150 },
        { metric: '  without gzip: V8 heap used / allocated at peak', value: Number(plain.atPeak.heapUsedMB.toFixed(1)), unit: 'MB', reference: Number(plain.atPeak.heapTotalMB.toFixed(1)) },
        { metric: '  without gzip: external (of which ArrayBuffers) at peak', value: Number(plain.atPeak.externalMB.toFixed(1)), unit: 'MB', reference: Number(plain.atPeak.arrayBuffersMB.toFixed(1)) },
      ],
    };
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === CHILD_FLAG) {
  const [, , , file, url, events, stateDir, compression] = process.argv;
  await runChild(file!, url!, Number(events), stateDir!, compression === 'gzip');
} else if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  console.log(JSON.stringify(await benchAudit(), null, 2));
}
