// Whether this process may load and attach a tracing BPF program: CAP_BPF and CAP_PERFMON (Linux
// 5.8+), or CAP_SYS_ADMIN, which covers both on every kernel. Read from /proc/self/status so the
// reason a source cannot start is named before the kernel answers a bare EPERM.
import { readFileSync } from 'node:fs';

const CAP_SYS_ADMIN = 21n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;

/** The effective capability mask of this process (CapEff in /proc/self/status). */
export function effectiveCapabilities(status = readFileSync('/proc/self/status', 'utf8')): bigint {
  const line = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  if (!line) throw new Error('/proc/self/status has no CapEff line');
  return BigInt(`0x${line[1]}`);
}

/** Undefined when the capabilities suffice, else what is missing, in words for the node's status. */
export function missingBpfCapabilities(effective: bigint): string | undefined {
  const has = (cap: bigint) => (effective >> cap) & 1n;
  if (has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))) return undefined;
  const missing = [has(CAP_BPF) ? '' : 'CAP_BPF', has(CAP_PERFMON) ? '' : 'CAP_PERFMON'].filter(Boolean).join(' and ');
  return `the agent lacks ${missing} (or CAP_SYS_ADMIN on kernels before 5.8) to load the kernel drop program: add BPF and PERFMON to the agent container's securityContext.capabilities`;
}
