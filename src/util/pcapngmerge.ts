// Merges pcapng streams into one pcapng stream sorted by timestamp, as the capture download does:
// per node (the node's pod files in one file) or across every node (?merge=true). A k-way merge:
// each source holds at most one packet block (and the chunk it came in) while it waits for its
// turn, so memory is bounded by the number of sources, never by the size of the files.
//
// A source is one pod interface's files in order (rotation keeps them in time order), each a
// complete pcapng section as the agent writes it (src/util/pcapformat.ts): SHB, IDB, EPBs. The
// output is one section: our SHB, then each distinct IDB once (a rotated file repeats its
// predecessor's IDB: it maps onto the same interface), then the EPBs with their interface ids
// renumbered. IDBs come first for every source that declares its interface before its first packet
// (all of ours); one that appears later is written before the first packet that uses it, which
// pcapng allows. Only little-endian sections are read (what the agents write); blocks other than
// IDB and EPB (statistics, name resolution, simple packets) are dropped.
import { PCAPNG_BYTE_ORDER_MAGIC, PCAPNG_EPB, PCAPNG_IDB, PCAPNG_SHB, pcapngSectionHeader } from './pcapformat.js';

export class PcapngMergeError extends Error {}

/** A block larger than this is a corrupt file, not a packet. */
const MAX_BLOCK = 16 * 1024 * 1024;
/** Output chunks of about this size. */
const OUTPUT_CHUNK = 64 * 1024;

/** Reads whole blocks off a chunk stream; a block is a view into the chunk it came in. */
class BlockReader {
  private pending: Buffer = Buffer.alloc(0);
  private done = false;

  constructor(
    private readonly chunks: AsyncIterator<Buffer>,
    private readonly name: string,
  ) {}

  async next(): Promise<Buffer | undefined> {
    for (;;) {
      if (this.pending.length >= 8) {
        const length = this.pending.readUInt32LE(4);
        if (length < 12 || length % 4 !== 0 || length > MAX_BLOCK) throw new PcapngMergeError(`${this.name}: a pcapng block of invalid length ${length}`);
        if (this.pending.length >= length) {
          const block = this.pending.subarray(0, length);
          this.pending = this.pending.subarray(length);
          return block;
        }
      }
      if (this.done) {
        if (this.pending.length > 0) throw new PcapngMergeError(`${this.name}: truncated: ${this.pending.length} bytes at the end do not form a whole block`);
        return undefined;
      }
      const { value, done } = await this.chunks.next();
      if (done) this.done = true;
      else this.pending = this.pending.length === 0 ? value : Buffer.concat([this.pending, value]);
    }
  }

  async close(): Promise<void> {
    this.done = true;
    await this.chunks.return?.();
  }
}

interface Source {
  index: number;
  reader: BlockReader;
  /** The current section's interface ids, local -> merged (undefined until its IDB is written). */
  local: Array<number | undefined>;
  /** Interfaces of the current section seen so far. */
  sectionInterfaces: number;
  /** IDBs read but not yet written: local is undefined once their section ended. */
  newInterfaces: Array<{ block: Buffer; local: number | undefined }>;
  /** The next packet block, its merged interface id set, and its time in microseconds. */
  head: Buffer | undefined;
  headTime: number;
}

/** if_tsresol of an IDB, as ticks per second (default: microseconds). */
function ticksPerSecond(idb: Buffer): number {
  let offset = 16;
  const end = idb.length - 4;
  while (offset + 4 <= end) {
    const code = idb.readUInt16LE(offset);
    const length = idb.readUInt16LE(offset + 2);
    if (code === 0) break;
    if (code === 9 && length >= 1) {
      const v = idb[offset + 4]!;
      return v & 0x80 ? 2 ** (v & 0x7f) : 10 ** v;
    }
    offset += 4 + ((length + 3) & ~3);
  }
  return 1_000_000;
}

/** A min-heap of sources by (head time, source index): equal times keep the sources' order. */
class SourceHeap {
  private readonly items: Source[] = [];
  get size(): number {
    return this.items.length;
  }
  private less(a: Source, b: Source): boolean {
    return a.headTime < b.headTime || (a.headTime === b.headTime && a.index < b.index);
  }
  push(s: Source): void {
    const items = this.items;
    items.push(s);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }
  pop(): Source | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < items.length && this.less(items[l]!, items[m]!)) m = l;
        if (r < items.length && this.less(items[r]!, items[m]!)) m = r;
        if (m === i) break;
        [items[i], items[m]] = [items[m]!, items[i]!];
        i = m;
      }
    }
    return top;
  }
}

