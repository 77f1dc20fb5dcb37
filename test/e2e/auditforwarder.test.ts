// AuditForwarder end to end: a real kube-apiserver writes its audit log (Metadata level, rotated at
// 1 MB and gzipped), the real agent follows it and ships it to receivers on loopback (a webhook
// server in this process, an S3-compatible server), through rotations, a SIGKILL in the middle of
// a batch, a 30-second receiver outage and a checkpointed file gzipped while the agent was down.
// This suite runs its own control plane so it controls rotation.
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { appendFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Ajv } from 'ajv';
import ajvFormats from 'ajv-formats';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { CoreV1Api } from '@kubernetes/client-node';
import { startControlPlane, trackChild, type ControlPlane } from '../env/controlplane.js';
import { createNamespace, createNode, waitFor } from '../env/fixtures.js';
import { controllerNodeReports, ensureInstalled, getLocal, mustKubectl, startAgent, startController, statusOf, type NetwardenProcess } from '../env/netwarden.js';
import { startS3Server, type S3Server } from '../../hack/s3/server.js';

const NODE = 'af-e2e-cp';
const NS = 'af-e2e-traffic';
const MAX_BYTES = 256 * 1024;
const MAX_WAIT_S = 2;

// ---- audit.k8s.io/v1 EventList, from k8s.io/apiserver/pkg/apis/audit/v1/types.go ----
const userInfo = { type: 'object', properties: { username: { type: 'string' }, uid: { type: 'string' }, groups: { type: 'array', items: { type: 'string' } }, extra: { type: 'object' } } };
const microTime = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?(Z|[+-]\\d{2}:\\d{2})$' };
const eventListSchema = {
  type: 'object',
  required: ['kind', 'apiVersion', 'items'],
  additionalProperties: false,
  properties: {
    kind: { const: 'EventList' },
    apiVersion: { const: 'audit.k8s.io/v1' },
    metadata: { type: 'object', properties: { resourceVersion: { type: 'string' }, continue: { type: 'string' }, remainingItemCount: { type: 'integer' } }, additionalProperties: false },
    items: {
      type: 'array',
      items: {
        type: 'object',
        required: ['level', 'auditID', 'stage', 'requestURI', 'verb', 'user', 'requestReceivedTimestamp', 'stageTimestamp'],
        additionalProperties: false,
        properties: {
          kind: { const: 'Event' },
          apiVersion: { const: 'audit.k8s.io/v1' },
          level: { enum: ['None', 'Metadata', 'Request', 'RequestResponse'] },
          auditID: { type: 'string', format: 'uuid' },
          stage: { enum: ['RequestReceived', 'ResponseStarted', 'ResponseComplete', 'Panic'] },
          requestURI: { type: 'string' },
          verb: { type: 'string' },
          user: userInfo,
          impersonatedUser: userInfo,
          authenticationMetadata: { type: 'object' },
          sourceIPs: { type: 'array', items: { type: 'string' } },
          userAgent: { type: 'string' },
          objectRef: {
            type: 'object',
            additionalProperties: false,
            properties: Object.fromEntries(['resource', 'namespace', 'name', 'uid', 'apiGroup', 'apiVersion', 'resourceVersion', 'subresource'].map((k) => [k, { type: 'string' }])),
          },
          responseStatus: { type: 'object' },
          requestObject: {},
          responseObject: {},
          requestReceivedTimestamp: microTime,
          stageTimestamp: microTime,
          annotations: { type: 'object', additionalProperties: { type: 'string' } },
        },
      },
    },
  },
};
const ajv = new Ajv({ allErrors: true, strict: true });
ajvFormats.default(ajv, ['uuid']);
const validEventList = ajv.compile(eventListSchema);

// ---- a webhook receiver on loopback ----
interface Batch {
  path: string;
  receivedAt: number;
  payloadBytes: number;
  clusterID: string | undefined;
  contentType: string | undefined;
  /** Credentials the sink sent: the bearer token and a header from the headers Secret. */
  authorization: string | undefined;
  orgID: string | undefined;
  body: unknown;
  items: Record<string, unknown>[];
}

class Receiver {
  readonly batches: Batch[] = [];
  port = 0;
  private server: http.Server | null = null;
  private sockets = new Set<Socket>();
  private stalled: { path: string; arrived: (held: { release: () => void }) => void } | null = null;

