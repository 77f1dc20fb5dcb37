// charts/netwarden on a real API server: what `helm template` renders passes server-side
// validation (server-side apply, dry run) by default, with cert-manager certificates (and the
// Certificates that make them), and with the ServiceMonitors and PrometheusRule; those are checked
// against cert-manager's and prometheus-operator's own CRDs, installed for this suite only.
// A real `helm install` on a kubelet node is not done here.
import path from 'node:path';
import { expect } from 'chai';
import { cluster } from './hooks.js';
import { ensureInstalled, mustKubectl, REPO_ROOT } from '../env/netwarden.js';
import { helmTemplate, objectKey, parseObjects } from '../env/chart.js';

const PROMETHEUS_CRDS = path.join(REPO_ROOT, 'test', 'fixtures', 'prometheus-operator');
const CERT_MANAGER_CRDS = path.join(REPO_ROOT, 'test', 'fixtures', 'cert-manager');
const monitoring = { 'metrics.serviceMonitor.enabled': true, 'metrics.prometheusRule.enabled': true };

/** Applies the rendered objects by server-side dry run; returns kubectl's line for each object. */
async function dryRun(rendered: string): Promise<string[]> {
  const out = await mustKubectl(cluster(), ['apply', '--server-side', '--force-conflicts', '--dry-run=server', '-f', '-'], rendered);
  return out.trim().split('\n');
}

function expectEveryObjectApplied(rendered: string, lines: string[]): void {
  const objects = parseObjects(rendered);
  expect(lines, lines.join('\n')).to.have.length(objects.length);
  for (const line of lines) expect(line).to.match(/ serverside-applied \(server dry run\)$/);
  expect(objects.length).to.be.greaterThan(40);
}

describe('Helm chart on the control plane (server-side dry run)', function () {
  this.timeout(60_000);

  before(async function () {
    await ensureInstalled(cluster());
    await mustKubectl(cluster(), ['apply', '--server-side', '-f', PROMETHEUS_CRDS, '-f', CERT_MANAGER_CRDS]);
    const crds = ['crd/servicemonitors.monitoring.coreos.com', 'crd/prometheusrules.monitoring.coreos.com', 'crd/certificates.cert-manager.io'];
    await mustKubectl(cluster(), ['wait', '--for=condition=Established', '--timeout=30s', ...crds]);
  });

  after(async function () {
    // Leave the control plane as the other suites expect it.
    await cluster().kubectl(['delete', '--ignore-not-found', '--wait=true', '-f', PROMETHEUS_CRDS, '-f', CERT_MANAGER_CRDS]);
  });

  it('passes every object of the default values', async function () {
    const rendered = await helmTemplate();
    const lines = await dryRun(rendered);
    expectEveryObjectApplied(rendered, lines);
    expect(lines).to.include('deployment.apps/netwarden-controller serverside-applied (server dry run)');
    expect(lines).to.include('daemonset.apps/netwarden-agent serverside-applied (server dry run)');
    expect(lines).to.include('validatingadmissionpolicy.admissionregistration.k8s.io/netwarden-auditforwarder serverside-applied (server dry run)');
  });

  it('passes every object with tls.mode=cert-manager and the namespace rendered by the chart', async function () {
    const rendered = await helmTemplate({ 'tls.mode': 'cert-manager', 'namespaces.createSystem': true, 'agent.kernelLog.enabled': true });
    expectEveryObjectApplied(rendered, await dryRun(rendered));
  });

  it("passes the cert-manager Certificates against cert-manager's schema", async function () {
    const rendered = await helmTemplate({ 'tls.mode': 'cert-manager', 'tls.certManager.issuerRef.name': 'my-ca-issuer', 'tls.certManager.issuerRef.kind': 'ClusterIssuer', 'tls.certManager.agentIPAddresses': '{192.0.2.11,192.0.2.12}' });
    const lines = await dryRun(rendered);
    expectEveryObjectApplied(rendered, lines);
    for (const name of ['netwarden-controller', 'netwarden-agent']) expect(lines).to.include(`certificate.cert-manager.io/${name} serverside-applied (server dry run)`);
  });

  it("passes the ServiceMonitors and the PrometheusRule against prometheus-operator's schemas", async function () {
    for (const values of [monitoring, { ...monitoring, 'tls.mode': 'cert-manager', 'metrics.serviceMonitor.labels.release': 'prometheus' }]) {
      const rendered = await helmTemplate(values);
      const lines = await dryRun(rendered);
      expectEveryObjectApplied(rendered, lines);
      for (const line of ['servicemonitor.monitoring.coreos.com/netwarden-controller', 'servicemonitor.monitoring.coreos.com/netwarden-agent', 'prometheusrule.monitoring.coreos.com/netwarden']) {
        expect(lines).to.include(`${line} serverside-applied (server dry run)`);
      }
    }
  });

  it('is refused by that schema when a monitoring value is wrong (the validation is real)', async function () {
    const rendered = await helmTemplate({ ...monitoring, 'metrics.serviceMonitor.interval': 'every-minute' });
    const sm = parseObjects(rendered).filter((o) => o.kind === 'ServiceMonitor');
    expect(sm.map(objectKey)).to.have.length(2);
    const result = await cluster().kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: rendered });
    expect(result.code).to.not.equal(0);
    expect(result.stderr).to.match(/ServiceMonitor.*netwarden-(controller|agent).*spec\.endpoints\[0\]\.interval.*should match/s);
  });
});
