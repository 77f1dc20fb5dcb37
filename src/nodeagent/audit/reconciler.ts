// The agent side of AuditForwarder: one AuditPipeline per forwarder that selects this node, and
// this node's report to the controller (src/nodeagent/report.ts: on change at most every 5 s, a
// heartbeat every 30 s), which sums the nodes' reports into the forwarder's status.
//
// A spec change restarts the pipeline from its checkpoint. When the node stops being selected the
// pipeline and its reports stop (the controller forgets the node), keeping the checkpoint
// (selected again, it resumes where it was). When the forwarder is deleted its checkpoint is
// removed too.
import { isDeepStrictEqual } from 'node:util';
import { rm } from 'node:fs/promises';
import type { KubeConfig, V1Node } from '@kubernetes/client-node';
import type { AuditForwarder } from '../../apis/auditforwarder.js';
import { REPORT_MIN_INTERVAL_MS, reportPath, type AuditNodeReport } from '../../apis/nodereport.js';
import type { Reconciler } from '../../runtime/controller.js';
import type { ObjectKey } from '../../runtime/keys.js';
import type { Informer } from '../../runtime/informer.js';
import type { TrustBundle } from '../../runtime/tls.js';
import { nodeMatches } from '../../apis/nodeselection.js';
import { loggerFor } from '../../util/log.js';
import { DropBatchClient } from '../droptail/client.js';
import { NodeReporter, type ReportPoster } from '../report.js';
import { removeForwarderMetrics } from './metrics.js';
import { AuditPipeline, forwarderStateDir } from './pipeline.js';
import { auditForwarderRefusal, type AuditForwarderLimits } from '../../apis/limits.js';
import { sourcePathRefusal } from './confine.js';
import { auditSettingsOf } from './settings.js';
import { buildSink } from './sinks/index.js';

interface Running {
  pipeline: AuditPipeline;
  spec: unknown;
  reporter: NodeReporter<AuditNodeReport>;
}

export interface AuditAgentOptions {
  kc: KubeConfig;
  nodeName: string;
  stateDir: string;
  forwarders: Informer<AuditForwarder>;
  node: Informer<V1Node>;
  /** What no forwarder may make this agent do: other namespaces' Secrets, paths outside its directories. */
  limits: AuditForwarderLimits;
  /** The controller's HTTPS API, its CA bundle and the agent's token for it (as drop batches use). */
  controllerUrl: string;
  controllerTrust?: TrustBundle | undefined;
  controllerToken: () => Promise<string>;
  /** Builds the poster of a forwarder's reports; default: DropBatchClient to reportPath(). */
  reportPoster?: (forwarder: string) => ReportPoster;
}

export class AuditForwarderAgentReconciler implements Reconciler {
  private readonly running = new Map<string, Running>();
  private readonly log = loggerFor('audit-agent');

  constructor(private readonly opts: AuditAgentOptions) {}

  async reconcile(key: ObjectKey): Promise<void> {
    const name = key.name;
    const fwd = this.opts.forwarders.get(name);
    const node = this.opts.node.get(this.opts.nodeName);
    if (!fwd) {
      await this.stopPipeline(name);
      await rm(forwarderStateDir(this.opts.stateDir, name), { recursive: true, force: true });
      removeForwarderMetrics(name);
      return;
    }
    if (!node) return; // our Node is not in the cache yet
    if (!nodeMatches(fwd.spec.nodeSelector, node)) {
      await this.stopPipeline(name);
      return;
    }
    const current = this.running.get(name);
    if (current && isDeepStrictEqual(current.spec, fwd.spec)) return;
    if (current) await this.stopPipeline(name);
    await this.startPipeline(fwd);
  }

  /** Stops every pipeline (agent shutdown); checkpoints stay. */
  async close(): Promise<void> {
    await Promise.all([...this.running.keys()].map((n) => this.stopPipeline(n)));
  }

  private async startPipeline(fwd: AuditForwarder): Promise<void> {
    const name = fwd.metadata.name!;
    const settings = auditSettingsOf(fwd);
    const stateDir = this.opts.stateDir;
    const { limits } = this.opts;
    // Refused here too, not only at admission: a cluster may run without the policy.
    const refusal = auditForwarderRefusal(fwd.spec, limits) ?? (await sourcePathRefusal(settings.sourcePath, limits.auditLogDirs));
    if (refusal) this.log.warn('forwarder refused', { forwarder: name, reason: refusal });
    const pipeline = new AuditPipeline({
      forwarder: name,
      nodeName: this.opts.nodeName,
      settings,
      stateDir: forwarderStateDir(stateDir, name),
      buildSink: () => buildSink(this.opts.kc, settings.sink, stateDir, limits.namespace),
      ...(refusal ? { refusal } : {}),
    });
    const reporter = new NodeReporter<AuditNodeReport>({
      name,
      component: 'audit-agent',
      poster: this.opts.reportPoster?.(name) ?? this.defaultPoster(name),
      snapshot: async () => ({ node: this.opts.nodeName, ...(await pipeline.status()) }),
      // The counters move with every batch and the pipeline does not say when: looked at on each slot.
      pollMs: REPORT_MIN_INTERVAL_MS,
    });
    this.running.set(name, { pipeline, spec: structuredClone(fwd.spec), reporter });
    pipeline.start();
    reporter.start();
    this.log.info('forwarder started', { forwarder: name, source: settings.sourcePath });
  }

  private defaultPoster(name: string): ReportPoster {
    const url = `${this.opts.controllerUrl.replace(/\/+$/, '')}${reportPath('auditforwarder', name)}`;
    return new DropBatchClient({ url, trust: this.opts.controllerTrust, token: () => this.opts.controllerToken() });
  }

  private async stopPipeline(name: string): Promise<void> {
    const r = this.running.get(name);
    if (!r) return;
    this.running.delete(name);
    await r.reporter.stop();
    await r.pipeline.stop();
    this.log.info('forwarder stopped', { forwarder: name });
  }
}
