// The node-side AuditForwarder pipeline against real files and a real HTTP receiver on loopback:
// batching, quarantine, rotation, checkpoint/resume, Retry-After, the file sink's path rules.
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { execFile as execFileCb } from 'node:child_process';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { AuditPipeline, measureLag } from '../../src/nodeagent/audit/pipeline.js';
import { identityOfPath } from '../../src/nodeagent/tail/index.js';
import type { AuditSettings } from '../../src/nodeagent/audit/settings.js';
import { buildSink } from '../../src/nodeagent/audit/sinks/index.js';
import { resolveSinkDirectory } from '../../src/nodeagent/audit/sinks/file.js';
import { compileFilter } from '../../src/nodeagent/audit/filter.js';
import { parseAuditLine } from '../../src/nodeagent/audit/event.js';
import { retryDelayMs } from '../../src/nodeagent/audit/backoff.js';
import { parseRetryAfter } from '../../src/nodeagent/audit/sinks/types.js';
import { registry } from '../../src/runtime/metrics.js';
import { KubeConfig } from '@kubernetes/client-node';

interface Received {
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  at: number;
}

interface Answer {
  status: number;
  headers?: Record<string, string>;
  text?: string;
}

/** A webhook receiver; `respond` decides each answer from the attempt number and the raw body (default 200). */
async function receiver(respond: (n: number, raw: Buffer) => Answer = () => ({ status: 200 })) {
  const got: Received[] = [];
  let n = 0;
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', () => {
      const raw = Buffer.concat(parts);
      const r = respond(n++, raw);
      if (r.status === 200) got.push({ headers: req.headers, body: req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw, at: Date.now() });
      res.writeHead(r.status, r.headers).end(r.text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`;
  return { got, url, attempts: () => n, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

let uid = 0;
function event(verb: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  uid++;
  return {
    kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Metadata', auditID: `00000000-0000-4000-8000-${String(uid).padStart(12, '0')}`,
    stage: 'ResponseComplete', requestURI: `/api/v1/namespaces/default/configmaps/c${uid}`, verb,
    user: { username: 'admin', groups: ['system:masters', 'system:authenticated'] },
    sourceIPs: ['127.0.0.1'], objectRef: { resource: 'configmaps', namespace: 'default', name: `c${uid}`, apiVersion: 'v1' },
    responseStatus: { metadata: {}, code: 200 },
    requestReceivedTimestamp: '2026-05-01T10:00:00.000000Z', stageTimestamp: '2026-05-01T10:00:00.001000Z', ...extra,
  };
}
const line = (e: Record<string, unknown>): string => JSON.stringify(e) + '\n';
/** Whole audit lines, at least `bytes` of them. */
function evsOfSize(bytes: number): Buffer {
  let text = '';
  while (text.length < bytes) text += line(event('get'));
  return Buffer.from(text);
}

function settings(sourcePath: string, over: Partial<AuditSettings>): AuditSettings {
  return { sourcePath, clusterID: 'unit-cluster', maxBytes: 1 << 20, maxWaitMs: 200, maxEvents: Number.POSITIVE_INFINITY, rules: [], sink: { webhook: { url: 'http://127.0.0.1:1/', format: 'ndjson', gzip: false } }, ...over };
}

/** A counter's current value for the labels (0 when it has no such series yet). */
async function counter(name: string, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  return values.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))?.value ?? 0;
}

async function waitFor<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

function itemsOf(r: Received): Record<string, unknown>[] {
  if (r.headers['content-type'] === 'application/json') return (JSON.parse(r.body.toString()) as { items: Record<string, unknown>[] }).items;
  return r.body.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

const execFile = promisify(execFileCb);
const kc = new KubeConfig(); // sinks without Secrets never call the API server

describe('audit pipeline', function () {
  this.timeout(30_000);
  let dir: string;
  const pipelines: AuditPipeline[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'nw-audit-unit-'));
  });
  afterEach(async () => {
    await Promise.all(pipelines.splice(0).map((p) => p.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  function pipeline(s: AuditSettings, name = 'unit'): AuditPipeline {
    const p = new AuditPipeline({ forwarder: name, nodeName: 'node-u', settings: s, stateDir: path.join(dir, 'state', name), buildSink: () => buildSink(kc, s.sink, path.join(dir, 'state'), 'netwarden-system'), pollIntervalMs: 20 });
    pipelines.push(p);
    p.start();
    return p;
  }

  it('ships rotated and live files as valid EventLists within maxBytes, quarantining bad lines losslessly', async () => {
    const rx = await receiver();
    const log = path.join(dir, 'audit.log');
    const good = Array.from({ length: 300 }, (_, i) => event(i % 2 ? 'get' : 'create'));
    await writeFile(log, good.slice(0, 100).map(line).join(''));
    await rename(log, path.join(dir, 'audit-2026-05-01T10-00-00.000.log'));
    const notJson = 'this is not JSON \u00e9';
    const cut = line(good[100]!).slice(0, 80);
    await writeFile(log, Buffer.concat([Buffer.from(good.slice(100, 200).map(line).join('') + notJson + '\n' + cut + '\n'), Buffer.from([0xff, 0xfe, 0x41, 0x0a])]));
    const p = pipeline(settings(log, { maxBytes: 16 * 1024, sink: { webhook: { url: rx.url, format: 'eventList', gzip: true } } }));
    // a partial last line is held until its newline arrives
    const last = line(good[200]!);
    await appendFile(log, last.slice(0, 50));
    await new Promise((r) => setTimeout(r, 400));
    await appendFile(log, last.slice(50) + good.slice(201).map(line).join(''));
    const all = () => rx.got.flatMap(itemsOf);
    await waitFor(() => all().length >= 303);
    const items = all();
    expect(items.filter((i) => !(i.annotations as Record<string, string> | undefined)?.['netwarden.io/quarantined-line']).map((i) => i.auditID)).to.deep.equal(good.map((g) => g.auditID));
    const quarantined = items.filter((i) => (i.annotations as Record<string, string> | undefined)?.['netwarden.io/reason']).map((i) => i.annotations as Record<string, string>);
    expect(quarantined.map((q) => q['netwarden.io/quarantined-line'])).to.deep.equal([notJson, cut, Buffer.from([0xff, 0xfe, 0x41]).toString('base64')]);
    expect(quarantined[2]!['netwarden.io/quarantined-encoding']).to.equal('base64');
    expect(quarantined[0]!['netwarden.io/reason']).to.match(/^invalid JSON/);
    expect(Number(quarantined[0]!['netwarden.io/offset'])).to.equal(good.slice(100, 200).map(line).join('').length);
    for (const r of rx.got) {
      expect(r.body.length).to.be.at.most(16 * 1024);
      expect(r.headers['x-netwarden-cluster-id']).to.equal('unit-cluster');
      const doc = JSON.parse(r.body.toString()) as Record<string, unknown>;
      expect(Object.keys(doc)).to.deep.equal(['kind', 'apiVersion', 'metadata', 'items']);
      expect(doc.kind).to.equal('EventList');
    }
    expect(rx.got.length).to.be.greaterThan(5);
    const metrics = await registry.getSingleMetricAsString('netwarden_audit_malformed_lines_total');
    expect(metrics).to.match(/forwarder="unit",reason="malformed"} 3/);
    // The node's status entry counts them and says where the last one was.
    const st = await p.status();
    expect(st.quarantinedLines).to.equal(3);
    const lastOffset = Buffer.byteLength(good.slice(100, 200).map(line).join('') + notJson + '\n' + cut + '\n');
    expect(st.lastQuarantinedLine).to.match(new RegExp(`^${log.replace(/[.]/g, '\\.')}:${lastOffset}: invalid JSON`));
    await rx.close();
  });

  it('resumes from the checkpoint after a restart without re-sending acknowledged batches', async () => {
    const rx = await receiver();
    const log = path.join(dir, 'audit.log');
    const evs = Array.from({ length: 50 }, () => event('create'));
    await writeFile(log, evs.slice(0, 25).map(line).join('') + 'not an audit event\n');
    const s = settings(log, { sink: { webhook: { url: rx.url, format: 'ndjson', gzip: false } } });
    const p1 = pipeline(s);
    await waitFor(() => rx.got.flatMap(itemsOf).length === 26);
    await new Promise((r) => setTimeout(r, 100)); // checkpoint written after the acknowledgement
    await p1.stop();
    await appendFile(log, evs.slice(25).map(line).join(''));
    // rotated while stopped: the checkpointed file is found among the rotated ones
    await rename(log, path.join(dir, 'audit-2026-05-01T11-00-00.000.log'));
    await writeFile(log, line(event('delete')));
    const p2 = pipeline(s, 'unit');
    await waitFor(() => rx.got.flatMap(itemsOf).length === 52);
    const ids = rx.got.flatMap(itemsOf).flatMap((i) => (i.auditID ? [i.auditID] : []));
    expect(new Set(ids).size).to.equal(51);
    // The receiver has the events a moment before the pipeline has taken the acknowledgement.
    let st = await p2.status();
    for (let tries = 0; st.lagBytes !== 0 && tries < 100; tries++) {
      await new Promise((r) => setTimeout(r, 50));
      st = await p2.status();
    }
    expect(st.shippedEvents).to.equal(52);
    expect(st.lagBytes).to.equal(0);
    // Counted before the restart, kept by the checkpoint.
    expect(st.quarantinedLines).to.equal(1);
    expect(st.lastQuarantinedLine).to.match(/audit\.log:\d+: invalid JSON/);
    await rx.close();
  });

  it('reads on into its disk buffer while the sink is down, so files deleted after that lose nothing', async () => {
    let down = true;
    const rx = await receiver(() => (down ? { status: 503 } : { status: 200 }));
    const log = path.join(dir, 'audit.log');
    const evs = Array.from({ length: 300 }, () => event('create'));
    const rotated = path.join(dir, 'audit-2026-05-01T11-00-00.000.log');
    await writeFile(log, evs.slice(0, 100).map(line).join(''));
    const s = settings(log, { maxWaitMs: 200, sink: { webhook: { url: rx.url, format: 'ndjson', gzip: false } } });
    const p1 = pipeline(s);
    await appendFile(log, evs.slice(100, 200).map(line).join(''));
    await rename(log, rotated);
    await writeFile(log, evs.slice(200).map(line).join(''));
    // Nothing delivered, yet everything read: the log is behind no one.
    const read = await waitFor(async () => {
      const st = await p1.status();
      return st.lagBytes === 0 && (st.bufferedBytes ?? 0) > 0 ? st : undefined;
    });
    expect(read.shippedEvents).to.equal(0);
    expect(read.bufferedBytes ?? 0).to.be.greaterThan(evs.slice(0, 299).map(line).join('').length);
    await p1.stop();
    // While the agent is away, --audit-log-maxbackup deletes the rotated file and the receiver comes back.
    await rm(rotated);
    down = false;
    const p2 = pipeline(s);
    const done = await waitFor(async () => {
      const st = await p2.status();
      return st.shippedEvents === evs.length && st.bufferedBytes === 0 ? st : undefined;
    });
    expect(rx.got.flatMap(itemsOf).map((i) => i.auditID)).to.deep.equal(evs.map((e) => e.auditID));
    expect(done.gaps ?? 0).to.equal(0);
    await rx.close();
  });

  it('keeps a gap in status and across restarts when the checkpointed file was deleted while stopped', async () => {
    const rx = await receiver();
    const log = path.join(dir, 'audit.log');
    const s = settings(log, { sink: { webhook: { url: rx.url, format: 'ndjson', gzip: false } } });
    await writeFile(log, line(event('create')));
    const p1 = pipeline(s);
    await waitFor(async () => (await p1.status()).shippedEvents === 1);
    await p1.stop();
    // While stopped: more events, a rotation, and --audit-log-maxbackup deleting the rotated file.
    await appendFile(log, line(event('update')));
    await rename(log, path.join(dir, 'audit-2026-05-01T11-00-00.000.log'));
    await rm(path.join(dir, 'audit-2026-05-01T11-00-00.000.log'));
    const after = event('delete');
    await writeFile(log, line(after));
    const p2 = pipeline(s);
    // The events still on disk are shipped; the lost one is named as a gap, not hidden.
    const st = await waitFor(async () => {
      const x = await p2.status();
      return x.shippedEvents === 2 && x.lastError === undefined ? x : undefined;
    });
    expect(rx.got.flatMap(itemsOf).map((i) => i.verb)).to.deep.equal(['create', 'delete']);
    expect(st.gaps).to.equal(1);
    // It was the live file, with no rotated file before it: whatever rotated from it is named by its place.
    expect(st.lastGap).to.match(/^\d{4}-\d\d-\d\dT[\d:.]+Z: checkpointed file not found \(deleted before it was read to its end\); starting at the oldest file there is: rotated files before audit\.log; reading went on at .*\/audit\.log$/);
    expect(await counter('netwarden_audit_gaps_total', { forwarder: 'unit' })).to.be.at.least(1);
    await p2.stop();
    // Kept by the checkpoint; the restart from a good checkpoint adds none.
    const p3 = pipeline(s);
    await appendFile(log, line(event('patch')));
    const again = await waitFor(async () => {
      const x = await p3.status();
      return x.shippedEvents === 3 ? x : undefined;
    });
    expect(again.gaps).to.equal(1);
    expect(again.lastGap).to.equal(st.lastGap);
    await rx.close();
  });

  it('measures the lag in uncompressed bytes, also inside and after gzipped rotations', async () => {
    const log = path.join(dir, 'audit.log');
    const older = path.join(dir, 'audit-2026-05-01T10-00-00.000.log');
    const newer = path.join(dir, 'audit-2026-05-01T11-00-00.000.log');
    const a = evsOfSize(10_000);
    await writeFile(older, a);
    const tail = { identity: await identityOfPath(older), offset: 4_000 };
    // rotated and compressed after the checkpoint, as kube-apiserver does with compression on
    await writeFile(`${older}.gz`, gzipSync(a));
    await rm(older);
    const b = evsOfSize(20_000);
    await writeFile(`${newer}.gz`, gzipSync(b));
    const live = evsOfSize(500);
    await writeFile(log, live);
    expect(await measureLag(log, tail)).to.equal(a.length - 4_000 + b.length + live.length);
  });

  it('says in status that the audit log does not exist, and clears it once the log appears', async () => {
    const rx = await receiver();
    const log = path.join(dir, 'audit.log');
    const p = pipeline(settings(log, { sink: { webhook: { url: rx.url, format: 'ndjson', gzip: false } } }));
    let st = await p.status();
    for (let tries = 0; !st.lastError && tries < 100; tries++) {
      await new Promise((r) => setTimeout(r, 50));
      st = await p.status();
    }
    expect(st.lastError).to.equal(`${log} does not exist: waiting for it (check spec.source.path and that the agent mounts the audit log directory)`);
    await writeFile(log, line(event('create')));
    await waitFor(() => rx.got.flatMap(itemsOf).length === 1);
    for (let tries = 0; st.lastError && tries < 100; tries++) {
      await new Promise((r) => setTimeout(r, 50));
      st = await p.status();
    }
    expect(st.lastError).to.equal(undefined);
    await rx.close();
  });

  it('keeps the batch and honours Retry-After while the receiver refuses it', async () => {
    const rx = await receiver((n) => (n < 2 ? { status: 503, headers: { 'retry-after': '1' } } : { status: 200 }));
    const log = path.join(dir, 'audit.log');
    await writeFile(log, line(event('create')) + line(event('update')));
    const t0 = Date.now();
    const names = ['netwarden_audit_retries_total', 'netwarden_audit_batches_total', 'netwarden_audit_batches_total', 'netwarden_audit_shipped_events_total', 'netwarden_audit_read_events_total'];
    const labels: Array<Record<string, string>> = [{ forwarder: 'unit' }, { forwarder: 'unit', result: 'error' }, { forwarder: 'unit', result: 'success' }, { forwarder: 'unit' }, { forwarder: 'unit' }];
    const before = await Promise.all(names.map((n, i) => counter(n, labels[i]!)));
    const p = pipeline(settings(log, { sink: { webhook: { url: rx.url, format: 'ndjson', gzip: false } } }));
    await waitFor(() => rx.attempts() === 2);
    expect((await p.status()).lastError).to.match(/HTTP 503/);
    expect((await p.status()).bufferedBytes).to.be.greaterThan(0);
    await waitFor(() => rx.got.length === 1);
    expect(Date.now() - t0).to.be.at.least(2000);
    expect(rx.got[0]!.body.toString().split('\n').filter(Boolean)).to.have.length(2);
    await waitFor(() => rx.attempts() === 3);
    await new Promise((r) => setTimeout(r, 50));
    expect((await p.status()).lastError).to.equal(undefined);
    // Two refused attempts and one delivery of the same two events, as Prometheus sees them.
    const after = await Promise.all(names.map((n, i) => counter(n, labels[i]!)));
    expect(after.map((v, i) => v - before[i]!)).to.deep.equal([2, 2, 1, 2, 2]);
    await rx.close();
  });

  it('buffers and spools to disk: a full disk is reported in status and forwarding resumes without loss once there is room', async function () {
    if (process.getuid?.() !== 0) this.skip(); // mounts a small tmpfs to get a real ENOSPC
    const rx = await receiver();
    const log = path.join(dir, 'audit.log');
    const events = Array.from({ length: 600 }, () => event('create', { annotations: { pad: 'x'.repeat(1000) } }));
    await writeFile(log, events.map(line).join('')); // ~1 MB
    const stateRoot = path.join(dir, 'state');
    await mkdir(stateRoot, { recursive: true });
    await execFile('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', stateRoot]);
    try {
      // One batch of everything (no gzip) does not fit in 256 KiB.
      const p = pipeline(settings(log, { maxBytes: 4 << 20, maxWaitMs: 300, sink: { webhook: { url: rx.url, format: 'ndjson', gzip: false } } }));
      const failing = await waitFor(async () => {
        const st = await p.status();
        return st.lastError?.includes('ENOSPC') ? st : undefined;
      });
      expect(failing.lastError).to.match(/cannot write the audit buffer .*\.seg: ENOSPC/);
      expect(failing.shippedEvents).to.equal(0);
      expect(rx.got).to.have.length(0);
      await execFile('mount', ['-o', 'remount,size=16m', stateRoot]);
      await waitFor(() => rx.got.flatMap(itemsOf).length >= events.length, 20_000);
      expect(rx.got.flatMap(itemsOf).map((i) => i.auditID)).to.deep.equal(events.map((e) => e.auditID));
      const ok = await waitFor(async () => {
        const st = await p.status();
        return st.shippedEvents === events.length && st.lastError === undefined ? st : undefined;
      });
      expect(ok.bufferedBytes).to.equal(0);
      // The status counts a batch once the sink acknowledged it, before its checkpoint is on
      // disk; stopping waits for that save.
      await p.stop();
      // A stopped forwarder keeps only its checkpoint: the delivered batch left the disk.
      expect(await readdir(path.join(stateRoot, 'unit'))).to.deep.equal(['checkpoint.json']);
    } finally {
      await Promise.all(pipelines.splice(0).map((x) => x.stop()));
      await execFile('umount', [stateRoot]);
      await rx.close();
    }
  });

  it('says to lower maxBytes when the receiver refuses a batch as too large, and delivers everything once it is lowered', async () => {
    // Falco's k8saudit webhook caps bodies with Go's http.MaxBytesReader and answers 400.
    const limit = 64 << 10;
    const rx = await receiver((_, raw) => (raw.length > limit ? { status: 400, headers: { 'content-type': 'text/plain; charset=utf-8' }, text: 'bad request: http: request body too large\n' } : { status: 200 }));
    const url = rx.url;
    try {
      const log = path.join(dir, 'audit.log');
      const events = Array.from({ length: 200 }, () => event('create', { annotations: { pad: 'x'.repeat(1000) } }));
      await writeFile(log, events.map(line).join('')); // ~240 KB, one batch at maxBytes 1 MiB
      const first = pipeline(settings(log, { sink: { webhook: { url, format: 'ndjson', gzip: false } } }));
      const refused = await waitFor(async () => {
        const st = await first.status();
        return st.lastError?.includes("receiver's limit") ? st : undefined;
      });
      expect(refused.lastError).to.match(/^POST http:\/\/127\.0\.0\.1:\d+\/ingest: HTTP 400: bad request: http: request body too large; this body of \d+ bytes is over the receiver's limit: set spec\.batch\.maxBytes below it/);
      expect(refused.shippedEvents).to.equal(0);
      expect(refused.bufferedBytes).to.be.greaterThan(limit);
      // The user lowers maxBytes; the agent restarts the forwarder with the new spec.
      await first.stop();
      const second = pipeline(settings(log, { maxBytes: 32 << 10, sink: { webhook: { url, format: 'ndjson', gzip: false } } }));
      await waitFor(async () => (await second.status()).shippedEvents === events.length);
      expect(rx.got.flatMap(itemsOf).map((i) => i.auditID)).to.deep.equal(events.map((e) => e.auditID));
      expect(rx.got.every((r) => r.body.length <= limit)).to.equal(true);
      expect((await second.status()).lastError).to.equal(undefined);
    } finally {
      await rx.close();
    }
  });

  it('leaves no batch spool in the state directory when stopped while a batch is delivered', async () => {
    const log = path.join(dir, 'audit.log');
    await writeFile(log, line(event('create')) + line(event('update')));
    let stopping: Promise<void> | undefined;
    let p: AuditPipeline | undefined;
    const rx = await receiver(() => {
      stopping ??= p!.stop(); // the stop lands between the receiver's answer and the next batch
      return { status: 200 };
    });
    p = pipeline(settings(log, { sink: { webhook: { url: rx.url, format: 'ndjson', gzip: false } } }));
    await waitFor(() => stopping !== undefined);
    await stopping;
    // No batch spool is left; the batch whose answer the stop cut off is still in the buffer.
    const left = await readdir(path.join(dir, 'state', 'unit'));
    expect(left.filter((f) => f !== 'checkpoint.json' && f !== 'buffer')).to.deep.equal([]);
    await rx.close();
  });

  it('writes NDJSON files only inside the state directory', async () => {
    const state = path.join(dir, 'state');
    expect(resolveSinkDirectory('/var/lib/netwarden/audit-out', state)).to.equal(path.join(state, 'audit-out'));
    expect(resolveSinkDirectory(`${state}/x/../y`, state)).to.equal(path.join(state, 'y'));
    expect(() => resolveSinkDirectory('/etc/cron.d', state)).to.throw(/outside the agent's state directory/);
    expect(() => resolveSinkDirectory('/var/lib/netwarden/../../etc', state)).to.throw(/outside/);
    expect(() => resolveSinkDirectory('/var/lib/netwarden/audit/x', state)).to.throw(/checkpoint area/);
    expect(() => resolveSinkDirectory('/var/lib/netwarden', state)).to.throw(/state directory itself/);

    const log = path.join(dir, 'audit.log');
    const evs = Array.from({ length: 40 }, () => event('patch', { requestObject: { data: 'x'.repeat(500) } }));
    await writeFile(log, evs.map(line).join('') + 'garbage\n');
    const p = pipeline(settings(log, { maxEvents: 5, sink: { file: { directory: '/var/lib/netwarden/audit-out', maxFileBytes: 4096, maxFiles: 3 } } }));
    const out = path.join(state, 'audit-out');
    let files: string[] = [];
    await waitFor(() => {
      void readdir(out).then((f) => (files = f)).catch(() => undefined);
      return files.length === 3 ? files : undefined;
    });
    let shipped = 0;
    await waitFor(() => {
      void p.status().then((st) => (shipped = st.shippedEvents ?? 0));
      return shipped === 41;
    });
    files = (await readdir(out)).sort();
    expect(files).to.have.length(3); // older files pruned
    for (const f of files) expect(f).to.match(/^audit-\d{8}T\d{6}\.\d{3}Z-\d{10}\.ndjson$/);
    const lastLines = (await readFile(path.join(out, files[2]!), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lastLines.at(-1)).to.include({ kind: 'NetwardenQuarantinedLine', line: 'garbage', reason: 'invalid JSON: Unexpected token \'g\', "garbage" is not valid JSON' });
  });
});

describe('audit filter, parsing and retry delays', () => {
  const fields = (verb: string, extra: Record<string, unknown> = {}) => {
    const p = parseAuditLine(Buffer.from(JSON.stringify(event(verb, extra))));
    if (!p.ok) throw new Error(p.reason);
    return p.fields;
  };

  it('keeps everything without rules; the first matching rule decides', () => {
    expect(compileFilter([])(fields('get'))).to.equal(true);
    const f = compileFilter([
      { action: 'keep', verbs: ['get'], namespaces: ['kube-system'] },
      { action: 'drop', verbs: ['get', 'list'] },
      { action: 'drop', groups: ['system:nodes'] },
      { action: 'drop', resources: [{ group: '', resources: ['pods'], subresources: ['log'] }] },
    ]);
    expect(f(fields('get'))).to.equal(false);
    expect(f(fields('list'))).to.equal(false);
    expect(f(fields('get', { objectRef: { resource: 'configmaps', namespace: 'kube-system' } }))).to.equal(true);
    expect(f(fields('create'))).to.equal(true);
    expect(f(fields('create', { user: { username: 'system:node:a', groups: ['system:nodes'] } }))).to.equal(false);
    expect(f(fields('create', { objectRef: { resource: 'pods', subresource: 'log', namespace: 'a' } }))).to.equal(false);
    expect(f(fields('create', { objectRef: { resource: 'pods', namespace: 'a' } }))).to.equal(true);
    // Stages and users, as in an apiserver audit policy's omitStages and users.
    const byStageOrUser = compileFilter([{ action: 'drop', stages: ['RequestReceived'] }, { action: 'drop', users: ['system:kube-proxy'] }]);
    expect(byStageOrUser(fields('get', { stage: 'RequestReceived' }))).to.equal(false);
    expect(byStageOrUser(fields('get', { stage: 'ResponseComplete' }))).to.equal(true);
    expect(byStageOrUser(fields('watch', { user: { username: 'system:kube-proxy', groups: ['system:authenticated'] } }))).to.equal(false);
    expect(byStageOrUser(fields('watch', { user: { username: 'system:kube-scheduler', groups: ['system:authenticated'] } }))).to.equal(true);
    // "" in namespaces matches cluster-scoped requests
    const cluster = compileFilter([{ action: 'drop', namespaces: [''] }]);
    expect(cluster(fields('create', { objectRef: { resource: 'nodes', name: 'n' } }))).to.equal(false);
    expect(cluster(fields('create'))).to.equal(true);
  });

  it('names the legacy text format of kube-apiserver and how to switch to JSON', () => {
    // From the Kubernetes auditing docs, --audit-log-format=legacy.
    const legacy = '2017-03-21T03:57:09.106841886-04:00 AUDIT: id="c939d2a7-1c37-4ef1-b2f7-4ba9b1e43b53" stage="RequestReceived" ip="127.0.0.1" method="update" user="admin" groups="\\"system:masters\\",\\"system:authenticated\\"" as="<self>" asgroups="<lookup>" namespace="default" uri="/api/v1/namespaces/default/serviceaccounts/default" response="<deferred>"';
    expect(parseAuditLine(Buffer.from(legacy))).to.deep.equal({ ok: false, reason: 'legacy text format: start kube-apiserver with --audit-log-format=json (the default) to forward events' });
    expect(parseAuditLine(Buffer.from('E0501 10:00:00.000000 AUDIT: not an event')).ok).to.equal(false);
    expect(String((parseAuditLine(Buffer.from('E0501 10:00:00.000000 AUDIT: not an event')) as { reason: string }).reason)).to.match(/^invalid JSON/);
  });

  it('rejects JSON that is not an audit event', () => {
    expect(parseAuditLine(Buffer.from('{"a":1}'))).to.deep.equal({ ok: false, reason: 'not an audit event (level, auditID and stage are required)' });
    expect(parseAuditLine(Buffer.from('[1]'))).to.deep.equal({ ok: false, reason: 'not a JSON object' });
  });

  it('backs off exponentially with jitter, never below Retry-After', () => {
    expect(retryDelayMs(0, undefined, () => 0.999)).to.be.below(500);
    expect(retryDelayMs(3, undefined, () => 0.999)).to.be.within(3900, 4000);
    expect(retryDelayMs(30, undefined, () => 0.999)).to.be.at.most(10_000);
    expect(retryDelayMs(0, 7_000, () => 0.5)).to.equal(7_000);
    expect(parseRetryAfter('120')).to.equal(120_000);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 07:27:00 GMT'))).to.equal(60_000);
    expect(parseRetryAfter('soon')).to.equal(undefined);
  });
});
