// Kernel source: every packet the kernel drops, with its drop reason, from the eBPF program
// droptail.bpf.c on the tracepoint skb:kfree_skb. No log rule is needed, on any CNI.
//
// One program per agent process, shared by the DropTails that read it (like an NFLOG group): its
// in-kernel filter holds the union of their reasons, and each DropTail's listener keeps its own.
// The ring buffer is read by consume() calls on a short timer, as many as are waiting each time;
// what does not fit in the ring while the agent is busy is counted as lost by the program.
// libbpf and the FFI (koffi, about 8 MB) are loaded only when a kernel source first starts.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { PacketDrop } from '../../../apis/drops.js';
import { ALL_REASONS } from '../../../apis/droptail.js';
import { errorMessage, loggerFor } from '../../../util/log.js';
import { dropReasonName, NOT_DROPS, readKernelDropReasons, type KernelDropReasons } from '../../drops/kernel/btf.js';
import { effectiveCapabilities, missingBpfCapabilities } from '../../drops/kernel/capabilities.js';
import type { BpfObject, RingBuffer } from '../../drops/kernel/libbpf.js';
import { readDropEvent, toPacketDrop, type DropContext } from '../../drops/kernel/record.js';
import { kernelSamples } from '../metrics.js';
import type { CommitFn } from '../queue.js';
import { aborted, type DropSourceRunner, type SourceEvents } from './types.js';

/** Where the image puts the compiled program; NETWARDEN_BPF_OBJECT overrides it (the bootstrap's build). */
export const DEFAULT_BPF_OBJECT = '/app/bpf/droptail.bpf.o';
const PROGRAM = 'droptail_kfree_skb';
const MAX_CORE_REASONS = 1024;
/**
 * The ring buffer between the program and the agent: 4 MiB hold about 58,000 drops, over a second
 * of a 50,000/s flood while the agent's event loop is busy with a batch. Kernel memory, charged to
 * the agent's cgroup; fixed, so a flood costs the node no more than this.
 */
export const RING_BUFFER_BYTES = 4 * 1024 * 1024;
/** How often the ring buffer is read when it was empty. */
const IDLE_POLL_MS = 20;
/** Samples read before the event loop gets a turn (sending, the aggregator's flush, the API). */
const SAMPLES_PER_TURN = 1_000;
/** How often the program's lost and submitted counters are read. */
const COUNTERS_MS = 1_000;

/** Which reasons one DropTail asked for, as codes of this kernel. */
export interface ReasonSelection {
  codes: ReadonlySet<number>;
  /** Subsystem reasons (mac80211, openvswitch) too: only with `all`. */
  subsystems: boolean;
  /** Names the spec gave that this kernel does not have. */
  unknown: string[];
}

/** The spec's names to this kernel's codes: `all` is every drop but NOT_SPECIFIED unless named. */
export function selectReasons(names: readonly string[], kernel: KernelDropReasons): ReasonSelection {
  const codes = new Set<number>();
  const unknown: string[] = [];
  const all = names.includes(ALL_REASONS);
  if (all) {
    for (const [code, name] of kernel.names) {
      if (!(NOT_DROPS as readonly string[]).includes(name) && name !== 'NOT_SPECIFIED' && code < MAX_CORE_REASONS) codes.add(code);
    }
  }
  for (const name of names) {
    if (name === ALL_REASONS) continue;
    const code = kernel.codes.get(name);
    if (code === undefined || (NOT_DROPS as readonly string[]).includes(name) || code >= MAX_CORE_REASONS) unknown.push(name);
    else codes.add(code);
  }
  return { codes, subsystems: all, unknown };
}

export interface KernelDropListener {
  selection: ReasonSelection;
  drop(drop: PacketDrop): void;
}

export interface KernelProgramStats {
  /** Samples the program could not put in the full ring buffer. */
  lost: bigint;
  /** Samples the program submitted. */
  submitted: bigint;
}

/** The agent's one loaded program; opened by the first listener, closed with the last. */
type Libbpf = typeof import('../../drops/kernel/libbpf.js');

export class KernelDropProgram {
  private readonly listeners = new Set<KernelDropListener>();
  private loaded: { libbpf: Libbpf; object: BpfObject; ring: RingBuffer; selectedFd: number; settingsFd: number; countersFd: number } | undefined;
  private opening: Promise<void> | undefined;
  private reasons: KernelDropReasons | undefined;
  private timer: NodeJS.Timeout | undefined;
  private countersTimer: NodeJS.Timeout | undefined;
  private readonly selected = new Uint8Array(MAX_CORE_REASONS);
  private subsystemsSelected = false;
  private readonly interfaces = new InterfaceNames();
  private readonly log = loggerFor('droptail-kernel');
  /** Totals read from the program so far (also after it closed), for the metrics. */
  readonly stats: KernelProgramStats = { lost: 0n, submitted: 0n };
  private base: KernelProgramStats = { lost: 0n, submitted: 0n };

