// The event budget against the real control plane: a flood of distinct drops (each a new pair on
// one of many real Pods) POSTed through the controller's intake with an agent's token, at up to
// 50,000 drops a second. What the API server received (its audit log) and holds (the Events) must
// stay within burst + qps * t of the controller's defaults, t measured from the first batch to the
// last write; what was not written is counted, equally, in netwarden_drop_events_suppressed_total,
// status.eventsSuppressed and the Pods' aggregated Events.
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { cluster } from './hooks.js';
import { readAuditEvents } from '../env/controlplane.js';
import { createNamespace, createNode, createPod, waitFor } from '../env/fixtures.js';
import {
  agentControllerToken, controllerUrl, ensureInstalled, getLocal, mustKubectl, netwardenCaFile, netwardenPorts, nextNodeIP, postDropBatch, startController, SYSTEM_NAMESPACE,
  type NetwardenProcess,
} from '../env/netwarden.js';
import type { AggregatedDrop, DropBatch } from '../../src/apis/drops.js';
import { DEFAULT_EVENT_BUDGET } from '../../src/reconcilers/droptail/budget.js';
import { AGGREGATE_PREFIX, FOLDED_ANNOTATION } from '../../src/reconcilers/droptail/events.js';

const ns = 'event-budget-e2e';
const node = 'event-budget-node';
const dropTail = 'event-budget';
const PODS = 100;
const DROPS_PER_BATCH = 5000;
const BATCHES_PER_SECOND = 10; // 50,000 drops/s offered
const FLOOD_SECONDS = 4;
const CONTROLLER_USER = `system:serviceaccount:${SYSTEM_NAMESPACE}:netwarden-controller`;

const podIP = (i: number): string => `10.244.96.${10 + i}`;

/** A new pair every time: pod i sending to a distinct address of 198.18.0.0/15 (never in the cluster). */
function floodDrop(n: number, time: string): AggregatedDrop {
  const dst = `198.${18 + ((n >> 16) & 1)}.${(n >> 8) & 255}.${n & 255}`;
  return {
    drop: { time, timeSource: 'nflog', prefix: 'flood:', family: 'ipv4', src: podIP(n % PODS), dst, protocol: 'UDP', srcPort: 40000, dstPort: 1 + (n % 60000) },
    count: 1, firstSeen: time, lastSeen: time, source: 'nflog',
  };
}

interface EventObject {
  metadata: { name: string; annotations?: Record<string, string> };
  message: string;
  count: number;
}

async function dropTailEvents(): Promise<EventObject[]> {
  const out = await mustKubectl(cluster(), ['get', 'events', '-n', ns, '-l', `netwarden.io/droptail=${dropTail}`, '-o', 'json']);
  return (JSON.parse(out) as { items: EventObject[] }).items;
}

function metricSum(metrics: string, name: string, labels = ''): number {
  const re = new RegExp(`^${name}\\{${labels}[^}]*\\} (\\d+)$`, 'gm');
  return [...metrics.matchAll(re)].reduce((sum, m) => sum + Number(m[1]), 0);
}

interface AuditWrite {
  verb: string;
  at: number;
}

/** The controller's writes of Events in the test's namespace, as the API server logged them. */
async function eventWrites(): Promise<AuditWrite[]> {
  const events = await readAuditEvents(cluster());
  return events.flatMap((e) => {
    const ref = e.objectRef as { resource?: string; namespace?: string } | undefined;
    const user = (e.user as { username?: string } | undefined)?.username;
    const verb = String(e.verb);
    if (ref?.resource !== 'events' || ref.namespace !== ns || user !== CONTROLLER_USER || !['create', 'patch', 'update'].includes(verb)) return [];
    return [{ verb, at: Date.parse(String(e.requestReceivedTimestamp)) }];
  });
}

