// One pod's capture: libpcap on the pod's host-side interface with the compiled filter, records
// written to rotating pcap files, stopped at the byte limit, by the node's gate (node byte quota,
// disk floor: paused, it may resume later) or by the caller.
import { statSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { openLiveCapture, type LiveCapture } from '../libpcap.js';
import type { CaptureFormat } from '../../apis/packetcapture.js';
import type { PodInterfaceLabel } from '../../util/pcapformat.js';
import type { FileGate, FileRefusal } from './budget.js';
import { CaptureFileLayout, microClock, PcapFileWriter } from './pcapfile.js';
import { pcapFileName } from './store.js';

/** paused: the node's gate refused a new file (a node quota or the disk floor); it may resume. */
export type PodCaptureState = 'running' | 'finished' | 'error' | 'paused';

/** A gate that lets every file through (benchmarks, tests). */
export const OPEN_GATE: FileGate = { refuse: () => undefined, opened: () => undefined, closed: () => undefined, deleted: () => undefined };

export interface PodCaptureOptions {
  dir: string;
  pod: string;
  device: string;
  filter: string;
  snapLen: number;
  fileSizeBytes: number;
  maxFiles: number;
  maxBytes: number;
  /** Files this pod already has in dir (oldest first), e.g. from before an agent restart. */
  existingFiles: readonly string[];
  /** Bytes those files hold: they count against maxBytes. */
  existingBytes: number;
  firstSequence: number;
  /** libpcap buffer size (the kernel ring is twice this, see budget.ts). */
  ringBytes: number;
  /** Asked before each new file: the node's byte quota and disk floor. */
  gate: FileGate;
  /** pcap when unset. */
  format?: CaptureFormat;
  /** What the pcapng interface and packet comments say (namespace, node, direction); pod and
   * interface default to the ones above. Needed for pcapng. */
  label?: Omit<PodInterfaceLabel, 'pod' | 'iface'>;
  /** Called as each file is closed (rotation or stop), before a rotation removes older files. */
  onFileClosed?: (fileName: string) => void;
  /** Called for each packet written (metrics). */
  onRecord?: (recordBytes: number) => void;
  /** Called once when the capture stops by itself (limit, disk, write error). */
  onStop?: () => void;
}

export class PodCapture {
  state: PodCaptureState = 'running';
  /** Why it stopped, for the status message. */
  message = '';
  /** What paused it, when state is paused. */
  pausedBy: FileRefusal['kind'] | undefined;
  /** Packets written by this capture (since this agent started it). */
  packets = 0;
  /** Bytes written, existing files included: what maxBytes limits. */
  bytes: number;
  private readonly files: string[];
  private sequence: number;
  private writer: PcapFileWriter | undefined;
  private live: LiveCapture | undefined;
  private readonly clock = microClock();
  /** pcap or pcapng, with this pod's interface label. */
  readonly layout: CaptureFileLayout;

  constructor(private readonly opts: PodCaptureOptions) {
    const format = opts.format ?? 'pcap';
    if (format === 'pcapng' && !opts.label) throw new Error('a pcapng capture needs the label of its pod interface');
    this.layout = new CaptureFileLayout(format, opts.snapLen, opts.label && { ...opts.label, pod: opts.pod, iface: opts.device });
    this.files = [...opts.existingFiles];
    this.bytes = opts.existingBytes;
    this.sequence = opts.firstSequence;
  }

  /** Opens libpcap and the first file; throws libpcap's message (bad filter, no such device). */
  start(): void {
    if (this.bytes + this.layout.headerBytes > this.opts.maxBytes) {
      this.finish('finished', `reached maxBytesPerPod (${this.opts.maxBytes} bytes)`);
      return;
    }
    this.live = openLiveCapture({
      device: this.opts.device,
      filter: this.opts.filter,
      snapLen: this.opts.snapLen,
      kernelBufferBytes: this.opts.ringBytes,
      onPacket: (packet, length) => this.onPacket(packet, length),
    });
    try {
      this.openNextFile();
    } catch (err) {
      this.live.close();
      this.live = undefined;
      throw err;
    }
  }

  /** What the current file may still grow by before it rotates. */
  remainingInFile(): number {
    return this.writer ? Math.max(0, this.opts.fileSizeBytes - this.writer.onDisk) : 0;
  }

  /** The file being written, if any. */
  currentFile(): string | undefined {
    return this.writer ? path.basename(this.writer.path) : undefined;
  }

  /** This pod's files on disk, oldest first. */
  fileNames(): readonly string[] {
    return this.files;
  }

  flush(): void {
    try {
      this.writer?.flush();
    } catch (err) {
      this.finish('error', `writing ${this.currentFile() ?? 'pcap file'}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** Stops capturing; the files stay. */
  stop(state: Exclude<PodCaptureState, 'running'>, message: string, pausedBy?: FileRefusal['kind']): void {
    if (this.state !== 'running') return;
    this.state = state;
    this.message = message;
    this.pausedBy = pausedBy;
    this.live?.close();
    this.live = undefined;
    this.closeWriter();
  }

  private closeWriter(): void {
    const writer = this.writer;
    this.writer = undefined;
    if (!writer) return;
    try {
      writer.close();
    } catch {
      // the data that did not make it to disk is lost either way; the state says why we stopped
    }
    this.opts.gate.closed(writer.path, writer.onDisk);
    this.opts.onFileClosed?.(path.basename(writer.path));
  }

  private finish(state: Exclude<PodCaptureState, 'running'>, message: string, pausedBy?: FileRefusal['kind']): void {
    if (this.state !== 'running') return;
    this.stop(state, message, pausedBy);
    this.opts.onStop?.();
  }

  private onPacket(packet: Buffer, length: number): void {
    if (this.state !== 'running' || !this.writer) return;
    const recordBytes = this.layout.recordBytes(length);
    try {
      if (this.writer.packets > 0 && this.writer.bytes + recordBytes > this.opts.fileSizeBytes) {
        if (this.bytes + this.layout.headerBytes + recordBytes > this.opts.maxBytes) return this.finish('finished', `reached maxBytesPerPod (${this.opts.maxBytes} bytes)`);
        this.rotate();
        if (this.state !== 'running') return;
      }
      if (this.bytes + recordBytes > this.opts.maxBytes) return this.finish('finished', `reached maxBytesPerPod (${this.opts.maxBytes} bytes)`);
      this.writer!.write(packet, length, this.clock());
    } catch (err) {
      return this.finish('error', `writing ${this.currentFile() ?? 'pcap file'}: ${err instanceof Error ? err.message : String(err)}`);
    }
    this.bytes += recordBytes;
    this.packets += 1;
    this.opts.onRecord?.(recordBytes);
  }

  private rotate(): void {
    this.closeWriter();
    // At most maxFiles: the newest maxFiles-1 and the new one. The oldest go first, so that the
    // room they leave counts when the gate looks at the disk for the new file.
    while (this.files.length > this.opts.maxFiles - 1) this.removeFile(this.files.shift()!);
    this.openNextFile();
  }

  private removeFile(name: string): void {
    const file = path.join(this.opts.dir, name);
    try {
      const { size } = statSync(file);
      unlinkSync(file);
      this.opts.gate.deleted(size);
    } catch {
      // already gone (deleted by a DELETE request)
    }
  }

  private openNextFile(): void {
    const refusal = this.opts.gate.refuse(this.opts.fileSizeBytes);
    if (refusal) return this.finish('paused', refusal.message, refusal.kind);
    const name = pcapFileName(this.opts.pod, this.opts.device, this.sequence++, this.layout.extension);
    const writer = new PcapFileWriter(path.join(this.opts.dir, name), this.layout, this.live?.linkType ?? 1);
    this.writer = writer;
    this.files.push(name);
    this.bytes += this.layout.headerBytes;
    this.opts.gate.opened(writer.path, this.opts.fileSizeBytes, () => this.opts.fileSizeBytes - writer.onDisk);
  }
}