  async start(): Promise<void> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Down: the port refuses connections and open ones are cut. */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    for (const sock of this.sockets) sock.destroy();
    await closed;
  }

  url(p: string): string {
    return `http://127.0.0.1:${this.port}${p}`;
  }

  /** The next request to `p` is read and then left hanging; resolves once it has arrived. */
  stall(p: string): Promise<{ release: () => void }> {
    return new Promise((resolve) => (this.stalled = { path: p, arrived: resolve }));
  }

  items(p: string): Record<string, unknown>[] {
    return this.batches.filter((b) => b.path === p).flatMap((b) => b.items);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', () => {
      if (this.stalled && this.stalled.path === req.url) {
        // Read but never answered: the sender cannot know whether it arrived.
        const { arrived } = this.stalled;
        this.stalled = null;
        arrived({ release: () => res.destroy() });
        return;
      }
      const raw = Buffer.concat(parts);
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      const text = body.toString('utf8');
      let parsed: unknown;
      let items: Record<string, unknown>[];
      if (req.headers['content-type'] === 'application/json') {
        parsed = JSON.parse(text);
        items = (parsed as { items: Record<string, unknown>[] }).items;
      } else {
        items = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
        parsed = items;
      }
      this.batches.push({ path: req.url ?? '', receivedAt: Date.now(), payloadBytes: body.length, clusterID: req.headers['x-netwarden-cluster-id'] as string | undefined, contentType: req.headers['content-type'], authorization: req.headers.authorization, orgID: req.headers['x-scope-orgid'] as string | undefined, body: parsed, items });
      res.writeHead(200).end();
    });
  }
}

// ---- what the apiserver wrote ----
const keyOf = (e: Record<string, unknown>): string => `${String(e.auditID)}/${String(e.stage)}`;

