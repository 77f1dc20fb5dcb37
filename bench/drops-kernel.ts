// The kernel drop source against NFLOG on the same flood. A sender on this host sends UDP at
// FLOOD_RATE datagrams per second for FLOOD_SECONDS to 127.0.0.77 (a new destination port each,
// so every drop is distinct); a host nftables rule drops them in OUTPUT, three ways in turn:
//  - plain `drop`, no DropTail: what the packets cost the kernel with nobody watching;
//  - plain `drop`, a DropTail with `type: kernel` (the eBPF program on skb:kfree_skb);
//  - `log group N drop`, a DropTail with `type: nflog` (what users run today).
// The agent is the whole `netwarden agent` (compiled CLI, config/'s runtime env) on a local control
// plane, sending to a local HTTPS server that accepts every batch and sums the drops in them.
// Reported per run: drops delivered per second (accepted by the server), the agent's CPU per 1,000
// drops, the sender's kernel time per packet (what the observer adds to the path it observes),
// the eBPF program's own run time (kernel.bpf_stats_enabled, restored after), samples lost, and the
// agent's RSS against its idle RSS plus the 40 MB a flood may add.
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startControlPlane } from '../test/env/controlplane.js';
import { createNode, waitFor } from '../test/env/fixtures.js';
import { ensureInstalled, getLocal, mustKubectl, nextNodeIP, startAgent, type NetwardenProcess } from '../test/env/netwarden.js';
import { useCompiledCli } from './build.js';
import { procStatusMB } from './memory.js';
import type { BenchResult, BenchRow } from './types.js';

const FLOOD_RATE = 50_000;
const FLOOD_SECONDS = 10;
const TARGET = '127.0.0.77';
const TABLE = `nwbench_kernel_${process.pid % 10_000}`;
const GROUP = 60_000 + (process.pid % 5_000);
const NODE = 'bench-kernel-node';
const LABEL = 'netwarden.io/bench-kernel';
const FLOOD_ADDS_MB = 40;
const CLOCK_TICKS = 100; // USER_HZ

/** Paced UDP sender: prints "sent user_s sys_s" (its own CPU) at the end. */
const SENDER = `
import os, socket, sys, time
rate, secs, host = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n = 0
start = time.perf_counter()
end = start + secs
while True:
    now = time.perf_counter()
    if now >= end:
        break
    due = int((now - start) * rate)
    while n < due:
        try:
            s.sendto(b"x", (host, 1 + n % 60000))
        except OSError:
            pass
        n += 1
    time.sleep(0.001)
t = os.times()
print(n, t.user, t.system)
`;

interface Sent {
  packets: number;
  userS: number;
  sysS: number;
}

function flood(): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', SENDER, String(FLOOD_RATE), String(FLOOD_SECONDS), TARGET], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const [packets, userS, sysS] = out.trim().split(/\s+/).map(Number);
      if (code !== 0 || !packets) reject(new Error(`the sender failed (${code}): ${out}`));
      else resolve({ packets, userS: userS!, sysS: sysS! });
    });
  });
}

