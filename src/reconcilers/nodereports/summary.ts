// From the stored node reports to the bounded summary in status: nodeCount, unhealthyNodes, the
// newest MAX_PROBLEMS problems, and the kind's totals. The size of what is written is the same at
// 10 and at 5,000 nodes; only the counts differ.
import { isDeepStrictEqual } from 'node:util';
import type { KubeConfig } from '@kubernetes/client-node';
import type { ResourceType } from '../../apis/meta.js';
import type { AuditNodeReport, DropTailNodeReport } from '../../apis/nodereport.js';
import { MAX_PROBLEMS, type NodeProblem } from '../../apis/nodesummary.js';
import { applyControllerStatus } from '../common.js';
import type { NodeReportStore, Problem, StoredReport } from './store.js';

export interface NodeSummary {
  nodeCount: number;
  unhealthyNodes: number;
  problems: NodeProblem[];
}

/**
 * The summary of one object's nodes as it goes into status: the reports of the selected nodes,
 * summarized, with the kind's totals; while a new leader has not heard from every agent yet, the
 * summary already in status instead of one that drops nodes (and how long until it may).
 */
export function summaryFields<R extends { node: string }>(
  store: NodeReportStore<R>,
  name: string,
  selected: ReadonlySet<string>,
  status: { nodeCount?: number } | undefined,
  totals: (entries: readonly StoredReport<R>[]) => Record<string, unknown>,
  fieldNames: readonly string[],
): { fields: Record<string, unknown>; fresh: R[]; reporting: number; graceMs?: number } {
  const entries = store.reports(name, (node) => selected.has(node));
  const { summary, fresh } = summarize(store, entries);
  const grace = store.graceLeftMs();
  if (grace > 0 && summary.nodeCount < (status?.nodeCount ?? 0)) return { fields: currentFields(status, fieldNames), fresh, reporting: entries.length, graceMs: grace };
  return { fields: { ...summary, ...totals(entries) }, fresh, reporting: entries.length };
}

/** The summary fields every kind has, and the reports that are fresh (the ones Ready looks at). */
export function summarize<R extends { node: string }>(
  store: NodeReportStore<R>,
  entries: readonly StoredReport<R>[],
): { summary: NodeSummary; fresh: R[] } {
  const problems: Array<NodeProblem & { at: number }> = [];
  const fresh: R[] = [];
  let unhealthy = 0;
  for (const entry of entries) {
    if (store.isStale(entry)) {
      unhealthy++;
      const at = entry.receivedAt + store.staleAfterMs;
      problems.push({ node: entry.node, at, time: iso(at), message: `no report since ${iso(entry.receivedAt)}` });
      continue;
    }
    fresh.push(entry.report);
    if (entry.problems.some((p) => !p.past)) unhealthy++;
    for (const p of entry.problems) problems.push({ node: entry.node, at: p.since, time: iso(p.since), message: p.message });
  }
  // Newest first; ties in a fixed order so an unchanged state writes nothing.
  problems.sort((a, b) => b.at - a.at || a.node.localeCompare(b.node) || a.message.localeCompare(b.message));
  return {
    summary: { nodeCount: entries.length, unhealthyNodes: unhealthy, problems: problems.slice(0, MAX_PROBLEMS).map(({ node, time, message }) => ({ node, time, message })) },
    fresh,
  };
}

