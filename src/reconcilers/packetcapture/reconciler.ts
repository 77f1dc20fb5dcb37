// PacketCapture: the controller checks the selector and filters, computes the target pods (in the
// capture's own namespace only), derives the phase from the schedule and the agents' reports, and
// sums the agents' file entries into the printer columns (PHASE, PODS, FILES, SIZE). A finalizer
// keeps a deleted capture until every agent has removed its files and released its status entry.
import { isDeepStrictEqual } from 'node:util';
import type { KubeConfig } from '@kubernetes/client-node';
import { PacketCaptureType } from '../../apis/meta.js';
import type { Condition } from '../../apis/meta.js';
import type { CapturePhase, CaptureTarget, PacketCapture } from '../../apis/packetcapture.js';
import { parseSelector, selectorMatches, SelectorSyntaxError, type SelectorNode } from '../../apis/selector.js';
import { labelSelectorMatches } from '../../apis/labelselector.js';
import type { CachedPod } from '../../runtime/cachedpod.js';
import type { Informer } from '../../runtime/informer.js';
import type { Reconciler, ReconcileResult } from '../../runtime/controller.js';
import type { ObjectKey } from '../../runtime/keys.js';
import { ensureFinalizer, removeFinalizer } from '../../runtime/finalizers.js';
import { applyStatus, setCondition } from '../../runtime/status.js';
import { errorMessage, loggerFor } from '../../util/log.js';
import { applyControllerStatus, CONTROLLER_FIELD_MANAGER, readyConditions, schemaRejection, type Rejection } from '../common.js';
import { capturePhase } from './phase.js';
import { quotaFor, type EffectiveQuota, type QuotaConfig } from '../../apis/capturequota.js';
import { QUOTA_CONDITION, quotaVerdict, wantsToRun } from './quota.js';
import { sumDurationTerms } from '../../util/duration.js';
import { captureQuotaExceeded } from './metrics.js';
import { FILES_EXPIRED_CONDITION } from '../../apis/captureretention.js';
import { deleteCustomObject } from '../../runtime/finalizers.js';
import { nodesWithFiles } from './phase.js';
import { planRetention, retentionConditions } from './retention.js';

/** The reason of the Quota condition, if any. */
function quotaReason(conditions: unknown): string | undefined {
  return (conditions as Condition[] | undefined)?.find((c) => c.type === QUOTA_CONDITION)?.reason;
}

/** Held until the agents have removed the capture's files from their nodes. */
export const CAPTURE_FILES_FINALIZER = 'netwarden.io/capture-files';
/** A quota decision overrides the cache this long at most: by then its status write is back. */
const DECISION_TTL_MS = 60_000;
/** How often a deleted capture is looked at again while agents are still removing files. */
const DELETION_POLL_MS = 2_000;

export interface PacketCaptureReconcilerOptions {
  /** How long a deleted capture waits for the agents before the finalizer is removed anyway. */
  filesReleaseTimeoutMs?: number;
  ceilings?: ClusterCaptureCeilings;
  /** The namespace quotas (the admin's ConfigMap); no quota when unset. */
  quotas?: () => QuotaConfig;
  now?: () => Date;
  /** Removes a capture's files on one node (the agents' DELETE); expired files stay without it. */
  removeFiles?: (node: string, namespace: string, name: string, uid: string | undefined) => Promise<void>;
}

/** Cluster-wide limits from the controller's flags that no PacketCapture may ask to exceed. */
export interface ClusterCaptureCeilings {
  maxBytesPerPod?: number | undefined;
  maxFiles?: number | undefined;
  maxDurationMs?: number | undefined;
  /** Nodes one capture may span (--capture-max-nodes): each writes its own entry into status.files. */
  maxNodes?: number | undefined;
}