  constructor(private readonly objectPath = process.env.NETWARDEN_BPF_OBJECT || DEFAULT_BPF_OBJECT) {}

  /** The running kernel's reasons; throws the cause when it has none (no BTF, too old). */
  kernelReasons(): KernelDropReasons {
    this.reasons ??= readKernelDropReasons();
    if (!this.reasons.tracepointHasReason) throw new Error("this kernel's skb:kfree_skb tracepoint passes no drop reason: the kernel source needs Linux 5.17 or later");
    return this.reasons;
  }

  /** Starts delivering drops to the listener; throws with the reason when the program cannot run. */
  async subscribe(listener: KernelDropListener): Promise<void> {
    if (!this.loaded) {
      this.opening ??= this.open().finally(() => (this.opening = undefined));
      await this.opening;
    }
    this.listeners.add(listener);
    this.updateFilter();
  }

  unsubscribe(listener: KernelDropListener): void {
    if (!this.listeners.delete(listener)) return;
    if (this.listeners.size > 0) this.updateFilter();
    else this.close();
  }

  private async open(): Promise<void> {
    const missing = missingBpfCapabilities(effectiveCapabilities());
    if (missing) throw new Error(missing);
    this.kernelReasons();
    try {
      statSync(this.objectPath);
    } catch {
      throw new Error(`the kernel drop program ${this.objectPath} is missing (set NETWARDEN_BPF_OBJECT to the compiled droptail.bpf.o)`);
    }
    const libbpf = await import('../../drops/kernel/libbpf.js');
    let object: BpfObject;
    try {
      object = libbpf.BpfObject.load(this.objectPath, (o) => o.setMaxEntries('drops', RING_BUFFER_BYTES));
      object.attach(PROGRAM);
    } catch (err) {
      throw new Error(`${errorMessage(err)}${loadHint(libbpf, err)}`);
    }
    try {
      const ring = new libbpf.RingBuffer(object.mapFd('drops'), (view) => this.onSample(view));
      this.loaded = { libbpf, object, ring, selectedFd: object.mapFd('selected_reasons'), settingsFd: object.mapFd('settings'), countersFd: object.mapFd('counters') };
    } catch (err) {
      object.close();
      throw err;
    }
    this.selected.fill(0);
    this.subsystemsSelected = false;
    this.base = { ...this.stats };
    this.schedule(0);
    this.countersTimer = setInterval(() => this.readCounters(), COUNTERS_MS);
    this.countersTimer.unref();
    this.log.info('kernel drop program attached', { program: PROGRAM, object: this.objectPath });
  }

  private close(): void {
    clearTimeout(this.timer);
    clearImmediate(this.immediate);
    clearInterval(this.countersTimer);
    this.timer = this.countersTimer = undefined;
    if (!this.loaded) return;
    this.drain();
    this.readCounters();
    this.loaded.ring.free();
    this.loaded.object.close();
    this.loaded = undefined;
    this.log.info('kernel drop program detached');
  }

  /** The in-kernel filter: the union of the listeners' reasons. */
  private updateFilter(): void {
    const loaded = this.loaded;
    if (!loaded) return;
    const want = new Uint8Array(MAX_CORE_REASONS);
    let subsystems = false;
    for (const l of this.listeners) {
      for (const code of l.selection.codes) want[code] = 1;
      subsystems ||= l.selection.subsystems;
    }
    const key = Buffer.alloc(4);
    const value = Buffer.alloc(1);
    for (let code = 0; code < MAX_CORE_REASONS; code++) {
      if (want[code] === this.selected[code]) continue;
      key.writeUInt32LE(code);
      value[0] = want[code]!;
      loaded.libbpf.updateElement(loaded.selectedFd, key, value);
      this.selected[code] = want[code]!;
    }
    if (subsystems !== this.subsystemsSelected) {
      key.writeUInt32LE(0);
      value[0] = subsystems ? 1 : 0;
      loaded.libbpf.updateElement(loaded.settingsFd, key, value);
      this.subsystemsSelected = subsystems;
    }
  }

  private immediate: NodeJS.Immediate | undefined;

  /** The next read: after the event loop's I/O while samples keep coming, else after IDLE_POLL_MS. */
  private schedule(delayMs: number): void {
    if (delayMs === 0) this.immediate = setImmediate(() => this.poll());
    else this.timer = setTimeout(() => this.poll(), delayMs);
  }

  private poll(): void {
    if (!this.loaded) return;
    let n = 0;
    try {
      n = this.drain(SAMPLES_PER_TURN);
    } catch (err) {
      this.log.error('reading the kernel drop ring buffer failed', { error: errorMessage(err) });
    }
    this.schedule(n > 0 ? 0 : IDLE_POLL_MS);
  }

  private monotonicToWallMs = 0;

