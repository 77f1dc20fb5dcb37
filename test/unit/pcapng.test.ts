// spec.format: pcapng: the agent's writer against the pcapng spec's structure (block lengths,
// 32-bit padding, options ended by opt_endofopt, microsecond timestamps), a round trip through our
// reader, tshark reading every file with each packet's pod in frame.comment, the streamed k-way
// merge of the download, and the capture engine writing and rotating pcapng on lo (root).
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { OPEN_GATE, PodCapture } from '../../src/nodeagent/capture/engine.js';
import { compileCaptureFilter } from '../../src/nodeagent/capture/filter.js';
import { CaptureFileLayout, PcapFileWriter } from '../../src/nodeagent/capture/pcapfile.js';
import { DEFAULT_CEILINGS } from '../../src/nodeagent/capture/plan.js';
import { readCapture } from '../../src/pcap/reader.js';
import { writeSummary } from '../../src/pcap/summary.js';
import { epbBytes, podPacketOptions, writeEnhancedPacket, type PodInterfaceLabel } from '../../src/util/pcapformat.js';
import { mergePcapng, PcapngMergeError, type MergeInput } from '../../src/util/pcapngmerge.js';

const isRoot = process.getuid?.() === 0;

function tsharkFields(file: string, fields: string[]): string[][] {
  const out = execFileSync('tshark', ['-r', file, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out.split('\n').filter(Boolean).map((l) => l.split('\t'));
}

/** An Ethernet/IPv4/UDP frame with `payload` bytes of payload. */
function udpFrame(payload: number, dstPort: number): Buffer {
  const f = Buffer.alloc(14 + 20 + 8 + payload, 0xab);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f[15] = 0;
  f.writeUInt16BE(20 + 8 + payload, 16);
  f.writeUInt16BE(0, 18);
  f.writeUInt16BE(0, 20);
  f[22] = 64;
  f[23] = 17;
  f.writeUInt16BE(0, 24);
  Buffer.from([10, 0, 0, 1]).copy(f, 26);
  Buffer.from([10, 0, 0, 2]).copy(f, 30);
  f.writeUInt16BE(40000, 34);
  f.writeUInt16BE(dstPort, 36);
  f.writeUInt16BE(8 + payload, 38);
  f.writeUInt16BE(0, 40);
  return f;
}

function label(pod: string, node = 'node-a'): PodInterfaceLabel {
  return { namespace: 'shop', pod, node, iface: `cali${pod.length}x`, direction: 'both', capture: 'shop/trace' };
}

/** Writes a pcapng file of the given packets (micros, payload) with the agent's writer. */
function writeFile(file: string, l: PodInterfaceLabel, packets: ReadonlyArray<readonly [number, number]>, snapLen = 65535): void {
  const w = new PcapFileWriter(file, new CaptureFileLayout('pcapng', snapLen, l), 1);
  for (const [micros, payload] of packets) {
    const frame = udpFrame(payload, 53);
    w.write(frame, Math.min(frame.length, snapLen), micros);
  }
  w.close();
}

interface Block {
  type: number;
  body: Buffer;
}

/** Walks blocks the way the spec lays them out, checking the two lengths of each. */
function blocks(buf: Buffer): Block[] {
  const out: Block[] = [];
  let at = 0;
  while (at < buf.length) {
    const type = buf.readUInt32LE(at);
    const length = buf.readUInt32LE(at + 4);
    expect(length % 4, `block at ${at}: total length a multiple of 4`).to.equal(0);
    expect(buf.readUInt32LE(at + length - 4), `block at ${at}: trailing length`).to.equal(length);
    out.push({ type, body: buf.subarray(at + 8, at + length - 4) });
    at += length;
  }
  expect(at).to.equal(buf.length);
  return out;
}

/** Options from `offset`: each padded to 32 bits, the last one opt_endofopt, exactly at the end. */
function options(body: Buffer, offset: number): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (;;) {
    const code = body.readUInt16LE(offset);
    const length = body.readUInt16LE(offset + 2);
    if (code === 0) {
      expect(length).to.equal(0);
      expect(offset + 4, 'opt_endofopt ends the block body').to.equal(body.length);
      return out;
    }
    out.push([code, body.toString('utf8', offset + 4, offset + 4 + length)]);
    const padded = (length + 3) & ~3;
    expect(body.subarray(offset + 4 + length, offset + 4 + padded).every((b) => b === 0), 'option padding is zeros').to.equal(true);
    offset += 4 + padded;
  }
}

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of gen) parts.push(chunk);
  return Buffer.concat(parts);
}

