// Events on the Pods a drop involves, in the words kube-iptables-tailer users know:
//   receiver: "Packet dropped when receiving traffic from storefront/logging-7d9 (IP: 10.1.2.3, UDP/53)"
//   sender:   "Packet dropped when sending traffic to service storefront/web (IP: 10.96.0.10, TCP/80)"
//   kernel:   "Packet dropped when receiving traffic from storefront/logging-7d9 (IP: 10.1.2.3, UDP/53): NETFILTER_DROP"
//
// One Event per (DropTail, Pod, direction, peer IP, protocol/port) "pair". A repeat of the pair
// within repeatInterval of its previous drop raises that Event's count and lastTimestamp (core/v1
// Event semantics, which `kubectl describe pod` shows as "x5 over 3m") instead of creating a new
// Event. Which Event belongs to which pair is kept in a bounded map and written on the Event
// itself (label + annotations), so a restarted controller rebuilds the map from the Events that
// exist instead of starting new ones, and knows which drops (dedupe ids) it already counted.
//
// Every write asks the event budget first (budget.ts): over it, the drop is folded into the Pod's
// aggregated Event ("(combined from similar events): ..."), one per DropTail and Pod, itself a
// pair of this map (bumped, rebuilt after a restart) with the drops folded in on an annotation.
import { createHash } from 'node:crypto';
import { CoreV1Api, type CoreV1Event, type KubeConfig } from '@kubernetes/client-node';
import type { DropEndpoint } from '../../apis/droptail.js';
import { errorMessage, loggerFor } from '../../util/log.js';
import { DEFAULT_EVENT_BUDGET, EventBudget, type EventBudgetOptions, type Fold, type FoldInput } from './budget.js';
import { KubeHttp, KubeHttpError } from './kubehttp.js';
import { dropEvents } from './metrics.js';

export const DROPTAIL_LABEL = 'netwarden.io/droptail';
export const PAIR_ANNOTATION = 'netwarden.io/drop-pair';
export const DROP_IDS_ANNOTATION = 'netwarden.io/drop-ids';
/** On a Pod's aggregated Event: how many drops over the event budget it has counted. */
export const FOLDED_ANNOTATION = 'netwarden.io/folded-drops';
export const AGGREGATE_PREFIX = '(combined from similar events): ';
/** Dedupe ids kept on an Event: enough for the batches an agent may re-send after a restart. */
const MAX_IDS_PER_EVENT = 32;

export type Direction = 'receiving' | 'sending';

export interface DropEventRequest {
  dropTail: string;
  eventReason: string;
  reportingComponent: string;
  repeatIntervalMs: number;
  /** The Pod the Event is about. */
  pod: { namespace: string; name: string; uid?: string };
  direction: Direction;
  /** The other end of the packet. */
  peer: DropEndpoint;
  /** "UDP/53", "TCP/443", "ICMP type 8", "GRE". */
  service: string;
  /** The kernel's drop reason (kernel sources): NETFILTER_DROP, NO_SOCKET, ... */
  dropReason?: string;
  node: string;
  count: number;
  firstSeen: string;
  lastSeen: string;
  /** The dedupe id of the aggregated drop, remembered on the Event with countedForId. */
  dropId: string;
  /** How many drops of that id are counted in all (a re-read after an agent restart may add some). */
  countedForId: number;
}

interface PairState {
  dropTail: string;
  namespace: string;
  eventName: string;
  count: number;
  lastSeenMs: number;
  dropIds: string[];
  /** Aggregated Events only: the drops folded in so far. */
  folded?: number;
}

/** One write: a drop's own Event, or a Pod's aggregated one (folded set). */
interface EventWrite {
  pair: string;
  req: DropEventRequest;
  message: string;
  /** "id:count" of the drop (pair Events only). */
  dropIdEntry?: string;
  /** Drops folded into an aggregated Event by this write. */
  folded?: number;
}

/** What became of a drop's Event: written, folded into the Pod's aggregate (over budget), failed. */
export type EventOutcome = 'written' | 'suppressed' | 'failed';

/** What a restart finds on existing Events: ids of drops already counted, how many, their last time. */
export interface RebuiltDropId {
  id: string;
  lastSeenMs: number;
  count: number;
}

/** Annotation entries are "id:count" ("id" alone, from before counts were kept: all counted). */
function parseDropIdEntry(entry: string): { id: string; count: number } {
  const [id = '', count] = entry.split(':');
  const n = Number(count);
  return { id, count: count !== undefined && Number.isInteger(n) ? n : Number.MAX_SAFE_INTEGER };
}

