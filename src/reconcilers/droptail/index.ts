// Wires the DropTail feature of the controller: the reconciler (status), the IP index over the
// shared informers, reverse DNS, the drop pipeline, the agents' node reports and the intake routes
// (drops and reports) on the HTTPS API.
import type { DropTail } from '../../apis/droptail.js';
import type { DropTailNodeReport } from '../../apis/nodereport.js';
import { DropTailType } from '../../apis/meta.js';
import { Controller } from '../../runtime/controller.js';
import { keyOf } from '../../runtime/keys.js';
import { customResourceInformer } from '../../runtime/informer.js';
import { loggerFor } from '../../util/log.js';
import type { ControllerContext } from '../context.js';
import type { EventBudgetOptions } from './budget.js';
import { DropEventWriter } from './events.js';
import { DropIntake } from './intake.js';
import { IpIndex } from './ipindex.js';
import { DropPipeline, type DropPipelineOptions } from './pipeline.js';
import { DropTailReconciler } from './reconciler.js';
import { ReverseDns } from './reversedns.js';
import { DropStats } from './stats.js';
import { NodeReportIntake } from '../nodereports/intake.js';
import { registerNodesRoute } from '../nodereports/nodes.js';
import { NodeReportStore } from '../nodereports/store.js';
import { dropTailProblems, dropTailReportDiffers } from '../nodereports/summary.js';

export interface DropTailOptions {
  /** Reverse DNS servers ("ip" or "ip:port"); the system resolvers when empty. */
  dnsServers?: readonly string[];
  /** reportingInstance of the Events: this replica. */
  identity?: string;
  /** The budget of Event writes (defaults: DEFAULT_EVENT_BUDGET). */
  eventBudget?: Partial<EventBudgetOptions>;
  /** Memory bounds of the drop pipeline (defaults: DEFAULT_MAX_PENDING_BYTES, DEFAULT_DEDUPE_BYTES). */
  pipeline?: Pick<DropPipelineOptions, 'maxPendingBytes' | 'dedupeBytes'>;
}

export interface DropTailFeature {
  controller: Controller;
  pipeline: DropPipeline;
  index: IpIndex;
  reports: NodeReportStore<DropTailNodeReport>;
}

export function registerDropTail(ctx: ControllerContext, opts: DropTailOptions = {}): DropTailFeature {
  const { kc, manager, nodes, pods, services } = ctx;
  const dropTails = customResourceInformer<DropTail>(kc, DropTailType, { resyncMs: ctx.resyncMs });
  const index = new IpIndex().watch(pods, services, nodes);
  const stats = new DropStats();
  const events = new DropEventWriter(kc, { ...(opts.identity ? { instance: opts.identity } : {}), budget: opts.eventBudget ?? {} });
  const dns = new ReverseDns({ servers: opts.dnsServers ?? [] });
  const pipeline = new DropPipeline({ dropTails, nodes, index, dns, events, stats }, opts.pipeline ?? {});
  let enqueue: (name: string) => void = () => {};
  const reports = new NodeReportStore<DropTailNodeReport>({ problemsOf: dropTailProblems, differs: dropTailReportDiffers, onChange: (name) => enqueue(name) });
  const reconciler = new DropTailReconciler(kc, dropTails, nodes, reports, () => new Date(), stats, {
    deleted: (name) => pipeline.forget(name),
    metricsEnabled: (name, enabled) => {
      if (!enabled) pipeline.forgetMetrics(name);
    },
  }, undefined, () => ctx.isLeader());
  const controller = new Controller({ name: 'droptail', reconciler })
    .watches(dropTails)
    .watches(nodes, () => dropTails.list().map(keyOf));
  stats.onFlushDue = (name) => controller.enqueue({ name });
  enqueue = (name) => controller.enqueue({ name });
  manager.addController(controller);
  manager.addInformer(pods);
  manager.addInformer(services);
  if (ctx.api) {
    new DropIntake({ reviewer: ctx.agentReviewer, dropTails, pipeline, isLeader: () => ctx.isLeader() }).register(ctx.api);
    new NodeReportIntake({ kind: 'droptail', reviewer: ctx.agentReviewer, objects: dropTails, store: reports, isLeader: () => ctx.isLeader() }).register(ctx.api);
    registerNodesRoute(ctx.api, { kind: 'droptail', reviewer: ctx.reviewer, objects: dropTails, nodes, store: reports, isLeader: () => ctx.isLeader() });
  } else loggerFor('droptail').warn('no HTTPS API (no serving certificate): drop batches and node reports from agents cannot be received');
  return { controller, pipeline, index, reports };
}
