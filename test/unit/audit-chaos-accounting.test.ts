// The chaos test's bookkeeping (test/env/audit-chaos.ts), without a cluster: which lost events a
// gap explains, and the lumberjack writer's rotation, gzip and pruning (test/env/audit-log-writer.ts).
import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { account, gapCovers, gapRecordsOf, type GapRecord } from '../env/audit-chaos.js';
import { backupName, runWriter, type WriterFile, type WriterManifest } from '../env/audit-log-writer.js';

const DIR = '/var/log/kubernetes/audit';
const name = (s: number) => `audit-2026-05-01T10-00-${String(s).padStart(2, '0')}.000.log`;

function manifestOf(files: Array<Partial<WriterFile> & { events: number }>): { manifest: WriterManifest; keys: string[] } {
  let seq = 0;
  const out: WriterFile[] = files.map((f, index) => {
    const file: WriterFile = { index, firstSeq: seq, endSeq: seq + f.events, bytes: 0, createdAt: '2026-05-01T10:00:00.000Z', ...f };
    seq += f.events;
    return file;
  });
  const manifest: WriterManifest = {
    version: 1, seed: 't', dir: DIR, livePath: path.join(DIR, 'audit.log'), keysFile: '', rate: 1, seconds: 1, maxSizeBytes: 1, maxBackups: 1,
    compressFraction: 0, startedAt: '', done: true, written: seq, rotations: files.length - 1, files: out,
  };
  return { manifest, keys: Array.from({ length: seq }, (_, i) => `id-${i}/ResponseComplete`) };
}

