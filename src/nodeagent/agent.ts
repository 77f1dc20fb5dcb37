// The node agent: one process per node. It watches its own Node and the resources that may select
// it, and runs each feature's node-side work there. Features register themselves below.
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { agentAudience } from '../apis/identity.js';
import { DropTailType } from '../apis/meta.js';
import type { DropTail } from '../apis/droptail.js';
import { AccessReviewer } from '../runtime/auth.js';
import { HttpsApiServer } from '../runtime/https.js';
import { coreInformer, customResourceInformer } from '../runtime/informer.js';
import { Manager } from '../runtime/manager.js';
import { metricsServing } from '../runtime/server.js';
import { tokenFromFile } from '../util/kube.js';
import type { AgentContext } from './context.js';
import { registerDropTailAgent } from './droptail/index.js';
import { DEFAULT_CEILINGS, registerCapture, type CaptureCeilings } from './capture/index.js';
import { registerAuditForwarder } from './audit/index.js';

export interface AgentOptions {
  nodeName: string;
  metricsPort: number;
  metricsAddress: string;
  /** /metrics open to anyone over plain HTTP, as before TokenReview guarded it. */
  metricsInsecure?: boolean | undefined;
  stateDir: string;
  controllerUrl: string;
  caFile?: string | undefined;
  /** The projected token file (audience CONTROLLER_AUDIENCE) the agent authenticates to the controller with. */
  controllerTokenFile: string;
  /** The agent's HTTPS API (capture files); off without a certificate. */
  tls?: { certFile: string; keyFile: string; port: number; bindAddress: string } | undefined;
  /** Cluster-wide PacketCapture limits a resource cannot exceed. */
  captureCeilings?: CaptureCeilings | undefined;
  /** Netwarden's own namespace: the only one whose Secrets the agent reads. */
  namespace: string;
  /** Directories AuditForwarders may read audit logs from. */
  auditLogDirs: readonly string[];
}

const RESYNC_MS = 5 * 60_000;

export interface Agent {
  context: AgentContext;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function buildAgent(kc: KubeConfig, opts: AgentOptions): Agent {
  // Every agent works on its own: no leader election.
  // The agent serves metrics on the host network: any pod on the node reaches the port. Scrapers
  // send tokens for the API server's audience, not this node's, so they have a reviewer of their own.
  const metricsReviewer = new AccessReviewer(kc);
  const metrics = metricsServing({ insecure: opts.metricsInsecure === true, reviewer: metricsReviewer, tls: opts.tls });
  const manager = new Manager(kc, { metricsPort: opts.metricsPort, healthPort: opts.metricsPort, host: opts.metricsAddress, metricsAuth: metrics.metricsAuth, metricsTls: metrics.tls });
  const node = manager.addInformer(coreInformer(kc, 'nodes', { fieldSelector: `metadata.name=${opts.nodeName}`, resyncMs: RESYNC_MS }));
  const api = opts.tls ? new HttpsApiServer({ name: 'agent', certFile: opts.tls.certFile, keyFile: opts.tls.keyFile, port: opts.tls.port, host: opts.tls.bindAddress }) : undefined;
  const context: AgentContext = {
    kc,
    nodeName: opts.nodeName,
    namespace: opts.namespace,
    node,
    stateDir: path.resolve(opts.stateDir),
    manager,
    controllerUrl: opts.controllerUrl,
    caFile: opts.caFile,
    api,
    // The controller's tokens for this node only: one made for another agent, or for the API
    // server, is refused with 401.
    reviewer: new AccessReviewer(kc, { audiences: [agentAudience(opts.nodeName)] }),
    controllerToken: tokenFromFile(opts.controllerTokenFile),
  };

  registerDropTailAgent(context, customResourceInformer<DropTail>(kc, DropTailType, { resyncMs: RESYNC_MS }));
  registerCapture(context, opts.captureCeilings ?? DEFAULT_CEILINGS, RESYNC_MS);
  const audit = registerAuditForwarder(context, opts.auditLogDirs);

  return {
    context,
    async start() {
      await api?.start();
      await manager.start();
    },
    async stop() {
      await audit.close(); // stop reading and sending; checkpoints stay where the sink acknowledged
      await manager.stop();
      await api?.stop();
    },
  };
}
