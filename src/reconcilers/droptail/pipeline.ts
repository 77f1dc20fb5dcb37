// From an accepted batch to Events, metrics and status, off the request path: the intake only
// queues the batch's drops (bounded in count and bytes, so a flood is refused with 503 +
// Retry-After rather than eating memory; agents keep a refused batch and send it again) and a
// fixed number of workers take them one by one:
//   expired? (lastSeen older than spec.expiration) -> ignored
//   seen before? (node, source, dropKey, firstSeen within expiration: a re-sent batch) -> only the
//     part of its count not counted yet (an agent restarted before saving its position re-reads a
//     window's drops, possibly with newer ones of the same key merged in)
//   resolve both ends (IP index; reverse DNS racing a short deadline, see reversedns.ts)
//   count it (metrics, status totals and recent drops)
//   Event on each Pod involved (events.ts), within the event budget (budget.ts); the ones over it
//     are counted in status.eventsSuppressed
import { createHash } from 'node:crypto';
import type { V1Node } from '@kubernetes/client-node';
import type { DropEndpoint, DropRecord, DropTail } from '../../apis/droptail.js';
import type { Informer } from '../../runtime/informer.js';
import { dropKey, isKnownProtocol, type AggregatedDrop, type DropBatch, type PacketDrop } from '../../apis/drops.js';
import { errorMessage, loggerFor } from '../../util/log.js';
import { DedupeTable } from './dedupe.js';
import type { DropEventWriter, Direction, EventOutcome } from './events.js';
import type { IpIndex, ResolvedEndpoint } from './ipindex.js';
import { batchDrops, dropToEventSeconds, packetDrops, pipelinePending } from './metrics.js';
import type { ReverseDns } from './reversedns.js';
import { settingsOf, type DropTailSettings } from './settings.js';
import type { DropStats } from './stats.js';

export interface PipelineDeps {
  dropTails: Informer<DropTail>;
  nodes: Informer<V1Node>;
  index: IpIndex;
  dns: ReverseDns;
  events: DropEventWriter;
  stats: DropStats;
  now?: () => number;
}

export interface DropPipelineOptions {
  /** Accepted drops waiting for their Events; a batch that does not fit is refused whole. */
  maxPending?: number;
  /** The same in bytes of memory (queued drops are held as their JSON text). Default 16 MiB. */
  maxPendingBytes?: number;
  workers?: number;
  /** How long a drop waits for a reverse DNS answer before it goes on with the bare IP. */
  dnsDeadlineMs?: number;
  /** Memory for the dedupe ids of counted drops (dedupe.ts: ~32 B each). Default 8 MiB, ~250,000 ids. */
  dedupeBytes?: number;
}

export const DEFAULT_MAX_PENDING_BYTES = 16 * 1024 * 1024;
export const DEFAULT_DEDUPE_BYTES = 8 * 1024 * 1024;
/** What a queued drop costs besides its text: the string's header and its slot in the batch's array. */
const QUEUED_DROP_OVERHEAD = 24;
/** Distinct values of the metrics' reason label; the kernel has about 130 reasons. */
const MAX_REASON_LABELS = 256;

interface WorkItem {
  dropTail: string;
  node: string;
  entry: AggregatedDrop;
  receivedAt: number;
}

/**
 * An accepted batch's drops waiting for a worker, each as its JSON text: ~300 B a drop, where the
 * decoded objects (a drop, its entry, a work item, their strings and boxed numbers) took ~700 B,
 * and a flood queued 100,000 of them.
 */
interface QueuedBatch {
  dropTail: string;
  node: string;
  receivedAt: number;
  drops: string[];
  next: number;
}

const EMPTY_BATCH: QueuedBatch = { dropTail: '', node: '', receivedAt: 0, drops: [], next: 0 };

