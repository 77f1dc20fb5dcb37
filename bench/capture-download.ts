// Download of a large capture through the controller: pcap files (NETWARDEN_BENCH_CAPTURE_MB,
// default 1024) are generated in a simulated node's agent state directory, the real agent lists
// and serves them, the real controller streams them into one zip, and the plugin's download code
// writes it to disk. Reports MB/s and the controller's peak RSS (VmHWM; target < 200 MB, since the
// zip is streamed and never held whole), with `cat` of the same files as the disk reference.
// Controller and agent run compiled (dist/, see bench/build.ts), as users run them, not tsx.
// capture-download-pcapng: the same amount as pcapng files of two pods whose packets interleave
// in time, downloaded with ?merge=true: the controller's k-way merge into one sorted file.
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { startControlPlane } from '../test/env/controlplane.js';
import { createNamespace, createNode, createPod, createServiceAccount, requestToken, waitFor } from '../test/env/fixtures.js';
import { controllerUrl, ensureInstalled, mustKubectl, netwardenCaFile, netwardenPorts, nextNodeIP, startAgent, startController } from '../test/env/netwarden.js';
import { run } from '../test/env/controlplane.js';
import { LinkType } from '../src/pcap/reader.js';
import { epbBytes, pcapFileHeader, pcapngInterfaceDescription, pcapngSectionHeader, pcapRecord, podInterfaceDescription, podPacketOptions, writeEnhancedPacket } from '../src/util/pcapformat.js';
import { downloadCapture } from '../src/plugin/capture.js';
import { useCompiledCli } from './build.js';
import { procStatusMB } from './memory.js';
import type { BenchResult } from './types.js';

const NS = 'bench-download';
const NAME = 'pc-bench-download';
const NODE = 'bench-download-node';
const FILE_MB = 64;

function udpPacket(): Buffer {
  const packet = Buffer.alloc(14 + 20 + 8 + 1024);
  packet.writeUInt16BE(0x0800, 12);
  packet[14] = 0x45;
  packet.writeUInt16BE(20 + 8 + 1024, 16);
  packet[22] = 64;
  packet[23] = 17;
  Buffer.from([10, 244, 175, 3, 10, 244, 175, 10]).copy(packet, 26);
  return packet;
}

/** Writes `totalMB` of pcap (UDP datagrams, 1 KiB payload) as files of FILE_MB each. */
function generateFiles(dir: string, totalMB: number): number {
  mkdirSync(dir, { recursive: true });
  const record = pcapRecord(1_760_000_000_000_000_000n, udpPacket());
  const chunk = Buffer.concat(Array.from({ length: Math.floor((1024 * 1024) / record.length) }, () => record));
  let bytes = 0;
  const files = Math.max(1, Math.ceil(totalMB / FILE_MB));
  for (let i = 1; i <= files; i++) {
    const fd = openSync(path.join(dir, `logging-bench_calibench_${String(i).padStart(5, '0')}.pcap`), 'w');
    bytes += writeSync(fd, pcapFileHeader(LinkType.ETHERNET));
    for (let mb = 0; mb < Math.min(FILE_MB, totalMB - (i - 1) * FILE_MB); mb++) bytes += writeSync(fd, chunk);
    closeSync(fd);
  }
  return bytes;
}

/** The same as pcapng, half for each of two pods, files of FILE_MB, their packets alternating in time. */
function generatePcapngFiles(dir: string, totalMB: number): number {
  mkdirSync(dir, { recursive: true });
  const packet = udpPacket();
  let bytes = 0;
  const pods = ['logging-bench', 'web-bench'];
  pods.forEach((pod, p) => {
    const label = { namespace: NS, pod, node: NODE, iface: 'calibench', direction: 'both', capture: `${NS}/${NAME}` };
    const options = podPacketOptions(label);
    const perPacket = epbBytes(packet.length, options.length);
    const chunk = Buffer.alloc(Math.floor((1024 * 1024) / perPacket) * perPacket);
    let micros = 1_760_000_000_000_000 + p;
    const podMB = Math.floor(totalMB / pods.length);
    const files = Math.max(1, Math.ceil(podMB / FILE_MB));
    for (let i = 1; i <= files; i++) {
      const fd = openSync(path.join(dir, `${pod}_calibench_${String(i).padStart(5, '0')}.pcapng`), 'w');
      bytes += writeSync(fd, Buffer.concat([pcapngSectionHeader(), pcapngInterfaceDescription(podInterfaceDescription(label, LinkType.ETHERNET, 262144))]));
      for (let mb = 0; mb < Math.min(FILE_MB, podMB - (i - 1) * FILE_MB); mb++) {
        for (let at = 0; at < chunk.length; at += perPacket, micros += pods.length) writeEnhancedPacket(chunk, at, 0, micros, packet, packet.length, packet.length, options);
        bytes += writeSync(fd, chunk);
      }
      closeSync(fd);
    }
  });
  return bytes;
}

