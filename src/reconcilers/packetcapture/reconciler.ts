// PacketCapture: the controller checks the selector and filters, computes the target pods (in the
// capture's own namespace only), derives the phase from the schedule and the agents' reports, and
// sums the agents' file entries into the printer columns (PHASE, PODS, FILES, SIZE).
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import { PacketCaptureType } from '../../apis/meta.js';
import type { CapturePhase, CaptureTarget, PacketCapture } from '../../apis/packetcapture.js';
import { parseSelector, selectorMatches, SelectorSyntaxError, type SelectorNode } from '../../apis/selector.js';
import { labelSelectorMatches } from '../../apis/labelselector.js';
import type { Informer } from '../../controllers/informer.js';
import type { ObjectKey, Reconciler, ReconcileResult } from '../../controllers/controller.js';
import { errorMessage } from '../../util/log.js';
import { applyControllerStatus, readyConditions, schemaRejection, type Rejection } from '../common.js';

export class PacketCaptureReconciler implements Reconciler {
  constructor(
    private readonly kc: KubeConfig,
    private readonly captures: Informer<PacketCapture>,
    private readonly pods: Informer<V1Pod>,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async reconcile(key: ObjectKey): Promise<ReconcileResult | void> {
    const capture = this.captures.get(key.name, key.namespace);
    if (!capture) return;
    const now = this.now();
    const plan = planCapture(capture, this.pods.list(capture.metadata.namespace), now);
    await applyControllerStatus(this.kc, PacketCaptureType, capture, plan.status);
    // Level-triggered, but the schedule is time: come back when the next boundary passes.
    return plan.nextBoundary ? { requeueAfterMs: Math.max(0, plan.nextBoundary.getTime() - now.getTime()) + 100 } : undefined;
  }
}

export interface CapturePlan {
  status: Record<string, unknown>;
  nextBoundary?: Date | undefined;
}

export function planCapture(capture: PacketCapture, podsInNamespace: readonly V1Pod[], now: Date): CapturePlan {
  const generation = capture.metadata.generation ?? 0;
  const selection = compileSelection(capture);
  const rejection = schemaRejection(capture) ?? (selection instanceof Error ? { reason: 'InvalidSelector', message: selection.message } : undefined) ?? filterRejection(capture);
  const targets = rejection || selection instanceof Error ? [] : selectTargets(podsInNamespace, selection);
  const { phase, nextBoundary } = rejection ? { phase: 'Failed' as const, nextBoundary: undefined } : schedulePhase(capture, targets, now);
  const files = capture.status?.files ?? [];
  return {
    nextBoundary,
    status: {
      observedGeneration: generation,
      conditions: readyConditions(capture.status?.conditions, generation, { rejection, reason: phase, message: phaseMessage(phase, targets.length) }, now),
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

function schedulePhase(capture: PacketCapture, targets: readonly CaptureTarget[], now: Date): { phase: CapturePhase; nextBoundary?: Date } {
  const start = capture.spec.startTime ? new Date(capture.spec.startTime) : undefined;
  const end = capture.spec.endTime ? new Date(capture.spec.endTime) : undefined;
  if (end && end <= now) return { phase: 'Finished' };
  if (start && start > now) return { phase: 'Scheduled', nextBoundary: start };
  const capturing = (capture.status?.files ?? []).some((f) => f.state === 'Capturing');
  return { phase: capturing && targets.length > 0 ? 'Capturing' : 'WaitingForTraffic', nextBoundary: end };
}

function phaseMessage(phase: CapturePhase, pods: number): string {
  switch (phase) {
    case 'Scheduled':
      return `scheduled; ${pods} pod(s) selected`;
    case 'Finished':
      return 'the end time has passed';
    default:
      return `${pods} pod(s) selected`;
  }
}