describe('DropTail event budget: a drop flood against the real API server', function () {
  this.timeout(300_000);
  let controller: NetwardenProcess;

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNamespace(kc, ns);
    await createNode(kc, node, { internalIP: nextNodeIP(), labels: { 'event-budget': 'yes' } });
    for (let i = 0; i < PODS; i++) await createPod(kc, { namespace: ns, name: `sender-${i}`, nodeName: node, podIP: podIP(i) });
    // The defaults: --event-qps 10, --event-burst 50, --event-pod-qps 1/300, --event-pod-burst 25.
    controller = await startController(cp, 'controller-event-budget');
    await mustKubectl(cp, ['apply', '-f', '-'], [
      'apiVersion: netwarden.io/v1alpha1', 'kind: DropTail', `metadata: {name: ${dropTail}}`,
      "spec: {nodeSelector: {event-budget: 'yes'}, reverseDNS: false, repeatInterval: 2m, expiration: 10m}",
    ].join('\n'));
    await mustKubectl(cp, ['wait', '--for=condition=Ready', `droptail/${dropTail}`, '--timeout=60s']);
  });

  after(async function () {
    await controller?.kill();
    await mustKubectl(cluster(), ['delete', '--ignore-not-found', '--wait=false', 'droptail', dropTail]);
  });

  it('writes at most burst + qps * t Events for 50,000 distinct drops/s, and counts every one it did not write', async function () {
    const cp = cluster();
    const url = `${controllerUrl(await netwardenPorts(cp))}/droptail/${dropTail}/drops`;
    const ca = readFileSync(await netwardenCaFile(cp));
    const token = await agentControllerToken(cp, node);
    let sequence = 0;
    const body = (drops: AggregatedDrop[]): string => {
      const batch: DropBatch = { node, sequence: ++sequence, sentAt: new Date().toISOString(), drops, shedSinceLastBatch: 0 };
      return JSON.stringify(batch);
    };
    await waitFor(async () => (await postDropBatch(url, ca, token, body([]))) === 202, { timeoutMs: 60_000, description: 'the controller accepting batches' });

    // The flood: every batch on its own schedule, not waiting for the answers of the previous ones.
    const answers: Array<Promise<{ code: number; drops: number }>> = [];
    let n = 0;
    const firstBatchAt = Date.now();
    for (let b = 0; b < BATCHES_PER_SECOND * FLOOD_SECONDS; b++) {
      const wait = firstBatchAt + (b * 1000) / BATCHES_PER_SECOND - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const time = new Date().toISOString();
      const drops = Array.from({ length: DROPS_PER_BATCH }, () => floodDrop(n++, time));
      answers.push(postDropBatch(url, ca, token, body(drops)).then((code) => ({ code, drops: drops.length }), () => ({ code: 0, drops: drops.length })));
    }
    const offeredSeconds = (Date.now() - firstBatchAt) / 1000;
    const settled = await Promise.all(answers);
    const accepted = settled.filter((a) => a.code === 202).reduce((sum, a) => sum + a.drops, 0);
    expect(accepted, 'drops the intake accepted').to.be.greaterThan(DEFAULT_EVENT_BUDGET.burst * 10);

    // Every accepted drop handled, and every aggregate written: nothing left waiting for the budget.
    const metrics = await waitFor(async () => {
      const text = (await getLocal(controller.metricsPort, '/metrics')).body;
      return metricSum(text, 'netwarden_droptail_batch_drops_total', 'result="processed"') === accepted ? text : undefined;
    }, { timeoutMs: 120_000, intervalMs: 500, description: `${accepted} drops processed` });
    const suppressed = metricSum(metrics, 'netwarden_drop_events_suppressed_total');
    const events = await waitFor(async () => {
      const items = await dropTailEvents();
      const folded = items.reduce((sum, e) => sum + Number(e.metadata.annotations?.[FOLDED_ANNOTATION] ?? 0), 0);
      return folded === suppressed ? items : undefined;
    }, { timeoutMs: 120_000, intervalMs: 1000, description: `aggregated Events counting all ${suppressed} suppressed drops` });

    // What the API server received: within the budget, aggregated Events included.
    const writes = await eventWrites();
    // + 1 ms: the audit log's times are in microseconds, Date.parse truncates them to milliseconds.
    const lastWriteAt = Math.max(...writes.map((w) => w.at)) + 1;
    const seconds = (lastWriteAt - firstBatchAt) / 1000;
    const bound = DEFAULT_EVENT_BUDGET.burst + DEFAULT_EVENT_BUDGET.qps * seconds;
    expect(writes.length, `Event writes in ${seconds.toFixed(1)} s`).to.be.at.most(Math.floor(bound));
    expect(Math.min(...writes.map((w) => w.at))).to.be.at.least(firstBatchAt - 1000); // no write before the flood (clock granularity)

    // What it holds: one Event per written pair (each drop is a new pair, count 1) and one aggregated Event per Pod.
    const pairEvents = events.filter((e) => e.metadata.annotations?.[FOLDED_ANNOTATION] === undefined);
    const aggregated = events.filter((e) => e.metadata.annotations?.[FOLDED_ANNOTATION] !== undefined);
    expect(pairEvents.every((e) => e.count === 1)).to.equal(true);
    expect(pairEvents.length + aggregated.length).to.be.at.most(writes.length);
    expect(suppressed, 'suppressed = drops not written as Events of their own').to.equal(accepted - pairEvents.length);
    expect(suppressed).to.be.greaterThan(0);
    expect(new Set(aggregated.map((e) => e.metadata.name.split('.')[0])).size, 'one aggregated Event per Pod').to.equal(aggregated.length);
    for (const e of aggregated) {
      const folded = Number(e.metadata.annotations![FOLDED_ANNOTATION]);
      expect(e.message.startsWith(`${AGGREGATE_PREFIX}${folded} drops (${e.count} packets) on this Pod were over the event budget`), e.message).to.equal(true);
      expect(e.message).to.match(/the last: Packet dropped when sending traffic to unknown \(IP: 198\.1[89]\.\d+\.\d+, UDP\/\d+\)$/);
    }

    // The same number in status, where `kubectl get droptail -o yaml` shows it.
    await waitFor(async () => {
      const out = await mustKubectl(cp, ['get', 'droptail', dropTail, '-o', 'jsonpath={.status.eventsSuppressed}']);
      return Number(out) === suppressed;
    }, { timeoutMs: 30_000, description: `status.eventsSuppressed = ${suppressed}` });

    process.stdout.write(
      `      offered ${Math.round((BATCHES_PER_SECOND * FLOOD_SECONDS * DROPS_PER_BATCH) / offeredSeconds)} drops/s, accepted ${accepted}; ` +
        `${writes.length} Event writes in ${seconds.toFixed(1)} s (bound ${Math.floor(bound)}), ${pairEvents.length} pair Events, ${aggregated.length} aggregated, ${suppressed} suppressed\n`,
    );
  });
});
