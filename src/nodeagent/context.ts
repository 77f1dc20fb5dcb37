// What every node-side feature gets from the agent: the cluster client, its node, where it may
// keep state, how to reach the controller, and the HTTPS server other components fetch from.
import type { KubeConfig, V1Node } from '@kubernetes/client-node';
import type { AccessReviewer } from '../runtime/auth.js';
import type { HttpsApiServer } from '../runtime/https.js';
import type { Informer } from '../runtime/informer.js';
import type { Manager } from '../runtime/manager.js';
import type { TrustBundle } from '../runtime/tls.js';

export interface AgentContext {
  kc: KubeConfig;
  nodeName: string;
  /** Netwarden's own namespace: the only one whose Secrets the agent reads. */
  namespace: string;
  /** This node's Node object (a one-object informer). */
  node: Informer<V1Node>;
  /** Checkpoints, cursors and capture files live under here and nowhere else. */
  stateDir: string;
  manager: Manager;
  /** Base URL of the controller's HTTPS API, e.g. https://netwarden-controller.netwarden-system.svc. */
  controllerUrl: string;
  /** CA bundle for the controller's serving certificate (the controller's ConfigMap, or --ca-file). */
  controllerTrust?: TrustBundle | undefined;
  /** The agent's own HTTPS API (capture files), when a serving certificate was given. */
  api?: HttpsApiServer | undefined;
  /** Reviews callers of the agent's API: only tokens of this node's audience (agentAudience). */
  reviewer: AccessReviewer;
  /** The pod-bound token for the controller (audience CONTROLLER_AUDIENCE), read as it rotates. */
  controllerToken(): Promise<string>;
}

/** Field manager of this agent's entries in status lists keyed by node. */
export function agentFieldManager(nodeName: string): string {
  return `netwarden-agent-${nodeName}`;
}
