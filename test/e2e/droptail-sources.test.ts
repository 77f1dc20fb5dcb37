// The node agent's DropTail sources against the real control plane, with a fake controller intake
// (an HTTPS server in this process, certificate from the test CA) at the agent's --controller-url:
// real NFLOG drops from an nftables rule (and packets the kernel cut short), journal files written
// by systemd-journal-remote (resumed by cursor across an agent restart), a log file rotated and
// truncated while it is followed, bad input among good lines, and the node's status entry.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { appendFileSync, mkdirSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseNodeReport } from '../../src/apis/nodereport.js';
import type { AggregatedDrop, DropBatch } from '../../src/apis/drops.js';
import { cluster } from './hooks.js';
import { ensureInstalled, freePort, getLocal, mustKubectl, nextNodeIP, startAgent, type NetwardenProcess } from '../env/netwarden.js';
import { createNode, waitFor } from '../env/fixtures.js';

const NODE = 'dts-node';
// Host-wide resources get names unique to this run: other test runs share the kernel.
const RUN = process.pid % 10_000;
const NFLOG_GROUP = 20_000 + RUN;
const NFT_TABLE = `nwdts${RUN}`;
const UDP_PORT = 30_000 + RUN;
const TCP_PORT = 40_000 + RUN;
// The cut-off NFLOG test: its own group, table and port.
const CUT_GROUP = 50_000 + RUN;
const CUT_TABLE = `nwdtc${RUN}`;
const CUT_PORT = 50_000 + RUN;

/** The fake controller intake: keeps every batch, and every node report, by DropTail name and accepts them. */
class Intake {
  readonly batches = new Map<string, DropBatch[]>();
  readonly reports = new Map<string, NodeEntry[]>();
  readonly invalidReports: string[] = [];
  private server: Server | undefined;

