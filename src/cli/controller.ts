// `netwarden controller`: informers for the three kinds and what they depend on, one reconciler per
// kind, the HTTPS API, leader election, health and metrics.
import os from 'node:os';
import { CoreV1Api } from '@kubernetes/client-node';
import { agentAudience, CONTROLLER_AUDIENCE } from '../apis/identity.js';
import { AGENT_SERVICE_ACCOUNT, agentCommonName, CA_CONFIGMAP, CA_SECRET, serviceAccountUsername } from '../apis/certificates.js';
import { SYSTEM_NAMESPACE } from '../apis/limits.js';
import { AccessReviewer } from '../runtime/auth.js';
import { LeaderForwarder } from '../runtime/forward.js';
import { HttpsApiServer } from '../runtime/https.js';
import { CONTROLLER_API_LIMITS } from '../runtime/limits.js';
import { CertificateRotator, FileCertificateSource, FileTrustBundle, serveWithCertificates, type CertificateSource, type TrustBundle } from '../runtime/tls.js';
import { CaStore, registerAgentCertificates } from '../reconcilers/certificates/index.js';
import { cachedPodInformer, coreInformer } from '../runtime/informer.js';
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
  /** Namespace of the CA's Secret (its key): one no agent can read. */
  caSecretNamespace: string;
  caValidity: string;
  servingCertValidity: string;
  /** The controller's Service, whose names its serving certificate carries. */
  serviceName: string;
  agentPort: number;
  /** The controller's own ServiceAccount, whose tokens for the agents it requests. */
  serviceAccount: string;
  /** Reverse DNS servers for DropTail (repeatable --dns-server); the system resolvers when unset. */
  dnsServer?: string[];
  /** The budget of DropTail Event writes: for the controller, and per Pod. */
  eventQps: number;
  eventBurst: number;
  eventPodQps: number;
  eventPodBurst: number;
  /** DropTail: memory bounds of the drop pipeline (queued drops, remembered dedupe ids). */
  dropQueueMaxBytes?: number;
  dropDedupeMaxBytes?: number;
  /** Connections the HTTPS API keeps alive after an answer. */
  httpsMaxKeptAlive: number;
  captureMaxBytesPerPod?: number;
  captureMaxFiles?: number;
  captureMaxNodes?: number;
  captureMaxDuration?: string;
}

/** Resync replays the caches so that time-based state (schedules, ages) is looked at again. */
const RESYNC_MS = 5 * 60_000;

// What the controller's caches keep of each object: the fields its consumers read, nothing else
// (a Pod is ~40 KB of JSON, this part of it a few hundred bytes). Add a path here before reading
// a new field of a cached object, or it is always undefined.
//  - Pods: flat CachedPods (runtime/cachedpod.ts) with what the IP index (droptail/ipindex.ts:
//    podIP(s), phase, hostNetwork, uid for Events) and PacketCapture's target selection (labels,
//    nodeName, podIP, phase) read; a new field goes there.
//  - Nodes: the IP index and the agent client (status.addresses), node selectors (labels).
//  - Services: the IP index (cluster and external IPs).
const NODE_FIELDS = ['metadata.labels', 'status.addresses'];
const SERVICE_FIELDS = ['spec.clusterIP', 'spec.clusterIPs', 'spec.externalIPs'];

/**
 * Every agent's token is new to a controller that just started (or took over): at 5,000 nodes that
 * is 5,000 TokenReviews, which the default budget (100 at once, 20 a second) would spread over four
 * minutes of refused batches. The per-address budget still holds a flood from one pod to 25 + 5/s.
 */
// Node reports (a heartbeat per node and object every 30 s) keep every agent's token and access
// decision in use: a decision outlives a heartbeat (60 s, not 10 s, so 5,000 nodes cost ~83 access
// reviews a second rather than ~500), and the caches hold a few objects' worth of nodes.
const AGENT_TOKEN_REVIEW_BUDGET = { tokenReviewBurst: 1000, tokenReviewsPerSecond: 200, cacheTtlMs: 60_000, maxCacheEntries: 30_000 };

