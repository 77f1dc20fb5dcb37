// The agent's first duty for DropTail and AuditForwarder: own exactly one status entry, its node's,
// while the resource selects this node, and give it up when it no longer does. Each agent applies
// with its own field manager, so the list-map keyed by node merges the agents' entries.
import type { KubeConfig, V1Node } from '@kubernetes/client-node';
import type { ResourceType } from '../apis/meta.js';
import type { Informer } from '../controllers/informer.js';
import type { ObjectKey, Reconciler } from '../controllers/controller.js';
import { applyStatus } from '../controllers/status.js';
import { nodeMatches } from '../reconcilers/common.js';
import { agentFieldManager } from './context.js';

interface NodeSelecting {
  apiVersion?: string;
  kind?: string;
  metadata: { name?: string };
  spec: { nodeSelector?: Record<string, string> };
  status?: { nodes?: ReadonlyArray<{ node: string }> };
}


export class NodeParticipationReconciler<T extends NodeSelecting> implements Reconciler {
  constructor(
    private readonly kc: KubeConfig,
    private readonly type: ResourceType,
    private readonly nodeName: string,
    private readonly objects: Informer<T>,
    private readonly node: Informer<V1Node>,
  ) {}

  async reconcile(key: ObjectKey): Promise<void> {
    const obj = this.objects.get(key.name);
    const node = this.node.get(this.nodeName);
    if (!obj || !node) return;
    const selected = nodeMatches(obj.spec.nodeSelector, node);
    const listed = (obj.status?.nodes ?? []).some((n) => n.node === this.nodeName);
    if (selected === listed) return;
    // Applying without the entry releases it: server-side apply removes list items that only this
    // manager owned.
    const status = selected ? { nodes: [{ node: this.nodeName }] } : {};
    await applyStatus(this.kc, this.type, { name: key.name }, status, agentFieldManager(this.nodeName));
  }
}
