// AuditForwarder under chaos, the long run of the report (150 s of writing): the scenario
// of test/env/audit-chaos.ts on its own control plane, with the agent compiled as users run it.
// A lumberjack-style log at 2,500 events/s rotates about every second into at most 5 backups
// (NETWARDEN_BENCH_CHAOS_MAX_BACKUPS), most gzipped; the agent is SIGKILLed 4 times and
// SIGTERMed once, the receiver is down once and slow once. Reports what was written, received,
// lost, how much of the loss a removed file named by a gap explains, and the duplicates.
// Targets: nothing unexplained; the duplicate rate is shown against 1%.
import { startControlPlane } from '../test/env/controlplane.js';
import { describeChaos, runAuditChaos } from '../test/env/audit-chaos.js';
import { useCompiledCli } from './build.js';
import type { BenchResult } from './types.js';

export interface AuditChaosBenchOptions {
  seconds?: number;
  seed?: string;
  maxBackups?: number;
}

export async function benchAuditChaos(opts: AuditChaosBenchOptions = {}): Promise<BenchResult> {
  const seconds = opts.seconds ?? Number(process.env.NETWARDEN_BENCH_CHAOS_SECONDS ?? 150);
  const seed = opts.seed ?? process.env.NETWARDEN_BENCH_CHAOS_SEED ?? '150';
  const maxBackups = opts.maxBackups ?? Number(process.env.NETWARDEN_BENCH_CHAOS_MAX_BACKUPS ?? 5);
  await useCompiledCli(); // the agent runs compiled, as users run it
  const cp = await startControlPlane();
  const previousLevel = process.env.NETWARDEN_LOG_LEVEL;
  process.env.NETWARDEN_LOG_LEVEL = 'warn';
  try {
    const r = await runAuditChaos(cp, {
      name: 'bench-chaos', seed, writeSeconds: seconds, maxBackups, sigkills: 4, sigterms: 1,
      receiverDownMs: [10_000, 15_000], receiverSlowMs: [10_000, 15_000], catchUpTimeoutMs: 180_000,
      log: process.env.BENCH_DEBUG ? (l) => process.stdout.write(`  ${l}\n`) : undefined,
    });
    process.stdout.write(`${describeChaos(r)}\n`);
    const share = (n: number) => (r.written ? n / r.written : 0);
    return {
      name: `audit-chaos (${seconds} s at 2,500 events/s, rotation ~1 s, maxBackups ${maxBackups}, 4 SIGKILL + 1 SIGTERM, receiver down and slow)`,
      rows: [
        { metric: 'events written', value: r.written, unit: 'events' },
        { metric: 'received (distinct)', value: r.received, unit: 'events', reference: r.written, ratio: share(r.received) },
        { metric: 'lost (written, never received)', value: r.lost, unit: 'events', reference: r.written, ratio: share(r.lost) },
        { metric: 'lost, explained by a removed file a gap names', value: r.explained, unit: 'events', reference: r.lost, ratio: r.lost ? r.explained / r.lost : 1 },
        { metric: 'lost, unexplained (target 0)', value: r.unexplained, unit: 'events', reference: r.written, ratio: share(r.unexplained) },
        { metric: 'files holding lost events', value: r.lostFiles.length, unit: 'files' },
        { metric: 'duplicates at the receiver', value: r.duplicates, unit: 'events' },
        { metric: 'duplicate rate (per distinct event received)', value: Number((r.duplicateRate * 100).toFixed(3)), unit: '%', reference: 1, ratio: r.duplicateRate * 100 },
        { metric: 'gaps in the node status', value: r.gaps, unit: 'gaps' },
        { metric: 'gap log lines ("audit log lines skipped")', value: r.gapRecords.length, unit: 'lines' },
        { metric: 'rotations', value: r.rotations, unit: 'files' },
        { metric: 'backups removed by maxBackups', value: r.filesDeleted, unit: 'files' },
        { metric: 'catch-up after the writer stopped', value: Number(r.catchUpSeconds.toFixed(1)), unit: 's' },
      ],
    };
  } finally {
    if (previousLevel === undefined) delete process.env.NETWARDEN_LOG_LEVEL;
    else process.env.NETWARDEN_LOG_LEVEL = previousLevel;
    await cp.stop();
  }
}
