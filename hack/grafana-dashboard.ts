// config/grafana/netwarden-dashboard.json: the Grafana dashboard of the drop, capture and audit
// metrics, written by npm run gen:crds from the panel list below (ids and grid positions follow
// from the order, so adding a panel is one line). Every query reads the Prometheus data source
// chosen in the dashboard's `datasource` variable; a unit test checks that every metric and label
// the queries name is registered by the code (test/unit/grafana-dashboard.test.ts). The model is
// typed with Grafana's own dashboard types (@grafana/schema, dashboard schema v1), so tsc refuses a
// field Grafana does not know or a value of the wrong type.
import type { Dashboard, Panel, RowPanel, VariableModel } from '@grafana/schema';

interface PanelSpec {
  title: string;
  description: string;
  type: 'timeseries' | 'stat';
  unit: string;
  /** PromQL, with the legend of each series. */
  targets: Array<{ expr: string; legend: string }>;
  /** Grid columns of 24. */
  width: number;
}

interface RowSpec {
  title: string;
  panels: PanelSpec[];
}

const ts = (title: string, description: string, unit: string, targets: PanelSpec['targets'], width = 12): PanelSpec => ({ title, description, type: 'timeseries', unit, targets, width });
const stat = (title: string, description: string, unit: string, expr: string, width = 6): PanelSpec => ({ title, description, type: 'stat', unit, targets: [{ expr, legend: title }], width });

const DT = 'droptail=~"$droptail"';
const AF = 'forwarder=~"$forwarder"';

