// PacketCapture: the controller checks the selector and filters, computes the target pods (in the
// capture's own namespace only), derives the phase from the schedule and the agents' reports, and
// sums the agents' file entries into the printer columns (PHASE, PODS, FILES, SIZE). A finalizer
// keeps a deleted capture until every agent has removed its files and released its status entry.
import { isDeepStrictEqual } from 'node:util';
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import { PacketCaptureType } from '../../apis/meta.js';
import type { CaptureTarget, PacketCapture } from '../../apis/packetcapture.js';
import { parseSelector, selectorMatches, SelectorSyntaxError, type SelectorNode } from '../../apis/selector.js';
import { labelSelectorMatches } from '../../apis/labelselector.js';
import type { Informer } from '../../runtime/informer.js';
import type { Reconciler, ReconcileResult } from '../../runtime/controller.js';
import type { ObjectKey } from '../../runtime/keys.js';
import { ensureFinalizer, removeFinalizer } from '../../runtime/finalizers.js';
import { applyStatus, setCondition } from '../../runtime/status.js';
import { errorMessage, loggerFor } from '../../util/log.js';
import { applyControllerStatus, CONTROLLER_FIELD_MANAGER, readyConditions, schemaRejection, type Rejection } from '../common.js';
import { capturePhase } from './phase.js';
import { sumDurationTerms } from '../../util/duration.js';

/** Held until the agents have removed the capture's files from their nodes. */
export const CAPTURE_FILES_FINALIZER = 'netwarden.io/capture-files';
/** How often a deleted capture is looked at again while agents are still removing files. */
const DELETION_POLL_MS = 2_000;

export interface PacketCaptureReconcilerOptions {
  /** How long a deleted capture waits for the agents before the finalizer is removed anyway. */
  filesReleaseTimeoutMs?: number;
  ceilings?: ClusterCaptureCeilings;
  now?: () => Date;
}

/** Cluster-wide limits from the controller's flags that no PacketCapture may ask to exceed. */
export interface ClusterCaptureCeilings {
  maxBytesPerPod?: number | undefined;
  maxFiles?: number | undefined;
  maxDurationMs?: number | undefined;
}

/** NETWARDEN_CAPTURE_FILES_RELEASE_TIMEOUT, a duration such as "2m" or "30s". */
function releaseTimeoutFromEnv(): number | undefined {
  const text = process.env.NETWARDEN_CAPTURE_FILES_RELEASE_TIMEOUT;
  if (!text) return undefined;
  const ms = sumDurationTerms(text);
  if (ms > 0) return ms;
  loggerFor('reconciler/packetcaptures').warn('ignoring NETWARDEN_CAPTURE_FILES_RELEASE_TIMEOUT: not a duration like 2m or 30s', { value: text });
  return undefined;
}

export class PacketCaptureReconciler implements Reconciler {
  private readonly now: () => Date;
  private readonly releaseTimeoutMs: number;
  private readonly ceilings: ClusterCaptureCeilings;

  constructor(
    private readonly kc: KubeConfig,
    private readonly captures: Informer<PacketCapture>,
    private readonly pods: Informer<V1Pod>,
    opts: PacketCaptureReconcilerOptions = {},
  ) {
    this.now = opts.now ?? (() => new Date());
    this.releaseTimeoutMs = opts.filesReleaseTimeoutMs ?? releaseTimeoutFromEnv() ?? 120_000;
    this.ceilings = opts.ceilings ?? {};
  }

  async reconcile(key: ObjectKey): Promise<ReconcileResult | void> {
    const capture = this.captures.get(key.name, key.namespace);
    if (!capture) return;
    if (capture.metadata.deletionTimestamp) return this.finalize(capture);
    await ensureFinalizer(this.kc, PacketCaptureType, capture, CAPTURE_FILES_FINALIZER);
    const now = this.now();
    const plan = planCapture(capture, this.pods.list(capture.metadata.namespace), now, this.ceilings);
    if (!sameAsCurrent(capture, plan.status)) await applyControllerStatus(this.kc, PacketCaptureType, capture, plan.status);
    // Level-triggered, but the schedule is time: come back when the next boundary passes.
    return plan.nextBoundary ? { requeueAfterMs: Math.max(0, plan.nextBoundary.getTime() - now.getTime()) + 100 } : undefined;
  }

