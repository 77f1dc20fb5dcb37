// The Argo CD health checks of config/argocd/ against the statuses the real controller and a real
// agent write: each object is read with `kubectl get -o json`, as Argo CD reads it, and judged by
// the Lua script under a real Lua interpreter (test/env/argocd.ts).
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { expect } from 'chai';
import { cluster } from './hooks.js';
import { argoHealth, healthScript, keepTestdata, REPO, type ArgoHealth, type ArgoKind } from '../env/argocd.js';
import { ARGOCD_CM_PATCH } from '../../hack/argocd-cm.js';
import { applyCapture } from '../env/captures.js';
import { createNamespace, createNode, createPod, waitFor } from '../env/fixtures.js';
import { ensureInstalled, mustKubectl, nextNodeIP, startAgent, startController, SYSTEM_NAMESPACE, type NetwardenProcess } from '../env/netwarden.js';
import { createPodNetwork, type PodNetwork } from '../env/podnet.js';

const NS = 'ah-quota'; // one capture at a time
const NS_B = 'ah-free';
const NODE = 'ah-node';
const WEB_IP = '10.244.131.10';
const QUOTAS = 'netwarden-capture-quotas';

const RESOURCE: Record<ArgoKind, string> = { DropTail: 'droptail', PacketCapture: 'packetcapture', AuditForwarder: 'auditforwarder' };

interface Obj {
  metadata: { name: string; generation?: number };
  status?: { observedGeneration?: number; phase?: string; conditions?: Array<{ type: string; status: string; reason: string }> };
}

async function get(kind: ArgoKind, name: string, namespace?: string): Promise<Obj> {
  return JSON.parse(await mustKubectl(cluster(), ['get', RESOURCE[kind], name, ...(namespace ? ['-n', namespace] : []), '-o', 'json'])) as Obj;
}

/** Waits until the object is in the state `ready` says, then returns what Argo CD would show. */
async function healthWhen(kind: ArgoKind, name: string, ready: (o: Obj) => boolean, namespace?: string, testdata = name): Promise<ArgoHealth> {
  const obj = await waitFor(async () => {
    const o = await get(kind, name, namespace);
    return ready(o) ? o : undefined;
  }, { timeoutMs: 45_000, description: `${kind} ${name}` });
  keepTestdata(kind, testdata, obj);
  return argoHealth(kind, obj);
}

const readyIs = (status: string, reason?: string) => (o: Obj): boolean =>
  o.status?.observedGeneration === o.metadata.generation &&
  (o.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === status && (reason === undefined || c.reason === reason));
const phaseIs = (phase: string) => (o: Obj): boolean => o.status?.observedGeneration === o.metadata.generation && o.status?.phase === phase;

function apply(yaml: string): Promise<string> {
  return mustKubectl(cluster(), ['apply', '-f', '-'], yaml);
}

const dropTail = (name: string, sources: string) =>
  apply(`apiVersion: netwarden.io/v1alpha1\nkind: DropTail\nmetadata: {name: ${name}}\nspec:\n  nodeSelector: {kubernetes.io/hostname: ${NODE}}\n  sources: ${sources}\n`);
const forwarder = (name: string, url: string, node = 'ah-no-such-node') =>
  apply(`apiVersion: netwarden.io/v1alpha1\nkind: AuditForwarder\nmetadata: {name: ${name}}\nspec:\n  nodeSelector: {kubernetes.io/hostname: ${node}}\n  sink: {webhook: {url: "${url}"}}\n`);