/** Nodes a capture may span unless --capture-max-nodes says otherwise: 500 entries of status.files stay well inside etcd's 1.5 MiB. */
export const DEFAULT_CAPTURE_MAX_NODES = 500;
/** status.targets' maxItems in the CRD: more would make the status write fail. */
export const MAX_CAPTURE_TARGETS = 5000;

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
  private readonly quotas: (() => QuotaConfig) | undefined;
  private readonly removeFiles: PacketCaptureReconcilerOptions['removeFiles'];
  /**
   * This controller's latest quota decision per capture uid. The cache shows a decision only once
   * its status write comes back; until then the next verdict in the namespace must see it, or two
   * captures could take the last place.
   */
  private readonly decisions = new Map<string, { admitted: boolean; at: number }>();
  /**
   * Captures (by UID) held back by their namespace's quota and counted in the metric: each is
   * counted once until it is admitted, whatever the cache shows at each recheck (a lagging cache
   * had it counted twice).
   */
  private readonly heldByQuota = new Set<string>();

  constructor(
    private readonly kc: KubeConfig,
    private readonly captures: Informer<PacketCapture>,
    private readonly pods: Informer<CachedPod>,
    opts: PacketCaptureReconcilerOptions = {},
  ) {
    this.now = opts.now ?? (() => new Date());
    this.releaseTimeoutMs = opts.filesReleaseTimeoutMs ?? releaseTimeoutFromEnv() ?? 120_000;
    this.ceilings = opts.ceilings ?? {};
    this.quotas = opts.quotas;
    this.removeFiles = opts.removeFiles;
  }

  async reconcile(key: ObjectKey): Promise<ReconcileResult | void> {
    const capture = this.captures.get(key.name, key.namespace);
    if (!capture) return;
    if (capture.metadata.deletionTimestamp) {
      this.heldByQuota.delete(capture.metadata.uid ?? '');
      return this.finalize(capture);
    }
    await ensureFinalizer(this.kc, PacketCaptureType, capture, CAPTURE_FILES_FINALIZER);
    const now = this.now();
    const namespace = capture.metadata.namespace ?? '';
    const quota = this.quotas ? { captures: this.captures.list(namespace).map((c) => this.asDecided(c, now)), quota: quotaFor(this.quotas(), namespace) } : undefined;
    const decided = this.asDecided(capture, now);
    const plan = planCapture(decided, this.pods.list(namespace), now, this.ceilings, quota);
    this.countQuotaHold(capture.metadata.uid ?? '', namespace, quotaReason(plan.status.conditions) === 'QuotaExceeded');
    this.recordDecision(capture, plan, now);
    if (plan.expired) {
      if (capture.spec.deleteObject) return this.deleteExpired(capture);
      plan.status.conditions = await this.expireFiles(capture, plan.status.conditions as Condition[], now);
    }
    if (!sameAsCurrent(capture, plan.status)) await applyControllerStatus(this.kc, PacketCaptureType, capture, plan.status);
    // Level-triggered, but the schedule is time: come back when the next boundary passes.
    return plan.nextBoundary ? { requeueAfterMs: Math.max(0, plan.nextBoundary.getTime() - now.getTime()) + 100 } : undefined;
  }

  /**
   * ttlSecondsAfterFinished passed: each node that still lists files is asked to remove them (its
   * agent then releases its status.files entry). FilesExpired says what was done; a node that did
   * not answer is asked again at the next reconcile (the controller's backoff on the error).
   */
  private async expireFiles(capture: PacketCapture, conditions: Condition[], now: Date): Promise<Condition[]> {
    const { namespace = '', name = '', uid } = capture.metadata;
    const generation = capture.metadata.generation ?? 0;
    const nodes = nodesWithFiles(capture);
    const ttl = `ttlSecondsAfterFinished (${capture.spec.ttlSecondsAfterFinished}s) passed at ${capture.status?.filesExpireAt ?? now.toISOString()}`;
    const already = conditions.find((c) => c.type === FILES_EXPIRED_CONDITION && c.status === 'True');
    // One message whichever reconcile sees the last entry go (the agents' release can reach the
    // cache before this controller's own write does).
    const removed: Omit<Condition, 'lastTransitionTime'> = { type: FILES_EXPIRED_CONDITION, status: 'True', reason: 'TTLExpired', message: `${ttl}: the files were deleted on every node`, observedGeneration: generation };
    if (nodes.length === 0) return already ? conditions : setCondition(conditions, removed, now);
    if (!this.removeFiles) {
      return setCondition(conditions, { type: FILES_EXPIRED_CONDITION, status: 'False', reason: 'NoAgentClient', message: `${ttl}, but this controller cannot reach the agents (no HTTPS API configured): delete the files with kubectl netwarden capture delete`, observedGeneration: generation }, now);
    }
    const results = await Promise.allSettled(nodes.map((node) => this.removeFiles!(node, namespace, name, uid)));
    // 404: that agent no longer knows the capture's files (removed already, its entry not yet gone).
    const failed = results.flatMap((r, i) => (r.status === 'rejected' && (r.reason as { status?: number }).status !== 404 ? [`${nodes[i]}: ${errorMessage(r.reason)}`] : []));
    const log = loggerFor('reconciler/packetcaptures', `${namespace}/${name}`);
    if (failed.length > 0) {
      log.warn('could not remove expired capture files on every node', { failed });
      const message = `${ttl}: files removed on ${nodes.length - failed.length} of ${nodes.length} node(s); ${failed.join('; ')}`.slice(0, 4096);
      await applyStatus(this.kc, PacketCaptureType, { namespace, name }, { conditions: setCondition(conditions, { type: FILES_EXPIRED_CONDITION, status: 'False', reason: 'AgentsDidNotAnswer', message, observedGeneration: generation }, now) }, CONTROLLER_FIELD_MANAGER).catch(() => undefined);
      throw new Error(message);
    }
    log.info('capture files expired: removed on every node', { nodes });
    return setCondition(conditions, removed, now);
  }

  /** deleteObject: the object goes; the finalizer still waits for the agents to remove the files. */
  private async deleteExpired(capture: PacketCapture): Promise<void> {
    const { namespace = '', name = '' } = capture.metadata;
    await deleteCustomObject(this.kc, PacketCaptureType, capture);
    loggerFor('reconciler/packetcaptures', `${namespace}/${name}`).info('capture expired: deleted (spec.deleteObject)', { ttlSecondsAfterFinished: capture.spec.ttlSecondsAfterFinished });
  }

  private countQuotaHold(uid: string, namespace: string, held: boolean): void {
    if (!held) {
      this.heldByQuota.delete(uid);
      return;
    }
    if (this.heldByQuota.has(uid)) return;
    this.heldByQuota.add(uid);
    captureQuotaExceeded.inc({ namespace });
  }

  /** The capture with this controller's latest quota decision, should the cache not show it yet. */
  private asDecided(capture: PacketCapture, now: Date): PacketCapture {
    const decided = this.decisions.get(capture.metadata.uid ?? '');
    if (!decided || now.getTime() - decided.at > DECISION_TTL_MS) return capture;
    const current = capture.status?.conditions?.find((c) => c.type === QUOTA_CONDITION);
    if ((current?.status === 'True') === decided.admitted) return capture;
    const status = decided.admitted ? 'True' : 'False';
    const conditions = setCondition(capture.status?.conditions, { type: QUOTA_CONDITION, status, reason: decided.admitted ? 'Admitted' : 'QuotaExceeded', message: current?.message ?? '' }, now);
    return { ...capture, status: { ...capture.status, conditions } };
  }

  private recordDecision(capture: PacketCapture, plan: CapturePlan, now: Date): void {
    const condition = (plan.status.conditions as Condition[] | undefined)?.find((c) => c.type === QUOTA_CONDITION);
    if (condition) this.decisions.set(capture.metadata.uid ?? '', { admitted: condition.status === 'True', at: now.getTime() });
    for (const [uid, d] of this.decisions) if (now.getTime() - d.at > DECISION_TTL_MS) this.decisions.delete(uid);
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
  /** ttlSecondsAfterFinished has passed: the files (or, with deleteObject, the object) go. */
  expired?: boolean;
}

