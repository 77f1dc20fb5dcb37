// config/components/monitoring: every metric an alert names is one the code registers (with the
// labels the alert reads), every job an alert selects is one a ServiceMonitor scrapes, and the
// rules pass `promtool check rules` and their unit tests (`promtool test rules`) when promtool is
// built (NETWARDEN_WITH_PROMTOOL=1: hack/tools/build.sh --with-promtool).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import type { Registry } from 'prom-client';
import { parseObjects } from '../env/chart.js';
import { REPO_ROOT } from '../env/netwarden.js';

const MONITORING = path.join(REPO_ROOT, 'config', 'components', 'monitoring');
/** Labels Prometheus (prometheus-operator) puts on every series of a target, and the agents' node. */
const TARGET_LABELS = new Set(['job', 'instance', 'namespace', 'pod', 'service', 'container', 'endpoint', 'node']);

interface Rule {
  alert?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleGroup {
  name: string;
  rules: Rule[];
}

function rules(): RuleGroup[] {
  const [rule] = parseObjects(readFileSync(path.join(MONITORING, 'prometheusrule.yaml'), 'utf8'));
  return (rule as unknown as { spec: { groups: RuleGroup[] } }).spec.groups;
}

function alerts(): Rule[] {
  return rules().flatMap((g) => g.rules);
}

/** Every src/**\/metrics.ts (and the HTTP limits' counter), imported: they register on the process registry. */
async function registeredMetrics(): Promise<Map<string, string[]>> {
  const files: string[] = [path.join(REPO_ROOT, 'src', 'runtime', 'limits.ts')];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(dir, e.name));
      else if (e.name === 'metrics.ts') files.push(path.join(dir, e.name));
    }
  };
  walk(path.join(REPO_ROOT, 'src'));
  for (const f of files) await import(pathToFileURL(f).href);
  const { registry } = (await import('../../src/runtime/metrics.js')) as { registry: Registry };
  const names = new Map<string, string[]>();
  for (const m of registry.getMetricsAsArray()) names.set(m.name, (m as unknown as { labelNames?: string[] }).labelNames ?? []);
  return names;
}

/** Metric names in a PromQL expression (histogram series by their metric's name). */
function metricNames(expr: string): string[] {
  return [...new Set((expr.match(/\bnetwarden_[a-z0-9_]+/g) ?? []).map((n) => n.replace(/_(bucket|sum|count)$/, '')))];
}

describe('monitoring component: ServiceMonitors and PrometheusRule', function () {
  it('has an alert for each thing a user is told to watch', function () {
    const names = alerts().map((a) => a.alert);
    for (const name of ['NetwardenAgentDown', 'NetwardenAuditLagGrowing', 'NetwardenAuditGap', 'NetwardenCaptureNamespaceQuotaHit', 'NetwardenCaptureNodeQuotaHit', 'NetwardenDropEventsSuppressed']) {
      expect(names).to.include(name);
    }
    for (const a of alerts()) {
      expect(a.labels?.severity, a.alert).to.be.oneOf(['info', 'warning', 'critical']);
      expect(a.annotations?.summary, a.alert).to.be.a('string');
      expect(a.annotations?.description, a.alert).to.be.a('string');
    }
  });

  it('names only metrics the code registers, and only labels they (or the scrape) carry', async function () {
    this.timeout(30_000);
    const registered = await registeredMetrics();
    let checked = 0;
    for (const a of alerts()) {
      const names = metricNames(a.expr);
      const labels = new Set([...TARGET_LABELS]);
      for (const name of names) {
        expect(registered.has(name), `${a.alert}: ${name} is registered by no src/**/metrics.ts`).to.equal(true);
        for (const l of registered.get(name) ?? []) labels.add(l);
        checked++;
      }
      const used = [...(a.expr.match(/\bby \(([^)]*)\)/g) ?? []).flatMap((by) => by.slice(4, -1).split(',').map((s) => s.trim())), ...[...Object.values(a.annotations ?? {}).join(' ').matchAll(/\$labels\.([a-z_]+)/g)].map((m) => m[1]!)];
      for (const l of used) expect(labels.has(l), `${a.alert}: label ${l} is on none of ${names.join(', ') || 'the scrape'}`).to.equal(true);
    }
    expect(checked).to.be.at.least(5);
    // A name the code does not register is caught (the check above is no tautology).
    expect(registered.has('netwarden_audit_lag_seconds')).to.equal(false);
  });

  it('selects only jobs that a ServiceMonitor scrapes', function () {
    const objects = parseObjects(readFileSync(path.join(MONITORING, 'servicemonitor.yaml'), 'utf8'));
    // The agents' Service is the component's; the controller's is config/controller/deployment.yaml's.
    const controllerObjects = parseObjects(readFileSync(path.join(REPO_ROOT, 'config', 'controller', 'deployment.yaml'), 'utf8'));
    const services = [...objects, ...controllerObjects].filter((o) => o.kind === 'Service');
    const jobs = new Set<string>();
    for (const sm of objects.filter((o) => o.kind === 'ServiceMonitor')) {
      const spec = sm as unknown as { spec: { jobLabel: string; selector: { matchLabels: Record<string, string> } } };
      const selected = services.filter((s) => Object.entries(spec.spec.selector.matchLabels).every(([k, v]) => s.metadata.labels?.[k] === v));
      expect(selected, sm.metadata.name).to.have.length(1);
      for (const s of selected) jobs.add(s.metadata.labels?.[spec.spec.jobLabel] ?? '');
    }
    for (const a of alerts()) {
      for (const [, job] of a.expr.matchAll(/job="([^"]+)"/g)) expect(jobs.has(job!), `${a.alert}: job ${job}`).to.equal(true);
    }
    expect([...jobs].sort()).to.deep.equal(['netwarden-agent', 'netwarden-controller']);
  });

  describe('with promtool', function () {
    // Built only on request (NETWARDEN_WITH_PROMTOOL=1 for the bootstrap): 6 CPU-minutes to build.
    const toolsBin = process.env.NETWARDEN_TOOLS_BIN;
    const promtool = process.env.NETWARDEN_PROMTOOL || (toolsBin ? path.join(toolsBin, 'promtool') : '');
    let dir = '';
    before(function () {
      if (!promtool || !existsSync(promtool)) {
        console.log('    (no promtool: NETWARDEN_WITH_PROMTOOL=1 npm test builds it, or set NETWARDEN_PROMTOOL)');
        this.skip();
      }
      dir = mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'netwarden-rules-'));
      writeFileSync(path.join(dir, 'netwarden.rules.yaml'), JSON.stringify({ groups: rules() }));
    });
    after(() => dir && rmSync(dir, { recursive: true, force: true }));

    it('passes promtool check rules', async function () {
      const { stdout } = await promisify(execFile)(promtool, ['check', 'rules', path.join(dir, 'netwarden.rules.yaml')]);
      expect(stdout).to.match(/SUCCESS: \d+ rules found/);
    });

    it('fires each alert on the series that should fire it, and not before (promtool test rules)', async function () {
      const tests = readFileSync(path.join(REPO_ROOT, 'test', 'fixtures', 'prometheus', 'netwarden.rules.test.yaml'), 'utf8');
      writeFileSync(path.join(dir, 'netwarden.rules.test.yaml'), tests);
      const { stdout } = await promisify(execFile)(promtool, ['test', 'rules', path.join(dir, 'netwarden.rules.test.yaml')]);
      expect(stdout).to.contain('SUCCESS');
    });
  });
});
