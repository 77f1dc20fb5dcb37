// AuditForwarder on the node agent: registration with the agent's manager.
import type { AuditForwarder } from '../../apis/auditforwarder.js';
import { AuditForwarderType } from '../../apis/meta.js';
import { Controller } from '../../runtime/controller.js';
import { keyOf } from '../../runtime/keys.js';
import { customResourceInformer } from '../../runtime/informer.js';
import type { AgentContext } from '../context.js';
import { AuditForwarderAgentReconciler } from './reconciler.js';

const RESYNC_MS = 5 * 60_000;

/** Runs the forwarders that select this node; returns the reconciler (for its close()). */
export function registerAuditForwarder(ctx: AgentContext, auditLogDirs: readonly string[]): AuditForwarderAgentReconciler {
  const forwarders = ctx.manager.addInformer(customResourceInformer<AuditForwarder>(ctx.kc, AuditForwarderType, { resyncMs: RESYNC_MS }));
  const reconciler = new AuditForwarderAgentReconciler({
    kc: ctx.kc,
    nodeName: ctx.nodeName,
    stateDir: ctx.stateDir,
    forwarders,
    node: ctx.node,
    limits: { namespace: ctx.namespace, auditLogDirs },
    controllerUrl: ctx.controllerUrl,
    controllerTrust: ctx.controllerTrust,
    controllerToken: () => ctx.controllerToken(),
  });
  ctx.manager.addController(
    new Controller({ name: 'agent-auditforwarder', reconciler })
      .watches(forwarders)
      .watches(ctx.node, () => forwarders.list().map(keyOf)),
  );
  return reconciler;
}
