// What the three reconcilers share: the Ready condition from a verdict, and skipping status writes
// that would change nothing. (Node selection is in src/apis/nodeselection.ts: agents use it too.)
import { isDeepStrictEqual } from 'node:util';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Condition, ResourceType } from '../apis/meta.js';
import { validateObject } from '../apis/validate.js';
import { applyStatus, setCondition } from '../runtime/status.js';
import { loggerFor } from '../util/log.js';

/** The one field manager of every status field the controller owns (agents own their node entries). */
export const CONTROLLER_FIELD_MANAGER = 'netwarden-controller';

/** Why an object cannot be acted on; becomes Ready=False with this reason and message. */
export interface Rejection {
  reason: string;
  message: string;
}

/** Checks the stored object again with our own validators (schema and CEL rules): the CRD in the
 * cluster may be older than this controller. */
export function schemaRejection(obj: unknown): Rejection | undefined {
  const errors = validateObject(obj);
  if (errors.length === 0) return undefined;
  return { reason: 'InvalidSpec', message: errors.map((e) => `${e.path}: ${e.message}`).join('; ') };
}

export function readyConditions(
  current: readonly Condition[] | undefined,
  generation: number,
  verdict: { rejection?: Rejection | undefined; reason: string; message: string },
  now: Date,
): Condition[] {
  const { rejection } = verdict;
  return setCondition(
    current,
    rejection
      ? { type: 'Ready', status: 'False', reason: rejection.reason, message: rejection.message, observedGeneration: generation }
      : { type: 'Ready', status: 'True', reason: verdict.reason, message: verdict.message, observedGeneration: generation },
    now,
  );
}

/** Writes the controller's part of the status unless every field already has that value. */
export async function applyControllerStatus(
  kc: KubeConfig,
  type: ResourceType,
  obj: { metadata: { name?: string; namespace?: string }; status?: object },
  desired: Record<string, unknown>,
): Promise<boolean> {
  const current = (obj.status ?? {}) as Record<string, unknown>;
  const changed = Object.keys(desired).filter((field) => !isDeepStrictEqual(current[field], desired[field]));
  if (changed.length === 0) return false;
  const { name = '', namespace } = obj.metadata;
  await applyStatus(kc, type, namespace ? { namespace, name } : { name }, desired, CONTROLLER_FIELD_MANAGER);
  loggerFor(`reconciler/${type.plural}`, namespace ? `${namespace}/${name}` : name).info('status written', { fields: changed });
  return true;
}
