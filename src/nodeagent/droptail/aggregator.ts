// Turns a stream of drops into counts: identical drops (same dropKey) seen within one window become
// one AggregatedDrop. The window is arrival time, not the drop's own time, so a backlog read after
// a restart is aggregated as fast as it is read. The map is bounded: when it holds maxKeys distinct
// drops, the caller is told to flush early, so a flood of distinct drops cannot grow it.
import { dropKey, type AggregatedDrop, type DropSourceType, type PacketDrop } from '../../apis/drops.js';

export interface AggregatorOptions {
  /** Most distinct drops held before an early flush. Default 1,000. */
  maxKeys?: number;
}

export const DEFAULT_MAX_KEYS = 1_000;

export class DropAggregator {
  private entries = new Map<string, AggregatedDrop>();
  readonly maxKeys: number;

  constructor(opts: AggregatorOptions = {}) {
    this.maxKeys = Math.max(1, opts.maxKeys ?? DEFAULT_MAX_KEYS);
  }

  /** Adds one drop; returns true when the map is full and should be flushed now. */
  add(drop: PacketDrop, source: DropSourceType): boolean {
    // The source is part of the key: the controller de-duplicates re-sent drops per source.
    const key = `${source}|${dropKey(drop)}`;
    const entry = this.entries.get(key);
    if (entry === undefined) {
      this.entries.set(key, { drop, count: 1, firstSeen: drop.time, lastSeen: drop.time, source });
    } else {
      entry.count += 1;
      // Drops of one key can arrive out of order (two sources, syslog second precision).
      if (drop.time < entry.firstSeen) entry.firstSeen = drop.time;
      if (drop.time > entry.lastSeen) entry.lastSeen = drop.time;
    }
    return this.entries.size >= this.maxKeys;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The aggregated drops of the window in order of first arrival; the map starts empty again. */
  flush(): AggregatedDrop[] {
    if (this.entries.size === 0) return [];
    const out = [...this.entries.values()];
    this.entries = new Map();
    return out;
  }
}
