// The agent side of AuditForwarder: one AuditPipeline per forwarder that selects this node, and
// this node's status entry (written with server-side apply under the agent's own field manager,
// at most every REPORT_INTERVAL_MS so a busy log does not hammer the API server).
//
// A spec change restarts the pipeline from its checkpoint. When the node stops being selected the
// pipeline stops and the entry is released, keeping the checkpoint (selected again, it resumes
// where it was). When the forwarder is deleted its checkpoint is removed too.
import { isDeepStrictEqual } from 'node:util';
import { rm } from 'node:fs/promises';
import type { KubeConfig, V1Node } from '@kubernetes/client-node';
import { AuditForwarderType } from '../../apis/meta.js';
import type { AuditForwarder } from '../../apis/auditforwarder.js';
import type { Reconciler } from '../../runtime/controller.js';
import type { ObjectKey } from '../../runtime/keys.js';
import type { Informer } from '../../runtime/informer.js';
import { applyStatus } from '../../runtime/status.js';
import { nodeMatches } from '../../apis/nodeselection.js';
import { errorMessage, loggerFor } from '../../util/log.js';
import { agentFieldManager } from '../context.js';
import { removeForwarderMetrics } from './metrics.js';
import { AuditPipeline, forwarderStateDir, type PipelineStatus } from './pipeline.js';
import { auditForwarderRefusal, type AuditForwarderLimits } from '../../apis/limits.js';
import { sourcePathRefusal } from './confine.js';
import { auditSettingsOf } from './settings.js';
import { buildSink } from './sinks/index.js';

export const REPORT_INTERVAL_MS = 3_000;

interface Running {
  pipeline: AuditPipeline;
  spec: unknown;
  reported: PipelineStatus | null;
}

export interface AuditAgentOptions {
  kc: KubeConfig;
  nodeName: string;
  stateDir: string;
  forwarders: Informer<AuditForwarder>;
  node: Informer<V1Node>;
  /** What no forwarder may make this agent do: other namespaces' Secrets, paths outside its directories. */
  limits: AuditForwarderLimits;
}

export class AuditForwarderAgentReconciler implements Reconciler {
  private readonly running = new Map<string, Running>();
  private readonly log = loggerFor('audit-agent');
  private timer: NodeJS.Timeout | null = null;
  private reporting: Promise<void> = Promise.resolve();

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
      if ((fwd.status?.nodes ?? []).some((n) => n.node === this.opts.nodeName)) {
        // Applying without the entry releases it: SSA drops list items only this manager owned.
        await applyStatus(this.opts.kc, AuditForwarderType, { name }, {}, agentFieldManager(this.opts.nodeName));
      }
      return;
    }
    const current = this.running.get(name);
    if (current && isDeepStrictEqual(current.spec, fwd.spec)) {
      // Our entry went missing (status replaced): write it again at the next report.
      if (!(fwd.status?.nodes ?? []).some((n) => n.node === this.opts.nodeName)) current.reported = null;
      return;
    }
    if (current) await this.stopPipeline(name);
    await this.startPipeline(fwd);
  }

  /** Stops every pipeline (agent shutdown); checkpoints stay. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.reporting;
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
    this.running.set(name, { pipeline, spec: structuredClone(fwd.spec), reported: null });
    pipeline.start();
    this.log.info('forwarder started', { forwarder: name, source: settings.sourcePath });
    this.timer ??= setInterval(() => {
      this.reporting = this.reporting.then(() => this.reportAll());
    }, REPORT_INTERVAL_MS);
    this.reporting = this.reporting.then(() => this.reportAll());
  }

  private async stopPipeline(name: string): Promise<void> {
    const r = this.running.get(name);
    if (!r) return;
    this.running.delete(name);
    await r.pipeline.stop();
    this.log.info('forwarder stopped', { forwarder: name });
  }

  /** Writes each changed status entry (one apply per forwarder that changed). */
  private async reportAll(): Promise<void> {
    for (const [name, r] of [...this.running]) {
      const status = await r.pipeline.status();
      if (r.reported && isDeepStrictEqual(r.reported, status)) continue;
      try {
        await applyStatus(this.opts.kc, AuditForwarderType, { name }, { nodes: [{ node: this.opts.nodeName, ...status }] }, agentFieldManager(this.opts.nodeName));
        if (this.running.get(name) === r) r.reported = status;
      } catch (err) {
        this.log.warn('cannot write status', { forwarder: name, error: errorMessage(err) });
      }
    }
  }
}
