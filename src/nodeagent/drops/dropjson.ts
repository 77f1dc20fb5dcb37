// The drop a KernelLogParser read last, written as JSON straight from the line (`netwarden drops
// parse`): the same bytes as JSON.stringify(parser.drop()), without making the PacketDrop, its
// strings or the JSON text first. The keys come in the order buildDrop (kernellog.ts) adds them,
// which is the order JSON.stringify writes; test/unit/drops-json.test.ts holds the two together.
// What repeats from line to line (the time of the same millisecond, the prefix, the protocol, the
// TCP flags) is kept as JSON text and copied in. Fields are copied from the line's bytes (a chunk
// of stdin, read in place), escaped only when a byte needs it (jsonout.ts).
import type { TimeSource } from '../../apis/drops.js';
import { IsoTimes } from './isotime.js';
import { JsonOut } from './jsonout.js';
import { tcpFlagsOf } from './kernelfields.js';
import type { LineFields } from './linefields.js';
import type { Endpoints, KernelLogParser, LastLine } from './kernellog.js';

/** What DropJsonWriter writes around each drop object, e.g. `{"drop":` and `}\n` for a JSON line. */
export interface DropJsonFrame {
  before?: string;
  after?: string;
}

/** The keys of a drop with their punctuation, as bytes (JsonOut.key). */
const Key = {
  dst: JsonOut.key(',"dst":'),
  dstMac: JsonOut.key(',"dstMac":'),
  dstPort: JsonOut.key(',"dstPort":'),
  fragmentOffset: JsonOut.key(',"fragmentOffset":'),
  gid: JsonOut.key(',"gid":'),
  hopLimit: JsonOut.key(',"hopLimit":'),
  icmpCode: JsonOut.key(',"icmpCode":'),
  icmpType: JsonOut.key(',"icmpType":'),
  inInterface: JsonOut.key(',"inInterface":'),
  innerSrc: JsonOut.key(',"inner":{"src":'),
  length: JsonOut.key(',"length":'),
  mac: JsonOut.key(',"mac":'),
  mark: JsonOut.key(',"mark":'),
  outInterface: JsonOut.key(',"outInterface":'),
  physInInterface: JsonOut.key(',"physInInterface":'),
  physOutInterface: JsonOut.key(',"physOutInterface":'),
  raw: JsonOut.key(',"raw":'),
  srcMac: JsonOut.key(',"srcMac":'),
  srcPort: JsonOut.key(',"srcPort":'),
  ttl: JsonOut.key(',"ttl":'),
  uid: JsonOut.key(',"uid":'),
  vlanId: JsonOut.key(',"vlanId":'),
  none: JsonOut.key(''),
  incomplete: JsonOut.key(',"incomplete":true'),
  close: JsonOut.key('}'),
} as const;

/** At most this many prefixes' or protocols' JSON is kept (prefixes taken from lines, not configured, can be many). */
const MAX_CACHED = 1024;

interface SourceJson {
  times: IsoTimes;
  json: Uint8Array;
}

interface PrefixJson {
  ipv4: Uint8Array;
  ipv6: Uint8Array;
}

