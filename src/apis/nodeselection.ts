// Which nodes a DropTail or AuditForwarder runs on: its spec.nodeSelector, read the way a Pod's is.
// Both the controller (to count the nodes expected in status) and each agent (to decide whether to
// run here) ask this, so it has no dependencies beyond the Node type.
import type { V1Node } from '@kubernetes/client-node';

/** nodeSelector semantics of a Pod: every key must be present with that value. */
export function nodeMatches(nodeSelector: Readonly<Record<string, string>> | undefined, node: V1Node): boolean {
  const labels = node.metadata?.labels ?? {};
  return Object.entries(nodeSelector ?? {}).every(([k, v]) => labels[k] === v);
}
