// The node agent: one process per node. It watches its own Node and the resources that may select
// it, and runs each feature's node-side work there. Features register themselves below.
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { AuditForwarderType, DropTailType, type ResourceType } from '../apis/meta.js';
import type { AuditForwarder } from '../apis/auditforwarder.js';
import type { DropTail } from '../apis/droptail.js';
import { AccessReviewer } from '../controllers/auth.js';
import { Controller, keyOf } from '../controllers/controller.js';
import { HttpsApiServer } from '../controllers/https.js';
import { coreInformer, customResourceInformer, type Informer } from '../controllers/informer.js';
import { Manager } from '../controllers/manager.js';
import type { AgentContext } from './context.js';
import { NodeParticipationReconciler } from './participation.js';

export interface AgentOptions {
  nodeName: string;
  metricsPort: number;
  metricsAddress: string;
  stateDir: string;
  controllerUrl: string;
  caFile?: string | undefined;
  /** The agent's HTTPS API (capture files); off without a certificate. */
  tls?: { certFile: string; keyFile: string; port: number; bindAddress: string } | undefined;
}

const RESYNC_MS = 5 * 60_000;

export interface Agent {
  context: AgentContext;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function buildAgent(kc: KubeConfig, opts: AgentOptions): Agent {
  // Every agent works on its own: no leader election.
  const manager = new Manager(kc, { metricsPort: opts.metricsPort, healthPort: opts.metricsPort, host: opts.metricsAddress });
  const node = manager.addInformer(coreInformer(kc, 'nodes', { fieldSelector: `metadata.name=${opts.nodeName}`, resyncMs: RESYNC_MS }));
  const api = opts.tls ? new HttpsApiServer({ name: 'agent', certFile: opts.tls.certFile, keyFile: opts.tls.keyFile, port: opts.tls.port, host: opts.tls.bindAddress }) : undefined;
  const context: AgentContext = {
    kc,
    nodeName: opts.nodeName,
    node,
    stateDir: path.resolve(opts.stateDir),
    manager,
    controllerUrl: opts.controllerUrl,
    caFile: opts.caFile,
    api,
    reviewer: new AccessReviewer(kc),
  };

  registerParticipation(context);

  return {
    context,
    async start() {
      await api?.start();
      await manager.start();
    },
    async stop() {
      await manager.stop();
      await api?.stop();
    },
  };
}

/** DropTail and AuditForwarder entries for this node until their features write richer ones. */
function registerParticipation(ctx: AgentContext): void {
  participate(ctx, 'droptail', DropTailType, customResourceInformer<DropTail>(ctx.kc, DropTailType, { resyncMs: RESYNC_MS }));
  participate(ctx, 'auditforwarder', AuditForwarderType, customResourceInformer<AuditForwarder>(ctx.kc, AuditForwarderType, { resyncMs: RESYNC_MS }));
}

function participate<T extends DropTail | AuditForwarder>(ctx: AgentContext, name: string, type: ResourceType, objects: Informer<T>): void {
  const reconciler = new NodeParticipationReconciler<T>(ctx.kc, type, ctx.nodeName, objects, ctx.node);
  ctx.manager.addController(
    new Controller({ name: `agent-${name}`, reconciler })
      .watches(objects)
      .watches(ctx.node, () => objects.list().map(keyOf)),
  );
}
