// The DropTail file source on a real kernel log file: it resumes from its checkpoint, and when
// the checkpointed file was rotated and deleted while the agent was down, it says what it skipped
// instead of going on silently.
import { expect } from 'chai';
import { appendFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PacketDrop } from '../../src/apis/drops.js';
import { FileSource } from '../../src/nodeagent/droptail/sources/file.js';
import type { SourceEvents } from '../../src/nodeagent/droptail/sources/types.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const drop = (src: string) =>
  `Sep  3 11:38:30 node-1 kernel: [  957.705811] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=${src} DST=10.0.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=54321 DF PROTO=TCP SPT=41234 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0\n`;

class Recorder implements SourceEvents {
  drops: PacketDrop[] = [];
  skips: Array<{ what: string; bytes: number | undefined }> = [];
  record(): void {}
  drop(d: PacketDrop): void {
    this.drops.push(d);
  }
  health(): void {}
  skipped(what: string, bytes?: number): void {
    this.skips.push({ what, bytes });
  }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await sleep(25);
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe('DropTail file source', function () {
  this.timeout(15000);
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dt-file-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports the lines it skipped when the checkpointed file was rotated and deleted while stopped', async () => {
    const log = join(dir, 'kern.log');
    await writeFile(log, drop('203.0.113.1'));
    const opts = { path: log, prefixes: ['[UFW BLOCK]'], stateDir: join(dir, 'state'), logKey: 'unit', pollIntervalMs: 30 };
    const first = new Recorder();
    const s1 = new FileSource(opts);
    const stop1 = new AbortController();
    const run1 = s1.run(stop1.signal, first);
    await sleep(150); // started at the end: the old line is not read
    await appendFile(log, drop('203.0.113.2'));
    await until(() => first.drops.length === 1, 'the appended drop');
    await s1.mark()!();
    stop1.abort();
    await run1;
    expect(first.drops.map((d) => d.src)).to.deep.equal(['203.0.113.2']);

    // While stopped: a drop, a rotation, and the rotated file deleted (rotate 0).
    await appendFile(log, drop('203.0.113.3'));
    await rename(log, `${log}.1`);
    await rm(`${log}.1`);
    await writeFile(log, drop('203.0.113.4'));

    const second = new Recorder();
    const s2 = new FileSource(opts);
    const stop2 = new AbortController();
    const run2 = s2.run(stop2.signal, second);
    await until(() => second.drops.length === 1, 'the drop in the new file');
    stop2.abort();
    await run2;
    expect(second.drops.map((d) => d.src)).to.deep.equal(['203.0.113.4']);
    expect(second.skips).to.have.length(1);
    expect(second.skips[0]!.what).to.match(/^checkpointed file not found .*reading went on at .*kern\.log$/);
  });
});
