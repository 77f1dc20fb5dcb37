// Status that stays bounded however many nodes report (issue 12): 1,000 simulated nodes, each a
// Node with an agent Pod bound to it and that Pod's own token for the controller, POST their node
// reports through the real controller's intake with the agent's own client. What a user sees:
//   - the DropTail's size in bytes is the same at 10, 100 and 1,000 reporting nodes (it grew
//     ~570 B per node while agents wrote status.nodes: 1,209,686 B at 1,000 nodes);
//   - NODES and UNHEALTHY count them right, the problems list stays at 10;
//   - the controller writes the status at most once per 10 s (counted in the audit log);
//   - a report for another node than the token's is refused with 403;
//   - an object written under the old schema (status.nodes) reads back without it.
import { expect } from 'chai';
import { cluster } from './hooks.js';
import { CoreV1Api } from '@kubernetes/client-node';
import { waitFor } from '../env/fixtures.js';
import {
  agentControllerToken, controllerUrl, ensureInstalled, mustKubectl, netwardenCaFile, netwardenPorts, startController, statusOf, REPO_ROOT, type NetwardenProcess,
} from '../env/netwarden.js';
import { dropTailCrd } from '../../src/apis/droptail.js';
import { renderCrd } from '../../src/apis/crd.js';
import { DropTailType } from '../../src/apis/meta.js';
import { reportPath, type DropTailNodeReport } from '../../src/apis/nodereport.js';
import { DropBatchClient, type SendOutcome } from '../../src/nodeagent/droptail/client.js';
import { applyStatus } from '../../src/runtime/status.js';
import { FileTrustBundle } from '../../src/runtime/tls.js';

const NODES = 1000;
const DT = 'scale-e2e';
/**
 * Nodes 1-9 and every 50th from 25 on report a failing source (9 of 10, 11 of 100, 29 of 1,000
 * unhealthy: Ready stays True), node 0 a past gap (a problem, not unhealthy): the problems list is
 * full (10) at each step, so the sizes compare like for like.
 */
const unhealthyNode = (k: number): boolean => (k >= 1 && k <= 9) || k % 50 === 25;
const GAP = '2026-12-02T07:00:00.000Z: rotated file deleted before it was read: /var/log/kern.log.1';
const unhealthyOf = (count: number): number => Array.from({ length: count }, (_, k) => k).filter(unhealthyNode).length;

const nodeName = (k: number): string => `scale-e2e-node-${String(k).padStart(4, '0')}`;
/** Each simulated node sends from its own loopback address (the reviewer limits unknown tokens per client). */
const nodeAddress = (k: number): string => `127.2.${Math.floor(k / 250)}.${(k % 250) + 1}`;

async function forEachConcurrently(n: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, async () => {
    for (let i = next++; i < n; i = next++) await work(i);
  }));
}

function report(k: number, node = nodeName(k)): DropTailNodeReport {
  const healthy = !unhealthyNode(k);
  const source = { type: 'nflog' as const, healthy, ...(healthy ? {} : { message: `cannot open nflog:100 on ${nodeName(k)}: Operation not permitted` }), ...(k === 0 ? { gaps: 1, lastGap: GAP } : {}) };
  return { node, sources: [source], dropsSeen: k };
}

/** The controller's status writes of DT since `since` (its "status written" log lines: the audit log rotates under this load), their times. */
function statusWrites(controller: NetwardenProcess, since: number): number[] {
  return controller
    .logs()
    .filter((l) => l.message === 'status written' && l.component === 'reconciler/droptails' && l.key === DT)
    .map((l) => Date.parse(String(l.timestamp)))
    .filter((t) => t >= since);
}

async function objectBytes(): Promise<number> {
  return Buffer.byteLength(await mustKubectl(cluster(), ['get', 'droptail', DT, '-o', 'json']).then((out) => JSON.stringify(JSON.parse(out))));
}

