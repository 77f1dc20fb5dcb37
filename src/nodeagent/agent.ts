// The node agent: one process per node. It watches its own Node and the resources that may select
// it, and runs each feature's node-side work there. Features register themselves below.
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { agentAudience } from '../apis/identity.js';
import { DropTailType } from '../apis/meta.js';
import type { DropTail } from '../apis/droptail.js';
import { AccessReviewer } from '../runtime/auth.js';
import { CA_BUNDLE_KEY, CA_CONFIGMAP } from '../apis/certificates.js';
import { HttpsApiServer } from '../runtime/https.js';
import { coreInformer, customResourceInformer } from '../runtime/informer.js';
import { configMapTrustBundle, FileCertificateSource, FileTrustBundle, serveWithCertificates, type CertificateSource, type TrustBundle } from '../runtime/tls.js';
import { loggerFor } from '../util/log.js';
import { agentCertificateRotator } from './certificate/index.js';
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
  /** CA bundle for the controller's certificate; the controller's ConfigMap netwarden-ca when unset. */
  caFile?: string | undefined;
  /** The projected token file (audience CONTROLLER_AUDIENCE) the agent authenticates to the controller with. */
  controllerTokenFile: string;
  /**
   * The agent's HTTPS API (capture files), off when unset. Its certificate comes from
   * `servingCertificate` when given, else from the CSR API, for this node only.
   */
  files?: { port: number; bindAddress: string } | undefined;
  /** A certificate the user brings (reloaded when the files change), for the file API and the metrics port. */
  servingCertificate?: { certFile: string; keyFile: string } | undefined;
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
  const metrics = metricsServing({ insecure: opts.metricsInsecure === true, reviewer: metricsReviewer });
  const manager = new Manager(kc, { metricsPort: opts.metricsPort, healthPort: opts.metricsPort, host: opts.metricsAddress, metricsAuth: metrics.metricsAuth, metricsTls: metrics.tls });
  const node = manager.addInformer(coreInformer(kc, 'nodes', { fieldSelector: `metadata.name=${opts.nodeName}`, resyncMs: RESYNC_MS }));
  const api = opts.files ? new HttpsApiServer({ name: 'agent', port: opts.files.port, host: opts.files.bindAddress }) : undefined;
  // Ready (the DaemonSet's readinessProbe, which paces its rolling updates) once the controller can
  // reach the file API: its certificate from the CSR API arrived, not merely the process started.
  if (api) manager.addReadinessCheck(() => (api.listening() ? undefined : 'file API not serving yet (waiting for its serving certificate)'));
  const context: AgentContext = {
    kc,
    nodeName: opts.nodeName,
    namespace: opts.namespace,
    node,
    stateDir: path.resolve(opts.stateDir),
    manager,
    controllerUrl: opts.controllerUrl,
    controllerTrust: controllerTrust(kc, manager, opts),
    api,
    // The controller's tokens for this node only: one made for another agent, or for the API
    // server, is refused with 401.
    reviewer: new AccessReviewer(kc, { audiences: [agentAudience(opts.nodeName)] }),
    controllerToken: tokenFromFile(opts.controllerTokenFile),
  };

  registerDropTailAgent(context, customResourceInformer<DropTail>(kc, DropTailType, { resyncMs: RESYNC_MS }));
  registerCapture(context, opts.captureCeilings ?? DEFAULT_CEILINGS, RESYNC_MS);
  const audit = registerAuditForwarder(context, opts.auditLogDirs);

  let certificates: CertificateSource | undefined;
  return {
    context,
    async start() {
      await manager.start(); // the Node informer is synced: its addresses are what a CSR names
      const brought = opts.servingCertificate;
      // Without the file API and a certificate of the user's, the metrics port keeps its self-signed one.
      if (!api && !brought) return;
      certificates = brought ? new FileCertificateSource(brought.certFile, brought.keyFile) : agentCertificateRotator(context);
      // The metrics port serves the same certificate (until it arrives, a self-signed one).
      serveWithCertificates(api, certificates, (err) => loggerFor('agent').error('file API could not start', { error: String(err) }), (credentials) => manager.setMetricsCertificate(credentials));
    },
    async stop() {
      await audit.close(); // stop reading and sending; checkpoints stay where the sink acknowledged
      await certificates?.stop();
      await manager.stop();
      await api?.stop();
    },
  };
}

/** --ca-file when given, else the bundle the controller publishes (watched, so CA rotations arrive). */
function controllerTrust(kc: KubeConfig, manager: Manager, opts: AgentOptions): TrustBundle {
  if (opts.caFile) return new FileTrustBundle(opts.caFile);
  const { informer, bundle } = configMapTrustBundle(kc, opts.namespace, CA_CONFIGMAP, CA_BUNDLE_KEY);
  manager.addInformer(informer);
  return bundle;
}
