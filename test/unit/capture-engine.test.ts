// The capture engine on a live interface (lo, root only): standard pcap files that tshark reads,
// with the packets the filter allows, rotated by size, at most maxFiles kept, stopped at maxBytes.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { OPEN_GATE, PodCapture } from '../../src/nodeagent/capture/engine.js';
import { compileCaptureFilter } from '../../src/nodeagent/capture/filter.js';
import { DEFAULT_CEILINGS } from '../../src/nodeagent/capture/plan.js';
import { originalLength } from '../../src/nodeagent/capture/pcapfile.js';

const isRoot = process.getuid?.() === 0;

function tsharkFields(file: string, fields: string[]): string[][] {
  const out = execFileSync('tshark', ['-r', file, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter(Boolean).map((l) => l.split('\t'));
}

async function sendUdp(port: number, count: number, size = 100): Promise<void> {
  const s = createSocket('udp4');
  const payload = Buffer.alloc(size, 7);
  for (let i = 0; i < count; i++) await new Promise<void>((r) => s.send(payload, port, '127.0.0.1', () => r()));
  s.close();
}

const settle = () => new Promise((r) => setTimeout(r, 300));

describe('capture: pcap records', function () {
  it('takes the original length from the IP header when snapLen cut the packet', function () {
    const frame = Buffer.alloc(64);
    frame.writeUInt16BE(0x0800, 12);
    frame[14] = 0x45;
    frame.writeUInt16BE(1500, 16);
    expect(originalLength(frame, 64, 1)).to.equal(1514);
    const v6 = Buffer.alloc(64);
    v6.writeUInt16BE(0x86dd, 12);
    v6[14] = 0x60;
    v6.writeUInt16BE(1000, 18);
    expect(originalLength(v6, 64, 1)).to.equal(14 + 40 + 1000);
    // Ethernet padding makes short frames longer than their IP packet: the captured length wins.
    frame.writeUInt16BE(28, 16);
    expect(originalLength(frame, 60, 1)).to.equal(60);
  });
});

describe('capture: engine on lo (root)', function () {
  let dir: string;
  before(function () {
    if (!isRoot) this.skip();
  });
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'nw-capture-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function capture(port: number, over: Partial<ConstructorParameters<typeof PodCapture>[0]> = {}): PodCapture {
    return new PodCapture({
      dir,
      pod: 'web-0',
      device: 'lo',
      filter: compileCaptureFilter([{ protocol: 'UDP', ports: [port] }], 'ingress', '127.0.0.1'),
      snapLen: 65535,
      fileSizeBytes: 1 << 20,
      maxFiles: 10,
      maxBytes: 1 << 30,
      existingFiles: [],
      existingBytes: 0,
      firstSequence: 1,
      ringBytes: DEFAULT_CEILINGS.ringBytes,
      gate: OPEN_GATE,
      ...over,
    });
  }

  it('writes a standard pcap file that tshark reads: only the filtered packets, full and truncated', async function () {
    const port = 40000 + Math.floor(Math.random() * 20000);
    const c = capture(port, { snapLen: 100 });
    c.start();
    await sendUdp(port, 5, 300);
    await sendUdp(port + 1, 5, 300);
    await settle();
    c.stop('finished', 'test over');
    const file = path.join(dir, 'web-0_lo_00001.pcap');
    const header = readFileSync(file).subarray(0, 24);
    expect(header.readUInt32LE(0).toString(16)).to.equal('a1b2c3d4');
    expect([header.readUInt16LE(4), header.readUInt16LE(6), header.readUInt32LE(16), header.readUInt32LE(20)]).to.deep.equal([2, 4, 100, 1]);
    const rows = tsharkFields(file, ['udp.dstport', 'frame.len', 'frame.cap_len']);
    // 300 bytes of payload + 8 UDP + 20 IP + 14 Ethernet on the wire, 100 kept.
    expect(rows).to.deep.equal(Array.from({ length: 5 }, () => [String(port), '342', '100']));
    expect(c.packets).to.equal(5);
    expect(c.bytes).to.equal(statSync(file).size);
  });

  it('rotates at fileSizeBytes, keeps maxFiles, and stops at maxBytes', async function () {
    const port = 40000 + Math.floor(Math.random() * 20000);
    // Each record: 16 + 14 + 20 + 8 + 1000 = 1058 bytes, 9 per 10 KB file (24 + 9 * 1058 = 9546).
    // Five full files make 47730 bytes; a sixth file takes 2 more records (49870) before the next
    // one would pass 50000. The oldest three files are deleted on the way.
    const c = capture(port, { fileSizeBytes: 10_000, maxFiles: 3, maxBytes: 50_000 });
    c.start();
    await sendUdp(port, 80, 1000);
    await settle();
    expect(c.state).to.equal('finished');
    expect(c.message).to.match(/maxBytesPerPod \(50000 bytes\)/);
    const files = readdirSync(dir).sort();
    expect(files).to.deep.equal(['web-0_lo_00004.pcap', 'web-0_lo_00005.pcap', 'web-0_lo_00006.pcap']);
    for (const f of files) expect(statSync(path.join(dir, f)).size).to.be.at.most(10_000);
    expect(c.bytes).to.equal(49_870);
    expect(c.packets).to.equal(47);
    // tshark reads every kept record intact.
    const counts = files.map((f) => tsharkFields(path.join(dir, f), ['frame.len']).length);
    expect(counts).to.deep.equal([9, 9, 2]);
  });

  it('reports libpcap\'s own message for a device that does not exist', function () {
    const c = capture(1, { device: 'nw-nosuchdev0' });
    expect(() => c.start()).to.throw(/nw-nosuchdev0|No such device/);
  });

  it('pauses, writing nothing, when the node gate refuses a new file', function () {
    const c = capture(1, { gate: { ...OPEN_GATE, refuse: () => ({ kind: 'disk', message: 'stopped writing: free disk below the floor' }) } });
    c.start();
    expect(c.state).to.equal('paused');
    expect(c.pausedBy).to.equal('disk');
    expect(c.message).to.equal('stopped writing: free disk below the floor');
    expect(readdirSync(dir)).to.deep.equal([]);
  });

  it('at maxFiles, deletes the oldest file before asking the gate for the next, and tells the gate what it opens, closes and deletes', async function () {
    const port = 40000 + Math.floor(Math.random() * 20000);
    const events: string[] = [];
    const asked: number[] = [];
    // Room for exactly two files: a third is refused unless the oldest went first.
    let filesOnDisk = 0;
    const gate = {
      refuse: (bytes: number) => {
        asked.push(filesOnDisk);
        return filesOnDisk + 1 > 2 ? { kind: 'quota' as const, message: `no room for another ${bytes}-byte file` } : undefined;
      },
      opened: (file: string) => {
        filesOnDisk += 1;
        events.push(`open ${path.basename(file)}`);
      },
      closed: (file: string) => events.push(`close ${path.basename(file)}`),
      deleted: () => {
        filesOnDisk -= 1;
        events.push('delete');
      },
    };
    const c = capture(port, { fileSizeBytes: 10_000, maxFiles: 2, gate });
    c.start();
    await sendUdp(port, 30, 1000);
    await settle();
    c.stop('finished', 'test over');
    expect(c.state).to.equal('finished');
    expect(asked.every((n) => n <= 1), JSON.stringify(asked)).to.equal(true);
    expect(events.slice(0, 5)).to.deep.equal(['open web-0_lo_00001.pcap', 'close web-0_lo_00001.pcap', 'open web-0_lo_00002.pcap', 'close web-0_lo_00002.pcap', 'delete']);
    expect(events[5]).to.equal('open web-0_lo_00003.pcap');
    expect(readdirSync(dir).sort()).to.deep.equal(['web-0_lo_00003.pcap', 'web-0_lo_00004.pcap']);
  });

  it('pauses at rotation when the gate refuses, keeping what it wrote', async function () {
    const port = 40000 + Math.floor(Math.random() * 20000);
    let opened = 0;
    const gate = { ...OPEN_GATE, refuse: () => (opened >= 1 ? { kind: 'quota' as const, message: 'node limit: 10 bytes of capture files' } : undefined), opened: () => void (opened += 1) };
    const c = capture(port, { fileSizeBytes: 10_000, maxFiles: 5, gate });
    c.start();
    await sendUdp(port, 20, 1000);
    await settle();
    expect(c.state).to.equal('paused');
    expect(c.pausedBy).to.equal('quota');
    expect(c.message).to.equal('node limit: 10 bytes of capture files');
    expect(readdirSync(dir)).to.deep.equal(['web-0_lo_00001.pcap']);
    expect(tsharkFields(path.join(dir, 'web-0_lo_00001.pcap'), ['frame.len'])).to.have.length(9);
  });
});
