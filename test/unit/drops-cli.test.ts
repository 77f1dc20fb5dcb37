import { expect } from 'chai';
import { createReadStream } from 'node:fs';
import { PassThrough, Readable, Writable } from 'node:stream';
import { runDropsParse } from '../../src/cli/drops.js';
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
