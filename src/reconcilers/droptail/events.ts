// Events on the Pods a drop involves, in the words kube-iptables-tailer users know:
//   receiver: "Packet dropped when receiving traffic from storefront/logging-7d9 (IP: 10.1.2.3, UDP/53)"
//   sender:   "Packet dropped when sending traffic to service storefront/web (IP: 10.96.0.10, TCP/80)"
//
// One Event per (DropTail, Pod, direction, peer IP, protocol/port) "pair". A repeat of the pair
// within repeatInterval of its previous drop raises that Event's count and lastTimestamp (core/v1
// Event semantics, which `kubectl describe pod` shows as "x5 over 3m") instead of creating a new
// Event. Which Event belongs to which pair is kept in a bounded map and written on the Event
// itself (label + annotations), so a restarted controller rebuilds the map from the Events that
// exist instead of starting new ones, and knows which drops (dedupe ids) it already counted.
import { createHash } from 'node:crypto';
import { CoreV1Api, type CoreV1Event, type KubeConfig } from '@kubernetes/client-node';
import type { DropEndpoint } from '../../apis/droptail.js';
import { errorMessage, loggerFor } from '../../util/log.js';
import { KubeHttp, KubeHttpError } from './kubehttp.js';
import { dropEvents } from './metrics.js';

export const DROPTAIL_LABEL = 'netwarden.io/droptail';
export const PAIR_ANNOTATION = 'netwarden.io/drop-pair';
export const DROP_IDS_ANNOTATION = 'netwarden.io/drop-ids';
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
}

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
}

export class DropEventWriter {
  private readonly api: CoreV1Api;
  private readonly http: KubeHttp;
  private readonly pairs = new Map<string, PairState>();
  /** Writes of one pair run one after the other, so a burst makes one Event, not several. */
  private readonly pairQueues = new Map<string, Promise<void>>();
  private readonly maxPairs: number;
  private readonly instance: string;
  private readonly log = loggerFor('droptail/events');

  constructor(kc: KubeConfig, opts: DropEventWriterOptions = {}) {
    this.api = kc.makeApiClient(CoreV1Api);
    this.http = new KubeHttp(kc);
    this.maxPairs = opts.maxPairs ?? 50_000;
    this.instance = opts.instance ?? 'netwarden-controller';
  }

  /** Creates or bumps the Event of the drop's pair; never throws (a failed write is logged and counted). */
  record(req: DropEventRequest): Promise<void> {
    const pair = pairId(req);
    const previous = this.pairQueues.get(pair) ?? Promise.resolve();
    const next = previous.then(() => this.write(pair, req)).catch((err: unknown) => {
      dropEvents.inc({ result: 'failed' });
      this.log.warn('event write failed', { pod: `${req.pod.namespace}/${req.pod.name}`, error: errorMessage(err) });
    });
    this.pairQueues.set(pair, next);
    void next.finally(() => {
      if (this.pairQueues.get(pair) === next) this.pairQueues.delete(pair);
    });
    return next;
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
      this.remember(pair, { dropTail, namespace, eventName, count: event.count ?? 1, lastSeenMs, dropIds });
      for (const entry of dropIds) ids.push({ ...parseDropIdEntry(entry), lastSeenMs });
    }
    this.log.info('rebuilt event map', { droptail: dropTail, events: events.length });
    return ids;
  }

  /** Forgets a deleted DropTail's pairs (its Events stay and age out like any Event). */
  forget(dropTail: string): void {
    for (const [pair, state] of this.pairs) if (state.dropTail === dropTail) this.pairs.delete(pair);
  }

  get size(): number {
    return this.pairs.size;
  }

  private async write(pair: string, req: DropEventRequest): Promise<void> {
    const state = this.pairs.get(pair);
    const firstMs = Date.parse(req.firstSeen);
    const lastMs = Date.parse(req.lastSeen);
    if (state && firstMs - state.lastSeenMs <= req.repeatIntervalMs) {
      if (await this.bump(pair, state, req, lastMs)) return;
    }
    await this.create(pair, req, lastMs);
  }

  /** false when the Event is gone (expired by the API server's event TTL, deleted): create anew. */
  private async bump(pair: string, state: PairState, req: DropEventRequest, lastMs: number): Promise<boolean> {
    const count = state.count + req.count;
    const dropIds = [...state.dropIds.filter((e) => parseDropIdEntry(e).id !== req.dropId), dropIdEntry(req)].slice(-MAX_IDS_PER_EVENT);
    const patch = {
      metadata: { annotations: { [DROP_IDS_ANNOTATION]: dropIds.join(',') } },
      count,
      lastTimestamp: new Date(Math.max(lastMs, state.lastSeenMs)).toISOString(),
      // The peer may have a name now that it did not have at first (reverse DNS answered late).
      message: message(req),
    };
    try {
      await this.http.request('PATCH', eventPath(state.namespace, state.eventName), patch, 'application/merge-patch+json');
    } catch (err) {
      if (err instanceof KubeHttpError && err.status === 404) {
        this.pairs.delete(pair);
        return false;
      }
      throw err;
    }
    this.remember(pair, { ...state, count, lastSeenMs: Math.max(lastMs, state.lastSeenMs), dropIds });
    dropEvents.inc({ result: 'bumped' });
    return true;
  }

  private async create(pair: string, req: DropEventRequest, lastMs: number): Promise<void> {
    const eventName = `${req.pod.name.slice(0, 200)}.${pair.slice(0, 10)}${Date.parse(req.firstSeen).toString(16)}`;
    const body = {
      metadata: {
        name: eventName,
        namespace: req.pod.namespace,
        labels: { [DROPTAIL_LABEL]: labelValue(req.dropTail) },
        annotations: { [PAIR_ANNOTATION]: pair, [DROP_IDS_ANNOTATION]: dropIdEntry(req), 'netwarden.io/droptail-name': req.dropTail },
      },
      involvedObject: { kind: 'Pod', apiVersion: 'v1', namespace: req.pod.namespace, name: req.pod.name, uid: req.pod.uid },
      reason: req.eventReason,
      message: message(req),
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
    this.remember(pair, { dropTail: req.dropTail, namespace: req.pod.namespace, eventName, count: req.count, lastSeenMs: lastMs, dropIds: [dropIdEntry(req)] });
    dropEvents.inc({ result: 'created' });
  }

  /** Most recently used last; the least recently used pair goes when the map is full. */
  private remember(pair: string, state: PairState): void {
    this.pairs.delete(pair);
    if (this.pairs.size >= this.maxPairs) this.pairs.delete(this.pairs.keys().next().value!);
    this.pairs.set(pair, state);
  }
}

/** The Event message, kube-iptables-tailer's sentence with the peer's identity, IP and service. */
export function message(req: Pick<DropEventRequest, 'direction' | 'peer' | 'service'>): string {
  const verb = req.direction === 'receiving' ? 'receiving traffic from' : 'sending traffic to';
  return `Packet dropped when ${verb} ${describeEndpoint(req.peer)} (IP: ${req.peer.ip}, ${req.service})`;
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

function pairId(req: DropEventRequest): string {
  const key = [req.dropTail, req.eventReason, req.pod.namespace, req.pod.name, req.direction, req.peer.ip, req.service].join('|');
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
