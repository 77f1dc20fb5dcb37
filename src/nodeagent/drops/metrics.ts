// Metrics of the drop parsers. By default they live on the process-wide registry of
// src/runtime/metrics.ts; tests and tools can make their own set on another registry.

import { Counter, type Registry } from 'prom-client';
import { registry as sharedRegistry } from '../../runtime/metrics.js';
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

/** A fresh set of counters registered on `registry` (none when `registry` is null). */
export function createDropMetrics(registry: Registry | null): DropMetrics {
  const registers = registry === null ? [] : [registry];
  const linesSkipped = new Counter({
    name: 'netwarden_agent_drop_lines_skipped_total',
    help: 'Firewall log lines (kernel log / journal) that were not turned into a packet drop, by reason.',
    labelNames: ['reason'] as const,
    registers,
  });
  const linesParsed = new Counter({
    name: 'netwarden_agent_drop_lines_parsed_total',
    help: 'Firewall log lines (kernel log / journal) parsed into a packet drop.',
    registers,
  });
  const packetsSkipped = new Counter({
    name: 'netwarden_agent_drop_nflog_packets_skipped_total',
    help: 'NFLOG packets that could not be decoded into a packet drop, by reason.',
    labelNames: ['reason'] as const,
    registers,
  });
  const packetsDecoded = new Counter({
    name: 'netwarden_agent_drop_nflog_packets_decoded_total',
    help: 'NFLOG packets decoded into a packet drop.',
    registers,
  });
  return {
    lineSkipped: reasonIncrement(linesSkipped),
    lineParsed() {
      linesParsed.inc();
    },
    packetSkipped: reasonIncrement(packetsSkipped),
    packetDecoded() {
      packetsDecoded.inc();
    },
  };
}

/** inc() by reason through cached label children: no label object hashed per line. */
function reasonIncrement(counter: Counter<'reason'>): (reason: SkipReason) => void {
  const children = new Map<SkipReason, { inc(): void }>();
  return (reason) => {
    let c = children.get(reason);
    if (c === undefined) {
      c = counter.labels(reason);
      children.set(reason, c);
    }
    c.inc();
  };
}

let shared: DropMetrics | undefined;

/** The drop metrics on the process-wide registry (created on first use). */
export function sharedDropMetrics(): DropMetrics {
  shared ??= createDropMetrics(sharedRegistry);
  return shared;
}

/** Metrics that count nothing (benchmarks, one-off tools). */
export const noDropMetrics: DropMetrics = {
  lineSkipped() {},
  lineParsed() {},
  packetSkipped() {},
  packetDecoded() {},
};
