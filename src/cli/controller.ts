// `netwarden controller`: informers for the three kinds and what they depend on, one reconciler per
// kind, the HTTPS API, leader election, health and metrics.
import os from 'node:os';
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { AuditForwarderType, DropTailType, PacketCaptureType } from '../apis/meta.js';
import type { AuditForwarder } from '../apis/auditforwarder.js';
import type { DropTail } from '../apis/droptail.js';
import type { PacketCapture } from '../apis/packetcapture.js';
import { AccessReviewer } from '../controllers/auth.js';
import { Controller } from '../controllers/controller.js';
import { keyOf } from '../controllers/keys.js';
import { HttpsApiServer } from '../controllers/https.js';
import { coreInformer, customResourceInformer, type Informer } from '../controllers/informer.js';
import { Manager } from '../controllers/manager.js';
import type { ControllerContext } from '../reconcilers/context.js';
import { AuditForwarderReconciler } from '../reconcilers/auditforwarder/reconciler.js';
import { registerDropTail, type DropTailOptions } from '../reconcilers/droptail/index.js';
import { PacketCaptureReconciler, type ClusterCaptureCeilings } from '../reconcilers/packetcapture/reconciler.js';
import { sumDurationTerms } from '../util/duration.js';
import { registerCaptureFileApi } from '../reconcilers/packetcapture/download.js';
import { loadKubeConfig } from '../util/kube.js';
import { loggerFor } from '../util/log.js';

export interface ControllerFlags {
  kubeconfig?: string;
  metricsPort: number;
  metricsAddress: string;
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
  const manager = new Manager(kc, {
    metricsPort: flags.metricsPort,
    healthPort: flags.metricsPort,
    host: flags.metricsAddress,
    leaderElection: {
      enabled: flags.leaderElect,
      namespace: flags.leaderElectionNamespace ?? process.env.POD_NAMESPACE ?? 'netwarden-system',
      name: flags.leaderElectionId,
      identity,
    },
  });
  const api =
    flags.tlsCertFile && flags.tlsKeyFile
      ? new HttpsApiServer({ name: 'controller', certFile: flags.tlsCertFile, keyFile: flags.tlsKeyFile, port: flags.httpsPort, host: flags.httpsAddress })
      : undefined;
  const ctx: ControllerContext = {
    kc,
    manager,
    nodes: coreInformer(kc, 'nodes', { resyncMs: RESYNC_MS }),
    pods: coreInformer(kc, 'pods', { resyncMs: RESYNC_MS }),
    services: coreInformer(kc, 'services', { resyncMs: RESYNC_MS }),
    api,
    reviewer: new AccessReviewer(kc),
    caFile: flags.caFile,
    agentPort: flags.agentPort,
    isLeader: () => manager.isLeader(),
  };
  const captureCeilings: ClusterCaptureCeilings = {
    maxBytesPerPod: flags.captureMaxBytesPerPod,
    maxFiles: flags.captureMaxFiles,
    maxDurationMs: flags.captureMaxDuration ? sumDurationTerms(flags.captureMaxDuration) : undefined,
  };
  registerReconcilers(ctx, { dnsServers: flags.dnsServer ?? [], identity }, captureCeilings);

  loggerFor('controller').info('starting', { identity, leaderElection: flags.leaderElect, https: api ? `${flags.httpsAddress}:${flags.httpsPort}` : 'off' });
  await api?.start();
  await manager.start();
}

function registerReconcilers(ctx: ControllerContext, dropTailOptions: DropTailOptions, captureCeilings: ClusterCaptureCeilings): void {
  const { kc, manager, nodes, pods } = ctx;
  const dropTails = customResourceInformer<DropTail>(kc, DropTailType, { resyncMs: RESYNC_MS });
  const captures = customResourceInformer<PacketCapture>(kc, PacketCaptureType, { resyncMs: RESYNC_MS });
  const forwarders = customResourceInformer<AuditForwarder>(kc, AuditForwarderType, { resyncMs: RESYNC_MS });
  manager.addInformer(ctx.services);

  registerDropTail(ctx, dropTails, dropTailOptions);
  manager.addController(
    new Controller({ name: 'packetcapture', reconciler: new PacketCaptureReconciler(kc, captures, pods, { ceilings: captureCeilings }), concurrency: 2 })
      .watches(captures)
      .watches(pods, (pod: V1Pod) => captures.list(pod.metadata?.namespace).map(keyOf)),
  );
  registerCaptureFileApi(ctx, captures);
  manager.addController(
    new Controller({ name: 'auditforwarder', reconciler: new AuditForwarderReconciler(kc, forwarders, nodes) })
      .watches(forwarders)
      .watches(nodes, allOf(forwarders)),
  );
}

/** A node change can change what every object of a kind selects. */
function allOf<T extends DropTail | AuditForwarder>(informer: Informer<T>): (node: V1Node) => ReturnType<typeof keyOf>[] {
  return () => informer.list().map(keyOf);
}
