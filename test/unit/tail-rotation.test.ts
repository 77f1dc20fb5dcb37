// The follower behind a writer that rotates fast and deletes old files (kube-apiserver with
// --audit-log-maxbackup): it never skips a file that still exists, holds the files it has yet to
// read open so deletion cannot take them, and reports every skip as a gap that names what it lost.
import { expect } from 'chai';
import { appendFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { LineFollower, checkpointOf, type LineFollowerOptions, type TailEvent, type TailGap, type TailRecord } from '../../src/nodeagent/tail/follower.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const rotatedName = (n: number) => `audit-2026-11-23T03-20-${String(10 + n).padStart(2, '0')}.000.log`;
const nums = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `line ${from + i}`);

async function take(f: LineFollower, n: number, timeoutMs = 8000): Promise<TailRecord[]> {
  const out: TailRecord[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    const r = await Promise.race([f.next(), sleep(Math.max(0, deadline - Date.now())).then(() => 'timeout' as const)]);
    if (r === 'timeout') throw new Error(`timed out after ${out.length}/${n} records: last=${out.at(-1)?.line.toString()}`);
    if (r === null) throw new Error(`closed after ${out.length}/${n}`);
    out.push(r);
  }
  return out;
}

async function nothingWithin(f: LineFollower, ms: number): Promise<boolean> {
  return (await Promise.race([f.next().then(() => false), sleep(ms).then(() => true)])) as boolean;
}

