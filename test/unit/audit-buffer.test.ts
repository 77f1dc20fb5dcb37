// The AuditForwarder's disk buffer on a real filesystem: records come back in order across
// segments and reopenings, only what was committed is handed out, and a reopening cuts the buffer
// back to the committed end (what came after is read from the log again), and drops what was
// delivered.
import { expect } from 'chai';
import { appendFile, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DiskBuffer, type BufferPosition } from '../../src/nodeagent/audit/buffer.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const rec = (i: number) => Buffer.from(`{"n":${i},"pad":"${'x'.repeat(i % 97)}"}`);

async function take(b: DiskBuffer, n: number): Promise<Array<{ text: string; end: BufferPosition }>> {
  const out = [];
  for (let i = 0; i < n; i++) {
    const r = await Promise.race([b.next(), sleep(2000).then(() => 'timeout' as const)]);
    if (r === 'timeout' || r === null) throw new Error(`got ${out.length} of ${n} records`);
    out.push({ text: r.payload.toString(), end: r.end });
  }
  return out;
}

describe('audit disk buffer', function () {
  this.timeout(10_000);
  let dir: string;
  const buffers: DiskBuffer[] = [];
  const openBuffer = async (delivered: BufferPosition | null, committed: BufferPosition | null, maxBytes = 1 << 30) => {
    const b = await DiskBuffer.open(dir, delivered, committed, { maxBytes, segmentBytes: 4096 });
    buffers.push(b);
    return b;
  };
  beforeEach(async () => {
    dir = path.join(await mkdtemp(path.join(tmpdir(), 'nw-buffer-')), 'buffer');
  });
  afterEach(async () => {
    for (const b of buffers.splice(0)) await b.close();
    await rm(path.dirname(dir), { recursive: true, force: true });
  });

  it('hands out only committed records, in order, across segments', async () => {
    const b = await openBuffer(null, null);
    for (let i = 0; i < 200; i++) {
      await b.append(rec(i));
      if (i % 20 === 19 && i < 199) await b.flush(); // flushed, not yet committed
    }
    expect(b.readable).to.equal(false);
    const pending = b.next();
    expect(await Promise.race([pending, sleep(100).then(() => 'none')])).to.equal('none');
    b.commit(await b.flush());
    const first = await pending;
    const rest = await take(b, 199);
    expect([first!.payload.toString(), ...rest.map((r) => r.text)]).to.deep.equal(Array.from({ length: 200 }, (_, i) => rec(i).toString()));
    expect((await readdir(dir)).length).to.be.greaterThan(2); // 4 KiB segments
  });

  it('cuts back to the committed end when reopened, and drops delivered segments', async () => {
    const b1 = await openBuffer(null, null);
    for (let i = 0; i < 100; i++) await b1.append(rec(i));
    const committed = await b1.flush();
    b1.commit(committed);
    for (let i = 100; i < 150; i++) await b1.append(rec(i)); // appended, never committed
    await b1.flush();
    const got = await take(b1, 60);
    const delivered = got[59]!.end;
    await b1.acknowledge(delivered);
    await b1.close();
    // A crash in the middle of a write: a torn record at the end of the newest segment.
    const names = (await readdir(dir)).sort();
    await appendFile(path.join(dir, names.at(-1)!), Buffer.from([0xff, 0x00, 0x00]));
    const b2 = await openBuffer(delivered, committed);
    expect((await take(b2, 40)).map((r) => r.text)).to.deep.equal(Array.from({ length: 40 }, (_, i) => rec(60 + i).toString()));
    expect(b2.readable).to.equal(false);
    const left = (await readdir(dir)).sort();
    expect(Number(left[0]!.slice(0, 12))).to.equal(delivered.segment);
    const last = left.at(-1)!;
    expect((await stat(path.join(dir, last))).size).to.equal(committed.offset);
    // What comes next follows the committed records.
    await b2.append(rec(1000));
    b2.commit(await b2.flush());
    expect((await take(b2, 1))[0]!.text).to.equal(rec(1000).toString());
  });

  it('makes append wait while full, until a delivery makes room', async () => {
    const b = await openBuffer(null, null, 2000);
    for (let i = 0; i < 80; i++) await b.append(rec(1));
    b.commit(await b.flush());
    expect(b.full).to.equal(true);
    let appended = false;
    const waiting = b.append(rec(2)).then(() => (appended = true));
    await sleep(50);
    expect(appended).to.equal(false);
    const got = await take(b, 80);
    await b.acknowledge(got[79]!.end);
    await waiting;
    expect(appended).to.equal(true);
  });

  it('removes itself once closed with everything delivered, and numbers on after a reopening', async () => {
    const b1 = await openBuffer(null, null);
    await b1.append(rec(1));
    const end = await b1.flush();
    b1.commit(end);
    const [r] = await take(b1, 1);
    await b1.acknowledge(r!.end);
    await b1.close();
    await b1.dropIfDelivered();
    expect(await readdir(path.dirname(dir))).to.deep.equal([]);
    const b2 = await openBuffer(r!.end, end);
    await b2.append(rec(2));
    b2.commit(await b2.flush());
    const [again] = await take(b2, 1);
    expect(again!.text).to.equal(rec(2).toString());
    expect(again!.end.segment).to.equal(r!.end.segment + 1);
  });
});
