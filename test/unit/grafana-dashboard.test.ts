// config/grafana/netwarden-dashboard.json: what npm run gen:crds renders, a dashboard model Grafana
// imports (schemaVersion, unique ids, a grid without overlaps, every query on the `datasource`
// variable), and every metric and label its PromQL names is one the code registers: the modules
// that create metrics are imported and their prom-client registry is read.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DASHBOARD_PATH, renderDashboardJson } from '../../hack/grafana-dashboard.js';
import type { Registry } from 'prom-client';

const repo = path.resolve(import.meta.dirname, '../..');

interface Target {
  refId: string;
  expr: string;
  legendFormat: string;
  datasource: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: string | { query: string }; datasource?: { uid: string } }> };
}

const dashboard = JSON.parse(readFileSync(path.join(repo, DASHBOARD_PATH), 'utf8')) as Dashboard;
const queryPanels = dashboard.panels.filter((p) => p.type !== 'row');
const exprs = queryPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })));

/** name -> type and label names, for every metric the code registers. */
const registered = new Map<string, { type: string; labels: string[] }>();
/** Labels Prometheus adds when it scrapes, which a query may use though the code does not set them. */
const SCRAPE_LABELS = ['instance', 'job'];

function metricOf(name: string): { type: string; labels: string[] } | undefined {
  const direct = registered.get(name);
  if (direct) return direct;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  const base = m ? registered.get(m[1]!) : undefined;
  if (!base || (base.type !== 'histogram' && base.type !== 'summary')) return undefined;
  return { type: 'counter', labels: m![2] === 'bucket' ? [...base.labels, 'le'] : base.labels };
}

