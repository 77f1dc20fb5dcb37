// AuditForwarder: the controller checks the sink, counts the nodes it selects, and sums the agents'
// per-node progress into the printer columns (NODES, SHIPPED, LAG, READY).
import type { KubeConfig, V1Node } from '@kubernetes/client-node';
import { AuditForwarderType } from '../../apis/meta.js';
import type { AuditForwarder, AuditNodeStatus } from '../../apis/auditforwarder.js';
import { SYSTEM_NAMESPACE, sinkRefusal } from '../../apis/limits.js';
import type { Informer } from '../../runtime/informer.js';
import type { Reconciler } from '../../runtime/controller.js';
import type { ObjectKey } from '../../runtime/keys.js';
import { nodeMatches } from '../../apis/nodeselection.js';
import { applyControllerStatus, readyConditions, schemaRejection, type Rejection } from '../common.js';

export class AuditForwarderReconciler implements Reconciler {
  constructor(
    private readonly kc: KubeConfig,
    private readonly forwarders: Informer<AuditForwarder>,
    private readonly nodes: Informer<V1Node>,
    private readonly now: () => Date = () => new Date(),
    /** Netwarden's own namespace, the controller's: sinks may name Secrets only there. */
    private readonly namespace: string = process.env.POD_NAMESPACE ?? SYSTEM_NAMESPACE,
  ) {}

  async reconcile(key: ObjectKey): Promise<void> {
    const forwarder = this.forwarders.get(key.name);
    if (!forwarder) return;
    const selected = this.nodes.list().filter((n) => nodeMatches(forwarder.spec.nodeSelector, n)).map((n) => n.metadata?.name ?? '');
    await applyControllerStatus(this.kc, AuditForwarderType, forwarder, desiredStatus(forwarder, selected, this.now(), this.namespace));
  }
}

export function desiredStatus(forwarder: AuditForwarder, selectedNodes: readonly string[], now: Date, namespace = SYSTEM_NAMESPACE): Record<string, unknown> {
  const reports = forwarder.status?.nodes ?? [];
  const generation = forwarder.metadata.generation ?? 0;
  const rejection = schemaRejection(forwarder) ?? sinkRejection(forwarder) ?? refusedSink(forwarder, namespace) ?? agentsFailing(reports, selectedNodes);
  return {
    observedGeneration: generation,
    conditions: readyConditions(forwarder.status?.conditions, generation, {
      rejection,
      reason: 'Accepted',
      message: `selects ${selectedNodes.length} node(s); ${reports.length} agent(s) reporting`,
    }, now),
    nodeCount: reports.length,
    shippedBytes: reports.reduce((sum, r) => sum + (r.shippedBytes ?? 0), 0),
    lagBytes: reports.reduce((sum, r) => sum + (r.lagBytes ?? 0), 0),
  };
}

/**
 * Not ready when every selected node's agent reports an error (the sink down or misconfigured, the log
 * missing); one healthy node keeps it Ready, its peers' errors stay visible in status.nodes.
 */
function agentsFailing(reports: readonly AuditNodeStatus[], selectedNodes: readonly string[]): Rejection | undefined {
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
