// The dedupe ids the drop pipeline remembers (a re-sent batch counts only what it did not count
// yet), in a fixed number of bytes: typed arrays instead of a Map of id strings to objects, which
// cost ~135 B per id and took 27 MB for 200,000 ids. Each id is a 64-bit hash of its text (two
// 32-bit FNV-style hashes with different seeds and primes: the odds that two of 200,000 live ids
// collide are ~1e-9), with the time until which it is remembered and its count: 24 B in a ring of
// slots, plus 6-12 B of a linear-probing index. When the ring is full the oldest insertion is
// forgotten, as before.

/** Bytes of one ring slot: two hash halves (4 + 4), until (8), count (8). */
const SLOT_BYTES = 24;

function indexSizeFor(capacity: number): number {
  let size = 2;
  while (size < capacity * 1.5) size *= 2;
  return size;
}

/** How many ids fit in maxBytes, ring and index together. */
export function idsInBytes(maxBytes: number): number {
  let capacity = Math.max(1, Math.floor(maxBytes / 32));
  while (capacity > 1 && capacity * SLOT_BYTES + indexSizeFor(capacity) * 4 > maxBytes) capacity = Math.floor(capacity * 0.95);
  return capacity;
}

export class DedupeTable {
  readonly capacity: number;
  private readonly hi: Uint32Array;
  private readonly lo: Uint32Array;
  private readonly untilMs: Float64Array;
  private readonly counts: Float64Array;
  /** Ring slot + 1 of each id, at the position its hash probes to; 0: empty. */
  private readonly index: Int32Array;
  private readonly mask: number;
  /** Next ring slot to write; the ring is full once `used` reaches the capacity. */
  private head = 0;
  private used = 0;

  /**
   * Remembers as many ids as fit in maxBytes (at least 1). The arrays are allocated at once but
   * zero pages cost no RSS until ids are written to them.
   */
  constructor(maxBytes: number) {
    this.capacity = idsInBytes(maxBytes);
    this.hi = new Uint32Array(this.capacity);
    this.lo = new Uint32Array(this.capacity);
    this.untilMs = new Float64Array(this.capacity);
    this.counts = new Float64Array(this.capacity);
    const size = indexSizeFor(this.capacity);
    this.index = new Int32Array(size);
    this.mask = size - 1;
  }

  get size(): number {
    return this.used;
  }

  /** The id's entry, or undefined when it is not remembered. */
  get(id: string): { untilMs: number; count: number } | undefined {
    const slot = this.find(hashHi(id), hashLo(id));
    return slot < 0 ? undefined : { untilMs: this.untilMs[slot]!, count: this.counts[slot]! };
  }

  /** Sets the id's entry (in place if remembered; else as the newest, forgetting the oldest when full). */
  set(id: string, untilMs: number, count: number): void {
    const hi = hashHi(id);
    const lo = hashLo(id);
    let slot = this.find(hi, lo);
    if (slot < 0) {
      slot = this.head;
      if (this.used === this.capacity) this.unindex(slot);
      else this.used++;
      this.head = (this.head + 1) % this.capacity;
      this.hi[slot] = hi;
      this.lo[slot] = lo;
      let at = lo & this.mask;
      while (this.index[at] !== 0) at = (at + 1) & this.mask;
      this.index[at] = slot + 1;
    }
    this.untilMs[slot] = untilMs;
    this.counts[slot] = count;
  }

  /** The ring slot of the id with this hash, or -1. */
  private find(hi: number, lo: number): number {
    for (let at = lo & this.mask; ; at = (at + 1) & this.mask) {
      const entry = this.index[at]!;
      if (entry === 0) return -1;
      if (this.lo[entry - 1] === lo && this.hi[entry - 1] === hi) return entry - 1;
    }
  }

  /** Removes a ring slot's id from the index, shifting later entries of its probe run back (no tombstones). */
  private unindex(slot: number): void {
    let hole = this.lo[slot]! & this.mask;
    while (this.index[hole] !== slot + 1) hole = (hole + 1) & this.mask;
    for (let at = (hole + 1) & this.mask; this.index[at] !== 0; at = (at + 1) & this.mask) {
      const home = this.lo[this.index[at]! - 1]! & this.mask;
      // The entry at `at` may fill the hole unless its home lies cyclically in (hole, at].
      const stays = hole <= at ? home > hole && home <= at : home > hole || home <= at;
      if (!stays) {
        this.index[hole] = this.index[at]!;
        hole = at;
      }
    }
    this.index[hole] = 0;
  }
}

/** 32-bit FNV-1a of the UTF-16 code units. */
function hashHi(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/** The same scheme with another seed and multiplier (MurmurHash2's), so the two halves are independent; finalised so the low bits (the index position) mix. */
function hashLo(text: string): number {
  let hash = 0x9747b28c;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x5bd1e995);
  hash ^= hash >>> 15;
  hash = Math.imul(hash, 0x2c1b3c6d);
  hash ^= hash >>> 13;
  return hash >>> 0;
}
