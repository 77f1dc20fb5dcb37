// Namespace capture quotas: how many PacketCaptures of one namespace may run at once, and how many
// bytes of capture files the namespace may hold across all nodes. Set by the cluster admin in the
// ConfigMap netwarden-capture-quotas (its format: src/apis/capturequota.ts); enforced here, by the controller, for every node at
// once. A capture held back gets no targets (so no agent captures it), and waits its turn: first
// come, first served by creation time, level-triggered by capture and ConfigMap events.
import type { Condition } from '../../apis/meta.js';
import type { PacketCapture } from '../../apis/packetcapture.js';
import type { EffectiveQuota } from '../../apis/capturequota.js';
import { captureSchedule } from './phase.js';

/** The controller's condition: the namespace quota has a place for this capture (sticky until it ends). */
export const QUOTA_CONDITION = 'QuotaReserved';

export type QuotaVerdict = { admitted: true; message: string } | { admitted: false; message: string };

/**
 * Whether the namespace quota has a place for `capture` (valid, started and not ended) among the
 * namespace's captures. Bytes at the limit hold back every capture, running ones too, until files
 * are deleted; the concurrency limit never takes a place from a capture that has one.
 */
export function quotaVerdict(capture: PacketCapture, namespaceCaptures: readonly PacketCapture[], quota: EffectiveQuota, now: Date): QuotaVerdict {
  const namespace = capture.metadata.namespace ?? '';
  const used = namespaceCaptures.reduce((sum, c) => sum + captureBytes(c), 0);
  if (used >= quota.maxBytes) {
    return { admitted: false, message: `namespace quota: ${quota.maxBytes} bytes of capture files (${quota.source}); namespace ${namespace} holds ${used}: delete captures or their files to make room` };
  }
  const within = `within the namespace quota of ${quota.maxConcurrentCaptures} concurrent captures and ${quota.maxBytes} bytes (${quota.source})`;
  if (holdsPlace(capture, now)) return { admitted: true, message: within };
  const others = namespaceCaptures.filter((c) => c.metadata.uid !== capture.metadata.uid);
  const holders = others.filter((c) => holdsPlace(c, now));
  const ahead = others.filter((c) => waitsForPlace(c, now) && comesFirst(c, capture)).length;
  if (holders.length + ahead < quota.maxConcurrentCaptures) return { admitted: true, message: within };
  const names = holders.map((c) => c.metadata.name ?? '').sort();
  const queue = ahead > 0 ? `; ${ahead} earlier capture(s) wait before this one` : '';
  return {
    admitted: false,
    message: `namespace quota: ${quota.maxConcurrentCaptures} concurrent captures (${quota.source}); namespace ${namespace} runs ${holders.length}${names.length ? ` (${names.slice(0, 10).join(', ')}${names.length > 10 ? ', ...' : ''})` : ''}${queue}`,
  };
}

/** Bytes of a capture's files on all nodes, as the agents report them. */
export function captureBytes(capture: PacketCapture): number {
  return (capture.status?.files ?? []).reduce((sum, f) => sum + (f.bytes ?? 0), 0);
}

/** Has a place (QuotaReserved=True) and has not ended: it may run (again) on any node. */
export function holdsPlace(capture: PacketCapture, now: Date): boolean {
  return conditionTrue(capture.status?.conditions, QUOTA_CONDITION) && wantsToRun(capture, now);
}

/** Would run now but has no place yet. */
export function waitsForPlace(capture: PacketCapture, now: Date): boolean {
  return !conditionTrue(capture.status?.conditions, QUOTA_CONDITION) && wantsToRun(capture, now) && capture.status?.phase !== 'Failed';
}

/** Started, not ended, not being deleted. */
export function wantsToRun(capture: PacketCapture, now: Date): boolean {
  if (capture.metadata.deletionTimestamp || capture.status?.phase === 'Finished') return false;
  const { start, end } = captureSchedule(capture);
  return !(start && start > now) && !(end && end <= now);
}

/** First come, first served: creation time, then name (unique within the namespace). */
function comesFirst(a: PacketCapture, b: PacketCapture): boolean {
  const ta = Date.parse(String(a.metadata.creationTimestamp ?? ''));
  const tb = Date.parse(String(b.metadata.creationTimestamp ?? ''));
  if (ta !== tb) return (Number.isFinite(ta) ? ta : Infinity) < (Number.isFinite(tb) ? tb : Infinity);
  return (a.metadata.name ?? '') < (b.metadata.name ?? '');
}

function conditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return conditions?.some((c) => c.type === type && c.status === 'True') ?? false;
}
