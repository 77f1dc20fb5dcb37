// Metrics of the drop parsers on prom-client. By default they live on the process-wide registry of
// src/runtime/metrics.ts (installed as the parsers' default, see counting.ts); tests and tools can
// make their own set on another registry.

import { Counter, type Registry } from 'prom-client';
import { registry as sharedRegistry } from '../../runtime/metrics.js';
import type { SkipReason } from './types.js';
import { installDefaultDropMetrics, noDropMetrics, type DropMetrics } from './counting.js';

export { noDropMetrics, type DropMetrics };

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

// Parsers made without metrics count on the shared registry in every process that loads this module.
installDefaultDropMetrics(sharedDropMetrics);