/** The namespace's captures and quota, for the namespace quota's verdict. */
export interface QuotaInput {
  captures: readonly PacketCapture[];
  quota: EffectiveQuota;
}

/** How often a capture held back by a quota is looked at again without any event. */
export const QUOTA_RECHECK_MS = 15_000;

export function planCapture(capture: PacketCapture, podsInNamespace: readonly CachedPod[], now: Date, ceilings: ClusterCaptureCeilings = {}, quota?: QuotaInput): CapturePlan {
  const generation = capture.metadata.generation ?? 0;
  const selection = compileSelection(capture);
  let rejection =
    schemaRejection(capture) ??
    (selection instanceof Error ? { reason: 'InvalidSelector', message: selection.message } : undefined) ??
    filterRejection(capture) ??
    ceilingRejection(capture, ceilings);
  const candidates = rejection || selection instanceof Error ? [] : selectTargets(podsInNamespace, selection);
  const tooWide = spanRejection(candidates, ceilings.maxNodes ?? DEFAULT_CAPTURE_MAX_NODES);
  if (tooWide) rejection = tooWide;
  const selected = tooWide ? [] : candidates;
  const verdict = !rejection && quota && wantsToRun(capture, now) ? quotaVerdict(capture, quota.captures, quota.quota, now) : undefined;
  const queued = verdict?.admitted === false;
  // Held back: no targets, so no agent captures it; its files stay.
  const targets = queued ? [] : selected;
  let conditions = capture.status?.conditions;
  if (verdict) conditions = setCondition(conditions, { type: QUOTA_CONDITION, status: verdict.admitted ? 'True' : 'False', reason: verdict.admitted ? 'Admitted' : 'QuotaExceeded', message: verdict.message, observedGeneration: generation }, now);
  else if (rejection && conditions?.some((c) => c.type === QUOTA_CONDITION)) conditions = setCondition(conditions, { type: QUOTA_CONDITION, status: 'False', reason: 'Rejected', message: rejection.message, observedGeneration: generation }, now);
  const nodes = nodeReports(capture);
  if (nodes.refused.length > 0 || (capture.status?.files ?? []).length > 0) conditions = setCondition(conditions, targetsVerified(nodes.refused, generation), now);
  let { phase, message, nextBoundary } = rejection ? { phase: 'Failed' as CapturePhase, message: rejection.message, nextBoundary: undefined as Date | undefined } : capturePhase(capture, targets.length, now);
  let notReady: Rejection | undefined = rejection;
  if (queued) {
    ({ phase, message } = { phase: 'Queued', message: verdict.message });
    notReady = { reason: 'QuotaExceeded', message: verdict.message };
  } else if (!rejection && nodes.held.length > 0 && phase !== 'Finished') {
    // A node quota holds some pods back; they start by themselves when that node has room.
    notReady = { reason: 'QuotaExceeded', message: nodes.held.join('; ').slice(0, 4096) };
    if (!nodes.capturing) phase = 'Queued';
  }
  if (notReady?.reason === 'QuotaExceeded') nextBoundary = earliest(nextBoundary, new Date(now.getTime() + QUOTA_RECHECK_MS));
  const files = capture.status?.files ?? [];
  const retention = planRetention(capture, phase, now);
  if (retention.nextBoundary) nextBoundary = earliest(nextBoundary, retention.nextBoundary);
  conditions = retentionConditions(capture, conditions, generation, now);
  return {
    nextBoundary,
    expired: retention.expired,
    status: {
      observedGeneration: generation,
      conditions: readyConditions(conditions, generation, { rejection: notReady, reason: phase, message }, now),
      phase,
      targets,
      podCount: targets.length,
      fileCount: files.reduce((sum, f) => sum + (f.fileNames?.length ?? 0), 0),
      totalBytes: files.reduce((sum, f) => sum + (f.bytes ?? 0), 0),
      ...retention.status,
    },
  };
}

