// Wires the AuditForwarder feature of the controller: the reconciler (Ready and the nodes expected
// in status), kept current by the forwarders and the nodes their selectors may match.
import type { AuditForwarder } from '../../apis/auditforwarder.js';
import { AuditForwarderType } from '../../apis/meta.js';
import { Controller } from '../../runtime/controller.js';
import { customResourceInformer } from '../../runtime/informer.js';
import { keyOf } from '../../runtime/keys.js';
import type { ControllerContext } from '../context.js';
import { AuditForwarderReconciler } from './reconciler.js';

export function registerAuditForwarder(ctx: ControllerContext): Controller {
  const { kc, manager, nodes } = ctx;
  const forwarders = customResourceInformer<AuditForwarder>(kc, AuditForwarderType, { resyncMs: ctx.resyncMs });
  // A node change can change what every forwarder selects.
  const controller = new Controller({ name: 'auditforwarder', reconciler: new AuditForwarderReconciler(kc, forwarders, nodes) })
    .watches(forwarders)
    .watches(nodes, () => forwarders.list().map(keyOf));
  manager.addController(controller);
  return controller;
}
