// Each agent is its node, the way a kubelet is: its tokens are bound to the DaemonSet pod on that
// node, so the API server names the node in every review of them. This file attacks what that
// protects, with the real API server, its admission and the real controller and agents:
//   - drop batches: the agent of node A cannot report drops "from" node B (403, no Event), and
//     only tokens with the controller's audience are taken (401 otherwise);
//   - node reports: agent A cannot report node B's DropTail or AuditForwarder state to the
//     controller (403), and writes no status of either kind at all (RBAC);
//   - status: agent A cannot write node B's PacketCapture entries, nor the controller's fields
//     (the netwarden-agent-node-status admission policy), its own it can;
//   - capture files: agent A takes only the controller's token made for agent A (401 for the one
//     made for agent B, and for the controller's token for the API server).
import { expect } from 'chai';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { ApiException, AuthenticationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { cluster } from './hooks.js';
import { createNamespace, createNode, createPod, kubeconfigForToken, requestPodBoundToken, requestToken, waitFor } from '../env/fixtures.js';
import {
  agentControllerToken, agentKubeconfig, agentPod, controllerUrl, ensureInstalled, mustKubectl, netwardenCaFile, netwardenPorts, nextNodeIP, startAgent, startController, SYSTEM_NAMESPACE,
  type NetwardenProcess,
} from '../env/netwarden.js';
import type { DropBatch } from '../../src/apis/drops.js';
import { reportPath } from '../../src/apis/nodereport.js';
import { agentAudience, CONTROLLER_AUDIENCE, NODE_NAME_EXTRA } from '../../src/apis/identity.js';
import { AuditForwarderType, DropTailType, PacketCaptureType, type ResourceType } from '../../src/apis/meta.js';
import { agentFieldManager } from '../../src/nodeagent/context.js';
import { CONTROLLER_FIELD_MANAGER } from '../../src/reconcilers/common.js';
import { applyStatus } from '../../src/runtime/status.js';
import { loadKubeConfig } from '../../src/util/kube.js';

const A = 'identity-a';
const B = 'identity-b';
const ns = 'identity-e2e';
const DT = 'identity-dt';
const PC = 'identity-pc';
const AF = 'identity-af';
const WEB_B_IP = '10.244.81.10';
const FORGED_CLIENT_IP = '10.244.81.11';
const CLIENT_IP = '10.244.81.12';
const WEB_A_IP = '10.244.81.13';

const nodeIPs: Record<string, string> = {};

/** What the API server answered a refused write: its code and message. */
async function refusal(write: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await write;
  } catch (err) {
    if (!(err instanceof ApiException)) throw err;
    const body = (typeof err.body === 'string' ? JSON.parse(err.body) : err.body) as { message?: string };
    return { code: err.code, message: body.message ?? '' };
  }
  throw new Error('the write was accepted');
}

/** The KubeConfig the agent of `node` talks to the API server with: its pod-bound token. */
async function agentKc(node: string): Promise<KubeConfig> {
  return loadKubeConfig(await agentKubeconfig(cluster(), node));
}

/** Server-side apply of status as the agent of `as` does it (its field manager, forced). */
async function applyAs(as: string, type: ResourceType, name: string, status: object): Promise<unknown> {
  const ref = type.namespaced ? { namespace: ns, name } : { name };
  return applyStatus(await agentKc(as), type, ref, status, agentFieldManager(as));
}

async function statusOf(type: ResourceType, name: string): Promise<Record<string, unknown>> {
  const args = ['get', `${type.plural}.netwarden.io`, name, '-o', 'json', ...(type.namespaced ? ['-n', ns] : [])];
  return (JSON.parse(await mustKubectl(cluster(), args)) as { status?: Record<string, unknown> }).status ?? {};
}

interface Answer {
  status: number;
  body: string;
}

/** The CA bundle the running controller published (see the suite's before hook). */
let caBundle: Buffer | undefined;

