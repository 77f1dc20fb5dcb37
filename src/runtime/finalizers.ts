// Finalizer add/remove with optimistic concurrency: a JSON merge patch that replaces
// metadata.finalizers and carries the resourceVersion the caller saw. The API server treats a
// resourceVersion in a patch as a precondition, so a concurrent write makes the patch fail with
// 409 Conflict instead of being overwritten (the caller's reconcile then retries from a fresh
// cache). Returns whether a write was made.

import { CustomObjectsApi, KubeConfig, KubernetesObjectApi, PatchStrategy, setHeaderOptions, type KubernetesObject } from '@kubernetes/client-node';
import type { ResourceType } from '../apis/meta.js';

async function patchFinalizers(kc: KubeConfig, type: ResourceType, obj: KubernetesObject, finalizers: string[]): Promise<void> {
  const name = obj.metadata?.name;
  if (!name) throw new Error(`${type.kind}: object has no name`);
  const namespace = type.namespaced ? obj.metadata?.namespace : undefined;
  if (type.namespaced && !namespace) throw new Error(`${type.kind} ${name}: namespace required`);
  const metadata: Record<string, unknown> = { finalizers };
  if (obj.metadata?.resourceVersion) metadata.resourceVersion = obj.metadata.resourceVersion;
  if (type.group === '') {
    // Core types: the generic client finds the path through discovery.
    const client = KubernetesObjectApi.makeApiClient(kc);
    const spec = { apiVersion: type.version, kind: type.kind, metadata: { ...metadata, name, namespace } } as KubernetesObject;
    await client.patch(spec, undefined, undefined, undefined, undefined, PatchStrategy.MergePatch);
    return;
  }
  const api = kc.makeApiClient(CustomObjectsApi);
  const options = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  const body = { metadata };
  const { group, version, plural } = type;
  if (namespace) await api.patchNamespacedCustomObject({ group, version, plural, namespace, name, body }, options);
  else await api.patchClusterCustomObject({ group, version, plural, name, body }, options);
}

/** Adds finalizer to obj if missing. */
export async function ensureFinalizer(kc: KubeConfig, type: ResourceType, obj: KubernetesObject, finalizer: string): Promise<boolean> {
  const current = obj.metadata?.finalizers ?? [];
  if (current.includes(finalizer)) return false;
  await patchFinalizers(kc, type, obj, [...current, finalizer]);
  return true;
}

/** Removes finalizer from obj if present. */
export async function removeFinalizer(kc: KubeConfig, type: ResourceType, obj: KubernetesObject, finalizer: string): Promise<boolean> {
  const current = obj.metadata?.finalizers ?? [];
  if (!current.includes(finalizer)) return false;
  await patchFinalizers(kc, type, obj, current.filter((f) => f !== finalizer));
  return true;
}

/** Deletes a custom object, with its UID as a precondition so that a re-created one of the same name stays. */
export async function deleteCustomObject(kc: KubeConfig, type: ResourceType, obj: KubernetesObject): Promise<void> {
  const name = obj.metadata?.name ?? '';
  const namespace = type.namespaced ? obj.metadata?.namespace : undefined;
  const api = kc.makeApiClient(CustomObjectsApi);
  const { group, version, plural } = type;
  const body = { preconditions: obj.metadata?.uid ? { uid: obj.metadata.uid } : undefined };
  try {
    if (namespace) await api.deleteNamespacedCustomObject({ group, version, plural, namespace, name, body });
    else await api.deleteClusterCustomObject({ group, version, plural, name, body });
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (code === 404 || code === 409) return; // gone already, or another object of that name now
    throw err;
  }
}
