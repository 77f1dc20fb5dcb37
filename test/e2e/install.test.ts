// config/ on a real API server: the CRDs install, RBAC is least privilege as written, the
// workloads pass server-side validation, and kubectl shows what a user first asks for.
import path from 'node:path';
import { expect } from 'chai';
import { cluster } from './hooks.js';
import { ensureInstalled, mustKubectl, REPO_ROOT, SYSTEM_NAMESPACE } from '../env/netwarden.js';
import { createNamespace } from '../env/fixtures.js';

const controller = `system:serviceaccount:${SYSTEM_NAMESPACE}:netwarden-controller`;
const agent = `system:serviceaccount:${SYSTEM_NAMESPACE}:netwarden-agent`;

/** `kubectl auth can-i`; a resource written `plural.group/sub` is checked on that subresource. */
async function canI(verb: string, resource: string, as: string, namespace?: string): Promise<boolean> {
  const [plural, subresource] = resource.split('/');
  const args = ['auth', 'can-i', verb, plural!, ...(subresource ? [`--subresource=${subresource}`] : []), `--as=${as}`, ...(namespace ? ['-n', namespace] : ['--all-namespaces'])];
  const result = await cluster().kubectl(args);
  return result.stdout.trim() === 'yes';
}

describe('config/ on the control plane', function () {
  before(async function () {
    await ensureInstalled(cluster());
    await createNamespace(cluster().kubeConfig(), 'storefront');
  });

  it('installs the three CRDs in the netwarden category with short names', async function () {
    const out = await mustKubectl(cluster(), ['api-resources', '--api-group=netwarden.io', '-o', 'wide']);
    for (const [plural, short, namespaced] of [['droptails', 'dt', 'false'], ['packetcaptures', 'pcap', 'true'], ['auditforwarders', 'af', 'false']]) {
      const line = out.split('\n').find((l) => l.startsWith(`${plural} `));
      expect(line, out).to.match(new RegExp(`^${plural}\\s+${short}\\s+netwarden.io/v1alpha1\\s+${namespaced}\\s`));
      expect(line).to.contain('netwarden');
    }
  });

  it('passes the controller Deployment and agent DaemonSet through server-side validation', async function () {
    const out = await mustKubectl(cluster(), ['apply', '--server-side', '--dry-run=server', '-k', path.join(REPO_ROOT, 'config')]);
    expect(out).to.match(/deployment.apps\/netwarden-controller serverside-applied \(server dry run\)/);
    expect(out).to.match(/daemonset.apps\/netwarden-agent serverside-applied \(server dry run\)/);
  });

  it('gives the controller what it reconciles with and nothing more', async function () {
    expect(await canI('list', 'pods', controller)).to.equal(true);
    expect(await canI('patch', 'packetcaptures.netwarden.io/status', controller, 'storefront')).to.equal(true);
    expect(await canI('create', 'tokenreviews.authentication.k8s.io', controller)).to.equal(true);
    expect(await canI('create', 'subjectaccessreviews.authorization.k8s.io', controller)).to.equal(true);
    expect(await canI('update', 'leases.coordination.k8s.io', controller, SYSTEM_NAMESPACE)).to.equal(true);
    expect(await canI('update', 'leases.coordination.k8s.io', controller, 'default')).to.equal(false);
    expect(await canI('get', 'secrets', controller, 'default')).to.equal(false);
    expect(await canI('delete', 'pods', controller, 'default')).to.equal(false);
    // spec.deleteObject: the controller deletes an expired PacketCapture, and no other kind.
    expect(await canI('delete', 'packetcaptures.netwarden.io', controller, 'storefront')).to.equal(true);
    expect(await canI('delete', 'droptails.netwarden.io', controller)).to.equal(false);
    // The admin's capture quotas: that one ConfigMap, read only.
    const canIOn = async (verb: string, object: string) => (await cluster().kubectl(['auth', 'can-i', verb, object, `--as=${controller}`, '-n', SYSTEM_NAMESPACE])).stdout.trim() === 'yes';
    expect(await canIOn('watch', 'configmaps/netwarden-capture-quotas')).to.equal(true);
    expect(await canIOn('update', 'configmaps/netwarden-capture-quotas')).to.equal(false);
    expect(await canIOn('get', 'configmaps/some-other')).to.equal(false);
  });

  it('lets the controller request tokens (for the agents) of its own ServiceAccount only', async function () {
    const canRequest = async (serviceAccount: string) =>
      (await cluster().kubectl(['auth', 'can-i', 'create', `serviceaccounts/${serviceAccount}`, '--subresource=token', `--as=${controller}`, '-n', SYSTEM_NAMESPACE])).stdout.trim() === 'yes';
    expect(await canRequest('netwarden-controller')).to.equal(true);
    expect(await canRequest('netwarden-agent')).to.equal(false);
    expect(await canI('create', 'serviceaccounts/token', agent, SYSTEM_NAMESPACE)).to.equal(false);
  });

  it('lets the agent push drops and node reports and write PacketCapture status, but no DropTail or AuditForwarder status, and not change specs', async function () {
    expect(await canI('patch', 'packetcaptures.netwarden.io/status', agent, 'storefront')).to.equal(true);
    expect(await canI('create', 'droptails.netwarden.io/drops', agent)).to.equal(true);
    expect(await canI('create', 'droptails.netwarden.io/reports', agent)).to.equal(true);
    expect(await canI('create', 'auditforwarders.netwarden.io/reports', agent)).to.equal(true);
    for (const verb of ['patch', 'update']) {
      expect(await canI(verb, 'droptails.netwarden.io/status', agent), `${verb} droptails/status`).to.equal(false);
      expect(await canI(verb, 'auditforwarders.netwarden.io/status', agent), `${verb} auditforwarders/status`).to.equal(false);
    }
    expect(await canI('update', 'droptails.netwarden.io', agent)).to.equal(false);
    expect(await canI('create', 'pods', agent, 'default')).to.equal(false);
    expect(await canI('get', 'packetcaptures.netwarden.io/files', agent, 'storefront')).to.equal(false);
  });

  it('separates creating captures from reading their files in the example user roles', async function () {
    const cp = cluster();
    await mustKubectl(cp, ['create', 'rolebinding', 'alice-captures', '-n', 'storefront', '--clusterrole=netwarden-packetcapture-editor', '--user=alice']);
    await mustKubectl(cp, ['create', 'rolebinding', 'bob-files', '-n', 'storefront', '--clusterrole=netwarden-packetcapture-files-reader', '--user=bob']);
    expect(await canI('create', 'packetcaptures.netwarden.io', 'alice', 'storefront')).to.equal(true);
    expect(await canI('get', 'packetcaptures.netwarden.io/files', 'alice', 'storefront')).to.equal(false);
    expect(await canI('get', 'packetcaptures.netwarden.io/files', 'bob', 'storefront')).to.equal(true);
    expect(await canI('get', 'packetcaptures.netwarden.io/files', 'bob', 'default')).to.equal(false);
  });

  it('rejects an invalid example with a message naming the field', async function () {
    const result = await cluster().kubectl(['apply', '-f', path.join(REPO_ROOT, 'test/fixtures/invalid/packetcapture-endtime-before-starttime.yaml')]);
    expect(result.code).to.not.equal(0);
    expect(result.stderr).to.match(/spec\.endTime: Invalid value: .*endTime must be after startTime/);
  });

  it('shows the printer columns for each kind and for the netwarden category', async function () {
    const cp = cluster();
    await mustKubectl(cp, ['apply', '-f', path.join(REPO_ROOT, 'examples')]);
    const byKind = await mustKubectl(cp, ['get', 'droptails,packetcaptures,auditforwarders', '-A']);
    expect(byKind).to.match(/NAME\s+NODES\s+UNHEALTHY\s+DROPS\s+LAST DROP\s+READY\s+AGE/);
    expect(byKind).to.match(/NAMESPACE\s+NAME\s+PHASE\s+PODS\s+FILES\s+SIZE\s+EXPIRES\s+AGE/);
    expect(byKind).to.match(/NAME\s+NODES\s+UNHEALTHY\s+SHIPPED\s+LAG\s+READY\s+AGE/);
    const category = await mustKubectl(cp, ['get', 'netwarden', '-A']);
    expect(category).to.contain('droptail.netwarden.io/');
    expect(category).to.contain('packetcapture.netwarden.io/');
    expect(category).to.contain('auditforwarder.netwarden.io/');
    // Later suites tell their own stories with these names.
    await mustKubectl(cp, ['delete', '-f', path.join(REPO_ROOT, 'examples')]);
  });
});
