// The runtime's write helpers against the real API server: finalizers hold a deleted object until
// removed, a stale resourceVersion is refused, and per-node status entries applied by different
// field managers merge instead of overwriting each other.
import { CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import { expect } from 'chai';
import { cluster } from './hooks.js';
import { ensureInstalled, mustKubectl } from '../env/netwarden.js';
import { createNamespace } from '../env/fixtures.js';
import { DropTailType, PacketCaptureType } from '../../src/apis/meta.js';
import { ensureFinalizer, removeFinalizer } from '../../src/runtime/finalizers.js';
import { applyStatus } from '../../src/runtime/status.js';

const ns = 'runtime-e2e';
const FINALIZER = 'netwarden.io/capture-files';

async function getCapture(name: string): Promise<KubernetesObject | undefined> {
  const api = cluster().kubeConfig().makeApiClient(CustomObjectsApi);
  try {
    return (await api.getNamespacedCustomObject({ group: 'netwarden.io', version: 'v1alpha1', plural: 'packetcaptures', namespace: ns, name })) as KubernetesObject;
  } catch {
    return undefined;
  }
}

describe('runtime write helpers', function () {
  before(async function () {
    await ensureInstalled(cluster());
    await createNamespace(cluster().kubeConfig(), ns);
  });

  it('keeps a deleted object until its finalizer is removed', async function () {
    const kc = cluster().kubeConfig();
    await mustKubectl(cluster(), ['apply', '-f', '-'], `apiVersion: netwarden.io/v1alpha1\nkind: PacketCapture\nmetadata: {name: held, namespace: ${ns}}\nspec: {}\n`);
    expect(await ensureFinalizer(kc, PacketCaptureType, (await getCapture('held'))!, FINALIZER)).to.equal(true);
    expect(await ensureFinalizer(kc, PacketCaptureType, (await getCapture('held'))!, FINALIZER)).to.equal(false);

    await mustKubectl(cluster(), ['delete', 'packetcapture', 'held', '-n', ns, '--wait=false']);
    const terminating = await getCapture('held');
    expect(terminating?.metadata?.deletionTimestamp, 'still there, terminating').to.not.equal(undefined);

    expect(await removeFinalizer(kc, PacketCaptureType, terminating!, FINALIZER)).to.equal(true);
    expect(await getCapture('held')).to.equal(undefined);
  });

  it('refuses a finalizer change made from a stale copy (409)', async function () {
    const kc = cluster().kubeConfig();
    await mustKubectl(cluster(), ['apply', '-f', '-'], `apiVersion: netwarden.io/v1alpha1\nkind: PacketCapture\nmetadata: {name: raced, namespace: ${ns}}\nspec: {}\n`);
    const stale = (await getCapture('raced'))!;
    await mustKubectl(cluster(), ['label', 'packetcapture', 'raced', '-n', ns, 'touched=yes']);
    let error: unknown;
    await ensureFinalizer(kc, PacketCaptureType, stale, FINALIZER).catch((err: unknown) => (error = err));
    expect(String((error as { code?: number })?.code ?? error)).to.contain('409');
  });

  it('merges per-node status entries that different agents apply', async function () {
    const kc = cluster().kubeConfig();
    await mustKubectl(cluster(), ['apply', '-f', '-'], 'apiVersion: netwarden.io/v1alpha1\nkind: DropTail\nmetadata: {name: runtime-merge}\nspec: {nodeSelector: {none: none}}\n');
    await applyStatus(kc, DropTailType, { name: 'runtime-merge' }, { nodes: [{ node: 'n1', dropsSeen: 3 }] }, 'netwarden-agent-n1');
    await applyStatus(kc, DropTailType, { name: 'runtime-merge' }, { nodes: [{ node: 'n2', dropsSeen: 5 }] }, 'netwarden-agent-n2');
    await applyStatus(kc, DropTailType, { name: 'runtime-merge' }, { nodes: [{ node: 'n1', dropsSeen: 4 }] }, 'netwarden-agent-n1');
    const out = await mustKubectl(cluster(), ['get', 'droptail', 'runtime-merge', '-o', 'jsonpath={range .status.nodes[*]}{.node}={.dropsSeen} {end}']);
    expect(out.trim().split(' ').sort()).to.deep.equal(['n1=4', 'n2=5']);
    // An agent that applies without its entry gives it up.
    await applyStatus(kc, DropTailType, { name: 'runtime-merge' }, {}, 'netwarden-agent-n2');
    const after = await mustKubectl(cluster(), ['get', 'droptail', 'runtime-merge', '-o', 'jsonpath={.status.nodes[*].node}']);
    expect(after).to.equal('n1');
  });
});