/** A file's bytes as a stream of small chunks (blocks cut across chunks, as over HTTP). */
async function* chunked(buf: Buffer, size = 97, onChunk?: () => void): AsyncGenerator<Buffer> {
  for (let at = 0; at < buf.length; at += size) {
    onChunk?.();
    yield Buffer.from(buf.subarray(at, at + size));
  }
}

describe('pcapng: the agent writer', function () {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'nw-pcapng-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the spec structure: SHB 1.0, an IDB naming the pod, EPBs in microseconds with the pod in opt_comment, padded to 32 bits', function () {
    const file = path.join(dir, 'web-0_cali5x_00001.pcapng');
    const t0 = 1_764_000_000_123_456; // µs
    // Payloads 1, 2, 3 and 0 bytes: frame lengths 43..45 and 42, every padding case.
    writeFile(file, label('web-0'), [[t0, 1], [t0 + 5, 2], [t0 + 0x1_0000_0000 + 7, 3], [t0 + 0x1_0000_0000 + 8, 0]]);
    const [shb, idb, ...epbs] = blocks(readFileSync(file));
    expect(shb!.type).to.equal(0x0a0d0d0a);
    expect(shb!.body.readUInt32LE(0)).to.equal(0x1a2b3c4d);
    expect([shb!.body.readUInt16LE(4), shb!.body.readUInt16LE(6)]).to.deep.equal([1, 0]);
    expect(shb!.body.readBigInt64LE(8)).to.equal(-1n);
    expect(options(shb!.body, 16)).to.deep.equal([[4, 'netwarden']]);
    expect(idb!.type).to.equal(1);
    expect([idb!.body.readUInt16LE(0), idb!.body.readUInt16LE(2), idb!.body.readUInt32LE(4)]).to.deep.equal([1, 0, 65535]);
    // No if_tsresol (9): the default, microseconds.
    expect(options(idb!.body, 8)).to.deep.equal([
      [2, 'shop/web-0@node-a/cali5x'],
      [3, 'pod shop/web-0 on node node-a, host interface cali5x, direction both'],
      [1, 'netwarden PacketCapture shop/trace: pod shop/web-0, node node-a, interface cali5x, direction both'],
    ]);
    expect(epbs.map((b) => b.type)).to.deep.equal([6, 6, 6, 6]);
    const expectedTimes = [t0, t0 + 5, t0 + 0x1_0000_0000 + 7, t0 + 0x1_0000_0000 + 8];
    epbs.forEach((b, i) => {
      const capLen = b.body.readUInt32LE(12);
      expect(b.body.readUInt32LE(0), 'interface id').to.equal(0);
      expect(b.body.readUInt32LE(4) * 2 ** 32 + b.body.readUInt32LE(8)).to.equal(expectedTimes[i]);
      expect(capLen).to.equal([43, 44, 45, 42][i]);
      expect(b.body.readUInt32LE(16)).to.equal(capLen);
      const padded = (capLen + 3) & ~3;
      expect(b.body.subarray(20 + capLen, 20 + padded).every((x) => x === 0)).to.equal(true);
      expect(options(b.body, 20 + padded)).to.deep.equal([[1, 'shop/web-0']]);
    });
  });

  it('zeroes the padding even in a reused buffer (the writer\'s block is never cleared)', function () {
    const options = podPacketOptions({ namespace: 'shop', pod: 'web-0' });
    for (const length of [40, 41, 42, 43]) {
      const out = Buffer.alloc(epbBytes(length, options.length) + 8, 0xff);
      const total = writeEnhancedPacket(out, 4, 0, 1, Buffer.alloc(length, 0x11), length, length, options);
      expect(total).to.equal(28 + ((length + 3) & ~3) + options.length + 4);
      expect(out.subarray(4 + 28 + length, 4 + 28 + ((length + 3) & ~3)).every((b) => b === 0), `padding after ${length} bytes`).to.equal(true);
      expect(out.subarray(4 + 28 + ((length + 3) & ~3), 4 + total - 4).equals(options)).to.equal(true);
      expect(out.readUInt32LE(4 + total - 4)).to.equal(total);
      expect(out[4 + total], 'nothing written past the block').to.equal(0xff);
      expect(out[3], 'nothing written before the block').to.equal(0xff);
    }
  });

  it('round-trips through the reader, and tshark reads the pod from frame.comment and frame.interface_name', async function () {
    const file = path.join(dir, 'web-0_cali5x_00001.pcapng');
    const t0 = 1_764_000_000_000_001;
    writeFile(file, label('web-0'), [[t0, 10], [t0 + 250, 11], [t0 + 1_000_000, 12]], 50);
    const packets = readCapture(readFileSync(file));
    expect(packets.map((p) => p.timestampNs)).to.deep.equal([t0, t0 + 250, t0 + 1_000_000].map((t) => BigInt(t) * 1000n));
    expect(packets.map((p) => [p.data.length, p.originalLength, p.comment, p.interfaceName])).to.deep.equal([
      [50, 52, 'shop/web-0', 'shop/web-0@node-a/cali5x'],
      [50, 53, 'shop/web-0', 'shop/web-0@node-a/cali5x'],
      [50, 54, 'shop/web-0', 'shop/web-0@node-a/cali5x'],
    ]);
    expect(tsharkFields(file, ['frame.comment', 'frame.interface_name', 'frame.interface_description', 'frame.time_epoch', 'frame.len', 'frame.cap_len', 'udp.dstport'])).to.deep.equal([
      ['shop/web-0', 'shop/web-0@node-a/cali5x', 'pod shop/web-0 on node node-a, host interface cali5x, direction both', '1764000000.000001000', '52', '50', '53'],
      ['shop/web-0', 'shop/web-0@node-a/cali5x', 'pod shop/web-0 on node node-a, host interface cali5x, direction both', '1764000000.000251000', '53', '50', '53'],
      ['shop/web-0', 'shop/web-0@node-a/cali5x', 'pod shop/web-0 on node node-a, host interface cali5x, direction both', '1764000001.000001000', '54', '50', '53'],
    ]);
    // The summary line carries the pod.
    const out = new PassThrough();
    const text: Buffer[] = [];
    out.on('data', (c: Buffer) => text.push(c));
    await writeSummary(file, out);
    const lines = Buffer.concat(text).toString().trim().split('\n');
    expect(lines).to.have.length(3);
    expect(lines[0]).to.match(/^2025-11-2\d \d\d:\d\d:\d\d\.000001 \[shop\/web-0\] IP 10\.0\.0\.1\.40000 > 10\.0\.0\.2\.53/);
  });
});

