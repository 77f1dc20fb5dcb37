// One pod's capture: libpcap on the pod's host-side interface with the compiled filter, records
// written to rotating pcap files, stopped at the byte limit, by the disk guard or by the caller.
import { statfsSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { openLiveCapture, type LiveCapture } from '../libpcap.js';
import { PCAP_HEADER_BYTES, RECORD_HEADER_BYTES } from '../../util/pcapformat.js';
import { microClock, PcapFileWriter } from './pcapfile.js';
import { pcapFileName } from './store.js';

/** Kernel ring buffer per capture: bursts of small packets need room while JS is busy. */
export const KERNEL_BUFFER_BYTES = 32 * 1024 * 1024;

export type PodCaptureState = 'running' | 'finished' | 'error';

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
  /** Bytes that must stay free on dir's filesystem; checked before each new file. */
  requiredFreeBytes: (totalBytes: number) => number;
  /** Called for each packet written (metrics). */
  onRecord?: (recordBytes: number) => void;
  /** Called once when the capture stops by itself (limit, disk, write error). */
  onStop?: () => void;
}

export class PodCapture {
  state: PodCaptureState = 'running';
  /** Why it stopped, for the status message. */
  message = '';
  /** Packets written by this capture (since this agent started it). */
  packets = 0;
  /** Bytes written, existing files included: what maxBytes limits. */
  bytes: number;
  private readonly files: string[];
  private sequence: number;
  private writer: PcapFileWriter | undefined;
  private live: LiveCapture | undefined;
  private readonly clock = microClock();

  constructor(private readonly opts: PodCaptureOptions) {
    this.files = [...opts.existingFiles];
    this.bytes = opts.existingBytes;
    this.sequence = opts.firstSequence;
  }

  /** Opens libpcap and the first file; throws libpcap's message (bad filter, no such device). */
  start(): void {
    if (this.bytes + PCAP_HEADER_BYTES > this.opts.maxBytes) {
      this.finish('finished', `reached maxBytesPerPod (${this.opts.maxBytes} bytes)`);
      return;
    }
    this.live = openLiveCapture({
      device: this.opts.device,
      filter: this.opts.filter,
      snapLen: this.opts.snapLen,
      kernelBufferBytes: KERNEL_BUFFER_BYTES,
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
  stop(state: PodCaptureState, message: string): void {
    if (this.state !== 'running') return;
    this.state = state;
    this.message = message;
    this.live?.close();
    this.live = undefined;
    try {
      this.writer?.close();
    } catch {
      // the data that did not make it to disk is lost either way; the state says why we stopped
    }
    this.writer = undefined;
  }

  private finish(state: PodCaptureState, message: string): void {
    if (this.state !== 'running') return;
    this.stop(state, message);
    this.opts.onStop?.();
  }

  private onPacket(packet: Buffer, length: number): void {
    if (this.state !== 'running' || !this.writer) return;
    const recordBytes = RECORD_HEADER_BYTES + length;
    try {
      if (this.writer.packets > 0 && this.writer.bytes + recordBytes > this.opts.fileSizeBytes) {
        if (this.bytes + PCAP_HEADER_BYTES + recordBytes > this.opts.maxBytes) return this.finish('finished', `reached maxBytesPerPod (${this.opts.maxBytes} bytes)`);
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
    this.writer?.close();
    this.writer = undefined;
    this.openNextFile();
    // Keep at most maxFiles: the new one plus the newest maxFiles-1 before it.
    while (this.files.length > this.opts.maxFiles) {
      const oldest = this.files.shift()!;
      try {
        unlinkSync(path.join(this.opts.dir, oldest));
      } catch {
        // already gone (deleted by a DELETE request)
      }
    }
  }

  private openNextFile(): void {
    const fs = statfsSync(this.opts.dir);
    const free = fs.bavail * fs.bsize;
    const required = this.opts.requiredFreeBytes(fs.blocks * fs.bsize);
    if (free - this.opts.fileSizeBytes < required) {
      this.finish('error', `stopped: free disk ${free} bytes would fall below the agent's threshold ${required} bytes with another ${this.opts.fileSizeBytes}-byte file`);
      return;
    }
    const name = pcapFileName(this.opts.pod, this.opts.device, this.sequence++);
    this.writer = new PcapFileWriter(path.join(this.opts.dir, name), this.opts.snapLen, this.live?.linkType ?? 1);
    this.files.push(name);
    this.bytes += PCAP_HEADER_BYTES;
  }
}
