// What the controller itself counts per DropTail for its status: the total of the drops it
// accepted, the last one and a bounded list of recent ones, names resolved.
//
// totalDrops here means "drops the controller accepted and reported" (after removing re-sent
// duplicates and expired drops), while each agent's status.nodes[].dropsSeen is what that node
// parsed. The two differ by what was shed, expired or refused on the way, which is the point of
// showing both. The total continues from the stored status after a controller restart.
//
// Status writes are rate-limited: new numbers are "published" to the status at most once per
// publishIntervalMs per DropTail, so a flood costs one status write every two seconds, not one per
// batch. Between publications the reconciler keeps writing the previously published numbers.
import type { DropRecord, DropTail } from '../../apis/droptail.js';

interface Counts {
  total: number;
  /** Drop Events over the event budget, folded into aggregated ones (status.eventsSuppressed). */
  suppressed: number;
  lastDrop?: DropRecord;
  recent: DropRecord[];
}

interface Entry {
  uid: string;
  live: Counts;
  /** Bumped on every change of `live`. */
  version: number;
  published: Counts;
  publishedVersion: number;
  publishedAt: number;
}

export interface StatsOptions {
  publishIntervalMs?: number;
  now?: () => number;
}

export class DropStats {
  private readonly entries = new Map<string, Entry>();
  private readonly publishIntervalMs: number;
  private readonly now: () => number;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Asks for a reconcile of the DropTail (set by whoever owns the controller). */
  onFlushDue: (name: string) => void = () => {};

  constructor(opts: StatsOptions = {}) {
    this.publishIntervalMs = opts.publishIntervalMs ?? 2000;
    this.now = opts.now ?? Date.now;
  }

  /** Adds an accepted drop; schedules one status flush for the next publication slot. */
  record(dropTail: DropTail, drop: DropRecord, limit: number): void {
    const entry = this.entryFor(dropTail);
    const live = entry.live;
    live.total += drop.count ?? 1;
    if (!live.lastDrop || drop.time >= live.lastDrop.time) live.lastDrop = drop;
    live.recent = insertNewestFirst(live.recent, drop, limit);
    entry.version += 1;
    this.scheduleFlush(dropTail.metadata.name ?? '', entry);
  }

  /** Counts drop Events not written (over the event budget); schedules a flush like record(). */
  suppressed(dropTail: DropTail, count: number): void {
    const entry = this.entryFor(dropTail);
    entry.live.suppressed += count;
    entry.version += 1;
    this.scheduleFlush(dropTail.metadata.name ?? '', entry);
  }

  /**
   * The controller's drop fields of the status, publishing the live numbers when the interval
   * allows; retryAfterMs when newer numbers wait for their slot.
   */
  statusFields(dropTail: DropTail, limit: number): { fields: Record<string, unknown>; retryAfterMs?: number } {
    const entry = this.entryFor(dropTail);
    let retryAfterMs: number | undefined;
    if (entry.version !== entry.publishedVersion) {
      const wait = entry.publishedAt + this.publishIntervalMs - this.now();
      if (wait <= 0) {
        entry.published = { ...entry.live, recent: [...entry.live.recent] };
        entry.publishedVersion = entry.version;
        entry.publishedAt = this.now();
      } else retryAfterMs = wait;
    }
    const { total, suppressed, lastDrop, recent } = entry.published;
    const fields: Record<string, unknown> = { totalDrops: total, eventsSuppressed: suppressed, recentDrops: recent.slice(0, limit) };
    if (lastDrop) Object.assign(fields, { lastDropTime: lastDrop.time, lastDrop });
    return retryAfterMs === undefined ? { fields } : { fields, retryAfterMs };
  }

  forget(name: string): void {
    this.entries.delete(name);
    clearTimeout(this.timers.get(name));
    this.timers.delete(name);
  }

  /** First use after a (re)start: continue from the stored status. A new uid is a new object. */
  private entryFor(dropTail: DropTail): Entry {
    const name = dropTail.metadata.name ?? '';
    const uid = dropTail.metadata.uid ?? '';
    const existing = this.entries.get(name);
    if (existing && existing.uid === uid) return existing;
    const status = dropTail.status;
    const stored: Counts = { total: status?.totalDrops ?? 0, suppressed: status?.eventsSuppressed ?? 0, recent: [...(status?.recentDrops ?? [])] };
    if (status?.lastDrop) stored.lastDrop = status.lastDrop;
    const entry: Entry = { uid, live: stored, version: 0, published: { ...stored, recent: [...stored.recent] }, publishedVersion: 0, publishedAt: 0 };
    this.entries.set(name, entry);
    return entry;
  }

  private scheduleFlush(name: string, entry: Entry): void {
    if (this.timers.has(name)) return;
    // A short floor lets a batch's drops land before the first write of a quiet DropTail.
    const delay = Math.max(50, entry.publishedAt + this.publishIntervalMs - this.now());
    const timer = setTimeout(() => {
      this.timers.delete(name);
      this.onFlushDue(name);
    }, delay);
    timer.unref();
    this.timers.set(name, timer);
  }
}

/** In place, once per drop: the live list is the entry's own (publishing and the stored status copy it). */
function insertNewestFirst(list: DropRecord[], drop: DropRecord, limit: number): DropRecord[] {
  if (limit <= 0) return [];
  let i = 0;
  while (i < list.length && list[i]!.time > drop.time) i++;
  if (i >= limit) return list;
  list.splice(i, 0, drop);
  if (list.length > limit) list.length = limit;
  return list;
}
