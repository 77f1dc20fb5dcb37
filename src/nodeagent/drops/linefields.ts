// What the field scanners (kernelfields.ts for nf_log_syslog, ebtables.ts for ebt_log) found in
// one line: one object per parser, reset for every line.
import type { Protocol } from '../../apis/drops.js';

/**
 * What one line's tokens said, as [start, end) positions in the line (-1: absent) and numbers
 * (-1: absent): nothing is sliced while scanning, so a writer can copy text from the line itself
 * and only buildDrop makes strings. Keys keep their first value, even an empty one ("OUT=").
 */
export class LineFields {
  inP = -1;
  inQ = -1;
  outP = -1;
  outQ = -1;
  physInP = -1;
  physInQ = -1;
  physOutP = -1;
  physOutQ = -1;
  macP = -1;
  macQ = -1;
  macSrcP = -1;
  macSrcQ = -1;
  macDstP = -1;
  macDstQ = -1;
  vid = -1;
  srcP = -1;
  srcQ = -1;
  dstP = -1;
  dstQ = -1;
  ipLen = -1;
  ttl = -1;
  hop = -1;
  flowlbl = false;
  proto: Protocol | undefined = undefined;
  spt = -1;
  dpt = -1;
  flags = 0;
  icmpType = -1;
  icmpCode = -1;
  mark = -1;
  uid = -1;
  gid = -1;
  frag = -1;
  incomplete = false;
  arp = false;
  arpSrcP = -1;
  arpSrcQ = -1;
  arpDstP = -1;
  arpDstQ = -1;
  /** Nothing beyond interfaces and the link layer seen (so not an IP packet). */
  onlyLink = true;
  // The quoted packet of an ICMP error.
  iSrcP = -1;
  iSrcQ = -1;
  iDstP = -1;
  iDstQ = -1;
  iProto: Protocol | undefined = undefined;
  iSpt = -1;
  iDpt = -1;

  reset(): void {
    this.inP = this.inQ = this.outP = this.outQ = this.physInP = this.physInQ = this.physOutP = this.physOutQ = -1;
    this.macP = this.macQ = this.macSrcP = this.macSrcQ = this.macDstP = this.macDstQ = -1;
    this.vid = this.srcP = this.srcQ = this.dstP = this.dstQ = this.ipLen = this.ttl = this.hop = -1;
    this.flowlbl = false;
    this.proto = undefined;
    this.spt = this.dpt = -1;
    this.flags = 0;
    this.icmpType = this.icmpCode = this.mark = this.uid = this.gid = this.frag = -1;
    this.incomplete = this.arp = false;
    this.arpSrcP = this.arpSrcQ = this.arpDstP = this.arpDstQ = -1;
    this.onlyLink = true;
    this.iSrcP = this.iSrcQ = this.iDstP = this.iDstQ = -1;
    this.iProto = undefined;
    this.iSpt = this.iDpt = -1;
  }
}
