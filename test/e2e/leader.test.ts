// Two controller replicas and one Lease: exactly one reconciles, and when it dies without a word
// (SIGKILL, so the Lease is not released) the other takes over within the lease duration.
import { expect } from 'chai';
import { cluster } from './hooks.js';
import { ensureInstalled, freePort, getLocal, mustKubectl, startController, SYSTEM_NAMESPACE, type NetwardenProcess } from '../env/netwarden.js';
import { waitFor } from '../env/fixtures.js';

const LEASE = 'netwarden-leader-e2e';
const LEASE_DURATION_S = 15;

function holder(): Promise<string> {
  return mustKubectl(cluster(), ['get', 'lease', LEASE, '-n', SYSTEM_NAMESPACE, '-o', 'jsonpath={.spec.holderIdentity}']).catch(() => '');
}

async function reconcileCount(p: NetwardenProcess): Promise<number> {
  const metrics = (await getLocal(p.metricsPort, '/metrics')).body;
  return [...metrics.matchAll(/^netwarden_reconcile_total\{controller="droptail"[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

function applyDropTail(name: string): Promise<string> {
  return mustKubectl(cluster(), ['apply', '-f', '-'], `apiVersion: netwarden.io/v1alpha1\nkind: DropTail\nmetadata: {name: ${name}}\nspec: {nodeSelector: {none: none}}\n`);
}

describe('leader election', function () {
  let first: NetwardenProcess;
  let second: NetwardenProcess;

  before(async function () {
    await ensureInstalled(cluster());
  });

  after(async function () {
    await Promise.all([first?.kill(), second?.kill()]);
  });

  it('lets exactly one of two replicas hold the Lease and reconcile', async function () {
    const args = (id: string) => ['--leader-elect', `--leader-election-id=${LEASE}`, `--identity=${id}`];
    first = await startController(cluster(), 'replica-1', args('replica-1'));
    await waitFor(async () => (await holder()) === 'replica-1', { timeoutMs: 30_000, description: 'replica-1 leads' });
    // Its own HTTPS port: two replicas of a Deployment are two Pods, each with its own address.
    second = await startController(cluster(), 'replica-2', [...args('replica-2'), `--https-port=${await freePort()}`]);
    await waitFor(async () => (await getLocal(second.metricsPort, '/healthz').catch(() => ({ status: 0 }))).status === 200, { timeoutMs: 30_000, description: 'replica-2 up' });

    await applyDropTail('leader-1');
    await mustKubectl(cluster(), ['wait', '--for=condition=Ready', 'droptail/leader-1', '--timeout=30s']);
    expect(await holder()).to.equal('replica-1');
    expect(await reconcileCount(first)).to.be.greaterThan(0);
    expect(await reconcileCount(second)).to.equal(0);
    expect((await getLocal(second.metricsPort, '/metrics')).body).to.match(/netwarden_leader\{[^}]*identity="replica-2"[^}]*\} 0/);
  });

  it('hands over to the standby within the lease duration when the leader is killed', async function () {
    await first.kill('SIGKILL');
    const killedAt = Date.now();
    await applyDropTail('leader-2');
    await waitFor(async () => (await holder()) === 'replica-2', { timeoutMs: (LEASE_DURATION_S + 10) * 1000, intervalMs: 250, description: 'replica-2 leads' });
    await mustKubectl(cluster(), ['wait', '--for=condition=Ready', 'droptail/leader-2', '--timeout=30s']);
    const tookMs = Date.now() - killedAt;
    // Lease duration plus one retry period and the reconcile itself.
    expect(tookMs).to.be.lessThan((LEASE_DURATION_S + 5) * 1000);
    expect(await reconcileCount(second)).to.be.greaterThan(0);
    const transitions = await mustKubectl(cluster(), ['get', 'lease', LEASE, '-n', SYSTEM_NAMESPACE, '-o', 'jsonpath={.spec.leaseTransitions}']);
    expect(Number(transitions)).to.be.greaterThanOrEqual(1);
  });

  it('releases the Lease on SIGTERM so no one waits out the lease', async function () {
    await second.kill('SIGTERM');
    expect(await second.exited).to.equal(0);
    expect(await holder()).to.equal('');
  });
});