describe('tail LineFollower with a fast-rotating writer that deletes old files', function () {
  this.timeout(20000);
  let dir: string;
  let live: string;
  let n = 0;
  let rotations = 0;
  const followers: LineFollower[] = [];
  const mk = (events: TailEvent[], opts: LineFollowerOptions = {}) => {
    const f = new LineFollower(live, { pollIntervalMs: 30, onEvent: (e) => events.push(e), ...opts });
    followers.push(f);
    return f;
  };
  const gaps = (events: TailEvent[]): TailGap[] => events.filter((e): e is TailGap & { type: 'dataLoss' } => e.type === 'dataLoss');
  /** Writes `lines` numbered lines to the live file. */
  const write = (lines: number) => {
    let chunk = '';
    for (let i = 0; i < lines; i++) chunk += `line ${n++}\n`;
    appendFileSync(live, chunk);
  };
  /** lumberjack: rename the live file to its timestamped name, start a new one. */
  const rotate = (): string => {
    const to = join(dir, rotatedName(++rotations));
    renameSync(live, to);
    writeFileSync(live, '');
    return to;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tail-rot-'));
    live = join(dir, 'audit.log');
    n = 0;
    rotations = 0;
  });
  afterEach(async () => {
    for (const f of followers.splice(0)) await f.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reads every rotated file still on disk after the one it was reading is deleted, never jumping to the live file', async () => {
    const events: TailEvent[] = [];
    writeFileSync(live, '');
    const f = mk(events, { start: 'beginning' });
    write(100);
    expect((await take(f, 10)).map((r) => r.line.toString())).to.deep.equal(nums(0, 10));
    // The consumer is stalled while the writer rotates six times, gzips and keeps only 3 backups.
    const rotated: string[] = [];
    for (let i = 0; i < 6; i++) {
      rotated.push(rotate());
      write(100);
      await sleep(40); // the watcher sees each file while it exists
    }
    for (const r of rotated.slice(0, 3)) unlinkSync(r); // maxbackup 3: the file being read goes too
    writeFileSync(`${rotated[3]!}.gz`, gzipSync(Buffer.from(nums(300, 400).join('\n') + '\n')));
    unlinkSync(rotated[3]!);
    const rest = await take(f, n - 10);
    expect(rest.map((r) => r.line.toString())).to.deep.equal(nums(10, n));
    expect(gaps(events)).to.deep.equal([]);
    expect(await nothingWithin(f, 150)).to.equal(true);
  });

  it('holds new rotated files open while the consumer reads nothing, so deletion during a sink outage loses nothing', async () => {
    const events: TailEvent[] = [];
    writeFileSync(live, '');
    const f = mk(events, { start: 'beginning', watch: false, discoverIntervalMs: 50 });
    write(5);
    await take(f, 5);
    // 20 rotations, each deleted three rotations later, while nobody asks for a line.
    const rotated: string[] = [];
    for (let i = 0; i < 20; i++) {
      write(50);
      rotated.push(rotate());
      if (rotated.length > 3) unlinkSync(rotated[rotated.length - 4]!);
      await sleep(120);
    }
    write(7);
    const rest = await take(f, n - 5);
    expect(rest.map((r) => r.line.toString())).to.deep.equal(nums(5, n));
    expect(gaps(events)).to.deep.equal([]);
  });

  it('names the run of rotated files that came and went unseen, instead of skipping silently', async () => {
    const events: TailEvent[] = [];
    writeFileSync(join(dir, rotatedName(0)), 'old\n');
    writeFileSync(live, '');
    // No directory events and a slow timer: rotations can happen between two looks.
    const f = mk(events, { start: 'beginning', watch: false, discoverIntervalMs: 60_000 });
    write(5);
    await take(f, 5);
    rotate();
    write(5); // lines 5-9 in a file that will be deleted unseen
    const lostFile = rotate();
    write(5);
    unlinkSync(join(dir, rotatedName(1)));
    unlinkSync(lostFile);
    const rest = await take(f, 5);
    expect(rest.map((r) => r.line.toString())).to.deep.equal(nums(10, 15));
    const [gap, ...more] = gaps(events);
    expect(more).to.deep.equal([]);
    expect(gap).to.include({ after: rotatedName(0), before: 'audit.log' });
    // The lost file's name lies in the run the gap names.
    expect(basename(lostFile) > gap!.after! && basename(lostFile) < 'audit.log').to.equal(true);
  });

  it('after a restart, names the checkpointed rotated file and the run up to where reading went on', async () => {
    const events: TailEvent[] = [];
    writeFileSync(live, '');
    const f1 = mk([], { start: 'beginning' });
    await f1.start();
    write(10);
    rotate();
    write(10);
    await sleep(100); // seen while it exists: its name is part of the checkpoint
    const got = await take(f1, 5);
    const cp = checkpointOf(got[4]!);
    expect(cp.place?.name).to.equal(rotatedName(1));
    await f1.close();
    // While stopped: two more rotations; maxbackup deletes the checkpointed file and the next.
    rotate();
    write(10);
    rotate();
    write(10);
    unlinkSync(join(dir, rotatedName(1)));
    unlinkSync(join(dir, rotatedName(2)));
    const f2 = mk(events, { start: { checkpoint: cp } });
    const started = await f2.start();
    expect(started).to.include({ mode: 'oldest', path: join(dir, rotatedName(3)), possibleDataLoss: true });
    const [gap] = gaps(events);
    expect(gap).to.include({ after: rotatedName(1), before: rotatedName(3), path: join(dir, rotatedName(3)) });
    expect(gap!.files).to.deep.equal([join(dir, rotatedName(1))]);
    expect((await take(f2, 20)).map((r) => r.line.toString())).to.deep.equal(nums(20, 40));
  });

  it('lets the oldest deleted files go, each a gap with its size, when held files take more disk than allowed', async () => {
    const events: TailEvent[] = [];
    writeFileSync(live, '');
    const f = mk(events, { start: 'beginning', watch: false, discoverIntervalMs: 40, maxHeldDeletedBytes: 2500 });
    write(2);
    await take(f, 2);
    const rotated: string[] = [];
    for (let i = 0; i < 6; i++) {
      write(100); // 100 lines of 9 bytes: about 900 bytes a file
      rotated.push(rotate());
      await sleep(100);
    }
    for (const r of rotated) unlinkSync(r);
    await sleep(200);
    const lost = gaps(events);
    // The file being read (the first live file) is kept; of the five queued, at most 2500 bytes stay held.
    expect(lost.length).to.be.greaterThan(0);
    for (const g of lost) {
      expect(g.files).to.have.length(1);
      expect(g.bytes).to.be.greaterThan(800);
    }
    const released = lost.map((g) => basename(g.files[0]!));
    expect(released).to.deep.equal(rotated.slice(1, 1 + released.length).map((r) => basename(r)));
    write(3);
    const rest = await take(f, n - 2 - 100 * released.length);
    expect(rest.at(-1)?.line.toString()).to.equal(`line ${n - 1}`);
  });
});