export class DropPipeline {
  private readonly queue: QueuedBatch[] = [];
  private head = 0;
  private queued = 0;
  private queuedBytes = 0;
  private running = 0;
  private readonly maxPending: number;
  private readonly maxPendingBytes: number;
  private readonly workers: number;
  private readonly dnsDeadlineMs: number;
  private readonly now: () => number;
  /** Per dedupe id: how many of its drops are counted, and until when the id is remembered. */
  private readonly seen: DedupeTable;
  /** Per DropTail: the Event map is loaded from the cluster before its first drop is handled. */
  private readonly rebuilt = new Map<string, Promise<void>>();
  /** Metric label sets per DropTail, so turning metrics off (or deleting it) removes its series. */
  private readonly seriesByDropTail = new Map<string, Map<string, Record<string, string>>>();
  private readonly reasonLabels = new Set<string>();
  private readonly idleWaiters: Array<() => void> = [];
  private readonly log = loggerFor('droptail/pipeline');

  constructor(
    private readonly deps: PipelineDeps,
    opts: DropPipelineOptions = {},
  ) {
    this.maxPending = opts.maxPending ?? 100_000;
    this.maxPendingBytes = opts.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    this.workers = opts.workers ?? 32;
    this.dnsDeadlineMs = opts.dnsDeadlineMs ?? 250;
    this.seen = new DedupeTable(opts.dedupeBytes ?? DEFAULT_DEDUPE_BYTES);
    this.now = deps.now ?? Date.now;
  }

  get pending(): number {
    return this.queued + this.running;
  }

  /** Bytes the queued drops take (their text and overhead). */
  get pendingBytes(): number {
    return this.queuedBytes;
  }

  /**
   * Whether `drops` more fit, `bytes` being the size of their batch's body (more than the drops'
   * text queued from it) and `reading` the bytes of other batches the intake is reading, which
   * share the budget; the intake refuses a batch that does not fit, whole. With nothing queued or
   * read any batch the intake accepts fits, so no batch size is refused forever.
   */
  hasRoomFor(drops: number, bytes = 0, reading = 0): boolean {
    if (this.pending + drops > this.maxPending) return false;
    const used = this.queuedBytes + reading;
    return used === 0 || used + bytes + drops * QUEUED_DROP_OVERHEAD <= this.maxPendingBytes;
  }

  submit(dropTail: string, batch: DropBatch): void {
    if (batch.drops.length === 0) return;
    const drops = batch.drops.map((entry) => JSON.stringify(entry));
    for (const text of drops) this.queuedBytes += text.length + QUEUED_DROP_OVERHEAD;
    this.queued += drops.length;
    this.queue.push({ dropTail, node: batch.node, receivedAt: this.now(), drops, next: 0 });
    pipelinePending.set(this.pending);
    this.pump();
  }

  /** Resolves once every submitted drop is handled (for tests and benchmarks). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** A DropTail was deleted, or its metrics were turned off: its series go. */
  forgetMetrics(dropTail: string): void {
    for (const labels of this.seriesByDropTail.get(dropTail)?.values() ?? []) packetDrops.remove(labels);
    this.seriesByDropTail.delete(dropTail);
  }

  forget(dropTail: string): void {
    this.forgetMetrics(dropTail);
    this.rebuilt.delete(dropTail);
    this.deps.events.forget(dropTail);
    this.deps.stats.forget(dropTail);
  }

  private pump(): void {
    while (this.running < this.workers && this.queued > 0) {
      const item = this.dequeue();
      this.running++;
      void this.handle(item)
        .catch((err: unknown) => this.log.error('drop handling failed', { droptail: item.dropTail, node: item.node, error: errorMessage(err) }))
        .finally(() => {
          this.running--;
          pipelinePending.set(this.pending);
          this.pump();
          if (this.pending === 0) this.idleWaiters.splice(0).forEach((w) => w());
        });
    }
  }

