// Capture completeness and cost: the same burst of UDP packets from a pod network namespace, captured
// on the pod's host-side veth first by the agent's capture engine (PodCapture: libpcap through cap,
// pcap files written by us) and then by dumpcap -w (Wireshark's capture tool; tcpdump is not
// installed here, and dumpcap is what `tshark -w` runs). Reports packets captured per packet that
// crossed the veth for each, their ratio (target >= 0.9), and the engine's CPU and peak RSS.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compileCaptureFilter } from '../src/nodeagent/capture/filter.js';
import { DEFAULT_CEILINGS } from '../src/nodeagent/capture/plan.js';
import { run } from '../test/env/controlplane.js';
import { createPodNetwork, type PodNetwork } from '../test/env/podnet.js';
import { measureChild } from './build.js';
import type { EngineConfig, EngineReport } from './capture-engine-child.js';
import type { BenchResult } from './types.js';

const PACKETS = 200_000;
const PORT = 9999;
const SENDER_IP = '10.244.174.10';
const RECEIVER_IP = '10.244.174.11';
const MIB = 1024 * 1024;

// As fast as one Python process can send: bursts without pauses.
const SENDER = `
import socket, sys
n, dst, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = b'x' * 64
sent = 0
while sent < n:
    try:
        s.sendto(payload, (dst, port)); sent += 1
    except OSError:
        pass
print(sent)
`;

function rxPackets(iface: string): number {
  return Number(readFileSync(`/sys/class/net/${iface}/statistics/rx_packets`, 'utf8'));
}

/** Sends the burst; returns the packets the host-side veth received and the wall time. */
async function offerTraffic(sender: PodNetwork): Promise<{ offered: number; seconds: number }> {
  const before = rxPackets(sender.hostInterface);
  const start = process.hrtime.bigint();
  const r = await sender.exec(['python3', '-c', SENDER, String(PACKETS), RECEIVER_IP, String(PORT)], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`sender failed: ${r.stderr}`);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await new Promise((res) => setTimeout(res, 1000)); // let the capture drain its buffer
  return { offered: rxPackets(sender.hostInterface) - before, seconds };
}

/**
 * The engine runs in a child process of its own, compiled, as the agent would run it: its CPU and
 * RSS are then the engine's, not those of this bench process and the benchmarks before it.
 */
async function withEngine(sender: PodNetwork, dir: string, filter: string, ringBytes: number, format: EngineConfig['format'] = 'pcap'): Promise<EngineReport & { offered: number; pps: number }> {
  const config: EngineConfig = { dir, device: sender.hostInterface, filter, ringBytes, format };
  const { report, result } = await measureChild<EngineReport, { offered: number; seconds: number }>('bench/capture-engine-child.ts', config, () => offerTraffic(sender));
  return { ...report, offered: result.offered, pps: result.offered / result.seconds };
}

async function withDumpcap(sender: PodNetwork, dir: string, filter: string): Promise<{ captured: number; offered: number }> {
  const file = path.join(dir, 'dumpcap.pcap');
  // A 32 MiB kernel buffer (TPACKET_V3: packed frames, unlike the engine's), pcap format, no name resolution.
  const child = spawn('dumpcap', ['-q', '-i', sender.hostInterface, '-f', filter, '-B', '32', '-P', '-w', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('Capturing on')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`dumpcap exited (${code}): ${stderr}`)));
    setTimeout(() => resolve(), 3000);
  });
  const { offered } = await offerTraffic(sender);
  child.kill('SIGINT');
  await new Promise((resolve) => child.once('exit', resolve));
  const counted = await run('capinfos', ['-c', '-M', '-T', file]);
  const captured = Number(counted.stdout.trim().split('\n').pop()?.split('\t')[1] ?? 'NaN');
  return { captured, offered };
}

export async function benchCapture(): Promise<BenchResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'nw-bench-capture-'));
  const sender = await createPodNetwork({ name: 'capbench-s', ip: SENDER_IP });
  const receiver = await createPodNetwork({ name: 'capbench-r', ip: RECEIVER_IP });
  try {
    const filter = compileCaptureFilter([{ protocol: 'UDP', ports: [PORT] }], 'egress', SENDER_IP);
    // The agent's default ring, and the 32 MiB one it had before node ring budgets (the kernel
    // ring is twice the buffer): how much of a burst each keeps.
    const ours = await withEngine(sender, mkdtempSync(path.join(dir, 'default-')), filter, DEFAULT_CEILINGS.ringBytes);
    const big = await withEngine(sender, mkdtempSync(path.join(dir, 'big-')), filter, 32 * MIB);
    // spec.format pcapng: the same burst, each packet an EPB with the pod in opt_comment.
    const ng = await withEngine(sender, mkdtempSync(path.join(dir, 'pcapng-')), filter, DEFAULT_CEILINGS.ringBytes, 'pcapng');
    const ngRatio = ng.captured / ng.offered;
    const ref = await withDumpcap(sender, dir, filter);
    const oursRatio = ours.captured / ours.offered;
    const bigRatio = big.captured / big.offered;
    const refRatio = ref.captured / ref.offered;
    const ring = `${DEFAULT_CEILINGS.ringBytes / MIB} MiB buffer`;
    return {
      name: 'capture (UDP burst from a pod netns, captured on its host-side veth)',
      rows: [
        { metric: 'offered rate', value: Math.round(ours.pps), unit: 'packets/s' },
        { metric: `captured per offered: agent engine (${ring}) vs dumpcap -w`, value: oursRatio, unit: 'ratio', reference: refRatio, ratio: oursRatio / refRatio },
        { metric: `captured per offered: agent engine (${ring}) vs target 0.9 of dumpcap`, value: oursRatio / refRatio, unit: 'ratio', reference: 0.9, ratio: oursRatio / refRatio / 0.9 },
        { metric: 'captured per offered: agent engine (32 MiB buffer) vs dumpcap -w', value: bigRatio, unit: 'ratio', reference: refRatio, ratio: bigRatio / refRatio },
        { metric: `captured per offered: agent engine pcapng (${ring}) vs dumpcap -w`, value: ngRatio, unit: 'ratio', reference: refRatio, ratio: ngRatio / refRatio },
        { metric: `agent engine CPU per 100k offered packets (${ring})`, value: (ours.cpuSeconds / ours.offered) * 100_000, unit: 'CPU s' },
        { metric: `agent engine CPU per 100k offered packets, pcapng vs pcap (${ring})`, value: (ng.cpuSeconds / ng.offered) * 100_000, unit: 'CPU s', reference: (ours.cpuSeconds / ours.offered) * 100_000, ratio: ng.cpuSeconds / ng.offered / (ours.cpuSeconds / ours.offered) },
        { metric: `agent engine peak RSS (compiled JS, own process, ${ring})`, value: ours.peakRssMiB, unit: 'MiB' },
        { metric: 'agent engine peak RSS (compiled JS, own process, 32 MiB buffer)', value: big.peakRssMiB, unit: 'MiB' },
        { metric: 'packets offered (agent run / dumpcap run)', value: ours.offered, unit: 'packets', reference: ref.offered },
      ],
    };
  } finally {
    await sender.destroy();
    await receiver.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