export const ROWS: RowSpec[] = [
  {
    title: 'Drops (DropTail)',
    panels: [
      stat('Drops/s', 'Packets the nodes dropped, as the controller counted them.', 'pps', `sum(rate(netwarden_packet_drops_total{${DT}}[$__rate_interval]))`),
      stat('Unhealthy sources', 'DropTail sources on all nodes that fail and are retried (netwarden_agent_droptail_source_healthy == 0).', 'none', `count(netwarden_agent_droptail_source_healthy{${DT}} == 0) or vector(0)`),
      stat('Drop Events suppressed/s', 'Drop Events not written because the event budget was spent; they are counted in the Pod\'s aggregated Event.', 'ops', 'sum(rate(netwarden_drop_events_suppressed_total[$__rate_interval]))'),
      stat('Drops shed by agents/s', 'Drops the agents discarded (controller unreachable, send queue full).', 'pps', 'sum(rate(netwarden_droptail_agent_shed_drops_total[$__rate_interval]))'),
      ts('Drops by namespace pair', 'Source and destination namespace of each drop; "node", "service:<ns>" or "external" for the rest.', 'pps', [
        { expr: `sum by (src_namespace, dst_namespace) (rate(netwarden_packet_drops_total{${DT}}[$__rate_interval]))`, legend: '{{src_namespace}} → {{dst_namespace}}' },
      ]),
      ts('Drops by node and protocol', 'Where the drops happen.', 'pps', [
        { expr: `sum by (node, protocol) (rate(netwarden_packet_drops_total{${DT}}[$__rate_interval]))`, legend: '{{node}} {{protocol}}' },
      ]),
      ts('Drop Events on Pods', 'Event writes (created, bumped, failed) and those suppressed by the budget.', 'ops', [
        { expr: 'sum by (result) (rate(netwarden_droptail_events_total[$__rate_interval]))', legend: '{{result}}' },
        { expr: 'sum by (reason) (rate(netwarden_drop_events_suppressed_total[$__rate_interval]))', legend: 'suppressed: {{reason}}' },
      ]),
      ts('From batch to Event', 'Time from a drop batch arriving at the controller to the Event write, and the drops still waiting.', 's', [
        { expr: 'histogram_quantile(0.99, sum by (le) (rate(netwarden_droptail_receive_to_event_seconds_bucket[$__rate_interval])))', legend: 'p99' },
        { expr: 'histogram_quantile(0.5, sum by (le) (rate(netwarden_droptail_receive_to_event_seconds_bucket[$__rate_interval])))', legend: 'p50' },
      ]),
      ts('Agent send queues', 'Aggregated drops waiting in each agent to be sent, and batches by result.', 'short', [
        { expr: `sum by (droptail) (netwarden_agent_droptail_queue_drops{${DT}})`, legend: 'queued: {{droptail}}' },
        { expr: `sum by (result) (rate(netwarden_agent_droptail_batches_total{${DT}}[$__rate_interval]))`, legend: 'batches/s: {{result}}' },
      ]),
      ts('Source gaps', 'Lines a file source skipped: a rotated log deleted before it was read to its end.', 'short', [
        { expr: `sum by (droptail, source) (increase(netwarden_agent_droptail_source_gaps_total{${DT}}[$__rate_interval]))`, legend: '{{droptail}} {{source}}' },
      ]),
    ],
  },
  {
    title: 'Captures (PacketCapture)',
    panels: [
      stat('Pods being captured', 'Pod interfaces captured on all nodes.', 'none', 'sum(netwarden_capture_active_pods)'),
      stat('Capture errors (range)', 'Pod captures that could not start or stopped on an error, in the dashboard\'s time range.', 'none', 'sum(increase(netwarden_capture_errors_total[$__range]))'),
      stat('Downloads (range)', 'Capture zips downloaded in the time range.', 'none', 'sum(increase(netwarden_capture_downloads_total[$__range]))'),
      stat('Downloaded (range)', 'Bytes of capture zips sent in the time range.', 'bytes', 'sum(increase(netwarden_capture_download_bytes_total[$__range]))'),
      ts('Capture write rate', 'Bytes of pcap written per PacketCapture.', 'Bps', [
        { expr: 'sum by (namespace, name) (rate(netwarden_capture_bytes_total[$__rate_interval]))', legend: '{{namespace}}/{{name}}' },
      ]),
      ts('Captured packets', 'Packets written per PacketCapture.', 'pps', [
        { expr: 'sum by (namespace, name) (rate(netwarden_capture_packets_total[$__rate_interval]))', legend: '{{namespace}}/{{name}}' },
      ]),
      ts('Capture errors and downloads', 'Errors by reason; downloads by result (ok, partial, failed).', 'short', [
        { expr: 'sum by (reason) (increase(netwarden_capture_errors_total[$__rate_interval]))', legend: 'error: {{reason}}' },
        { expr: 'sum by (result) (increase(netwarden_capture_downloads_total[$__rate_interval]))', legend: 'download: {{result}}' },
      ], 24),
    ],
  },
  {
    title: 'Audit log (AuditForwarder)',
    panels: [
      stat('Max lag', 'The most any node has written to its audit log and not shipped yet.', 'bytes', `max(netwarden_audit_lag_bytes{${AF}})`),
      stat('Gaps (range)', 'Times audit log lines were lost: a file deleted before it was read to its end.', 'none', `sum(increase(netwarden_audit_gaps_total{${AF}}[$__range]))`),
      stat('Shipped events/s', 'Events the sinks acknowledged.', 'ops', `sum(rate(netwarden_audit_shipped_events_total{${AF}}[$__rate_interval]))`),
      stat('Failed batches/s', 'Batch deliveries the sink refused or did not answer; retried.', 'ops', `sum(rate(netwarden_audit_batches_total{${AF}, result="error"}[$__rate_interval]))`),
      ts('Lag per node', 'Bytes written to the audit log but not shipped, per agent.', 'bytes', [
        { expr: `netwarden_audit_lag_bytes{${AF}}`, legend: '{{forwarder}} {{instance}}' },
      ]),
      ts('Read and shipped', 'Bytes read from the audit logs and acknowledged by the sinks.', 'Bps', [
        { expr: `sum by (forwarder) (rate(netwarden_audit_read_bytes_total{${AF}}[$__rate_interval]))`, legend: 'read: {{forwarder}}' },
        { expr: `sum by (forwarder) (rate(netwarden_audit_shipped_bytes_total{${AF}}[$__rate_interval]))`, legend: 'shipped: {{forwarder}}' },
      ]),
      ts('Batches and retries', 'Delivery attempts by result, and retries after a sink error.', 'ops', [
        { expr: `sum by (forwarder, result) (rate(netwarden_audit_batches_total{${AF}}[$__rate_interval]))`, legend: '{{forwarder}} {{result}}' },
        { expr: `sum by (forwarder) (rate(netwarden_audit_retries_total{${AF}}[$__rate_interval]))`, legend: '{{forwarder}} retries' },
      ]),
      ts('Filtered, malformed, skipped', 'Events the filter rules dropped, lines quarantined as malformed, bytes lost in gaps.', 'short', [
        { expr: `sum by (forwarder) (rate(netwarden_audit_filtered_events_total{${AF}}[$__rate_interval]))`, legend: 'filtered/s: {{forwarder}}' },
        { expr: `sum by (forwarder, reason) (rate(netwarden_audit_malformed_lines_total{${AF}}[$__rate_interval]))`, legend: 'malformed/s: {{forwarder}} {{reason}}' },
        { expr: `sum by (forwarder) (increase(netwarden_audit_skipped_bytes_total{${AF}}[$__rate_interval]))`, legend: 'skipped bytes: {{forwarder}}' },
      ]),
    ],
  },
];

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };

function variable(name: string, label: string, query: string): VariableModel {
  return {
    name,
    label,
    type: 'query',
    datasource: DATASOURCE,
    query: { query, refId: `${name}-variable` },
    refresh: 2,
    includeAll: true,
    multi: true,
    allValue: '.*',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    sort: 1,
  };
}

/** The dashboard model (Grafana 10 and later; schemaVersion 39). */
export function renderDashboard(): Dashboard {
  const panels: Array<Panel | RowPanel> = [];
  let id = 1;
  let y = 0;
  for (const row of ROWS) {
    panels.push({ id: id++, type: 'row', title: row.title, collapsed: false, gridPos: { x: 0, y, w: 24, h: 1 }, panels: [] });
    y += 1;
    let x = 0;
    let rowHeight = 0;
    for (const p of row.panels) {
      const h = p.type === 'stat' ? 4 : 8;
      if (x + p.width > 24) {
        x = 0;
        y += rowHeight;
        rowHeight = 0;
      }
      panels.push({
        id: id++,
        type: p.type,
        title: p.title,
        description: p.description,
        datasource: DATASOURCE,
        gridPos: { x, y, w: p.width, h },
        fieldConfig: { defaults: { unit: p.unit, ...(p.type === 'timeseries' ? { custom: { drawStyle: 'line', fillOpacity: 10, showPoints: 'never' } } : {}) }, overrides: [] },
        options: p.type === 'stat'
          ? { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'area', textMode: 'auto' }
          : { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } },
        targets: p.targets.map((t, i) => ({ refId: String.fromCharCode(65 + i), datasource: DATASOURCE, expr: t.expr, legendFormat: t.legend, range: true, instant: false })),
      });
      x += p.width;
      rowHeight = Math.max(rowHeight, h);
    }
    y += rowHeight;
  }
  return {
    title: 'Netwarden',
    uid: 'netwarden',
    description: 'Packet drops, packet captures and the audit log forwarding of Netwarden (docs/integrations.md).',
    tags: ['netwarden', 'kubernetes', 'network'],
    editable: true,
    graphTooltip: 1, // shared crosshair
    schemaVersion: 39,
    version: 1,
    time: { from: 'now-6h', to: 'now' },
    refresh: '1m',
    timezone: 'browser',
    links: [],
    annotations: { list: [] },
    templating: {
      list: [
        { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', refresh: 1, hide: 0 },
        variable('droptail', 'DropTail', 'label_values(netwarden_agent_droptail_source_healthy, droptail)'),
        variable('forwarder', 'AuditForwarder', 'label_values(netwarden_audit_lag_bytes, forwarder)'),
      ],
    },
    panels,
  };
}

export const DASHBOARD_PATH = 'config/grafana/netwarden-dashboard.json';

export function renderDashboardJson(): string {
  return `${JSON.stringify(renderDashboard(), null, 2)}\n`;
}