  private drain(budget = Infinity): number {
    if (!this.loaded) return 0;
    // CLOCK_MONOTONIC (bpf_ktime_get_ns) to wall time, once per read: process.hrtime is monotonic too.
    this.monotonicToWallMs = Date.now() - Number(process.hrtime.bigint()) / 1e6;
    return this.loaded.ring.consume(budget);
  }

  /** One context for every sample (this runs per drop): its reason and time are set each time. */
  private readonly sampleContext: DropContext = { reason: '', timeMs: 0, interfaceName: (ifindex, netns) => this.interfaces.name(ifindex, netns) };

  private onSample(view: DataView): void {
    const event = readDropEvent(view);
    if (!event || !this.reasons) return;
    let drop: PacketDrop | undefined;
    for (const l of this.listeners) {
      const wanted = event.reason >= 0x10000 ? l.selection.subsystems : l.selection.codes.has(event.reason);
      if (!wanted) continue;
      if (!drop) {
        this.sampleContext.reason = dropReasonName(this.reasons, event.reason);
        this.sampleContext.timeMs = this.monotonicToWallMs + Number(event.timeNs) / 1e6;
        drop = toPacketDrop(event, this.sampleContext);
      }
      l.drop(drop);
    }
  }

  private readCounters(): void {
    if (!this.loaded) return;
    try {
      const { perCpuSum } = this.loaded.libbpf;
      const lost = this.base.lost + perCpuSum(this.loaded.countersFd, 0);
      const submitted = this.base.submitted + perCpuSum(this.loaded.countersFd, 1);
      if (lost > this.stats.lost) kernelSamples.inc({ result: 'lost' }, Number(lost - this.stats.lost));
      if (submitted > this.stats.submitted) kernelSamples.inc({ result: 'submitted' }, Number(submitted - this.stats.submitted));
      if (lost > this.stats.lost) this.log.warn('kernel drop samples lost: the ring buffer was full', { lost: Number(lost - this.stats.lost), lostTotal: Number(lost) });
      this.stats.lost = lost;
      this.stats.submitted = submitted;
    } catch (err) {
      this.log.warn('reading the kernel drop counters failed', { error: errorMessage(err) });
    }
  }
}

function loadHint({ BpfError }: Libbpf, err: unknown): string {
  if (err instanceof BpfError && (err.errno === 1 || err.errno === 13)) return ' (the kernel refused: the agent needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN, and a seccomp profile that allows bpf())';
  if (err instanceof BpfError && err.errno === 2) return " (the kernel has no tracepoint skb:kfree_skb or no BTF for it)";
  return '';
}

/** Interface names of the agent's own network namespace by ifindex, from /sys/class/net. */
class InterfaceNames {
  private readonly netns = netnsInode('/proc/self/ns/net');
  private names = new Map<number, string>();
  private readAt = 0;

  name(ifindex: number, netns: number): string | undefined {
    // An ifindex of another namespace (a pod's eth0) would name the wrong interface here.
    if (netns !== 0 && this.netns !== undefined && netns !== this.netns) return undefined;
    const known = this.names.get(ifindex);
    if (known !== undefined || Date.now() - this.readAt < 5_000) return known;
    this.refresh();
    return this.names.get(ifindex);
  }

  private refresh(): void {
    this.readAt = Date.now();
    const names = new Map<number, string>();
    try {
      for (const name of readdirSync('/sys/class/net')) {
        try {
          names.set(Number(readFileSync(path.join('/sys/class/net', name, 'ifindex'), 'utf8').trim()), name);
        } catch {
          // gone between readdir and read
        }
      }
    } catch {
      return;
    }
    this.names = names;
  }
}

function netnsInode(file: string): number | undefined {
  try {
    return statSync(file).ino;
  } catch {
    return undefined;
  }
}

export const kernelDrops = new KernelDropProgram();

export class KernelSource implements DropSourceRunner {
  readonly type = 'kernel' as const;
  readonly id = 'kernel';

  constructor(
    private readonly reasons: readonly string[],
    private readonly program: KernelDropProgram = kernelDrops,
  ) {}

  async run(signal: AbortSignal, events: SourceEvents): Promise<void> {
    const selection = selectReasons(this.reasons, this.program.kernelReasons());
    const listener: KernelDropListener = {
      selection,
      drop: (drop) => {
        events.record();
        events.drop(drop);
      },
    };
    await this.program.subscribe(listener);
    const unknown = selection.unknown.length > 0 ? `; not reasons of this kernel, ignored: ${selection.unknown.join(', ')}` : '';
    events.health(true, `reading the kernel's drops (skb:kfree_skb) for ${this.reasons.join(', ')}${unknown}`);
    try {
      await aborted(signal);
    } finally {
      this.program.unsubscribe(listener);
    }
  }

  /** Drops the kernel handed over are gone from it: there is no position to save. */
  mark(): CommitFn | undefined {
    return undefined;
  }
}
