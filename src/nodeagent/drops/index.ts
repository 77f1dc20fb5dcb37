// DropTail parsing: kernel LOG / nftables `log` lines, journald entries and NFLOG packets → PacketDrop.
export * from './types.js';
export * from '../../apis/drops.js';
export { KernelLogParser, MAX_LINE_LENGTH, type KernelLogParserOptions } from './kernellog.js';
export {
  decodeNflogPacket,
  decodeIpPacket,
  parseNflogTlvs,
  sysfsIfName,
  DLT_NFLOG,
  NFULA,
  type IfIndexLookup,
  type NflogDecodeOptions,
  type NflogRecord,
  type IpSummary,
} from './nflog.js';
export { createDropMetrics, sharedDropMetrics, noDropMetrics, type DropMetrics } from './metrics.js';
export { normalizeIP, normalizeIPv4, normalizeIPv6 } from '../../util/ip.js';
export { readBootTimeMs } from './timeheader.js';