  async start(certPath: string, keyPath: string, port: number): Promise<void> {
    this.server = createServer({ cert: readFileSync(certPath), key: readFileSync(keyPath) }, (req, res) => {
      const match = /^\/droptail\/([^/]+)\/(drops|report)$/.exec(req.url ?? '');
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method !== 'POST' || !match || !req.headers.authorization?.startsWith('Bearer ')) {
          res.writeHead(400).end();
          return;
        }
        const name = decodeURIComponent(match[1]!);
        if (match[2] === 'report') {
          // Checked as the controller checks it: a report it would refuse is kept apart and fails the test.
          try {
            const report = parseNodeReport('droptail', Buffer.concat(chunks)) as NodeEntry;
            this.reports.set(name, [...(this.reports.get(name) ?? []), report]);
            res.writeHead(204).end();
          } catch (err) {
            this.invalidReports.push(String(err));
            res.writeHead(400).end();
          }
          return;
        }
        const batch = JSON.parse(Buffer.concat(chunks).toString('utf8')) as DropBatch;
        this.batches.set(name, [...(this.batches.get(name) ?? []), batch]);
        res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ accepted: batch.drops.length }));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
  }

  drops(name: string): AggregatedDrop[] {
    return (this.batches.get(name) ?? []).flatMap((b) => b.drops);
  }

  /** Total count per key of the received drops. */
  counts(name: string, key: (d: AggregatedDrop) => string): Map<string, number> {
    const out = new Map<string, number>();
    for (const d of this.drops(name)) out.set(key(d), (out.get(key(d)) ?? 0) + d.count);
    return out;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

function nft(script: string): void {
  execFileSync('nft', ['-f', '-'], { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
}

async function applyDropTail(name: string, spec: Record<string, unknown>): Promise<void> {
  const obj = { apiVersion: 'netwarden.io/v1alpha1', kind: 'DropTail', metadata: { name }, spec: { nodeSelector: { 'netwarden.io/dts': 'yes' }, ...spec } };
  await mustKubectl(cluster(), ['apply', '-f', '-'], JSON.stringify(obj));
}

interface NodeEntry {
  node: string;
  sources?: Array<{ type: string; healthy: boolean; message?: string }>;
  dropsSeen?: number;
  lastError?: string;
}

/** The last node report the agent sent the (fake) controller for this DropTail. */
function nodeEntry(name: string): Promise<NodeEntry | undefined> {
  const report = intake.reports.get(name)?.at(-1);
  return Promise.resolve(report?.node === NODE ? report : undefined);
}

/** Waits until every source of the DropTail reports healthy on this node. */
function waitHealthy(name: string): Promise<NodeEntry> {
  return waitFor(async () => {
    const entry = await nodeEntry(name);
    return entry?.sources?.length && entry.sources.every((s) => s.healthy) ? entry : undefined;
  }, { timeoutMs: 30_000, description: `${name}: sources healthy on ${NODE}` });
}

/** A kernel LOG line as the kernel writes it (no syslog header: the file test adds one). */
function kernelLine(prefix: string, dst: string, dport: number): string {
  return `${prefix}IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=10.244.50.1 DST=${dst} LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=4242 DF PROTO=TCP SPT=51515 DPT=${dport} WINDOW=64240 RES=0x00 SYN URGP=0`;
}

/** netwarden_agent_drop_nflog_packets_skipped_total{reason} on the agent's /metrics (0 when absent). */
async function skippedPackets(agent: NetwardenProcess, reason: string): Promise<number> {
  const body = (await getLocal(agent.metricsPort, '/metrics')).body;
  const m = new RegExp(`^netwarden_agent_drop_nflog_packets_skipped_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(body);
  return m ? Number(m[1]) : 0;
}

/** Sends one UDP datagram per payload; an nftables drop makes send() fail with EPERM, which is expected. */
async function sendUdp(host: string, port: number, payloads: string[]): Promise<void> {
  const sock = createSocket('udp4');
  for (const payload of payloads) await new Promise<void>((resolve) => sock.send(Buffer.from(payload), port, host, () => resolve()));
  sock.close();
}

async function skippedLines(agent: NetwardenProcess): Promise<number> {
  const body = (await getLocal(agent.metricsPort, '/metrics')).body;
  let sum = 0;
  for (const m of body.matchAll(/^netwarden_agent_drop_lines_skipped_total\{reason="[^"]+"\} (\d+)$/gm)) sum += Number(m[1]);
  return sum;
}

const intake = new Intake();

describe('droptail agent sources (fake controller intake)', function () {
  let agent: NetwardenProcess;
  let intakeUrl: string;
  const tablesAdded: string[] = [];

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    await createNode(cp.kubeConfig(), NODE, { internalIP: nextNodeIP(), labels: { 'netwarden.io/dts': 'yes' } });
    const port = await freePort();
    const cert = await cp.issueServingCert('dts-intake', ['127.0.0.1']);
    await intake.start(cert.certPath, cert.keyPath, port);
    intakeUrl = `https://127.0.0.1:${port}`;
    agent = await startAgent(cp, NODE, [`--controller-url=${intakeUrl}`, `--ca-file=${cluster().caCertPath}`]);
  });

  after(async function () {
    await agent?.kill();
    await intake.stop();
    for (const table of tablesAdded) {
      try {
        nft(`delete table inet ${table}\n`);
      } catch {
        // already gone
      }
    }
  });

  it('reads NFLOG drops of an nftables `log group` rule and sends them aggregated with the right fields', async function () {
    if (process.getuid?.() !== 0) this.skip();
    try {
      nft(`delete table inet ${NFT_TABLE}\n`);
    } catch {
      // not there
    }
    nft(
      `table inet ${NFT_TABLE} {\n  chain out {\n    type filter hook output priority 0;\n` +
        `    ip daddr 127.0.0.1 udp dport ${UDP_PORT} log group ${NFLOG_GROUP} prefix "nwdts-dropped: " drop\n` +
        `    ip daddr 127.0.0.1 tcp dport ${TCP_PORT} log group ${NFLOG_GROUP} prefix "nwdts-dropped: " drop\n` +
        `    ip daddr 127.0.0.1 udp dport ${UDP_PORT + 1} log group ${NFLOG_GROUP} prefix "other-prefix: " drop\n  }\n}\n`,
    );
    tablesAdded.push(NFT_TABLE);
    await applyDropTail('dts-nflog', { sources: [{ type: 'nflog', group: NFLOG_GROUP }], prefixes: ['nwdts-dropped: '] });
    await waitHealthy('dts-nflog');

    const sock = createSocket('udp4');
    for (let i = 0; i < 5; i++) {
      // the rule drops it: send() reports EPERM, which is expected
      await new Promise<void>((resolve) => sock.send(Buffer.from(`drop-${i}`), UDP_PORT, '127.0.0.1', () => resolve()));
    }
    await new Promise<void>((resolve) => sock.send(Buffer.from('other'), UDP_PORT + 1, '127.0.0.1', () => resolve()));
    sock.close();
    const tcp = net.connect({ host: '127.0.0.1', port: TCP_PORT });
    tcp.on('error', () => undefined);
    setTimeout(() => tcp.destroy(), 500);

    const udpKey = (d: AggregatedDrop): string => `${d.drop.protocol}/${d.drop.dstPort}`;
    await waitFor(() => intake.counts('dts-nflog', udpKey).get(`UDP/${UDP_PORT}`) === 5 && intake.counts('dts-nflog', udpKey).has(`TCP/${TCP_PORT}`), {
      timeoutMs: 15_000,
      description: '5 UDP drops and the TCP SYN at the intake',
    });
    const udp = intake.drops('dts-nflog').find((d) => d.drop.protocol === 'UDP')!;
    expect(udp.source).to.equal('nflog');
    expect(udp.drop).to.deep.include({ prefix: 'nwdts-dropped:', family: 'ipv4', src: '127.0.0.1', dst: '127.0.0.1', dstPort: UDP_PORT, outInterface: 'lo' });
    // locally sent packets carry no NFULA_TIMESTAMP: the time they were received is used
    expect(Math.abs(Date.parse(udp.firstSeen) - Date.now())).to.be.lessThan(30_000);
    expect(Date.parse(udp.lastSeen)).to.be.at.least(Date.parse(udp.firstSeen));
    const syn = intake.drops('dts-nflog').find((d) => d.drop.protocol === 'TCP')!;
    expect(syn.drop.tcpFlags).to.deep.equal(['SYN']);
    // the packet logged with another prefix is not this DropTail's
    expect(intake.drops('dts-nflog').some((d) => d.drop.dstPort === UDP_PORT + 1)).to.equal(false);
    const batch = intake.batches.get('dts-nflog')![0]!;
    expect(batch).to.include({ node: NODE, shedSinceLastBatch: 0 });
  });

  it('counts a packet the kernel cut to 8 bytes (log snaplen 8) as skipped, while whole drops of the same group arrive', async function () {
    if (process.getuid?.() !== 0) this.skip();
    try {
      nft(`delete table inet ${CUT_TABLE}\n`);
    } catch {
      // not there
    }
    // Same group and prefix; to 127.0.0.1 the kernel hands over only the first 8 bytes of the IP
    // header (snaplen), to 127.0.0.2 the whole packet.
    nft(
      `table inet ${CUT_TABLE} {\n  chain out {\n    type filter hook output priority 0;\n` +
        `    ip daddr 127.0.0.1 udp dport ${CUT_PORT} log group ${CUT_GROUP} snaplen 8 prefix "nwdtc-dropped: " drop\n` +
        `    ip daddr 127.0.0.2 udp dport ${CUT_PORT} log group ${CUT_GROUP} prefix "nwdtc-dropped: " drop\n  }\n}\n`,
    );
    tablesAdded.push(CUT_TABLE);
    await applyDropTail('dts-nflog-cut', { sources: [{ type: 'nflog', group: CUT_GROUP }], prefixes: ['nwdtc-dropped: '] });
    await waitHealthy('dts-nflog-cut');
    const truncatedBefore = await skippedPackets(agent, 'truncated');

    // The cut packets first: the group delivers in order, so once the whole ones arrived, the cut
    // ones were decoded (and refused) before them.
    await sendUdp('127.0.0.1', CUT_PORT, ['cut-1', 'cut-2', 'cut-3', 'cut-4']);
    await sendUdp('127.0.0.2', CUT_PORT, ['whole-1', 'whole-2', 'whole-3']);
    const byDst = (d: AggregatedDrop): string => d.drop.dst;
    await waitFor(() => intake.counts('dts-nflog-cut', byDst).get('127.0.0.2') === 3, { timeoutMs: 15_000, description: '3 whole drops to 127.0.0.2 at the intake' });

    expect((await skippedPackets(agent, 'truncated')) - truncatedBefore).to.equal(4);
    expect(intake.drops('dts-nflog-cut').some((d) => d.drop.dst === '127.0.0.1'), 'a cut packet was sent as a drop').to.equal(false);
    const whole = intake.drops('dts-nflog-cut')[0]!;
    expect(whole.drop).to.deep.include({ prefix: 'nwdtc-dropped:', protocol: 'UDP', src: '127.0.0.1', dst: '127.0.0.2', dstPort: CUT_PORT });
    // the agent keeps reading the group after the bad packets
    await sendUdp('127.0.0.2', CUT_PORT, ['whole-4']);
    await waitFor(() => intake.counts('dts-nflog-cut', byDst).get('127.0.0.2') === 4, { timeoutMs: 15_000, description: 'a 4th whole drop after the cut ones' });
    expect((await nodeEntry('dts-nflog-cut'))?.sources?.[0]?.healthy, 'the NFLOG source stays healthy').to.equal(true);
  });

  it('follows a log file through rotation and truncation without losing or repeating a drop, skipping bad input', async function () {
    const dir = path.join(cluster().dir, 'dts-file');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'kern.log');
    const prefix = 'nwdts-file: ';
    let port = 1000;
    const good = (): string => `2026-11-23T03:20:56.123456+00:00 ${NODE} kernel: ${kernelLine(prefix, '10.244.60.1', port++)}\n`;
    writeFileSync(file, `${good()}${good()}`); // before the agent follows: not reported (start at end)
    const before = port;
    await applyDropTail('dts-file', { sources: [{ type: 'file', path: file }], prefixes: [prefix] });
    await waitHealthy('dts-file');
    const skippedBefore = await skippedLines(agent);

    appendFileSync(file, good() + good() + good());
    // bad input among good lines: random bytes (with newlines), a cut line, a line of another prefix
    const random = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 131 + 17) % 256));
    appendFileSync(file, Buffer.concat([random, Buffer.from('\n')]));
    appendFileSync(file, `2026-11-23T03:20:57+00:00 ${NODE} kernel: ${prefix}IN=eth0 OUT= SRC=10.244.60.1 DST=\n`);
    appendFileSync(file, good());
    await waitFor(() => intake.drops('dts-file').length >= 4, { timeoutMs: 15_000, description: 'first lines sent' });

    // rename rotation: the writer keeps appending to the renamed file for a moment, then a new file starts
    renameSync(file, `${file}.1`);
    appendFileSync(`${file}.1`, good() + good());
    writeFileSync(file, good() + good());
    await waitFor(() => intake.drops('dts-file').length >= 8, { timeoutMs: 15_000, description: 'lines around the rotation sent' });
    // copytruncate: the same file is emptied and the writer goes on at its start, here at once and
    // past the follower's old offset (three lines where there were two) before it looks again.
    truncateSync(file, 0);
    appendFileSync(file, good() + good() + good());
    const expected = Array.from({ length: port - before }, (_, i) => String(before + i));

    const byPort = (d: AggregatedDrop): string => String(d.drop.dstPort);
    await waitFor(() => intake.counts('dts-file', byPort).size === expected.length, { timeoutMs: 20_000, description: `${expected.length} distinct file drops (have ${JSON.stringify([...intake.counts('dts-file', byPort)])})` });
    await new Promise((r) => setTimeout(r, 1_500)); // a late duplicate would arrive within a window
    const counts = intake.counts('dts-file', byPort);
    expect([...counts.keys()].sort()).to.deep.equal(expected.sort());
    expect([...counts.values()].every((c) => c === 1), `each drop once: ${JSON.stringify([...counts])}`).to.equal(true);
    expect(intake.drops('dts-file').every((d) => d.source === 'file' && d.drop.prefix === 'nwdts-file:' && d.drop.timeSource === 'rfc3339')).to.equal(true);
    expect((await skippedLines(agent)) - skippedBefore).to.be.at.least(2);
    expect(intake.invalidReports, 'reports the controller would refuse').to.deep.equal([]);
    const metrics = (await getLocal(agent.metricsPort, '/metrics')).body;
    expect(metrics).to.match(/netwarden_agent_droptail_records_read_total\{droptail="dts-file",source="file:[^"]+kern\.log"\} (1[4-9]|[2-9]\d)/);
    expect(metrics).to.match(/netwarden_agent_droptail_queue_drops\{droptail="dts-file"\} 0/);
  });

  it('reads journal files written by systemd-journal-remote and resumes from the cursor after a restart without duplicates', async function () {
    const dir = path.join(cluster().dir, 'dts-journal');
    mkdirSync(dir, { recursive: true });
    const journalFile = path.join(dir, 'remote.journal');
    const prefix = 'nwdts-journal: ';
    let seq = 0;
    const write = (dsts: string[]): void => {
      const entries = dsts.map((dst) => {
        seq += 1;
        const us = BigInt(Date.now()) * 1000n + BigInt(seq);
        return [
          `__REALTIME_TIMESTAMP=${us}`, `__MONOTONIC_TIMESTAMP=${seq}`, '_BOOT_ID=0123456789abcdef0123456789abcdef',
          '_TRANSPORT=kernel', 'SYSLOG_IDENTIFIER=kernel', `MESSAGE=${kernelLine(prefix, dst, 443)}`, '',
        ].join('\n');
      });
      // a userspace entry with the same text is not a kernel message: the default match skips it
      const noise = ['__REALTIME_TIMESTAMP=1', '__MONOTONIC_TIMESTAMP=1', '_BOOT_ID=0123456789abcdef0123456789abcdef', '_TRANSPORT=stdout', `MESSAGE=${kernelLine(prefix, '10.244.79.79', 443)}`, ''].join('\n');
      execFileSync('/usr/lib/systemd/systemd-journal-remote', [`--output=${journalFile}`, '-'], { input: [...entries, noise].join('\n') + '\n', stdio: ['pipe', 'ignore', 'pipe'] });
    };
    write(['10.244.70.1']); // before the agent reads: the first start joins at the end
    await applyDropTail('dts-journal', { sources: [{ type: 'journal', directory: dir }], prefixes: [prefix] });
    await waitHealthy('dts-journal');
    write(['10.244.70.2', '10.244.70.3', '10.244.70.4']);
    const byDst = (d: AggregatedDrop): string => d.drop.dst;
    await waitFor(() => intake.counts('dts-journal', byDst).size === 3, { timeoutMs: 15_000, description: 'three journal drops' });

    await agent.kill();
    write(['10.244.70.5', '10.244.70.6']); // while the agent is down
    agent = await startAgent(cluster(), NODE, [`--controller-url=${intakeUrl}`, `--ca-file=${cluster().caCertPath}`]);
    write(['10.244.70.7']);
    await waitFor(() => intake.counts('dts-journal', byDst).size === 6, { timeoutMs: 30_000, description: 'six journal drops after the restart' });
    await new Promise((r) => setTimeout(r, 1_500));
    const counts = intake.counts('dts-journal', byDst);
    expect([...counts.keys()].sort()).to.deep.equal(['10.244.70.2', '10.244.70.3', '10.244.70.4', '10.244.70.5', '10.244.70.6', '10.244.70.7']);
    expect([...counts.values()]).to.deep.equal([1, 1, 1, 1, 1, 1]);
    const drop = intake.drops('dts-journal')[0]!;
    expect(drop.source).to.equal('journal');
    expect(drop.drop).to.deep.include({ prefix: 'nwdts-journal:', timeSource: 'journal', src: '10.244.50.1', protocol: 'TCP', dstPort: 443, inInterface: 'eth0' });
  });

  it('reports healthy sources and the drops seen to the controller, and a failing source', async function () {
    const entry = await waitFor(async () => {
      const e = await nodeEntry('dts-file');
      return e?.dropsSeen !== undefined && e.dropsSeen >= 10 && e.sources?.[0]?.healthy ? e : undefined;
    }, { timeoutMs: 20_000, description: 'dts-file dropsSeen in status' });
    expect(entry.sources).to.have.length(1);
    expect(entry.sources![0], JSON.stringify(entry)).to.include({ type: 'file', healthy: true });
    expect(entry.sources![0]!.message).to.contain('kern.log');
    expect(entry.lastError).to.equal(undefined);

    const journal = await waitFor(async () => {
      const e = await nodeEntry('dts-journal');
      return e?.dropsSeen === 6 ? e : undefined;
    }, { timeoutMs: 20_000, description: 'dts-journal dropsSeen 6, carried over the restart' });
    expect(journal.sources![0]).to.include({ type: 'journal', healthy: true });

    // a journal directory that does not exist: unhealthy with journalctl's reason, retried
    await applyDropTail('dts-broken', { sources: [{ type: 'journal', directory: path.join(cluster().dir, 'dts-missing') }, { type: 'file', path: path.join(cluster().dir, 'dts-file', 'kern.log') }] });
    const broken = await waitFor(async () => {
      const e = await nodeEntry('dts-broken');
      return e?.sources?.[0]?.healthy === false && e.sources[0].message?.includes('journalctl') && e.sources[1]?.healthy === true ? e : undefined;
    }, { timeoutMs: 30_000, description: 'dts-broken: journal unhealthy, file healthy' });
    expect(broken.sources![0]!.message).to.match(/journalctl exited with code 1: .*dts-missing/);
  });

  it('stops reporting when the node is no longer selected', async function () {
    await mustKubectl(cluster(), ['label', 'node', NODE, 'netwarden.io/dts=no', '--overwrite']);
    // The pipeline stopped: its source gauge is gone from the agent's metrics.
    await waitFor(async () => !(await getLocal(agent.metricsPort, '/metrics')).body.includes('netwarden_agent_droptail_source_healthy{droptail="dts-file"'), { timeoutMs: 20_000, description: 'dts-file stopped' });
    const sent = intake.reports.get('dts-file')?.length ?? 0;
    await new Promise((r) => setTimeout(r, 6_000)); // longer than the 5 s between changed reports
    expect(intake.reports.get('dts-file')?.length ?? 0, 'reports after the node was unselected').to.equal(sent);
    expect(intake.invalidReports, 'reports the controller would refuse').to.deep.equal([]);
    const metrics = (await getLocal(agent.metricsPort, '/metrics')).body;
    expect(metrics).to.match(/netwarden_agent_droptail_records_read_total\{droptail="dts-journal",source="journal:[^"]+dts-journal"\} [1-9]/);
    expect(metrics).to.match(/netwarden_agent_droptail_batches_total\{droptail="dts-journal",result="accepted"\} [1-9]/);
  });
});