describe('pcapng: the download merge', function () {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'nw-pcapng-merge-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('merges pods and nodes into one section sorted by time, one IDB per pod interface (rotated files share theirs), and tshark reads it', async function () {
    const t = 1_764_000_000_000_000;
    const a1 = path.join(dir, 'a1.pcapng');
    const a2 = path.join(dir, 'a2.pcapng');
    const b = path.join(dir, 'b.pcapng');
    const c = path.join(dir, 'c.pcapng');
    writeFile(a1, label('web-0'), [[t + 1, 1], [t + 4, 1], [t + 9, 1]]);
    writeFile(a2, label('web-0'), [[t + 10, 1], [t + 30, 1]]); // web-0 rotated
    writeFile(b, label('db-0'), [[t + 2, 2], [t + 4, 2], [t + 20, 2]]);
    writeFile(c, label('api-0', 'node-b'), [[t + 0, 3], [t + 25, 3]]);
    const empty = path.join(dir, 'e.pcapng');
    writeFile(empty, label('idle-0'), []);
    const inputs: MergeInput[] = [
      { name: 'node-a/web-0', chunks: (async function* () { yield* chunked(readFileSync(a1)); yield* chunked(readFileSync(a2), 13); })() },
      { name: 'node-a/db-0', chunks: chunked(readFileSync(b), 4096) },
      { name: 'node-b/api-0', chunks: chunked(readFileSync(c), 5) },
      { name: 'node-a/idle-0', chunks: chunked(readFileSync(empty)) },
    ];
    const merged = path.join(dir, 'merged.pcapng');
    writeFileSync(merged, await collect(mergePcapng(inputs)));
    const all = blocks(readFileSync(merged));
    expect(all.map((x) => x.type)).to.deep.equal([0x0a0d0d0a, 1, 1, 1, 1, ...Array(10).fill(6)]);
    const rows = tsharkFields(merged, ['frame.time_epoch', 'frame.comment', 'frame.interface_id', 'frame.interface_name']);
    // Microseconds past t, from tshark's own timestamps.
    expect(rows.map((r) => [Number(r[0]!.split('.')[1]!.slice(0, 6)), r[1]])).to.deep.equal([
      [0, 'shop/api-0'],
      [1, 'shop/web-0'],
      [2, 'shop/db-0'],
      [4, 'shop/web-0'], // equal times: the inputs' order
      [4, 'shop/db-0'],
      [9, 'shop/web-0'],
      [10, 'shop/web-0'],
      [20, 'shop/db-0'],
      [25, 'shop/api-0'],
      [30, 'shop/web-0'],
    ]);
    // Interface ids in the inputs' order, the same for both web-0 files.
    const ids = Object.fromEntries(rows.map((r) => [r[1], [r[2], r[3]]]));
    expect(ids).to.deep.equal({
      'shop/web-0': ['0', 'shop/web-0@node-a/cali5x'],
      'shop/db-0': ['1', 'shop/db-0@node-a/cali4x'],
      'shop/api-0': ['2', 'shop/api-0@node-b/cali5x'],
    });
    // Every packet comes through intact (our reader agrees with tshark).
    const packets = readCapture(readFileSync(merged));
    expect(packets.map((p) => p.data.length)).to.deep.equal([45, 43, 44, 43, 44, 43, 43, 44, 45, 43]);
    const times = packets.map((p) => p.timestampNs);
    expect([...times].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0))).to.deep.equal(times);
  });

  it('streams: it reads ahead of what it writes by about one output chunk, not whole files', async function () {
    const t = 1_764_000_000_000_000;
    const files = ['x', 'y'].map((pod, i) => {
      const f = path.join(dir, `${pod}.pcapng`);
      // 2000 packets of ~1.1 KB each, ~2.3 MB per file, interleaved in time.
      writeFile(f, label(`${pod}-0`), Array.from({ length: 2000 }, (_, k) => [t + 2 * k + i, 1000] as const));
      return readFileSync(f);
    });
    let read = 0;
    const gen = mergePcapng(files.map((buf, i) => ({ name: `n/${i}`, chunks: chunked(buf, 4096, () => (read += 4096)) })));
    const first = await gen.next();
    expect(first.done).to.equal(false);
    // One 64 KiB output chunk needed about that much input, not the 4.6 MB there is.
    expect(read).to.be.below(256 * 1024);
    const rest = await collect({ [Symbol.asyncIterator]: () => gen });
    expect(readCapture(Buffer.concat([first.value as Buffer, rest]))).to.have.length(4000);
  });

  it('fails on a truncated file rather than writing a broken one, and closes every input', async function () {
    const f = path.join(dir, 't.pcapng');
    writeFile(f, label('web-0'), [[1, 10], [2, 10]]);
    const buf = readFileSync(f);
    let closed = 0;
    const input = (data: Buffer) =>
      (async function* () {
        try {
          yield* chunked(data);
        } finally {
          closed += 1;
        }
      })();
    const gen = mergePcapng([
      { name: 'node-a/web-0', chunks: input(buf.subarray(0, buf.length - 6)) },
      { name: 'node-a/ok-0', chunks: input(buf) },
    ]);
    let error: unknown;
    try {
      await collect(gen);
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(PcapngMergeError);
    expect((error as Error).message).to.match(/node-a\/web-0: truncated/);
    expect(closed).to.equal(2);
  });
});