export interface MergeInput {
  /** For error messages, e.g. "node-a/web-0". */
  name: string;
  /** The bytes of one or more whole pcapng files, one after the other. */
  chunks: AsyncIterable<Buffer>;
}

/**
 * One pcapng stream of every input's packets in timestamp order (ties: the inputs' order, then
 * each input's own). Closing the returned iterator early closes every input.
 */
export async function* mergePcapng(inputs: readonly MergeInput[]): AsyncGenerator<Buffer> {
  const sources: Source[] = inputs.map((input, index) => ({
    index,
    reader: new BlockReader(input.chunks[Symbol.asyncIterator](), input.name),
    local: [],
    sectionInterfaces: 0,
    newInterfaces: [],
    head: undefined,
    headTime: 0,
  }));
  /** Every interface written, by its IDB's bytes: a rotated file's IDB maps onto its predecessor's. */
  const interfaces = new Map<string, number>();
  const resolution: number[] = [];
  let out: Buffer[] = [];
  let outBytes = 0;
  const emit = (block: Buffer) => {
    out.push(block);
    outBytes += block.length;
  };

  /** Reads up to the source's next packet block; IDBs on the way are queued for writing. */
  const advance = async (s: Source): Promise<void> => {
    s.head = undefined;
    for (;;) {
      const block = await s.reader.next();
      if (!block) return;
      const type = block.readUInt32LE(0);
      if (type === PCAPNG_SHB) {
        if (block.length < 28 || block.readUInt32LE(8) !== PCAPNG_BYTE_ORDER_MAGIC) throw new PcapngMergeError(`${inputs[s.index]!.name}: not a little-endian pcapng section`);
        for (const pending of s.newInterfaces) pending.local = undefined;
        s.local = [];
        s.sectionInterfaces = 0;
      } else if (type === PCAPNG_IDB) {
        s.newInterfaces.push({ block, local: s.sectionInterfaces++ });
      } else if (type === PCAPNG_EPB) {
        if (block.length < 32) throw new PcapngMergeError(`${inputs[s.index]!.name}: an enhanced packet block of ${block.length} bytes`);
        s.head = block;
        return;
      }
    }
  };

  /** Writes the source's new IDBs and gives its head packet its merged interface id and time. */
  const settle = (s: Source): void => {
    for (const { block, local } of s.newInterfaces) {
      const key = block.toString('latin1');
      let id = interfaces.get(key);
      if (id === undefined) {
        id = interfaces.size;
        interfaces.set(key, id);
        resolution[id] = ticksPerSecond(block);
        emit(block);
      }
      if (local !== undefined) s.local[local] = id;
    }
    s.newInterfaces = [];
    const head = s.head;
    if (!head) return;
    const id = s.local[head.readUInt32LE(8)];
    if (id === undefined) throw new PcapngMergeError(`${inputs[s.index]!.name}: a packet of undeclared interface ${head.readUInt32LE(8)}`);
    head.writeUInt32LE(id, 8);
    const ticks = head.readUInt32LE(12) * 0x1_0000_0000 + head.readUInt32LE(16);
    const perSecond = resolution[id]!;
    s.headTime = perSecond === 1_000_000 ? ticks : (ticks / perSecond) * 1_000_000;
  };

  try {
    emit(pcapngSectionHeader());
    // Every source is primed at once (the first round trips overlap); their IDBs go out in the
    // inputs' order, so the interface ids of a merge do not depend on which answered first.
    await Promise.all(sources.map(advance));
    const heap = new SourceHeap();
    for (const s of sources) {
      settle(s);
      if (s.head) heap.push(s);
    }
    while (heap.size > 0) {
      const s = heap.pop()!;
      emit(s.head!);
      if (outBytes >= OUTPUT_CHUNK) {
        yield Buffer.concat(out, outBytes);
        out = [];
        outBytes = 0;
      }
      await advance(s);
      settle(s);
      if (s.head) heap.push(s);
    }
    if (outBytes > 0) yield Buffer.concat(out, outBytes);
  } finally {
    await Promise.allSettled(sources.map((s) => s.reader.close()));
  }
}

/** One input from files opened one after the other (a pod's rotated files): each only when the
 * one before has been read. */
export async function* concatenated(open: ReadonlyArray<() => Promise<AsyncIterable<Buffer>>>): AsyncGenerator<Buffer> {
  for (const next of open) {
    for await (const chunk of await next()) yield chunk;
  }
}
