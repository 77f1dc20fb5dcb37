// The part of libbpf (Debian's libbpf1, libbpf.so.1) the kernel drop source uses, through the koffi
// FFI: open and load a CO-RE object, attach its program, fill its maps, read its ring buffer.
// libbpf does the hard parts (relocations against the running kernel's BTF, the verifier, the ring
// buffer's memory protocol); this file only declares its C functions with TypeScript types.
//
// Errors follow libbpf 1.x: pointer functions return NULL and set errno, int functions return
// -errno. Each failure becomes an Error naming the call and the errno's text.
import { constants } from 'node:os';
import koffi, { type LibraryHandle } from 'koffi';
import { loggerFor } from '../../../util/log.js';

export type Pointer = bigint;

/** Called for each ring buffer sample with a view of it, valid only during the call. */
export type SampleHandler = (sample: DataView) => void;

interface Functions {
  openFile(path: string, opts: null): Pointer | null;
  load(obj: Pointer): number;
  close(obj: Pointer): void;
  findProgram(obj: Pointer, name: string): Pointer | null;
  findMap(obj: Pointer, name: string): Pointer | null;
  mapFd(map: Pointer): number;
  setMaxEntries(map: Pointer, entries: number): number;
  attach(prog: Pointer): Pointer | null;
  destroyLink(link: Pointer): number;
  updateElem(fd: number, key: Buffer, value: Buffer, flags: number): number;
  lookupElem(fd: number, key: Buffer, value: Buffer): number;
  possibleCpus(): number;
  ringNew(fd: number, callback: Pointer, ctx: null, opts: null): Pointer | null;
  ringConsume(ring: Pointer): number;
  ringFree(ring: Pointer): void;
  setPrint(callback: Pointer | null): Pointer | null;
  vsnprintf(buffer: Buffer, size: number, format: Pointer, args: Pointer): number;
}

let loaded: Functions | undefined;
const SampleCallback = koffi.proto('int netwarden_ring_sample(void *ctx, void *data, size_t size)');
const PrintCallback = koffi.proto('int netwarden_libbpf_print(int level, void *format, void *args)');

