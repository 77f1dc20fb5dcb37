// This node's entry in DropTail status.nodes: source health, drops seen, the last send error.
// Written by server-side apply with the agent's own field manager (the list is a map keyed by
// node, so every agent owns only its entry). Rate-limited: at most one write per interval, and
// only when something other than the time changed; a health change is written at the next slot.
import { isDeepStrictEqual } from 'node:util';
import type { KubeConfig } from '@kubernetes/client-node';
import type { DropTailNodeStatus } from '../../apis/droptail.js';
import { DropTailType } from '../../apis/meta.js';
import { applyStatus } from '../../runtime/status.js';
import { errorMessage, loggerFor, type Logger } from '../../util/log.js';
import { agentFieldManager } from '../context.js';
import type { PipelineSnapshot } from './pipeline.js';

export const DEFAULT_STATUS_INTERVAL_MS = 5_000;
const FIRST_WRITE_DELAY_MS = 1_000;

export class NodeStatusReporter {
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;
  private written: PipelineSnapshot | undefined;
  private lastWriteAt = 0;
  private writing: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly name: string,
    private readonly node: string,
    private readonly snapshot: () => PipelineSnapshot,
    private readonly intervalMs = DEFAULT_STATUS_INTERVAL_MS,
  ) {
    this.log = loggerFor('droptail-agent', name);
  }

  start(): void {
    this.timer = setInterval(() => this.writeIfChanged(), this.intervalMs);
    // The first entry a moment after start, so it shows the sources running (or why they are not).
    this.lastWriteAt = Date.now() - this.intervalMs + FIRST_WRITE_DELAY_MS;
    this.poke();
  }

  /** Something changed: write at the next free slot. */
  poke(): void {
    if (this.stopped || this.soon !== undefined) return;
    const waitMs = Math.max(0, this.lastWriteAt + this.intervalMs - Date.now());
    this.soon = setTimeout(() => {
      this.soon = undefined;
      this.writeIfChanged();
    }, waitMs);
  }

  /** Stops writing; with final, the current state is written once more (if changed). */
  async stop(final = false): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.soon);
    this.soon = undefined;
    if (final) await this.write(this.snapshot(), true);
    await this.writing;
  }

  private writeIfChanged(): void {
    if (this.stopped) return;
    void this.write(this.snapshot(), false);
  }

  private write(snap: PipelineSnapshot, force: boolean): Promise<void> {
    const run = this.writing.then(async () => {
      if ((this.stopped && !force) || isDeepStrictEqual(snap, this.written)) return;
      this.lastWriteAt = Date.now();
      try {
        await applyStatus(this.kc, DropTailType, { name: this.name }, { nodes: [nodeEntry(this.node, snap)] }, agentFieldManager(this.node));
        this.written = snap;
      } catch (err) {
        // Retried at the next interval: the snapshot still differs from what was written.
        this.log.warn('writing the node status entry failed', { error: errorMessage(err) });
      }
    });
    this.writing = run;
    return run;
  }
}

export function nodeEntry(node: string, snap: PipelineSnapshot): DropTailNodeStatus {
  const entry: DropTailNodeStatus = { node, sources: snap.sources, dropsSeen: snap.dropsSeen, lastUpdateTime: new Date().toISOString() };
  if (snap.lastError !== undefined) entry.lastError = snap.lastError.slice(0, 1024);
  return entry;
}

/**
 * Gives up this node's entry: applying without it removes what only this manager owned. An empty
 * list rather than no status at all: when no other manager owns a status field yet, removing the
 * last one would leave `status: null`, which the CRD schema refuses.
 */
export async function releaseNodeEntry(kc: KubeConfig, name: string, node: string): Promise<void> {
  await applyStatus(kc, DropTailType, { name }, { nodes: [] }, agentFieldManager(node));
}
