// How the runtime names an object: its key (namespace and name), the "namespace/name" string the
// work queue holds, and the key of an object. One type for every reference to an object, whether a
// reconciler gets it or a status write addresses it.
import type { KubernetesObject } from '@kubernetes/client-node';

/** A namespaced object's namespace and name, or a cluster-scoped object's name. */
export interface ObjectKey {
  namespace?: string;
  name: string;
}

/** "namespace/name", or "name" without a namespace. */
export function keyToString(key: ObjectKey): string {
  return key.namespace ? `${key.namespace}/${key.name}` : key.name;
}

/** Inverse of keyToString. */
export function parseKey(key: string): ObjectKey {
  const i = key.indexOf('/');
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** The object's own key. */
export function keyOf(obj: KubernetesObject): ObjectKey {
  const name = obj.metadata?.name ?? '';
  const namespace = obj.metadata?.namespace;
  return namespace ? { namespace, name } : { name };
}
