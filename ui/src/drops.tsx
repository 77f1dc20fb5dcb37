// Drops: a namespace -> namespace graph of the DropTails' recent drops, and the drops themselves
// with links to the Events of the pods involved.
import type { AccessDecision, DropEndpointView, DropsOverview, DropView } from '../../src/plugin/ui/types.js';
import { age } from './api.js';
import { Card, ErrorBox, ForbiddenList, usePoll } from './common.js';

/** The graph's node for one end: a pod's or service's namespace, else what it is (External, Node). */
export function groupOf(e: DropEndpointView | undefined): string {
  if (!e) return 'unknown';
  if (e.namespace) return e.namespace;
  return e.kind && e.kind !== 'Unknown' ? e.kind.toLowerCase() : 'unknown';
}

interface Edge {
  from: string;
  to: string;
  count: number;
  protocols: Set<string>;
}

export function edgesOf(drops: DropView[]): Edge[] {
  const map = new Map<string, Edge>();
  for (const d of drops) {
    const from = groupOf(d.src);
    const to = groupOf(d.dst);
    const key = `${from}\u0000${to}`;
    const e = map.get(key) ?? { from, to, count: 0, protocols: new Set<string>() };
    e.count += d.count;
    if (d.protocol) e.protocols.add(`${d.protocol}${d.dstPort ? `/${d.dstPort}` : ''}`);
    map.set(key, e);
  }
  return [...map.values()].sort((a, b) => b.count - a.count);
}

function Graph(props: { drops: DropView[] }) {
  const edges = edgesOf(props.drops);
  if (!edges.length) return <p class="muted">No recent drops.</p>;
  const sources = [...new Set(edges.map((e) => e.from))].sort();
  const targets = [...new Set(edges.map((e) => e.to))].sort();
  const rowH = 64;
  const height = Math.max(sources.length, targets.length) * rowH + 40;
  const width = 820;
  const leftX = 170;
  const rightX = width - 170;
  const y = (list: string[], name: string): number => {
    const offset = (height - list.length * rowH) / 2;
    return offset + list.indexOf(name) * rowH + rowH / 2;
  };
  const max = Math.max(...edges.map((e) => e.count));
  // A point of the cubic curve from (x1,y1) to (x2,y2), for a label near its source end.
  const at = (t: number, x1: number, y1: number, x2: number, y2: number): [number, number] => {
    const mx = (x1 + x2) / 2;
    const u = 1 - t;
    return [u * u * u * x1 + 3 * u * u * t * mx + 3 * u * t * t * mx + t * t * t * x2, u * u * u * y1 + 3 * u * u * t * y1 + 3 * u * t * t * y2 + t * t * t * y2];
  };
  return (
    <svg class="graph" viewBox={`0 0 ${width} ${height}`} width={width} height={height} role="img" aria-label="namespace to namespace drops" data-testid="drop-graph">
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="12" markerHeight="12" orient="auto-start-reverse">
          <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" />
        </marker>
      </defs>
      <text x={leftX} y={18} class="axis" text-anchor="middle">from</text>
      <text x={rightX} y={18} class="axis" text-anchor="middle">to</text>
      {edges.map((e) => {
        const x1 = leftX + 75;
        const x2 = rightX - 77;
        const y1 = y(sources, e.from);
        const y2 = y(targets, e.to);
        const w = 1.5 + 6 * Math.sqrt(e.count / max);
        const mx = (x1 + x2) / 2;
        const [lx, ly] = at(0.2, x1, y1, x2, y2);
        return (
          <g key={`${e.from}->${e.to}`} class="edge" data-testid="drop-edge" data-from={e.from} data-to={e.to} data-count={e.count}>
            <path d={`M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`} stroke-width={w} marker-end="url(#arrow)">
              <title>{`${e.from} → ${e.to}: ${e.count} drop(s) ${[...e.protocols].join(', ')}`}</title>
            </path>
            <text x={lx} y={ly - 7} text-anchor="start" class="edge-label">
              {e.count} × {[...e.protocols].slice(0, 2).join(', ')}
            </text>
          </g>
        );
      })}
      {sources.map((s) => (
        <g key={`s-${s}`} class="ns">
          <rect x={leftX - 75} y={y(sources, s) - 16} width={150} height={32} rx={8} />
          <text x={leftX} y={y(sources, s) + 5} text-anchor="middle">{s}</text>
        </g>
      ))}
      {targets.map((t) => (
        <g key={`t-${t}`} class="ns">
          <rect x={rightX - 75} y={y(targets, t) - 16} width={150} height={32} rx={8} />
          <text x={rightX} y={y(targets, t) + 5} text-anchor="middle">{t}</text>
        </g>
      ))}
    </svg>
  );
}

