// Whether this node may capture a target: the agent captures whatever IP status.targets names,
// so it checks the entry against its own view of the pods on its node (an informer with
// spec.nodeName=<node>) instead of trusting whoever wrote the status. A target is captured only if
// it names a running pod of the capture's namespace on this node that owns the IP (status.podIPs),
// not on the host network (its IP is the node's), and no other live pod here claims the same IP.
import type { V1Pod } from '@kubernetes/client-node';

export interface TargetClaim {
  /** The capture's namespace. */
  namespace: string;
  pod: string;
  ip: string;
  node: string;
}

/**
 * Why the target must not be captured, or undefined when it may. The message names only the
 * capture's own namespace: its status is readable by that namespace's users, so nothing about
 * other tenants' pods goes in.
 */
export function ownershipRefusal(claim: TargetClaim, podsOnNode: readonly V1Pod[]): string | undefined {
  const { namespace, pod, ip, node } = claim;
  const named = podsOnNode.find((p) => p.metadata?.namespace === namespace && p.metadata?.name === pod && p.spec?.nodeName === node);
  const where = `on node ${node}`;
  if (!named) return `IP ${ip}: no pod ${namespace}/${pod} ${where}, so no pod of namespace ${namespace} owns it here; not capturing`;
  if (named.spec?.hostNetwork) return `IP ${ip}: pod ${namespace}/${pod} uses the host network, whose address is the node's and carries other pods' traffic; not capturing`;
  if (named.status?.phase !== 'Running') return `IP ${ip}: pod ${namespace}/${pod} is ${named.status?.phase ?? 'not yet running'}, not Running; not capturing`;
  if (!podIPs(named).includes(ip)) return `IP ${ip} is not an address of pod ${namespace}/${pod} ${where} (status.podIPs), so no pod of namespace ${namespace} owns it; not capturing`;
  const others = podsOnNode.filter((p) => p !== named && isLive(p) && !p.spec?.hostNetwork && podIPs(p).includes(ip));
  if (others.length > 0) return `IP ${ip} is also claimed by another pod ${where}; not capturing an address whose owner is ambiguous`;
  return undefined;
}

function podIPs(pod: V1Pod): string[] {
  const ips = (pod.status?.podIPs ?? []).map((p) => p.ip).filter((x): x is string => !!x);
  // podIP is podIPs[0] when both are set; older writers may set only podIP.
  return ips.length > 0 ? ips : pod.status?.podIP ? [pod.status.podIP] : [];
}

/** Pending, Running or Unknown: a pod that may still hold its address. */
function isLive(pod: V1Pod): boolean {
  return !['Succeeded', 'Failed'].includes(pod.status?.phase ?? '');
}
