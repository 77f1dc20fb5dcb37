// What every controller-side feature gets: the cluster client, the manager to register informers
// and controllers with, the shared informers, and the HTTPS API that agents and users call.
import type { KubeConfig, V1Node, V1Service } from '@kubernetes/client-node';
import type { AccessReviewer } from '../runtime/auth.js';
import type { CachedPod } from '../runtime/cachedpod.js';
import type { HttpsApiServer } from '../runtime/https.js';
import type { Informer } from '../runtime/informer.js';
import type { Manager } from '../runtime/manager.js';
import type { TrustBundle } from '../runtime/tls.js';

export interface ControllerContext {
  kc: KubeConfig;
  manager: Manager;
  nodes: Informer<V1Node>;
  /** Every Pod of the cluster, flat (the controller holds them all: cachedpod.ts). */
  pods: Informer<CachedPod>;
  services: Informer<V1Service>;
  /** Drop intake and capture downloads; undefined when no serving certificate was given. */
  api?: HttpsApiServer | undefined;
  /** Reviews users' tokens (kubectl's: the API server's audience). */
  reviewer: AccessReviewer;
  /** Reviews agents' tokens: audience CONTROLLER_AUDIENCE only (src/apis/identity.ts). */
  agentReviewer: AccessReviewer;
  /** The controller's token for the agent of a node: its audience is that node's alone. */
  agentToken(node: string): Promise<string>;
  /** CA bundle that signs the agents' serving certificates (Netwarden's CA, or --ca-file); system CAs when unset. */
  agentTrust?: TrustBundle | undefined;
  /** The subject CN each agent's certificate must have; unchecked when unset (certificates a user brings). */
  agentCommonName?: ((node: string) => string) | undefined;
  /** Port of the agents' HTTPS API on each node's InternalIP. */
  agentPort: number;
  /** Resync period of every informer: replays the caches so time-based state is looked at again. */
  resyncMs: number;
  /** Only the leader acts on requests: a standby has no caches. */
  isLeader(): boolean;
}
