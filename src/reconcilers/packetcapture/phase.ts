// When a capture runs and how it stands, from its schedule and the agents' per-node reports.
import type { CapturePhase, PacketCapture } from '../../apis/packetcapture.js';
import { sumDurationTerms } from '../../util/duration.js';

export interface Schedule {
  start?: Date | undefined;
  /** endTime, or the start (or creation) plus duration. */
  end?: Date | undefined;
}

export function captureSchedule(capture: PacketCapture): Schedule {
  const start = capture.spec.startTime ? new Date(capture.spec.startTime) : undefined;
  if (capture.spec.endTime) return { start, end: new Date(capture.spec.endTime) };
  if (capture.spec.duration) {
    const from = start ?? new Date(capture.metadata.creationTimestamp ?? Date.now());
    return { start, end: new Date(from.getTime() + sumDurationTerms(capture.spec.duration)) };
  }
  return { start };
}

/** A per-node entry's message, if the agent wrote one (the field is the agent side's). */
export function entryMessage(entry: object): string | undefined {
  const message = (entry as { message?: unknown }).message;
  return typeof message === 'string' && message ? message : undefined;
}

export interface PhaseVerdict {
  phase: CapturePhase;
  message: string;
  nextBoundary?: Date | undefined;
}

/**
 * The phase of a valid capture. The agents own the per-node states; the controller only combines
 * them with the schedule:
 *   Finished  the end time passed;
 *   Failed    every node that reported says Error;
 *   Stopped   every node stopped (a limit: bytes, files, disk) before the end time;
 *   Scheduled the start time is ahead; Capturing when any node captures; else WaitingForTraffic.
 */
export function capturePhase(capture: PacketCapture, targetCount: number, now: Date): PhaseVerdict {
  const { start, end } = captureSchedule(capture);
  const entries = capture.status?.files ?? [];
  const errors = entries.filter((e) => e.state === 'Error');
  if (end && end <= now) return { phase: 'Finished', message: `the end time ${end.toISOString()} has passed` };
  if (entries.length > 0 && errors.length === entries.length) {
    return { phase: 'Failed', message: `every node failed: ${errors.map((e) => `${e.node}: ${entryMessage(e) ?? 'error'}`).join('; ')}` };
  }
  if (start && start > now) return { phase: 'Scheduled', message: `starts at ${start.toISOString()}; ${targetCount} pod(s) selected`, nextBoundary: start };
  if (entries.length > 0 && entries.every((e) => e.state === 'Finished' || e.state === 'Error')) {
    const why = entries.map((e) => entryMessage(e)).filter(Boolean);
    return { phase: 'Stopped', message: `stopped before the end time${why.length ? `: ${why.join('; ')}` : ' by a limit'}`, nextBoundary: end };
  }
  const capturing = entries.some((e) => e.state === 'Capturing');
  return { phase: capturing && targetCount > 0 ? 'Capturing' : 'WaitingForTraffic', message: `${targetCount} pod(s) selected`, nextBoundary: end };
}

/** Whether the capture has ended (so its files may be deleted), and if not, why not. */
export function captureEnded(capture: PacketCapture, now = new Date()): { ended: boolean; reason: string } {
  const phase = capture.status?.phase;
  if (phase === 'Finished' || phase === 'Stopped' || phase === 'Failed') return { ended: true, reason: `phase ${phase}` };
  const { end } = captureSchedule(capture);
  if (end && end <= now) return { ended: true, reason: 'the end time has passed' };
  return { ended: false, reason: end ? `it ends at ${end.toISOString()}` : 'it has no end time; set spec.endTime to a past time to stop it' };
}

/** Nodes that hold files of this capture: each agent keeps its entry in status.files while it does. */
export function nodesWithFiles(capture: PacketCapture): string[] {
  return [...new Set((capture.status?.files ?? []).map((e) => e.node).filter(Boolean))].sort();
}
