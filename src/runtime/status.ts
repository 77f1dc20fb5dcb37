// Status writes on the /status subresource and Condition helpers.
//
// Content type: the generated CustomObjectsApi patch methods pick the first supported media type
// of their list, application/json-patch+json, whatever the body is. setHeaderOptions() adds a
// middleware that overwrites the Content-Type header after the request was built; the body is
// serialized as JSON, which is valid YAML for application/apply-patch+yaml. The object-parameter
// API (what makeApiClient returns) passes these Observable middlewares straight through, so the
// header really is sent (checked against a fake server in test/unit/conditions-status.test.ts).

import { CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Condition, ResourceType } from '../apis/meta.js';
import type { ObjectKey } from './keys.js';

type PatchFn = (type: ResourceType, ref: ObjectKey, body: object, contentType: PatchStrategy, fieldManager?: string, force?: boolean) => Promise<unknown>;

function statusPatcher(kc: KubeConfig): PatchFn {
  const api = kc.makeApiClient(CustomObjectsApi);
  return async (type, ref, body, contentType, fieldManager, force) => {
    const options = setHeaderOptions('Content-Type', contentType);
    const { group, version, plural } = type;
    if (type.namespaced) {
      if (!ref.namespace) throw new Error(`${type.kind} ${ref.name}: namespace required`);
      return api.patchNamespacedCustomObjectStatus(
        { group, version, plural, namespace: ref.namespace, name: ref.name, body, fieldManager, force },
        options,
      );
    }
    return api.patchClusterCustomObjectStatus({ group, version, plural, name: ref.name, body, fieldManager, force }, options);
  };
}

/**
 * Server-side apply of `status` on the /status subresource: the fields this manager sets are
 * owned by it, fields it stops setting are removed. Returns the updated object.
 */
export async function applyStatus(
  kc: KubeConfig,
  type: ResourceType,
  ref: ObjectKey,
  status: object,
  fieldManager: string,
  force = true,
): Promise<unknown> {
  const body = {
    apiVersion: `${type.group}/${type.version}`,
    kind: type.kind,
    metadata: type.namespaced ? { name: ref.name, namespace: ref.namespace } : { name: ref.name },
    status,
  };
  return statusPatcher(kc)(type, ref, body, PatchStrategy.ServerSideApply, fieldManager, force);
}

/** JSON merge patch of the status subresource; `patch` is the value of `status`. */
export async function mergePatchStatus(kc: KubeConfig, type: ResourceType, ref: ObjectKey, patch: object): Promise<unknown> {
  return statusPatcher(kc)(type, ref, { status: patch }, PatchStrategy.MergePatch);
}

/** The condition of the given type, if any. */
export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/**
 * Returns a new list with newCondition set, like apimachinery meta.SetStatusCondition:
 * lastTransitionTime changes only when the status changes (or is taken from newCondition / now
 * for a new condition); reason, message and observedGeneration are always updated. The input
 * list is not modified. `now` is an RFC 3339 time or a Date.
 */
export function setCondition(conditions: readonly Condition[] | undefined, newCondition: Omit<Condition, 'lastTransitionTime'> & { lastTransitionTime?: string }, now: Date | string = new Date()): Condition[] {
  const nowStr = typeof now === 'string' ? now : rfc3339(now);
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === newCondition.type);
  if (i < 0) {
    list.push({ ...newCondition, lastTransitionTime: newCondition.lastTransitionTime || nowStr });
    return list;
  }
  const old = list[i]!;
  const statusChanged = old.status !== newCondition.status;
  const next: Condition = {
    ...old,
    status: newCondition.status,
    reason: newCondition.reason,
    message: newCondition.message,
    lastTransitionTime: statusChanged ? newCondition.lastTransitionTime || nowStr : old.lastTransitionTime,
  };
  if (newCondition.observedGeneration !== undefined) next.observedGeneration = newCondition.observedGeneration;
  list[i] = next;
  return list;
}

/** Removes the condition of the given type; returns a new list. */
export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

/** metav1.Time format: seconds precision, UTC. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
