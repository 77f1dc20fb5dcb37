// How an agent is its node, and how the controller and the agents know each other, with tokens the
// API server issues and reviews (nothing of Netwarden's own making):
//
//   agent -> controller   the agent's pod-bound projected token with audience CONTROLLER_AUDIENCE
//                          (a second serviceAccountToken volume of the DaemonSet). The controller
//                          reviews it with that audience only, and TokenReview names the pod's node
//                          in extra[NODE_NAME_EXTRA]: a drop batch is taken only for that node.
//   agent -> API server   the pod's usual token, also pod-bound; the netwarden-agent-node-status
//                          admission policy (admission.ts) lets it write only its own node's status
//                          entries, as NodeRestriction does for kubelets.
//   controller -> agent   a TokenRequest token of the controller's ServiceAccount with the audience
//                          agentAudience(node): valid for that one agent, and for nothing else, not
//                          even the API server, so an agent cannot replay what it was sent.

/** The audience of the tokens agents present to the controller. */
export const CONTROLLER_AUDIENCE = 'netwarden-controller';

/** The audience of the tokens the controller presents to the agent of `node`: one per node. */
export function agentAudience(node: string): string {
  return `netwarden-agent:${node}`;
}

/** What TokenReview (and admission's userInfo) carries for a token bound to a pod on a node. */
export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';

/** Where the DaemonSet projects the agent's controller-audience token (config/agent/daemonset.yaml). */
export const DEFAULT_CONTROLLER_TOKEN_FILE = '/var/run/secrets/netwarden.io/controller/token';

/** The ServiceAccounts config/rbac creates (in SYSTEM_NAMESPACE). */
export const AGENT_SERVICE_ACCOUNT = 'netwarden-agent';
export const CONTROLLER_SERVICE_ACCOUNT = 'netwarden-controller';

/** The user name the API server gives a ServiceAccount's tokens. */
export function serviceAccountUser(namespace: string, name: string): string {
  return `system:serviceaccount:${namespace}:${name}`;
}

/** The node a reviewed token is bound to (a pod's), or undefined for one bound to no node. */
export function nodeOfCaller(extra: Readonly<Record<string, readonly string[]>> | undefined): string | undefined {
  const values = extra?.[NODE_NAME_EXTRA];
  return values?.length === 1 && values[0] ? values[0] : undefined;
}
