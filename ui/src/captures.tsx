// Captures: the PacketCaptures of a namespace, a form that writes the YAML a user would apply,
// and stop / delete / download / summary, each disabled with its reason when RBAC forbids it.
import { useState } from 'preact/hooks';
import { stringify } from 'yaml';
import type { CaptureList, CaptureSummary, CaptureView } from '../../src/plugin/ui/types.js';
import { age, download, formatBytes, getJson, send, type Progress } from './api.js';
import { ActionButton, Card, ErrorBox, ForbiddenList, usePoll } from './common.js';
import { captureYaml, DEFAULT_FORM, type CaptureForm } from './captureyaml.js';

function CreateForm(props: { namespace: string; list: CaptureList | undefined; onCreated: () => void }) {
  const [form, setForm] = useState<CaptureForm>(DEFAULT_FORM);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const yaml = captureYaml(props.namespace, form);
  const field = (key: keyof CaptureForm) => ({
    value: form[key],
    name: key,
    onInput: (e: Event) => setForm({ ...form, [key]: (e.target as HTMLInputElement).value }),
  });
  const create = async (): Promise<void> => {
    setBusy(true);
    setError(undefined);
    setMessage(undefined);
    try {
      const created = await send<CaptureView>('POST', `/api/captures?namespace=${encodeURIComponent(props.namespace)}`, yaml);
      setMessage(`packetcapture ${created.namespace}/${created.name} created`);
      props.onCreated();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Card title={`New PacketCapture in ${props.namespace}`} testId="create-card">
      <div class="create">
        <form class="form" onSubmit={(e) => { e.preventDefault(); void create(); }}>
          <label>Name <input {...field('name')} placeholder="pc-web-dns" required pattern="[a-z0-9]([-a-z0-9]*[a-z0-9])?" /></label>
          <label>Selector <input {...field('selector')} placeholder='app == "web"' /></label>
          <label>Protocol
            <select {...field('protocol')} onChange={(e) => setForm({ ...form, protocol: (e.target as HTMLSelectElement).value })}>
              <option value="">any</option><option>TCP</option><option>UDP</option><option>ICMP</option><option>SCTP</option>
            </select>
          </label>
          <label>Ports <input {...field('ports')} placeholder="53, 8000:8080" /></label>
          <label>Direction
            <select {...field('direction')} onChange={(e) => setForm({ ...form, direction: (e.target as HTMLSelectElement).value })}>
              <option>both</option><option>ingress</option><option>egress</option>
            </select>
          </label>
          <label>Duration <input {...field('duration')} placeholder="15m" /></label>
          <label>Max MiB per pod <input {...field('maxMiBPerPod')} inputMode="numeric" /></label>
          <label>Format
            <select {...field('format')} onChange={(e) => setForm({ ...form, format: (e.target as HTMLSelectElement).value })}>
              <option value="pcap">pcap</option><option value="pcapng">pcapng (pod names per packet)</option>
            </select>
          </label>
          <label>Delete files after (s) <input {...field('ttlSeconds')} inputMode="numeric" placeholder="keep" /></label>
          <div>
            <ActionButton access={props.list?.access.create} label={busy ? 'Creating…' : 'Create'} busy={busy || !form.name} onClick={() => void create()} testId="create-button" />
          </div>
          {message ? <div class="ok" data-testid="create-message">{message}</div> : null}
          <ErrorBox error={error} />
        </form>
        <div class="yaml">
          <div class="muted">The same as <code>kubectl apply -f -</code> with:</div>
          <pre data-testid="create-yaml">{yaml}</pre>
        </div>
      </div>
    </Card>
  );
}

function Summary(props: { summary: CaptureSummary; onClose: () => void }) {
  const s = props.summary;
  return (
    <Card title={<span>Packets of {s.namespace}/{s.name} <button type="button" class="link" onClick={props.onClose}>close</button></span>} testId="summary">
      {s.missingNodes.length ? <div class="error">Nodes not reached (their files are missing): {s.missingNodes.join(', ')}</div> : null}
      {!s.files.length ? <p class="muted">No pcap files yet.</p> : null}
      {s.files.map((f) => (
        <div key={f.entry} class="summary-file" data-pod={f.pod}>
          <h3>
            pod <b data-testid="summary-pod">{f.pod}</b> on node {f.node} <span class="muted">({f.interface}, {f.entry}, {f.packets} packet(s))</span>
          </h3>
          <pre>{f.lines.join('\n')}{f.truncated ? `\n… ${f.packets - f.lines.length} more` : ''}</pre>
        </div>
      ))}
    </Card>
  );
}

function Row(props: { c: CaptureView; list: CaptureList; onChange: () => void; onSummary: (s: CaptureSummary) => void }) {
  const { c, list } = props;
  const [busy, setBusy] = useState<string | undefined>(undefined);
  const [progress, setProgress] = useState<Progress | undefined>(undefined);
  const [note, setNote] = useState<string | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const base = `/api/captures/${encodeURIComponent(c.namespace)}/${encodeURIComponent(c.name)}`;
  const act = async (what: string, fn: () => Promise<string>): Promise<void> => {
    setBusy(what);
    setError(undefined);
    try {
      setNote(await fn());
      props.onChange();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(undefined);
    }
  };
  const noFiles = c.fileCount === 0 ? 'no files yet' : undefined;
  const pct = progress?.expected ? Math.min(100, Math.floor((progress.bytes / progress.expected) * 100)) : undefined;
  return (
    <tr data-testid="capture-row" data-name={c.name}>
      <td><b>{c.name}</b>{c.message ? <div class="muted small">{c.message}</div> : null}</td>
      <td><span class={`phase phase-${c.phase}`} data-testid="capture-phase">{c.phase}</span></td>
      <td title={c.pods.map((p) => `${p.pod} ${p.ip ?? ''} ${p.node ?? ''}`).join('\n')}>
        {c.podCount} <span class="muted small">{c.pods.map((p) => p.pod).slice(0, 3).join(', ')}</span>
      </td>
      <td>{c.files.map((f) => <div key={f.node} class="small">{f.node}: {f.state ?? '?'} ({f.packets ?? 0} pkts)</div>)}</td>
      <td>{c.fileCount}</td>
      <td>{formatBytes(c.totalBytes)}</td>
      <td>{age(c.created)}</td>
      <td class="actions">
        <ActionButton access={list.access.stop} label="Stop" testId="stop" busy={busy !== undefined} disabledWhy={c.ended ? 'already ended' : undefined}
          onClick={() => void act('stop', async () => (await send<CaptureView>('POST', `${base}/stop`), 'stopping: spec.endTime set to now'))} />
        <ActionButton access={list.access.download} label={busy === 'download' ? 'Downloading…' : 'Download'} testId="download" busy={busy !== undefined} disabledWhy={noFiles}
          onClick={() => void act('download', async () => {
            setProgress(undefined);
            const r = await download(`${base}/files.zip`, `${c.namespace}-${c.name}.zip`, setProgress);
            return `downloaded ${formatBytes(r.bytes)}${r.expected ? ` (${formatBytes(r.expected)} of pcap expected)` : ''}${r.missingNodes.length ? ` (missing nodes: ${r.missingNodes.join(', ')})` : ''}`;
          })} />
        <ActionButton access={list.access.download} label={busy === 'summary' ? 'Reading…' : 'Summary'} testId="summary-button" busy={busy !== undefined} disabledWhy={noFiles}
          onClick={() => void act('summary', async () => {
            const s = await getJson<CaptureSummary>(`${base}/summary`);
            props.onSummary(s);
            return `${s.files.reduce((n, f) => n + f.packets, 0)} packet(s) in ${s.files.length} file(s)`;
          })} />
        <ActionButton access={list.access.deleteFiles} label="Delete files" testId="delete-files" busy={busy !== undefined} disabledWhy={!c.ended ? 'the capture has not ended' : noFiles}
          onClick={() => void act('deleteFiles', async () => (await send<{ message: string }>('DELETE', `${base}/files`)).message)} />
        <ActionButton access={list.access.delete} label="Delete" danger testId="delete" busy={busy !== undefined}
          onClick={() => { if (confirm(`Delete packetcapture ${c.namespace}/${c.name} and its files?`)) void act('delete', async () => (await send<{ message: string }>('DELETE', base)).message); }} />
        {progress ? (
          <div class="progress" data-testid="download-progress">
            <progress value={progress.bytes} max={progress.expected ?? undefined} /> {formatBytes(progress.bytes)}{progress.expected ? ` of ~${formatBytes(progress.expected)}` : ''}{pct !== undefined ? ` (${pct}%)` : ''}{busy === 'download' ? '' : ' done'}
          </div>
        ) : null}
        {note ? <div class="ok small" data-testid="row-note">{note}</div> : null}
        <ErrorBox error={error} />
      </td>
    </tr>
  );
}

export function CapturesPage(props: { namespace: string; namespaces: string[]; setNamespace: (ns: string) => void }) {
  const { data, error, reload } = usePoll<CaptureList>(`/api/captures?namespace=${encodeURIComponent(props.namespace)}`, 2000);
  const [summary, setSummary] = useState<CaptureSummary | undefined>(undefined);
  const list = data?.namespace === props.namespace ? data : undefined;
  return (
    <div>
      <div class="toolbar">
        <label>Namespace{' '}
          <select data-testid="namespace" value={props.namespace} onChange={(e) => props.setNamespace((e.target as HTMLSelectElement).value)}>
            {props.namespaces.map((n) => <option key={n}>{n}</option>)}
          </select>
        </label>
      </div>
      <ErrorBox error={error ?? list?.error} />
      {list ? (
        <ForbiddenList decisions={[['List', list.access.list], ['Create', list.access.create], ['Stop', list.access.stop], ['Delete', list.access.delete], ['Download and Summary', list.access.download], ['Delete files', list.access.deleteFiles]]} />
      ) : null}
      <Card title={`PacketCaptures in ${props.namespace}`} testId="captures">
        <table>
          <thead><tr><th>Name</th><th>Phase</th><th>Pods</th><th>Nodes</th><th>Files</th><th>Size</th><th>Age</th><th>Actions</th></tr></thead>
          <tbody>
            {(list?.captures ?? []).map((c) => <Row key={c.name} c={c} list={list!} onChange={reload} onSummary={setSummary} />)}
          </tbody>
        </table>
        {list && !list.captures.length ? <p class="muted">No PacketCaptures in {props.namespace}.</p> : null}
        {(list?.captures ?? []).filter((c) => Object.keys(c.extraStatus).length).map((c) => (
          <details key={c.name}><summary>More status of {c.name}</summary><pre>{stringify(c.extraStatus)}</pre></details>
        ))}
      </Card>
      {summary ? <Summary summary={summary} onClose={() => setSummary(undefined)} /> : null}
      <CreateForm namespace={props.namespace} list={list} onCreated={reload} />
    </div>
  );
}