export async function benchCaptureDownload(format: 'pcap' | 'pcapng' = 'pcap'): Promise<BenchResult> {
  const totalMB = Number(process.env.NETWARDEN_BENCH_CAPTURE_MB ?? 1024);
  await useCompiledCli();
  const cp = await startControlPlane();
  try {
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNode(kc, NODE, { internalIP: nextNodeIP() });
    await createNamespace(kc, NS);
    await createPod(kc, { namespace: NS, name: 'logging-bench', nodeName: NODE, labels: { app: 'logging' }, podIP: '10.244.175.3' });
    const controller = await startController(cp, 'bench-controller');
    // Already ended: the agent serves the files it finds and reports them, but captures nothing new.
    const end = new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
    await mustKubectl(cp, ['apply', '-f', '-'], `apiVersion: netwarden.io/v1alpha1\nkind: PacketCapture\nmetadata: {name: ${NAME}, namespace: ${NS}}\nspec: {selector: app == "logging", endTime: "${end}", format: ${format}}\n`);
    // Files are the capture's by its UID: written there before the agent starts and finds them.
    const uid = await mustKubectl(cp, ['get', 'packetcapture', NAME, '-n', NS, '-o', 'jsonpath={.metadata.uid}']);
    const dir = path.join(cp.dir, 'nodes', NODE, 'captures', NS, NAME, uid);
    const pcapBytes = format === 'pcapng' ? generatePcapngFiles(dir, totalMB) : generateFiles(dir, totalMB);
    const agent = await startAgent(cp, NODE);
    try {
      // The controller's phase shows it is leading; the agent's entry that it serves the files.
      await waitFor(async () => (await mustKubectl(cp, ['get', 'packetcapture', NAME, '-n', NS, '-o', 'jsonpath={.status.phase}/{.status.files[0].node}'])) === `Finished/${NODE}`, {
        timeoutMs: 60_000,
        description: 'the agent reporting the generated files',
      });
      await createServiceAccount(kc, NS, 'downloader');
      await mustKubectl(cp, ['create', 'rolebinding', 'downloader', '-n', NS, '--clusterrole=netwarden-packetcapture-files-reader', `--serviceaccount=${NS}:downloader`]);
      const token = await requestToken(kc, NS, 'downloader');
      const out = await mkdtemp(path.join(cp.dir, 'bench-download-'));
      const conn = { baseUrl: new URL(controllerUrl(await netwardenPorts(cp))), namespace: NS, token, ca: readFileSync(await netwardenCaFile(cp)), insecure: false };
      const rssBefore = procStatusMB(controller.child.pid!, 'VmHWM');
      const started = process.hrtime.bigint();
      const result = await downloadCapture(conn, NAME, out, { progress: false, merge: format === 'pcapng' });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const rssPeak = procStatusMB(controller.child.pid!, 'VmHWM');
      rmSync(out, { recursive: true, force: true });
      // Reference: reading the same files from disk with cat (page cache warm, like the download's).
      const catStarted = process.hrtime.bigint();
      await run('sh', ['-c', `cat ${dir}/*.${format} > /dev/null`], { timeoutMs: 600_000 });
      const catSeconds = Number(process.hrtime.bigint() - catStarted) / 1e9;
      const mbps = result.bytes / 1024 / 1024 / seconds;
      const catMbps = pcapBytes / 1024 / 1024 / catSeconds;
      return {
        name: format === 'pcapng' ? `capture-download-pcapng (${totalMB} MB of pcapng, two pods, ?merge=true)` : `capture-download (${totalMB} MB of pcap, one node)`,
        rows: [
          { metric: 'download throughput', value: mbps, unit: 'MB/s', reference: catMbps, ratio: mbps / catMbps },
          { metric: 'zip bytes / pcap bytes', value: result.bytes / pcapBytes, unit: 'x' },
          { metric: 'controller peak RSS (compiled JS)', value: rssPeak, unit: 'MB', reference: 200, ratio: rssPeak / 200 },
          { metric: 'controller peak RSS before the download (compiled JS)', value: rssBefore, unit: 'MB' },
          { metric: 'agent peak RSS (compiled JS, serving the files)', value: procStatusMB(agent.child.pid!, 'VmHWM'), unit: 'MB' },
        ],
      };
    } finally {
      await Promise.all([controller.kill(), agent.kill()]);
    }
  } finally {
    await cp.stop();
  }
}

// `node --import tsx bench/capture-download.ts` runs it alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await benchCaptureDownload();
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
