// The kube-apiserver restarts under a running controller: its informers reconnect (re-listing
// where the watch cannot resume) and every change made around the outage is reconciled.
import { expect } from 'chai';
import { cluster } from './hooks.js';
import { ensureInstalled, getLocal, mustKubectl, startController, type NetwardenProcess } from '../env/netwarden.js';
import { waitFor } from '../env/fixtures.js';

const dropTail = (name: string) => `apiVersion: netwarden.io/v1alpha1\nkind: DropTail\nmetadata: {name: ${name}}\nspec: {nodeSelector: {none: none}}\n`;

function observedGeneration(name: string): Promise<string> {
  return mustKubectl(cluster(), ['get', 'droptail', name, '-o', 'jsonpath={.status.observedGeneration}']);
}

describe('API server restart', function () {
  let controller: NetwardenProcess;

  before(async function () {
    await ensureInstalled(cluster());
    controller = await startController(cluster(), 'controller-resilience');
    await mustKubectl(cluster(), ['apply', '-f', '-'], dropTail('res-kept') + '---\n' + dropTail('res-removed'));
    await mustKubectl(cluster(), ['wait', '--for=condition=Ready', 'droptail/res-kept', 'droptail/res-removed', '--timeout=30s']);
  });

  after(async function () {
    await controller?.kill();
  });

  it('misses no change made around an outage of the API server', async function () {
    const cp = cluster();
    await cp.stopApiServer();
    await new Promise((r) => setTimeout(r, 3000)); // the controller's watches break and back off
    await cp.startApiServer();
    await mustKubectl(cp, ['apply', '-f', '-'], dropTail('res-new'));
    await mustKubectl(cp, ['patch', 'droptail', 'res-kept', '--type=merge', '-p', '{"spec":{"repeatInterval":"30s"}}']);
    await mustKubectl(cp, ['delete', 'droptail', 'res-removed']);

    await mustKubectl(cp, ['wait', '--for=condition=Ready', 'droptail/res-new', '--timeout=60s']);
    await waitFor(async () => (await observedGeneration('res-kept')) === '2', { timeoutMs: 60_000, description: 'res-kept reconciled at generation 2' });
    const metrics = (await getLocal(controller.metricsPort, '/metrics')).body;
    expect(metrics).to.match(/netwarden_informer_restarts_total\{informer="droptails"\} [1-9]/);
    expect((await getLocal(controller.metricsPort, '/readyz')).status).to.equal(200);
  });
});
