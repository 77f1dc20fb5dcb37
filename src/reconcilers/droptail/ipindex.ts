// Which Kubernetes object an IP address belongs to, kept current from the controller's Pod,
// Service and Node informers. An address can be claimed by several objects at once (a finished
// Pod whose IP was handed to a new one, a Service and a Node in odd setups); the most specific
// live claim wins: a running Pod, then a Service, then a Node, then a finished Pod.
import type { KubernetesObject, V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import type { DropEndpoint } from '../../apis/droptail.js';
import type { Informer } from '../../runtime/informer.js';
import { normalizeIP } from '../../util/ip.js';

/** A resolved end of a drop: a Pod, Service or Node (External and Unknown come from elsewhere). */
export type ClusterEndpoint = DropEndpoint & { kind: 'Pod' | 'Service' | 'Node'; name: string };

/** An endpoint and, for Pods, the uid Events must carry (kubectl describe matches on it). */
export interface ResolvedEndpoint {
  endpoint: DropEndpoint;
  uid?: string;
}

interface Claim {
  endpoint: ClusterEndpoint;
  uid?: string;
  /** Higher wins. */
  rank: number;
}

const RANK = { finishedPod: 0, node: 1, service: 2, pod: 3 } as const;

export class IpIndex {
  /** ip -> owner ("Pod/ns/name") -> claim */
  private readonly byIP = new Map<string, Map<string, Claim>>();
  /** owner -> the IPs it claims now, so an update or delete removes the old ones. */
  private readonly byOwner = new Map<string, string[]>();

  /** Subscribes to the informers; their current contents arrive as `add` events once they list. */
  watch(pods: Informer<V1Pod>, services: Informer<V1Service>, nodes: Informer<V1Node>): this {
    const follow = <T extends KubernetesObject>(informer: Informer<T>, claims: (obj: T) => Array<{ ip: string; claim: Claim }>, kind: string) => {
      const set = (obj: T) => this.setClaims(ownerKey(kind, obj), claims(obj));
      informer.on('add', set);
      informer.on('update', set);
      informer.on('delete', (obj) => this.setClaims(ownerKey(kind, obj), []));
    };
    follow(pods, podClaims, 'Pod');
    follow(services, serviceClaims, 'Service');
    follow(nodes, nodeClaims, 'Node');
    return this;
  }

  /** The object behind an address, or undefined when no Pod, Service or Node has it. */
  lookup(ip: string): ClusterEndpoint | undefined {
    return this.resolve(ip)?.endpoint;
  }

  /** lookup() with the object's uid. */
  resolve(ip: string): { endpoint: ClusterEndpoint; uid?: string } | undefined {
    const claims = this.byIP.get(normalizeIP(ip) ?? ip);
    if (!claims) return undefined;
    let best: Claim | undefined;
    for (const claim of claims.values()) if (!best || claim.rank > best.rank) best = claim;
    return best && (best.uid ? { endpoint: best.endpoint, uid: best.uid } : { endpoint: best.endpoint });
  }

  get size(): number {
    return this.byIP.size;
  }

  setPod(pod: V1Pod): void {
    this.setClaims(ownerKey('Pod', pod), podClaims(pod));
  }

  setService(service: V1Service): void {
    this.setClaims(ownerKey('Service', service), serviceClaims(service));
  }

  setNode(node: V1Node): void {
    this.setClaims(ownerKey('Node', node), nodeClaims(node));
  }

  remove(kind: 'Pod' | 'Service' | 'Node', obj: KubernetesObject): void {
    this.setClaims(ownerKey(kind, obj), []);
  }

  private setClaims(owner: string, claims: Array<{ ip: string; claim: Claim }>): void {
    for (const ip of this.byOwner.get(owner) ?? []) {
      const entry = this.byIP.get(ip);
      entry?.delete(owner);
      if (entry?.size === 0) this.byIP.delete(ip);
    }
    if (claims.length === 0) {
      this.byOwner.delete(owner);
      return;
    }
    const ips: string[] = [];
    for (const { ip, claim } of claims) {
      let entry = this.byIP.get(ip);
      if (!entry) this.byIP.set(ip, (entry = new Map()));
      entry.set(owner, claim);
      ips.push(ip);
    }
    this.byOwner.set(owner, ips);
  }
}

function ownerKey(kind: string, obj: KubernetesObject): string {
  return `${kind}/${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

/** Distinct normalised addresses; anything that is not an IP ("None", "") is left out. */
function addresses(values: ReadonlyArray<string | undefined>): string[] {
  const out = new Set<string>();
  for (const v of values) {
    const ip = v ? normalizeIP(v) : undefined;
    if (ip) out.add(ip);
  }
  return [...out];
}

/** hostNetwork pods share their node's address: a drop there is the node's, so they claim nothing. */
function podClaims(pod: V1Pod): Array<{ ip: string; claim: Claim }> {
  if (pod.spec?.hostNetwork) return [];
  const namespace = pod.metadata?.namespace ?? '';
  const name = pod.metadata?.name ?? '';
  const phase = pod.status?.phase;
  const rank = phase === 'Succeeded' || phase === 'Failed' ? RANK.finishedPod : RANK.pod;
  const ips = addresses([pod.status?.podIP, ...(pod.status?.podIPs ?? []).map((p) => p.ip)]);
  const uid = pod.metadata?.uid;
  return ips.map((ip) => ({ ip, claim: { rank, endpoint: { ip, kind: 'Pod', namespace, name }, ...(uid ? { uid } : {}) } }));
}

function serviceClaims(service: V1Service): Array<{ ip: string; claim: Claim }> {
  const namespace = service.metadata?.namespace ?? '';
  const name = service.metadata?.name ?? '';
  const ips = addresses([service.spec?.clusterIP, ...(service.spec?.clusterIPs ?? []), ...(service.spec?.externalIPs ?? [])]);
  return ips.map((ip) => ({ ip, claim: { rank: RANK.service, endpoint: { ip, kind: 'Service', namespace, name } } }));
}

/** Every address a Node reports (InternalIP, ExternalIP; Hostname entries that are IPs). */
function nodeClaims(node: V1Node): Array<{ ip: string; claim: Claim }> {
  const name = node.metadata?.name ?? '';
  const ips = addresses((node.status?.addresses ?? []).map((a) => a.address));
  return ips.map((ip) => ({ ip, claim: { rank: RANK.node, endpoint: { ip, kind: 'Node', name } } }));
}
