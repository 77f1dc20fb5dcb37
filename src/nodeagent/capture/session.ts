// Everything one PacketCapture does on this node: a PodCapture per local target pod, started and
// stopped as the schedule, the targets and the limits say, and the node's status entry from them.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { CaptureFiles, CaptureTarget, PacketCapture } from '../../apis/packetcapture.js';
import { errorMessage, loggerFor, type Logger } from '../../util/log.js';
import { compileCaptureFilter } from './filter.js';
import { PodCapture } from './engine.js';
import { diskSpace, hostInterfaceFor, networkSnapshot } from './host.js';
import { activeCaptures, capturedBytes, capturedPackets, captureErrors } from './metrics.js';
import { requiredFreeBytes, type CaptureCeilings, type CapturePlan } from './plan.js';
import { captureDirectory, listStoredFiles, metadataFileName, nextSequence, removeCaptureDirectory, type CaptureRef } from './store.js';

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
}

export class CaptureSession {
  readonly dir: string;
  private readonly pods = new Map<string, PodEntry>();
  private readonly log: Logger;
  private diskError: string | undefined;
  /** Set once the end time or a stop has passed: nothing restarts. */
  private ended = false;
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly ref: CaptureRef,
    readonly uid: string,
    private readonly stateDir: string,
    private readonly nodeName: string,
    private readonly ceilings: CaptureCeilings,
    /** Asks for a reconcile soon (a capture stopped by itself). */
    private readonly nudge: () => void,
  ) {
    this.dir = captureDirectory(stateDir, ref);
    this.log = loggerFor('capture', `${ref.namespace}/${ref.name}`);
  }

  /** Starts what should run and stops what should not, for a capture inside its time window. */
  async run(capture: PacketCapture, plan: CapturePlan, targets: readonly LocalTarget[]): Promise<void> {
    if (this.ended) return;
    if (targets.length > 0 && !(await this.enoughDisk())) return;
    const wanted = new Map(targets.map((t) => [t.pod, t]));
    for (const [pod, entry] of this.pods) {
      if (!wanted.has(pod)) this.stopPod(entry, 'finished', 'the pod is no longer a target');
    }
    if (targets.length > 0) mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if (capture.spec.includeMetadata && targets.length > 0) await this.writeMetadata(capture);
    for (const target of targets) await this.ensurePod(capture, plan, target);
    this.startFlushing();
  }

  /** The end time (or duration) passed: stop every pod for good. */
  end(message: string): void {
    this.ended = true;
    for (const entry of this.pods.values()) this.stopPod(entry, 'finished', message);
    this.stopFlushing();
  }

  /** Stops everything and removes the directory (resource deleted, or files deleted on request). */
  discard(): void {
    this.end('the capture was deleted');
    removeCaptureDirectory(this.stateDir, this.ref);
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
    return [...this.pods].filter(([, e]) => e.iface).map(([pod, e]) => ({ pod, interface: e.iface! }));
  }

  running(): boolean {
    return [...this.pods.values()].some((e) => e.capture?.state === 'running');
  }

  /** This node's status.files entry; undefined when it has nothing to report. */
  filesEntry(scheduled: boolean, clampNotes: readonly string[]): CaptureFiles | undefined {
    const stored = listStoredFiles(this.dir);
    const entries = [...this.pods.values()];
    // Before startTime nothing runs yet, but this node has targets: it reports Scheduled, not nothing.
    if (!scheduled && stored.length === 0 && entries.length === 0 && !this.diskError) return undefined;
    const packets = entries.reduce((sum, e) => sum + (e.capture?.packets ?? 0), 0);
    const errors = [this.diskError, ...[...this.pods].flatMap(([pod, e]) => (e.error ? [`${pod}: ${e.error}`] : e.capture?.state === 'error' ? [`${pod}: ${e.capture.message}`] : []))].filter((m): m is string => !!m);
    const finishedNotes = [...this.pods].flatMap(([pod, e]) => (e.capture?.state === 'finished' && e.capture.message ? [`${pod}: ${e.capture.message}`] : []));
    let state: FileState;
    if (errors.length > 0) state = 'Error';
    else if (scheduled) state = 'Scheduled';
    else if (this.running()) state = packets > 0 || stored.some((f) => f.pod !== '' && f.bytes > 24) ? 'Capturing' : 'WaitingForTraffic';
    else state = this.ended || entries.length > 0 || stored.length > 0 ? 'Finished' : 'WaitingForTraffic';
    const message = [...errors, ...clampNotes, ...(state === 'Finished' ? finishedNotes : [])].join('; ').slice(0, 1024);
    return {
      node: this.nodeName,
      directory: this.dir,
      fileNames: stored.map((f) => f.fileName),
      bytes: stored.reduce((sum, f) => sum + f.bytes, 0),
      packets,
      // cap (the libpcap binding) does not expose pcap_stats(), so kernel drops are not known.
      kernelDropped: 0,
      state,
      ...(message ? { message } : {}),
    };
  }

  /** Refuses to start (and stops running pods) below the free disk threshold. */
  private async enoughDisk(): Promise<boolean> {
    mkdirSync(this.stateDir, { recursive: true });
    const { freeBytes, totalBytes } = await diskSpace(this.stateDir);
    const required = requiredFreeBytes(this.ceilings.minFreeDisk, totalBytes);
    if (freeBytes >= required) {
      this.diskError = undefined;
      return true;
    }
    this.diskError = `free disk on the node is ${freeBytes} bytes, below the agent's threshold of ${required} bytes: not capturing`;
    for (const entry of this.pods.values()) this.stopPod(entry, 'error', this.diskError);
    captureErrors.inc({ reason: 'disk' });
    this.log.warn('not capturing: disk space below threshold', { freeBytes, requiredBytes: required });
    return false;
  }

  private async ensurePod(capture: PacketCapture, plan: CapturePlan, target: LocalTarget): Promise<void> {
    const current = this.pods.get(target.pod);
    const { limits } = plan;
    let iface: string;
    let filter: string;
    try {
      iface = await hostInterfaceFor(target.ip);
      filter = compileCaptureFilter(capture.spec.filters, limits.direction, target.ip);
    } catch (err) {
      return this.failPod(target, current, errorMessage(err));
    }
    const config = JSON.stringify([iface, filter, limits]);
    if (current && current.config === config && current.ip === target.ip) return; // running, finished or failed with these settings
    if (current?.capture) this.stopPod(current, 'finished', 'restarted with new settings');
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
      requiredFreeBytes: (total) => requiredFreeBytes(this.ceilings.minFreeDisk, total),
      onRecord: (bytes) => {
        packetsCounter.inc();
        bytesCounter.inc(bytes);
      },
      onStop: () => {
        activeCaptures.dec();
        this.nudge();
      },
    });
    const entry: PodEntry = { ip: target.ip, config, iface, capture: podCapture };
    this.pods.set(target.pod, entry);
    try {
      podCapture.start();
    } catch (err) {
      // libpcap's own words, e.g. "syntax error in filter expression" or "No such device exists".
      return this.failPod(target, entry, `libpcap: ${errorMessage(err)}`, iface);
    }
    if (podCapture.state === 'running') {
      activeCaptures.inc();
      this.log.info('capturing', { pod: target.pod, interface: iface, filter, file: podCapture.currentFile() });
    }
  }

  private failPod(target: LocalTarget, current: PodEntry | undefined, error: string, iface?: string): void {
    if (current?.error === error) return;
    if (current?.capture) this.stopPod(current, 'error', error);
    this.pods.set(target.pod, { ip: target.ip, config: '', ...(iface ? { iface } : {}), error });
    captureErrors.inc({ reason: 'start' });
    this.log.warn('cannot capture pod', { pod: target.pod, ip: target.ip, error });
  }

  private stopPod(entry: PodEntry, state: 'finished' | 'error', message: string): void {
    if (entry.capture?.state !== 'running') return;
    entry.capture.stop(state, message);
    activeCaptures.dec();
  }

  private async writeMetadata(capture: PacketCapture): Promise<void> {
    const file = path.join(this.dir, metadataFileName(this.nodeName));
    if (existsSync(file)) return;
    const header = `# PacketCapture ${this.ref.namespace}/${this.ref.name} (uid ${capture.metadata.uid ?? ''}) on node ${this.nodeName} at ${new Date().toISOString()}\n`;
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