export async function runController(flags: ControllerFlags): Promise<void> {
  const kc = loadKubeConfig(flags.kubeconfig);
  const identity = flags.identity ?? process.env.POD_NAME ?? `${os.hostname()}_${process.pid}`;
  const namespace = process.env.POD_NAMESPACE ?? SYSTEM_NAMESPACE;
  // Users' and scrapers' tokens are for the API server's audience, as the plugin and Prometheus send them.
  const reviewer = new AccessReviewer(kc);
  const metrics = metricsServing({ insecure: flags.metricsInsecure === true, reviewer });
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
  const pki = certificateSettings(flags);
  // Needed whenever something is not brought: the controller's own certificate or the agents' CA.
  const ca = pki.ownServing && pki.ownAgentCa ? undefined : new CaStore(kc, { secretNamespace: flags.caSecretNamespace, secretName: CA_SECRET, configMapNamespace: namespace, configMapName: CA_CONFIGMAP, caValidityMs: pki.caValidityMs });
  const api = new HttpsApiServer({ name: 'controller', port: flags.httpsPort, host: flags.httpsAddress, limits: { ...CONTROLLER_API_LIMITS, maxKeptAlive: flags.httpsMaxKeptAlive ?? CONTROLLER_API_LIMITS.maxKeptAlive } });
  // Not ready until the API serves: the Service then sends no agent or user to a replica still waiting for its certificate.
  manager.addReadinessCheck(() => (api.listening() ? undefined : 'HTTPS API not serving yet (waiting for its serving certificate)'));
  // A standby passes API requests to the leader: a Service or a port-forward may send them to either pod.
  const replicaTrust = !pki.ownServing ? caTrust(ca!) : flags.caFile ? new FileTrustBundle(flags.caFile) : undefined;
  if (flags.leaderElect && replicaTrust) {
    const core = kc.makeApiClient(CoreV1Api);
    const forwarder = new LeaderForwarder({
      identity,
      isLeader: () => manager.isLeader(),
      leader: () => manager.leaderIdentity(),
      // holderIdentity is the pod's name (POD_NAME) in the controller's own namespace.
      addressOf: async (holder) => (await core.readNamespacedPod({ name: holder, namespace })).status?.podIP,
      port: flags.httpsPort,
      trust: replicaTrust,
      servername: `${flags.serviceName}.${namespace}.svc`,
    });
    api.setForwarder((req, res) => forwarder.forward(req, res));
  }
  const agentTokens = new ServiceAccountTokens(kc, { namespace, serviceAccount: flags.serviceAccount });
  const ctx: ControllerContext = {
    kc,
    manager,
    nodes: coreInformer(kc, 'nodes', { resyncMs: RESYNC_MS, keep: NODE_FIELDS }),
    pods: cachedPodInformer(kc, { resyncMs: RESYNC_MS }),
    services: coreInformer(kc, 'services', { resyncMs: RESYNC_MS, keep: SERVICE_FIELDS }),
    api,
    reviewer,
    agentReviewer: new AccessReviewer(kc, { audiences: [CONTROLLER_AUDIENCE], ...AGENT_TOKEN_REVIEW_BUDGET }),
    agentToken: (node) => agentTokens.tokenFor(agentAudience(node)),
    agentTrust: flags.caFile ? new FileTrustBundle(flags.caFile) : caTrust(ca!),
    agentCommonName: flags.caFile ? undefined : agentCommonName,
    agentPort: flags.agentPort,
    resyncMs: RESYNC_MS,
    isLeader: () => manager.isLeader(),
  };
  const eventBudget = { qps: flags.eventQps, burst: flags.eventBurst, podQps: flags.eventPodQps, podBurst: flags.eventPodBurst };
  const pipeline = { maxPendingBytes: flags.dropQueueMaxBytes, dedupeBytes: flags.dropDedupeMaxBytes };
  registerDropTail(ctx, { dnsServers: flags.dnsServer ?? [], identity, eventBudget, pipeline });
  registerPacketCapture(ctx, {
    namespace,
    ceilings: {
      maxBytesPerPod: flags.captureMaxBytesPerPod,
      maxFiles: flags.captureMaxFiles,
      maxDurationMs: flags.captureMaxDuration ? sumDurationTerms(flags.captureMaxDuration) : undefined,
      maxNodes: flags.captureMaxNodes,
    },
  });
  registerAuditForwarder(ctx);
  if (!flags.caFile) {
    registerAgentCertificates(ctx, ca!, { agentUsername: serviceAccountUsername(namespace, AGENT_SERVICE_ACCOUNT), maxLifetimeMs: pki.servingValidityMs, controllerAddresses: CONTROLLER_IPS });
  }

  const log = loggerFor('controller');
  log.info('starting', {
    identity, leaderElection: flags.leaderElect, https: `${flags.httpsAddress}:${flags.httpsPort}`,
    servingCertificate: flags.tlsCertFile ?? `from the CA in ${flags.caSecretNamespace}/${CA_SECRET}`,
    agentCertificates: flags.caFile ? `verified with ${flags.caFile}` : 'signed through the CSR API (netwarden.io/agent-serving)',
  });
  const serving: CertificateSource = pki.ownServing
    ? new FileCertificateSource(flags.tlsCertFile!, flags.tlsKeyFile!)
    : new CertificateRotator({ name: 'controller', issue: async () => toCredentials(await ca!.issue('netwarden-controller', controllerNames(flags.serviceName, namespace), pki.servingValidityMs)) });
  const startFailed = (err: unknown): never => {
    log.error('HTTPS API could not start', { error: String(err) });
    process.exit(1);
  };
  // Health and leader election do not wait for the CA (the API server may be away a while): the
  // HTTPS API starts once there is a certificate, the signer requeues until the CA is loaded.
  void (async () => {
    await ca?.start();
    serveWithCertificates(api, serving, startFailed, (credentials) => manager.setMetricsCertificate(credentials));
  })().catch(startFailed);
  await manager.start();
}

