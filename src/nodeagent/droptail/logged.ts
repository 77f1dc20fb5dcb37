// One packet, one drop: a packet that a rule logs (NFLOG, a log prefix) and then drops is seen by
// the log source and again by the kernel source as NETFILTER_DROP. The kernel's drop is held for a
// short while; a logged drop of the same packet (same addresses, protocol and ports) within that
// while takes its place, and the kernel's is let go. Logged drops are never held: they carry the
// prefix the rule's author chose, and the kernel's drop would add only its reason.
//
// Both sides are bounded: past their limits a kernel drop passes at once (it may then be counted
// twice, never lost).
import type { PacketDrop } from '../../apis/drops.js';

export interface LoggedDropMatcherOptions {
  /** How long a kernel NETFILTER_DROP waits for its logged twin. Default 1 s. */
  holdMs?: number;
  /** Most kernel drops held, and most logged packets remembered. Default 10,000 each. */
  maxEntries?: number;
  now?: () => number;
}

export const DEFAULT_HOLD_MS = 1_000;
const DEFAULT_MAX_ENTRIES = 10_000;

/** The packet, whoever saw it: the fields that log lines, NFLOG and the kernel source all have. */
function packetKey(d: PacketDrop): string {
  return `${d.family}|${d.protocol}|${d.src}|${d.srcPort ?? ''}|${d.dst}|${d.dstPort ?? ''}|${d.icmpType ?? ''}`;
}

interface Held {
  drop: PacketDrop;
  key: string;
  until: number;
  /** A logged drop stood for it: skipped when its time comes. */
  matched: boolean;
}

export type HoldResult = 'matched' | 'held' | 'pass';

export class LoggedDropMatcher {
  private readonly holdMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  /** Logged packets no kernel drop matched yet: key → times seen (oldest first). */
  private readonly logged = new Map<string, number[]>();
  private loggedCount = 0;
  /** Held kernel drops in arrival order (so in order of their deadline), and by packet. */
  private queue: Held[] = [];
  private readonly heldByKey = new Map<string, Held[]>();
  private heldCount = 0;
  /** Kernel drops let go because a logged drop stood for them. */
  matched = 0;

  constructor(opts: LoggedDropMatcherOptions = {}) {
    this.holdMs = opts.holdMs ?? DEFAULT_HOLD_MS;
    this.maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.now = opts.now ?? Date.now;
  }

  /** Whether a kernel drop is one a rule may also have logged. */
  static mayBeLogged(drop: PacketDrop): boolean {
    return drop.reason === 'NETFILTER_DROP';
  }

  /** A logged drop: stands for a held kernel drop of the same packet, or waits for one. */
  noteLogged(drop: PacketDrop): void {
    const key = packetKey(drop);
    const held = this.heldByKey.get(key);
    const twin = held?.shift();
    if (twin) {
      if (held!.length === 0) this.heldByKey.delete(key);
      twin.matched = true;
      this.heldCount -= 1;
      this.matched += 1;
      return;
    }
    if (this.loggedCount >= this.maxEntries) return;
    const times = this.logged.get(key);
    if (times) times.push(this.now());
    else this.logged.set(key, [this.now()]);
    this.loggedCount += 1;
  }

  /**
   * A kernel drop that a rule may have logged: 'matched' when a logged drop already stood for it
   * (let it go), 'held' when it waits (released() hands it back if no logged drop comes), 'pass'
   * when the hold is full (count it now).
   */
  hold(drop: PacketDrop): HoldResult {
    const key = packetKey(drop);
    const now = this.now();
    const times = this.logged.get(key);
    if (times) {
      this.forgetOld(key, times, now);
      if (times.length > 0) {
        times.shift();
        this.loggedCount -= 1;
        if (times.length === 0) this.logged.delete(key);
        this.matched += 1;
        return 'matched';
      }
    }
    if (this.heldCount >= this.maxEntries) return 'pass';
    const held: Held = { drop, key, until: now + this.holdMs, matched: false };
    this.queue.push(held);
    const same = this.heldByKey.get(key);
    if (same) same.push(held);
    else this.heldByKey.set(key, [held]);
    this.heldCount += 1;
    return 'held';
  }

  /** Kernel drops whose wait is over with no logged twin; also forgets old logged packets. */
  released(): PacketDrop[] {
    const now = this.now();
    let n = 0;
    while (n < this.queue.length && this.queue[n]!.until <= now) n++;
    const out: PacketDrop[] = [];
    if (n > 0) {
      for (const h of this.queue.splice(0, n)) {
        if (h.matched) continue;
        this.unindex(h);
        out.push(h.drop);
      }
    }
    if (this.loggedCount > 0) for (const [key, times] of this.logged) this.forgetOld(key, times, now);
    return out;
  }

  /** Everything still held (a stop): counted rather than lost. */
  releaseAll(): PacketDrop[] {
    const out = this.queue.filter((h) => !h.matched).map((h) => h.drop);
    this.queue = [];
    this.heldByKey.clear();
    this.heldCount = 0;
    return out;
  }

  private unindex(h: Held): void {
    const same = this.heldByKey.get(h.key);
    if (!same) return;
    const i = same.indexOf(h);
    if (i >= 0) same.splice(i, 1);
    if (same.length === 0) this.heldByKey.delete(h.key);
    this.heldCount -= 1;
  }

  private forgetOld(key: string, times: number[], now: number): void {
    while (times.length > 0 && times[0]! < now - this.holdMs) {
      times.shift();
      this.loggedCount -= 1;
    }
    if (times.length === 0) this.logged.delete(key);
  }
}
