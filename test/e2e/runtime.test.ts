// The runtime against the real API server: one KubeConfig's calls share connections; finalizers hold a deleted object until
// removed, a stale resourceVersion is refused, and per-node status entries applied by different
// field managers merge instead of overwriting each other.
import diagnosticsChannel from 'node:diagnostics_channel';
import { AuthenticationV1Api, CoreV1Api, CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import { expect } from 'chai';
import { cluster } from './hooks.js';
import { ensureInstalled, mustKubectl } from '../env/netwarden.js';
import { createNamespace } from '../env/fixtures.js';
import { PacketCaptureType } from '../../src/apis/meta.js';
import { ensureFinalizer, removeFinalizer } from '../../src/runtime/finalizers.js';
import { applyStatus } from '../../src/runtime/status.js';
import { loadKubeConfig } from '../../src/util/kube.js';

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

  it("makes one KubeConfig's API calls share their connections to the API server", async function () {
    // undici reports every connection it opens on this channel: the calls below are counted by it.
    let opened = 0;
    const count = (): void => void opened++;
    diagnosticsChannel.subscribe('undici:client:connected', count);
    try {
      const kc = loadKubeConfig(cluster().kubeconfigPath);
      const core = kc.makeApiClient(CoreV1Api);
      const authn = kc.makeApiClient(AuthenticationV1Api);
      for (let i = 0; i < 20; i++) await core.readNamespace({ name: ns });
      await Promise.all(Array.from({ length: 20 }, () => authn.createTokenReview({ body: { spec: { token: 'not-a-token' } } })));
      // client-node alone opens one connection per call: 40 here.
      expect(opened, 'connections opened for 40 calls').to.be.at.most(2);
    } finally {
      diagnosticsChannel.unsubscribe('undici:client:connected', count);
    }
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
    // PacketCapture status.files: the one per-node list agents still write (DropTail and
    // AuditForwarder agents report to the controller instead).
    const kc = cluster().kubeConfig();
    await mustKubectl(cluster(), ['apply', '-f', '-'], `apiVersion: netwarden.io/v1alpha1\nkind: PacketCapture\nmetadata: {name: runtime-merge, namespace: ${ns}}\nspec: {selector: "app == 'none'"}\n`);
    const ref = { namespace: ns, name: 'runtime-merge' };
    await applyStatus(kc, PacketCaptureType, ref, { files: [{ node: 'n1', packets: 3 }] }, 'netwarden-agent-n1');
    await applyStatus(kc, PacketCaptureType, ref, { files: [{ node: 'n2', packets: 5 }] }, 'netwarden-agent-n2');
    await applyStatus(kc, PacketCaptureType, ref, { files: [{ node: 'n1', packets: 4 }] }, 'netwarden-agent-n1');
    const out = await mustKubectl(cluster(), ['get', 'packetcapture', 'runtime-merge', '-n', ns, '-o', 'jsonpath={range .status.files[*]}{.node}={.packets} {end}']);
    expect(out.trim().split(' ').sort()).to.deep.equal(['n1=4', 'n2=5']);
    // An agent that applies without its entry gives it up.
    await applyStatus(kc, PacketCaptureType, ref, {}, 'netwarden-agent-n2');
    const after = await mustKubectl(cluster(), ['get', 'packetcapture', 'runtime-merge', '-n', ns, '-o', 'jsonpath={.status.files[*].node}']);
    expect(after).to.equal('n1');
  });
});
