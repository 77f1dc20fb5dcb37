// What an informer keeps of each object (client-go's SetTransform). A cache holds every object of
// a kind for the life of the process, and a realistic Pod is 30-50 KB of JSON of which a consumer
// may read a few hundred bytes; the transform runs on each object as it is decoded, from a list
// page or a watch event, before it is cached or handed to any handler.
import type { KubernetesObject } from '@kubernetes/client-node';

/**
 * Maps a freshly decoded object (owned by the informer: it may be changed in place) to what is
 * cached: the same object trimmed, or another representation (CachedPod).
 */
export type Transform<T extends KubernetesObject, In extends KubernetesObject = T> = (obj: In) => T;

/** What every cached object keeps whatever the consumer asks: its identity and its version (the cache's key and change check). */
const ALWAYS_KEPT = ['apiVersion', 'kind', 'metadata.name', 'metadata.namespace', 'metadata.uid', 'metadata.resourceVersion'] as const;

/** Drops metadata.managedFields (server-side apply's bookkeeping, often the largest part of an object) in place. */
export function dropManagedFields<T extends KubernetesObject>(obj: T): T {
  if (obj.metadata && 'managedFields' in obj.metadata) delete obj.metadata.managedFields;
  return obj;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Copies the value at a dotted path of `from` to the same path of `to`; absent paths are skipped. */
function copyPath(from: Json, to: Json, path: readonly string[]): void {
  let src: unknown = from;
  for (const part of path) {
    if (!isObject(src)) return;
    src = src[part];
  }
  if (src === undefined) return;
  let dst = to;
  for (const part of path.slice(0, -1)) {
    const next = dst[part];
    dst = isObject(next) ? next : (dst[part] = {});
  }
  dst[path[path.length - 1]!] = src;
}

/**
 * Identical values shared by many cached objects (the labels of a Deployment's Pods): one frozen
 * copy each, held weakly, so the pool keeps nothing its objects no longer hold.
 */
export class SharedValues {
  // Keyed by a hash of the JSON, not the JSON: a value no other object shares (a StatefulSet Pod's
  // labels) then costs a number key and a weak reference, not a second copy as text.
  private readonly pool = new Map<number, WeakRef<object>>();
  private readonly forget = new FinalizationRegistry<number>((key) => {
    if (this.pool.get(key)?.deref() === undefined) this.pool.delete(key);
  });

  share<V>(value: V): V {
    if (!isObject(value)) return value;
    const json = JSON.stringify(value);
    const key = fnv1a(json);
    const held = this.pool.get(key)?.deref();
    if (held !== undefined) return JSON.stringify(held) === json ? (held as V) : value; // a collision: not shared
    Object.freeze(value);
    this.pool.set(key, new WeakRef(value));
    this.forget.register(value, key);
    return value;
  }
}

/** 32-bit FNV-1a of the UTF-16 code units. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/** Within one object, every copy of a string after the first becomes the first (podIP and podIPs[0].ip). */
function dedupeStrings(value: unknown, seen: Map<string, string>): unknown {
  if (typeof value === 'string') {
    const first = seen.get(value);
    if (first !== undefined) return first;
    seen.set(value, value);
    return value;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = dedupeStrings(value[i], seen);
  } else if (isObject(value) && !Object.isFrozen(value)) {
    for (const key of Object.keys(value)) value[key] = dedupeStrings(value[key], seen);
  }
  return value;
}

export interface KeepFieldsOptions {
  /**
   * Paths whose values many objects have alike (e.g. "metadata.labels"): cached once, frozen, and
   * shared by every object that has the same value. Consumers must not change cached objects.
   */
  shared?: readonly string[];
}

/**
 * A transform that keeps only the given dotted paths (e.g. "spec.nodeName", "status.podIPs")
 * besides apiVersion, kind, name, namespace, uid and resourceVersion. A path's whole value is kept
 * (podIPs keeps its array of {ip}); everything else, managedFields included, is dropped. Equal
 * strings within the kept part are one string, and `shared` paths are shared across objects: at
 * 150,000 Pods each byte per Pod is 150 KB.
 */
export function keepFields<T extends KubernetesObject>(paths: readonly string[], opts: KeepFieldsOptions = {}): Transform<T> {
  const split = [...ALWAYS_KEPT, ...paths].map((p) => p.split('.'));
  const sharedPaths = (opts.shared ?? []).map((p) => p.split('.'));
  const shared = new SharedValues();
  return (obj: T): T => {
    const out: Json = {};
    for (const path of split) copyPath(obj as unknown as Json, out, path);
    for (const path of sharedPaths) shareAt(out, path, shared);
    dedupeStrings(out, new Map());
    return out as unknown as T;
  };
}

function shareAt(obj: Json, path: readonly string[], shared: SharedValues): void {
  let parent: unknown = obj;
  for (const part of path.slice(0, -1)) {
    if (!isObject(parent)) return;
    parent = parent[part];
  }
  const last = path[path.length - 1]!;
  if (isObject(parent) && parent[last] !== undefined) parent[last] = shared.share(parent[last]);
}
