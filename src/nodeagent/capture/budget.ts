// What all captures on one node may take together, whoever asks: pod captures running at once
// (each holds a kernel packet ring that no container memory limit counts), the ring memory those
// take, bytes of capture files on disk, and the free disk the kubelet needs to not evict pods.
// Slots go first come, first served by the capture's creation time; the caller supplies the disk.
import { activeCaptures } from './metrics.js';
import type { CaptureRef, StoredFile } from './store.js';
import { requiredFreeBytes, RING_MEMORY_FACTOR, type DiskThreshold, type NodeCaptureLimits } from './plan.js';

export interface DiskProbe {
  /** Bytes of capture files on disk, leaving out the given paths. */
  storedBytes(skip: ReadonlySet<string>): number;
  space(): { freeBytes: number; totalBytes: number };
}

/** One pod capture asking for a slot. */
export interface SlotClaim {
  /** Unique per capture UID and pod. */
  id: string;
  /** The capture's creation time (ms): earlier captures go first; ties by id. */
  createdAt: number;
  /** The capture to reconcile again when a slot frees. */
  ref: CaptureRef;
}

/** Why a file may not be written: a node quota (waits for room) or the disk floor. */
export interface FileRefusal {
  kind: 'quota' | 'disk';
  message: string;
}

/** What PodCapture asks before each new file and tells as files open, close and go. */
export interface FileGate {
  refuse(bytes: number): FileRefusal | undefined;
  opened(file: string, reserve: number, remaining: () => number): void;
  closed(file: string, bytes: number): void;
  deleted(bytes: number): void;
}

interface OpenFile {
  /** The file's size limit: counted whole against --capture-max-bytes while it is written. */
  reserve: number;
  /** What it may still grow by: counted against the free disk. */
  remaining: () => number;
}

/** One finished capture whose files on this node may be evicted. */
export interface EvictionCandidate {
  /** Unique per capture (namespace/name/uid). */
  key: string;
  /** When it finished (ms): the oldest finished goes first; ties by key. */
  finishedAt: number;
  /** Its files that may go (the caller leaves out any still to be uploaded). */
  files: readonly Pick<StoredFile, 'fileName' | 'bytes' | 'sequence' | 'pod'>[];
}

export interface EvictionStep {
  key: string;
  fileNames: string[];
  bytes: number;
}

/**
 * Which files to delete to free `neededBytes`: the oldest finished capture first, and within it its
 * oldest files first (by sequence; the node metadata snapshot last), until enough is freed. Never
 * more than one file past what is needed, and nothing at all when every candidate together is not
 * enough: deleting a user's files would then not even let the new file start.
 */