  /**
   * The agents see the deletion, stop, remove their files and drop their status.files entry. Once
   * none is left the finalizer goes; after the timeout it goes anyway, with FilesRemoved=False
   * naming the nodes that did not answer (their files may still be on disk).
   */
  private async finalize(capture: PacketCapture): Promise<ReconcileResult | void> {
    const { namespace = '', name = '' } = capture.metadata;
    const log = loggerFor('reconciler/packetcaptures', `${namespace}/${name}`);
    if (!capture.metadata.finalizers?.includes(CAPTURE_FILES_FINALIZER)) return;
    const remaining = (capture.status?.files ?? []).map((e) => e.node);
    if (remaining.length === 0) {
      await removeFinalizer(this.kc, PacketCaptureType, capture, CAPTURE_FILES_FINALIZER);
      log.info('capture files removed on every node; finalizer released');
      return;
    }
    const deletedAt = new Date(capture.metadata.deletionTimestamp ?? this.now()).getTime();
    const waited = this.now().getTime() - deletedAt;
    if (waited < this.releaseTimeoutMs) return { requeueAfterMs: Math.min(DELETION_POLL_MS, this.releaseTimeoutMs - waited + 100) };
    const message = `node(s) ${remaining.join(', ')} did not remove their capture files within ${Math.round(this.releaseTimeoutMs / 1000)}s; they may still be on disk under the agent's captures directory`;
    const conditions = setCondition(capture.status?.conditions, { type: 'FilesRemoved', status: 'False', reason: 'AgentsDidNotAnswer', message }, this.now());
    await applyStatus(this.kc, PacketCaptureType, { namespace, name }, { conditions }, CONTROLLER_FIELD_MANAGER).catch((err: unknown) =>
      log.warn('could not write the FilesRemoved condition', { error: errorMessage(err) }),
    );
    log.warn('releasing the finalizer without every node\'s confirmation', { nodes: remaining, reason: message });
    await removeFinalizer(this.kc, PacketCaptureType, { ...capture, metadata: { ...capture.metadata, resourceVersion: undefined } }, CAPTURE_FILES_FINALIZER);
  }
}

/** The agents add `interface` to the controller's target entries; that is no reason to write again. */
function sameAsCurrent(capture: PacketCapture, desired: Record<string, unknown>): boolean {
  const current = { ...(capture.status ?? {}) } as Record<string, unknown>;
  current.targets = (capture.status?.targets ?? []).map(({ pod, node, ip }) => ({ pod, node, ip }));
  return Object.keys(desired).every((field) => isDeepStrictEqual(current[field], desired[field]));
}

export interface CapturePlan {
  status: Record<string, unknown>;
  nextBoundary?: Date | undefined;
}

export function planCapture(capture: PacketCapture, podsInNamespace: readonly V1Pod[], now: Date, ceilings: ClusterCaptureCeilings = {}): CapturePlan {
  const generation = capture.metadata.generation ?? 0;
  const selection = compileSelection(capture);
  const rejection =
    schemaRejection(capture) ??
    (selection instanceof Error ? { reason: 'InvalidSelector', message: selection.message } : undefined) ??
    filterRejection(capture) ??
    ceilingRejection(capture, ceilings);
  const targets = rejection || selection instanceof Error ? [] : selectTargets(podsInNamespace, selection);
  const { phase, message, nextBoundary } = rejection ? { phase: 'Failed' as const, message: rejection.message, nextBoundary: undefined } : capturePhase(capture, targets.length, now);
  const files = capture.status?.files ?? [];
  return {
    nextBoundary,
    status: {
      observedGeneration: generation,
      conditions: readyConditions(capture.status?.conditions, generation, { rejection, reason: phase, message }, now),
      phase,
      targets,
      podCount: targets.length,
      fileCount: files.reduce((sum, f) => sum + (f.fileNames?.length ?? 0), 0),
      totalBytes: files.reduce((sum, f) => sum + (f.bytes ?? 0), 0),
    },
  };
}