describe('audit chaos accounting', () => {
  it('covers a file by its path (plain or .gz) or strictly between after and before, audit.log being +infinity', () => {
    expect(gapCovers({ files: [path.join(DIR, `${name(3)}.gz`)] }, DIR, name(3))).to.equal(true);
    expect(gapCovers({ files: [path.join(DIR, name(3))] }, DIR, name(3))).to.equal(true);
    expect(gapCovers({ files: [path.join(DIR, name(4))] }, DIR, name(3))).to.equal(false);
    expect(gapCovers({ after: name(2), before: name(5) }, DIR, name(3))).to.equal(true);
    expect(gapCovers({ after: name(3), before: name(5) }, DIR, name(3))).to.equal(false); // exclusive
    expect(gapCovers({ after: name(1), before: name(3) }, DIR, name(3))).to.equal(false);
    expect(gapCovers({ after: name(2), before: 'audit.log' }, DIR, name(9))).to.equal(true);
    expect(gapCovers({ before: name(5) }, DIR, name(0))).to.equal(true); // no after: -infinity
    expect(gapCovers({ files: [] }, DIR, name(0))).to.equal(false); // no range without a bound
  });

  it('reads only the forwarder\'s "audit log lines skipped" lines', () => {
    const logs = [
      { level: 'warn', message: 'audit log lines skipped', component: 'audit-forwarder', key: 'af', reason: 'r', files: ['/x/audit-1.log'], after: 'a', before: 'audit.log', bytes: 5, timestamp: '2026-05-01T10:00:09.000Z' },
      { level: 'warn', message: 'audit log lines skipped', component: 'audit-forwarder', key: 'other', files: ['/x/audit-2.log'] },
      { level: 'warn', message: 'tail dataLoss', key: 'af' },
    ];
    expect(gapRecordsOf(logs, 'af')).to.deep.equal([{ reason: 'r', files: ['/x/audit-1.log'], after: 'a', before: 'audit.log', bytes: 5, timestamp: '2026-05-01T10:00:09.000Z' }]);
  });

  it('explains a loss only in a removed file named by a gap logged once it was gone', () => {
    const removed = '2026-05-01T10:00:10.000Z';
    const { manifest, keys } = manifestOf([
      { events: 10, rotatedName: name(1), deletedAt: removed }, // #0: lost, named by files after removal: explained
      { events: 10, rotatedName: name(2), deletedAt: removed }, // #1: lost, in the after/before range: explained
      { events: 10, rotatedName: name(3), deletedAt: removed }, // #2: lost, named only before removal: skipped on disk
      { events: 10, rotatedName: name(4) }, // #3: lost, never removed
      { events: 10, rotatedName: name(5), deletedAt: removed }, // #4: lost, named by nothing
      { events: 10 }, // #5: the live file, all received
    ]);
    const counts = new Map<string, number>();
    for (const k of keys.slice(50)) counts.set(k, 1);
    counts.set(keys[55]!, 3);
    counts.set(keys[9]!, 1); // one event of #0 arrived
    const gaps: GapRecord[] = [
      { files: [path.join(DIR, `${name(1)}.gz`)], timestamp: '2026-05-01T10:00:11.000Z' },
      { after: name(1), before: name(3), timestamp: '2026-05-01T10:00:12.000Z' },
      { files: [path.join(DIR, name(3)), path.join(DIR, name(4))], timestamp: '2026-05-01T10:00:05.000Z' },
    ];
    const r = account(manifest, keys, counts, gaps);
    expect(r).to.deep.include({ written: 60, received: 11, lost: 49, explained: 19, unexplained: 30, duplicates: 2, unknown: 0 });
    expect(r.lostFiles.map((f) => [f.index, f.lost, f.deleted, f.covered, f.coveredAfterRemoval])).to.deep.equal([
      [0, 9, true, true, true],
      [1, 10, true, true, true],
      [2, 10, true, true, false],
      [3, 10, false, true, false],
      [4, 10, true, false, false],
    ]);
  });

  it('does not explain a loss in a file the agent moved past while it was still on disk', () => {
    const { manifest, keys } = manifestOf([
      { events: 10, rotatedName: name(1), deletedAt: '2026-05-01T10:00:10.000Z' }, // later events arrived at :08, before its removal
      { events: 10, rotatedName: name(2), deletedAt: '2026-05-01T10:00:10.000Z' }, // (received)
      { events: 10, rotatedName: name(3), deletedAt: '2026-05-01T10:00:11.000Z' }, // later events arrived at :12, after its removal
      { events: 10 },
    ]);
    const counts = new Map<string, number>();
    const first = new Map<string, number>();
    keys.slice(10, 20).forEach((k) => (counts.set(k, 1), first.set(k, Date.parse('2026-05-01T10:00:08.000Z'))));
    keys.slice(30).forEach((k) => (counts.set(k, 1), first.set(k, Date.parse('2026-05-01T10:00:12.000Z'))));
    const gaps: GapRecord[] = [{ files: [path.join(DIR, name(1)), path.join(DIR, name(3))], timestamp: '2026-05-01T10:00:11.500Z' }];
    const r = account(manifest, keys, counts, gaps, first);
    expect(r.lostFiles.map((f) => [f.index, f.coveredAfterRemoval, f.overtakenOnDiskAt])).to.deep.equal([
      [0, true, '2026-05-01T10:00:08.000Z'],
      [2, true, undefined],
    ]);
    expect(r).to.deep.include({ lost: 20, explained: 10, unexplained: 10 });
  });

  it('writes lumberjack backups: names by UTC time, gzip of some, the oldest beyond maxBackups removed', async function () {
    this.timeout(30_000);
    expect(backupName('audit.log', new Date('2026-05-01T10:00:01.234Z'))).to.equal('audit-2026-05-01T10-00-01.234.log');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nw-writer-unit-'));
    try {
      const m = await runWriter({ dir, manifest: path.join(dir, 'manifest.json'), seed: 'u', rate: 4000, seconds: 3, maxSizeBytes: 256 * 1024, maxBackups: 3, compressFraction: 0.5, gzipDelayMs: [50, 200] });
      const again = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as WriterManifest;
      expect(again.done).to.equal(true);
      expect(again.written).to.equal(m.written);
      const keys = readFileSync(m.keysFile, 'utf8').split('\n').slice(0, -1);
      expect(keys).to.have.length(m.written);
      expect(new Set(keys).size).to.equal(keys.length);
      expect(m.rotations).to.be.greaterThan(8);
      const onDisk = readdirSync(dir).filter((n) => n.startsWith('audit'));
      const kept = m.files.filter((f) => f.rotatedName && !f.deletedAt);
      expect(kept).to.have.length(3);
      expect(kept.map((f) => (f.gzippedAt ? `${f.rotatedName}.gz` : f.rotatedName)).concat('audit.log').sort()).to.deep.equal(onDisk.sort());
      // Every file on disk holds exactly the events the manifest says, in order.
      for (const f of [...kept, m.files.at(-1)!]) {
        const file = f.rotatedName ? path.join(dir, f.gzippedAt ? `${f.rotatedName}.gz` : f.rotatedName) : path.join(dir, 'audit.log');
        const raw = readFileSync(file);
        const lines = (file.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8').split('\n').slice(0, -1);
        expect(lines.map((l) => { const e = JSON.parse(l) as { auditID: string; stage: string }; return `${e.auditID}/${e.stage}`; })).to.deep.equal(keys.slice(f.firstSeq, f.endSeq));
        expect(f.bytes).to.be.at.most(256 * 1024);
      }
      // Removed oldest first: every removed file is older than every kept one.
      const removed = m.files.filter((f) => f.deletedAt).map((f) => f.rotatedName!);
      expect(removed.every((r) => kept.every((k) => r < k.rotatedName!))).to.equal(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
