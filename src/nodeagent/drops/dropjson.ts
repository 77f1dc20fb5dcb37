// The drop a KernelLogParser read last, written as JSON straight from the line (`netwarden drops
// parse`): the same bytes as JSON.stringify(parser.drop()), without making the PacketDrop, its
// strings or the JSON text first. The keys come in the order buildDrop (kernellog.ts) adds them,
// which is the order JSON.stringify writes; test/unit/drops-json.test.ts holds the two together.
// What repeats from line to line (the time of the same millisecond, the prefix, the protocol, the
// TCP flags) is kept as JSON text and copied in.
import type { TimeSource } from '../../apis/drops.js';
import { IsoTimes } from './isotime.js';
import type { JsonOut } from './jsonout.js';
import { tcpFlagsOf } from './kernelfields.js';
import type { LineFields } from './linefields.js';
import type { Endpoints, KernelLogParser } from './kernellog.js';

/** What DropJsonWriter writes around each drop object, e.g. `{"drop":` and `}\n` for a JSON line. */
export interface DropJsonFrame {
  before?: string;
  after?: string;
}

/** At most this many prefixes' or protocols' JSON is kept (prefixes taken from lines, not configured, can be many). */
const MAX_CACHED = 1024;

interface PrefixJson {
  ipv4: Uint8Array;
  ipv6: Uint8Array;
}

export class DropJsonWriter {
  private readonly iso = new IsoTimes();
  private readonly before: string;
  private readonly after: string;
  /** By time source (logs mix them): `before{"time":"...","timeSource":"...","prefix":` of its last time. */
  private readonly heads = new Map<TimeSource, { ms: number; text: string }>();
  /** By prefix: `"prefix","family":"ipv4","src":` and its IPv6 twin. */
  private readonly prefixes = new Map<string, PrefixJson>();
  /** By protocol: `,"protocol":"TCP"`. */
  private readonly protocols = new Map<string, Uint8Array>();
  /** `,"tcpFlags":[...]` of each set of TCP flags seen, by bit mask. */
  private readonly flags: Uint8Array[] = [];

  constructor(
    private readonly out: JsonOut,
    frame: DropJsonFrame = {},
  ) {
    this.before = frame.before ?? '';
    this.after = frame.after ?? '';
  }