function nft(script: string): void {
  execFileSync('nft', ['-f', '-'], { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
}

function setRule(rule: string): void {
  nft(`table ip ${TABLE} {}\ndelete table ip ${TABLE}\ntable ip ${TABLE} {\n  chain out {\n    type filter hook output priority 0; policy accept;\n    ${rule}\n  }\n}\n`);
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** run_time_ns and run_cnt of the BPF programs the process holds (kernel.bpf_stats_enabled=1). */
function bpfRunStats(pid: number): { ns: number; runs: number } {
  let ns = 0;
  let runs = 0;
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    let info: string;
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue;
    }
    const time = /^run_time_ns:\s+(\d+)$/m.exec(info);
    const count = /^run_cnt:\s+(\d+)$/m.exec(info);
    if (time && count) {
      ns += Number(time[1]);
      runs += Number(count[1]);
    }
  }
  return { ns, runs };
}

function metricSum(body: string, name: string, filter = ''): number {
  let sum = 0;
  for (const m of body.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? ([0-9.e+-]+)$`, 'gm'))) if (!filter || (m[1] ?? '').includes(filter)) sum += Number(m[2]);
  return sum;
}

interface RunReport {
  sent: Sent;
  delivered: number;
  agentCpuS: number;
  lost: number;
  submitted: number;
  bpf: { ns: number; runs: number };
  peakRssMB: number;
}

export async function benchDropsKernel(): Promise<BenchResult> {
  if (!process.env.NETWARDEN_BPF_OBJECT || !existsSync('/sys/kernel/btf/vmlinux')) throw new Error('the kernel source needs BTF and the program the bootstrap builds (NETWARDEN_BPF_OBJECT)');
  const dir = mkdtempSync(path.join(tmpdir(), 'nw-bench-kernel-'));
  const statsFile = '/proc/sys/kernel/bpf_stats_enabled';
  const statsBefore = readFileSync(statsFile, 'utf8').trim();
  let delivered = 0;
  const caFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', caFile], { stdio: 'ignore' });
  const server = createServer({ key: readFileSync(keyFile), cert: readFileSync(caFile) }, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      if (req.url?.endsWith('/drops')) for (const d of (JSON.parse(body) as { drops: Array<{ count: number }> }).drops) delivered += d.count;
      res.writeHead(202, { 'content-type': 'application/json' }).end('{"accepted":1}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await useCompiledCli();
  const cp = await startControlPlane();
  let agent: NetwardenProcess | undefined;
  try {
    writeFileSync(statsFile, '1');
    await ensureInstalled(cp);
    await createNode(cp.kubeConfig(), NODE, { internalIP: nextNodeIP(), labels: { [LABEL]: 'yes' } });
    agent = await startAgent(cp, NODE, [`--controller-url=${origin}`, `--ca-file=${caFile}`]);
    const pid = agent.child.pid!;
    await waitFor(async () => (await getLocal(agent!.metricsPort, '/metrics')).status === 200, { timeoutMs: 60_000, description: 'the agent serving metrics' });
    await new Promise((r) => setTimeout(r, 3_000));
    const idleRssMB = procStatusMB(pid, 'VmRSS');

    const run = async (name: string, source: Record<string, unknown> | undefined, rule: string): Promise<RunReport> => {
      setRule(rule);
      if (source) {
        await mustKubectl(cp, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'netwarden.io/v1alpha1', kind: 'DropTail', metadata: { name }, spec: { nodeSelector: { [LABEL]: 'yes' }, sources: [source] } }));
        await waitFor(async () => /netwarden_agent_droptail_source_healthy\{[^}]*\} 1/.test((await getLocal(agent!.metricsPort, '/metrics')).body), { timeoutMs: 30_000, description: `${name}: the source reading` });
        await new Promise((r) => setTimeout(r, 1_000));
      }
      const before = (await getLocal(agent!.metricsPort, '/metrics')).body;
      const cpuBefore = cpuSeconds(pid);
      const bpfBefore = bpfRunStats(pid);
      delivered = 0;
      let peakRssMB = procStatusMB(pid, 'VmRSS');
      const sampler = setInterval(() => {
        if (agent!.child.exitCode === null) peakRssMB = Math.max(peakRssMB, procStatusMB(pid, 'VmRSS'));
      }, 100);
      const sent = await flood();
      if (agent!.child.exitCode !== null) throw new Error(`the agent exited during the ${name} flood (${agent!.child.exitCode ?? agent!.child.signalCode}); its log: ${agent!.logFile}`);
      await new Promise((r) => setTimeout(r, 3_000)); // the last windows reach the server
      clearInterval(sampler);
      const after = (await getLocal(agent!.metricsPort, '/metrics')).body;
      const bpfAfter = bpfRunStats(pid);
      const report: RunReport = {
        sent,
        delivered,
        agentCpuS: cpuSeconds(pid) - cpuBefore,
        lost: metricSum(after, 'netwarden_agent_droptail_kernel_samples_total', 'lost') - metricSum(before, 'netwarden_agent_droptail_kernel_samples_total', 'lost'),
        submitted: metricSum(after, 'netwarden_agent_droptail_kernel_samples_total', 'submitted') - metricSum(before, 'netwarden_agent_droptail_kernel_samples_total', 'submitted'),
        bpf: { ns: bpfAfter.ns - bpfBefore.ns, runs: bpfAfter.runs - bpfBefore.runs },
        peakRssMB,
      };
      if (source) await mustKubectl(cp, ['delete', 'droptail', name]);
      return report;
    };

    const none = await run('bench-none', undefined, `ip daddr ${TARGET} udp dport 1-60000 drop`);
    const kernel = await run('bench-kernel', { type: 'kernel' }, `ip daddr ${TARGET} udp dport 1-60000 drop`);
    const nflog = await run('bench-nflog', { type: 'nflog', group: GROUP }, `ip daddr ${TARGET} udp dport 1-60000 log prefix "nftables-metal-dropped: " group ${GROUP} drop`);
    if (kernel.delivered === 0 || nflog.delivered === 0) throw new Error(`nothing delivered (kernel ${kernel.delivered}, nflog ${nflog.delivered}): ${JSON.stringify(agent.logs().filter((l) => l.level !== 'info').slice(-5))}`);

    const perSecond = (r: RunReport) => r.delivered / FLOOD_SECONDS;
    const cpuPerK = (r: RunReport) => (r.agentCpuS * 1000 * 1000) / Math.max(1, r.delivered); // ms per 1,000 drops
    const sysPerPacketUs = (r: RunReport) => (r.sent.sysS * 1e6) / r.sent.packets;
    const rows: BenchRow[] = [
      { metric: `drops delivered/s, kernel source (offered ${FLOOD_RATE.toLocaleString('en-US')}/s for ${FLOOD_SECONDS} s)`, value: perSecond(kernel), unit: 'drops/s', reference: FLOOD_RATE, ratio: perSecond(kernel) / FLOOD_RATE },
      { metric: 'drops delivered/s, NFLOG source, same flood', value: perSecond(nflog), unit: 'drops/s', reference: FLOOD_RATE, ratio: perSecond(nflog) / FLOOD_RATE },
      { metric: 'drops delivered, kernel vs NFLOG', value: kernel.delivered, unit: 'drops', reference: nflog.delivered, ratio: kernel.delivered / nflog.delivered },
      { metric: 'agent CPU per 1,000 drops, kernel source vs NFLOG', value: cpuPerK(kernel), unit: 'ms', reference: cpuPerK(nflog), ratio: cpuPerK(kernel) / cpuPerK(nflog) },
      { metric: 'agent CPU during the flood, kernel source (of one core)', value: kernel.agentCpuS / FLOOD_SECONDS, unit: 'cores', reference: nflog.agentCpuS / FLOOD_SECONDS, ratio: kernel.agentCpuS / Math.max(1e-9, nflog.agentCpuS) },
      { metric: 'sender kernel time per packet, with the kernel source vs no observer', value: sysPerPacketUs(kernel), unit: 'µs', reference: sysPerPacketUs(none), ratio: sysPerPacketUs(kernel) / sysPerPacketUs(none) },
      { metric: 'sender kernel time per packet, with the NFLOG rule vs no observer', value: sysPerPacketUs(nflog), unit: 'µs', reference: sysPerPacketUs(none), ratio: sysPerPacketUs(nflog) / sysPerPacketUs(none) },
      { metric: 'eBPF program time per kfree_skb call (all frees, filtered in the kernel)', value: kernel.bpf.ns / Math.max(1, kernel.bpf.runs), unit: 'ns' },
      { metric: '  kfree_skb calls during the kernel run, samples submitted', value: kernel.bpf.runs, unit: 'calls', reference: kernel.submitted },
      { metric: 'samples lost (ring buffer full), of those submitted', value: kernel.lost, unit: 'samples', reference: kernel.submitted + kernel.lost, ratio: kernel.lost / Math.max(1, kernel.submitted + kernel.lost) },
      { metric: 'agent RSS idle', value: idleRssMB, unit: 'MB' },
      { metric: 'agent peak RSS during the kernel flood, vs idle + 40 MB', value: kernel.peakRssMB, unit: 'MB', reference: idleRssMB + FLOOD_ADDS_MB, ratio: (kernel.peakRssMB - idleRssMB) / FLOOD_ADDS_MB },
      { metric: 'agent peak RSS during the NFLOG flood, vs idle + 40 MB', value: nflog.peakRssMB, unit: 'MB', reference: idleRssMB + FLOOD_ADDS_MB, ratio: (nflog.peakRssMB - idleRssMB) / FLOOD_ADDS_MB },
    ];
    return { name: 'drops-kernel', rows };
  } finally {
    writeFileSync(statsFile, statsBefore);
    try {
      nft(`delete table ip ${TABLE}\n`);
    } catch {
      // not there
    }
    await agent?.kill();
    await cp.stop();
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