/** What the agents' entries say about pods they do not capture. */
function nodeReports(capture: PacketCapture): { held: string[]; refused: string[]; capturing: boolean } {
  const held: string[] = [];
  const refused: string[] = [];
  for (const entry of capture.status?.files ?? []) {
    for (const n of entry.notCaptured ?? []) (n.reason === 'QuotaExceeded' ? held : refused).push(`node ${entry.node}: pod ${n.pod}: ${n.message ?? n.reason}`);
  }
  const capturing = (capture.status?.files ?? []).some((e) => e.state === 'Capturing' || e.state === 'WaitingForTraffic');
  return { held, refused, capturing };
}

/** TargetsVerified: every node found the IPs it was given owned by the namespace's pods there. */
function targetsVerified(refused: readonly string[], generation: number): Omit<Condition, 'lastTransitionTime'> {
  return refused.length > 0
    ? { type: 'TargetsVerified', status: 'False', reason: 'TargetNotOwned', message: `not captured: ${refused.join('; ')}`.slice(0, 4096), observedGeneration: generation }
    : { type: 'TargetsVerified', status: 'True', reason: 'TargetsOwned', message: 'every node found the target IPs owned by running pods of this namespace', observedGeneration: generation };
}

function earliest(a: Date | undefined, b: Date): Date {
  return a && a < b ? a : b;
}

