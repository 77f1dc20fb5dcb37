import type { AccessDecision, AuditOverview } from '../../src/plugin/ui/types.js';
import { age, formatBytes } from './api.js';
import { Card, ErrorBox, ForbiddenList, usePoll } from './common.js';

export function AuditPage(props: { access: AccessDecision | undefined; nodesAccess: AccessDecision | undefined }) {
  const { data, error } = usePoll<AuditOverview>('/api/auditforwarders', 3000);
  const forbidden = props.access !== undefined && !props.access.allowed;
  const decisions: Array<[string, AccessDecision]> = [];
  if (props.access) decisions.push(['Listing AuditForwarders', props.access]);
  if (props.nodesAccess) decisions.push(['Per-node reports', props.nodesAccess]);
  return (
    <div>
      <ForbiddenList decisions={decisions} />
      {forbidden ? null : <ErrorBox error={error ?? data?.error} />}
      {data && !data.forwarders.length ? <p class="muted">No AuditForwarders.</p> : null}
      {(data?.forwarders ?? []).map((f) => (
        <Card key={f.name} testId={`af-${f.name}`} title={<span>{f.name} <span class="muted">→ {f.sink}</span></span>}>
          <div class="stats">
            <div><span>nodes</span><b>{f.nodeCount}</b></div>
            <div class={f.unhealthyNodes ? 'bad' : ''}><span>unhealthy</span><b>{f.unhealthyNodes}</b></div>
            <div><span>shipped events</span><b>{f.shippedEvents}</b></div>
            <div><span>shipped</span><b>{formatBytes(f.shippedBytes)}</b></div>
            <div class={f.lagBytes ? 'warnc' : ''}><span>lag</span><b>{formatBytes(f.lagBytes)}</b></div>
            <div class={f.gaps ? 'bad' : ''}><span>gaps</span><b>{f.gaps}</b></div>
          </div>
          {f.nodesError && props.nodesAccess?.allowed !== false ? <div class="forbidden-list">Per-node reports are not shown: {f.nodesError}</div> : null}
          <table data-testid="af-nodes">
            <thead><tr><th>Node</th><th>Lag</th><th>Shipped events</th><th>Shipped</th><th>Gaps</th><th>Last shipped</th><th>Report</th><th>Last error</th></tr></thead>
            <tbody>
              {f.nodes.map((n) => (
                <tr key={n.node} data-node={n.node}>
                  <td>{n.node}</td><td>{formatBytes(n.lagBytes)}</td><td data-field="shippedEvents">{n.shippedEvents ?? 0}</td><td>{formatBytes(n.shippedBytes)}</td>
                  <td class={n.gaps ? 'bad' : ''} title={n.lastGap ?? ''}>{n.gaps ?? 0}</td><td>{age(n.lastOffloadTime)}</td>
                  <td class={n.stale ? 'bad' : ''}>{n.stale ? 'stale ' : ''}{age(n.receivedAt)} ago</td>
                  <td class="message bad" data-field="lastError">{n.lastError ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {f.problems.length ? (
            <details>
              <summary>{f.problems.length} problem(s)</summary>
              {f.problems.map((p) => <div key={p.node + p.time} class="problem">{p.time} {p.node}: {p.message}</div>)}
            </details>
          ) : null}
        </Card>
      ))}
    </div>
  );
}
