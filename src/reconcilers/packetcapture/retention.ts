// PacketCapture retention on the controller: when a capture finished (status.finishedAt, kept in
// the status so that a restarted controller counts from the same instant), when its files expire
// (status.filesExpireAt), and what the agents say about uploads and evictions, as conditions.
// Deleting the expired files is the reconciler's (it goes through the agents' DELETE, the path of
// `kubectl netwarden capture delete`).
import type { Condition } from '../../apis/meta.js';
import type { CapturePhase, PacketCapture } from '../../apis/packetcapture.js';
import { EXPORTED_CONDITION, FILES_EVICTED_CONDITION, isFinishedCapturePhase } from '../../apis/captureretention.js';
import { setCondition } from '../../runtime/status.js';
import { captureSchedule } from './phase.js';

/** How long expiry waits for uploads still under way (a slow bucket) before the files go anyway. */
export const UPLOAD_GRACE_MS = 5 * 60_000;
/** How often an expired capture with uploads still under way is looked at again. */
const UPLOAD_POLL_MS = 2_000;

export interface RetentionPlan {
  /** The status fields (keys present even when undefined, so that a field no longer wanted is removed). */
  status: { finishedAt: string | undefined; filesExpireAt: string | undefined; uploadedObjects: number | undefined; uploadedBytes: number | undefined };
  /** The TTL has passed and the files (or the object) should go now. */
  expired: boolean;
  nextBoundary?: Date | undefined;
}

/**
 * `phase` is the one this reconcile computed. A capture that runs again (its endTime moved into the
 * future) is no longer finished: finishedAt goes, and comes back when it finishes again.
 */
export function planRetention(capture: PacketCapture, phase: CapturePhase, now: Date): RetentionPlan {
  const entries = capture.status?.files ?? [];
  const uploads = entries.map((e) => e.uploads).filter((u) => u !== undefined);
  const status: RetentionPlan['status'] = {
    finishedAt: undefined,
    filesExpireAt: undefined,
    uploadedObjects: capture.spec.export?.s3 || uploads.length > 0 ? uploads.reduce((s, u) => s + (u.count ?? 0), 0) : undefined,
    uploadedBytes: capture.spec.export?.s3 || uploads.length > 0 ? uploads.reduce((s, u) => s + (u.bytes ?? 0), 0) : undefined,
  };
  if (!isFinishedCapturePhase(phase)) return { status, expired: false };
  const finishedAt = finishTime(capture, phase, now);
  status.finishedAt = rfc3339(finishedAt);
  const ttl = capture.spec.ttlSecondsAfterFinished;
  if (ttl === undefined) return { status, expired: false };
  const expiresAt = new Date(finishedAt.getTime() + ttl * 1000);
  status.filesExpireAt = rfc3339(expiresAt);
  if (now < expiresAt) return { status, expired: false, nextBoundary: expiresAt };
  // The last files of a capture are uploaded as it finishes: give them a moment before they go.
  const uploading = uploads.some((u) => (u.pending ?? 0) > 0 && u.state !== 'Refused');
  if (uploading && now.getTime() < expiresAt.getTime() + UPLOAD_GRACE_MS) return { status, expired: false, nextBoundary: new Date(now.getTime() + UPLOAD_POLL_MS) };
  return { status, expired: true };
}

/** Whole seconds, as Kubernetes writes its own timestamps (and kubectl shows them in the EXPIRES column). */
function rfc3339(d: Date): string {
  return new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/** The recorded finish time; else the end of the schedule for a capture that ran to its end, else now. */
function finishTime(capture: PacketCapture, phase: CapturePhase, now: Date): Date {
  const recorded = capture.status?.finishedAt ? new Date(capture.status.finishedAt) : undefined;
  if (recorded && !Number.isNaN(recorded.getTime())) return recorded;
  const { end } = captureSchedule(capture);
  if (phase === 'Finished' && end && end <= now) return end;
  return now;
}

/** Exported and FilesEvicted, from the agents' entries; unchanged when nothing says anything. */
export function retentionConditions(capture: PacketCapture, conditions: Condition[] | undefined, generation: number, now: Date): Condition[] | undefined {
  // By node name: the message stays the same whichever agent wrote its entry first.
  const entries = [...(capture.status?.files ?? [])].sort((a, b) => a.node.localeCompare(b.node));
  let out = conditions;
  const s3 = capture.spec.export?.s3;
  const withUploads = entries.filter((e) => e.uploads);
  if (s3 && withUploads.length > 0) {
    const refused = withUploads.filter((e) => e.uploads?.state === 'Refused');
    const failed = withUploads.filter((e) => e.uploads?.state === 'Error');
    const count = withUploads.reduce((s, e) => s + (e.uploads?.count ?? 0), 0);
    const bytes = withUploads.reduce((s, e) => s + (e.uploads?.bytes ?? 0), 0);
    const pending = withUploads.reduce((s, e) => s + (e.uploads?.pending ?? 0), 0);
    const where = `s3://${s3.bucket}/${(s3.prefix ?? '').replace(/^\/+|\/+$/g, '')}`;
    const describe = (list: typeof entries) => list.map((e) => `node ${e.node}: ${e.uploads?.message ?? ''}`).join('; ').slice(0, 4096);
    const condition: Omit<Condition, 'lastTransitionTime'> =
      refused.length > 0
        ? { type: EXPORTED_CONDITION, status: 'False', reason: 'SecretNotAllowed', message: describe(refused), observedGeneration: generation }
        : failed.length > 0
          ? { type: EXPORTED_CONDITION, status: 'False', reason: 'UploadFailed', message: describe(failed), observedGeneration: generation }
          : pending > 0
            ? { type: EXPORTED_CONDITION, status: 'False', reason: 'Uploading', message: `${count} object(s), ${bytes} bytes uploaded to ${where}; ${pending} file(s) to go`, observedGeneration: generation }
            : { type: EXPORTED_CONDITION, status: 'True', reason: 'Uploaded', message: `${count} object(s), ${bytes} bytes uploaded to ${where}`, observedGeneration: generation };
    out = setCondition(out, condition, now);
  }
  const evicted = entries.filter((e) => (e.evicted?.count ?? 0) > 0);
  if (evicted.length > 0) {
    const message = evicted.map((e) => `node ${e.node}: ${e.evicted?.count} file(s), ${e.evicted?.bytes ?? 0} bytes evicted: ${e.evicted?.reason ?? ''}`).join('; ').slice(0, 4096);
    out = setCondition(out, { type: FILES_EVICTED_CONDITION, status: 'True', reason: 'NodeBudget', message, observedGeneration: generation }, now);
  }
  return out;
}
