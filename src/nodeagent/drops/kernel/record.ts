// The kernel source's ring buffer record (struct drop_event in droptail.bpf.c) turned into a
// PacketDrop, the record every other DropTail source produces too.
import type { PacketDrop } from '../../../apis/drops.js';
import { formatIPv4Bytes, formatIPv6Bytes } from '../../../util/ip.js';
import { tcpFlagMaskFromHeader, tcpFlagsOf } from '../kernelfields.js';
import { PROTOCOL_NAMES } from '../types.js';

/** sizeof(struct drop_event): C's natural alignment, no holes (see the struct's comment). */
export const DROP_EVENT_BYTES = 72;

const FLAG_PORTS = 1;
const FLAG_ICMP = 2;

/** The fields of one record, as the program wrote them. */
export interface KernelDropEvent {
  /** CLOCK_MONOTONIC nanoseconds. */
  timeNs: bigint;
  reason: number;
  ifindex: number;
  iif: number;
  netns: number;
  mark: number;
  length: number;
  sport: number;
  dport: number;
  family: 4 | 6;
  protocol: number;
  icmpType: number;
  icmpCode: number;
  tcpFlags: number;
  flags: number;
  /** The addresses, formatted (dotted quad, RFC 5952). */
  src: string;
  dst: string;
}

/** Reads one record; undefined when it is not one (short, or a family the program never writes). */
export function readDropEvent(view: DataView): KernelDropEvent | undefined {
  if (view.byteLength < DROP_EVENT_BYTES) return undefined;
  const family = view.getUint8(34);
  if (family !== 4 && family !== 6) return undefined;
  const bytes = new Uint8Array(view.buffer, view.byteOffset, DROP_EVENT_BYTES);
  return {
    timeNs: view.getBigUint64(0, true),
    reason: view.getUint32(8, true),
    ifindex: view.getUint32(12, true),
    iif: view.getUint32(16, true),
    netns: view.getUint32(20, true),
    mark: view.getUint32(24, true),
    length: view.getUint16(28, true),
    sport: view.getUint16(30, true),
    dport: view.getUint16(32, true),
    family,
    protocol: view.getUint8(35),
    icmpType: view.getUint8(36),
    icmpCode: view.getUint8(37),
    tcpFlags: view.getUint8(38),
    flags: view.getUint8(39),
    // Formatted now: the ring buffer's memory is reused once the callback returns.
    src: family === 4 ? formatIPv4Bytes(bytes, 40) : formatIPv6Bytes(bytes, 40),
    dst: family === 4 ? formatIPv4Bytes(bytes, 56) : formatIPv6Bytes(bytes, 56),
  };
}

export interface DropContext {
  /** The reason's name (NETFILTER_DROP, ...). */
  reason: string;
  /** Wall-clock milliseconds of the event. */
  timeMs: number;
  /** Interface names by ifindex, for interfaces in the agent's own network namespace. */
  interfaceName(ifindex: number, netns: number): string | undefined;
}

/** The PacketDrop of a record: addresses, protocol, ports or ICMP type, interfaces, reason. */
export function toPacketDrop(e: KernelDropEvent, ctx: DropContext): PacketDrop {
  const v4 = e.family === 4;
  const drop: PacketDrop = {
    time: new Date(ctx.timeMs).toISOString(),
    timeSource: 'kernel',
    prefix: '',
    reason: ctx.reason,
    family: v4 ? 'ipv4' : 'ipv6',
    src: e.src,
    dst: e.dst,
    protocol: PROTOCOL_NAMES[e.protocol] ?? String(e.protocol),
  };
  if (e.length > 0) drop.length = e.length;
  // skb_iif is set on receive: a received packet names its interface as the one it came in on.
  const name = e.ifindex ? ctx.interfaceName(e.ifindex, e.netns) : undefined;
  if (name !== undefined) {
    if (e.iif !== 0) drop.inInterface = name;
    else drop.outInterface = name;
  }
  if (e.flags & FLAG_PORTS) {
    drop.srcPort = e.sport;
    drop.dstPort = e.dport;
  }
  if (e.protocol === 6 && e.flags & FLAG_PORTS) {
    const mask = tcpFlagMaskFromHeader(e.tcpFlags, 0);
    if (mask !== 0) drop.tcpFlags = tcpFlagsOf(mask);
  }
  if (e.flags & FLAG_ICMP) {
    drop.icmpType = e.icmpType;
    drop.icmpCode = e.icmpCode;
  }
  if (e.mark !== 0) drop.mark = e.mark;
  return drop;
}