  /** The drop of the line parser.read() last returned undefined for, as a JSON object (in its frame). */
  drop(parser: KernelLogParser): void {
    const out = this.out;
    const last = parser.last;
    const { line, fields: f, endpoints: e } = last;
    const protocol = e.protocol;
    out.ascii(this.headOf(last.ms, last.timeSource));
    out.bytes(this.prefixOf(last.prefix)[e.family]);
    address(out, '', line, e, e.srcP, e.srcQ, 0);
    address(out, ',"dst":', line, e, e.dstP, e.dstQ, 8);
    out.bytes(this.protocolOf(protocol));
    if (f.inQ > f.inP) out.field(',"inInterface":', line, f.inP, f.inQ);
    if (f.outQ > f.outP) out.field(',"outInterface":', line, f.outP, f.outQ);
    if (f.physInQ > f.physInP) out.field(',"physInInterface":', line, f.physInP, f.physInQ);
    if (f.physOutQ > f.physOutP) out.field(',"physOutInterface":', line, f.physOutP, f.physOutQ);
    if (f.macQ > f.macP) {
      out.field(',"mac":', line, f.macP, f.macQ);
      if (f.macQ - f.macP === 41) {
        // buildDrop adds dstMac and srcMac from MAC= first; MACDST=/MACSRC= then only change their values
        if (f.macDstQ > f.macDstP) out.field(',"dstMac":', line, f.macDstP, f.macDstQ);
        else out.field(',"dstMac":', line, f.macP, f.macP + 17);
        if (f.macSrcQ > f.macSrcP) out.field(',"srcMac":', line, f.macSrcP, f.macSrcQ);
        else out.field(',"srcMac":', line, f.macP + 18, f.macP + 35);
      } else {
        macAddresses(out, line, f);
      }
    } else {
      macAddresses(out, line, f);
    }
    if (f.vid >= 0) out.numberField(',"vlanId":', f.vid);
    if (f.spt >= 0) out.numberField(',"srcPort":', f.spt);
    if (f.dpt >= 0) out.numberField(',"dstPort":', f.dpt);
    if (f.ipLen >= 0 && protocol !== 'ARP') out.numberField(',"length":', f.ipLen);
    if (f.ttl >= 0) out.numberField(',"ttl":', f.ttl);
    if (f.hop >= 0) out.numberField(',"hopLimit":', f.hop);
    if (protocol === 'TCP' && f.flags !== 0) out.bytes((this.flags[f.flags] ??= this.out.encode(`,"tcpFlags":${JSON.stringify(tcpFlagsOf(f.flags))}`)));
    if ((protocol === 'ICMP' || protocol === 'ICMPv6') && f.icmpType >= 0) {
      out.numberField(',"icmpType":', f.icmpType);
      if (f.icmpCode >= 0) out.numberField(',"icmpCode":', f.icmpCode);
    }
    if (e.inner) {
      address(out, ',"inner":{"src":', line, e, f.iSrcP, f.iSrcQ, 16);
      address(out, ',"dst":', line, e, f.iDstP, f.iDstQ, 24);
      if (f.iProto !== undefined) out.bytes(this.protocolOf(f.iProto));
      if (f.iSpt >= 0) out.numberField(',"srcPort":', f.iSpt);
      if (f.iDpt >= 0) out.numberField(',"dstPort":', f.iDpt);
      out.ascii('}');
    }
    if (f.mark >= 0) out.numberField(',"mark":', f.mark);
    if (f.uid >= 0) out.numberField(',"uid":', f.uid);
    if (f.gid >= 0) out.numberField(',"gid":', f.gid);
    if (f.frag > 0) out.numberField(',"fragmentOffset":', f.frag);
    if (f.incomplete || e.incomplete) out.ascii(',"incomplete":true');
    if (parser.keepRaw) out.field(',"raw":', line, 0, line.length);
    out.ascii('}');
    out.ascii(this.after);
  }

  /** `before{"time":"<toISOString()>","timeSource":"...","prefix":` (ASCII), made when the source's time changes. */
  private headOf(ms: number, source: TimeSource): string {
    let head = this.heads.get(source);
    if (head === undefined) {
      head = { ms: NaN, text: '' };
      this.heads.set(source, head);
    }
    if (head.ms !== ms) {
      head.ms = ms;
      head.text = `${this.before}{"time":"${this.iso.text(ms)}","timeSource":"${source}","prefix":`;
    }
    return head.text;
  }

  private prefixOf(prefix: string): PrefixJson {
    let json = this.prefixes.get(prefix);
    if (json === undefined) {
      const text = JSON.stringify(prefix);
      json = { ipv4: this.out.encode(`${text},"family":"ipv4","src":`), ipv6: this.out.encode(`${text},"family":"ipv6","src":`) };
      if (this.prefixes.size >= MAX_CACHED) this.prefixes.clear();
      this.prefixes.set(prefix, json);
    }
    return json;
  }

  private protocolOf(protocol: string): Uint8Array {
    let json = this.protocols.get(protocol);
    if (json === undefined) {
      json = this.out.encode(`,"protocol":${JSON.stringify(protocol)}`);
      if (this.protocols.size >= MAX_CACHED) this.protocols.clear();
      this.protocols.set(protocol, json);
    }
    return json;
  }
}

/** MACSRC= / MACDST= without an Ethernet MAC=: in the order buildDrop adds them. */
function macAddresses(out: JsonOut, line: string, f: LineFields): void {
  if (f.macSrcQ > f.macSrcP) out.field(',"srcMac":', line, f.macSrcP, f.macSrcQ);
  if (f.macDstQ > f.macDstP) out.field(',"dstMac":', line, f.macDstP, f.macDstQ);
}

/** `key` and a checked address as a JSON string: IPv4 as printed, IPv6 from its groups. */
function address(out: JsonOut, key: string, line: string, e: Endpoints, p: number, q: number, group: number): void {
  if (e.family === 'ipv6') out.ipv6Field(key, e.groups, group);
  else out.field(key, line, p, q);
}
