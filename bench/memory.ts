// What a measured child process reports about its memory: a sampler of process.memoryUsage()
// that keeps the breakdown (V8 heap, external, ArrayBuffers) at the highest RSS it saw; and a
// process's current or peak RSS as the kernel counts it.
import { readFileSync } from 'node:fs';

const MiB = 1024 * 1024;

export interface MemoryAtPeak {
  heapUsedMB: number;
  heapTotalMB: number;
  externalMB: number;
  arrayBuffersMB: number;
}

export interface MemorySampler {
  /** Stops sampling; the breakdown at the highest RSS sampled. */
  stop(): MemoryAtPeak;
}

export function sampleMemory(intervalMs = 100): MemorySampler {
  let sampledRss = 0;
  let atPeak: MemoryAtPeak = { heapUsedMB: 0, heapTotalMB: 0, externalMB: 0, arrayBuffersMB: 0 };
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    if (m.rss <= sampledRss) return;
    sampledRss = m.rss;
    atPeak = { heapUsedMB: m.heapUsed / MiB, heapTotalMB: m.heapTotal / MiB, externalMB: m.external / MiB, arrayBuffersMB: m.arrayBuffers / MiB };
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return atPeak;
    },
  };
}

/**
 * VmRSS (resident now) or VmHWM (peak resident) of /proc/<pid>/status in MiB; 0 when the line is
 * absent (a zombie). Throws when the process is gone.
 */
export function procStatusMB(pid: number | 'self', field: 'VmRSS' | 'VmHWM'): number {
  const kB = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kB ?? 0) / 1024;
}