describe('Grafana dashboard', () => {
  before(async function () {
    this.timeout(20_000);
    // Every module that creates a metric: they all register into src/runtime/metrics.ts's registry.
    const files = execFileSync('grep', ['-rlE', 'new (Counter|Gauge|Histogram|Summary)(<[^>]*>)?\\(', 'src'], { cwd: repo, encoding: 'utf8' }).trim().split('\n');
    for (const f of files) {
      const mod = (await import(pathToFileURL(path.join(repo, f)).href)) as Record<string, unknown>;
      // Metrics created on first use (sharedDropMetrics()) are created now.
      for (const [name, value] of Object.entries(mod)) if (/^shared\w*Metrics$/.test(name) && typeof value === 'function') (value as () => unknown)();
    }
    // The registry through the same loader path as the modules above (a static import can be a
    // second instance of the module under mocha's loader, with only its own metrics).
    const { registry } = (await import(pathToFileURL(path.join(repo, 'src/runtime/metrics.ts')).href)) as { registry: Registry };
    const types = new Map((await registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));
    for (const m of registry.getMetricsAsArray()) {
      // prom-client keeps the labelNames a metric was declared with on the object (not in its types).
      const metric = m as unknown as { name: string; labelNames?: string[] };
      registered.set(metric.name, { type: types.get(metric.name) ?? 'unknown', labels: [...(metric.labelNames ?? [])] });
    }
    const declared = execFileSync('grep', ['-rhoE', "name: 'netwarden_[a-z0-9_]+'", ...files], { cwd: repo, encoding: 'utf8' }).trim().split('\n');
    expect([...registered.keys()].filter((n) => n.startsWith('netwarden_')).length, 'every declared netwarden_ metric found in the registry').to.equal(new Set(declared).size);
  });

  it(`${DASHBOARD_PATH} is what npm run gen:crds renders`, () => {
    expect(readFileSync(path.join(repo, DASHBOARD_PATH), 'utf8'), 'run npm run gen:crds').to.equal(renderDashboardJson());
  });

  it('is a dashboard model Grafana imports: uid, title, schemaVersion, unique panel ids, a grid without overlaps', () => {
    expect(dashboard.uid).to.match(/^[a-zA-Z0-9_-]{1,40}$/);
    expect(dashboard.title).to.be.a('string').and.not.empty;
    expect(dashboard.schemaVersion).to.be.a('number').within(36, 41);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size, 'unique ids').to.equal(ids.length);
    const cells = new Map<string, string>();
    for (const p of dashboard.panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x >= 0 && w > 0 && x + w <= 24 && h > 0, `${p.title} fits the 24 columns`).to.equal(true);
      for (let cx = x; cx < x + w; cx++) {
        for (let cy = y; cy < y + h; cy++) {
          const key = `${cx},${cy}`;
          expect(cells.get(key), `${p.title} overlaps ${cells.get(key)}`).to.equal(undefined);
          cells.set(key, p.title);
        }
      }
    }
    expect(queryPanels.every((p) => ['timeseries', 'stat'].includes(p.type))).to.equal(true);
  });

  it('queries the Prometheus data source of the `datasource` variable in every panel and target', () => {
    const ds = dashboard.templating.list.find((v) => v.name === 'datasource');
    expect(ds).to.deep.include({ type: 'datasource', query: 'prometheus' });
    for (const p of queryPanels) {
      expect(p.datasource, p.title).to.deep.equal({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets, p.title).to.not.be.empty;
      for (const t of p.targets!) expect(t.datasource, `${p.title} ${t.refId}`).to.deep.equal({ type: 'prometheus', uid: '${datasource}' });
    }
    for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) expect(v.datasource?.uid, v.name).to.equal('${datasource}');
  });

  it('shows the drop, capture and audit metrics', () => {
    const all = exprs.map((e) => e.expr).join('\n');
    for (const m of ['netwarden_packet_drops_total', 'netwarden_drop_events_suppressed_total', 'netwarden_agent_droptail_source_healthy', 'netwarden_capture_bytes_total', 'netwarden_capture_active_pods', 'netwarden_capture_downloads_total', 'netwarden_audit_lag_bytes', 'netwarden_audit_gaps_total', 'netwarden_audit_shipped_events_total']) {
      expect(all).to.contain(m);
    }
  });

  it('names only metrics the code registers, with labels they have', () => {
    const problems: string[] = [];
    const variableQueries = dashboard.templating.list.filter((v) => v.type === 'query').map((v) => ({ panel: `variable ${v.name}`, expr: typeof v.query === 'string' ? v.query : v.query.query, legendFormat: '' }));
    for (const { panel, expr, legendFormat } of [...exprs, ...variableQueries]) {
      const names = [...new Set(expr.match(/\bnetwarden_[a-z0-9_]+/g) ?? [])];
      if (names.length === 0) problems.push(`${panel}: no netwarden metric in ${expr}`);
      const labelsOfExpr = new Set<string>();
      for (const name of names) {
        const metric = metricOf(name);
        if (!metric) problems.push(`${panel}: ${name} is not registered by the code`);
        else metric.labels.forEach((l) => labelsOfExpr.add(l));
      }
      for (const [, name, matchers] of expr.matchAll(/\b(netwarden_[a-z0-9_]+)\{([^}]*)\}/g)) {
        for (const [, label] of matchers!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) {
          if (!metricOf(name!)?.labels.includes(label!)) problems.push(`${panel}: ${name} has no label ${label}`);
        }
      }
      const grouped = [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].map((m) => m[1]!.split(',').map((l) => l.trim()).filter(Boolean));
      for (const label of grouped.flat()) if (!labelsOfExpr.has(label)) problems.push(`${panel}: by (${label}) is no label of ${names.join(', ')}`);
      for (const [, label] of expr.matchAll(/label_values\([a-z0-9_]+,\s*([a-zA-Z_]+)\)/g)) if (!labelsOfExpr.has(label!)) problems.push(`${panel}: label_values of a missing label ${label}`);
      // A legend can only show labels the result keeps: the outer by (...), else the metric's and the scrape's.
      const kept = grouped.length > 0 ? new Set(grouped[0]) : new Set([...labelsOfExpr, ...SCRAPE_LABELS]);
      for (const [, label] of legendFormat.matchAll(/\{\{\s*([a-zA-Z_]+)\s*\}\}/g)) if (!kept.has(label!)) problems.push(`${panel}: legend {{${label}}} is not in the result of ${expr}`);
      for (const [, v] of expr.matchAll(/\$(\w+)/g)) {
        if (!v!.startsWith('__') && !dashboard.templating.list.some((x) => x.name === v)) problems.push(`${panel}: $${v} is no dashboard variable`);
      }
    }
    expect(problems).to.deep.equal([]);
  });

  it('the check finds a metric the code does not register, and a label a metric lacks', () => {
    expect(metricOf('netwarden_packet_drop_total')).to.equal(undefined);
    expect(metricOf('netwarden_packet_drops_total')?.labels).to.not.include('pod');
    expect(metricOf('netwarden_droptail_receive_to_event_seconds_bucket')?.labels).to.include('le');
  });
});
