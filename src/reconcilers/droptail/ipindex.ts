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

/**
 * One object's claim on an address. It holds the object's own strings (no copies), and the owner
 * is its uid, also the object's own string: at 150,000 Pods every byte per Pod is 150 KB.
 */
interface Claim {
  kind: ClusterEndpoint['kind'];
  namespace: string | undefined;
  name: string;
  owner: string;
  uid: string | undefined;
  /** Higher wins. */
  rank: number;
}

const RANK = { finishedPod: 0, node: 1, service: 2, pod: 3 } as const;

/** Most addresses have one claim: it is stored as is, an array only while several share the address. */
type Claims = Claim | Claim[];
/** Most objects claim one address: likewise. */
type Addresses = string | string[];

const asList = <V>(v: V | V[] | undefined): readonly V[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

export class IpIndex {
  private readonly byIP = new Map<string, Claims>();
  /** owner -> the addresses it claims now, so an update or delete removes the old ones. */
  private readonly byOwner = new Map<string, Addresses>();

  /** Subscribes to the informers; their current contents arrive as `add` events once they list. */
  watch(pods: Informer<V1Pod>, services: Informer<V1Service>, nodes: Informer<V1Node>): this {
    const follow = <T extends KubernetesObject>(informer: Informer<T>, claims: (obj: T) => Array<{ ip: string; claim: Claim }>, kind: ClusterEndpoint['kind']) => {
      const set = (obj: T) => this.setClaims(ownerOf(kind, obj), claims(obj));
      informer.on('add', set);
      informer.on('update', set);
      informer.on('delete', (obj) => this.setClaims(ownerOf(kind, obj), []));
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
    const address = normalizeIP(ip) ?? ip;
    let best: Claim | undefined;
    for (const claim of asList(this.byIP.get(address))) if (!best || claim.rank > best.rank) best = claim;
    if (!best) return undefined;
    const endpoint: ClusterEndpoint = best.namespace === undefined ? { ip: address, kind: best.kind, name: best.name } : { ip: address, kind: best.kind, namespace: best.namespace, name: best.name };
    // Only Pods' uids are handed out: Events carry them (kubectl describe matches on it).
    return best.kind === 'Pod' && best.uid ? { endpoint, uid: best.uid } : { endpoint };
  }

  get size(): number {
    return this.byIP.size;
  }

  setPod(pod: V1Pod): void {
    this.setClaims(ownerOf('Pod', pod), podClaims(pod));
  }

  setService(service: V1Service): void {
    this.setClaims(ownerOf('Service', service), serviceClaims(service));
  }

  setNode(node: V1Node): void {
    this.setClaims(ownerOf('Node', node), nodeClaims(node));
  }

  remove(kind: 'Pod' | 'Service' | 'Node', obj: KubernetesObject): void {
    this.setClaims(ownerOf(kind, obj), []);
  }

  private setClaims(owner: string, claims: Array<{ ip: string; claim: Claim }>): void {
    for (const ip of asList(this.byOwner.get(owner))) this.dropClaim(ip, owner);
    if (claims.length === 0) {
      this.byOwner.delete(owner);
      return;
    }
    for (const { ip, claim } of claims) this.addClaim(ip, claim);
    this.byOwner.set(owner, claims.length === 1 ? claims[0]!.ip : claims.map((c) => c.ip));
  }

  private addClaim(ip: string, claim: Claim): void {
    const held = this.byIP.get(ip);
    if (held === undefined) this.byIP.set(ip, claim);
    else this.byIP.set(ip, [...asList(held).filter((c) => c.owner !== claim.owner), claim]);
  }

  private dropClaim(ip: string, owner: string): void {
    const rest = asList(this.byIP.get(ip)).filter((c) => c.owner !== owner);
    if (rest.length === 0) this.byIP.delete(ip);
    else this.byIP.set(ip, rest.length === 1 ? rest[0]! : rest);
  }
}

/** The uid (the object's own string, unique across kinds); kind/namespace/name for one without. */
function ownerOf(kind: string, obj: KubernetesObject): string {
  return obj.metadata?.uid || `${kind}/${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
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
  const phase = pod.status?.phase;
  const rank = phase === 'Succeeded' || phase === 'Failed' ? RANK.finishedPod : RANK.pod;
  const claim = claimOf('Pod', pod, rank);
  return addresses([pod.status?.podIP, ...(pod.status?.podIPs ?? []).map((p) => p.ip)]).map((ip) => ({ ip, claim }));
}

function serviceClaims(service: V1Service): Array<{ ip: string; claim: Claim }> {
  const claim = claimOf('Service', service, RANK.service);
  return addresses([service.spec?.clusterIP, ...(service.spec?.clusterIPs ?? []), ...(service.spec?.externalIPs ?? [])]).map((ip) => ({ ip, claim }));
}

/** Every address a Node reports (InternalIP, ExternalIP; Hostname entries that are IPs). */
function nodeClaims(node: V1Node): Array<{ ip: string; claim: Claim }> {
  const claim = { ...claimOf('Node', node, RANK.node), namespace: undefined };
  return addresses((node.status?.addresses ?? []).map((a) => a.address)).map((ip) => ({ ip, claim }));
}

/** One claim object per object, shared by its addresses. */
function claimOf(kind: ClusterEndpoint['kind'], obj: KubernetesObject, rank: number): Claim {
  return { kind, namespace: obj.metadata?.namespace ?? '', name: obj.metadata?.name ?? '', owner: ownerOf(kind, obj), uid: obj.metadata?.uid, rank };
}
