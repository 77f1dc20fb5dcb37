// What an informer keeps of each object (client-go's SetTransform). A cache holds every object of
// a kind for the life of the process, and a realistic Pod is 30-50 KB of JSON of which a consumer
// may read a few hundred bytes; the transform runs on each object as it is decoded, from a list
// page or a watch event, before it is cached or handed to any handler.
import type { KubernetesObject } from '@kubernetes/client-node';

/** Maps a freshly decoded object (owned by the informer: it may be changed in place) to what is cached. */
export type Transform<T extends KubernetesObject> = (obj: T) => T;

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
 * A transform that keeps only the given dotted paths (e.g. "spec.nodeName", "status.podIPs")
 * besides apiVersion, kind, name, namespace, uid and resourceVersion. A path's whole value is kept
 * (podIPs keeps its array of {ip}); everything else, managedFields included, is dropped.
 */
export function keepFields<T extends KubernetesObject>(paths: readonly string[]): Transform<T> {
  const split = [...ALWAYS_KEPT, ...paths].map((p) => p.split('.'));
  return (obj: T): T => {
    const out: Json = {};
    for (const path of split) copyPath(obj as unknown as Json, out, path);
    return out as unknown as T;
  };
}