describe('Argo CD health checks against real statuses', function () {
  this.timeout(180_000);
  const processes: NetwardenProcess[] = [];
  let web: PodNetwork | undefined;
  let kernLog = '';

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNamespace(kc, NS);
    await createNamespace(kc, NS_B);
    await createNode(kc, NODE, { internalIP: nextNodeIP() });
    web = await createPodNetwork({ name: 'ah-web', ip: WEB_IP });
    await createPod(kc, { namespace: NS, name: 'web', nodeName: NODE, labels: { app: 'web' }, podIP: WEB_IP });
    kernLog = path.join(cp.dir, 'ah-kern.log');
    await writeFile(kernLog, '');
    await apply(`apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ${QUOTAS}, namespace: ${SYSTEM_NAMESPACE}}\ndata:\n  namespaces: |\n    ${NS}: {maxConcurrentCaptures: 1}\n`);
  });

  after(async function () {
    await Promise.all(processes.map((p) => p.kill()));
    await web?.destroy();
    const cp = cluster();
    await cp.kubectl(['delete', 'configmap', QUOTAS, '-n', SYSTEM_NAMESPACE, '--ignore-not-found']);
    for (const name of ['ah-dt', 'ah-dt-broken', 'ah-af', 'ah-af-bad']) await cp.kubectl(['delete', 'droptail,auditforwarder', name, '--ignore-not-found']);
    // The controller that would release the captures' file finalizers is gone (the last test stops it).
    for (const ns of [NS, NS_B]) {
      const names = (await cp.kubectl(['get', 'packetcapture', '-n', ns, '-o', 'name'])).stdout.split('\n').filter(Boolean);
      for (const name of names) await cp.kubectl(['patch', name, '-n', ns, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
    }
    await cp.kubectl(['delete', 'namespace', NS, NS_B, '--wait=false', '--ignore-not-found']);
    await cp.kubectl(['delete', 'node', NODE, '--ignore-not-found']);
  });

  it('is Progressing for every kind before the controller has seen the object', async function () {
    await dropTail('ah-dt', `[{type: file, path: "${kernLog}"}]`);
    await forwarder('ah-af', 'https://audit.example.invalid/ingest');
    await applyCapture(cluster(), NS_B, 'ah-pc-early', '  selector: app == "none"\n  duration: 1h');
    for (const [kind, name, ns] of [['DropTail', 'ah-dt'], ['AuditForwarder', 'ah-af'], ['PacketCapture', 'ah-pc-early', NS_B]] as Array<[ArgoKind, string, string?]>) {
      const h = await healthWhen(kind, name, (o) => o.status === undefined, ns, 'unobserved');
      expect(h, kind).to.deep.equal({ status: 'Progressing', message: 'Waiting for the Netwarden controller to observe generation 1' });
    }
    // Only now: the controller and the agent of the node.
    const cp = cluster();
    processes.push(await startController(cp, 'ah-controller', ['--capture-max-files=100']), await startAgent(cp, NODE));
  });

  it('DropTail: Healthy once its node reports, Degraded when every reporting node has a failing source', async function () {
    const ok = await healthWhen('DropTail', 'ah-dt', (o) => readyIs('True')(o) && (o.status as { nodeCount?: number }).nodeCount === 1, undefined, 'healthy');
    expect(ok).to.deep.equal({ status: 'Healthy', message: 'selects 1 node(s); 1 agent(s) reporting' });

    await dropTail('ah-dt-broken', `[{type: journal, directory: "${path.join(cluster().dir, 'ah-no-journal')}"}]`);
    const broken = await healthWhen('DropTail', 'ah-dt-broken', readyIs('False', 'SourcesUnhealthy'), undefined, 'sources-unhealthy');
    expect(broken.status).to.equal('Degraded');
    expect(broken.message).to.match(/^SourcesUnhealthy: every reporting node has an unhealthy source: ah-node journal: journalctl exited with code 1: .*ah-no-journal/);
  });

  it('AuditForwarder: Healthy when accepted, Degraded for a sink URL the controller refuses', async function () {
    expect(await healthWhen('AuditForwarder', 'ah-af', readyIs('True'), undefined, 'healthy')).to.deep.equal({ status: 'Healthy', message: 'selects 0 node(s); 0 agent(s) reporting' });
    // Passes the CRD's uri format and the admission policy (https://), not a URL parser.
    await forwarder('ah-af-bad', 'https://audit.example.invalid:99999/ingest');
    expect(await healthWhen('AuditForwarder', 'ah-af-bad', readyIs('False'), undefined, 'invalid-sink')).to.deep.equal({
      status: 'Degraded',
      message: 'InvalidSink: spec.sink.webhook.url: "https://audit.example.invalid:99999/ingest" is not a URL',
    });
  });

  it('PacketCapture: Healthy while armed and when finished, Suspended when scheduled or queued at the quota, Degraded when refused', async function () {
    const cp = cluster();
    await applyCapture(cp, NS, 'ah-pc-run', '  selector: app == "web"\n  filters: [{protocol: UDP, ports: [5600]}]');
    expect(await healthWhen('PacketCapture', 'ah-pc-run', phaseIs('WaitingForTraffic'), NS, 'waiting-for-traffic')).to.deep.equal({
      status: 'Healthy',
      message: 'WaitingForTraffic: 1 pod(s), 0 file(s), 0 bytes',
    });

    await applyCapture(cp, NS, 'ah-pc-queued', '  selector: app == "web"');
    const queued = await healthWhen('PacketCapture', 'ah-pc-queued', phaseIs('Queued'), NS, 'queued');
    expect(queued).to.deep.equal({
      status: 'Suspended',
      message: `Queued, held by a capture quota: namespace quota: 1 concurrent captures (ConfigMap ${SYSTEM_NAMESPACE}/${QUOTAS}, namespaces.${NS}); namespace ${NS} runs 1 (ah-pc-run)`,
    });

    const start = new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
    await applyCapture(cp, NS_B, 'ah-pc-later', `  startTime: "${start}"\n  duration: 10m`);
    expect(await healthWhen('PacketCapture', 'ah-pc-later', phaseIs('Scheduled'), NS_B, 'scheduled')).to.deep.equal({ status: 'Suspended', message: `Scheduled: starts at ${start}` });

    await applyCapture(cp, NS_B, 'ah-pc-done', '  duration: 2s');
    const done = await healthWhen('PacketCapture', 'ah-pc-done', phaseIs('Finished'), NS_B, 'finished');
    expect(done.status).to.equal('Healthy');
    expect(done.message).to.match(/^Finished: 0 pod\(s\), 0 file\(s\), 0 bytes/);

    await applyCapture(cp, NS_B, 'ah-pc-big', '  duration: 10m\n  maxFiles: 500');
    expect(await healthWhen('PacketCapture', 'ah-pc-big', phaseIs('Failed'), NS_B, 'refused')).to.deep.equal({
      status: 'Degraded',
      message: 'Failed: spec.maxFiles 500 exceeds the cluster limit 100 (controller flag --capture-max-files)',
    });
  });

  it("installs into an existing argocd-cm with the documented kubectl patch, keeping the ConfigMap's other keys", async function () {
    const cp = cluster();
    await cp.kubectl(['create', 'namespace', 'argocd']);
    await mustKubectl(cp, ['create', 'configmap', 'argocd-cm', '-n', 'argocd', '--from-literal=url=https://argocd.example.com']);
    await mustKubectl(cp, ['-n', 'argocd', 'patch', 'configmap', 'argocd-cm', '--type', 'merge', '--patch-file', path.join(REPO, ARGOCD_CM_PATCH)]);
    const data = (JSON.parse(await mustKubectl(cp, ['get', 'configmap', 'argocd-cm', '-n', 'argocd', '-o', 'json'])) as { data: Record<string, string> }).data;
    expect(Object.keys(data).sort()).to.deep.equal(['resource.customizations.health.netwarden.io_AuditForwarder', 'resource.customizations.health.netwarden.io_DropTail', 'resource.customizations.health.netwarden.io_PacketCapture', 'url']);
    expect(data['resource.customizations.health.netwarden.io_PacketCapture']).to.equal(readFileSync(healthScript('PacketCapture'), 'utf8'));
    await mustKubectl(cp, ['delete', 'namespace', 'argocd', '--wait=false']);
  });

  it('is Progressing again when the spec changes and the controller has not caught up', async function () {
    await Promise.all(processes.splice(0).map((p) => p.kill()));
    await mustKubectl(cluster(), ['patch', 'droptail', 'ah-dt', '--type=merge', '-p', '{"spec":{"recentDropsLimit":5}}']);
    const lagging = await healthWhen('DropTail', 'ah-dt', (o) => o.metadata.generation === 2 && o.status?.observedGeneration === 1, undefined, 'generation-ahead');
    expect(lagging).to.deep.equal({ status: 'Progressing', message: 'Waiting for the Netwarden controller to observe generation 2' });
  });
});
