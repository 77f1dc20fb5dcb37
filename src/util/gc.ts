// A young-generation GC on demand, for code that streams large Buffers through the process while
// it allocates few JS objects (a 50 MB audit batch read back from its spool for a send). V8 frees
// a dead Buffer's memory only when a GC runs, and starts one for external memory only after about
// 64 MB of it: without this the forwarder held 20-40 MB of dead read buffers. gc is taken the way
// Jest's leak detector takes it, so it is not exposed to the rest of the process as a global.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type GcFunction = (options?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

let gc: GcFunction | undefined;

/** Collects the young generation now: Buffers that died since the last GC are freed. */
export function collectYoungGarbage(): void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as GcFunction;
    // Contexts made later (by any library) get no gc global; the function taken here keeps working.
    setFlagsFromString('--no-expose-gc');
  }
  gc({ type: 'minor' });
}