describe('status at scale: 1,000 nodes report through the controller', function () {
  this.timeout(180_000);
  let controller: NetwardenProcess;
  const clients: DropBatchClient[] = [];
  const tokens: string[] = [];
  const sizes: Record<number, number> = {};

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    controller = await startController(cp, 'scale-controller');
    await mustKubectl(cp, ['apply', '-f', '-'], `apiVersion: netwarden.io/v1alpha1\nkind: DropTail\nmetadata: {name: ${DT}}\nspec: {nodeSelector: {scale-e2e: 'yes'}, reverseDNS: false}\n`);
    const t0 = Date.now();
    // Bare Nodes (no status: nothing here reads their addresses), an agent Pod on each, its token.
    const core = kc.makeApiClient(CoreV1Api);
    await forEachConcurrently(NODES, 48, async (k) => {
      await core.createNode({ body: { metadata: { name: nodeName(k), labels: { 'scale-e2e': 'yes' } } } });
      tokens[k] = await agentControllerToken(cp, nodeName(k));
    });
    process.stdout.write(`      ${NODES} Nodes, agent Pods and tokens in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    const url = `${controllerUrl(await netwardenPorts(cp))}${reportPath('droptail', DT)}`;
    const trust = new FileTrustBundle(await netwardenCaFile(cp));
    for (let k = 0; k < NODES; k++) clients[k] = new DropBatchClient({ url, trust, token: async () => tokens[k]!, localAddress: nodeAddress(k) });
    await mustKubectl(cp, ['wait', '--for=condition=Ready', `droptail/${DT}`, '--timeout=60s']);
  });

  after(async function () {
    for (const c of clients) c.resetConnections();
    await controller?.kill();
  });

  /** Nodes [from, to) report; resolves with the outcomes by kind. */
  async function reportNodes(from: number, to: number): Promise<Map<string, number>> {
    const outcomes = new Map<string, number>();
    await forEachConcurrently(to - from, 48, async (i) => {
      const k = from + i;
      let outcome: SendOutcome;
      do {
        outcome = await clients[k]!.post(Buffer.from(JSON.stringify(report(k))));
        if (outcome.kind === 'retry') await new Promise((r) => setTimeout(r, outcome.kind === 'retry' ? (outcome.retryAfterMs ?? 500) : 0));
      } while (outcome.kind === 'retry');
      const key = outcome.kind === 'refused' ? `refused ${outcome.status}: ${outcome.message}` : outcome.kind;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    });
    return outcomes;
  }

  it('keeps the DropTail the same size at 10, 100 and 1,000 reporting nodes, counting them right, with at most one write per 10 s', async function () {
    const cp = cluster();
    const started = Date.now();
    let reported = 0;
    for (const count of [10, 100, NODES]) {
      const sendStart = Date.now();
      expect(await reportNodes(reported, count)).to.deep.equal(new Map([['accepted', count - reported]]));
      process.stdout.write(`      ${count - reported} reports in ${Date.now() - sendStart} ms\n`);
      reported = count;
      const unhealthy = unhealthyOf(count);
      const status = await waitFor(async () => {
        const s = await statusOf(cp, 'droptail', DT);
        return s.nodeCount === count && s.unhealthyNodes === unhealthy ? s : undefined;
      }, { timeoutMs: 40_000, intervalMs: 500, description: `NODES ${count}, UNHEALTHY ${unhealthy}` });
      expect(status.problems).to.have.length(10);
      expect(status.problems![0]!.message).to.match(/^nflog source unhealthy: cannot open nflog:100 on scale-e2e-node-\d{4}: Operation not permitted$/);
      expect(status.dropsSeen).to.equal((count * (count - 1)) / 2);
      sizes[count] = await objectBytes();
    }
    const elapsed = Date.now() - started;
    const row = await mustKubectl(cp, ['get', 'droptail', DT, '--no-headers']);
    expect(row).to.match(new RegExp(`^${DT}\\s+${NODES}\\s+${unhealthyOf(NODES)}\\s+0\\s+`));

    const writes = statusWrites(controller, started);
    const gaps = writes.slice(1).map((t, i) => t - writes[i]!);
    process.stdout.write(`      sizes: ${JSON.stringify(sizes)} bytes; ${writes.length} status writes in ${(elapsed / 1000).toFixed(1)} s; gaps ${gaps.map((g) => (g / 1000).toFixed(1)).join(', ')} s\n`);
    expect(sizes[1000]! - sizes[10]!, JSON.stringify(sizes)).to.be.within(-300, 300);
    expect(sizes[100]! - sizes[10]!, JSON.stringify(sizes)).to.be.within(-300, 300);
    // At most one per 10 s, and at least one per step (three node counts shown).
    expect(writes.length).to.be.at.least(3);
    expect(Math.min(...gaps), gaps.join()).to.be.at.least(9_900);
    expect(writes.length).to.be.at.most(Math.ceil(elapsed / 10_000) + 1);
  });

  it("refuses a report for another node than the token's with 403, and keeps nothing of it", async function () {
    const forged = await clients[1]!.post(Buffer.from(JSON.stringify(report(1, nodeName(2)))));
    expect(forged).to.deep.include({ kind: 'refused', status: 403 });
    expect((forged as { message: string }).message).to.contain(`the agent on node ${nodeName(1)} may report only node ${nodeName(1)}, not node ${nodeName(2)}`);
  });

  it('drops status.nodes that an older Netwarden wrote, once the CRD no longer has it', async function () {
    const cp = cluster();
    // The CRD as it was: status.nodes, a list keyed by node.
    const old = renderCrd(dropTailCrd) as { spec: { versions: Array<{ schema: { openAPIV3Schema: { properties: { status: { properties: Record<string, unknown> } } } } }> } };
    old.spec.versions[0]!.schema.openAPIV3Schema.properties.status.properties.nodes = {
      type: 'array', maxItems: 5000, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['node'],
      items: { type: 'object', required: ['node'], properties: { node: { type: 'string' }, dropsSeen: { type: 'integer' } } },
    };
    await mustKubectl(cp, ['apply', '--server-side', '--force-conflicts', '-f', '-'], JSON.stringify(old));
    await mustKubectl(cp, ['apply', '-f', '-'], 'apiVersion: netwarden.io/v1alpha1\nkind: DropTail\nmetadata: {name: scale-old}\nspec: {nodeSelector: {none: none}}\n');
    await waitFor(async () => {
      await applyStatus(cp.kubeConfig(), DropTailType, { name: 'scale-old' }, { nodes: [{ node: 'old-node', dropsSeen: 7 }] }, 'netwarden-agent-old-node');
      return (await statusOf(cp, 'droptail', 'scale-old')).nodes !== undefined;
    }, { timeoutMs: 20_000, description: 'status.nodes written under the old schema' });

    await mustKubectl(cp, ['apply', '--server-side', '--force-conflicts', '-f', `${REPO_ROOT}/crds/droptails.netwarden.io.yaml`]);
    await waitFor(async () => (await statusOf(cp, 'droptail', 'scale-old')).nodes === undefined, { timeoutMs: 20_000, description: 'status.nodes gone on read after the CRD update' });
    // And the controller, which checks stored objects against its own schema, finds nothing wrong.
    await mustKubectl(cp, ['wait', '--for=condition=Ready', 'droptail/scale-old', '--timeout=30s']);
  });
});
