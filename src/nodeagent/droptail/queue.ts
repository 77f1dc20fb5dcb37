// The bounded send queue between the aggregator and the sender.
//
// It holds aggregated drops and, between them, checkpoint marks: a mark says "every drop a source
// read before this point is ahead of me in the queue". A mark is committed (its checkpoints saved)
// only once everything ahead of it has left the queue: accepted by the controller, refused as
// malformed, or shed. So a restart re-reads what was still waiting (at least once), never skips it.
//
// Bounds: maxDrops aggregated entries and maxBytes of their JSON. Past either, the OLDEST drops are
// shed and counted (their packet counts), so the queue never grows without bound while the
// controller is unreachable.
//
// Memory: a drop is kept as its JSON bytes (a Buffer, outside the V8 heap), not as the parsed
// object. The JSON is needed anyway (for the byte bound and for the POST body), and the object
// graph of a parsed drop is several times larger and keeps its whole log line alive through
// sliced strings; under a flood of distinct drops, thousands of long-lived objects also make V8
// grow its young generation to the maximum. The sender writes the bytes into the batch unchanged.
import type { AggregatedDrop } from '../../apis/drops.js';

/** Saves one source's read position; called at most once, in queue order. */
export type CommitFn = () => Promise<void>;

/** Checkpoint commits by source id; a later mark of the same source supersedes an earlier one. */
export type CheckpointMark = Map<string, CommitFn>;

interface DropItem {
  kind: 'drop';
  /** JSON.stringify(the AggregatedDrop), UTF-8. */
  json: Buffer;
  /** Its packet count (AggregatedDrop.count), for the shed accounting. */
  count: number;
}

interface MarkItem {
  kind: 'mark';
  mark: CheckpointMark;
}

type QueueItem = DropItem | MarkItem;

export interface QueueOptions {
  /** Default 10,000 aggregated drops. */
  maxDrops?: number;
  /** Default 8 MiB. */
  maxBytes?: number;
}

export const DEFAULT_QUEUE_MAX_DROPS = 10_000;
export const DEFAULT_QUEUE_MAX_BYTES = 8 * 1024 * 1024;

/** Drops taken for one POST, with the marks they carried (committed once the batch is settled). */
export class TakenBatch {
  /** Each drop's JSON, in queue order: what the batch body is written from. */
  readonly parts: Buffer[] = [];
  /** Their size in the body, a comma each included. */
  bytes = 0;
  /** The items as taken, to put back in front unchanged when the send fails. */
  readonly items: QueueItem[] = [];

  /** The drops, parsed back from their JSON (for inspection: the sender uses `parts`). */
  get drops(): AggregatedDrop[] {
    return this.parts.map((json) => JSON.parse(json.toString('utf8')) as AggregatedDrop);
  }
}

/** What was shed by one enforcement of the bounds. */
export interface ShedResult {
  entries: number;
  /** Sum of the shed entries' counts: packet drops lost. */
  drops: number;
}

export class DropQueue {
  readonly maxDrops: number;
  readonly maxBytes: number;
  private items: QueueItem[] = [];
  private head = 0;
  private dropCount = 0;
  private byteCount = 0;
  private waiters: Array<() => void> = [];
  /** The batch being sent: marks behind it must wait for its outcome. */
  private inFlight: TakenBatch | undefined;
  /** Marks passed while shedding during a send, committed once that send is settled. */
  private deferred: CheckpointMark | undefined;

  constructor(
    opts: QueueOptions = {},
    /** Runs commits in order; errors are the caller's to log. */
    private readonly commit: (mark: CheckpointMark) => void = () => undefined,
  ) {
    this.maxDrops = Math.max(1, opts.maxDrops ?? DEFAULT_QUEUE_MAX_DROPS);
    this.maxBytes = Math.max(1024, opts.maxBytes ?? DEFAULT_QUEUE_MAX_BYTES);
  }

  get drops(): number {
    return this.dropCount;
  }

  get bytes(): number {
    return this.byteCount;
  }

  /** Appends a window's drops followed by its checkpoint mark; returns what had to be shed. */
  push(drops: readonly AggregatedDrop[], mark?: CheckpointMark): ShedResult {
    for (const drop of drops) {
      const json = Buffer.from(JSON.stringify(drop));
      this.items.push({ kind: 'drop', json, count: drop.count });
      this.dropCount += 1;
      this.byteCount += bodyBytes(json);
    }
    if (mark !== undefined && mark.size > 0) this.pushMark(mark);
    const shed = this.enforceBounds();
    this.settleLeadingMarks();
    if (this.dropCount > 0) this.wake();
    return shed;
  }

