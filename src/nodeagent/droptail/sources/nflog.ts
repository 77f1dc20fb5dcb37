// NFLOG source: the kernel hands logged packets of `log group N` to the agent through libpcap's
// "nflog:N" device (the `cap` binding), event-driven: no log file, no polling.
//
// The kernel lets one socket bind a group, so the agent opens each group once and shares it among
// the DropTails that read it (NflogGroups). `cap` names only a few link types; NFLOG comes back as
// "Unknown linktype 239", which is expected. Handles go through ../../libpcap.ts, which keeps
// closed and failed ones from the garbage collector (the binding would crash the process).
import { decodeNflogPacket } from '../../drops/nflog.js';
import { hardenNewNflogSockets, socketFds } from '../../drops/netlinksocket.js';
import { openPacketSource, type PacketSource } from '../../libpcap.js';
import { errorMessage } from '../../../util/log.js';
import type { CommitFn } from '../queue.js';
import { aborted, type DropSourceRunner, type SourceEvents } from './types.js';

type PacketListener = (packet: Buffer) => void;

interface OpenGroup {
  source: PacketSource;
  listeners: Set<PacketListener>;
}

/** Kernel-to-agent buffer of a group: room for bursts while the event loop is busy. */
const CAPTURE_BUFFER_BYTES = 4 * 1024 * 1024;
const SNAP_BYTES = 65535;

/** The NFLOG groups this process has open, each shared by its listeners. */
class NflogGroups {
  private readonly groups = new Map<number, OpenGroup>();

  /** Starts delivering the group's packets to listener; throws when the group cannot be opened. */
  subscribe(group: number, listener: PacketListener): void {
    let open = this.groups.get(group);
    if (open === undefined) {
      open = this.open(group);
      this.groups.set(group, open);
    }
    open.listeners.add(listener);
  }

  unsubscribe(group: number, listener: PacketListener): void {
    const open = this.groups.get(group);
    if (open === undefined) return;
    open.listeners.delete(listener);
    if (open.listeners.size > 0) return;
    this.groups.delete(group);
    open.source.close();
  }

  private open(group: number): OpenGroup {
    const buffer = Buffer.alloc(SNAP_BYTES);
    const listeners = new Set<PacketListener>();
    const onPacket = (nbytes: number): void => {
      // The buffer is reused for the next packet: listeners decode synchronously.
      const packet = buffer.subarray(0, nbytes);
      for (const listener of listeners) listener(packet);
    };
    try {
      const before = socketFds();
      const source = openPacketSource(`nflog:${group}`, '', CAPTURE_BUFFER_BYTES, buffer, onPacket);
      try {
        hardenNewNflogSockets(before, CAPTURE_BUFFER_BYTES);
      } catch (err) {
        source.close();
        throw err;
      }
      return { source, listeners };
    } catch (err) {
      throw new Error(`nflog:${group}: ${errorMessage(err)}${hint(errorMessage(err))}`);
    }
  }
}

function hint(message: string): string {
  if (/not permitted|permission/i.test(message)) return ' (the agent needs CAP_NET_ADMIN, and no other process may read this group)';
  return '';
}

export const nflogGroups = new NflogGroups();

export class NflogSource implements DropSourceRunner {
  readonly type = 'nflog' as const;
  readonly id: string;

  constructor(
    private readonly group: number,
    private readonly prefixes: readonly string[],
  ) {
    this.id = `nflog:${group}`;
  }

  async run(signal: AbortSignal, events: SourceEvents): Promise<void> {
    const decodeOpts = { prefixes: this.prefixes }; // one options object, not one per packet
    const listener: PacketListener = (packet) => {
      events.record();
      const result = decodeNflogPacket(packet, decodeOpts);
      if (result.ok) events.drop(result.drop);
    };
    nflogGroups.subscribe(this.group, listener);
    events.health(true, `reading NFLOG group ${this.group}`);
    try {
      await aborted(signal);
    } finally {
      nflogGroups.unsubscribe(this.group, listener);
    }
  }

  /** Packets the kernel handed over are gone from it: there is no position to save. */
  mark(): CommitFn | undefined {
    return undefined;
  }
}
