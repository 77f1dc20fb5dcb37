// DropTail: the controller checks the spec, counts the nodes it selects and the agents reporting
// (their reports live in memory, src/reconcilers/nodereports), and writes a summary of fixed size
// (NODES, UNHEALTHY, the newest problems, totals) plus what the drop pipeline counted (stats.ts)
// into the printer columns (NODES, UNHEALTHY, DROPS, LAST DROP, READY) and the recent-drops list.
//
// Ready, the choice made here: False when the spec is invalid; False (SourcesUnhealthy) when
// agents report and every one of them has an unhealthy source, since then no drop is being seen
// anywhere; otherwise True, with the nodes whose sources fail named in the message.
//
// Writes: at most one per STATUS_WRITE_INTERVAL_MS per DropTail for the node summary (thousands of
// agents' reports become one write); a new generation, and new drop counts (DropStats publishes
// those every 2 s at most), are written at once, the summary with them.
import { isDeepStrictEqual } from 'node:util';
import type { KubeConfig, V1Node } from '@kubernetes/client-node';
import { DropTailType } from '../../apis/meta.js';
import type { DropTail } from '../../apis/droptail.js';
import type { DropTailNodeReport } from '../../apis/nodereport.js';
import type { Informer } from '../../runtime/informer.js';
import type { ReconcileResult, Reconciler } from '../../runtime/controller.js';
import type { ObjectKey } from '../../runtime/keys.js';
import { nodeMatches } from '../../apis/nodeselection.js';
import { readyConditions, schemaRejection, type Rejection } from '../common.js';
import { reportingNodes } from '../nodereports/metrics.js';
import type { NodeReportStore } from '../nodereports/store.js';
import { dropTailTotals, StatusWriteLimiter, summaryFields, writeLimited } from '../nodereports/summary.js';
import { settingsOf } from './settings.js';
import { DropStats } from './stats.js';

export interface DropTailReconcilerHooks {
  /** The DropTail is gone: drop what is kept in memory for it. */
  deleted?(name: string): void;
  /** Called each reconcile with the effective setting, so metrics can be removed when turned off. */
  metricsEnabled?(name: string, enabled: boolean): void;
}

/** The summary fields: kept as they are while a new leader hears from its agents. */
const SUMMARY_FIELDS = ['nodeCount', 'unhealthyNodes', 'problems', 'dropsSeen', 'gaps'] as const;
const DROP_FIELDS = ['totalDrops', 'eventsSuppressed', 'recentDrops', 'lastDropTime', 'lastDrop'] as const;

export class DropTailReconciler implements Reconciler {
  constructor(
    private readonly kc: KubeConfig,
    private readonly dropTails: Informer<DropTail>,
    private readonly nodes: Informer<V1Node>,
    private readonly reports: NodeReportStore<DropTailNodeReport>,
    private readonly now: () => Date = () => new Date(),
    private readonly stats: DropStats = new DropStats(),
    private readonly hooks: DropTailReconcilerHooks = {},
    private readonly limiter: StatusWriteLimiter = new StatusWriteLimiter(),
    private readonly isLeader: () => boolean = () => true,
  ) {}

  async reconcile(key: ObjectKey): Promise<ReconcileResult | void> {
    const dropTail = this.dropTails.get(key.name);
    this.reports.leading(this.isLeader());
    if (!dropTail) {
      this.hooks.deleted?.(key.name); // it owns nothing outside itself; its Events age out
      this.reports.forget(key.name);
      this.limiter.forget(key.name);
      return;
    }
    const settings = settingsOf(dropTail);
    this.hooks.metricsEnabled?.(key.name, settings.metrics);
    const selected = new Set(this.nodes.list().filter((n) => nodeMatches(dropTail.spec.nodeSelector, n)).map((n) => n.metadata?.name ?? ''));
    const { fields, fresh, reporting, graceMs } = summaryFields(this.reports, key.name, selected, dropTail.status, dropTailTotals, SUMMARY_FIELDS);
    reportingNodes.set({ kind: 'droptail' }, this.reports.size());
    const requeue: number[] = graceMs !== undefined ? [graceMs] : [];
    const drops = this.stats.statusFields(dropTail, settings.recentDropsLimit);
    if (drops.retryAfterMs !== undefined) requeue.push(drops.retryAfterMs);
    const desired = { ...desiredStatus(dropTail, selected.size, fresh, reporting, this.now()), ...fields, ...drops.fields };
    const generation = dropTail.metadata.generation ?? 0;
    const current = (dropTail.status ?? {}) as Record<string, unknown>;
    const urgent = dropTail.status?.observedGeneration !== generation || DROP_FIELDS.some((f) => !isDeepStrictEqual(current[f], desired[f]));
    const wait = await writeLimited(this.kc, DropTailType, dropTail, desired, this.limiter, urgent);
    if (wait !== undefined) requeue.push(wait);
    const transition = this.reports.nextTransitionMs(key.name);
    if (transition !== undefined) requeue.push(transition);
    return requeue.length > 0 ? { requeueAfterMs: Math.min(...requeue) } : undefined;
  }
}

/** The controller's fields except the node summary and the drop counts. */
export function desiredStatus(dropTail: DropTail, selectedNodes: number, reports: readonly DropTailNodeReport[], reporting: number, now: Date): Record<string, unknown> {
  const rejection = schemaRejection(dropTail) ?? duplicateSource(dropTail) ?? allSourcesFailing(reports);
  const generation = dropTail.metadata.generation ?? 0;
  const failing = failingSources(reports);
  const health = failing.length > 0 ? `; unhealthy: ${failing.slice(0, 3).join('; ')}${failing.length > 3 ? `; and ${failing.length - 3} more` : ''}` : '';
  return {
    observedGeneration: generation,
    conditions: readyConditions(dropTail.status?.conditions, generation, {
      rejection,
      reason: 'Accepted',
      message: `selects ${selectedNodes} node(s); ${reporting} agent(s) reporting${health}`,
    }, now),
  };
}

/** "worker-1 nflog: cannot open nflog:100: Operation not permitted" per unhealthy source. */
function failingSources(reports: readonly DropTailNodeReport[]): string[] {
  return reports.flatMap((r) =>
    r.sources.filter((s) => !s.healthy).map((s) => `${r.node} ${s.type}${s.message ? `: ${s.message}` : ''}`),
  );
}

function allSourcesFailing(reports: readonly DropTailNodeReport[]): Rejection | undefined {
  const withSources = reports.filter((r) => r.sources.length > 0);
  if (withSources.length === 0 || withSources.length < reports.length) return undefined;
  if (!withSources.every((r) => r.sources.some((s) => !s.healthy))) return undefined;
  const failing = failingSources(withSources);
  return { reason: 'SourcesUnhealthy', message: `every reporting node has an unhealthy source: ${failing.slice(0, 5).join('; ')}${failing.length > 5 ? '; ...' : ''}` };
}

/** Two sources reading the same NFLOG group or file would count every drop twice. */
function duplicateSource(dropTail: DropTail): Rejection | undefined {
  const seen = new Set<string>();
  for (const [i, source] of (dropTail.spec.sources ?? []).entries()) {
    const id = source.type === 'nflog' ? `nflog group ${source.group}` : source.type === 'file' ? `file ${source.path}` : `journal ${source.directory ?? ''}`;
    if (seen.has(id)) return { reason: 'DuplicateSource', message: `spec.sources[${i}]: ${id} is listed twice; every drop would be counted twice` };
    seen.add(id);
  }
  return undefined;
}