  /** Takes up to maxDrops / maxBytes (at least one drop) from the front, with the marks among them. */
  take(maxDrops: number, maxBytes: number): TakenBatch | undefined {
    if (this.inFlight !== undefined) throw new Error('a batch is already being sent');
    this.settleLeadingMarks();
    if (this.dropCount === 0) return undefined;
    const batch = new TakenBatch();
    while (this.head < this.items.length) {
      const item = this.items[this.head]!;
      if (item.kind === 'drop') {
        const bytes = bodyBytes(item.json);
        if (batch.parts.length >= maxDrops || (batch.parts.length > 0 && batch.bytes + bytes > maxBytes)) break;
        batch.parts.push(item.json);
        batch.bytes += bytes;
        this.dropCount -= 1;
        this.byteCount -= bytes;
      }
      batch.items.push(item);
      this.head += 1;
    }
    this.compact();
    this.inFlight = batch;
    return batch;
  }

  /** The batch is settled (accepted, or refused for good): its marks are committed in order. */
  settle(batch: TakenBatch): void {
    this.inFlight = undefined;
    for (const item of batch.items) if (item.kind === 'mark') this.commit(item.mark);
    if (this.deferred !== undefined) this.commit(this.deferred);
    this.deferred = undefined;
    this.settleLeadingMarks();
  }

  /** A failed send: the batch goes back in front, then the bounds are enforced (shedding oldest first). */
  putBack(batch: TakenBatch): ShedResult {
    this.inFlight = undefined;
    const deferred: QueueItem[] = this.deferred === undefined ? [] : [{ kind: 'mark', mark: this.deferred }];
    this.deferred = undefined;
    this.items = [...batch.items, ...deferred, ...this.items.slice(this.head)];
    this.head = 0;
    for (const item of batch.items) {
      if (item.kind !== 'drop') continue;
      this.dropCount += 1;
      this.byteCount += bodyBytes(item.json);
    }
    const shed = this.enforceBounds();
    this.settleLeadingMarks();
    return shed;
  }

  /** Resolves once the queue holds a drop (at once if it does), or when woken by wakeAll(). */
  waitForDrops(): Promise<void> {
    if (this.dropCount > 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Wakes every waiter (used on stop). */
  wakeAll(): void {
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private pushMark(mark: CheckpointMark): void {
    const last = this.items.length > this.head ? this.items[this.items.length - 1] : undefined;
    if (last?.kind === 'mark') {
      // Adjacent marks merge: the later position of a source supersedes the earlier one.
      for (const [source, fn] of mark) last.mark.set(source, fn);
      return;
    }
    this.items.push({ kind: 'mark', mark: new Map(mark) });
  }

  private enforceBounds(): ShedResult {
    const shed: ShedResult = { entries: 0, drops: 0 };
    while (this.dropCount > this.maxDrops || this.byteCount > this.maxBytes) {
      const item = this.items[this.head];
      if (item === undefined) break;
      this.head += 1;
      if (item.kind === 'mark') {
        // Everything ahead of this mark has left the queue: its position may be saved, unless a
        // batch from ahead of it is still being sent.
        if (this.inFlight === undefined) this.commit(item.mark);
        else this.deferred = mergeMarks(this.deferred, item.mark);
        continue;
      }
      this.dropCount -= 1;
      this.byteCount -= bodyBytes(item.json);
      shed.entries += 1;
      shed.drops += item.count;
    }
    this.compact();
    return shed;
  }

  /** Marks with nothing ahead of them are committed right away. */
  private settleLeadingMarks(): void {
    if (this.inFlight !== undefined) return;
    while (this.head < this.items.length) {
      const item = this.items[this.head]!;
      if (item.kind !== 'mark') break;
      this.head += 1;
      this.commit(item.mark);
    }
    this.compact();
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/** A drop's share of the batch body: its JSON and the comma after it. */
function bodyBytes(json: Buffer): number {
  return json.length + 1;
}

function mergeMarks(into: CheckpointMark | undefined, later: CheckpointMark): CheckpointMark {
  const merged = new Map(into ?? []);
  for (const [source, fn] of later) merged.set(source, fn);
  return merged;
}
