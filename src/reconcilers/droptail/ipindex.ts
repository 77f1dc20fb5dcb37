// Which Kubernetes object an IP address belongs to, kept current from the controller's Pod,
// Service and Node informers. An address can be claimed by several objects at once (a finished
// Pod whose IP was handed to a new one, a Service and a Node in odd setups); the most specific
// live claim wins: a running Pod, then a Service, then a Node, then a finished Pod.
import type { KubernetesObject, V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import type { DropEndpoint } from '../../apis/droptail.js';
import { CachedPod } from '../../runtime/cachedpod.js';
import type { Informer } from '../../runtime/informer.js';
import { normalizeIP } from '../../util/ip.js';

/** A resolved end of a drop: a Pod, Service or Node (External and Unknown come from elsewhere). */
export type ClusterEndpoint = DropEndpoint & { kind: 'Pod' | 'Service' | 'Node'; name: string };

/** An endpoint and, for Pods, the uid Events must carry (kubectl describe matches on it). */
export interface ResolvedEndpoint {
  endpoint: DropEndpoint;
  uid?: string;
}

/** A Service's or Node's claim on its addresses. It holds the object's own strings (no copies). */
interface ObjectClaim {
  kind: 'Service' | 'Node';
  namespace: string | undefined;
  name: string;
  owner: string;
  uid: string | undefined;
}

/**
 * One object's claim on an address. A Pod's is the cached Pod itself, which has all a claim
 * needs: at 150,000 Pods every byte per Pod is 150 KB, and a copy was 72.
 */
type Claim = CachedPod | ObjectClaim;

const RANK = { finishedPod: 0, node: 1, service: 2, pod: 3 } as const;

/** Higher wins. */
function rankOf(claim: Claim): number {
  if (claim instanceof CachedPod) return claim.phase === 'Succeeded' || claim.phase === 'Failed' ? RANK.finishedPod : RANK.pod;
  return claim.kind === 'Service' ? RANK.service : RANK.node;
}

function ownerOfClaim(claim: Claim): string {
  return claim instanceof CachedPod ? podOwner(claim) : claim.owner;
}

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
  watch(pods: Informer<CachedPod>, services: Informer<V1Service>, nodes: Informer<V1Node>): this {
    pods.on('add', (pod) => this.setPod(pod));
    pods.on('update', (pod) => this.setPod(pod));
    pods.on('delete', (pod) => this.setClaims(podOwner(pod), []));
    const follow = <T extends KubernetesObject>(informer: Informer<T>, claims: (obj: T) => Array<{ ip: string; claim: Claim }>, kind: ObjectClaim['kind']) => {
      const set = (obj: T) => this.setClaims(ownerOf(kind, obj), claims(obj));
      informer.on('add', set);
      informer.on('update', set);
      informer.on('delete', (obj) => this.setClaims(ownerOf(kind, obj), []));
    };
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
    for (const claim of asList(this.byIP.get(address))) if (!best || rankOf(claim) > rankOf(best)) best = claim;
    if (!best) return undefined;
    const endpoint: ClusterEndpoint = best.namespace === undefined ? { ip: address, kind: best.kind, name: best.name } : { ip: address, kind: best.kind, namespace: best.namespace, name: best.name };
    // Only Pods' uids are handed out: Events carry them (kubectl describe matches on it).
    return best instanceof CachedPod && best.uid ? { endpoint, uid: best.uid } : { endpoint };
  }

  get size(): number {
    return this.byIP.size;
  }

  /** A Pod as the informer caches it (a V1Pod is converted: tests, callers without the informer). */
  setPod(pod: CachedPod | V1Pod): void {
    const cached = pod instanceof CachedPod ? pod : CachedPod.from(pod);
    this.setClaims(podOwner(cached), podClaims(cached));
  }

  setService(service: V1Service): void {
    this.setClaims(ownerOf('Service', service), serviceClaims(service));
  }

  setNode(node: V1Node): void {
    this.setClaims(ownerOf('Node', node), nodeClaims(node));
  }

  remove(kind: 'Pod' | 'Service' | 'Node', obj: KubernetesObject): void {
    this.setClaims(obj instanceof CachedPod ? podOwner(obj) : ownerOf(kind, obj), []);
  }

  private setClaims(owner: string, claims: Array<{ ip: string; claim: Claim }>): void {
    for (const ip of asList(this.byOwner.get(owner))) this.dropClaim(ip, owner);
    if (claims.length === 0) {
      this.byOwner.delete(owner);
      return;
    }
    for (const { ip, claim } of claims) this.addClaim(ip, claim, owner);
    this.byOwner.set(owner, claims.length === 1 ? claims[0]!.ip : claims.map((c) => c.ip));
  }

  private addClaim(ip: string, claim: Claim, owner: string): void {
    const held = this.byIP.get(ip);
    if (held === undefined) this.byIP.set(ip, claim);
    else this.byIP.set(ip, [...asList(held).filter((c) => ownerOfClaim(c) !== owner), claim]);
  }

  private dropClaim(ip: string, owner: string): void {
    const rest = asList(this.byIP.get(ip)).filter((c) => ownerOfClaim(c) !== owner);
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

function podOwner(pod: CachedPod): string {
  return pod.uid || `Pod/${pod.namespace}/${pod.name}`;
}

/** hostNetwork pods share their node's address: a drop there is the node's, so they claim nothing. */
function podClaims(pod: CachedPod): Array<{ ip: string; claim: Claim }> {
  if (pod.hostNetwork) return [];
  return addresses(pod.podIPs).map((ip) => ({ ip, claim: pod }));
}

function serviceClaims(service: V1Service): Array<{ ip: string; claim: Claim }> {
  const claim = claimOf('Service', service);
  return addresses([service.spec?.clusterIP, ...(service.spec?.clusterIPs ?? []), ...(service.spec?.externalIPs ?? [])]).map((ip) => ({ ip, claim }));
}

/** Every address a Node reports (InternalIP, ExternalIP; Hostname entries that are IPs). */
function nodeClaims(node: V1Node): Array<{ ip: string; claim: Claim }> {
  const claim = { ...claimOf('Node', node), namespace: undefined };
  return addresses((node.status?.addresses ?? []).map((a) => a.address)).map((ip) => ({ ip, claim }));
}

/** One claim object per object, shared by its addresses. */
function claimOf(kind: ObjectClaim['kind'], obj: KubernetesObject): ObjectClaim {
  return { kind, namespace: obj.metadata?.namespace ?? '', name: obj.metadata?.name ?? '', owner: ownerOf(kind, obj), uid: obj.metadata?.uid };
}
