// A Pod as the controller's informer caches it: one flat object with the few fields the
// controller reads (the IP index: addresses, phase, hostNetwork, uid; capture target selection:
// labels, node, IP, phase; Events: name, namespace, uid), instead of the nested V1Pod JSON with
// metadata/spec/status sub-objects. At 150,000 Pods every byte per Pod is 150 KB: a V1Pod trimmed
// to these fields was six objects, two property arrays and a copy of every string (~660 B with the
// informer's map entry); this is one object of ten slots and the strings no other Pod has (~300 B).
import type { KubernetesObject, V1ObjectMeta, V1Pod } from '@kubernetes/client-node';
import { SharedValues } from './transform.js';

export type Labels = Readonly<Record<string, string>>;

const NO_LABELS: Labels = Object.freeze({});
const NO_IPS: readonly string[] = Object.freeze([]);

/**
 * One copy of strings that many Pods have alike (namespace, node name, phase): JSON.parse gives
 * each Pod its own. Bounded: once full it starts over (the strings stay with their Pods; only
 * the sharing of new ones restarts), so deleted namespaces and nodes cannot make it grow forever.
 */
class StringPool {
  private readonly pool = new Map<string, string>();
  constructor(private readonly max: number) {}

  intern(s: string): string;
  intern(s: string | undefined): string | undefined;
  intern(s: string | undefined): string | undefined {
    if (s === undefined) return undefined;
    const held = this.pool.get(s);
    if (held !== undefined) return held;
    if (this.pool.size >= this.max) this.pool.clear();
    this.pool.set(s, s);
    return s;
  }
}

/** etcd's resourceVersions are decimal integers: a number costs no extra bytes, the string 24. */
const SMALL_DECIMAL = /^[1-9][0-9]{0,14}$/;

export class CachedPod implements KubernetesObject {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
  /** The resourceVersion, as a number when it is a small decimal integer (it reads back as the same string). */
  private readonly version: number | string;
  /** Frozen and shared by every Pod with the same labels (a Deployment's Pods). */
  readonly labels: Labels;
  readonly nodeName: string | undefined;
  readonly hostNetwork: boolean;
  readonly phase: string | undefined;
  /** status.podIP (the first of status.podIPs). */
  readonly podIP: string | undefined;
  /** status.podIPs after the first (dual-stack); the shared empty array otherwise. */
  private readonly otherIPs: readonly string[];

  private constructor(pod: V1Pod, pools: CachedPodPools) {
    const meta = pod.metadata ?? {};
    this.name = meta.name ?? '';
    this.namespace = pools.strings.intern(meta.namespace ?? '');
    this.uid = meta.uid ?? '';
    const rv = meta.resourceVersion ?? '';
    this.version = SMALL_DECIMAL.test(rv) ? Number(rv) : rv;
    this.labels = meta.labels ? pools.labels.share(meta.labels) : NO_LABELS;
    this.nodeName = pools.strings.intern(pod.spec?.nodeName);
    this.hostNetwork = pod.spec?.hostNetwork === true;
    this.phase = pools.strings.intern(pod.status?.phase);
    const ips = (pod.status?.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => typeof ip === 'string' && ip !== '');
    this.podIP = pod.status?.podIP || ips[0];
    const others = ips.filter((ip) => ip !== this.podIP);
    this.otherIPs = others.length === 0 ? NO_IPS : Object.freeze(others);
  }

  /** A V1Pod (a decoded list item or watch event) as cached; `pools` shares strings and labels between Pods. */
  static from(pod: V1Pod, pools: CachedPodPools = defaultPools): CachedPod {
    return new CachedPod(pod, pools);
  }

  get apiVersion(): string {
    return 'v1';
  }

  get kind(): 'Pod' {
    return 'Pod';
  }

  get resourceVersion(): string {
    return String(this.version);
  }

  /** Every address of the Pod, podIP first. */
  get podIPs(): readonly string[] {
    if (this.podIP === undefined) return NO_IPS;
    return this.otherIPs.length === 0 ? [this.podIP] : [this.podIP, ...this.otherIPs];
  }

  /** Identity as a KubernetesObject has it (the informer's cache and keys read it): a new object at each read. */
  get metadata(): V1ObjectMeta {
    return { name: this.name, namespace: this.namespace, uid: this.uid, resourceVersion: this.resourceVersion, labels: this.labels };
  }
}

/** What CachedPod.from shares between the Pods it makes: one set per informer. */
export class CachedPodPools {
  readonly strings = new StringPool(100_000);
  readonly labels = new SharedValues();
}

const defaultPools = new CachedPodPools();