describe('pcapng: the capture engine on lo (root)', function () {
  let dir: string;
  before(function () {
    if (!isRoot) this.skip();
  });
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'nw-capture-ng-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes and rotates pcapng files that tshark reads, every packet with its pod', async function () {
    const port = 40000 + Math.floor(Math.random() * 20000);
    const c = new PodCapture({
      dir,
      pod: 'web-0',
      device: 'lo',
      filter: compileCaptureFilter([{ protocol: 'UDP', ports: [port] }], 'ingress', '127.0.0.1'),
      snapLen: 65535,
      fileSizeBytes: 10_000,
      maxFiles: 10,
      maxBytes: 1 << 30,
      existingFiles: [],
      existingBytes: 0,
      firstSequence: 1,
      ringBytes: DEFAULT_CEILINGS.ringBytes,
      gate: OPEN_GATE,
      format: 'pcapng',
      label: { namespace: 'shop', node: 'node-a', direction: 'ingress', capture: 'shop/trace' },
    });
    c.start();
    const s = createSocket('udp4');
    const payload = Buffer.alloc(1001, 7);
    for (let i = 0; i < 20; i++) await new Promise<void>((r) => s.send(payload, port, '127.0.0.1', () => r()));
    s.close();
    await new Promise((r) => setTimeout(r, 300));
    c.stop('finished', 'test over');
    const files = readdirSync(dir).sort();
    expect(files.length).to.be.above(1);
    for (const f of files) expect(f).to.match(/^web-0_lo_\d{5}\.pcapng$/);
    let total = 0;
    let bytes = 0;
    for (const f of files) {
      const rows = tsharkFields(path.join(dir, f), ['frame.comment', 'frame.interface_name', 'udp.dstport', 'frame.len']);
      for (const r of rows) expect(r).to.deep.equal(['shop/web-0', 'shop/web-0@node-a/lo', String(port), '1043']);
      total += rows.length;
      bytes += statSync(path.join(dir, f)).size;
      expect(statSync(path.join(dir, f)).size).to.be.at.most(10_000);
    }
    expect(total).to.equal(20);
    expect(c.packets).to.equal(20);
    expect(c.bytes).to.equal(bytes);
  });
});