function httpsCall(url: string, method: string, token: string | undefined, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, ca: caBundle, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const messageOf = (answer: Answer): string => (JSON.parse(answer.body) as { message?: string }).message ?? '';

let sequence = 0;
function dropBatch(node: string, src: string): string {
  const now = new Date().toISOString();
  const drop = { time: now, timeSource: 'nflog', prefix: 'nwid:', family: 'ipv4', src, dst: WEB_B_IP, protocol: 'UDP', srcPort: 40000, dstPort: 53 } as const;
  const batch: DropBatch = { node, sequence: ++sequence, sentAt: now, drops: [{ drop, count: 1, firstSeen: now, lastSeen: now, source: 'nflog' }], shedSinceLastBatch: 0 };
  return JSON.stringify(batch);
}

describe('agent node identity (pod-bound tokens)', function () {
  this.timeout(90_000);

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    for (const node of [A, B]) {
      nodeIPs[node] = nextNodeIP();
      await createNode(kc, node, { internalIP: nodeIPs[node] });
    }
    await createNamespace(kc, ns);
    await createPod(kc, { namespace: ns, name: 'web-b', nodeName: B, podIP: WEB_B_IP });
    await createPod(kc, { namespace: ns, name: 'web-a', nodeName: A, podIP: WEB_A_IP });
    await createPod(kc, { namespace: ns, name: 'client-forged', nodeName: B, podIP: FORGED_CLIENT_IP });
    await createPod(kc, { namespace: ns, name: 'client', nodeName: A, podIP: CLIENT_IP });
    // Selecting no node: no agent acts on them, this file writes their status by hand.
    await mustKubectl(cp, ['apply', '-f', '-'], [
      `{"apiVersion": "netwarden.io/v1alpha1", "kind": "DropTail", "metadata": {"name": "${DT}"}, "spec": {"nodeSelector": {"identity-none": "x"}, "sources": [{"type": "nflog", "group": 7}]}}`,
      `{"apiVersion": "netwarden.io/v1alpha1", "kind": "PacketCapture", "metadata": {"name": "${PC}", "namespace": "${ns}"}, "spec": {"selector": "app == 'none'"}}`,
      `{"apiVersion": "netwarden.io/v1alpha1", "kind": "AuditForwarder", "metadata": {"name": "${AF}"}, "spec": {"nodeSelector": {"identity-none": "x"}, "sink": {"webhook": {"url": "https://audit.example.test/ingest"}}}}`,
    ].join('\n'));
  });

  after(async function () {
    // The capture's finalizer waits for the agents: it goes while they run (below), else it stays.
    await mustKubectl(cluster(), ['delete', '--ignore-not-found', '--wait=false', 'droptail', DT]);
    await mustKubectl(cluster(), ['delete', '--ignore-not-found', '--wait=false', 'auditforwarder', AF]);
    await mustKubectl(cluster(), ['delete', '--ignore-not-found', '--wait=false', 'packetcapture', PC, '-n', ns]);
  });

  it("reviews an agent's token as the netwarden-agent ServiceAccount on its own node", async function () {
    const kc = cluster().kubeConfig();
    const authn = kc.makeApiClient(AuthenticationV1Api);
    for (const node of [A, B]) {
      const token = await requestPodBoundToken(kc, await agentPod(cluster(), node));
      const review = await authn.createTokenReview({ body: { spec: { token } } });
      expect(review.status?.authenticated, review.status?.error).to.equal(true);
      expect(review.status?.user?.username).to.equal('system:serviceaccount:netwarden-system:netwarden-agent');
      expect(review.status?.user?.extra?.[NODE_NAME_EXTRA]).to.deep.equal([node]);
    }
  });

  describe('status entries: each agent writes only its own node (netwarden-agent-node-status)', function () {
    it('DropTail and AuditForwarder status: an agent writes none of it (it reports to the controller; RBAC gives it no patch)', async function () {
      for (const [type, name, status] of [[DropTailType, DT, { totalDrops: 12345 }], [AuditForwarderType, AF, { shippedEvents: 10 }]] as const) {
        const answer = await refusal(applyAs(A, type, name, status));
        expect(answer.code, type.plural).to.equal(403);
        expect(answer.message, type.plural).to.contain(`cannot patch resource "${type.plural}/status"`);
        expect(Object.keys(await statusOf(type, name)), type.plural).to.not.include(Object.keys(status)[0]);
      }
    });

    it("refuses the controller's PacketCapture fields to an agent, naming them", async function () {
      const answer = await refusal(applyAs(A, PacketCaptureType, PC, { podCount: 12345, files: [{ node: A, state: 'WaitingForTraffic' }] }));
      expect(answer.code).to.equal(403);
      expect(answer.message).to.contain(`status.podCount: only the controller writes these; the agent on node ${A} writes only its own node's entries`);
      expect((await statusOf(PacketCaptureType, PC)).podCount).to.equal(undefined);
    });

    it('refuses every status write of an agent token bound to no node', async function () {
      const cp = cluster();
      const token = await requestToken(cp.kubeConfig(), SYSTEM_NAMESPACE, 'netwarden-agent');
      const file = await kubeconfigForToken(cp, token, `${cp.dir}/kubeconfig-agent-unbound-${Date.now()}`);
      const answer = await refusal(applyStatus(loadKubeConfig(file), PacketCaptureType, { namespace: ns, name: PC }, { files: [{ node: A, state: 'WaitingForTraffic' }] }, agentFieldManager(A)));
      expect(answer.code).to.equal(403);
      expect(answer.message).to.contain("the agent's token is bound to no node");
    });

    it('PacketCapture: agent A sets the interface of its own targets only, never their pod, node or ip, and only its own files entry', async function () {
      // As the controller: one target on each node.
      const targets = [{ pod: 'web-a', node: A, ip: WEB_A_IP }, { pod: 'web-b', node: B, ip: WEB_B_IP }];
      await applyStatus(cluster().kubeConfig(), PacketCaptureType, { namespace: ns, name: PC }, { targets }, CONTROLLER_FIELD_MANAGER);

      await applyAs(A, PacketCaptureType, PC, { targets: [{ pod: 'web-a', interface: 'veth-a' }], files: [{ node: A, state: 'WaitingForTraffic' }] });

      // Redirecting node B's capture to another address, or taking it over.
      for (const forged of [{ pod: 'web-b', ip: '10.244.81.99' }, { pod: 'web-b', node: A }, { pod: 'web-b', interface: 'veth-x' }]) {
        const answer = await refusal(applyAs(A, PacketCaptureType, PC, { targets: [{ pod: 'web-a', interface: 'veth-a' }, forged] }));
        expect(answer.code, JSON.stringify(forged)).to.equal(403);
        expect(answer.message, JSON.stringify(forged)).to.match(/status\.targets: .*refused (the change to )?status\.targets\[pod=web-b on node identity-(a|b)\]$/);
      }
      // Its own target's address is the controller's too.
      const own = await refusal(applyAs(A, PacketCaptureType, PC, { targets: [{ pod: 'web-a', ip: '10.244.81.98', interface: 'veth-a' }] }));
      expect(own.message).to.match(new RegExp(`status\\.targets: only the controller writes pod, node, ip of an entry and adds or removes entries; the agent on node ${A} may set only interface; refused the change to status\\.targets\\[pod=web-a on node ${A}\\]$`));
      const added = await refusal(applyAs(A, PacketCaptureType, PC, { targets: [{ pod: 'web-a', interface: 'veth-a' }, { pod: 'web-z', node: A, ip: '10.244.81.97' }] }));
      expect(added.message).to.contain('status.targets[pod=web-z on node identity-a]');

      const files = await refusal(applyAs(A, PacketCaptureType, PC, { targets: [{ pod: 'web-a', interface: 'veth-a' }], files: [{ node: A, state: 'WaitingForTraffic' }, { node: B, state: 'Error', message: 'forged' }] }));
      expect(files.message).to.contain(`status.files: the agent on node ${A} may write only its own entry (node ${A}); refused the entry of node ${B}`);

      const status = await statusOf(PacketCaptureType, PC);
      expect(status.targets).to.deep.equal([{ pod: 'web-a', node: A, ip: WEB_A_IP, interface: 'veth-a' }, { pod: 'web-b', node: B, ip: WEB_B_IP }]);
      expect(status.files).to.deep.equal([{ node: A, state: 'WaitingForTraffic' }]);
      // Agent B sets its own target's interface.
      await applyAs(B, PacketCaptureType, PC, { targets: [{ pod: 'web-b', interface: 'veth-b' }] });
      expect(((await statusOf(PacketCaptureType, PC)).targets as Array<{ interface?: string }>).map((t) => t.interface)).to.deep.equal(['veth-a', 'veth-b']);
    });
  });

  describe('with the controller and both agents running', function () {
    const processes: NetwardenProcess[] = [];
    let intake = '';

    before(async function () {
      const cp = cluster();
      processes.push(await startController(cp, 'identity-controller'), await startAgent(cp, A), await startAgent(cp, B));
      caBundle = readFileSync(await netwardenCaFile(cp));
      intake = `${controllerUrl(await netwardenPorts(cp))}/droptail/${DT}/drops`;
      await mustKubectl(cp, ['wait', '--for=condition=Ready', `droptail/${DT}`, '--timeout=60s']);
    });

    after(async function () {
      this.timeout(150_000);
      // The processes go whatever happens here: a controller left running would take the next files' Lease.
      try {
        const deleted = await cluster().kubectl(['delete', '--ignore-not-found', '--timeout=120s', 'packetcapture', PC, '-n', ns], { timeoutMs: 130_000 });
        if (deleted.code !== 0) {
          const left = await cluster().kubectl(['get', 'packetcapture', PC, '-n', ns, '-o', 'jsonpath={.metadata.finalizers} {.status.files}']);
          const releases = processes.flatMap((p) => p.logs().filter((l) => /capture|finalizer/.test(String(l.message))).slice(-5));
          throw new Error(`the capture's finalizer stayed: ${left.stdout} ${deleted.stderr}; last capture log lines: ${JSON.stringify(releases)}`);
        }
      } finally {
        await Promise.all(processes.map((p) => p.kill()));
      }
    });

    it("refuses agent A's batch for node B with 403 and a log line, and no Event comes of it", async function () {
      const token = await agentControllerToken(cluster(), A);
      const forged = await waitFor(async () => {
        const answer = await httpsCall(intake, 'POST', token, dropBatch(B, FORGED_CLIENT_IP));
        return answer.status === 503 ? undefined : answer; // the controller may still be taking the lead
      }, { description: 'the intake answering' });
      expect(forged.status).to.equal(403);
      expect(messageOf(forged)).to.equal(`the agent on node ${A} may send drops only of node ${A}, not of node ${B}`);
      // The log line may reach the log file a moment after the answer reached us.
      const logged = await waitFor(() => processes[0]!.logs().find((l) => l.message === 'drop batch refused: it is for another node than the agent is on'), { timeoutMs: 10_000, description: 'the log line of the refusal' });
      expect(logged).to.deep.include({ droptail: DT, callerNode: A, batchNode: B, user: 'system:serviceaccount:netwarden-system:netwarden-agent' });

      // The same drop path with A's own node works: once its Event is there, the forged one would be too.
      expect((await httpsCall(intake, 'POST', token, dropBatch(A, CLIENT_IP))).status).to.equal(202);
      const core = cluster().kubeConfig().makeApiClient(CoreV1Api);
      const messages = async () => (await core.listNamespacedEvent({ namespace: ns })).items.map((e) => e.message ?? '');
      await waitFor(async () => (await messages()).some((m) => m.includes(`from ${ns}/client (IP: ${CLIENT_IP}`)), { description: "the Event of A's own drop" });
      expect((await messages()).filter((m) => m.includes(FORGED_CLIENT_IP))).to.deep.equal([]);
    });

    it("refuses agent A's node report for node B with 403, takes its own, and names a malformed one's field", async function () {
      const token = await agentControllerToken(cluster(), A);
      const base = controllerUrl(await netwardenPorts(cluster()));
      for (const [kind, name, report] of [
        ['droptail', DT, (node: string) => ({ node, sources: [{ type: 'nflog', healthy: true }], dropsSeen: 0 })],
        ['auditforwarder', AF, (node: string) => ({ node, shippedEvents: 0, lastError: 'forged' })],
      ] as const) {
        const url = `${base}${reportPath(kind, name)}`;
        const forged = await httpsCall(url, 'POST', token, JSON.stringify(report(B)));
        expect(forged.status, kind).to.equal(403);
        expect(messageOf(forged), kind).to.equal(`the agent on node ${A} may report only node ${A}, not node ${B}`);
        expect((await httpsCall(url, 'POST', token, JSON.stringify(report(A)))).status, kind).to.equal(204);
      }
      const bad = await httpsCall(`${base}${reportPath('droptail', DT)}`, 'POST', token, JSON.stringify({ node: A, sources: [{ type: 'nflog', healthy: 'yes' }], dropsSeen: 0 }));
      expect(bad.status).to.equal(400);
      expect(messageOf(bad)).to.equal('invalid droptail node report: $.sources[0].healthy: Invalid value: "yes": must be of type boolean, not string');
      const logged = processes[0]!.logs().find((l) => l.message === 'node report refused: it is for another node than the agent is on');
      expect(logged).to.deep.include({ droptail: DT, callerNode: A, reportNode: B });
    });

    it('answers 401 to tokens without the controller audience: the agent\'s and the controller\'s for the API server', async function () {
      const cp = cluster();
      const apiServerToken = await requestPodBoundToken(cp.kubeConfig(), await agentPod(cp, A));
      const controllerToken = await requestToken(cp.kubeConfig(), SYSTEM_NAMESPACE, 'netwarden-controller');
      for (const token of [apiServerToken, controllerToken]) {
        const answer = await httpsCall(intake, 'POST', token, dropBatch(A, CLIENT_IP));
        expect(answer.status).to.equal(401);
        expect(messageOf(answer)).to.match(/^invalid token: .*audience/);
      }
    });

    it('answers 403 to a token with the audience that is bound to no node', async function () {
      const token = await requestToken(cluster().kubeConfig(), SYSTEM_NAMESPACE, 'netwarden-agent', [CONTROLLER_AUDIENCE]);
      const answer = await httpsCall(intake, 'POST', token, dropBatch(A, CLIENT_IP));
      expect(answer.status).to.equal(403);
      expect(messageOf(answer)).to.contain('presented a token bound to no node');
    });

    it("agent A's file API takes only the controller's token made for agent A", async function () {
      const cp = cluster();
      const kc = cp.kubeConfig();
      const url = `https://${nodeIPs[A]}:${(await netwardenPorts(cp)).agentFiles}/captures/${ns}/${PC}/files`;
      const forA = await requestToken(kc, SYSTEM_NAMESPACE, 'netwarden-controller', [agentAudience(A)]);
      const ok = await waitFor(async () => {
        const answer = await httpsCall(url, 'GET', forA, undefined);
        return answer.status === 200 ? answer : undefined;
      }, { description: "agent A's file API" });
      expect((JSON.parse(ok.body) as { node: string }).node).to.equal(A);

      const forB = await requestToken(kc, SYSTEM_NAMESPACE, 'netwarden-controller', [agentAudience(B)]);
      const plain = await requestToken(kc, SYSTEM_NAMESPACE, 'netwarden-controller');
      for (const [what, token] of [['made for agent B', forB], ['for the API server', plain]] as const) {
        const answer = await httpsCall(url, 'GET', token, undefined);
        expect(answer.status, what).to.equal(401);
        expect(messageOf(answer), what).to.match(/^invalid token: .*audience/);
      }
    });
  });
});
