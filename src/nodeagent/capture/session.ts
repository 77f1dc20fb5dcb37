// Everything one PacketCapture does on this node: a PodCapture per local target pod that this
// node's pods show the capture's namespace owns, started when the node budget has a slot for it,
// stopped as the schedule, the targets and the limits say, and the node's status entry from them.
import { existsSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import type { CaptureFiles, CaptureFormat, CaptureTarget, NotCaptured, NotCapturedReason, PacketCapture } from '../../apis/packetcapture.js';
import { errorMessage, loggerFor, type Logger } from '../../util/log.js';
import type { NodeCaptureBudget } from './budget.js';
import { compileCaptureFilter } from './filter.js';
import { PodCapture } from './engine.js';
import { diskSpace, hostInterfaceFor, networkSnapshot } from './host.js';
import { capturedBytes, capturedPackets, captureErrors, captureNodeQuotaHeld } from './metrics.js';
import { ownershipRefusal } from './ownership.js';
import { requiredFreeBytes, type CapturePlan } from './plan.js';
import { captureDirectory, listStoredFiles, metadataFileName, nextSequence, removeCaptureFiles, type CaptureRef, type StoredFile } from './store.js';
import { MAX_LISTED_EVICTIONS } from '../../apis/captureretention.js';
import { CaptureExporter, type CaptureS3Export, type ExportNode } from './export.js';

export type FileState = NonNullable<CaptureFiles['state']>;

/** A target pod this node captures: from status.targets, node == this node. */
export interface LocalTarget {
  pod: string;
  ip: string;
}

interface PodEntry {
  ip: string;
  /** Filter, interface and limits it runs with: a change restarts it. */
  config: string;
  iface?: string;
  capture?: PodCapture;
  /** Could not start (no route, bad filter, libpcap error). */
  error?: string;
  /** Not captured for now: the IP is not the namespace's here, or a node quota holds it back. */
  notCaptured?: { reason: NotCapturedReason; message: string };
  /** Not (re)started: a new file would take the disk below the floor. */
  waitingForDisk?: string;
}

/** What a session needs from the node around it. */
export interface SessionNode {
  name: string;
  stateDir: string;
  budget: NodeCaptureBudget;
  /** The pods bound to this node, from the agent's own informer. */
  pods(): readonly V1Pod[];
  /** What spec.export needs (the agent's client and namespace); no export without it. */
  exportNode?: ExportNode | undefined;
}

/** What the node's budget evicted of this capture's files, for its status entry. */
export interface EvictionRecord {
  fileNames: string[];
  count: number;
  bytes: number;
  at: string;
  reason: string;
}

export class CaptureSession {
  readonly dir: string;
  private readonly pods = new Map<string, PodEntry>();
  private readonly log: Logger;
  private diskError: string | undefined;
  /** Set once the end time or a stop has passed: nothing restarts. */
  private ended = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private exporter: CaptureExporter | undefined;
  private evicted: EvictionRecord | undefined;

  constructor(
    readonly ref: CaptureRef,
    readonly uid: string,
    /** The capture's creation time (ms): its place in the node's queue for slots. */
    private readonly createdAt: number,
    private readonly node: SessionNode,
    /** Asks for a reconcile soon (a capture stopped by itself). */
    private readonly nudge: () => void,
  ) {
    this.dir = captureDirectory(node.stateDir, ref, uid);
    this.log = loggerFor('capture', `${ref.namespace}/${ref.name}`);
    this.evicted = readEvictionRecord(this.dir);
  }

  /** Starts what should run and stops what should not, for a capture inside its time window. */
  async run(capture: PacketCapture, plan: CapturePlan, targets: readonly LocalTarget[]): Promise<void> {
    if (this.ended) return;
    const diskOk = targets.length === 0 || (await this.enoughDisk());
    const wanted = new Map(targets.map((t) => [t.pod, t]));
    for (const [pod, entry] of this.pods) {
      if (wanted.has(pod)) continue;
      // Forgotten, not kept as finished: if the pod is a target again (a quota let go), it resumes.
      this.stopPod(pod, entry, 'finished', 'the pod is no longer a target');
      this.node.budget.forget(this.slotId(pod));
      this.pods.delete(pod);
    }
    if (!diskOk) return;
    if (targets.length > 0) mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if (capture.spec.includeMetadata && targets.length > 0) await this.writeMetadata(capture);
    for (const target of targets) await this.ensurePod(capture, plan, target);
    this.startFlushing();
  }

  /** The end time (or duration) passed: stop every pod for good. */
  end(message: string): void {
    this.ended = true;
    for (const [pod, entry] of this.pods) {
      this.stopPod(pod, entry, 'finished', message);
      this.node.budget.forget(this.slotId(pod));
    }
    this.stopFlushing();
  }

  /** Whether the end time (or duration) has passed here. */
  hasEnded(): boolean {
    return this.ended;
  }

  /** Sets up, changes or stops the upload of complete files to spec.export.s3. */
  configureExport(s3: CaptureS3Export | undefined): void {
    if (!s3 || !this.node.exportNode) {
      this.exporter?.close();
      this.exporter = undefined;
      return;
    }
    if (this.exporter) this.exporter.update(s3);
    else this.exporter = new CaptureExporter(this.ref, this.dir, s3, this.node.exportNode, this.nudge);
    const writing = this.filesBeingWritten();
    this.exporter.sync(listStoredFiles(this.dir).map((f) => f.fileName).filter((n) => !writing.has(n)));
  }

  /** Uploads still under way: the reconciler looks again soon. */
  exporting(): boolean {
    return this.exporter?.busy() ?? false;
  }

  /** Files the node's budget may evict: complete, and uploaded when the capture exports. */
  evictable(): StoredFile[] {
    const writing = this.filesBeingWritten();
    const pending = this.exporter?.pendingFiles() ?? new Set<string>();
    return listStoredFiles(this.dir).filter((f) => !writing.has(f.fileName) && !pending.has(f.fileName));
  }

  /** Deletes these files for the node's budget and records it for the status; returns the bytes freed. */
  evict(fileNames: readonly string[], reason: string): number {
    let freed = 0;
    const gone: string[] = [];
    for (const name of fileNames) {
      const file = path.join(this.dir, name);
      try {
        const { size } = statSync(file);
        unlinkSync(file);
        freed += size;
        gone.push(name);
      } catch {
        // gone meanwhile
      }
    }
    if (gone.length === 0) return 0;
    const before = this.evicted ?? { fileNames: [], count: 0, bytes: 0, at: '', reason };
    this.evicted = {
      fileNames: [...before.fileNames, ...gone].slice(0, MAX_LISTED_EVICTIONS),
      count: before.count + gone.length,
      bytes: before.bytes + freed,
      at: new Date().toISOString(),
      reason,
    };
    writeEvictionRecord(this.dir, this.evicted);
    this.log.info('evicted files of a finished capture for the node budget', { files: gone, bytes: freed, reason });
    return freed;
  }

  /** Stops everything and removes this capture's files (resource deleted, or files deleted on request). */
  discard(): void {
    this.exporter?.close();
    this.exporter = undefined;
    this.end('the capture was deleted');
    removeCaptureFiles(this.node.stateDir, this.ref, this.uid);
    this.node.budget.invalidate();
  }

  flush(): void {
    for (const entry of this.pods.values()) entry.capture?.flush();
  }

  /** Name of each file being written (not yet complete). */
  filesBeingWritten(): Set<string> {
    const names = new Set<string>();
    for (const entry of this.pods.values()) {
      const name = entry.capture?.state === 'running' ? entry.capture.currentFile() : undefined;
      if (name) names.add(name);
    }
    return names;
  }

  /** Host-side interfaces found so far, for status.targets. */
  interfaces(): CaptureTarget[] {
    return [...this.pods].filter(([, e]) => e.iface && !e.notCaptured).map(([pod, e]) => ({ pod, interface: e.iface! }));
  }

  running(): boolean {
    return [...this.pods.values()].some((e) => e.capture?.state === 'running');
  }

  /** This node's status.files entry; undefined when it has nothing to report. */
  filesEntry(scheduled: boolean, clampNotes: readonly string[]): CaptureFiles | undefined {
    const stored = listStoredFiles(this.dir);
    const entries = [...this.pods];
    // Before startTime nothing runs yet, but this node has targets: it reports Scheduled, not nothing.
    if (!scheduled && stored.length === 0 && entries.length === 0 && !this.diskError && !this.evicted) return undefined;
    const packets = entries.reduce((sum, [, e]) => sum + (e.capture?.packets ?? 0), 0);
    const errors = [this.diskError, ...entries.flatMap(([pod, e]) => entryErrors(pod, e))].filter((m): m is string => !!m);
    const notCaptured: NotCaptured[] = entries.flatMap(([pod, e]) => (e.notCaptured ? [{ pod, ip: e.ip, reason: e.notCaptured.reason, message: e.notCaptured.message.slice(0, 512) }] : []));
    const held = notCaptured.filter((n) => n.reason === 'QuotaExceeded');
    const finishedNotes = entries.flatMap(([pod, e]) => (e.capture?.state === 'finished' && e.capture.message ? [`${pod}: ${e.capture.message}`] : []));
    let state: FileState;
    if (errors.length > 0) state = 'Error';
    else if (scheduled) state = 'Scheduled';
    else if (this.running()) state = packets > 0 || stored.some((f) => f.pod !== '' && f.bytes > this.headerBytes(f)) ? 'Capturing' : 'WaitingForTraffic';
    // Held back by a node quota: it starts (or goes on) by itself when there is room.
    else if (held.length > 0) state = 'Scheduled';
    // Every target here failed the ownership check: nothing to capture on this node.
    else if (entries.length > 0 && notCaptured.length === entries.length) state = 'Error';
    else state = this.ended || entries.length > 0 || stored.length > 0 ? 'Finished' : 'WaitingForTraffic';
    const notes = notCaptured.map((n) => `${n.pod}: ${n.message}`);
    const message = [...errors, ...notes, ...clampNotes, ...(state === 'Finished' ? finishedNotes : [])].join('; ').slice(0, 1024);
    return {
      node: this.node.name,
      directory: this.dir,
      fileNames: stored.map((f) => f.fileName),
      bytes: stored.reduce((sum, f) => sum + f.bytes, 0),
      packets,
      // cap (the libpcap binding) does not expose pcap_stats(), so kernel drops are not known.
      kernelDropped: 0,
      state,
      ...(message ? { message } : {}),
      ...(notCaptured.length > 0 ? { notCaptured } : {}),
      ...(this.exporter ? { uploads: this.exporter.entry() } : {}),
      ...(this.evicted ? { evicted: { ...this.evicted, fileNames: [...this.evicted.fileNames] } } : {}),
    };
  }

  /** Bytes of a stored file before its first packet: a pcap header, or a pcapng SHB and IDB (the
   * pod's running capture knows; an older pcapng file without one counts as empty). */
  private headerBytes(file: { pod: string; fileName: string }): number {
    if (!file.fileName.endsWith('.pcapng')) return 24;
    const layout = this.pods.get(file.pod)?.capture?.layout;
    return layout?.pcapng ? layout.headerBytes : Number.POSITIVE_INFINITY;
  }

  /** Refuses to start (and pauses running pods) below the free disk floor. */
  private async enoughDisk(): Promise<boolean> {
    mkdirSync(this.node.stateDir, { recursive: true });
    const { freeBytes, totalBytes } = await diskSpace(this.node.stateDir);
    const required = requiredFreeBytes(this.node.budget.limits.minFreeDisk, totalBytes);
    if (freeBytes >= required) {
      this.diskError = undefined;
      return true;
    }
    this.diskError = `free disk on the node is ${freeBytes} bytes, below the agent's threshold of ${required} bytes (--capture-min-free-disk): not capturing`;
    for (const [pod, entry] of this.pods) this.stopPod(pod, entry, 'paused', this.diskError);
    captureErrors.inc({ reason: 'disk' });
    this.log.warn('not capturing: disk space below threshold', { freeBytes, requiredBytes: required });
    return false;
  }

  private async ensurePod(capture: PacketCapture, plan: CapturePlan, target: LocalTarget): Promise<void> {
    const current = this.pods.get(target.pod);
    const refusal = ownershipRefusal({ namespace: this.ref.namespace, pod: target.pod, ip: target.ip, node: this.node.name }, this.node.pods());
    if (refusal) return this.setAside(target, current, 'TargetNotOwned', refusal);
    const { limits } = plan;
    let iface: string;
    let filter: string;
    try {
      iface = await hostInterfaceFor(target.ip);
      filter = compileCaptureFilter(capture.spec.filters, limits.direction, target.ip);
    } catch (err) {
      return this.failPod(target, current, errorMessage(err));
    }
    const format = capture.spec.format ?? 'pcap';
    const config = JSON.stringify([iface, filter, limits, this.node.budget.limits.ringBytes, format]);
    const same = current?.config === config && current.ip === target.ip;
    // Running, finished or failed with these settings: nothing to do. Paused or held: try again.
    if (same && current.capture && current.capture.state !== 'paused' && !current.notCaptured && !current.waitingForDisk) return;
    if (current?.capture && !same) this.stopPod(target.pod, current, 'finished', 'restarted with new settings');
    const kept = same ? current : undefined;
    // Asked before a slot is taken, so that a full disk or quota does not open libpcap only to stop.
    const gate = this.node.budget.refuse(limits.fileSizeBytes);
    if (gate?.kind === 'disk') return this.waitForDisk(target, kept, gate.message, { config, iface });
    const held = gate?.message ?? this.node.budget.acquire({ id: this.slotId(target.pod), createdAt: this.createdAt, ref: this.ref }, limits.fileSizeBytes);
    if (held) return this.setAside(target, kept, 'QuotaExceeded', held, { config, iface });
    this.startPod(target, limits, iface, filter, config, format);
  }

  private startPod(target: LocalTarget, limits: CapturePlan['limits'], iface: string, filter: string, config: string, format: CaptureFormat): void {
    const stored = listStoredFiles(this.dir).filter((f) => f.pod === target.pod);
    // Bound once: onRecord runs for every packet.
    const labels = { namespace: this.ref.namespace, name: this.ref.name };
    const packetsCounter = capturedPackets.labels(labels);
    const bytesCounter = capturedBytes.labels(labels);
    const podCapture = new PodCapture({
      dir: this.dir,
      pod: target.pod,
      device: iface,
      filter,
      snapLen: limits.snapLen,
      fileSizeBytes: limits.fileSizeBytes,
      maxFiles: limits.maxFiles,
      maxBytes: limits.maxBytesPerPod,
      existingFiles: stored.map((f) => f.fileName),
      existingBytes: stored.reduce((sum, f) => sum + f.bytes, 0),
      firstSequence: nextSequence(stored),
      ringBytes: this.node.budget.limits.ringBytes,
      gate: this.node.budget,
      format,
      label: { namespace: this.ref.namespace, node: this.node.name, direction: limits.direction, capture: `${this.ref.namespace}/${this.ref.name}` },
      onFileClosed: (fileName) => this.exporter?.fileClosed(fileName),
      onRecord: (bytes) => {
        packetsCounter.inc();
        bytesCounter.inc(bytes);
      },
      onStop: () => {
        this.releaseSlot(target.pod);
        if (podCapture.state === 'finished') this.node.budget.forget(this.slotId(target.pod));
        if (podCapture.state === 'paused') this.log.warn('pod capture paused', { pod: target.pod, reason: podCapture.message });
        this.nudge();
      },
    });
    const entry: PodEntry = { ip: target.ip, config, iface, capture: podCapture };
    this.pods.set(target.pod, entry);
    try {
      podCapture.start();
    } catch (err) {
      // libpcap's own words, e.g. "syntax error in filter expression" or "No such device exists".
      this.node.budget.release(this.slotId(target.pod));
      return this.failPod(target, entry, `libpcap: ${errorMessage(err)}`, iface);
    }
    if (podCapture.state !== 'running') return; // the gate refused its first file (onStop released the slot)
    this.log.info('capturing', { pod: target.pod, interface: iface, filter, file: podCapture.currentFile() });
  }

  /** Not captured for now (the IP is not the namespace's here, or a node quota); says so in the status. */
  private setAside(target: LocalTarget, current: PodEntry | undefined, reason: NotCapturedReason, message: string, keep: { config?: string; iface?: string } = {}): void {
    if (current?.capture?.state === 'running') this.stopPod(target.pod, current, 'finished', message);
    if (reason === 'TargetNotOwned') this.node.budget.forget(this.slotId(target.pod));
    const again = current?.notCaptured?.reason === reason && current.notCaptured.message === message;
    this.pods.set(target.pod, { ...this.kept(target, current, keep), notCaptured: { reason, message } });
    if (again) return;
    if (reason === 'TargetNotOwned') {
      captureErrors.inc({ reason: 'not-owned' });
      this.log.warn('refusing a target: its IP is not owned by a running pod of the namespace on this node', { pod: target.pod, ip: target.ip, reason: message });
    } else {
      captureNodeQuotaHeld.inc();
      this.log.info('pod capture held back by a node quota', { pod: target.pod, reason: message });
    }
  }

  /** A new file would take the disk below the floor: an error in the status until there is room. */
  private waitForDisk(target: LocalTarget, current: PodEntry | undefined, message: string, keep: { config: string; iface: string }): void {
    if (!current?.waitingForDisk) {
      captureErrors.inc({ reason: 'disk' });
      this.log.warn('not capturing pod: the disk floor', { pod: target.pod, reason: message });
    }
    this.pods.set(target.pod, { ...this.kept(target, current, keep), waitingForDisk: message });
  }

  /** An entry that keeps the pod's stopped capture (its files and counters) across a wait. */
  private kept(target: LocalTarget, current: PodEntry | undefined, keep: { config?: string; iface?: string }): PodEntry {
    return { ip: target.ip, config: keep.config ?? '', ...(keep.iface ? { iface: keep.iface } : {}), ...(current?.capture ? { capture: current.capture } : {}) };
  }

  private failPod(target: LocalTarget, current: PodEntry | undefined, error: string, iface?: string): void {
    if (current?.error === error) return;
    if (current?.capture) this.stopPod(target.pod, current, 'error', error);
    this.pods.set(target.pod, { ip: target.ip, config: '', ...(iface ? { iface } : {}), error });
    captureErrors.inc({ reason: 'start' });
    this.log.warn('cannot capture pod', { pod: target.pod, ip: target.ip, error });
  }

  private stopPod(pod: string, entry: PodEntry, state: 'finished' | 'error' | 'paused', message: string): void {
    if (entry.capture?.state !== 'running') return;
    entry.capture.stop(state, message, state === 'paused' ? 'disk' : undefined);
    this.releaseSlot(pod);
  }

  /** Gives the pod's slot back, so the next capture in the node's line can start. */
  private releaseSlot(pod: string): void {
    this.node.budget.release(this.slotId(pod));
  }

  private slotId(pod: string): string {
    return `${this.uid}/${pod}`;
  }

  private async writeMetadata(capture: PacketCapture): Promise<void> {
    const file = path.join(this.dir, metadataFileName(this.node.name));
    if (existsSync(file)) return;
    const header = `# PacketCapture ${this.ref.namespace}/${this.ref.name} (uid ${capture.metadata.uid ?? ''}) on node ${this.node.name} at ${new Date().toISOString()}\n`;
    writeFileSync(file, await networkSnapshot(header), { mode: 0o600 });
  }

  /** Buffered records reach the files at least every second, so downloads and tshark see them. */
  private startFlushing(): void {
    if (this.flushTimer || !this.running()) return;
    this.flushTimer = setInterval(() => {
      this.flush();
      if (!this.running()) this.stopFlushing();
    }, 1000);
    this.flushTimer.unref();
  }

  private stopFlushing(): void {
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = undefined;
  }
}

/** Kept beside the files (not a capture file name, so never served), so a restart still reports it. */
const EVICTED_FILE = '.evicted';

function readEvictionRecord(dir: string): EvictionRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(path.join(dir, EVICTED_FILE), 'utf8')) as Partial<EvictionRecord>;
    if (!Array.isArray(r.fileNames) || typeof r.count !== 'number' || typeof r.bytes !== 'number' || typeof r.at !== 'string' || typeof r.reason !== 'string') return undefined;
    return { fileNames: r.fileNames.filter((n): n is string => typeof n === 'string'), count: r.count, bytes: r.bytes, at: r.at, reason: r.reason };
  } catch {
    return undefined;
  }
}

function writeEvictionRecord(dir: string, record: EvictionRecord): void {
  try {
    writeFileSync(path.join(dir, EVICTED_FILE), JSON.stringify(record), { mode: 0o600 });
  } catch {
    // the status still says it until the agent restarts
  }
}

/** A pod's error for the status: could not start, stopped on an error, or stopped by the disk floor. */
function entryErrors(pod: string, e: PodEntry): string[] {
  if (e.error) return [`${pod}: ${e.error}`];
  if (e.waitingForDisk) return [`${pod}: ${e.waitingForDisk}`];
  const c = e.capture;
  if (c && !e.notCaptured && (c.state === 'error' || (c.state === 'paused' && c.pausedBy === 'disk'))) return [`${pod}: ${c.message}`];
  return [];
}
