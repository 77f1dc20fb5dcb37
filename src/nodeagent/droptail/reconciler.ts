// Runs one pipeline per DropTail that selects this node (nodeSelector against the Node's labels),
// and follows DropTail adds, updates and deletes and the Node's label changes:
//  - selected, not running          → start the pipeline and its node reporter
//  - sources or prefixes changed    → restart the pipeline (positions are kept on disk)
//  - no longer selected             → stop both (the controller forgets the node)
//  - DropTail deleted               → stop both and remove its state directory
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { V1Node } from '@kubernetes/client-node';
import type { DropTail, DropTailSpec } from '../../apis/droptail.js';
import { DEFAULT_KERNEL_REASONS, DEFAULT_PREFIXES } from '../../apis/droptail.js';
import { dropsPath } from '../../apis/drops.js';
import { REPORT_MIN_INTERVAL_MS, reportPath, type DropTailNodeReport } from '../../apis/nodereport.js';
import { Controller, type Reconciler } from '../../runtime/controller.js';
import type { ObjectKey } from '../../runtime/keys.js';
import type { Informer } from '../../runtime/informer.js';
import { nodeMatches } from '../../apis/nodeselection.js';
import { errorMessage, loggerFor } from '../../util/log.js';
import { NodeReporter } from '../report.js';
import type { AgentContext } from '../context.js';
import { DropBatchClient } from './client.js';
import { DropTailPipeline, type PipelineSnapshot } from './pipeline.js';
import { DropsSeenFile } from './seen.js';
import { FileSource } from './sources/file.js';
import { JournalSource } from './sources/journal.js';
import { KernelSource } from './sources/kernel.js';
import { NflogSource } from './sources/nflog.js';
import type { DropSourceRunner } from './sources/types.js';

interface Running {
  /** The part of the spec the pipeline was built from. */
  config: string;
  pipeline: DropTailPipeline;
  reporter: NodeReporter<DropTailNodeReport>;
  seen: DropsSeenFile;
}

/** The spec fields the node side acts on; other changes (Event settings) do not restart anything. */
function pipelineConfig(spec: DropTailSpec): string {
  return JSON.stringify({ sources: spec.sources, prefixes: spec.prefixes });
}

export class DropTailAgentReconciler implements Reconciler {
  private readonly running = new Map<string, Running>();

  constructor(
    private readonly ctx: AgentContext,
    private readonly dropTails: Informer<DropTail>,
  ) {}

  async reconcile(key: ObjectKey): Promise<void> {
    const obj = this.dropTails.get(key.name);
    const node = this.ctx.node.get(this.ctx.nodeName);
    const selected = obj !== undefined && node !== undefined && !obj.metadata.deletionTimestamp && nodeMatches(obj.spec.nodeSelector, node);
    const current = this.running.get(key.name);

    if (!selected || obj === undefined) {
      if (current) await this.stopPipeline(key.name, current);
      if (obj === undefined) await this.forgetState(key.name);
      return;
    }
    const config = pipelineConfig(obj.spec);
    if (current?.config === config) return;
    if (current) await this.stopPipeline(key.name, current);
    this.startPipeline(obj, node!, config);
  }

  /** Stops every pipeline (agent shutdown): sources stop, queued drops get a last chance to be sent. */
  async stopAll(): Promise<void> {
    // The controller keeps the node's last report until it is stale (the agent comes back).
    await Promise.all([...this.running].map(([name, r]) => this.stopPipeline(name, r)));
  }

  private startPipeline(obj: DropTail, node: V1Node, config: string): void {
    const name = obj.metadata.name ?? '';
    const stateDir = path.join(this.ctx.stateDir, 'droptail', name);
    const prefixes = obj.spec.prefixes ?? [...DEFAULT_PREFIXES];
    const sources = obj.spec.sources.map((source): DropSourceRunner => {
      if (source.type === 'nflog') return new NflogSource(source.group ?? 0, prefixes);
      if (source.type === 'kernel') return new KernelSource(source.reasons ?? [...DEFAULT_KERNEL_REASONS]);
      if (source.type === 'journal') return new JournalSource({ directory: source.directory, matches: source.matches, prefixes, stateDir, logKey: name });
      return new FileSource({ path: source.path ?? '', prefixes, stateDir, logKey: name });
    });
    const base = this.ctx.controllerUrl.replace(/\/+$/, '');
    const client = (url: string) => new DropBatchClient({ url, trust: this.ctx.controllerTrust, token: () => this.ctx.controllerToken() });
    let reporter: NodeReporter<DropTailNodeReport> | undefined;
    const seen = new DropsSeenFile(stateDir);
    const pipeline = new DropTailPipeline({
      name,
      node: node.metadata?.name ?? this.ctx.nodeName,
      sources,
      poster: client(`${base}${dropsPath(name)}`),
      initialDropsSeen: seen.initial,
      onChange: () => reporter?.poke(),
    });
    // Its own connection: a report never waits behind a large drop batch.
    reporter = new NodeReporter({
      name,
      component: 'droptail-agent',
      poster: client(`${base}${reportPath('droptail', name)}`),
      // Health changes poke it at once; dropsSeen moves with every drop and is looked at each slot.
      pollMs: REPORT_MIN_INTERVAL_MS,
      snapshot: () => {
        const snap = pipeline.snapshot();
        void seen.save(snap.dropsSeen);
        return dropTailReport(this.ctx.nodeName, snap);
      },
    });
    this.running.set(name, { config, pipeline, reporter, seen });
    pipeline.start();
    reporter.start();
  }

  private async stopPipeline(name: string, running: Running): Promise<void> {
    this.running.delete(name);
    await running.reporter.stop();
    await running.pipeline.stop();
    await running.seen.save(running.pipeline.snapshot().dropsSeen);
  }

  private async forgetState(name: string): Promise<void> {
    try {
      await rm(path.join(this.ctx.stateDir, 'droptail', name), { recursive: true, force: true });
    } catch (err) {
      loggerFor('droptail-agent', name).warn('removing the state of a deleted DropTail failed', { error: errorMessage(err) });
    }
  }
}

/** The report the controller gets: source health, drops seen (kept across agent restarts), the send error. */
export function dropTailReport(node: string, snap: PipelineSnapshot): DropTailNodeReport {
  const report: DropTailNodeReport = { node, sources: snap.sources, dropsSeen: snap.dropsSeen };
  if (snap.lastError !== undefined) report.lastError = snap.lastError.slice(0, 1024);
  return report;
}

/** A controller whose stop also stops the pipelines it runs (the manager stops controllers on SIGTERM). */
export class DropTailAgentController extends Controller {
  constructor(private readonly pipelines: DropTailAgentReconciler) {
    super({ name: 'agent-droptail', reconciler: pipelines });
  }

  override async stop(): Promise<void> {
    await super.stop();
    await this.pipelines.stopAll();
  }
}
