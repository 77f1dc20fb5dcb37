// charts/netwarden: Helm renders the same objects as `kubectl kustomize` of config/ and its
// components, in every mode; the values a user sets reach the objects; helm lint passes; the
// README's values table is the one helm-docs makes today. (The server's validation of the rendered
// objects: test/e2e/chart.test.ts.)
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import YAML from 'yaml';
import { CHART_DIR, helmTemplate, kustomize, mustTool, objectKey, parseObjects, tool, type K8sObject } from '../env/chart.js';

/** Labels the chart adds to every object for Helm's tools; config/ has none of them. */
const CHART_LABELS = ['helm.sh/chart', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/instance', 'app.kubernetes.io/version'];

/**
 * An object as compared: without the chart's labels, and with ConfigMap data that is YAML (the
 * capture quotas) parsed, since the chart writes it from values (other key order, same settings).
 */
function normalized(o: K8sObject): K8sObject {
  const copy = structuredClone(o);
  const labels = copy.metadata.labels;
  if (labels) {
    for (const l of CHART_LABELS) delete labels[l];
    if (Object.keys(labels).length === 0) delete copy.metadata.labels;
  }
  if (copy.kind === 'ConfigMap' && copy.data && typeof copy.data === 'object') {
    const data = copy.data as Record<string, unknown>;
    for (const [k, v] of Object.entries(data)) {
      if (typeof v !== 'string') continue;
      try {
        const parsed: unknown = YAML.parse(v);
        if (parsed && typeof parsed === 'object') data[k] = parsed;
      } catch {
        // not YAML: compared as text
      }
    }
  }
  return copy;
}

function byKey(text: string): Map<string, K8sObject> {
  const map = new Map<string, K8sObject>();
  for (const o of parseObjects(text)) {
    const key = objectKey(o);
    expect(map.has(key), `${key} rendered twice`).to.equal(false);
    map.set(key, normalized(o));
  }
  return map;
}

function expectSameObjects(chart: string, config: string): void {
  const fromChart = byKey(chart);
  const fromConfig = byKey(config);
  expect([...fromChart.keys()].sort()).to.deep.equal([...fromConfig.keys()].sort());
  for (const [key, o] of fromConfig) expect(fromChart.get(key), key).to.deep.equal(o);
}

function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name} rendered`);
  return o;
}

interface PodSpecLike {
  containers: { image: string; imagePullPolicy?: string; args: string[]; volumeMounts?: { name: string; mountPath: string }[]; resources?: unknown }[];
  volumes?: { name: string; hostPath?: { path: string }; secret?: { secretName: string } }[];
  nodeSelector?: Record<string, string>;
  tolerations?: unknown[];
  affinity?: unknown;
  imagePullSecrets?: { name: string }[];
}

function podSpec(o: K8sObject): PodSpecLike {
  return (o as unknown as { spec: { template: { spec: PodSpecLike } } }).spec.template.spec;
}

describe('Helm chart charts/netwarden', function () {
  // helm and kubectl are Go programs: each run is 0.1-0.5 s; the first may build helm (see hack/tools).
  this.timeout(60_000);

  // The namespace itself is the one object not rendered by default (helm install --create-namespace makes it).
  const asConfig = { 'namespaces.createSystem': true, 'crds.keep': false };

  it('renders the same objects as kubectl kustomize config/', async function () {
    expectSameObjects(await helmTemplate(asConfig), await kustomize());
  });

  it('with tls.mode=cert-manager, the same objects as config/ with the cert-manager component', async function () {
    expectSameObjects(await helmTemplate({ ...asConfig, 'tls.mode': 'cert-manager' }), await kustomize(['cert-manager']));
  });

  it('with the ServiceMonitor and PrometheusRule on, the same objects as config/ with the monitoring component', async function () {
    const monitoring = { ...asConfig, 'metrics.serviceMonitor.enabled': true, 'metrics.prometheusRule.enabled': true };
    expectSameObjects(await helmTemplate(monitoring), await kustomize(['monitoring']));
    expectSameObjects(await helmTemplate({ ...monitoring, 'tls.mode': 'cert-manager' }), await kustomize(['monitoring', 'cert-manager']));
  });

  it('with agent.kernelLog.enabled, the same objects as config/ with the kernel-log component', async function () {
    expectSameObjects(await helmTemplate({ ...asConfig, 'agent.kernelLog.enabled': true }), await kustomize(['kernel-log']));
  });

  it('by default leaves out the namespace netwarden-system and keeps the CRDs on uninstall', async function () {
    const objects = parseObjects(await helmTemplate());
    expect(objects.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name)).to.deep.equal(['netwarden-pki']);
    const crds = objects.filter((o) => o.kind === 'CustomResourceDefinition');
    expect(crds.map((o) => o.metadata.name).sort()).to.deep.equal(['auditforwarders.netwarden.io', 'droptails.netwarden.io', 'packetcaptures.netwarden.io']);
    for (const crd of crds) expect(crd.metadata.annotations?.['helm.sh/resource-policy']).to.equal('keep');
    expect(find(objects, 'Deployment', 'netwarden-controller').metadata.labels?.['app.kubernetes.io/managed-by']).to.equal('Helm');
  });

  it('puts the image, resources and scheduling values on each component', async function () {
    const objects = parseObjects(
      await helmTemplate({
        'image.repository': 'registry.example/netwarden',
        'image.tag': '9.9.9',
        'image.pullPolicy': 'Always',
        'controller.replicas': 3,
        'controller.nodeSelector.node-role\\.kubernetes\\.io/control-plane': '',
        'controller.resources.limits.memory': '512Mi',
        'agent.nodeSelector.kubernetes\\.io/os': 'linux',
        'agent.tolerations': 'null',
        'controller.extraArgs[0]': '--event-qps=20',
        'imagePullSecrets[0].name': 'regcred',
        'commonLabels.team': 'network',
      }),
    );
    for (const o of objects) expect(o.metadata.labels?.team, objectKey(o)).to.equal('network');
    const controller = find(objects, 'Deployment', 'netwarden-controller');
    const agent = find(objects, 'DaemonSet', 'netwarden-agent');
    for (const o of [controller, agent]) {
      expect(podSpec(o).containers[0]!.image).to.equal('registry.example/netwarden:9.9.9');
      expect(podSpec(o).containers[0]!.imagePullPolicy).to.equal('Always');
      expect(podSpec(o).imagePullSecrets).to.deep.equal([{ name: 'regcred' }]);
    }
    expect((controller as unknown as { spec: { replicas: number } }).spec.replicas).to.equal(3);
    expect(podSpec(controller).nodeSelector).to.deep.equal({ 'node-role.kubernetes.io/control-plane': '' });
    expect(podSpec(controller).containers[0]!.resources).to.deep.equal({ requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '512Mi' } });
    expect(podSpec(controller).containers[0]!.args.at(-1)).to.equal('--event-qps=20');
    expect(podSpec(agent).nodeSelector).to.deep.equal({ 'kubernetes.io/os': 'linux' });
    // Without the default "tolerate everything" the agent stays off tainted (e.g. control-plane) nodes.
    expect(podSpec(agent).tolerations).to.equal(undefined);
  });

  it('moves the audit log directory everywhere it is named: mount, flag and the admission policy', async function () {
    const dir = '/var/log/kube-apiserver/audit';
    const objects = parseObjects(await helmTemplate({ 'agent.auditLogDir': dir, 'agent.hostPaths.state': '/data/netwarden' }));
    const spec = podSpec(find(objects, 'DaemonSet', 'netwarden-agent'));
    const container = spec.containers[0]!;
    expect(container.args).to.include(`--audit-log-dir=${dir}`);
    expect(container.args.filter((a) => a.startsWith('--audit-log-dir='))).to.have.length(1);
    expect(container.volumeMounts?.find((m) => m.name === 'audit')?.mountPath).to.equal(dir);
    expect(spec.volumes?.find((v) => v.name === 'audit')?.hostPath?.path).to.equal(dir);
    expect(spec.volumes?.find((v) => v.name === 'state')?.hostPath?.path).to.equal('/data/netwarden');
    expect((find(objects, 'ConfigMap', 'netwarden-auditforwarder') as unknown as { data: Record<string, string> }).data.auditLogDirs).to.equal(dir);
  });

  it('leaves out the admission policies, the CRDs or the PKI namespace when told to', async function () {
    const objects = parseObjects(await helmTemplate({ 'admissionPolicies.enabled': false, 'crds.enabled': false, 'namespaces.createPki': false }));
    const kinds = new Set(objects.map((o) => o.kind));
    for (const kind of ['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding', 'CustomResourceDefinition', 'Namespace']) expect(kinds.has(kind), kind).to.equal(false);
    expect(objects.some((o) => o.kind === 'ConfigMap' && o.metadata.name === 'netwarden-auditforwarder')).to.equal(false);
    expect(kinds.has('DaemonSet')).to.equal(true);
  });

  it('labels the ServiceMonitors and the PrometheusRule for the Prometheus that selects them', async function () {
    const objects = parseObjects(
      await helmTemplate({ 'metrics.serviceMonitor.enabled': true, 'metrics.serviceMonitor.labels.release': 'kube-prometheus-stack', 'metrics.serviceMonitor.interval': '1m', 'metrics.prometheusRule.enabled': true, 'metrics.prometheusRule.labels.release': 'kube-prometheus-stack' }),
    );
    for (const name of ['netwarden-controller', 'netwarden-agent']) {
      const sm = find(objects, 'ServiceMonitor', name);
      expect(sm.metadata.labels?.release, name).to.equal('kube-prometheus-stack');
      expect((sm as unknown as { spec: { endpoints: { interval: string }[] } }).spec.endpoints[0]!.interval).to.equal('1m');
    }
    expect(find(objects, 'PrometheusRule', 'netwarden').metadata.labels?.release).to.equal('kube-prometheus-stack');
    // Only the monitoring objects carry them.
    expect(find(objects, 'Deployment', 'netwarden-controller').metadata.labels?.release).to.equal(undefined);
  });

  it('with tls.certManager.issuerRef, renders the two Certificates whose Secrets it mounts', async function () {
    const objects = parseObjects(
      await helmTemplate({ 'tls.mode': 'cert-manager', 'tls.certManager.issuerRef.name': 'my-ca-issuer', 'tls.certManager.issuerRef.kind': 'ClusterIssuer', 'tls.certManager.agentIPAddresses': '{192.0.2.11,192.0.2.12}' }),
    );
    const spec = (name: string) => (find(objects, 'Certificate', name) as unknown as { spec: Record<string, unknown> }).spec;
    const issuerRef = { name: 'my-ca-issuer', kind: 'ClusterIssuer' };
    expect(spec('netwarden-controller')).to.deep.equal({ secretName: 'netwarden-controller-tls', dnsNames: ['netwarden-controller.netwarden-system.svc', 'localhost'], issuerRef });
    expect(spec('netwarden-agent')).to.deep.equal({ secretName: 'netwarden-agent-tls', ipAddresses: ['192.0.2.11', '192.0.2.12'], issuerRef });
    const volumes = [find(objects, 'Deployment', 'netwarden-controller'), find(objects, 'DaemonSet', 'netwarden-agent')].map((o) => (podSpec(o).volumes ?? []).find((v) => v.name === 'tls'));
    expect(volumes).to.deep.equal([{ name: 'tls', secret: { secretName: 'netwarden-controller-tls' } }, { name: 'tls', secret: { secretName: 'netwarden-agent-tls' } }]);
    // Not in self-managed mode, and not without the nodes' addresses.
    expect(parseObjects(await helmTemplate({ 'tls.certManager.issuerRef.name': 'my-ca-issuer' })).some((o) => o.kind === 'Certificate')).to.equal(false);
    const noIPs = await tool('helm', ['template', 'netwarden', CHART_DIR, '--namespace', 'netwarden-system', '--set', 'tls.mode=cert-manager', '--set', 'tls.certManager.issuerRef.name=my-ca-issuer']);
    expect(noIPs.code).to.not.equal(0);
    expect(noIPs.stderr).to.contain("tls.certManager.agentIPAddresses: list every node's InternalIP");
  });

  it('refuses another namespace than netwarden-system, and an unknown TLS mode, saying why', async function () {
    const other = await tool('helm', ['template', 'netwarden', CHART_DIR, '--namespace', 'default']);
    expect(other.code).to.not.equal(0);
    expect(other.stderr).to.contain('install Netwarden into the namespace netwarden-system');
    const mode = await tool('helm', ['template', 'netwarden', CHART_DIR, '--namespace', 'netwarden-system', '--set', 'tls.mode=vault']);
    expect(mode.code).to.not.equal(0);
    expect(mode.stderr).to.contain('tls.mode must be self-managed or cert-manager, not "vault"');
  });

  it('renders the same from the packaged chart (helm package follows the symlinks into config/)', async function () {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'netwarden-chart-'));
    try {
      await mustTool('helm', ['package', CHART_DIR, '--destination', dir]);
      const { version } = YAML.parse(readFileSync(path.join(CHART_DIR, 'Chart.yaml'), 'utf8')) as { version: string };
      const archive = path.join(dir, `netwarden-${version}.tgz`);
      const sets = ['--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.prometheusRule.enabled=true'];
      const packaged = await mustTool('helm', ['template', 'netwarden', archive, '--namespace', 'netwarden-system', ...sets]);
      expectSameObjects(packaged, await helmTemplate({ 'metrics.serviceMonitor.enabled': true, 'metrics.prometheusRule.enabled': true }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('passes helm lint --strict in each mode', async function () {
    for (const sets of [[], ['--set', 'tls.mode=cert-manager'], ['--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.prometheusRule.enabled=true']]) {
      const out = await mustTool('helm', ['lint', '--strict', CHART_DIR, '--namespace', 'netwarden-system', ...sets]);
      expect(out, sets.join(' ')).to.match(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  it('has a README whose values table is what helm-docs generates from values.yaml now', async function () {
    // --dry-run prints the README instead of writing it.
    const generated = await mustTool('helm-docs', ['--dry-run', '--chart-search-root', CHART_DIR, '--log-level', 'warning']);
    const committed = readFileSync(path.join(CHART_DIR, 'README.md'), 'utf8');
    expect(generated.trim(), 'charts/netwarden/README.md is stale: run npm run gen:chart-docs').to.equal(committed.trim());
    // Every value is documented (helm-docs leaves a value without a "# --" comment blank).
    for (const row of committed.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| Key') && !l.startsWith('|-'))) {
      expect(row.split('|').at(-2)?.trim(), row).to.not.equal('');
    }
  });
});
