import type { EventList } from '../../src/plugin/ui/types.js';
import { age } from './api.js';
import { Card, ErrorBox, usePoll } from './common.js';

export function EventsPage(props: { namespace: string; pod: string }) {
  const { data, error } = usePoll<EventList>(`/api/events?namespace=${encodeURIComponent(props.namespace)}&pod=${encodeURIComponent(props.pod)}`, 5000);
  return (
    <div>
      <p><a href="#/drops">← Drops</a></p>
      <ErrorBox error={error ?? data?.error} />
      <Card title={`Events of pod ${props.namespace}/${props.pod}`} testId="pod-events">
        <table>
          <thead><tr><th>Last seen</th><th>Type</th><th>Reason</th><th>Count</th><th>From</th><th>Message</th></tr></thead>
          <tbody>
            {(data?.events ?? []).map((e, i) => (
              <tr key={i} class={e.type === 'Warning' ? 'warn' : ''}>
                <td title={e.lastSeen}>{age(e.lastSeen)}</td><td>{e.type}</td><td>{e.reason}</td><td>{e.count}</td><td>{e.source}</td><td class="message">{e.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {data && !data.events.length ? <p class="muted">No events.</p> : null}
      </Card>
    </div>
  );
}
