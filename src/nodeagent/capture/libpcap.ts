// A typed view of the `cap` binding (libpcap). cap copies each packet into one Buffer we hand it
// and emits ('packet', capturedLength, truncated) synchronously; the original length, the
// timestamp and pcap_stats() are not exposed, so callers derive or substitute them.
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

// cap 0.2's open() leaves a half-made handle when libpcap fails (no such device, bad filter): its
// destructor then stops a libuv poll handle that was never initialized and aborts the process at
// some later garbage collection. Failed handles are therefore kept referenced for good (a few
// hundred bytes each), and the filter is first tried on lo with a tiny buffer, so a rejected filter
// never strands a full-size kernel ring.
const failedHandles = new Set<CapBinding>();

function openOrKeep(cap: CapBinding, device: string, filter: string, bufferSize: number, buffer: Buffer): string {
  try {
    return cap.open(device, filter, bufferSize, buffer);
  } catch (err) {
    failedHandles.add(cap);
    throw err;
  }
}

/** Opens libpcap on the device with the filter; throws libpcap's own message on a bad device or filter. */
export function openLiveCapture(opts: OpenOptions): LiveCapture {
  if (opts.device !== 'lo') {
    const rejected = libpcapRejects(opts.filter);
    if (rejected) throw new Error(rejected);
  }
  const cap = new Cap();
  const buffer = Buffer.alloc(opts.snapLen);
  const linkName = openOrKeep(cap, opts.device, opts.filter, opts.kernelBufferBytes, buffer);
  cap.on('packet', (capturedLength) => opts.onPacket(buffer, capturedLength));
  return {
    linkType: linkTypeNumber(linkName),
    close: () => {
      cap.removeAllListeners('packet');
      cap.close();
    },
  };
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
    const cap = new Cap();
    openOrKeep(cap, 'lo', filter, 64 * 1024, Buffer.alloc(64));
    cap.close();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
