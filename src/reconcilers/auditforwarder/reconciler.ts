// AuditForwarder: the controller checks the sink, counts the nodes it selects, and sums the agents'
// node reports (kept in memory, src/reconcilers/nodereports) into a summary of fixed size: the
// printer columns (NODES, UNHEALTHY, SHIPPED, LAG, READY), totals and the newest problems. Written
// at most once per STATUS_WRITE_INTERVAL_MS per forwarder, a new generation at once.
import type { KubeConfig, V1Node } from '@kubernetes/client-node';
import { AuditForwarderType } from '../../apis/meta.js';
import type { AuditForwarder } from '../../apis/auditforwarder.js';
import type { AuditNodeReport } from '../../apis/nodereport.js';
import { SYSTEM_NAMESPACE, sinkRefusal } from '../../apis/limits.js';
import type { Informer } from '../../runtime/informer.js';
import type { ReconcileResult, Reconciler } from '../../runtime/controller.js';
import type { ObjectKey } from '../../runtime/keys.js';
import { nodeMatches } from '../../apis/nodeselection.js';
import { readyConditions, schemaRejection, type Rejection } from '../common.js';
import { reportingNodes } from '../nodereports/metrics.js';
import type { NodeReportStore } from '../nodereports/store.js';
import { AUDIT_TOTALS, auditTotals, StatusWriteLimiter, summaryFields, writeLimited } from '../nodereports/summary.js';

const SUMMARY_FIELDS = ['nodeCount', 'unhealthyNodes', 'problems', ...AUDIT_TOTALS] as const;

export class AuditForwarderReconciler implements Reconciler {
  constructor(
    private readonly kc: KubeConfig,
    private readonly forwarders: Informer<AuditForwarder>,
    private readonly nodes: Informer<V1Node>,
    private readonly reports: NodeReportStore<AuditNodeReport>,
    private readonly now: () => Date = () => new Date(),
    /** Netwarden's own namespace, the controller's: sinks may name Secrets only there. */
    private readonly namespace: string = process.env.POD_NAMESPACE ?? SYSTEM_NAMESPACE,
    private readonly limiter: StatusWriteLimiter = new StatusWriteLimiter(),
    private readonly isLeader: () => boolean = () => true,
  ) {}

  async reconcile(key: ObjectKey): Promise<ReconcileResult | void> {
    const forwarder = this.forwarders.get(key.name);
    this.reports.leading(this.isLeader());
    if (!forwarder) {
      this.reports.forget(key.name);
      this.limiter.forget(key.name);
      return;
    }
    const selected = this.nodes.list().filter((n) => nodeMatches(forwarder.spec.nodeSelector, n)).map((n) => n.metadata?.name ?? '');
    const { fields, fresh, reporting, graceMs } = summaryFields(this.reports, key.name, new Set(selected), forwarder.status, auditTotals, SUMMARY_FIELDS);
    reportingNodes.set({ kind: 'auditforwarder' }, this.reports.size());
    const requeue: number[] = graceMs !== undefined ? [graceMs] : [];
    const desired = { ...desiredStatus(forwarder, selected, fresh, reporting, this.now(), this.namespace), ...fields };
    const urgent = forwarder.status?.observedGeneration !== (forwarder.metadata.generation ?? 0);
    const wait = await writeLimited(this.kc, AuditForwarderType, forwarder, desired, this.limiter, urgent);
    if (wait !== undefined) requeue.push(wait);
    const transition = this.reports.nextTransitionMs(key.name);
    if (transition !== undefined) requeue.push(transition);
    return requeue.length > 0 ? { requeueAfterMs: Math.min(...requeue) } : undefined;
  }
}

/** Ready and observedGeneration; the node summary and totals come from summarize(). */
export function desiredStatus(
  forwarder: AuditForwarder,
  selectedNodes: readonly string[],
  reports: readonly AuditNodeReport[],
  reporting: number,
  now: Date,
  namespace = SYSTEM_NAMESPACE,
): Record<string, unknown> {
  const generation = forwarder.metadata.generation ?? 0;
  const rejection = schemaRejection(forwarder) ?? sinkRejection(forwarder) ?? refusedSink(forwarder, namespace) ?? agentsFailing(reports, selectedNodes);
  return {
    observedGeneration: generation,
    conditions: readyConditions(forwarder.status?.conditions, generation, {
      rejection,
      reason: 'Accepted',
      message: `selects ${selectedNodes.length} node(s); ${reporting} agent(s) reporting`,
    }, now),
  };
}

/**
 * Not ready when every selected node's agent reports an error (the sink down or misconfigured, the log
 * missing); one healthy node keeps it Ready, its peers' errors stay visible in status.problems.
 */
function agentsFailing(reports: readonly AuditNodeReport[], selectedNodes: readonly string[]): Rejection | undefined {
  const selected = new Set(selectedNodes);
  const relevant = reports.filter((r) => selected.has(r.node));
  if (relevant.length === 0 || relevant.length < selected.size || !relevant.every((r) => r.lastError)) return undefined;
  const errors = relevant.map((r) => `${r.node}: ${r.lastError}`);
  return { reason: 'ForwardingFailing', message: errors.join('; ').slice(0, 1024) };
}

/** What the agents would refuse to do (and the admission policy refuses where installed). */
function refusedSink(forwarder: AuditForwarder, namespace: string): Rejection | undefined {
  const message = sinkRefusal(forwarder.spec, namespace);
  return message ? { reason: 'SinkRefused', message } : undefined;
}

/** URLs must parse and speak HTTP(S): the schema only says "a string". */
function sinkRejection(forwarder: AuditForwarder): Rejection | undefined {
  const urls: Array<[string, string | undefined]> = [
    ['spec.sink.webhook.url', forwarder.spec.sink.webhook?.url],
    ['spec.sink.webhook.proxyURL', forwarder.spec.sink.webhook?.proxyURL],
    ['spec.sink.s3.endpoint', forwarder.spec.sink.s3?.endpoint],
  ];
  for (const [field, value] of urls) {
    if (value === undefined) continue;
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return { reason: 'InvalidSink', message: `${field}: ${JSON.stringify(value)} is not a URL` };
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return { reason: 'InvalidSink', message: `${field}: scheme must be http or https, not ${url.protocol.replace(':', '')}` };
  }
  return undefined;
}
