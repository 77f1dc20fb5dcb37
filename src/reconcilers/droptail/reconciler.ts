// DropTail: the controller checks the spec, counts the nodes it selects and reporting agents, and
// writes what the drop pipeline counted (stats.ts) into the printer columns (NODES, DROPS, LAST
// DROP, READY) and the recent-drops list.
//
// Ready, the choice made here: False when the spec is invalid; False (SourcesUnhealthy) when
// agents report and every one of them has an unhealthy source, since then no drop is being seen
// anywhere; otherwise True, with the nodes whose sources fail named in the message.
import type { KubeConfig, V1Node } from '@kubernetes/client-node';
import { DropTailType } from '../../apis/meta.js';
import type { DropTail, DropTailNodeStatus } from '../../apis/droptail.js';
import type { Informer } from '../../runtime/informer.js';
import type { ReconcileResult, Reconciler } from '../../runtime/controller.js';
import type { ObjectKey } from '../../runtime/keys.js';
import { nodeMatches } from '../../apis/nodeselection.js';
import { applyControllerStatus, readyConditions, schemaRejection, type Rejection } from '../common.js';
import { settingsOf } from './settings.js';
import { DropStats } from './stats.js';

export interface DropTailReconcilerHooks {
  /** The DropTail is gone: drop what is kept in memory for it. */
  deleted?(name: string): void;
  /** Called each reconcile with the effective setting, so metrics can be removed when turned off. */
  metricsEnabled?(name: string, enabled: boolean): void;
}

export class DropTailReconciler implements Reconciler {
  constructor(
    private readonly kc: KubeConfig,
    private readonly dropTails: Informer<DropTail>,
    private readonly nodes: Informer<V1Node>,
    private readonly now: () => Date = () => new Date(),
    private readonly stats: DropStats = new DropStats(),
    private readonly hooks: DropTailReconcilerHooks = {},
  ) {}

  async reconcile(key: ObjectKey): Promise<ReconcileResult | void> {
    const dropTail = this.dropTails.get(key.name);
    if (!dropTail) {
      this.hooks.deleted?.(key.name); // it owns nothing outside itself; its Events age out
      return;
    }
    const settings = settingsOf(dropTail);
    this.hooks.metricsEnabled?.(key.name, settings.metrics);
    const selected = this.nodes.list().filter((n) => nodeMatches(dropTail.spec.nodeSelector, n)).length;
    const drops = this.stats.statusFields(dropTail, settings.recentDropsLimit);
    await applyControllerStatus(this.kc, DropTailType, dropTail, { ...desiredStatus(dropTail, selected, this.now()), ...drops.fields });
    return drops.retryAfterMs !== undefined ? { requeueAfterMs: drops.retryAfterMs } : undefined;
  }
}

/** The controller's fields except the drop counts (those come from DropStats). */
export function desiredStatus(dropTail: DropTail, selectedNodes: number, now: Date): Record<string, unknown> {
  const reports = dropTail.status?.nodes ?? [];
  const rejection = schemaRejection(dropTail) ?? duplicateSource(dropTail) ?? allSourcesFailing(reports);
  const generation = dropTail.metadata.generation ?? 0;
  const failing = failingSources(reports);
  const health = failing.length > 0 ? `; unhealthy: ${failing.slice(0, 3).join('; ')}${failing.length > 3 ? `; and ${failing.length - 3} more` : ''}` : '';
  return {
    observedGeneration: generation,
    conditions: readyConditions(dropTail.status?.conditions, generation, {
      rejection,
      reason: 'Accepted',
      message: `selects ${selectedNodes} node(s); ${reports.length} agent(s) reporting${health}`,
    }, now),
    nodeCount: reports.length,
  };
}

/** "worker-1 nflog: cannot open nflog:100: Operation not permitted" per unhealthy source. */
function failingSources(reports: readonly DropTailNodeStatus[]): string[] {
  return reports.flatMap((r) =>
    (r.sources ?? []).filter((s) => !s.healthy).map((s) => `${r.node} ${s.type}${s.message ? `: ${s.message}` : ''}`),
  );
}

function allSourcesFailing(reports: readonly DropTailNodeStatus[]): Rejection | undefined {
  const withSources = reports.filter((r) => (r.sources ?? []).length > 0);
  if (withSources.length === 0 || withSources.length < reports.length) return undefined;
  if (!withSources.every((r) => (r.sources ?? []).some((s) => !s.healthy))) return undefined;
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
