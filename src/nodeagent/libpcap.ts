// A typed view of the `cap` binding (libpcap), shared by packet captures and NFLOG drop sources.
// cap copies each packet into one Buffer we hand it and emits ('packet', capturedLength,
// truncated) synchronously; the original length, the timestamp and pcap_stats() are not exposed,
// so callers derive or substitute them.
import { createRequire } from 'node:module';

interface CapBinding {
  open(device: string, filter: string, bufferSize: number, buffer: Buffer): string;
  close(): boolean;
  on(event: 'packet', listener: (capturedLength: number, truncated: boolean) => void): void;
  removeAllListeners(event?: string): void;
}

const require = createRequire(import.meta.url);
const { Cap } = require('cap') as { Cap: new () => CapBinding };

/** pcap LINKTYPE_* values of the link types cap names (https://www.tcpdump.org/linktypes.html). */
const LINK_TYPES: Record<string, number> = { NULL: 0, ETHERNET: 1, IEEE802_11_RADIO: 127, LINKTYPE_LINUX_SLL: 113, RAW: 101 };

export interface LiveCapture {
  /** pcap link type of the device (1 = Ethernet for a veth). */
  linkType: number;
  close(): void;
}

export interface OpenOptions {
  device: string;
  filter: string;
  /** Bytes kept of each packet: the size of the buffer cap copies into. */
  snapLen: number;
  /** Kernel ring buffer size (pcap_set_buffer_size). */
  kernelBufferBytes: number;
  onPacket(packet: Buffer, capturedLength: number): void;
}

// cap 0.2 never uv_close()s the libuv poll handle embedded in its object: close() only stops it,
// and a failed open() leaves it half-made. Once such an object is garbage collected, libuv's loop
// still lists the freed handle and aborts the process later (`uv_close: Assertion '0' failed`, seen
// in the capture benchmark). Every handle that was opened or failed to open is therefore kept
// referenced for good: a few hundred bytes each (the packet buffer is released). The filter is
// first tried on lo with a tiny buffer, so a rejected filter never strands a full-size kernel ring.
const retiredHandles = new Set<CapBinding>();

function openOrKeep(cap: CapBinding, device: string, filter: string, bufferSize: number, buffer: Buffer): string {
  try {
    return cap.open(device, filter, bufferSize, buffer);
  } catch (err) {
    retiredHandles.add(cap);
    throw err;
  }
}

/** Stops a handle and keeps it from the garbage collector (see above). */
function retire(cap: CapBinding): void {
  cap.removeAllListeners('packet');
  cap.close();
  retiredHandles.add(cap);
}

export interface PacketSource {
  /** The link type name cap reports ("ETHERNET", "Unknown linktype 239", ...). */
  linkName: string;
  close(): void;
}

/**
 * Opens a libpcap device (an interface, or `nflog:N`) and calls onPacket with the reused buffer
 * for each packet; throws libpcap's message when it cannot.
 */
export function openPacketSource(device: string, filter: string, bufferSize: number, buffer: Buffer, onPacket: (capturedLength: number) => void): PacketSource {
  const cap = new Cap();
  const linkName = openOrKeep(cap, device, filter, bufferSize, buffer);
  cap.on('packet', (capturedLength) => onPacket(capturedLength));
  return { linkName, close: () => retire(cap) };
}

/** Opens libpcap on the device with the filter; throws libpcap's own message on a bad device or filter. */
export function openLiveCapture(opts: OpenOptions): LiveCapture {
  if (opts.device !== 'lo') {
    const rejected = libpcapRejects(opts.filter);
    if (rejected) throw new Error(rejected);
  }
  const buffer = Buffer.alloc(opts.snapLen);
  const source = openPacketSource(opts.device, opts.filter, opts.kernelBufferBytes, buffer, (capturedLength) => opts.onPacket(buffer, capturedLength));
  return { linkType: linkTypeNumber(source.linkName), close: () => source.close() };
}

function linkTypeNumber(name: string): number {
  const known = LINK_TYPES[name];
  if (known !== undefined) return known;
  // cap reports others as "Unknown linktype <DLT>"; DLT and LINKTYPE agree for the common ones.
  const m = /(\d+)$/.exec(name);
  return m ? Number(m[1]) : 1;
}

/** Lets libpcap compile the expression (on the loopback device); returns its error message, if any. */
export function libpcapRejects(filter: string): string | undefined {
  try {
    openPacketSource('lo', filter, 64 * 1024, Buffer.alloc(64), () => undefined).close();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
