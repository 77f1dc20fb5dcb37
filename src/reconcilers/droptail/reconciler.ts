// DropTail: the controller checks the spec, counts the nodes it selects, and sums what the agents
// report in their own status entries into the printer columns (NODES, DROPS, LAST DROP, READY).
import type { KubeConfig, V1Node } from '@kubernetes/client-node';
import { DropTailType } from '../../apis/meta.js';
import type { DropTail } from '../../apis/droptail.js';
import type { Informer } from '../../controllers/informer.js';
import type { ObjectKey, Reconciler } from '../../controllers/controller.js';
import { applyControllerStatus, nodeMatches, readyConditions, schemaRejection, type Rejection } from '../common.js';

export class DropTailReconciler implements Reconciler {
  constructor(
    private readonly kc: KubeConfig,
    private readonly dropTails: Informer<DropTail>,
    private readonly nodes: Informer<V1Node>,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async reconcile(key: ObjectKey): Promise<void> {
    const dropTail = this.dropTails.get(key.name);
    if (!dropTail) return; // deleted: it owns nothing outside itself
    const selected = this.nodes.list().filter((n) => nodeMatches(dropTail.spec.nodeSelector, n)).length;
    await applyControllerStatus(this.kc, DropTailType, dropTail, desiredStatus(dropTail, selected, this.now()));
  }
}

export function desiredStatus(dropTail: DropTail, selectedNodes: number, now: Date): Record<string, unknown> {
  const reports = dropTail.status?.nodes ?? [];
  const rejection = schemaRejection(dropTail) ?? duplicateSource(dropTail);
  const generation = dropTail.metadata.generation ?? 0;
  return {
    observedGeneration: generation,
    conditions: readyConditions(dropTail.status?.conditions, generation, {
      rejection,
      reason: 'Accepted',
      message: `selects ${selectedNodes} node(s); ${reports.length} agent(s) reporting`,
    }, now),
    nodeCount: reports.length,
    totalDrops: reports.reduce((sum, r) => sum + (r.dropsSeen ?? 0), 0),
  };
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