/** Every complete event in audit.log and its rotations (gzipped included), read robustly while they change. */
async function loggedEvents(cp: ControlPlane): Promise<Record<string, unknown>[]> {
  const dir = path.dirname(cp.auditLogPath);
  for (let attempt = 0; ; attempt++) {
    try {
      const names = (await readdir(dir)).filter((n) => n.startsWith('audit')).sort();
      const out: Record<string, unknown>[] = [];
      for (const n of names) {
        const raw = await readFile(path.join(dir, n));
        const text = (n.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
        const lines = text.split('\n');
        lines.pop(); // after the last newline: empty, or a line still being written
        for (const l of lines) out.push(JSON.parse(l) as Record<string, unknown>);
      }
      return out;
    } catch (err) {
      // a file renamed, or a .gz still being written, while we listed: look again
      if (attempt > 20) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function rotatedFiles(cp: ControlPlane): Promise<string[]> {
  return (await readdir(path.dirname(cp.auditLogPath))).filter((n) => /^audit-.*\.log(\.gz)?$/.test(n));
}

/**
 * Rotations that kube-apiserver has finished compressing. It gzips a rotated file in the
 * background, so for a moment both audit-<time>.log and its .gz exist.
 */
async function compressedRotations(cp: ControlPlane): Promise<number> {
  return (await rotatedFiles(cp)).filter((f) => f.endsWith('.gz')).length;
}

/** Waits until every event the log holds now has reached `received()`. */
async function expectAllDelivered(cp: ControlPlane, received: () => Record<string, unknown>[], filter: (e: Record<string, unknown>) => boolean = () => true, timeoutMs = 60_000): Promise<number> {
  const expected = (await loggedEvents(cp)).filter(filter).map(keyOf);
  expect(expected.length).to.be.greaterThan(0);
  let missing: string[] = [];
  await waitFor(() => {
    const got = new Set(received().map(keyOf));
    missing = expected.filter((k) => !got.has(k));
    return missing.length === 0;
  }, { timeoutMs, intervalMs: 500, description: `all ${expected.length} events delivered` }).catch((err: Error) => {
    throw new Error(`${err.message}; ${missing.length} missing, e.g. ${missing.slice(0, 3).join(', ')}`);
  });
  return expected.length;
}

// ---- API traffic ----
class Traffic {
  private running = false;
  private loops: Promise<void>[] = [];
  private n = 0;
  constructor(private readonly cp: ControlPlane) {}

  /** `concurrency` loops of create + get + list on ConfigMaps; `pauseMs` between rounds. */
  start(concurrency = 4, pauseMs = 0): void {
    const api = this.cp.kubeConfig().makeApiClient(CoreV1Api);
    this.running = true;
    this.loops = Array.from({ length: concurrency }, async () => {
      while (this.running) {
        const name = `cm-${this.n++}`;
        await api.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name }, data: { k: 'v' } } }).catch(() => undefined);
        await api.readNamespacedConfigMap({ namespace: NS, name }).catch(() => undefined);
        await api.listNamespacedConfigMap({ namespace: NS, limit: 1 }).catch(() => undefined);
        if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
      }
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  async until(cond: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
    this.start();
    try {
      await waitFor(cond, { timeoutMs, intervalMs: 300, description: 'traffic goal' });
    } finally {
      await this.stop();
    }
  }
}

function jsonpath(cp: ControlPlane, kind: string, name: string, p: string): Promise<string> {
  return mustKubectl(cp, ['get', kind, name, '-o', `jsonpath={${p}}`]);
}

/** The newest current problem of NODE in the forwarder's status (its agent's lastError), '' when none. */
async function nodeError(cp: ControlPlane, fwd: string): Promise<string> {
  const s = await statusOf(cp, 'auditforwarder', fwd);
  return (s.problems ?? []).find((p) => p.node === NODE && !p.message.startsWith('lines skipped'))?.message ?? '';
}

/** What a file sink wrote, in order: its files sort by time. */
async function fileSinkItems(dir: string): Promise<Record<string, unknown>[]> {
  const files = (await readdir(dir).catch(() => [] as string[])).sort();
  const texts = await Promise.all(files.map((f) => readFile(path.join(dir, f), 'utf8')));
  return texts.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('AuditForwarder (own control plane, audit log rotated at 1 MB)', function () {
  this.timeout(240_000);
  let cp: ControlPlane;
  let s3: S3Server;
  const rx = new Receiver();
  let agent: NetwardenProcess;
  let controller: NetwardenProcess;
  let traffic: Traffic;
  let suiteStart = 0;
  const phases: Array<{ from: number; to: number }> = []; // quiet periods (no outage, no restart)

  before(async function () {
    this.timeout(180_000);
    suiteStart = Date.now();
    cp = await startControlPlane({ auditLogMaxSizeMB: 1, auditLogMaxBackups: 200, auditLogCompress: true });
    [s3] = await Promise.all([startS3Server(['audit'], trackChild), ensureInstalled(cp), rx.start()]);
    const kc = cp.kubeConfig();
    await createNamespace(kc, NS);
    await createNode(kc, NODE, { controlPlane: true });
    await kc.makeApiClient(CoreV1Api).createNamespacedSecret({
      namespace: 'netwarden-system',
      body: { metadata: { name: 'af-e2e-s3' }, stringData: { accessKeyID: 'AKIDE2E', secretAccessKey: 'e2e-secret-key' } },
    });
    await kc.makeApiClient(CoreV1Api).createNamespacedSecret({
      namespace: 'netwarden-system',
      body: { metadata: { name: 'af-e2e-hook' }, stringData: { token: 'e2e-token-1\n', headers: '# tenant of the receiver\nX-Scope-OrgID: e2e-tenant\n' } },
    });
    traffic = new Traffic(cp);
    controller = await startController(cp, 'af-controller');
    agent = await startAgent(cp, NODE);
    const forwarders = [
      `{apiVersion: netwarden.io/v1alpha1, kind: AuditForwarder, metadata: {name: af-main}, spec: {clusterID: e2e-cluster, source: {path: ${cp.auditLogPath}},
        batch: {maxBytes: ${MAX_BYTES}, maxWait: ${MAX_WAIT_S}s}, sink: {webhook: {url: "${rx.url('/main')}", allowInsecure: true, format: eventList, gzip: true,
        bearerTokenSecretRef: {name: af-e2e-hook, namespace: netwarden-system, key: token},
        headersSecretRef: {name: af-e2e-hook, namespace: netwarden-system, key: headers}}}}}`,
      `{apiVersion: netwarden.io/v1alpha1, kind: AuditForwarder, metadata: {name: af-filtered}, spec: {clusterID: e2e-cluster, source: {path: ${cp.auditLogPath}},
        batch: {maxWait: 1s}, filter: {rules: [{action: drop, verbs: [get, list]}]}, sink: {webhook: {url: "${rx.url('/filtered')}", allowInsecure: true, format: ndjson}}}}`,
      `{apiVersion: netwarden.io/v1alpha1, kind: AuditForwarder, metadata: {name: af-s3}, spec: {clusterID: e2e-cluster, source: {path: ${cp.auditLogPath}},
        batch: {maxWait: 2s}, sink: {s3: {endpoint: "${s3.endpoint}", allowInsecure: true, bucket: audit, prefix: e2e, region: us-east-1, forcePathStyle: true,
        credentialsSecretRef: {name: af-e2e-s3, namespace: netwarden-system}}}}}`,
    ];
    for (const f of forwarders) await mustKubectl(cp, ['apply', '-f', '-'], f);
  });

  after(async function () {
    this.timeout(60_000);
    await traffic?.stop();
    await Promise.all([agent?.kill(), controller?.kill(), s3?.stop(), rx.stop()]);
    await cp?.stop();
  });

  it('ships every audit event through three rotations as valid EventLists within the batch limits', async function () {
    const from = Date.now();
    await traffic.until(async () => (await compressedRotations(cp)) >= 3);
    const n = await expectAllDelivered(cp, () => rx.items('/main'));
    phases.push({ from: from + 5_000, to: Date.now() });
    const main = rx.batches.filter((b) => b.path === '/main');
    for (const b of main) {
      if (!validEventList(b.body)) throw new Error(`invalid EventList: ${ajv.errorsText(validEventList.errors)}`);
      expect(b.payloadBytes).to.be.at.most(MAX_BYTES);
      expect(b.clusterID).to.equal('e2e-cluster');
      expect(b.authorization).to.equal('Bearer e2e-token-1');
      expect(b.orgID).to.equal('e2e-tenant');
    }
    console.log(`      ${n} events in ${main.length} batches, ${(await rotatedFiles(cp)).length} rotations`);
  });

  it('never holds an event longer than maxWait (plus read and send margin) in quiet periods', function () {
    const marginMs = 3_000;
    let checked = 0;
    for (const b of rx.batches.filter((x) => x.path === '/main')) {
      const phase = phases.find((p) => b.receivedAt >= p.from && b.receivedAt <= p.to);
      if (!phase) continue;
      const times = b.items.map((i) => Date.parse(String(i.stageTimestamp))).filter((t) => t >= phase.from);
      if (times.length === 0) continue;
      checked++;
      expect(b.receivedAt - Math.min(...times)).to.be.at.most(MAX_WAIT_S * 1000 + marginMs);
    }
    expect(checked).to.be.greaterThan(3);
  });

  it('re-sends the batch in flight when the agent is SIGKILLed and restarted, losing nothing', async function () {
    const stalled = rx.stall('/main');
    traffic.start(2, 20);
    const { release } = await stalled;
    await agent.kill('SIGKILL');
    release();
    agent = await startAgent(cp, NODE);
    await new Promise((r) => setTimeout(r, 3_000));
    await traffic.stop();
    await expectAllDelivered(cp, () => rx.items('/main'));
  });

  it('holds the log while the receiver is down for 30 s (Ready=False with the cause), then catches up', async function () {
    await rx.stop();
    traffic.start(1, 50);
    const downAt = Date.now();
    const error = await waitFor(async () => {
      const e = await nodeError(cp, 'af-main');
      return /ECONNREFUSED/.test(e) ? e : undefined;
    }, { timeoutMs: 40_000, description: 'the sink error among the problems while the receiver is down' });
    expect((await statusOf(cp, 'auditforwarder', 'af-main')).unhealthyNodes).to.equal(1);
    expect(error).to.contain(rx.url('/main'));
    const ready = await waitFor(async () => {
      const raw = await jsonpath(cp, 'auditforwarder', 'af-main', '.status.conditions[?(@.type=="Ready")]');
      const c = raw ? (JSON.parse(raw) as { status: string; reason: string; message: string }) : undefined;
      return c?.status === 'False' ? c : undefined;
    }, { timeoutMs: 40_000, description: 'Ready=False' });
    expect(ready.reason).to.equal('ForwardingFailing');
    expect(ready.message).to.contain(`${NODE}: POST ${rx.url('/main')}`);
    await new Promise((r) => setTimeout(r, Math.max(0, 30_000 - (Date.now() - downAt))));
    await waitFor(async () => ((await statusOf(cp, 'auditforwarder', 'af-main')).lagBytes as number) > 0, { timeoutMs: 15_000, description: 'LAG above 0' });
    await traffic.stop();
    await rx.start(); // same port
    await expectAllDelivered(cp, () => rx.items('/main'));
    await waitFor(async () => (await nodeError(cp, 'af-main')) === '' && (await statusOf(cp, 'auditforwarder', 'af-main')).unhealthyNodes === 0, { timeoutMs: 40_000, description: 'the problem cleared' });
    await mustKubectl(cp, ['wait', '--for=condition=Ready', 'auditforwarder/af-main', '--timeout=30s']);
  });

  it('resumes from a checkpointed file that was rotated and gzipped while the agent was stopped', async function () {
    await new Promise((r) => setTimeout(r, 3_000)); // let the latest batches be acknowledged
    await agent.kill('SIGTERM');
    const checkpoint = JSON.parse(await readFile(path.join(cp.dir, 'nodes', NODE, 'audit', 'af-main', 'checkpoint.json'), 'utf8')) as { checkpoint: { tail: { identity: { inode: string } } } };
    const inode = checkpoint.checkpoint.tail.identity.inode;
    const dir = path.dirname(cp.auditLogPath);
    // Inodes of the plain .log files; one gzipped and removed between readdir and stat is skipped.
    const plainInodes = async (): Promise<string[]> => {
      const names = (await readdir(dir)).filter((n) => n.endsWith('.log'));
      const stats = await Promise.all(names.map((n) => stat(path.join(dir, n)).catch(() => null)));
      return stats.flatMap((st) => (st ? [String(st.ino)] : []));
    };
    const before = await compressedRotations(cp);
    await traffic.until(async () => (await compressedRotations(cp)) >= before + 2 && !(await plainInodes()).includes(inode));
    // The checkpointed file is gone as a plain file: only its .gz remains.
    expect(await plainInodes()).to.not.include(inode);
    // The follower warns "tail dataLoss" when it cannot find the checkpointed file (the agent log
    // file is appended across restarts, so count the warnings of this run).
    const dataLossWarnings = (): number => agent.logs().filter((l) => l.message === 'tail dataLoss').length;
    const warningsBefore = dataLossWarnings();
    agent = await startAgent(cp, NODE);
    await expectAllDelivered(cp, () => rx.items('/main'));
    expect(dataLossWarnings()).to.equal(warningsBefore);
  });

  it('drops exactly get and list with a filter rule', async function () {
    const isRead = (e: Record<string, unknown>): boolean => e.verb === 'get' || e.verb === 'list';
    await expectAllDelivered(cp, () => rx.items('/filtered'), (e) => !isRead(e));
    const got = rx.items('/filtered');
    expect(got.filter(isRead)).to.deep.equal([]);
    const logged = await loggedEvents(cp);
    expect(logged.filter(isRead).length).to.be.greaterThan(1000); // there were plenty to drop
  });

  it('uploads gzip NDJSON objects to S3 with keys that sort by time and name the cluster and node', async function () {
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'AKIDE2E', secretAccessKey: 'e2e-secret-key' } });
    const items = new Map<string, Record<string, unknown>[]>();
    const fetchAll = async (): Promise<Record<string, unknown>[]> => {
      let token: string | undefined;
      const keys: string[] = [];
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: 'audit', Prefix: 'e2e/', ContinuationToken: token }));
        keys.push(...(page.Contents ?? []).map((c) => c.Key!));
        token = page.NextContinuationToken;
      } while (token);
      for (const key of keys) {
        if (items.has(key)) continue;
        const obj = await client.send(new GetObjectCommand({ Bucket: 'audit', Key: key }));
        expect(obj.ContentEncoding).to.equal('gzip');
        expect(obj.Metadata?.['cluster-id']).to.equal('e2e-cluster');
        const body = gunzipSync(Buffer.from(await obj.Body!.transformToByteArray())).toString('utf8');
        items.set(key, body.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
      }
      return [...items.values()].flat();
    };
    let received: Record<string, unknown>[] = [];
    const expected = (await loggedEvents(cp)).map(keyOf);
    await waitFor(async () => {
      received = await fetchAll();
      const got = new Set(received.map(keyOf));
      return expected.every((k) => got.has(k));
    }, { timeoutMs: 60_000, intervalMs: 2_000, description: 'all events in S3' });
    const keys = [...items.keys()];
    const today = new Date().toISOString().slice(0, 10).replace(/-/g, '/');
    for (const k of keys) expect(k).to.match(new RegExp(`^e2e/e2e-cluster/${NODE}/\\d{4}/\\d{2}/\\d{2}/\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z-\\d{10}\\.ndjson\\.gz$`));
    expect(keys.some((k) => k.includes(`/${today}/`))).to.equal(true);
    // listing order is time order: the newest object holds the newest events
    const sorted = [...keys].sort();
    const lastTimes = items.get(sorted.at(-1)!)!.map((e) => String(e.stageTimestamp)).sort();
    const firstTimes = items.get(sorted[0]!)!.map((e) => String(e.stageTimestamp)).sort();
    expect(lastTimes.at(-1)! >= firstTimes.at(-1)!).to.equal(true);
  });

  it('reports the duplicate rate and the shipped bytes in kubectl get', async function () {
    const main = rx.items('/main');
    const unique = new Set(main.map(keyOf)).size;
    const rate = (main.length - unique) / unique;
    console.log(`      duplicates at the webhook: ${main.length - unique} of ${unique} events (${(rate * 100).toFixed(2)}%), ${Math.round((Date.now() - suiteStart) / 1000)} s into the suite`);
    expect(rate).to.be.below(0.2);
    await waitFor(async () => Number(await jsonpath(cp, 'auditforwarder', 'af-main', '.status.shippedBytes')) > 1_000_000, { timeoutMs: 20_000, description: 'SHIPPED summed' });
    const row = await mustKubectl(cp, ['get', 'auditforwarders', 'af-main', '--no-headers']);
    expect(row).to.match(/^af-main\s+1\s+0\s+\d{7,}\s+\d+\s+True\s+/);
  });

  it('quarantines a non-JSON line and a truncated line, ships a 5 MB event whole, and holds a partial line', async function () {
    const dir = path.join(cp.dir, 'bad-input');
    await mkdir(dir, { recursive: true });
    const log = path.join(dir, 'audit.log');
    const ev = (i: number, extra: Record<string, unknown> = {}) => ({
      kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Request', auditID: `6b0c0d5e-0000-4000-8000-${String(i).padStart(12, '0')}`, stage: 'ResponseComplete',
      requestURI: '/api/v1/namespaces/default/configmaps', verb: 'create', user: { username: 'admin' },
      requestReceivedTimestamp: '2026-05-01T10:00:00.000000Z', stageTimestamp: '2026-05-01T10:00:00.100000Z', ...extra,
    });
    const big = JSON.stringify(ev(3, { requestObject: { kind: 'ConfigMap', data: { blob: 'x'.repeat(5 * 1024 * 1024) } } }));
    const truncated = JSON.stringify(ev(2)).slice(0, 120);
    const lines = [JSON.stringify(ev(1)), 'E0501 10:00:00.000000 not json at all', truncated, big, JSON.stringify(ev(4))];
    await writeFile(log, lines.join('\n') + '\n');
    const offsets = lines.map((_, i) => lines.slice(0, i).reduce((n, l) => n + Buffer.byteLength(l) + 1, 0));
    await mustKubectl(cp, ['apply', '-f', '-'], `{apiVersion: netwarden.io/v1alpha1, kind: AuditForwarder, metadata: {name: af-bad}, spec: {nodeSelector: {kubernetes.io/hostname: ${NODE}},
      source: {path: ${log}}, batch: {maxWait: 1s}, sink: {file: {directory: /var/lib/netwarden/af-bad-out}}}}`);
    const readOut = (): Promise<Record<string, unknown>[]> => fileSinkItems(path.join(cp.dir, 'nodes', NODE, 'af-bad-out'));
    let got = await waitFor(async () => ((await readOut()).length === 5 ? readOut() : undefined), { timeoutMs: 30_000, description: '5 items in the file sink' });
    expect(got.map((g) => g.auditID ?? g.kind)).to.deep.equal([ev(1).auditID, 'NetwardenQuarantinedLine', 'NetwardenQuarantinedLine', ev(3).auditID, ev(4).auditID]);
    expect(got[1]).to.deep.include({ file: log, offset: offsets[1], line: lines[1] });
    expect(String(got[1]!.reason)).to.match(/^invalid JSON/);
    expect(got[2]).to.deep.include({ file: log, offset: offsets[2], line: truncated });
    expect(JSON.stringify(got[3])).to.equal(big);

    // a partial line is held until its newline arrives
    const tailEvent = JSON.stringify(ev(5));
    await appendFile(log, tailEvent.slice(0, 60));
    await new Promise((r) => setTimeout(r, 2_500));
    expect((await readOut()).length).to.equal(5);
    await appendFile(log, tailEvent.slice(60) + '\n');
    got = await waitFor(async () => ((await readOut()).length === 6 ? readOut() : undefined), { timeoutMs: 15_000, description: 'completed line shipped' });
    expect(got[5]!.auditID).to.equal(ev(5).auditID);

    const metrics = (await getLocal(agent.metricsPort, '/metrics')).body;
    expect(metrics).to.match(/netwarden_audit_malformed_lines_total\{forwarder="af-bad",reason="malformed"\} 2\b/);
    const warnings = agent.logs().filter((l) => l.message === 'malformed audit log line forwarded in quarantine form' && l.file === log);
    expect(warnings.map((w) => w.offset)).to.deep.equal([offsets[1], offsets[2]]);
    // kubectl shows the count; where the last one was and why is in the node's report on the controller.
    await waitFor(async () => (await statusOf(cp, 'auditforwarder', 'af-bad')).quarantinedLines === 2, { timeoutMs: 30_000, description: 'quarantinedLines: 2 in status' });
    const [entry] = await controllerNodeReports<{ quarantinedLines?: number; lastQuarantinedLine?: string }>(cp, 'auditforwarder', 'af-bad');
    expect(entry?.node).to.equal(NODE);
    expect(entry?.report.lastQuarantinedLine?.startsWith(`${log}:${offsets[2]}: invalid JSON`), entry?.report.lastQuarantinedLine).to.equal(true);
  });

  it('shows a gap in kubectl get when the checkpointed file was deleted while the agent was stopped', async function () {
    // Continues the af-bad forwarder of the test before: its log holds 6 shipped events.
    const dir = path.join(cp.dir, 'bad-input');
    const log = path.join(dir, 'audit.log');
    const shipped = async (): Promise<string[]> => (await fileSinkItems(path.join(cp.dir, 'nodes', NODE, 'af-bad-out'))).map((i) => String(i.auditID));
    expect(await shipped()).to.have.length(6);
    await agent.kill('SIGTERM');
    // While it is down: an event, a rotation, and --audit-log-maxbackup deleting the rotated file.
    const lost = { kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Metadata', auditID: '6b0c0d5e-0000-4000-8000-000000000007', stage: 'ResponseComplete', verb: 'delete', stageTimestamp: '2026-05-01T10:00:01.000000Z' };
    const kept = { ...lost, auditID: '6b0c0d5e-0000-4000-8000-000000000008', verb: 'create' };
    await appendFile(log, JSON.stringify(lost) + '\n');
    await rename(log, path.join(dir, 'audit-2026-05-01T10-00-01.000.log'));
    await rm(path.join(dir, 'audit-2026-05-01T10-00-01.000.log'));
    await writeFile(log, JSON.stringify(kept) + '\n');
    agent = await startAgent(cp, NODE);
    const status = await waitFor(
      async () => {
        const s = await statusOf(cp, 'auditforwarder', 'af-bad');
        return s.gaps === 1 && s.shippedEvents === 7 && s.unhealthyNodes === 0 ? s : undefined;
      },
      { timeoutMs: 40_000, description: 'gaps: 1 and the next event shipped' },
    );
    // The checkpointed file was the live one, with no rotation before it: the gap is every rotated
    // file before the live file, and reading went on at the live file. A past gap is a problem
    // listed with its own time, not an unhealthy node.
    const gap = (status.problems ?? []).find((p) => p.node === NODE && p.message.startsWith('lines skipped (1 gap(s)); last: '));
    expect(gap?.message.endsWith(`Z: checkpointed file not found (deleted before it was read to its end); starting at the oldest file there is: rotated files before audit.log; reading went on at ${log}`), gap?.message).to.equal(true);
    expect(Date.parse(gap!.time)).to.be.greaterThan(suiteStart - 1000);
    const ids = await shipped();
    expect(ids.slice(6)).to.deep.equal([kept.auditID]);
    const metrics = (await getLocal(agent.metricsPort, '/metrics')).body;
    expect(metrics).to.match(/netwarden_audit_gaps_total\{forwarder="af-bad"\} 1\b/);
  });
});