type PodPredicate = (pod: CachedPod) => boolean;

function compileSelection(capture: PacketCapture): PodPredicate | Error {
  const { podSelector } = capture.spec;
  if (podSelector) return (pod) => labelSelectorMatches(podSelector, pod.labels);
  let selector: SelectorNode;
  try {
    selector = parseSelector(capture.spec.selector ?? 'all()');
  } catch (err) {
    return err instanceof SelectorSyntaxError ? err : new Error(`spec.selector: ${errorMessage(err)}`);
  }
  return (pod) => selectorMatches(selector, pod.labels);
}

/** Pods that can be captured: selected, bound to a node, with an IP, not finished. */
function selectTargets(pods: readonly CachedPod[], selected: PodPredicate): CaptureTarget[] {
  return pods
    .filter((p) => selected(p) && p.nodeName && p.podIP && !['Succeeded', 'Failed'].includes(p.phase ?? ''))
    .map((p) => ({ pod: p.name, node: p.nodeName ?? '', ip: p.podIP ?? '' }))
    .sort((a, b) => a.pod.localeCompare(b.pod));
}

/**
 * Every node a capture spans writes its own entry into status.files (its files, counters, state):
 * a capture over thousands of nodes would outgrow etcd's object limit and be rewritten by each of
 * them. Refused as a whole, like the other ceilings, naming how wide it is.
 */
function spanRejection(targets: readonly CaptureTarget[], maxNodes: number): Rejection | undefined {
  const nodes = new Set(targets.map((t) => t.node)).size;
  if (targets.length > MAX_CAPTURE_TARGETS) {
    return { reason: 'ExceedsClusterLimit', message: `spec.selector selects ${targets.length} pods; a capture takes at most ${MAX_CAPTURE_TARGETS}: narrow the selector` };
  }
  if (nodes > maxNodes) {
    return { reason: 'ExceedsClusterLimit', message: `spec.selector selects ${targets.length} pods on ${nodes} nodes; a capture spans at most ${maxNodes} nodes (controller flag --capture-max-nodes): narrow the selector` };
  }
  return undefined;
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
