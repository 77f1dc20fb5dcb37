// Wires the AuditForwarder feature of the controller: the reconciler (Ready and the node summary
// in status), kept current by the forwarders, the nodes their selectors may match and the agents'
// node reports (their intake and GET .../nodes on the HTTPS API).
import type { AuditForwarder } from '../../apis/auditforwarder.js';
import { AuditForwarderType } from '../../apis/meta.js';
import { Controller } from '../../runtime/controller.js';
import { customResourceInformer } from '../../runtime/informer.js';
import { keyOf } from '../../runtime/keys.js';
import type { ControllerContext } from '../context.js';
import type { AuditNodeReport } from '../../apis/nodereport.js';
import { loggerFor } from '../../util/log.js';
import { NodeReportIntake } from '../nodereports/intake.js';
import { registerNodesRoute } from '../nodereports/nodes.js';
import { NodeReportStore } from '../nodereports/store.js';
import { auditProblems, auditReportDiffers } from '../nodereports/summary.js';
import { AuditForwarderReconciler } from './reconciler.js';

export function registerAuditForwarder(ctx: ControllerContext): Controller {
  const { kc, manager, nodes } = ctx;
  const forwarders = customResourceInformer<AuditForwarder>(kc, AuditForwarderType, { resyncMs: ctx.resyncMs });
  let enqueue: (name: string) => void = () => {};
  const reports = new NodeReportStore<AuditNodeReport>({ problemsOf: auditProblems, differs: auditReportDiffers, onChange: (name) => enqueue(name) });
  const reconciler = new AuditForwarderReconciler(kc, forwarders, nodes, reports, () => new Date(), undefined, undefined, () => ctx.isLeader());
  // A node change can change what every forwarder selects.
  const controller = new Controller({ name: 'auditforwarder', reconciler })
    .watches(forwarders)
    .watches(nodes, () => forwarders.list().map(keyOf));
  enqueue = (name) => controller.enqueue({ name });
  manager.addController(controller);
  if (ctx.api) {
    new NodeReportIntake({ kind: 'auditforwarder', reviewer: ctx.agentReviewer, objects: forwarders, store: reports, isLeader: () => ctx.isLeader() }).register(ctx.api);
    registerNodesRoute(ctx.api, { kind: 'auditforwarder', reviewer: ctx.reviewer, objects: forwarders, nodes, store: reports, isLeader: () => ctx.isLeader() });
  } else loggerFor('auditforwarder').warn('no HTTPS API (no serving certificate): node reports from agents cannot be received');
  return controller;
}