/** Addresses of the controller's certificate besides its Service names: where a port-forward puts it. */
const CONTROLLER_IPS = ['127.0.0.1', '::1'];

/** The Service's names, and localhost for `kubectl port-forward` (the plugin's default URL). */
function controllerNames(service: string, namespace: string): { dns: string[]; ips: string[] } {
  const dns = [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`, 'localhost'];
  return { dns, ips: CONTROLLER_IPS };
}

function certificateSettings(flags: ControllerFlags): { ownServing: boolean; ownAgentCa: boolean; caValidityMs: number; servingValidityMs: number } {
  if (Boolean(flags.tlsCertFile) !== Boolean(flags.tlsKeyFile)) throw new Error('--tls-cert-file and --tls-key-file go together');
  const caValidityMs = sumDurationTerms(flags.caValidity);
  const servingValidityMs = sumDurationTerms(flags.servingCertValidity);
  if (servingValidityMs >= caValidityMs) throw new Error(`--serving-cert-validity (${flags.servingCertValidity}) must be shorter than --ca-validity (${flags.caValidity})`);
  return { ownServing: Boolean(flags.tlsCertFile), ownAgentCa: Boolean(flags.caFile), caValidityMs, servingValidityMs };
}

function caTrust(ca: CaStore): TrustBundle {
  return {
    current() {
      const bundle = ca.trustBundle();
      if (!bundle) throw new Error('the CA is not loaded yet');
      return bundle;
    },
  };
}

function toCredentials(issued: { certPem: string; keyPem: string }): { cert: string; key: string } {
  return { cert: issued.certPem, key: issued.keyPem };
}
