// AuditForwarder under chaos (test/env/audit-chaos.ts): a lumberjack-style audit log at 2,500
// events/s rotated about every second with a small maxBackups (5), most backups gzipped, while the
// agent is SIGKILLed three times and SIGTERMed once and the receiver is down once and slow once.
// Whatever is lost must be explained: the writer removed the file holding it before the agent
// moved past it, and the agent logged a gap naming that file once it was gone; and a loss shows in
// the status (gaps, lastGap). Until the agent logs its gaps ("audit log lines skipped") and stops
// skipping rotated files still on disk, this fails with maxBackups 5.
//
// AUDIT_CHAOS_SEEDS (comma-separated, default 11,12), AUDIT_CHAOS_SECONDS (default 50) and
// AUDIT_CHAOS_MAX_BACKUPS (default 5) change the run, e.g. maxBackups 50 to check the harness
// itself: nothing is removed before it is read, so nothing may be lost.
import { expect } from 'chai';
import { describeChaos, runAuditChaos, type ChaosResult } from '../env/audit-chaos.js';
import { cluster } from './hooks.js';

const seeds = (process.env.AUDIT_CHAOS_SEEDS ?? '11,12').split(',').map((s) => s.trim()).filter(Boolean);
const seconds = Number(process.env.AUDIT_CHAOS_SECONDS ?? 50);
const maxBackups = Number(process.env.AUDIT_CHAOS_MAX_BACKUPS ?? 5);

describe(`AuditForwarder chaos: rotation every ~1 s, maxBackups ${maxBackups}, agent kills, receiver outage and slowness`, function () {
  this.timeout((seconds + 150) * 1000);

  for (const seed of seeds) {
    it(`seed ${seed}: every lost event lies in a removed file that a gap names`, async function () {
      const r: ChaosResult = await runAuditChaos(cluster(), {
        name: `af-chaos-${seed}`, seed, writeSeconds: seconds, maxBackups,
        log: process.env.AUDIT_CHAOS_VERBOSE ? (l) => console.log(`      ${l}`) : undefined,
      });
      console.log(describeChaos(r).split('\n').map((l) => `      ${l}`).join('\n'));
      const why = `${describeChaos(r)}\ngap lines: ${JSON.stringify(r.gapRecords).slice(0, 3000)}\n${r.timeline.join('\n')}`;
      expect(r.written, why).to.be.greaterThan(seconds * 1000);
      expect(r.unknown, `received events the writer never wrote\n${why}`).to.equal(0);
      expect(r.caughtUp, `the agent did not catch up\n${why}`).to.not.equal('timeout');
      const unnamed = r.lostFiles.filter((f) => !f.covered);
      expect(unnamed.map((f) => f.name ?? `#${f.index}`), `files with lost events that no gap names\n${why}`).to.deep.equal([]);
      const early = r.lostFiles.filter((f) => f.deleted && f.covered && !f.coveredAfterRemoval);
      expect(early.map((f) => f.name), `files skipped while still on disk (named only by gaps logged before the writer removed them)\n${why}`).to.deep.equal([]);
      const overtaken = r.lostFiles.filter((f) => f.overtakenOnDiskAt);
      expect(overtaken.map((f) => f.name ?? `#${f.index}`), `files the agent moved past while they were still on disk (later events arrived before their removal)\n${why}`).to.deep.equal([]);
      const onDisk = r.lostFiles.filter((f) => !f.deleted);
      expect(onDisk.map((f) => f.name ?? `#${f.index}`), `files with lost events that were never removed\n${why}`).to.deep.equal([]);
      expect(r.unexplained, why).to.equal(0);
      if (r.lost > 0) {
        expect(r.gaps, `lost ${r.lost} events but status gaps is ${r.gaps}\n${why}`).to.be.at.least(1);
        expect(r.lastGap, why).to.be.a('string').and.not.equal('');
      }
    });
  }
});