function Endpoint(props: { e: DropEndpointView | undefined; port: number | undefined }) {
  const e = props.e;
  if (!e) return <span class="muted">—</span>;
  const port = props.port ? `:${props.port}` : '';
  if (e.kind === 'Pod' && e.namespace && e.name) {
    return (
      <span>
        <a href={`#/events/${encodeURIComponent(e.namespace)}/${encodeURIComponent(e.name)}`} data-testid="pod-events-link" title={`Events of pod ${e.namespace}/${e.name}`}>
          {e.namespace}/{e.name}
        </a>
        <span class="muted"> {e.ip}{port}</span>
      </span>
    );
  }
  return (
    <span>
      {e.name ? `${e.kind ?? ''} ${e.namespace ? `${e.namespace}/` : ''}${e.name}` : (e.kind ?? '')}
      <span class="muted"> {e.ip}{port}</span>
    </span>
  );
}

export function DropsPage(props: { access: AccessDecision | undefined }) {
  const { data, error } = usePoll<DropsOverview>('/api/drops', 5000);
  const forbidden = props.access !== undefined && !props.access.allowed;
  return (
    <div>
      {props.access ? <ForbiddenList decisions={[['Listing DropTails', props.access]]} /> : null}
      {forbidden ? null : <ErrorBox error={error ?? data?.error} />}
      <Card title="Namespace → namespace drops" testId="drops-graph-card">
        {data ? <Graph drops={data.drops} /> : <p class="muted">Loading…</p>}
      </Card>
      <Card title="DropTails">
        <table data-testid="droptails">
          <thead>
            <tr><th>Name</th><th>Nodes</th><th>Unhealthy</th><th>Drops counted</th><th>Drops read</th><th>Gaps</th><th>Last drop</th><th>Problems</th></tr>
          </thead>
          <tbody>
            {(data?.dropTails ?? []).map((d) => (
              <tr key={d.name}>
                <td>{d.name}</td><td>{d.nodeCount}</td><td class={d.unhealthyNodes ? 'bad' : ''}>{d.unhealthyNodes}</td><td>{d.totalDrops}</td><td>{d.dropsSeen}</td><td>{d.gaps}</td>
                <td>{age(d.lastDropTime)}</td>
                <td>{d.problems.map((p) => <div key={p.node + p.time} class="problem">{p.node}: {p.message}</div>)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Card>
      <Card title="Recent drops">
        <table data-testid="recent-drops">
          <thead>
            <tr><th>Age</th><th>Node</th><th>Source</th><th>Destination</th><th>Proto</th><th>Dir</th><th>Count</th><th>Rule prefix</th><th>DropTail</th></tr>
          </thead>
          <tbody>
            {(data?.drops ?? []).slice(0, 100).map((d, i) => (
              <tr key={i}>
                <td title={d.time}>{age(d.time)}</td><td>{d.node}</td>
                <td><Endpoint e={d.src} port={d.srcPort} /></td><td><Endpoint e={d.dst} port={d.dstPort} /></td>
                <td>{d.protocol ?? ''}</td><td>{d.direction ?? ''}</td><td>{d.count}</td><td><code>{d.prefix ?? ''}</code></td><td>{d.dropTail}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Card>
    </div>
  );
}
