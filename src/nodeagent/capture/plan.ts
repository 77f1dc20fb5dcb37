// What a PacketCapture asks of this node, worked out from its spec, the clock and the agent's
// ceilings: when to start and stop, and the limits each pod's capture runs with.
import type { PacketCapture } from '../../apis/packetcapture.js';
import { parseDuration } from '../../util/duration.js';
import type { CaptureDirection } from './filter.js';

/** Cluster-wide limits from the agent's flags; a resource may ask for less, never more. */
export interface CaptureCeilings {
  maxBytesPerPod: number;
  maxFiles: number;
  /** Free space that must remain on the state directory's filesystem. */
  minFreeDisk: DiskThreshold;
}

export type DiskThreshold = { bytes: number } | { percent: number };

export const DEFAULT_CEILINGS: CaptureCeilings = { maxBytesPerPod: 1024 ** 3, maxFiles: 100, minFreeDisk: { percent: 10 } };

export interface CaptureLimits {
  snapLen: number;
  fileSizeBytes: number;
  maxFiles: number;
  maxBytesPerPod: number;
  direction: CaptureDirection;
}

export interface CaptureSchedule {
  startAt: Date;
  /** Undefined: until the limits or a deletion stop it. */
  endAt?: Date | undefined;
}

export interface CapturePlan {
  schedule: CaptureSchedule;
  limits: CaptureLimits;
  /** Where the agent lowered what the resource asked for, in words for the status. */
  clampNotes: string[];
}

/** The start is startTime, else the creation time, so every agent computes the same duration end. */
export function captureSchedule(capture: PacketCapture): CaptureSchedule {
  const { startTime, endTime, duration } = capture.spec;
  const startAt = new Date(startTime ?? capture.metadata.creationTimestamp ?? Date.now());
  if (endTime) return { startAt, endAt: new Date(endTime) };
  const durationMs = duration ? parseDuration(duration) : undefined;
  return { startAt, endAt: durationMs !== undefined ? new Date(startAt.getTime() + durationMs) : undefined };
}

export function planFor(capture: PacketCapture, ceilings: CaptureCeilings): CapturePlan {
  const spec = capture.spec;
  const clampNotes: string[] = [];
  const clamp = (field: string, asked: number | undefined, ceiling: number): number => {
    if (asked === undefined) return ceiling;
    if (asked <= ceiling) return asked;
    clampNotes.push(`${field} ${asked} lowered to the agent's ceiling ${ceiling}`);
    return ceiling;
  };
  return {
    schedule: captureSchedule(capture),
    clampNotes,
    limits: {
      snapLen: spec.snapLen ?? 262144,
      fileSizeBytes: spec.fileSizeBytes ?? 10 * 1024 * 1024,
      maxFiles: clamp('maxFiles', spec.maxFiles, ceilings.maxFiles),
      maxBytesPerPod: clamp('maxBytesPerPod', spec.maxBytesPerPod, ceilings.maxBytesPerPod),
      direction: spec.direction ?? 'both',
    },
  };
}

/** "1Gi", "500Mi", "2G", "123" (bytes) or "10%"; throws on anything else (a flag error at start-up). */
export function parseDiskThreshold(text: string): DiskThreshold {
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(text);
  if (percent) {
    const p = Number(percent[1]);
    if (p >= 100) throw new Error(`disk threshold ${text}: a percentage must be below 100`);
    return { percent: p };
  }
  return { bytes: parseByteSize(text) };
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };

/** Kubernetes quantity-style sizes: 123, 10k, 5Mi, 1Gi, 2G. */
export function parseByteSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(text.trim());
  if (!m) throw new Error(`${JSON.stringify(text)} is not a size such as 1Gi, 500Mi or 1000000`);
  return Math.floor(Number(m[1]) * SIZE_UNITS[m[2] ?? '']!);
}

/** Bytes that must stay free on a filesystem of totalBytes. */
export function requiredFreeBytes(threshold: DiskThreshold, totalBytes: number): number {
  return 'bytes' in threshold ? threshold.bytes : Math.ceil((totalBytes * threshold.percent) / 100);
}
