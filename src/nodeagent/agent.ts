// The node agent: one process per node. It watches its own Node and the resources that may select
// it, and runs each resource's node-side work there.
import type { KubeConfig, V1Node } from '@kubernetes/client-node';
import { AuditForwarderType, DropTailType, type ResourceType } from '../apis/meta.js';
import type { AuditForwarder } from '../apis/auditforwarder.js';
import type { DropTail } from '../apis/droptail.js';
import { Controller, keyOf } from '../controllers/controller.js';
import { coreInformer, customResourceInformer, type Informer } from '../controllers/informer.js';
import { Manager } from '../controllers/manager.js';
import { NodeParticipationReconciler } from './participation.js';

export interface AgentOptions {
  nodeName: string;
  metricsPort: number;
  metricsAddress: string;
}

const RESYNC_MS = 5 * 60_000;

export function buildAgent(kc: KubeConfig, opts: AgentOptions): Manager {
  // Every agent works on its own: no leader election.
  const manager = new Manager(kc, { metricsPort: opts.metricsPort, healthPort: opts.metricsPort, host: opts.metricsAddress });
  const node = coreInformer(kc, 'nodes', { fieldSelector: `metadata.name=${opts.nodeName}`, resyncMs: RESYNC_MS });
  const dropTails = customResourceInformer<DropTail>(kc, DropTailType, { resyncMs: RESYNC_MS });
  const forwarders = customResourceInformer<AuditForwarder>(kc, AuditForwarderType, { resyncMs: RESYNC_MS });
  manager.addController(participation(kc, 'droptail', DropTailType, opts.nodeName, dropTails, node));
  manager.addController(participation(kc, 'auditforwarder', AuditForwarderType, opts.nodeName, forwarders, node));
  return manager;
}

function participation<T extends DropTail | AuditForwarder>(
  kc: KubeConfig,
  name: string,
  type: ResourceType,
  nodeName: string,
  objects: Informer<T>,
  node: Informer<V1Node>,
): Controller {
  return new Controller({ name: `agent-${name}`, reconciler: new NodeParticipationReconciler(kc, type, nodeName, objects, node) })
    .watches(objects)
    .watches(node, () => objects.list().map(keyOf));
}