export class DropJsonWriter {
  /** `before{"time":"` */
  private readonly open: Uint8Array;
  /** `}after` */
  private readonly close: Uint8Array;
  /** By time source (logs mix them, and each keeps its last time's text): `","timeSource":"...","prefix":`. */
  private readonly sources = new Map<TimeSource, SourceJson>();
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
    this.open = JsonOut.key(`${frame.before ?? ''}{"time":"`);
    this.close = JsonOut.key(`}${frame.after ?? ''}`);
  }

  /** The drop of the line parser.read() last returned undefined for, as a JSON object (in its frame). */
  drop(parser: KernelLogParser): void {
    const out = this.out;
    const last = parser.last;
    const { buf: line, fields: f, endpoints: e } = last;
    const protocol = e.protocol;
    const source = this.sourceOf(last.timeSource);
    out.bytes(this.open);
    out.bytes(source.times.bytes(last.ms));
    out.bytes(source.json);
    out.bytes(this.prefixOf(last.prefix)[e.family]);
    address(out, Key.none, line, e, e.srcP, e.srcQ, 0);
    address(out, Key.dst, line, e, e.dstP, e.dstQ, 8);
    out.bytes(this.protocolOf(protocol));
    if (f.inQ > f.inP) out.bytesField(Key.inInterface, line, f.inP, f.inQ);
    if (f.outQ > f.outP) out.bytesField(Key.outInterface, line, f.outP, f.outQ);
    if (f.physInQ > f.physInP) out.bytesField(Key.physInInterface, line, f.physInP, f.physInQ);
    if (f.physOutQ > f.physOutP) out.bytesField(Key.physOutInterface, line, f.physOutP, f.physOutQ);
    if (f.macQ > f.macP) {
      out.bytesField(Key.mac, line, f.macP, f.macQ);
      if (f.macQ - f.macP === 41) {
        // buildDrop adds dstMac and srcMac from MAC= first; MACDST=/MACSRC= then only change their values
        if (f.macDstQ > f.macDstP) out.bytesField(Key.dstMac, line, f.macDstP, f.macDstQ);
        else out.bytesField(Key.dstMac, line, f.macP, f.macP + 17);
        if (f.macSrcQ > f.macSrcP) out.bytesField(Key.srcMac, line, f.macSrcP, f.macSrcQ);
        else out.bytesField(Key.srcMac, line, f.macP + 18, f.macP + 35);
      } else {
        macAddresses(out, line, f);
      }
    } else {
      macAddresses(out, line, f);
    }
    if (f.vid >= 0) out.numberField(Key.vlanId, f.vid);
    if (f.spt >= 0) out.numberField(Key.srcPort, f.spt);
    if (f.dpt >= 0) out.numberField(Key.dstPort, f.dpt);
    if (f.ipLen >= 0 && protocol !== 'ARP') out.numberField(Key.length, f.ipLen);
    if (f.ttl >= 0) out.numberField(Key.ttl, f.ttl);
    if (f.hop >= 0) out.numberField(Key.hopLimit, f.hop);
    if (protocol === 'TCP' && f.flags !== 0) out.bytes((this.flags[f.flags] ??= this.out.encode(`,"tcpFlags":${JSON.stringify(tcpFlagsOf(f.flags))}`)));
    if ((protocol === 'ICMP' || protocol === 'ICMPv6') && f.icmpType >= 0) {
      out.numberField(Key.icmpType, f.icmpType);
      if (f.icmpCode >= 0) out.numberField(Key.icmpCode, f.icmpCode);
    }
    if (e.inner) {
      address(out, Key.innerSrc, line, e, f.iSrcP, f.iSrcQ, 16);
      address(out, Key.dst, line, e, f.iDstP, f.iDstQ, 24);
      if (f.iProto !== undefined) out.bytes(this.protocolOf(f.iProto));
      if (f.iSpt >= 0) out.numberField(Key.srcPort, f.iSpt);
      if (f.iDpt >= 0) out.numberField(Key.dstPort, f.iDpt);
      out.bytes(Key.close);
    }
    if (f.mark >= 0) out.numberField(Key.mark, f.mark);
    if (f.uid >= 0) out.numberField(Key.uid, f.uid);
    if (f.gid >= 0) out.numberField(Key.gid, f.gid);
    if (f.frag > 0) out.numberField(Key.fragmentOffset, f.frag);
    if (f.incomplete || e.incomplete) out.bytes(Key.incomplete);
    if (parser.keepRaw) this.line(last, Key.raw);
    out.bytes(this.close);
  }

  /** `key` and the line `last` holds as a JSON string: copied from its bytes, or its text when it was given as text. */
  line(last: LastLine, key: Uint8Array = Key.none): void {
    if (last.fromBytes) {
      this.out.bytesField(key, last.buf, last.start, last.end);
    } else {
      this.out.bytes(key);
      this.out.string(last.line);
    }
  }

  /** `","timeSource":"<source>","prefix":`, the JSON between the time and the prefix. */
  private sourceOf(source: TimeSource): SourceJson {
    let json = this.sources.get(source);
    if (json === undefined) {
      json = { times: new IsoTimes(), json: JsonOut.key(`","timeSource":"${source}","prefix":`) };
      this.sources.set(source, json);
    }
    return json;
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
function macAddresses(out: JsonOut, line: Buffer, f: LineFields): void {
  if (f.macSrcQ > f.macSrcP) out.bytesField(Key.srcMac, line, f.macSrcP, f.macSrcQ);
  if (f.macDstQ > f.macDstP) out.bytesField(Key.dstMac, line, f.macDstP, f.macDstQ);
}

/** `key` and a checked address as a JSON string: IPv4 as printed, IPv6 from its groups. */
function address(out: JsonOut, key: Uint8Array, line: Buffer, e: Endpoints, p: number, q: number, group: number): void {
  if (e.family === 'ipv6') out.ipv6Field(key, e.groups, group);
  else out.bytesField(key, line, p, q);
}