export function planEviction(candidates: readonly EvictionCandidate[], neededBytes: number): EvictionStep[] {
  if (neededBytes <= 0) return [];
  const total = candidates.reduce((sum, c) => sum + c.files.reduce((s, f) => s + f.bytes, 0), 0);
  if (total < neededBytes) return [];
  const ordered = [...candidates].sort((a, b) => a.finishedAt - b.finishedAt || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const steps: EvictionStep[] = [];
  let freed = 0;
  for (const candidate of ordered) {
    const files = [...candidate.files].sort((a, b) => fileOrder(a) - fileOrder(b) || a.pod.localeCompare(b.pod) || a.fileName.localeCompare(b.fileName));
    const step: EvictionStep = { key: candidate.key, fileNames: [], bytes: 0 };
    for (const f of files) {
      if (freed >= neededBytes) break;
      step.fileNames.push(f.fileName);
      step.bytes += f.bytes;
      freed += f.bytes;
    }
    if (step.fileNames.length > 0) steps.push(step);
    if (freed >= neededBytes) break;
  }
  return steps;
}

/** Pcap files by sequence; the metadata snapshot (no pod) after every pcap file. */
function fileOrder(f: Pick<StoredFile, 'pod' | 'sequence'>): number {
  return f.pod === '' ? Number.MAX_SAFE_INTEGER : f.sequence;
}

/** Deletes finished captures' files to free at least `neededBytes`; returns the bytes freed. */
export type Evictor = (neededBytes: number, reason: string) => number;

/** A stored-bytes count older than this is taken again before it is used. */
const WALK_MAX_AGE_MS = 1000;
/** A waiting claim nobody repeated for this long is dropped (its capture went away unseen). */
const WAITING_TTL_MS = 60_000;

export class NodeCaptureBudget implements FileGate {
  private readonly holders = new Set<string>();
  private readonly waiting = new Map<string, SlotClaim & { seenAt: number }>();
  private readonly open = new Map<string, OpenFile>();
  private walked: { at: number; bytes: number } | undefined;
  private closedSinceWalk = 0;
  private deletedSinceWalk = 0;
  private evictor: Evictor | undefined;

  constructor(
    readonly limits: NodeCaptureLimits,
    private readonly disk: DiskProbe,
    /** Captures that were held back, to look at again once something freed. */
    private readonly onFreed: (refs: CaptureRef[]) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Who frees room at the byte budget (the capture reconciler); none unless evictFinished. */
  setEvictor(evictor: Evictor): void {
    if (this.limits.evictFinished !== false) this.evictor = evictor;
  }

  /** Pod captures that may run at once: the flag, or fewer when the ring budget holds fewer rings. */
  slots(): number {
    return Math.min(this.limits.maxConcurrent, Math.floor(this.limits.ringBudgetBytes / this.ringMemory()));
  }

  /** Kernel memory of one pod capture's ring. */
  ringMemory(): number {
    return RING_MEMORY_FACTOR * this.limits.ringBytes;
  }

  running(): number {
    return this.holders.size;
  }

  /**
   * Takes a slot for a pod capture whose first file has `firstFileBytes`, or says which node limit
   * holds it back (the claim then waits its turn). A holder asking again keeps its slot.
   */
  acquire(claim: SlotClaim, firstFileBytes: number): string | undefined {
    if (this.holders.has(claim.id)) return undefined;
    this.expireWaiting();
    const ahead = [...this.waiting.values()].filter((w) => w.id !== claim.id && comesBefore(w, claim)).length;
    const refusal = this.slotRefusal(ahead) ?? this.quotaRefusal(firstFileBytes);
    if (refusal) {
      this.waiting.set(claim.id, { ...claim, seenAt: this.now() });
      return refusal;
    }
    this.waiting.delete(claim.id);
    this.holders.add(claim.id);
    activeCaptures.set(this.holders.size);
    return undefined;
  }

  /** The pod capture stopped: its slot goes to the next claim in line. */
  release(id: string): void {
    if (!this.holders.delete(id)) return;
    activeCaptures.set(this.holders.size);
    this.nudgeWaiting();
  }

  /** The claim is no longer wanted (pod no longer a target, capture gone): out of the line too. */
  forget(id: string): void {
    const waited = this.waiting.delete(id);
    const held = this.holders.delete(id);
    activeCaptures.set(this.holders.size);
    if (held || waited) this.nudgeWaiting();
  }

  refuse(bytes: number): FileRefusal | undefined {
    const quota = this.quotaRefusal(bytes);
    if (quota) return { kind: 'quota', message: quota };
    const { freeBytes, totalBytes } = this.disk.space();
    const required = requiredFreeBytes(this.limits.minFreeDisk, totalBytes);
    const growing = [...this.open.values()].reduce((sum, f) => sum + Math.max(0, f.remaining()), 0);
    if (freeBytes - growing - bytes < required) {
      return {
        kind: 'disk',
        message: `stopped writing: free disk ${freeBytes} bytes (${growing} more promised to files being written) would fall below the agent's floor of ${required} bytes (${describeThreshold(this.limits.minFreeDisk)}, --capture-min-free-disk) with another ${bytes}-byte file`,
      };
    }
    return undefined;
  }

  opened(file: string, reserve: number, remaining: () => number): void {
    this.open.set(file, { reserve, remaining });
  }

  closed(file: string, bytes: number): void {
    if (!this.open.delete(file)) return;
    this.closedSinceWalk += bytes;
  }

  /** A rotation deleted a file (its bytes go straight to the file that replaces it). */
  deleted(bytes: number): void {
    this.deletedSinceWalk += bytes;
  }

  /** Files were removed behind our back (a capture's directory): count the disk again. */
  invalidate(): void {
    this.walked = undefined;
    this.nudgeWaiting();
  }

  /** Capture bytes on this node, each file being written counted at its full size. */
  usedBytes(): number {
    const now = this.now();
    if (!this.walked || now - this.walked.at > WALK_MAX_AGE_MS) {
      this.walked = { at: now, bytes: this.disk.storedBytes(new Set(this.open.keys())) };
      this.closedSinceWalk = 0;
      this.deletedSinceWalk = 0;
    }
    const reserved = [...this.open.values()].reduce((sum, f) => sum + f.reserve, 0);
    return Math.max(0, this.walked.bytes + this.closedSinceWalk - this.deletedSinceWalk) + reserved;
  }

  private slotRefusal(ahead: number): string | undefined {
    const { maxConcurrent, ringBudgetBytes, ringBytes } = this.limits;
    if (this.holders.size + ahead < this.slots()) return undefined;
    const queue = ahead > 0 ? `, ${ahead} earlier capture(s) waiting` : '';
    if (this.slots() < maxConcurrent) {
      return `node limit: the kernel ring budget of ${ringBudgetBytes} bytes (--capture-ring-budget) holds ${this.slots()} pod capture(s) of ${this.ringMemory()} bytes each (--capture-ring-size ${ringBytes} x ${RING_MEMORY_FACTOR}); ${this.holders.size} running${queue}`;
    }
    return `node limit: ${maxConcurrent} concurrent pod captures (--capture-max-concurrent); ${this.holders.size} running${queue}`;
  }

  private quotaRefusal(bytes: number): string | undefined {
    let used = this.usedBytes();
    if (used + bytes <= this.limits.maxBytes) return undefined;
    if (this.evictor) {
      const reason = `to make room under the node's capture budget of ${this.limits.maxBytes} bytes (--capture-max-bytes) for a running capture's next ${bytes}-byte file; the oldest finished captures' files go first`;
      if (this.evictor(used + bytes - this.limits.maxBytes, reason) > 0) {
        this.walked = undefined;
        used = this.usedBytes();
        if (used + bytes <= this.limits.maxBytes) return undefined;
      }
    }
    return `node limit: ${this.limits.maxBytes} bytes of capture files (--capture-max-bytes); ${used} in use or being written, another file needs ${bytes}`;
  }

  private expireWaiting(): void {
    const cutoff = this.now() - WAITING_TTL_MS;
    for (const [id, w] of this.waiting) if (w.seenAt < cutoff) this.waiting.delete(id);
  }

  private nudgeWaiting(): void {
    if (this.waiting.size === 0) return;
    const refs = new Map<string, CaptureRef>();
    for (const w of this.waiting.values()) refs.set(`${w.ref.namespace}/${w.ref.name}`, w.ref);
    this.onFreed([...refs.values()]);
  }
}

/** First come, first served: creation time, then id so that every agent orders ties alike. */
export function comesBefore(a: Pick<SlotClaim, 'createdAt' | 'id'>, b: Pick<SlotClaim, 'createdAt' | 'id'>): boolean {
  return a.createdAt < b.createdAt || (a.createdAt === b.createdAt && a.id < b.id);
}

function describeThreshold(t: DiskThreshold): string {
  return 'percent' in t ? `${t.percent}% of the filesystem` : `${t.bytes} bytes`;
}
