import { expect } from 'chai';
import { appendFileSync, closeSync, openSync, renameSync, writeSync } from 'node:fs';
import { appendFile, copyFile, mkdtemp, open, readFile, rename, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { CheckpointStore, type TailCheckpoint } from '../../src/nodeagent/tail/checkpoint.js';
import { LineFollower, checkpointOf, type LineFollowerOptions, type TailEvent, type TailRecord } from '../../src/nodeagent/tail/follower.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const tick = () => new Promise<void>((r) => setImmediate(r));

/** lumberjack-style rotated name for rotation number n. */
const rotatedName = (n: number) => `app-2026-11-23T03-20-${String(10 + Math.floor(n / 1000)).padStart(2, '0')}.${String(n % 1000).padStart(3, '0')}.log`;

async function take(f: LineFollower, n: number, timeoutMs = 5000): Promise<TailRecord[]> {
  const out: TailRecord[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    const left = deadline - Date.now();
    const r = await Promise.race([f.next(), sleep(Math.max(0, left)).then(() => 'timeout' as const)]);
    if (r === 'timeout') throw new Error(`timed out after ${out.length}/${n} records: last=${out.at(-1)?.line.toString()}`);
    if (r === null) throw new Error(`follower closed after ${out.length}/${n} records`);
    out.push(r);
  }
  return out;
}

/** Resolves to the record, or 'none' if nothing arrives within ms (the pending next() is returned too). */
async function nextWithin(f: LineFollower, ms: number): Promise<{ r: TailRecord | null | 'none'; pending: Promise<TailRecord | null> }> {
  const pending = f.next();
  const r = await Promise.race([pending, sleep(ms).then(() => 'none' as const)]);
  return { r, pending };
}

const text = (rs: TailRecord[]) => rs.map((r) => r.line.toString());
const nums = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `line ${from + i}`);