function dropIdEntry(req: DropEventRequest): string {
  return `${req.dropId}:${req.countedForId}`;
}

export interface DropEventWriterOptions {
  maxPairs?: number;
  /** Name of this controller replica, for reportingInstance. */
  instance?: string;
  budget?: Partial<EventBudgetOptions>;
  /** How often aggregates over budget are looked at for writing. */
  foldTickMs?: number;
}

export class DropEventWriter {
  private readonly api: CoreV1Api;
  private readonly http: KubeHttp;
  private readonly pairs = new Map<string, PairState>();
  /** Writes of one pair run one after the other, so a burst makes one Event, not several. */
  private readonly pairQueues = new Map<string, Promise<EventOutcome>>();
  private readonly maxPairs: number;
  private readonly instance: string;
  private readonly log = loggerFor('droptail/events');
  readonly budget: EventBudget<DropEventRequest>;
  private readonly foldTimer: NodeJS.Timeout;

  constructor(kc: KubeConfig, opts: DropEventWriterOptions = {}) {
    this.api = kc.makeApiClient(CoreV1Api);
    this.http = new KubeHttp(kc);
    this.maxPairs = opts.maxPairs ?? 50_000;
    this.instance = opts.instance ?? 'netwarden-controller';
    this.budget = new EventBudget({ ...DEFAULT_EVENT_BUDGET, ...opts.budget });
    this.foldTimer = setInterval(() => this.writeAggregates(), opts.foldTickMs ?? 250);
    this.foldTimer.unref();
  }

  /**
   * Creates or bumps the Event of the drop's pair, or folds it into the Pod's aggregated Event when
   * over budget; never throws (a failed write is logged and counted).
   */
  async record(req: DropEventRequest): Promise<EventOutcome> {
    if (!this.budget.admit(foldInput(req))) return 'suppressed';
    const pair = pairId(req);
    return this.enqueue(pair, req, () => this.write({ pair, req, message: message(req), dropIdEntry: dropIdEntry(req) }));
  }

  /** Stops looking at aggregates (tests; the process exits otherwise). */
  close(): void {
    clearInterval(this.foldTimer);
  }

  /** Writes of one pair one after the other. */
  private enqueue(pair: string, req: DropEventRequest, write: () => Promise<EventOutcome>): Promise<EventOutcome> {
    const previous: Promise<unknown> = this.pairQueues.get(pair) ?? Promise.resolve();
    const next = previous.then(write).catch((err: unknown): EventOutcome => {
      dropEvents.inc({ result: 'failed' });
      this.log.warn('event write failed', { pod: `${req.pod.namespace}/${req.pod.name}`, error: errorMessage(err) });
      return 'failed';
    });
    this.pairQueues.set(pair, next);
    void next.finally(() => {
      if (this.pairQueues.get(pair) === next) this.pairQueues.delete(pair);
    });
    return next;
  }

  /** The aggregates the budget lets through now, one Event write each; a failed one goes back. */
  private writeAggregates(): void {
    for (const fold of this.budget.takeDue()) {
      const write = aggregateWrite(fold);
      void this.enqueue(write.pair, write.req, () => this.write(write)).then((outcome) => {
        if (outcome === 'failed') this.budget.restore(fold);
      });
    }
  }

  /** Loads the pairs of a DropTail's existing Events; returns the drop ids they have counted. */
  async rebuild(dropTail: string): Promise<RebuiltDropId[]> {
    const list = await this.api.listEventForAllNamespaces({ labelSelector: `${DROPTAIL_LABEL}=${labelValue(dropTail)}` });
    const ids: RebuiltDropId[] = [];
    const events = [...list.items].sort((a, b) => timeOf(a) - timeOf(b));
    for (const event of events) {
      const pair = event.metadata?.annotations?.[PAIR_ANNOTATION];
      const namespace = event.metadata?.namespace;
      const eventName = event.metadata?.name;
      if (!pair || !namespace || !eventName) continue;
      const lastSeenMs = timeOf(event);
      const dropIds = (event.metadata?.annotations?.[DROP_IDS_ANNOTATION] ?? '').split(',').filter(Boolean);
      const folded = Number(event.metadata?.annotations?.[FOLDED_ANNOTATION] ?? NaN);
      this.remember(pair, { dropTail, namespace, eventName, count: event.count ?? 1, lastSeenMs, dropIds, ...(Number.isInteger(folded) ? { folded } : {}) });
      for (const entry of dropIds) ids.push({ ...parseDropIdEntry(entry), lastSeenMs });
    }
    this.log.info('rebuilt event map', { droptail: dropTail, events: events.length });
    return ids;
  }

