// `netwarden controller`: informers for the three kinds and what they depend on, one reconciler per
// kind, the HTTPS API, leader election, health and metrics.
import os from 'node:os';
import { agentAudience, CONTROLLER_AUDIENCE } from '../apis/identity.js';
import { AccessReviewer } from '../runtime/auth.js';
import { HttpsApiServer } from '../runtime/https.js';
import { coreInformer } from '../runtime/informer.js';
import { Manager } from '../runtime/manager.js';
import { metricsServing } from '../runtime/server.js';
import { ServiceAccountTokens } from '../runtime/tokens.js';
import { registerAuditForwarder } from '../reconcilers/auditforwarder/index.js';
import type { ControllerContext } from '../reconcilers/context.js';
import { registerDropTail } from '../reconcilers/droptail/index.js';
import { registerPacketCapture } from '../reconcilers/packetcapture/index.js';
import { sumDurationTerms } from '../util/duration.js';
import { loadKubeConfig } from '../util/kube.js';
import { loggerFor } from '../util/log.js';

export interface ControllerFlags {
  kubeconfig?: string;
  metricsPort: number;
  metricsAddress: string;
  /** /metrics open to anyone over plain HTTP, as before TokenReview guarded it. */
  metricsInsecure?: boolean;
  leaderElect: boolean;
  leaderElectionNamespace?: string;
  leaderElectionId: string;
  identity?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  httpsPort: number;
  httpsAddress: string;
  caFile?: string;
  agentPort: number;
  /** The controller's own ServiceAccount, whose tokens for the agents it requests. */
  serviceAccount: string;
  /** Reverse DNS servers for DropTail (repeatable --dns-server); the system resolvers when unset. */
  dnsServer?: string[];
  captureMaxBytesPerPod?: number;
  captureMaxFiles?: number;
  captureMaxDuration?: string;
}

/** Resync replays the caches so that time-based state (schedules, ages) is looked at again. */
const RESYNC_MS = 5 * 60_000;

export async function runController(flags: ControllerFlags): Promise<void> {
  const kc = loadKubeConfig(flags.kubeconfig);
  const identity = flags.identity ?? process.env.POD_NAME ?? `${os.hostname()}_${process.pid}`;
  const namespace = process.env.POD_NAMESPACE ?? 'netwarden-system';
  // Users' and scrapers' tokens are for the API server's audience, as the plugin and Prometheus send them.
  const reviewer = new AccessReviewer(kc);
  const keyPair = flags.tlsCertFile && flags.tlsKeyFile ? { certFile: flags.tlsCertFile, keyFile: flags.tlsKeyFile } : undefined;
  const metrics = metricsServing({ insecure: flags.metricsInsecure === true, reviewer, tls: keyPair });
  const manager = new Manager(kc, {
    metricsPort: flags.metricsPort,
    healthPort: flags.metricsPort,
    host: flags.metricsAddress,
    metricsAuth: metrics.metricsAuth,
    metricsTls: metrics.tls,
    leaderElection: {
      enabled: flags.leaderElect,
      namespace: flags.leaderElectionNamespace ?? namespace,
      name: flags.leaderElectionId,
      identity,
    },
  });
  const api =
    flags.tlsCertFile && flags.tlsKeyFile
      ? new HttpsApiServer({ name: 'controller', certFile: flags.tlsCertFile, keyFile: flags.tlsKeyFile, port: flags.httpsPort, host: flags.httpsAddress })
      : undefined;
  const agentTokens = new ServiceAccountTokens(kc, { namespace, serviceAccount: flags.serviceAccount });
  const ctx: ControllerContext = {
    kc,
    manager,
    nodes: coreInformer(kc, 'nodes', { resyncMs: RESYNC_MS }),
    pods: coreInformer(kc, 'pods', { resyncMs: RESYNC_MS }),
    services: coreInformer(kc, 'services', { resyncMs: RESYNC_MS }),
    api,
    reviewer,
    agentReviewer: new AccessReviewer(kc, { audiences: [CONTROLLER_AUDIENCE] }),
    agentToken: (node) => agentTokens.tokenFor(agentAudience(node)),
    caFile: flags.caFile,
    agentPort: flags.agentPort,
    resyncMs: RESYNC_MS,
    isLeader: () => manager.isLeader(),
  };
  registerDropTail(ctx, { dnsServers: flags.dnsServer ?? [], identity });
  registerPacketCapture(ctx, {
    ceilings: {
      maxBytesPerPod: flags.captureMaxBytesPerPod,
      maxFiles: flags.captureMaxFiles,
      maxDurationMs: flags.captureMaxDuration ? sumDurationTerms(flags.captureMaxDuration) : undefined,
    },
  });
  registerAuditForwarder(ctx);

  loggerFor('controller').info('starting', { identity, leaderElection: flags.leaderElect, https: api ? `${flags.httpsAddress}:${flags.httpsPort}` : 'off' });
  await api?.start();
  await manager.start();
}
