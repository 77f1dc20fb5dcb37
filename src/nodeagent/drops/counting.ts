// What the drop parsers count, without prom-client: the DropMetrics interface, a set that counts
// nothing, and the default of parsers made without one. metrics.ts (prom-client, the shared
// registry) installs the shared counters as that default when it is loaded, as it is in the agent
// (its drop sources import it); `netwarden drops parse` never loads it, so it starts without
// prom-client and the runtime's registry and counts nothing.
import type { SkipReason } from './types.js';

export interface DropMetrics {
  /** Count one skipped kernel log line / journal entry. */
  lineSkipped(reason: SkipReason): void;
  /** Count one parsed kernel log line. */
  lineParsed(): void;
  /** Count one skipped NFLOG packet. */
  packetSkipped(reason: SkipReason): void;
  /** Count one decoded NFLOG packet. */
  packetDecoded(): void;
}

/** Metrics that count nothing (benchmarks, one-off tools). */
export const noDropMetrics: DropMetrics = {
  lineSkipped() {},
  lineParsed() {},
  packetSkipped() {},
  packetDecoded() {},
};

let installed: (() => DropMetrics) | undefined;

/** Makes `metrics` the default of every parser made from now on without its own (metrics.ts does). */
export function installDefaultDropMetrics(metrics: () => DropMetrics): void {
  installed = metrics;
}

/** The metrics of a parser made without any: the installed default, else none. */
export function defaultDropMetrics(): DropMetrics {
  return installed === undefined ? noDropMetrics : installed();
}