describe('tail LineFollower', function () {
  this.timeout(15000);
  let dir: string;
  let live: string;
  const followers: LineFollower[] = [];
  const mk = (opts: LineFollowerOptions = {}) => {
    const f = new LineFollower(live, { pollIntervalMs: 50, ...opts });
    followers.push(f);
    return f;
  };
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tail-f-'));
    live = join(dir, 'app.log');
  });
  afterEach(async () => {
    for (const f of followers.splice(0)) await f.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('follows appends with correct offsets', async () => {
    await writeFile(live, 'a\nbb\n');
    const f = mk({ start: 'beginning' });
    const first = await take(f, 2);
    expect(text(first)).to.deep.equal(['a', 'bb']);
    expect(first.map((r) => [r.offset, r.endOffset, r.length, r.incomplete, r.oversize])).to.deep.equal([
      [0, 2, 1, false, false],
      [2, 5, 2, false, false],
    ]);
    setTimeout(() => void appendFile(live, 'ccc\ndddd\n'), 30);
    const more = await take(f, 2);
    expect(text(more)).to.deep.equal(['ccc', 'dddd']);
    expect(more[1]?.endOffset).to.equal(14);
    expect(f.position()?.offset).to.equal(14);
  });

  it('starts at the end, skipping a partial last line', async () => {
    await writeFile(live, 'old1\nold2\npart');
    const f = mk({ start: 'end' });
    expect((await f.start()).mode).to.equal('end');
    await appendFile(live, 'ial\nnew1\n');
    const [r] = await take(f, 1);
    expect(r?.line.toString()).to.equal('new1');
    expect(r?.offset).to.equal(18);
  });

  it('waits for a file that does not exist yet', async () => {
    const f = mk({ start: 'end' });
    expect((await f.start()).mode).to.equal('waiting');
    setTimeout(() => void writeFile(live, 'hello\n'), 50);
    expect(text(await take(f, 1))).to.deep.equal(['hello']);
  });

  it('holds a partial line until its newline arrives', async () => {
    await writeFile(live, 'abc');
    const f = mk({ start: 'beginning' });
    const { r, pending } = await nextWithin(f, 300);
    expect(r).to.equal('none');
    await appendFile(live, 'def');
    await sleep(100);
    await appendFile(live, 'ghi\nnext\n');
    const rec = await pending;
    expect(rec?.line.toString()).to.equal('abcdefghi');
    expect([rec?.offset, rec?.endOffset, rec?.incomplete]).to.deep.equal([0, 10, false]);
    expect(text(await take(f, 1))).to.deep.equal(['next']);
  });

  it('reads the renamed file to its end while it is still appended to, then the new file (no loss, no dups)', async () => {
    const events: TailEvent[] = [];
    const f = mk({ start: 'beginning', onEvent: (e) => events.push(e) });
    const fd = openSync(live, 'a');
    for (let i = 0; i < 50; i++) writeSync(fd, `line ${i}\n`);
    const reader = take(f, 150);
    await sleep(60);
    renameSync(live, join(dir, rotatedName(1)));
    closeSync(openSync(live, 'a')); // the new, still empty, live file (logrotate `create`)
    // the writer has not reopened yet: it keeps appending to the renamed file for a while
    for (let i = 50; i < 100; i++) {
      writeSync(fd, `line ${i}\n`);
      if (i % 10 === 0) await sleep(40);
    }
    closeSync(fd);
    for (let i = 100; i < 150; i++) appendFileSync(live, `line ${i}\n`);
    const got = await reader;
    expect(text(got)).to.deep.equal(nums(0, 150));
    expect(got[99]?.path).to.equal(live); // opened as the live path before it was renamed
    expect(got[100]?.offset).to.equal(0);
    expect(got[100]?.file.inode).to.not.equal(got[99]?.file.inode);
    expect(events.filter((e) => e.type === 'rotated')).to.have.length(1);
    expect((await nextWithin(f, 200)).r).to.equal('none');
  });

  it('resumes from a checkpoint into a rotated+gzipped file, then later rotated files and the live file', async () => {
    const store = new CheckpointStore(join(dir, 'state'), 'app');
    await writeFile(live, nums(0, 10).join('\n') + '\n');
    const f1 = mk({ start: 'beginning' });
    const first = await take(f1, 5);
    expect(text(first)).to.deep.equal(nums(0, 5));
    await store.save(checkpointOf(first[4] as TailRecord));
    await f1.close();

    // while stopped: more lines, two rotations, gzip of both rotated files (first one removed)
    await appendFile(live, nums(10, 15).join('\n') + '\n');
    const r1 = join(dir, rotatedName(1));
    await rename(live, r1);
    await writeFile(live, nums(15, 20).join('\n') + '\n');
    const r2 = join(dir, rotatedName(2));
    await rename(live, r2);
    await writeFile(live, nums(20, 25).join('\n') + '\n');
    await writeFile(`${r1}.gz`, gzipSync(await readFile(r1)));
    await unlink(r1);
    await writeFile(`${r2}.gz`, gzipSync(await readFile(r2))); // r2 compressed but not yet removed

    const { checkpoint, error } = await store.load();
    expect(error).to.equal(undefined);
    const events: TailEvent[] = [];
    const f2 = mk({ start: { checkpoint: checkpoint as TailCheckpoint }, onEvent: (e) => events.push(e) });
    const st = await f2.start();
    expect(st).to.deep.include({ mode: 'rotated', path: `${r1}.gz`, possibleDataLoss: false });
    const got = await take(f2, 20);
    expect(text(got)).to.deep.equal(nums(5, 25));
    expect(got[0]?.compressed).to.equal(true);
    expect(got[0]?.offset).to.equal((first[4] as TailRecord).endOffset);
    expect(got[9]?.path).to.equal(`${r1}.gz`);
    expect(got[10]?.path).to.equal(r2); // plain preferred over its .gz twin
    expect(got[15]?.path).to.equal(live);
    await appendFile(live, 'line 25\n');
    expect(text(await take(f2, 1))).to.deep.equal(['line 25']);
    expect((await nextWithin(f2, 200)).r).to.equal('none');
    expect(events.some((e) => e.type === 'dataLoss')).to.equal(false);

    // a checkpoint inside the gz resumes there too
    const f3 = mk({ start: { checkpoint: checkpointOf(got[1] as TailRecord) } });
    expect(text(await take(f3, 3))).to.deep.equal(nums(7, 10));
  });

  it('resumes in the live file when inode and fingerprint match', async () => {
    await writeFile(live, nums(0, 4).join('\n') + '\n');
    const f1 = mk({ start: 'beginning' });
    const got = await take(f1, 2);
    await f1.close();
    await appendFile(live, 'line 4\n');
    const f2 = mk({ start: { checkpoint: f1.position() as TailCheckpoint } });
    expect((await f2.start()).mode).to.equal('live');
    expect(text(await take(f2, 3))).to.deep.equal(nums(2, 5));
    expect(got[1]?.file.fingerprintLength).to.equal(28); // file shorter than 1024: incomplete fingerprint
  });

  it('reports possible data loss and starts at the oldest file when the checkpointed file is gone', async () => {
    await writeFile(live, 'gone 1\ngone 2\n');
    const f1 = mk({ start: 'beginning' });
    const [r] = await take(f1, 1);
    await f1.close();
    await unlink(live);
    await writeFile(join(dir, rotatedName(5)), 'b1\n');
    await writeFile(join(dir, rotatedName(3)), 'a1\n');
    await writeFile(live, 'c1\n');
    const events: TailEvent[] = [];
    const f2 = mk({ start: { checkpoint: checkpointOf(r as TailRecord) }, onEvent: (e) => events.push(e) });
    const st = await f2.start();
    expect(st.mode).to.equal('oldest');
    expect(st.possibleDataLoss).to.equal(true);
    expect(events.some((e) => e.type === 'dataLoss')).to.equal(true);
    expect(text(await take(f2, 3))).to.deep.equal(['a1', 'b1', 'c1']);
  });

  it('restarts at 0 after copytruncate', async () => {
    const events: TailEvent[] = [];
    await writeFile(live, 'one\ntwo\n');
    const f = mk({ start: 'beginning', onEvent: (e) => events.push(e) });
    expect(text(await take(f, 2))).to.deep.equal(['one', 'two']);
    await copyFile(live, `${live}.1`);
    await truncate(live, 0);
    await sleep(150);
    await appendFile(live, 'three\n');
    const [r] = await take(f, 1);
    expect(r?.line.toString()).to.equal('three');
    expect(r?.offset).to.equal(0);
    expect(events.some((e) => e.type === 'truncated')).to.equal(true);
  });

  it('detects a truncation that was rewritten past the old offset before it looked', async () => {
    await writeFile(live, 'aaaa\n');
    const f = mk({ start: 'beginning', pollIntervalMs: 1000, watch: false });
    expect(text(await take(f, 1))).to.deep.equal(['aaaa']);
    const p = f.next();
    await writeFile(live, 'bbbbbbbbbb\ncc\n'); // truncate + rewrite, longer than before
    const [r] = [await p];
    expect(r?.line.toString()).to.equal('bbbbbbbbbb');
    expect(text(await take(f, 1))).to.deep.equal(['cc']);
  });

  it('restarts at 0 when the file is truncated and rewritten past its offset while the consumer is paused mid-file', async () => {
    // Fixed-width lines: the first 1024-byte chunk holds old lines 0..19 whole and the start of line 20.
    const oldLines = Array.from({ length: 100 }, (_, i) => `old ${String(i).padStart(4, '0')} ${'o'.repeat(40)}`); // 50 bytes with '\n'
    const newLines = Array.from({ length: 300 }, (_, i) => `new ${String(i).padStart(4, '0')} ${'n'.repeat(60)}`); // 21000 bytes: past the offset
    await writeFile(live, oldLines.map((l) => `${l}\n`).join(''));
    const events: TailEvent[] = [];
    // No watcher and a long poll: nothing but the consumer's next() makes the follower read.
    const f = mk({ start: 'beginning', readChunkBytes: 1024, watch: false, pollIntervalMs: 5000, onEvent: (e) => events.push(e) });
    const first = await take(f, 3);
    expect(text(first)).to.deep.equal(oldLines.slice(0, 3));

    // The consumer is paused; the file is emptied and rewritten, longer than the follower's offset.
    await writeFile(live, newLines.map((l) => `${l}\n`).join(''));
    const rest: TailRecord[] = [];
    while (rest.at(-1)?.line.toString() !== newLines.at(-1)) {
      rest.push(...(await take(f, 1)));
      expect(rest.length, 'more records than the old chunk plus the new file').to.be.at.most(21 + newLines.length);
    }
    expect((await nextWithin(f, 300)).r).to.equal('none');

    const fromNew = rest.findIndex((r) => r.line.toString().startsWith('new '));
    const oldTail = rest.slice(0, fromNew);
    const complete = oldTail.filter((r) => !r.incomplete);
    // What was read before the rewrite is yielded as it was: whole old lines in order, then at most
    // the cut-off start of the next one, flagged incomplete. Nothing later of the old file.
    expect(text(complete)).to.deep.equal(oldLines.slice(3, 3 + complete.length));
    expect(complete.length).to.be.lessThan(20);
    const cut = oldTail.filter((r) => r.incomplete);
    expect(cut.length).to.be.at.most(1);
    if (cut[0]) expect(oldLines[3 + complete.length]?.startsWith(cut[0].line.toString())).to.equal(true);
    // Then every line of the new content exactly once, in order, from offset 0; none garbled.
    const fresh = rest.slice(fromNew);
    expect(text(fresh)).to.deep.equal(newLines);
    expect(fresh[0]?.offset).to.equal(0);
    expect(fresh.at(-1)?.endOffset).to.equal(newLines.length * 70);
    expect(fresh.every((r) => !r.incomplete && r.file.inode === first[0]?.file.inode)).to.equal(true);
    expect(events.filter((e) => e.type === 'truncated')).to.have.length(1);
    expect(f.position()?.offset).to.equal(newLines.length * 70);
  });

  it('notices a rewrite that ends exactly at its old offset', async () => {
    await writeFile(live, 'aaaa\n');
    const events: TailEvent[] = [];
    const f = mk({ start: 'beginning', watch: false, pollIntervalMs: 50, onEvent: (e) => events.push(e) });
    expect(text(await take(f, 1))).to.deep.equal(['aaaa']);
    await writeFile(live, 'bbbb\n'); // same size: only the content tells
    const [r] = await take(f, 1);
    expect([r?.line.toString(), r?.offset]).to.deep.equal(['bbbb', 0]);
    expect(events.filter((e) => e.type === 'truncated')).to.have.length(1);
  });

  it('yields a 5 MB line whole, written in pieces', async () => {
    const big = 'x'.repeat(5 * 1024 * 1024);
    const fh = await open(live, 'a');
    const f = mk({ start: 'beginning' });
    const p = take(f, 2);
    for (let i = 0; i < big.length; i += 1024 * 1024) {
      await fh.write(big.slice(i, i + 1024 * 1024));
      await tick();
    }
    await fh.write('\nafter\n');
    await fh.close();
    const [a, b] = await p;
    expect(a?.line.length).to.equal(big.length);
    expect(a?.line.equals(Buffer.from(big))).to.equal(true);
    expect([a?.oversize, a?.endOffset]).to.deep.equal([false, big.length + 1]);
    expect(b?.line.toString()).to.equal('after');
  });

  it('yields a line over maxLineBytes as an oversize record and keeps going', async () => {
    const long = Buffer.alloc(50_000, 'y');
    await writeFile(live, Buffer.concat([Buffer.from('before\n'), long, Buffer.from('\nafter\n')]));
    const events: TailEvent[] = [];
    const f = mk({ start: 'beginning', maxLineBytes: 1000, readChunkBytes: 4096, onEvent: (e) => events.push(e) });
    const [a, b, c] = await take(f, 3);
    expect(a?.line.toString()).to.equal('before');
    expect(b?.oversize).to.equal(true);
    expect(b?.line.length).to.equal(1000);
    expect(b?.length).to.equal(50_000);
    expect([b?.offset, b?.endOffset]).to.deep.equal([7, 7 + 50_001]);
    expect(c?.line.toString()).to.equal('after');
    expect(c?.oversize).to.equal(false);
    expect(events.filter((e) => e.type === 'oversize')).to.have.length(1);
  });

  it('sees every line exactly once, in order, across three rotations under load', async () => {
    const total = 6000;
    const every = 1500;
    const f = mk({ start: 'beginning' });
    await writeFile(live, '');
    const reader = take(f, total, 10000);
    let fh = await open(live, 'a');
    let rot = 0;
    for (let i = 0; i < total; i++) {
      await fh.write(`line ${i}\n`);
      if ((i + 1) % every === 0 && i + 1 < total) {
        await fh.close(); // lumberjack: close, rename, open new
        await rename(live, join(dir, rotatedName(++rot)));
        fh = await open(live, 'a');
      }
    }
    await fh.close();
    expect(rot).to.equal(3);
    const got = await reader;
    expect(text(got)).to.deep.equal(nums(0, total));
    expect((await nextWithin(f, 200)).r).to.equal('none');
  });

  it('catches up on several rotations that happened (and were gzipped) before it looked', async () => {
    await writeFile(live, 'line 0\n');
    const f = mk({ start: 'beginning', watch: false, pollIntervalMs: 200 });
    expect(text(await take(f, 1))).to.deep.equal(['line 0']);
    // all in one synchronous burst: the follower is idle at EOF of the first file
    let n = 1;
    for (let rot = 1; rot <= 3; rot++) {
      for (let k = 0; k < 100; k++) appendFileSync(live, `line ${n++}\n`);
      renameSync(live, join(dir, rotatedName(rot)));
    }
    for (let k = 0; k < 100; k++) appendFileSync(live, `line ${n++}\n`);
    const r1 = join(dir, rotatedName(1));
    await writeFile(`${r1}.gz`, gzipSync(await readFile(r1)));
    await unlink(r1); // the file being read was rotated, gzipped and removed
    expect(text(await take(f, n - 1))).to.deep.equal(nums(1, n));
  });

  it('close() resolves a pending next() with null', async () => {
    await writeFile(live, '');
    const f = mk({ start: 'beginning' });
    const p = f.next();
    await sleep(50);
    await f.close();
    expect(await p).to.equal(null);
    expect(await f.next()).to.equal(null);
  });
});