type PodPredicate = (pod: V1Pod) => boolean;

function compileSelection(capture: PacketCapture): PodPredicate | Error {
  const { podSelector } = capture.spec;
  if (podSelector) return (pod) => labelSelectorMatches(podSelector, pod.metadata?.labels ?? {});
  let selector: SelectorNode;
  try {
    selector = parseSelector(capture.spec.selector ?? 'all()');
  } catch (err) {
    return err instanceof SelectorSyntaxError ? err : new Error(`spec.selector: ${errorMessage(err)}`);
  }
  return (pod) => selectorMatches(selector, pod.metadata?.labels ?? {});
}

/** Pods that can be captured: selected, bound to a node, with an IP, not finished. */
function selectTargets(pods: readonly V1Pod[], selected: PodPredicate): CaptureTarget[] {
  return pods
    .filter((p) => selected(p) && p.spec?.nodeName && p.status?.podIP && !['Succeeded', 'Failed'].includes(p.status?.phase ?? ''))
    .map((p) => ({ pod: p.metadata?.name ?? '', node: p.spec?.nodeName ?? '', ip: p.status?.podIP ?? '' }))
    .sort((a, b) => a.pod.localeCompare(b.pod));
}

/** The schema cannot see that a port range is reversed inside a protocol that has no ports, etc. */
function filterRejection(capture: PacketCapture): Rejection | undefined {
  for (const [i, filter] of (capture.spec.filters ?? []).entries()) {
    for (const [j, port] of (filter.ports ?? []).entries()) {
      const [low, high] = String(port).split(':').map(Number);
      if (high !== undefined && low !== undefined && low > high) {
        return { reason: 'InvalidFilter', message: `spec.filters[${i}].ports[${j}]: range ${port} has its low end above its high end` };
      }
    }
  }
  return undefined;
}

/**
 * A capture that asks for more than the cluster allows is refused as a whole (rather than
 * silently cut short), with the limit it exceeds; unset limits in the spec mean "the ceiling".
 */
export function ceilingRejection(capture: PacketCapture, ceilings: ClusterCaptureCeilings): Rejection | undefined {
  const { maxBytesPerPod, maxFiles, duration, startTime, endTime } = capture.spec;
  const exceeds = (field: string, asked: number, ceiling: number | undefined, flag: string): Rejection | undefined =>
    ceiling !== undefined && asked > ceiling
      ? { reason: 'ExceedsClusterLimit', message: `${field} ${asked} exceeds the cluster limit ${ceiling} (controller flag ${flag})` }
      : undefined;
  const start = startTime ? Date.parse(startTime) : Date.parse(capture.metadata.creationTimestamp ? String(capture.metadata.creationTimestamp) : '');
  const askedMs = duration ? sumDurationTerms(duration) : endTime && Number.isFinite(start) ? Date.parse(endTime) - start : undefined;
  return (
    (maxBytesPerPod !== undefined ? exceeds('spec.maxBytesPerPod', maxBytesPerPod, ceilings.maxBytesPerPod, '--capture-max-bytes-per-pod') : undefined) ??
    (maxFiles !== undefined ? exceeds('spec.maxFiles', maxFiles, ceilings.maxFiles, '--capture-max-files') : undefined) ??
    (askedMs !== undefined ? exceeds('the capture duration in ms', askedMs, ceilings.maxDurationMs, '--capture-max-duration') : undefined)
  );
}
