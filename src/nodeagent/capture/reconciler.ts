// The agent's PacketCapture reconciler: runs this node's part of each capture (see session.ts) and
// owns this node's status entries: its status.files item and the `interface` of its pods' targets.
// A capture's files are its UID's: a capture of the same name from before is never taken over.
import { existsSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import { PacketCaptureType } from '../../apis/meta.js';
import type { CaptureFiles, CaptureTarget, PacketCapture } from '../../apis/packetcapture.js';
import type { Reconciler, ReconcileResult } from '../../runtime/controller.js';
import type { ObjectKey } from '../../runtime/keys.js';
import type { Informer } from '../../runtime/informer.js';
import { applyStatus } from '../../runtime/status.js';
import { errorMessage, loggerFor } from '../../util/log.js';
import { agentFieldManager, type AgentContext } from '../context.js';
import { planEviction, type EvictionCandidate, type NodeCaptureBudget } from './budget.js';
import { isFinishedCapturePhase } from '../../apis/captureretention.js';
import { agentExportNode } from './export.js';
import { planFor, type CaptureCeilings } from './plan.js';
import { CaptureSession, type LocalTarget, type SessionNode } from './session.js';
import { captureDirectory, isCaptureUid, removeCaptureDirectory, removeCaptureFiles, removeStaleEntries, type CaptureRef } from './store.js';

/** Status writes at most this often per capture (the counters change with every packet). */
export const STATUS_INTERVAL_MS = 2_000;
/**
 * Counter updates of all the capture's nodes together stay under 1000 / COUNTER_SPACING_PER_NODE_MS
 * (5) writes per second: each node waits this long per node the capture spans, and at least
 * STATUS_INTERVAL_MS. Each write is sent to every agent watching PacketCaptures, so a per-node
 * interval alone would grow with the square of the nodes.
 */
export const COUNTER_SPACING_PER_NODE_MS = 200;

/** How long this node holds back a counter-only change of its entry. */
export function counterInterval(capture: PacketCapture): number {
  const nodes = new Set((capture.status?.targets ?? []).map((t) => t.node)).size;
  return Math.max(STATUS_INTERVAL_MS, nodes * COUNTER_SPACING_PER_NODE_MS);
}

interface Published {
  body: object;
  at: number;
}

export class CaptureAgentReconciler implements Reconciler {
  private readonly sessions = new Map<string, CaptureSession>();
  private readonly published = new Map<string, Published>();
  /** uids whose files were deleted on request: their capture does not start again. */
  private readonly discarded = new Set<string>();
  private readonly log = loggerFor('capture-agent');
  private readonly node: SessionNode;

  constructor(
    private readonly ctx: AgentContext,
    private readonly captures: Informer<PacketCapture>,
    /** This node's pods (spec.nodeName=<node>): who owns which IP here. */
    pods: Pick<Informer<V1Pod>, 'list'>,
    private readonly ceilings: CaptureCeilings,
    budget: NodeCaptureBudget,
    private readonly enqueue: (key: ObjectKey) => void,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.node = { name: ctx.nodeName, stateDir: ctx.stateDir, budget, pods: () => pods.list(), exportNode: agentExportNode(ctx.kc, ctx.namespace, ctx.nodeName) };
    budget.setEvictor((needed, reason) => this.evict(needed, reason));
  }

  /**
   * The node's byte budget is reached: finished captures' files go, the oldest finished first,
   * until `needed` bytes are free. A capture that still runs here keeps every file (even its
   * rotated ones): when the finished ones are not enough, nothing is deleted and the new file
   * waits, as without eviction. Files still to be uploaded stay too.
   */
  private evict(needed: number, reason: string): number {
    const candidates: EvictionCandidate[] = [];
    const byKey = new Map<string, CaptureSession>();
    for (const session of this.sessions.values()) {
      if (session.running()) continue;
      const capture = this.captures.get(session.ref.name, session.ref.namespace);
      if (!capture || capture.metadata.uid !== session.uid) continue;
      if (!session.hasEnded() && !isFinishedCapturePhase(capture.status?.phase)) continue;
      const key = `${keyOf(session.ref)}/${session.uid}`;
      const finishedAt = Date.parse(capture.status?.finishedAt ?? '') || planFor(capture, this.ceilings).schedule.endAt?.getTime() || Date.parse(String(capture.metadata.creationTimestamp ?? '')) || 0;
      candidates.push({ key, finishedAt, files: session.evictable() });
      byKey.set(key, session);
    }
    let freed = 0;
    for (const step of planEviction(candidates, needed)) {
      const session = byKey.get(step.key)!;
      freed += session.evict(step.fileNames, reason);
      this.enqueue(session.ref);
    }
    return freed;
  }

  /**
   * The current capture of this name, as this agent knows it, when its files may be served: the
   * UID a request names (if any) must be its UID. Undefined when there is none.
   */
  current(ref: CaptureRef, uid?: string): { uid: string; dir: string; session?: CaptureSession | undefined } | undefined {
    const capture = this.captures.get(ref.name, ref.namespace);
    const current = capture?.metadata.uid;
    if (!current || !isCaptureUid(current) || (uid !== undefined && uid !== current) || this.discarded.has(current)) return undefined;
    const session = this.sessions.get(keyOf(ref));
    return { uid: current, dir: captureDirectory(this.ctx.stateDir, ref, current), session: session?.uid === current ? session : undefined };
  }

  /** DELETE of the files: stop on this node, remove the directory, release the status entry. */
  discardFiles(ref: CaptureRef): void {
    const key = keyOf(ref);
    const session = this.sessions.get(key);
    const uid = this.captures.get(ref.name, ref.namespace)?.metadata.uid;
    if (uid) this.discarded.add(uid);
    if (session) session.discard();
    if (uid && isCaptureUid(uid)) removeCaptureFiles(this.ctx.stateDir, ref, uid);
    this.node.budget.invalidate();
    this.sessions.delete(key);
    this.enqueue(ref);
  }

  async reconcile(key: ObjectKey): Promise<ReconcileResult | void> {
    const ref = { namespace: key.namespace ?? '', name: key.name };
    const capture = this.captures.get(key.name, key.namespace);
    if (!capture || capture.metadata.deletionTimestamp) return this.release(ref, capture);
    const now = this.now();
    const plan = planFor(capture, this.ceilings);
    const targets = localTargets(capture, this.ctx.nodeName);
    const uid = capture.metadata.uid ?? '';
    if (!isCaptureUid(uid)) throw new Error(`packetcapture ${keyOf(ref)} has no usable metadata.uid (${JSON.stringify(uid)})`);
    let session = this.sessions.get(keyOf(ref));
    if (session && session.uid !== uid) {
      // Deleted and re-created under the same name while we looked away: the old files go.
      session.discard();
      this.sessions.delete(keyOf(ref));
      session = undefined;
    }
    if (!session) this.removeStale(ref, uid);
    if (!session && (targets.length > 0 || this.hasDirectory(ref, uid)) && !this.discarded.has(uid)) {
      const createdAt = new Date(capture.metadata.creationTimestamp ?? now).getTime();
      session = new CaptureSession(ref, uid, createdAt, this.node, () => this.enqueue(ref));
      this.sessions.set(keyOf(ref), session);
    }
    if (!session) return this.publish(capture, undefined, []);

    const { startAt, endAt } = plan.schedule;
    const scheduled = now < startAt;
    if (endAt && now >= endAt) session.end(`the end of the capture (${endAt.toISOString()}) has passed`);
    else if (!scheduled) await session.run(capture, plan, targets);
    session.flush();
    session.configureExport(capture.spec.export?.s3);

    const interfaces = session.interfaces().filter((t) => targets.some((l) => l.pod === t.pod));
    const wait = await this.publish(capture, session.filesEntry(scheduled, plan.clampNotes), interfaces);
    const next = [wait?.requeueAfterMs, scheduled ? startAt.getTime() - now.getTime() : undefined, endAt && now < endAt ? endAt.getTime() - now.getTime() : undefined];
    // While the window is open, look again regularly: counters, new pods, routes that appear.
    if (!scheduled && !(endAt && now >= endAt) && targets.length > 0) next.push(STATUS_INTERVAL_MS);
    // Uploads under way: their progress reaches the status entry.
    if (session.exporting()) next.push(STATUS_INTERVAL_MS);
    const soonest = Math.min(...next.filter((n): n is number => n !== undefined && n >= 0));
    return Number.isFinite(soonest) ? { requeueAfterMs: Math.max(soonest, 50) } : undefined;
  }

  /** The resource is gone or going: stop, delete this node's files, give up its entries. */
  private async release(ref: CaptureRef, capture: PacketCapture | undefined): Promise<void> {
    const key = keyOf(ref);
    const session = this.sessions.get(key);
    if (session) session.discard();
    // Every UID's files: a deleted capture's, and any left by an older one of the same name.
    removeCaptureDirectory(this.ctx.stateDir, ref);
    this.node.budget.invalidate();
    this.sessions.delete(key);
    if (session) this.log.info('capture deleted: stopped and removed its files', { capture: key });
    if (capture) await this.publish(capture, undefined, []);
    else this.published.delete(key);
  }

  /** What an older capture of this name left on disk goes before this one looks at its directory. */
  private removeStale(ref: CaptureRef, uid: string): void {
    const removed = removeStaleEntries(this.ctx.stateDir, ref, uid);
    if (removed.length === 0) return;
    this.node.budget.invalidate();
    this.log.info('removed files of an older capture of the same name', { capture: keyOf(ref), uid, removed });
  }

  /**
   * Applies this node's entries when they changed, counters at most every counterInterval(); returns how
   * long to wait when a change is held back. Applying without an entry releases it.
   */
  private async publish(capture: PacketCapture, files: CaptureFiles | undefined, interfaces: CaptureTarget[]): Promise<ReconcileResult | undefined> {
    const ref = { namespace: capture.metadata.namespace ?? '', name: capture.metadata.name ?? '' };
    const key = keyOf(ref);
    const body = { ...(files ? { files: [files] } : {}), ...(interfaces.length > 0 ? { targets: interfaces } : {}) };
    const last = this.published.get(key);
    const owned = ownsEntries(capture, this.ctx.nodeName);
    if (last ? isDeepStrictEqual(last.body, body) : !files && interfaces.length === 0 && !owned) return undefined;
    const since = last ? Date.now() - last.at : Infinity;
    // State changes and releases go out at once; counters wait for the interval.
    const urgent = !last || !files || (last.body as { files?: CaptureFiles[] }).files?.[0]?.state !== files.state;
    const interval = counterInterval(capture);
    if (!urgent && since < interval) return { requeueAfterMs: interval - since };
    try {
      await applyStatus(this.ctx.kc, PacketCaptureType, ref, body, agentFieldManager(this.ctx.nodeName));
    } catch (err) {
      if (isNotFound(err)) return undefined; // deleted meanwhile; the delete event cleans up
      throw new Error(`applying this node's status entry: ${errorMessage(err)}`);
    }
    this.published.set(key, { body, at: Date.now() });
    return undefined;
  }

  private hasDirectory(ref: CaptureRef, uid: string): boolean {
    return existsSync(captureDirectory(this.ctx.stateDir, ref, uid));
  }
}

function keyOf(ref: CaptureRef): string {
  return `${ref.namespace}/${ref.name}`;
}

/** Targets the controller placed on this node, with a usable IP. */
export function localTargets(capture: PacketCapture, nodeName: string): LocalTarget[] {
  return (capture.status?.targets ?? []).filter((t) => t.node === nodeName && t.ip).map((t) => ({ pod: t.pod, ip: t.ip! }));
}

/** Whether the object still shows an entry that this node wrote (e.g. before an agent restart). */
function ownsEntries(capture: PacketCapture, nodeName: string): boolean {
  const manager = agentFieldManager(nodeName);
  return (capture.metadata.managedFields ?? []).some((f) => f.manager === manager && f.subresource === 'status');
}

function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: number }).code === 404;
}