/** libbpf's functions; throws (once per call, cheaply after) when libbpf.so.1 is not installed. */
function lib(): Functions {
  if (loaded) return loaded;
  let bpf: LibraryHandle;
  try {
    bpf = koffi.load('libbpf.so.1');
  } catch (err) {
    throw new Error(`libbpf.so.1 cannot be loaded (${(err as Error).message}); the image installs Debian's libbpf1`);
  }
  const libc = koffi.load('libc.so.6');
  const f = (definition: string) => bpf.func(definition) as (...args: unknown[]) => unknown;
  const fns = {
    openFile: f('void *bpf_object__open_file(const char *path, void *opts)'),
    load: f('int bpf_object__load(void *obj)'),
    close: f('void bpf_object__close(void *obj)'),
    findProgram: f('void *bpf_object__find_program_by_name(void *obj, const char *name)'),
    findMap: f('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
    mapFd: f('int bpf_map__fd(void *map)'),
    setMaxEntries: f('int bpf_map__set_max_entries(void *map, uint32_t entries)'),
    attach: f('void *bpf_program__attach(void *prog)'),
    destroyLink: f('int bpf_link__destroy(void *link)'),
    updateElem: f('int bpf_map_update_elem(int fd, void *key, void *value, uint64_t flags)'),
    lookupElem: f('int bpf_map_lookup_elem(int fd, void *key, void *value)'),
    possibleCpus: f('int libbpf_num_possible_cpus()'),
    ringNew: bpf.func('void *ring_buffer__new(int map_fd, netwarden_ring_sample *sample_cb, void *ctx, void *opts)') as (...args: unknown[]) => unknown,
    ringConsume: f('int ring_buffer__consume(void *rb)'),
    ringFree: f('void ring_buffer__free(void *rb)'),
    setPrint: bpf.func('void *libbpf_set_print(netwarden_libbpf_print *fn)') as (...args: unknown[]) => unknown,
    // va_list is passed as a pointer on x86-64 and arm64 alike, so libbpf's can be handed on.
    vsnprintf: libc.func('int vsnprintf(_Out_ uint8_t *buf, size_t size, void *format, void *args)') as (...args: unknown[]) => unknown,
  };
  loaded = fns as unknown as Functions;
  routeLibbpfMessages(loaded);
  return loaded;
}

/** libbpf prints to stderr; its warnings (the verifier's, a missing BTF) become JSON log lines. */
function routeLibbpfMessages(fns: Functions): void {
  const log = loggerFor('libbpf');
  const buffer = Buffer.alloc(2048);
  const print = (level: number, format: Pointer, args: Pointer): number => {
    if (level > 1) return 0; // LIBBPF_DEBUG
    const n = fns.vsnprintf(buffer, buffer.length, format, args);
    const text = buffer.toString('utf8', 0, Math.min(Math.max(n, 0), buffer.length - 1)).trim();
    if (text && level === 0) log.warn(text);
    else if (text) log.debug(text);
    return n;
  };
  fns.setPrint(koffi.register(print, koffi.pointer(PrintCallback)));
}

function errnoText(errno: number): string {
  const name = Object.entries(constants.errno).find(([, v]) => v === errno)?.[0];
  return name ? `${name} (${errno})` : `errno ${errno}`;
}

function check(what: string, rc: number): void {
  if (rc < 0) throw new BpfError(what, -rc);
}

function pointer(what: string, p: Pointer | null): Pointer {
  if (p === null || p === 0n) throw new BpfError(what, koffi.errno());
  return p;
}

export class BpfError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call}: ${errnoText(errno)}`);
  }
}

/** A loaded BPF object: its maps by name, its program attached, closed (detached) by close(). */
export class BpfObject {
  private readonly links: Pointer[] = [];
  private closed = false;

  private constructor(private readonly obj: Pointer) {}

  /** Opens the ELF object and, after `configure` (map sizes), loads it into the kernel. */
  static load(path: string, configure?: (obj: BpfObject) => void): BpfObject {
    const fns = lib();
    const object = new BpfObject(pointer(`opening ${path}`, fns.openFile(path, null)));
    try {
      configure?.(object);
      check('loading the BPF object', fns.load(object.obj));
      return object;
    } catch (err) {
      object.close();
      throw err;
    }
  }

  attach(programName: string): void {
    const fns = lib();
    const prog = pointer(`finding program ${programName}`, fns.findProgram(this.obj, programName));
    this.links.push(pointer(`attaching ${programName}`, fns.attach(prog)));
  }

  /** Before load only. */
  setMaxEntries(mapName: string, entries: number): void {
    check(`sizing map ${mapName}`, lib().setMaxEntries(this.map(mapName), entries));
  }

  mapFd(mapName: string): number {
    const fd = lib().mapFd(this.map(mapName));
    check(`map ${mapName}`, fd);
    return fd;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const fns = lib();
    for (const link of this.links.splice(0)) fns.destroyLink(link);
    fns.close(this.obj);
  }

  private map(name: string): Pointer {
    return pointer(`finding map ${name}`, lib().findMap(this.obj, name));
  }
}

export function updateElement(fd: number, key: Buffer, value: Buffer): void {
  check('bpf_map_update_elem', lib().updateElem(fd, key, value, 0));
}

/** The sum over all CPUs of a per-CPU array's u64 at index. */
export function perCpuSum(fd: number, index: number): bigint {
  const fns = lib();
  const cpus = fns.possibleCpus();
  check('libbpf_num_possible_cpus', cpus);
  const key = Buffer.alloc(4);
  key.writeUInt32LE(index);
  // Per-CPU values are 8-byte aligned, one per possible CPU.
  const values = Buffer.alloc(8 * cpus);
  check('bpf_map_lookup_elem', fns.lookupElem(fd, key, values));
  let sum = 0n;
  for (let cpu = 0; cpu < cpus; cpu++) sum += values.readBigUInt64LE(cpu * 8);
  return sum;
}

/** A BPF ring buffer read by consume() calls: no thread, no blocking poll on the event loop. */
export class RingBuffer {
  private readonly ring: Pointer;
  private readonly callback: Pointer;
  private freed = false;

  private taken = 0;
  private budget = Infinity;

  constructor(mapFd: number, handler: SampleHandler) {
    const fns = lib();
    const onSample = (_ctx: Pointer | null, data: Pointer, size: number | bigint): number => {
      handler(new DataView(koffi.view(data, Number(size))));
      // A negative answer makes libbpf stop with this sample consumed: the rest waits in the ring.
      return ++this.taken >= this.budget ? -1 : 0;
    };
    this.callback = koffi.register(onSample, koffi.pointer(SampleCallback));
    try {
      this.ring = pointer('ring_buffer__new', fns.ringNew(mapFd, this.callback, null, null));
    } catch (err) {
      koffi.unregister(this.callback);
      throw err;
    }
  }

  /**
   * Hands the samples waiting to the handler, at most `budget` of them (the event loop gets a turn
   * between two reads, so a burst is not handed to the pipeline all at once); returns how many.
   */
  consume(budget = Infinity): number {
    this.taken = 0;
    this.budget = budget;
    const n = lib().ringConsume(this.ring);
    if (n < 0 && this.taken >= budget) return this.taken;
    check('ring_buffer__consume', n);
    return n;
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    lib().ringFree(this.ring);
    koffi.unregister(this.callback);
  }
}
