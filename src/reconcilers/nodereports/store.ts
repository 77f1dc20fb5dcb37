// The controller's memory of the agents' node reports (src/apis/nodereport.ts): per object, the
// last report of each node and when it came. Nothing of it is in the API server: a new leader
// starts empty and fills up within one heartbeat (see inGrace). From it the reconcilers write a
// summary of fixed size into status (summary.ts).
//
// Staleness: a node not heard from for REPORT_STALE_HEARTBEATS heartbeats is unhealthy ("no report
// since <time>"); after REPORT_FORGET_MS it is forgotten, and at once when the reconciler says it is
// no longer selected (or gone). A report that changes what the summary shows enqueues the object,
// a heartbeat that changes nothing does not.
import { REPORT_FORGET_MS, REPORT_HEARTBEAT_MS, REPORT_STALE_HEARTBEATS } from '../../apis/nodereport.js';

/**
 * The problems one report carries, with their time where the report says it (a gap's); the others
 * get the time they were first reported (the same message in the next report keeps it). `past`:
 * something that happened (a gap) rather than is (a failing source): listed, but the node is not
 * unhealthy for it.
 */
export type ProblemsOf<R> = (report: R) => Problem[];

export interface Problem {
  message: string;
  time?: number | undefined;
  past?: boolean;
}

export interface StoredReport<R> {
  node: string;
  report: R;
  receivedAt: number;
  /** Each problem's message, when it was first reported, and whether it is only a past event. */
  problems: Array<{ message: string; since: number; past: boolean }>;
}

export interface StoreOptions<R> {
  problemsOf: ProblemsOf<R>;
  /** Whether a report changes what the summary shows (health or counters): then the object is enqueued. */
  differs: (previous: R, next: R) => boolean;
  /** Told the name of an object whose summary changed. */
  onChange?: (name: string) => void;
  heartbeatMs?: number;
  staleAfterMs?: number;
  forgetAfterMs?: number;
  now?: () => number;
}

export class NodeReportStore<R extends { node: string }> {
  private readonly objects = new Map<string, Map<string, StoredReport<R>>>();
  readonly heartbeatMs: number;
  readonly staleAfterMs: number;
  readonly forgetAfterMs: number;
  private readonly now: () => number;
  /** When this replica started taking reports as the leader; undefined while it is not. */
  private leadingSince: number | undefined;

  constructor(private readonly opts: StoreOptions<R>) {
    this.heartbeatMs = opts.heartbeatMs ?? REPORT_HEARTBEAT_MS;
    this.staleAfterMs = opts.staleAfterMs ?? REPORT_STALE_HEARTBEATS * this.heartbeatMs;
    this.forgetAfterMs = opts.forgetAfterMs ?? REPORT_FORGET_MS;
    this.now = opts.now ?? Date.now;
  }

  /** The leader's state, told on every report and reconcile: losing it empties the store. */
  leading(isLeader: boolean): void {
    if (!isLeader) {
      this.leadingSince = undefined;
      this.objects.clear();
    } else this.leadingSince ??= this.now();
  }

  /**
   * Within one heartbeat of becoming leader not every agent has reported to this replica yet: a
   * summary written now would drop nodes that are fine. Returns the ms left, 0 after it.
   */
  graceLeftMs(): number {
    if (this.leadingSince === undefined) return this.heartbeatMs;
    return Math.max(0, this.leadingSince + this.heartbeatMs - this.now());
  }

  put(name: string, report: R): void {
    const now = this.now();
    let nodes = this.objects.get(name);
    if (!nodes) this.objects.set(name, (nodes = new Map()));
    const previous = nodes.get(report.node);
    const since = new Map((previous?.problems ?? []).map((p) => [p.message, p.since]));
    const problems = dedupe(this.opts.problemsOf(report)).map(({ message, time, past }) => ({ message, since: time ?? since.get(message) ?? now, past: past === true }));
    nodes.set(report.node, { node: report.node, report, receivedAt: now, problems });
    const wasStale = previous !== undefined && now - previous.receivedAt > this.staleAfterMs;
    if (!previous || wasStale || this.opts.differs(previous.report, report)) this.opts.onChange?.(name);
  }

  /** Forgets the object, or only the given node of it. */
  forget(name: string, node?: string): void {
    if (node === undefined) {
      this.objects.delete(name);
      return;
    }
    const nodes = this.objects.get(name);
    if (nodes?.delete(node) && nodes.size === 0) this.objects.delete(name);
  }

  /**
   * The object's reports of the nodes `keep` accepts (the selected ones), fresh or stale; the
   * others are forgotten, as are nodes silent for forgetAfterMs.
   */
  reports(name: string, keep: (node: string) => boolean = () => true): StoredReport<R>[] {
    const nodes = this.objects.get(name);
    if (!nodes) return [];
    const now = this.now();
    const out: StoredReport<R>[] = [];
    for (const [node, entry] of nodes) {
      if (!keep(node) || now - entry.receivedAt > this.forgetAfterMs) nodes.delete(node);
      else out.push(entry);
    }
    if (nodes.size === 0) this.objects.delete(name);
    return out;
  }

  /** Reports held, over all objects. */
  size(): number {
    let n = 0;
    for (const nodes of this.objects.values()) n += nodes.size;
    return n;
  }

  /** The report of one node, if it is known. */
  report(name: string, node: string): StoredReport<R> | undefined {
    return this.objects.get(name)?.get(node);
  }

  isStale(entry: StoredReport<R>): boolean {
    return this.now() - entry.receivedAt > this.staleAfterMs;
  }

  /** Ms until one of the object's nodes turns stale or is forgotten; undefined when it has none. */
  nextTransitionMs(name: string): number | undefined {
    const nodes = this.objects.get(name);
    if (!nodes || nodes.size === 0) return undefined;
    const now = this.now();
    let next = Infinity;
    for (const entry of nodes.values()) {
      const age = now - entry.receivedAt;
      const at = age <= this.staleAfterMs ? this.staleAfterMs - age : this.forgetAfterMs - age;
      next = Math.min(next, Math.max(0, at) + 1);
    }
    return next;
  }
}

function dedupe<P extends { message: string }>(problems: P[]): P[] {
  const seen = new Set<string>();
  return problems.filter((p) => (seen.has(p.message) ? false : (seen.add(p.message), true)));
}