  /** Forgets a deleted DropTail's pairs (its Events stay and age out like any Event). */
  forget(dropTail: string): void {
    this.budget.forget(dropTail);
    for (const [pair, state] of this.pairs) if (state.dropTail === dropTail) this.pairs.delete(pair);
  }

  get size(): number {
    return this.pairs.size;
  }

  private async write(w: EventWrite): Promise<EventOutcome> {
    const state = this.pairs.get(w.pair);
    const firstMs = Date.parse(w.req.firstSeen);
    const lastMs = Date.parse(w.req.lastSeen);
    // An aggregated Event is one per Pod: always bumped while it exists.
    if (state && (w.folded !== undefined || firstMs - state.lastSeenMs <= w.req.repeatIntervalMs)) {
      if (await this.bump(w, state, lastMs)) return 'written';
      // The Event is gone: creating it anew is a second request, which needs a token of its own.
      if (w.folded === undefined && !this.budget.admitRetry(foldInput(w.req))) return 'suppressed';
    }
    await this.create(w, lastMs);
    return 'written';
  }

  /** false when the Event is gone (expired by the API server's event TTL, deleted): create anew. */
  private async bump(w: EventWrite, state: PairState, lastMs: number): Promise<boolean> {
    const count = state.count + w.req.count;
    const dropIds = w.dropIdEntry ? [...state.dropIds.filter((e) => parseDropIdEntry(e).id !== w.req.dropId), w.dropIdEntry].slice(-MAX_IDS_PER_EVENT) : state.dropIds;
    const folded = w.folded === undefined ? undefined : (state.folded ?? 0) + w.folded;
    const patch = {
      metadata: { annotations: annotations(dropIds, folded) },
      count,
      lastTimestamp: new Date(Math.max(lastMs, state.lastSeenMs)).toISOString(),
      // The peer may have a name now that it did not have at first (reverse DNS answered late).
      message: folded === undefined ? w.message : aggregateMessage(folded, count, w.message),
    };
    try {
      await this.http.request('PATCH', eventPath(state.namespace, state.eventName), patch, 'application/merge-patch+json');
    } catch (err) {
      if (err instanceof KubeHttpError && err.status === 404) {
        this.pairs.delete(w.pair);
        return false;
      }
      throw err;
    }
    this.remember(w.pair, { ...state, count, lastSeenMs: Math.max(lastMs, state.lastSeenMs), dropIds, ...(folded === undefined ? {} : { folded }) });
    dropEvents.inc({ result: folded === undefined ? 'bumped' : 'aggregated' });
    return true;
  }

  private async create(w: EventWrite, lastMs: number): Promise<void> {
    const { req, pair } = w;
    const eventName = `${req.pod.name.slice(0, 200)}.${pair.slice(0, 10)}${Date.parse(req.firstSeen).toString(16)}`;
    const dropIds = w.dropIdEntry ? [w.dropIdEntry] : [];
    const body = {
      metadata: {
        name: eventName,
        namespace: req.pod.namespace,
        labels: { [DROPTAIL_LABEL]: labelValue(req.dropTail) },
        annotations: { [PAIR_ANNOTATION]: pair, ...annotations(dropIds, w.folded), 'netwarden.io/droptail-name': req.dropTail },
      },
      involvedObject: { kind: 'Pod', apiVersion: 'v1', namespace: req.pod.namespace, name: req.pod.name, uid: req.pod.uid },
      reason: req.eventReason,
      message: w.folded === undefined ? w.message : aggregateMessage(w.folded, req.count, w.message),
      type: 'Warning',
      count: req.count,
      firstTimestamp: new Date(req.firstSeen).toISOString(),
      lastTimestamp: new Date(lastMs).toISOString(),
      source: { component: req.reportingComponent, host: req.node },
      reportingComponent: req.reportingComponent,
      reportingInstance: this.instance,
    };
    try {
      await this.http.request('POST', eventPath(req.pod.namespace), body);
    } catch (err) {
      // The same pair and firstSeen already made this Event (a re-sent drop the id map had lost).
      if (err instanceof KubeHttpError && err.status === 409) return;
      throw err;
    }
    this.remember(pair, { dropTail: req.dropTail, namespace: req.pod.namespace, eventName, count: req.count, lastSeenMs: lastMs, dropIds, ...(w.folded === undefined ? {} : { folded: w.folded }) });
    dropEvents.inc({ result: w.folded === undefined ? 'created' : 'aggregated' });
  }

