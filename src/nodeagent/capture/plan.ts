// What a PacketCapture asks of this node, worked out from its spec, the clock and the agent's
// ceilings: when to start and stop, and the limits each pod's capture runs with.
import type { PacketCapture } from '../../apis/packetcapture.js';
import { parseDuration } from '../../util/duration.js';
import { parseByteSize } from '../../util/size.js';
import type { CaptureDirection } from './filter.js';

/** Limits of all captures on one node together, from the agent's flags (see budget.ts). */
export interface NodeCaptureLimits {
  /** --capture-max-concurrent: pod captures running at once. */
  maxConcurrent: number;
  /** --capture-ring-size: libpcap buffer of each pod capture. */
  ringBytes: number;
  /** --capture-ring-budget: kernel ring memory of all pod captures together. */
  ringBudgetBytes: number;
  /** --capture-max-bytes: capture files on this node's disk. */
  maxBytes: number;
  /** --capture-min-free-disk: free space that stays on the state directory's filesystem. */
  minFreeDisk: DiskThreshold;
  /**
   * Unless --no-capture-evict-finished: at --capture-max-bytes, finished captures' files are
   * deleted, oldest finished first, to make room for a running capture's next file.
   */
  evictFinished?: boolean | undefined;
}

/** Limits from the agent's flags: per capture (a resource may ask for less, never more) and per node. */
export interface CaptureCeilings extends NodeCaptureLimits {
  maxBytesPerPod: number;
  maxFiles: number;
}

export { parseByteSize };

export type DiskThreshold = { bytes: number } | { percent: number };

const MIB = 1024 * 1024;

/** Bounds of --capture-ring-size: below 1 MiB a ring holds under 8 packets of 64 KiB frames. */
export const MIN_RING_BYTES = MIB;
export const MAX_RING_BYTES = 64 * MIB;
/**
 * cap opens libpcap in immediate mode, so Linux uses TPACKET_V2: one frame per packet, sized for
 * 64 KiB packets (veths offload), in 128 KiB blocks. The kernel ring is twice the buffer size asked
 * for: measured, a 32 MiB buffer maps 64 MiB, a 16 MiB one 32 MiB (see the README).
 */
export const RING_MEMORY_FACTOR = 2;

/**
 * The agent's defaults (config/agent/daemonset.yaml sets the same). 12 pod captures of a 16 MiB
 * libpcap buffer, which the kernel maps as a 32 MiB ring: 384 MiB of ring memory at most. (A burst
 * of 200k small packets: 16 MiB keeps 0.8 of what dumpcap keeps, 32 MiB all, 8 MiB 0.65.) The free
 * disk floor is the kubelet's default eviction threshold (nodefs.available<10%) plus a 5 % margin,
 * so captures never put a node under DiskPressure.
 */
export const DEFAULT_CEILINGS: CaptureCeilings = {
  maxBytesPerPod: 1024 ** 3,
  maxFiles: 100,
  maxConcurrent: 12,
  ringBytes: 16 * MIB,
  ringBudgetBytes: 12 * RING_MEMORY_FACTOR * 16 * MIB,
  maxBytes: 10 * 1024 ** 3,
  minFreeDisk: { percent: 15 },
};

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

/** A --capture-ring-size: a size within MIN_RING_BYTES..MAX_RING_BYTES. */
export function parseRingSize(text: string): number {
  const bytes = parseByteSize(text);
  if (bytes < MIN_RING_BYTES || bytes > MAX_RING_BYTES) throw new Error(`ring size ${text} must be between 1Mi and 64Mi`);
  return bytes;
}

/** Why the agent cannot run with these limits (a flag error at start-up), or undefined. */
export function ceilingsProblem(c: CaptureCeilings): string | undefined {
  const ring = RING_MEMORY_FACTOR * c.ringBytes;
  if (c.ringBudgetBytes < ring) return `--capture-ring-budget ${c.ringBudgetBytes} holds no ring of ${ring} bytes (--capture-ring-size ${c.ringBytes} x ${RING_MEMORY_FACTOR}): no capture could start`;
  return undefined;
}

/** Bytes that must stay free on a filesystem of totalBytes. */
export function requiredFreeBytes(threshold: DiskThreshold, totalBytes: number): number {
  return 'bytes' in threshold ? threshold.bytes : Math.ceil((totalBytes * threshold.percent) / 100);
}
