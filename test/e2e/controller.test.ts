// The controller and one agent per simulated node, as local processes with their own
// ServiceAccount tokens, reconciling real objects: what `kubectl get` and `kubectl wait` show.
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { cluster } from './hooks.js';
import { ensureInstalled, getLocal, metricValue, mustKubectl, nextNodeIP, startAgent, startController, statusOf, type NetwardenProcess } from '../env/netwarden.js';
import { createNamespace, createNode, createPod, waitFor } from '../env/fixtures.js';

const ns = 'controller-e2e';

function jsonpath(kind: string, name: string, path: string, namespace?: string): Promise<string> {
  return mustKubectl(cluster(), ['get', kind, name, ...(namespace ? ['-n', namespace] : []), '-o', `jsonpath={${path}}`]);
}

async function readyCondition(kind: string, name: string, namespace?: string): Promise<{ status: string; reason: string; message: string; observedGeneration?: number } | undefined> {
  const raw = await jsonpath(kind, name, '.status.conditions[?(@.type=="Ready")]', namespace);
  return raw ? (JSON.parse(raw) as { status: string; reason: string; message: string; observedGeneration?: number }) : undefined;
}

describe('controller and agents', function () {
  const processes: NetwardenProcess[] = [];
  let controller: NetwardenProcess;
  const agents: Record<string, NetwardenProcess> = {};

  /** The nodes whose agent runs the DropTail (its per-source gauge) or the AuditForwarder (its lag gauge): the per-node detail a user finds in the agents' metrics. */
  async function runningOn(kind: 'droptail' | 'auditforwarder', name: string): Promise<string> {
    const metric = kind === 'droptail' ? 'netwarden_agent_droptail_source_healthy' : 'netwarden_audit_lag_bytes';
    const label: Record<string, string> = kind === 'droptail' ? { droptail: name } : { forwarder: name };
    const nodes: string[] = [];
    for (const [node, agent] of Object.entries(agents).sort()) if ((await metricValue(agent.metricsPort, metric, label)) !== undefined) nodes.push(node);
    return nodes.join(' ');
  }

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNamespace(kc, ns);
    await createNode(kc, 'ctl-a', { controlPlane: true, labels: { zone: 'a' }, internalIP: nextNodeIP() });
    await createNode(kc, 'ctl-b', { labels: { zone: 'b' }, internalIP: nextNodeIP() });
    controller = await startController(cp, 'controller', ['--capture-max-bytes-per-pod=100Mi', '--capture-max-duration=1h']);
    agents['ctl-a'] = await startAgent(cp, 'ctl-a');
    agents['ctl-b'] = await startAgent(cp, 'ctl-b');
    processes.push(controller, agents['ctl-a'], agents['ctl-b']);
  });

  after(async function () {
    await Promise.all(processes.map((p) => p.kill()));
  });

  it('sets observedGeneration and Ready=True on a valid DropTail, and follows spec changes', async function () {
    const cp = cluster();
    await mustKubectl(cp, ['apply', '-f', '-'], 'apiVersion: netwarden.io/v1alpha1\nkind: DropTail\nmetadata: {name: ctl-all}\nspec: {}\n');
    await mustKubectl(cp, ['wait', '--for=condition=Ready', 'droptail/ctl-all', '--timeout=30s']);
    expect(await jsonpath('droptail', 'ctl-all', '.status.observedGeneration')).to.equal('1');

    await mustKubectl(cp, ['patch', 'droptail', 'ctl-all', '--type=merge', '-p', '{"spec":{"repeatInterval":"1m"}}']);
    await waitFor(async () => (await jsonpath('droptail', 'ctl-all', '.status.observedGeneration')) === '2', { timeoutMs: 20_000, description: 'observedGeneration 2' });
    expect((await readyCondition('droptail', 'ctl-all'))?.observedGeneration).to.equal(2);
  });

  it('counts the reporting agents of the selected nodes in the NODES column', async function () {
    const cp = cluster();
    await waitFor(async () => (await jsonpath('droptail', 'ctl-all', '.status.nodeCount')) === '2', { timeoutMs: 30_000, description: 'both agents reporting' });
    expect(await runningOn('droptail', 'ctl-all')).to.equal('ctl-a ctl-b');
    const row = await mustKubectl(cp, ['get', 'droptail', 'ctl-all', '--no-headers']);
    // NODES 2, UNHEALTHY (however the sources fare here), DROPS 0; LAST DROP stays empty until a drop is seen.
    expect(row).to.match(/^ctl-all\s+2\s+[0-2]\s+0\s+True\s+/);
  });

  it('runs an AuditForwarder only on control-plane nodes by default', async function () {
    const cp = cluster();
    const yaml = [
      'apiVersion: netwarden.io/v1alpha1', 'kind: AuditForwarder', 'metadata: {name: ctl-audit}',
      'spec: {sink: {file: {directory: /var/lib/netwarden/audit-out}}}',
    ].join('\n');
    await mustKubectl(cp, ['apply', '-f', '-'], yaml);
    await waitFor(async () => (await jsonpath('auditforwarder', 'ctl-audit', '.status.nodeCount')) === '1', { timeoutMs: 30_000, description: 'one agent reporting' });
    expect(await runningOn('auditforwarder', 'ctl-audit')).to.equal('ctl-a');
    // No audit log on this machine's "control-plane node": its agent says so, and only it.
    if (existsSync('/var/log/kubernetes/audit/audit.log')) return;
    const status = await waitFor(async () => {
      const s = await statusOf(cp, 'auditforwarder', 'ctl-audit');
      return s.unhealthyNodes === 1 ? s : undefined;
    }, { timeoutMs: 30_000, description: 'the one node unhealthy' });
    expect(status.problems?.map((p) => p.node)).to.deep.equal(['ctl-a']);
    expect(status.problems?.[0]?.message).to.contain('/var/log/kubernetes/audit/audit.log does not exist: waiting for it');
  });

  it('moves the DropTail to the nodes it selects when node labels change, and counts only those', async function () {
    const cp = cluster();
    await mustKubectl(cp, ['apply', '-f', '-'], 'apiVersion: netwarden.io/v1alpha1\nkind: DropTail\nmetadata: {name: ctl-zone-b}\nspec: {nodeSelector: {zone: b}}\n');
    await waitFor(async () => (await runningOn('droptail', 'ctl-zone-b')) === 'ctl-b', { timeoutMs: 20_000, description: 'only ctl-b' });
    await waitFor(async () => (await jsonpath('droptail', 'ctl-zone-b', '.status.nodeCount')) === '1', { timeoutMs: 30_000, description: 'NODES 1' });
    await mustKubectl(cp, ['label', 'node', 'ctl-b', 'zone=c', '--overwrite']);
    await mustKubectl(cp, ['label', 'node', 'ctl-a', 'zone=b', '--overwrite']);
    await waitFor(async () => (await runningOn('droptail', 'ctl-zone-b')) === 'ctl-a', { timeoutMs: 20_000, description: 'moved to ctl-a' });
    // ctl-b is forgotten at once (no longer selected), ctl-a counted once it reports: never 0 or 2 for long.
    await waitFor(async () => (await jsonpath('droptail', 'ctl-zone-b', '.status.nodeCount')) === '1' && (await readyCondition('droptail', 'ctl-zone-b'))?.message.includes('selects 1 node(s); 1 agent(s) reporting'), { timeoutMs: 30_000, description: 'NODES 1 after the move' });
  });

  it('rejects a PacketCapture whose Calico selector does not parse, with Ready=False and the reason', async function () {
    const cp = cluster();
    const yaml = [
      'apiVersion: netwarden.io/v1alpha1', 'kind: PacketCapture', `metadata: {name: bad-selector, namespace: ${ns}}`,
      'spec:', '  selector: app == ', '  filters: [{protocol: UDP, ports: [53]}]',
    ].join('\n');
    await mustKubectl(cp, ['apply', '-f', '-'], yaml);
    const condition = await waitFor(async () => {
      const c = await readyCondition('packetcapture', 'bad-selector', ns);
      return c?.status === 'False' ? c : undefined;
    }, { timeoutMs: 20_000, description: 'Ready=False' });
    expect(condition.reason).to.equal('InvalidSelector');
    expect(condition.message).to.match(/invalid selector "app ==" at position 6: expected a quoted string/);
    expect(await jsonpath('packetcapture', 'bad-selector', '.status.phase', ns)).to.equal('Failed');
  });

  it('computes PacketCapture targets from the pods of its own namespace as pods come and go', async function () {
    const cp = cluster();
    const kc = cp.kubeConfig();
    await createPod(kc, { namespace: ns, name: 'logging-1', nodeName: 'ctl-a', labels: { app: 'logging' }, podIP: '10.244.9.11' });
    await createPod(kc, { namespace: ns, name: 'web-1', nodeName: 'ctl-b', labels: { app: 'web' }, podIP: '10.244.9.12' });
    await createNamespace(kc, 'controller-e2e-other');
    await createPod(kc, { namespace: 'controller-e2e-other', name: 'logging-x', nodeName: 'ctl-a', labels: { app: 'logging' }, podIP: '10.244.9.13' });
    const yaml = [
      'apiVersion: netwarden.io/v1alpha1', 'kind: PacketCapture', `metadata: {name: logging-dns, namespace: ${ns}}`,
      'spec:', '  selector: app == "logging"', '  filters: [{protocol: UDP, ports: [53]}]',
    ].join('\n');
    await mustKubectl(cp, ['apply', '-f', '-'], yaml);
    await mustKubectl(cp, ['wait', '--for=condition=Ready', 'packetcapture/logging-dns', '-n', ns, '--timeout=30s']);
    expect(await jsonpath('packetcapture', 'logging-dns', '.status.targets[*].pod', ns)).to.equal('logging-1');

    await createPod(kc, { namespace: ns, name: 'logging-2', nodeName: 'ctl-b', labels: { app: 'logging' }, podIP: '10.244.9.14' });
    await waitFor(async () => (await jsonpath('packetcapture', 'logging-dns', '.status.targets[*].pod', ns)) === 'logging-1 logging-2', { timeoutMs: 20_000, description: 'new pod targeted' });
    await mustKubectl(cp, ['delete', 'pod', 'logging-1', '-n', ns, '--grace-period=0', '--force']);
    await waitFor(async () => (await jsonpath('packetcapture', 'logging-dns', '.status.targets[*].pod', ns)) === 'logging-2', { timeoutMs: 20_000, description: 'deleted pod dropped' });
    const row = await mustKubectl(cp, ['get', 'packetcapture', 'logging-dns', '-n', ns, '--no-headers']);
    // These pods have no network on the host, so the phase is the agents' business here: the
    // PODS column counts the targets.
    expect(row).to.match(/^logging-dns\s+\S+\s+1\s+/);
  });

  it('refuses a PacketCapture that asks for more than the cluster limits in the controller flags', async function () {
    const cp = cluster();
    const yaml = [
      'apiVersion: netwarden.io/v1alpha1', 'kind: PacketCapture', `metadata: {name: too-big, namespace: ${ns}}`,
      'spec: {maxBytesPerPod: 1073741824, duration: 30m}',
    ].join('\n');
    await mustKubectl(cp, ['apply', '-f', '-'], yaml);
    const condition = await waitFor(async () => {
      const c = await readyCondition('packetcapture', 'too-big', ns);
      return c?.status === 'False' ? c : undefined;
    }, { timeoutMs: 20_000, description: 'Ready=False' });
    expect(condition.reason).to.equal('ExceedsClusterLimit');
    expect(condition.message).to.equal('spec.maxBytesPerPod 1073741824 exceeds the cluster limit 104857600 (controller flag --capture-max-bytes-per-pod)');

    await mustKubectl(cp, ['patch', 'packetcapture', 'too-big', '-n', ns, '--type=merge', '-p', '{"spec":{"maxBytesPerPod":1048576,"duration":"2h"}}']);
    await waitFor(async () => (await readyCondition('packetcapture', 'too-big', ns))?.message.includes('--capture-max-duration'), { timeoutMs: 20_000, description: 'duration over the limit' });
  });

  it('keeps a capture with a future startTime Scheduled', async function () {
    const cp = cluster();
    const start = new Date(Date.now() + 3600_000).toISOString().replace(/\.\d+Z$/, 'Z');
    const yaml = ['apiVersion: netwarden.io/v1alpha1', 'kind: PacketCapture', `metadata: {name: later, namespace: ${ns}}`, `spec: {startTime: "${start}"}`].join('\n');
    await mustKubectl(cp, ['apply', '-f', '-'], yaml);
    await waitFor(async () => (await jsonpath('packetcapture', 'later', '.status.phase', ns)) === 'Scheduled', { timeoutMs: 20_000, description: 'Scheduled' });
  });

  it('exposes health and work-queue, reconcile and error metrics', async function () {
    expect((await getLocal(controller.metricsPort, '/healthz')).status).to.equal(200);
    expect((await getLocal(controller.metricsPort, '/readyz')).status).to.equal(200);
    const metrics = (await getLocal(controller.metricsPort, '/metrics')).body;
    expect(metrics).to.match(/netwarden_reconcile_total\{controller="droptail",result="success"\} [1-9]/);
    expect(metrics).to.match(/netwarden_reconcile_total\{controller="packetcapture",result="(success|requeue_after)"\} [1-9]/);
    expect(metrics).to.match(/netwarden_workqueue_depth\{name="droptail"\} \d/);
    expect(metrics).to.match(/netwarden_reconcile_duration_seconds_bucket\{le="[^"]+",controller="droptail"\}/);
    expect(metrics).to.contain('netwarden_reconcile_errors_total');
  });

  it('logs structured JSON lines with the resource key', async function () {
    const lines = controller.logs();
    expect(lines.length).to.be.greaterThan(0);
    expect(lines.every((l) => typeof l.level === 'string' && typeof l.message === 'string')).to.equal(true);
    const written = lines.find((l) => l.message === 'status written' && l.key === `${ns}/bad-selector`);
    expect(written, 'a status write logged with the namespace/name key').to.include({ component: 'reconciler/packetcaptures' });
  });
});