function iso(ms: number): string {
  // Whole seconds: the schema's date-time, and no churn from sub-second differences.
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

const clip = (s: string): string => (s.length > 1024 ? `${s.slice(0, 1021)}...` : s);

/** "<time>: ..." at the start of a lastGap: the gap's own time. */
function gapTime(lastGap: string): number | undefined {
  const end = lastGap.indexOf(': ');
  const t = end > 0 ? Date.parse(lastGap.slice(0, end)) : NaN;
  return Number.isNaN(t) ? undefined : t;
}

// ---- DropTail ----

export function dropTailProblems(r: DropTailNodeReport): Problem[] {
  const out: Problem[] = [];
  for (const s of r.sources) {
    if (!s.healthy) out.push({ message: clip(`${s.type} source unhealthy${s.message ? `: ${s.message}` : ''}`) });
    if (s.lastGap) out.push({ message: clip(`${s.type} source skipped lines (${s.gaps ?? 1} gap(s)); last: ${s.lastGap}`), time: gapTime(s.lastGap), past: true });
  }
  if (r.lastError) out.push({ message: clip(`sending drops: ${r.lastError}`) });
  return out;
}

/** Health or counters changed: worth a (rate-limited) status write. */
export function dropTailReportDiffers(a: DropTailNodeReport, b: DropTailNodeReport): boolean {
  return !isDeepStrictEqual(a, b);
}

export function dropTailTotals(entries: readonly StoredReport<DropTailNodeReport>[]): { dropsSeen: number; gaps: number } {
  let dropsSeen = 0;
  let gaps = 0;
  for (const { report } of entries) {
    dropsSeen += report.dropsSeen;
    for (const s of report.sources) gaps += s.gaps ?? 0;
  }
  return { dropsSeen, gaps };
}

// ---- AuditForwarder ----

export function auditProblems(r: AuditNodeReport): Problem[] {
  const out: Problem[] = [];
  if (r.lastError) out.push({ message: clip(r.lastError) });
  if (r.lastGap) out.push({ message: clip(`lines skipped (${r.gaps ?? 1} gap(s)); last: ${r.lastGap}`), time: gapTime(r.lastGap), past: true });
  return out;
}

/** Every counter moves while logs are shipped; the write limiter keeps that to one write per interval. */
export function auditReportDiffers(a: AuditNodeReport, b: AuditNodeReport): boolean {
  return !isDeepStrictEqual(a, b);
}

export const AUDIT_TOTALS = ['shippedBytes', 'shippedEvents', 'lagBytes', 'bufferedBytes', 'gaps', 'skippedBytes', 'quarantinedLines'] as const;

export function auditTotals(entries: readonly StoredReport<AuditNodeReport>[]): Record<(typeof AUDIT_TOTALS)[number], number> {
  const out = Object.fromEntries(AUDIT_TOTALS.map((f) => [f, 0])) as Record<(typeof AUDIT_TOTALS)[number], number>;
  for (const { report } of entries) for (const f of AUDIT_TOTALS) out[f] += report[f] ?? 0;
  return out;
}

// ---- Writing ----

/** The summary fields as status has them now: kept as they are while a new leader waits (inGrace). */
export function currentFields(status: object | undefined, fields: readonly string[]): Record<string, unknown> {
  const current = (status ?? {}) as Record<string, unknown>;
  return Object.fromEntries(fields.filter((f) => current[f] !== undefined).map((f) => [f, current[f]]));
}

/** At most one status write per object per interval: thousands of agents' reports become one write. */
export class StatusWriteLimiter {
  private readonly last = new Map<string, number>();

  constructor(
    readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Ms until the object may be written again; 0 now. */
  waitMs(name: string): number {
    const last = this.last.get(name);
    return last === undefined ? 0 : Math.max(0, last + this.intervalMs - this.now());
  }

  wrote(name: string): void {
    this.last.set(name, this.now());
  }

  forget(name: string): void {
    this.last.delete(name);
  }
}

/**
 * Writes `desired` with applyControllerStatus when it differs from status, unless the object was
 * written less than the interval ago (then the ms to wait; the caller requeues). `urgent` (a new
 * generation: the user is waiting for the answer to an edit) writes at once.
 */
export async function writeLimited(
  kc: KubeConfig,
  type: ResourceType,
  obj: { metadata: { name?: string }; status?: object },
  desired: Record<string, unknown>,
  limiter: StatusWriteLimiter,
  urgent: boolean,
): Promise<number | undefined> {
  const current = (obj.status ?? {}) as Record<string, unknown>;
  if (Object.keys(desired).every((f) => isDeepStrictEqual(current[f], desired[f]))) return undefined;
  const name = obj.metadata.name ?? '';
  const wait = limiter.waitMs(name);
  if (wait > 0 && !urgent) return wait;
  if (await applyControllerStatus(kc, type, obj, desired)) limiter.wrote(name);
  return undefined;
}
