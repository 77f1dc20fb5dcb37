import { expect } from 'chai';
import { closeSync, createReadStream, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { LineBuffer, runDropsParse } from '../../src/cli/drops.js';
import { noDropMetrics } from '../../src/nodeagent/drops/metrics.js';

function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    highWaterMark: 16, // force back-pressure paths
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      setImmediate(cb);
    },
  });
  return { stream, text: () => chunks.join('') };
}

describe('drops: netwarden drops parse', () => {
  it('writes one JSON object per input line (text and journal JSON lines)', async () => {
    const out = sink();
    const res = await runDropsParse({
      prefixes: ['[UFW BLOCK]', 'nftables-metal-dropped: '],
      input: createReadStream(new URL('../fixtures/drops/kernel-mixed.log', import.meta.url)),
      output: out.stream,
      bootTime: new Date('2026-11-23T00:00:00Z'),
      metrics: noDropMetrics,
    });
    const objs = out
      .text()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { drop?: Record<string, unknown>; skipped?: string; line?: string });
    expect(objs).to.have.length(8);
    expect(res).to.deep.equal({ parsed: 4, skipped: 4 });
    expect(objs[0]!.drop).to.deep.include({ prefix: '[UFW BLOCK]', dstPort: 22, src: '203.0.113.7' });
    expect(objs[1]!.drop).to.deep.include({ protocol: 'UDP', length: 76 });
    expect(objs[2]).to.deep.include({ skipped: 'not-a-drop' });
    expect(objs[3]!.drop).to.deep.include({ prefix: 'nftables-metal-dropped:', time: '2026-11-23T03:20:56.123Z' });
    expect(objs[4]).to.deep.include({ skipped: 'unknown-prefix' });
    expect(objs[4]!.line).to.contain('some-other-rule');
    expect(objs[5]).to.deep.include({ skipped: 'empty' });
    expect(objs[6]!.drop).to.deep.include({ timeSource: 'journal', dstPort: 445 });
    expect(objs[7]).to.deep.include({ skipped: 'truncated' });
  });

  it('handles a last line without newline, multi-byte characters split across chunks, and many lines', async () => {
    const input = new PassThrough();
    const out = sink();
    const done = runDropsParse({ prefixes: ['dröp:'], input, output: out.stream, metrics: noDropMetrics });
    const line = Buffer.from('dröp: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=1 DPT=2 LEN=20\n');
    for (let i = 0; i < 2000; i++) {
      input.write(line.subarray(0, 2)); // splits the two bytes of "ö"
      input.write(line.subarray(2));
    }
    input.end(line.subarray(0, line.length - 1));
    const res = await done;
    expect(res).to.deep.equal({ parsed: 2001, skipped: 0 });
    const last = JSON.parse(out.text().trimEnd().split('\n').pop()!) as { drop: { prefix: string } };
    expect(last.drop.prefix).to.equal('dröp:');
  });

  it('accepts string streams', async () => {
    const out = sink();
    const res = await runDropsParse({ prefixes: [], input: Readable.from(['garbage\n', 'x: IN=a OUT= SRC=1.1.1.1 DST=2.2.2.2 LEN=1 PROTO=47']), output: out.stream, metrics: noDropMetrics });
    expect(res).to.deep.equal({ parsed: 1, skipped: 1 });
  });
});

describe('drops: the line buffer of netwarden drops parse', () => {
  /** The lines LineBuffer hands out for `input` pushed in pieces of `piece` bytes, its Buffer `chunk` bytes. */
  function linesOf(input: Buffer, piece: number, chunk: number): string[] {
    const lines: string[] = [];
    const reader = new LineBuffer((buf, start, end) => lines.push(buf.toString('utf8', start, end)), chunk);
    for (let i = 0; i < input.length; i += piece) reader.push(input.subarray(i, i + piece));
    reader.end();
    return lines;
  }

  it('hands out each line whole across chunk boundaries, with multi-byte characters, CRLF, empty lines and a line longer than the buffer', () => {
    const long = `dröp: ${'x'.repeat(100)}😀`;
    const text = `a\nhöst kernel: dröp: IN=eth0\r\n\n${long}\nlast without newline`;
    const expected = ['a', 'höst kernel: dröp: IN=eth0\r', '', long, 'last without newline'];
    for (const piece of [1, 2, 3, 7, 16, 1000]) {
      expect(linesOf(Buffer.from(text), piece, 16), `pieces of ${piece}`).to.deep.equal(expected);
    }
  });

  it('keeps lines intact after a long line (the buffer grows and shrinks back)', () => {
    const lines = ['x'.repeat(50), 'short', 'y'.repeat(300), 'after'];
    expect(linesOf(Buffer.from(lines.join('\n') + '\n'), 5, 8)).to.deep.equal(lines);
  });
});

describe('drops: netwarden drops parse from a file descriptor', () => {
  const text = [
    'Sep  3 11:38:30 höst kernel: [  957.705811] dröp: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=1 DPT=2 LEN=20\r',
    'kernel: other "quoted" \u0001 line',
    '{"MESSAGE":"dröp: IN=eth0 OUT= SRC=10.0.0.3 DST=10.0.0.4 LEN=40 PROTO=TCP SPT=1 DPT=22 SYN URGP=0","__REALTIME_TIMESTAMP":"1795404056123456","_TRANSPORT":"kernel"}',
    '2026-11-23T03:20:56.5+00:00 h kernel: dröp: IN=et"h0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 PROTO=UDP SPT=1 DPT=2',
  ].join('\n');

  async function run(input: { fd: number } | { stream: Readable }): Promise<string> {
    const out = sink();
    const common = { prefixes: ['dröp:'], output: out.stream, bootTime: new Date('2026-11-23T00:00:00Z'), metrics: noDropMetrics, keepRaw: true };
    const res = 'fd' in input ? await runDropsParse({ ...common, inputFd: input.fd, input: () => Readable.from([]) }) : await runDropsParse({ ...common, input: input.stream });
    expect(res).to.deep.equal({ parsed: 3, skipped: 1 });
    return out.text();
  }

  it('reads a file on the descriptor and writes what the stream path writes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nw-drops-cli-'));
    try {
      const file = join(dir, 'kern.log');
      writeFileSync(file, text);
      const fd = openSync(file, 'r');
      let fromFd: string;
      try {
        fromFd = await run({ fd });
      } finally {
        closeSync(fd);
      }
      const fromStream = await run({ stream: createReadStream(file, { highWaterMark: 7 }) });
      expect(fromFd).to.equal(fromStream);
      const objs = fromFd.trimEnd().split('\n').map((l) => JSON.parse(l) as { drop?: Record<string, unknown>; skipped?: string; line?: string });
      expect(objs[0]!.drop).to.deep.include({ prefix: 'dröp:', timeSource: 'syslog', srcPort: 1, raw: text.split('\n')[0]!.slice(0, -1) });
      expect(objs[1]).to.deep.equal({ skipped: 'not-a-drop', line: 'kernel: other "quoted" \u0001 line' });
      expect(objs[2]!.drop).to.deep.include({ timeSource: 'journal', dstPort: 22, tcpFlags: ['SYN'] });
      expect(objs[3]!.drop).to.deep.include({ inInterface: 'et"h0' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
