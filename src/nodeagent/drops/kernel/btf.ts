// The running kernel's drop reasons, read from its BTF (/sys/kernel/btf/vmlinux), not from a table
// copied from one kernel version: the enum grows with every release (6.18 has 128 reasons) and its
// numbers move when reasons are inserted.
//
// BTF layout (Documentation/bpf/btf.rst): a header, then the type section (each type a 12-byte
// btf_type followed by kind-specific data), then the string section the names point into. Only the
// enums and typedefs needed here are decoded; every other kind is skipped by its size.
import { readFileSync } from 'node:fs';

export const VMLINUX_BTF = '/sys/kernel/btf/vmlinux';

const BTF_MAGIC = 0xeb9f;
const KIND = { INT: 1, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, TYPEDEF: 8, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, DECL_TAG: 17, ENUM64: 19, PTR: 2 } as const;
const REASON_PREFIX = 'SKB_DROP_REASON_';
const SUBSYSTEM_PREFIX = 'SKB_DROP_REASON_SUBSYS_';

export interface KernelDropReasons {
  /** Code → name without the SKB_DROP_REASON_ prefix (NETFILTER_DROP, NO_SOCKET, ...; SKB_CONSUMED is CONSUMED). */
  readonly names: ReadonlyMap<number, string>;
  /** Name → code, the inverse of names. */
  readonly codes: ReadonlyMap<string, number>;
  /** Subsystem number (the reason's high 16 bits) → name (MAC80211_UNUSABLE, OPENVSWITCH). */
  readonly subsystems: ReadonlyMap<number, string>;
  /** The tracepoint skb:kfree_skb passes the reason (Linux 5.17 and later). */
  readonly tracepointHasReason: boolean;
}

/** Codes that are never a drop: the skb is not freed yet, or it was used up normally. */
export const NOT_DROPS = ['NOT_DROPPED_YET', 'CONSUMED', 'MAX', 'SUBSYS_MASK'] as const;

/** Reads the running kernel's drop reasons; throws with the cause when the kernel has no BTF. */
export function readKernelDropReasons(file = VMLINUX_BTF): KernelDropReasons {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`this kernel has no BTF (${file} is missing): the kernel source needs a kernel built with CONFIG_DEBUG_INFO_BTF=y, Linux 5.17 or later`);
    throw new Error(`cannot read the kernel's BTF ${file}: ${(err as Error).message}`);
  }
  return parseDropReasons(data);
}

/** Decodes the drop reasons out of a BTF blob (vmlinux's, or a test's). */
export function parseDropReasons(data: Buffer): KernelDropReasons {
  if (data.length < 24 || data.readUInt16LE(0) !== BTF_MAGIC) throw new Error('not a BTF file (bad magic); only little-endian BTF is read');
  const hdrLen = data.readUInt32LE(4);
  const typeOff = hdrLen + data.readUInt32LE(8);
  const typeLen = data.readUInt32LE(12);
  const strOff = hdrLen + data.readUInt32LE(16);
  const strLen = data.readUInt32LE(20);
  if (typeOff + typeLen > data.length || strOff + strLen > data.length) throw new Error('BTF sections run past the end of the file');
  const name = (offset: number): string => {
    const start = strOff + offset;
    const end = data.indexOf(0, start);
    return data.toString('latin1', start, end < 0 || end > strOff + strLen ? strOff + strLen : end);
  };

  const names = new Map<number, string>();
  const subsystems = new Map<number, string>();
  // Type ids start at 1; typedef btf_trace_kfree_skb → pointer → function prototype.
  const typedefTarget = new Map<string, number>();
  const pointerTarget = new Map<number, number>();
  const protoParams = new Map<number, number>();

  let at = typeOff;
  const end = typeOff + typeLen;
  for (let id = 1; at + 12 <= end; id++) {
    const nameOff = data.readUInt32LE(at);
    const info = data.readUInt32LE(at + 4);
    const sizeOrType = data.readUInt32LE(at + 8);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    const body = at + 12;
    switch (kind) {
      case KIND.ENUM: {
        const enumName = name(nameOff);
        if (enumName === 'skb_drop_reason' || enumName === 'skb_drop_reason_subsys') {
          for (let i = 0; i < vlen; i++) {
            const member = name(data.readUInt32LE(body + i * 8));
            const value = data.readUInt32LE(body + i * 8 + 4); // unsigned: SUBSYS_MASK is 0xffff0000
            if (enumName === 'skb_drop_reason_subsys') {
              if (member.startsWith(SUBSYSTEM_PREFIX) && member !== `${SUBSYSTEM_PREFIX}NUM`) subsystems.set(value, member.slice(SUBSYSTEM_PREFIX.length));
            } else {
              names.set(value, reasonName(member));
            }
          }
        }
        at = body + vlen * 8;
        break;
      }
      case KIND.ENUM64: {
        if (name(nameOff) === 'skb_drop_reason') {
          for (let i = 0; i < vlen; i++) names.set(data.readUInt32LE(body + i * 12 + 4), reasonName(name(data.readUInt32LE(body + i * 12))));
        }
        at = body + vlen * 12;
        break;
      }
      case KIND.TYPEDEF:
        typedefTarget.set(name(nameOff), sizeOrType);
        at = body;
        break;
      case KIND.PTR:
        pointerTarget.set(id, sizeOrType);
        at = body;
        break;
      case KIND.FUNC_PROTO:
        protoParams.set(id, vlen);
        at = body + vlen * 8;
        break;
      default:
        at = body + kindDataBytes(kind, vlen);
    }
  }
  if (names.size === 0) throw new Error('this kernel has no enum skb_drop_reason in its BTF: drop reasons need Linux 5.17 or later');
  const traceTypedef = typedefTarget.get('btf_trace_kfree_skb');
  const proto = traceTypedef === undefined ? undefined : pointerTarget.get(traceTypedef);
  // (void *ctx, struct sk_buff *, void *location, enum skb_drop_reason[, struct sock *rx_sk])
  const tracepointHasReason = proto !== undefined && (protoParams.get(proto) ?? 0) >= 4;
  const codes = new Map<string, number>();
  for (const [code, reason] of names) codes.set(reason, code);
  return { names, codes, subsystems, tracepointHasReason };
}

function reasonName(member: string): string {
  if (member.startsWith(REASON_PREFIX)) return member.slice(REASON_PREFIX.length);
  return member.startsWith('SKB_') ? member.slice(4) : member;
}

/** Bytes of kind-specific data after a btf_type (see the kinds in Documentation/bpf/btf.rst). */
function kindDataBytes(kind: number, vlen: number): number {
  switch (kind) {
    case KIND.INT:
    case KIND.VAR:
    case KIND.DECL_TAG:
      return 4;
    case KIND.ARRAY:
      return 12;
    case KIND.STRUCT:
    case KIND.UNION:
    case KIND.DATASEC:
      return vlen * 12;
    default:
      return 0; // FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
  }
}

/** The name of a reason code: the kernel's, "MAC80211_UNUSABLE:3" for a subsystem's, else the number. */
export function dropReasonName(reasons: KernelDropReasons, code: number): string {
  const known = reasons.names.get(code);
  if (known !== undefined) return known;
  const subsystem = code >>> 16;
  if (subsystem !== 0) return `${reasons.subsystems.get(subsystem) ?? `SUBSYS_${subsystem}`}:${code & 0xffff}`;
  return String(code);
}