  /** The oldest queued drop, decoded. */
  private dequeue(): WorkItem {
    let batch = this.queue[this.head]!;
    while (batch.next >= batch.drops.length) batch = this.queue[++this.head]!;
    const text = batch.drops[batch.next]!;
    batch.drops[batch.next++] = ''; // its text is garbage from now on
    this.queued--;
    this.queuedBytes -= text.length + QUEUED_DROP_OVERHEAD;
    if (batch.next === batch.drops.length) {
      this.queue[this.head++] = EMPTY_BATCH;
      if (this.head > 64 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
    }
    return { dropTail: batch.dropTail, node: batch.node, entry: JSON.parse(text) as AggregatedDrop, receivedAt: batch.receivedAt };
  }

  private async handle(item: WorkItem): Promise<void> {
    const dropTail = this.deps.dropTails.get(item.dropTail);
    if (!dropTail) {
      batchDrops.inc({ result: 'unknown_droptail' });
      return;
    }
    const settings = settingsOf(dropTail);
    await this.ensureRebuilt(item.dropTail, settings.expirationMs);
    const { entry } = item;
    const lastSeenMs = Date.parse(entry.lastSeen);
    if (this.now() - lastSeenMs > settings.expirationMs) {
      batchDrops.inc({ result: 'expired' });
      return;
    }
    const id = dropId(item.dropTail, item.node, entry);
    const fresh = this.uncounted(id, entry.count, lastSeenMs + settings.expirationMs);
    if (fresh === 0) {
      batchDrops.inc({ result: 'duplicate' });
      return;
    }
    batchDrops.inc({ result: 'processed' });
    item = fresh === entry.count ? item : { ...item, entry: { ...entry, count: fresh } };
    const [srcEnd, dstEnd] = await Promise.all([this.resolve(entry.drop.src, settings), this.resolve(entry.drop.dst, settings)]);
    const src = srcEnd.endpoint;
    const dst = dstEnd.endpoint;
    const record = dropRecord(item.node, item.entry, src, dst);
    if (settings.metrics) this.count(item.dropTail, item.node, item.entry, src, dst);
    this.deps.stats.record(dropTail, record, settings.recentDropsLimit);
    await this.emitEvents(item, dropTail, settings, srcEnd, dstEnd, id, entry.count);
    dropToEventSeconds.observe((this.now() - item.receivedAt) / 1000);
  }

  private ensureRebuilt(dropTail: string, expirationMs: number): Promise<void> {
    let done = this.rebuilt.get(dropTail);
    if (!done) {
      done = this.deps.events.rebuild(dropTail).then(
        (ids) => {
          for (const { id, lastSeenMs, count } of ids) {
            const known = this.seen.get(id);
            this.seen.set(id, Math.max(lastSeenMs + expirationMs, known?.untilMs ?? 0), Math.max(count, known?.count ?? 0));
          }
        },
        (err: unknown) => {
          // Without the map, repeats may start new Events; still better than dropping the drops.
          this.log.warn('could not list existing Events; repeats may start new ones', { droptail: dropTail, error: errorMessage(err) });
        },
      );
      this.rebuilt.set(dropTail, done);
    }
    return done;
  }

  /** How many of an aggregated drop's count are not counted yet under its id (0: a pure re-send). */
  private uncounted(id: string, count: number, until: number): number {
    const now = this.now();
    const known = this.seen.get(id);
    const already = known !== undefined && known.untilMs >= now ? known.count : 0;
    if (count <= already) return 0;
    // When full, the oldest insertion is forgotten (dedupe.ts).
    this.seen.set(id, Math.max(until, known?.untilMs ?? 0), count);
    return count - already;
  }

  private async resolve(ip: string, settings: DropTailSettings): Promise<ResolvedEndpoint> {
    const known = this.deps.index.resolve(ip);
    if (known) return known;
    if (!settings.reverseDNS) return { endpoint: { ip, kind: 'Unknown' } };
    const name = await this.deps.dns.resolve(ip, this.dnsDeadlineMs);
    return { endpoint: name ? { ip, kind: 'External', name } : { ip, kind: 'Unknown' } };
  }

  private count(dropTail: string, node: string, entry: AggregatedDrop, src: DropEndpoint, dst: DropEndpoint): void {
    const labels = {
      droptail: dropTail,
      // Only nodes the cluster knows: a caller cannot invent label values.
      node: this.deps.nodes.get(node) ? node : 'unknown',
      protocol: isKnownProtocol(entry.drop.protocol) ? entry.drop.protocol : 'other',
      src_namespace: namespaceBucket(src),
      dst_namespace: namespaceBucket(dst),
      // Logged drops have no reason: their series keep the labels they had before kernel sources.
      ...(entry.drop.reason === undefined ? {} : { reason: this.reasonLabel(entry.drop.reason) }),
    };
    packetDrops.inc(labels, entry.count);
    let series = this.seriesByDropTail.get(dropTail);
    if (!series) this.seriesByDropTail.set(dropTail, (series = new Map()));
    series.set(Object.values(labels).join('\0'), labels);
  }

  /** The kernel's reason names are a bounded set (about 130), but a label never takes more than MAX_REASON_LABELS. */
  private reasonLabel(reason: string): string {
    if (this.reasonLabels.has(reason)) return reason;
    if (this.reasonLabels.size >= MAX_REASON_LABELS) return 'other';
    this.reasonLabels.add(reason);
    return reason;
  }

  private async emitEvents(item: WorkItem, dropTail: DropTail, settings: DropTailSettings, src: ResolvedEndpoint, dst: ResolvedEndpoint, id: string, countedForId: number): Promise<void> {
    const writes: Array<Promise<EventOutcome>> = [];
    const service = serviceText(item.entry.drop);
    const ends: Array<[ResolvedEndpoint, Direction, DropEndpoint]> = [[dst, 'receiving', src.endpoint], [src, 'sending', dst.endpoint]];
    for (const [{ endpoint: self, uid }, direction, peer] of ends) {
      if (self.kind !== 'Pod' || !self.namespace || !self.name) continue;
      writes.push(
        this.deps.events.record({
          dropTail: dropTail.metadata.name ?? '',
          eventReason: settings.eventReason,
          reportingComponent: settings.reportingComponent,
          repeatIntervalMs: settings.repeatIntervalMs,
          pod: { namespace: self.namespace, name: self.name, ...(uid ? { uid } : {}) },
          direction,
          peer,
          service,
          ...(item.entry.drop.reason ? { dropReason: item.entry.drop.reason } : {}),
          node: item.node,
          count: item.entry.count,
          firstSeen: item.entry.firstSeen,
          lastSeen: item.entry.lastSeen,
          dropId: id,
          countedForId,
        }),
      );
    }
    const suppressed = (await Promise.all(writes)).filter((o) => o === 'suppressed').length;
    if (suppressed > 0) this.deps.stats.suppressed(dropTail, suppressed);
  }
}

/** Same DropTail, node, source, drop and first time: the same aggregated drop sent again. */
export function dropId(dropTail: string, node: string, entry: AggregatedDrop): string {
  const key = [dropTail, node, entry.source, dropKey(entry.drop), Date.parse(entry.firstSeen)].join('|');
  return createHash('sha1').update(key).digest('base64url').slice(0, 16);
}

/** "UDP/53", "TCP/443", "ICMP type 3 code 1", "GRE". */
export function serviceText(drop: PacketDrop): string {
  if (drop.dstPort !== undefined) return `${drop.protocol}/${drop.dstPort}`;
  if (drop.icmpType !== undefined) return `${drop.protocol} type ${drop.icmpType}${drop.icmpCode ? ` code ${drop.icmpCode}` : ''}`;
  return drop.protocol;
}

/** The namespace label of one end: bounded by the cluster's namespaces plus three words. */
export function namespaceBucket(endpoint: DropEndpoint): string {
  switch (endpoint.kind) {
    case 'Pod':
      return endpoint.namespace ?? 'external';
    case 'Service':
      return `service:${endpoint.namespace ?? ''}`;
    case 'Node':
      return 'node';
    default:
      return 'external';
  }
}

function direction(drop: PacketDrop): DropRecord['direction'] | undefined {
  const inIf = drop.inInterface ?? '';
  const outIf = drop.outInterface ?? '';
  if (inIf && outIf) return 'forward';
  if (inIf) return 'ingress';
  if (outIf) return 'egress';
  return undefined;
}

/** A status record without undefined fields (they would make every status comparison differ). */
export function dropRecord(node: string, entry: AggregatedDrop, src: DropEndpoint, dst: DropEndpoint): DropRecord {
  const { drop } = entry;
  const record: DropRecord = { time: new Date(entry.lastSeen).toISOString(), node, protocol: drop.protocol.slice(0, 16), src, dst, count: entry.count };
  if (drop.srcPort !== undefined) record.srcPort = drop.srcPort;
  if (drop.dstPort !== undefined) record.dstPort = drop.dstPort;
  const dir = direction(drop);
  if (dir) record.direction = dir;
  if (drop.prefix) record.prefix = drop.prefix.slice(0, 64);
  if (drop.reason) record.reason = drop.reason;
  return record;
}
