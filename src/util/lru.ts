// A bounded map that forgets its least recently used entries first, each entry with an expiry.
// An expired entry stays until it is evicted or replaced, so callers can tell "seen before, but
// stale" from "never seen" (peek), or ask for fresh values only (get).

interface Entry<V> {
  value: V;
  expires: number;
}

export class ExpiringLru<K, V> {
  // A Map iterates in insertion order: re-inserting on use keeps the least recently used first.
  private readonly entries = new Map<K, Entry<V>>();

  constructor(private readonly maxEntries: number) {
    if (!(maxEntries >= 1)) throw new Error(`an ExpiringLru needs room for at least one entry, not ${maxEntries}`);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The entry, fresh or expired, marked as used. */
  peek(key: K, now = Date.now()): { value: V; fresh: boolean } | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return { value: entry.value, fresh: entry.expires > now };
  }

  /** The value while fresh; an expired entry is dropped. */
  get(key: K, now = Date.now()): V | undefined {
    const entry = this.peek(key, now);
    if (entry?.fresh) return entry.value;
    if (entry) this.entries.delete(key);
    return undefined;
  }

  set(key: K, value: V, ttlMs: number, now = Date.now()): void {
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as K);
    this.entries.set(key, { value, expires: now + ttlMs });
  }

  delete(key: K): void {
    this.entries.delete(key);
  }
}