  /** Most recently used last; the least recently used pair goes when the map is full. */
  private remember(pair: string, state: PairState): void {
    this.pairs.delete(pair);
    if (this.pairs.size >= this.maxPairs) this.pairs.delete(this.pairs.keys().next().value!);
    this.pairs.set(pair, state);
  }
}

/** The Event message, kube-iptables-tailer's sentence with the peer's identity, IP and service. */
export function message(req: Pick<DropEventRequest, 'direction' | 'peer' | 'service' | 'dropReason'>): string {
  const verb = req.direction === 'receiving' ? 'receiving traffic from' : 'sending traffic to';
  const reason = req.dropReason ? `: ${req.dropReason}` : '';
  return `Packet dropped when ${verb} ${describeEndpoint(req.peer)} (IP: ${req.peer.ip}, ${req.service})${reason}`;
}

/** "storefront/logging-7d9", "service storefront/web", "node worker-1", "dns.example.org", "unknown". */
export function describeEndpoint(endpoint: DropEndpoint): string {
  switch (endpoint.kind) {
    case 'Pod':
      return `${endpoint.namespace}/${endpoint.name}`;
    case 'Service':
      return `service ${endpoint.namespace}/${endpoint.name}`;
    case 'Node':
      return `node ${endpoint.name}`;
    case 'External':
      return endpoint.name ?? 'unknown';
    default:
      return 'unknown';
  }
}

function eventPath(namespace: string, name?: string): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/events${name ? `/${encodeURIComponent(name)}` : ''}`;
}

/** What the budget needs of a drop's write, and keeps of it should it fold. */
function foldInput(req: DropEventRequest): FoldInput<DropEventRequest> {
  const pod = `${req.pod.namespace}/${req.pod.name}`;
  return { pod, key: `${req.dropTail}|${req.eventReason}|${pod}`, owner: req.dropTail, packets: req.count, firstSeen: req.firstSeen, lastSeen: req.lastSeen, sample: req };
}

/** A Pod's aggregated Event: a pair of its own, its count the packets, the last drop's words. */
function aggregateWrite(fold: Fold<DropEventRequest>): EventWrite {
  const req = { ...fold.last, count: fold.packets, firstSeen: fold.firstSeen, lastSeen: fold.lastSeen };
  const pair = createHash('sha1').update(`aggregate|${fold.key}`).digest('hex').slice(0, 20);
  return { pair, req, message: message(fold.last), folded: fold.drops };
}

/**
 * "(combined from similar events): 4210 drops (4210 packets) on this Pod were over the event
 * budget and are counted here, not in Events of their own; the last: Packet dropped when ..."
 */
export function aggregateMessage(folded: number, packets: number, last: string): string {
  return `${AGGREGATE_PREFIX}${folded} drops (${packets} packets) on this Pod were over the event budget and are counted here, not in Events of their own; the last: ${last}`;
}

function annotations(dropIds: string[], folded: number | undefined): Record<string, string> {
  return folded === undefined ? { [DROP_IDS_ANNOTATION]: dropIds.join(',') } : { [FOLDED_ANNOTATION]: String(folded) };
}

function pairId(req: DropEventRequest): string {
  // A drop reason makes a pair of its own (its message differs); logged drops keep their old pair ids.
  const key = [req.dropTail, req.eventReason, req.pod.namespace, req.pod.name, req.direction, req.peer.ip, req.service, ...(req.dropReason ? [req.dropReason] : [])].join('|');
  return createHash('sha1').update(key).digest('hex').slice(0, 20);
}

/** Label values are at most 63 characters; longer DropTail names are hashed. */
export function labelValue(dropTail: string): string {
  return dropTail.length <= 63 ? dropTail : `h-${createHash('sha1').update(dropTail).digest('hex').slice(0, 40)}`;
}

function timeOf(event: CoreV1Event): number {
  const t = event.lastTimestamp ?? event.eventTime ?? event.firstTimestamp ?? event.metadata?.creationTimestamp;
  return t ? new Date(t as unknown as string).getTime() : 0;
}
