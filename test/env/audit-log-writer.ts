// A kube-apiserver audit log the way lumberjack (gopkg.in/natefinch/lumberjack.v2, which
// kube-apiserver's --audit-log-* flags use) writes it, for the AuditForwarder chaos scenario
// (test/env/audit-chaos.ts). Run as a child process:
//
//   node --import tsx test/env/audit-log-writer.ts --dir=DIR --manifest=FILE [--seed=N]
//        [--rate=2500] [--seconds=40] [--max-size=1572864] [--max-backups=5]
//        [--compress-fraction=0.75] [--gzip-delay-ms=200-2000]
//
// (the seed may also come from AUDIT_WRITER_SEED). What it does, as lumberjack does:
//  - one JSON audit.k8s.io/v1 Event per line (Metadata level; each request logs RequestReceived
//    and, a little later, ResponseComplete under the same uuid auditID), one write per event;
//  - before a write would take DIR/audit.log past --max-size, the file is renamed to
//    audit-<UTC 2006-01-02T15-04-05.000>.log (lumberjack's backupName, LocalTime=false) and a fresh
//    audit.log is created (openNew);
//  - after each rotation the "mill": backups beyond --max-backups, oldest first by the time in the
//    name and a plain/.gz pair counted once, are removed (both members); and the new backup is
//    gzipped with probability --compress-fraction, 0.2-2 s later: <name>.log.gz written completely,
//    then the plain file unlinked (compressLogFile).
// A seeded PRNG drives every random choice. The manifest (JSON, rewritten atomically after every
// rotation, compression and removal, and at the end with done: true) lists every file ever
// written with the names it had, the sequence numbers of the events it holds and when it was
// removed; the events' keys (auditID/stage) are in `keysFile`, one per line, line i = sequence i.
import { closeSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync, existsSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

export interface WriterFile {
  /** Order of creation, from 0. */
  index: number;
  /** Events [firstSeq, endSeq) (sequence numbers; keysFile line = sequence). */
  firstSeq: number;
  endSeq: number;
  bytes: number;
  createdAt: string;
  /** Set once rotated: audit-<time>.log (basename) and when. */
  rotatedName?: string;
  rotatedAt?: string;
  /** Chosen at rotation: whether the mill gzips this backup, and when it did. */
  compress?: boolean;
  gzippedAt?: string;
  /** When the mill removed it (both plain and .gz if both existed), and what it removed. */
  deletedAt?: string;
  deletedPaths?: string[];
}

export interface WriterManifest {
  version: 1;
  seed: string;
  dir: string;
  livePath: string;
  keysFile: string;
  rate: number;
  seconds: number;
  maxSizeBytes: number;
  maxBackups: number;
  compressFraction: number;
  startedAt: string;
  finishedAt?: string;
  done: boolean;
  /** Events written so far (sequence numbers 0 .. written-1). */
  written: number;
  rotations: number;
  files: WriterFile[];
}

export interface WriterOptions {
  dir: string;
  manifest: string;
  seed: string;
  rate: number;
  seconds: number;
  maxSizeBytes: number;
  maxBackups: number;
  compressFraction: number;
  gzipDelayMs: [number, number];
}

/** argv (--key=value or --key value) into WriterOptions; the seed falls back to AUDIT_WRITER_SEED. */
export function parseWriterArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): WriterOptions {
  const kv = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq > 0) kv.set(a.slice(2, eq), a.slice(eq + 1));
    else kv.set(a.slice(2), argv[++i] ?? '');
  }
  const num = (k: string, d: number): number => {
    const v = kv.get(k);
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`--${k}: not a number: ${v}`);
    return n;
  };
  const dir = kv.get('dir');
  const manifest = kv.get('manifest');
  if (!dir || !manifest) throw new Error('usage: audit-log-writer.ts --dir=DIR --manifest=FILE [--seed=N] [--rate=2500] [--seconds=40] [--max-size=BYTES] [--max-backups=5] [--compress-fraction=0.75] [--gzip-delay-ms=200-2000]');
  const [lo, hi] = (kv.get('gzip-delay-ms') ?? '200-2000').split('-').map(Number);
  return {
    dir,
    manifest,
    seed: kv.get('seed') ?? env.AUDIT_WRITER_SEED ?? '1',
    rate: num('rate', 2500),
    seconds: num('seconds', 40),
    maxSizeBytes: num('max-size', 1.5 * 1024 * 1024),
    maxBackups: num('max-backups', 5),
    compressFraction: num('compress-fraction', 0.75),
    gzipDelayMs: [lo ?? 200, hi ?? lo ?? 2000],
  };
}

// ---- a seeded PRNG (xmur3 to seed, sfc32 to draw) ----
export function seededRandom(seed: string): () => number {
  let h = 1779033703 ^ seed.length;
  for (let i = 0; i < seed.length; i++) {
    h = Math.imul(h ^ seed.charCodeAt(i), 3432918353);
    h = (h << 13) | (h >>> 19);
  }
  const next = (): number => {
    h = Math.imul(h ^ (h >>> 16), 2246822507);
    h = Math.imul(h ^ (h >>> 13), 3266489909);
    return (h ^= h >>> 16) >>> 0;
  };
  let a = next(), b = next(), c = next(), d = next();
  return () => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

/** lumberjack's backupName with LocalTime=false: audit.log -> audit-2006-01-02T15-04-05.000.log */
export function backupName(liveBase: string, at: Date): string {
  const ext = path.extname(liveBase);
  const prefix = liveBase.slice(0, liveBase.length - ext.length);
  const stamp = at.toISOString().slice(0, 23).replace(/:/g, '-'); // 2006-01-02T15-04-05.000
  return `${prefix}-${stamp}${ext}`;
}

// ---- realistic Metadata-level events (like bench/audit.ts's generator) ----
const USERS = [
  { username: 'system:kube-controller-manager', groups: ['system:authenticated'] },
  { username: 'system:serviceaccount:kube-system:replicaset-controller', groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'] },
  { username: 'system:node:worker-1', groups: ['system:nodes', 'system:authenticated'] },
  { username: 'system:kube-scheduler', groups: ['system:authenticated'] },
  { username: 'kubernetes-admin', groups: ['kubeadm:cluster-admins', 'system:authenticated'] },
];
const AGENTS = ['kube-controller-manager/v1.35.4 (linux/amd64) kubernetes/e30da68/system:serviceaccount:kube-system:replicaset-controller', 'kubelet/v1.35.4 (linux/amd64) kubernetes/e30da68', 'kube-scheduler/v1.35.4 (linux/amd64) kubernetes/e30da68/leader-election', 'kubectl/v1.35.4 (linux/amd64) kubernetes/e30da68'];
const VERBS = ['get', 'get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
const RESOURCES = [['', 'pods'], ['', 'configmaps'], ['coordination.k8s.io', 'leases'], ['', 'events'], ['apps', 'deployments'], ['', 'secrets'], ['', 'nodes']] as const;

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

function uuid(r: Rand): string {
  const hex = (n: number) => Array.from({ length: n }, () => Math.floor(r() * 16).toString(16)).join('');
  return `${hex(8)}-${hex(4)}-4${hex(3)}-${'89ab'[Math.floor(r() * 4)]}${hex(3)}-${hex(12)}`;
}

/** RFC 3339 with microseconds, as the apiserver's MicroTime. */
function microTime(ms: number, r: Rand): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, (_, m: string) => `.${m}${String(Math.floor(r() * 1000)).padStart(3, '0')}Z`);
}

interface Request {
  auditID: string;
  base: Record<string, unknown>;
  receivedAt: number;
}

function newRequest(r: Rand, now: number): Request {
  const [apiGroup, resource] = pick(r, RESOURCES);
  const verb = pick(r, VERBS);
  const user = pick(r, USERS);
  const namespace = resource === 'nodes' ? undefined : `ns-${Math.floor(r() * 40)}`;
  const name = verb === 'list' || verb === 'watch' || verb === 'create' ? undefined : `obj-${Math.floor(r() * 5000)}`;
  const prefix = apiGroup ? `/apis/${apiGroup}/v1` : '/api/v1';
  const requestURI = `${prefix}${namespace ? `/namespaces/${namespace}` : ''}/${resource}${name ? `/${name}` : ''}${verb === 'watch' ? '?watch=true&timeoutSeconds=412' : verb === 'list' ? '?limit=500' : ''}`;
  const objectRef: Record<string, string> = { resource };
  if (namespace) objectRef.namespace = namespace;
  if (name) objectRef.name = name;
  if (apiGroup) objectRef.apiGroup = apiGroup;
  objectRef.apiVersion = 'v1';
  return {
    auditID: uuid(r),
    receivedAt: now,
    base: {
      kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Metadata',
      requestURI, verb,
      user: { username: user.username, uid: `${Math.floor(r() * 1e8)}`, groups: user.groups },
      sourceIPs: [`10.0.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}`],
      userAgent: pick(r, AGENTS),
      objectRef,
    },
  };
}

function eventLine(r: Rand, req: Request, stage: 'RequestReceived' | 'ResponseComplete', now: number): string {
  const received = microTime(req.receivedAt, r);
  const ev: Record<string, unknown> = { ...req.base, auditID: req.auditID, stage };
  if (stage === 'ResponseComplete') {
    const code = r() < 0.95 ? (req.base.verb === 'create' ? 201 : 200) : 404;
    ev.responseStatus = code === 404 ? { metadata: {}, status: 'Failure', reason: 'NotFound', code } : { metadata: {}, code };
  }
  ev.requestReceivedTimestamp = received;
  ev.stageTimestamp = stage === 'RequestReceived' ? received : microTime(now, r);
  ev.annotations = { 'authorization.k8s.io/decision': 'allow', 'authorization.k8s.io/reason': 'RBAC: allowed by ClusterRoleBinding "system:controller:replicaset-controller" of ClusterRole "system:controller:replicaset-controller" to ServiceAccount "replicaset-controller/kube-system"' };
  return JSON.stringify(ev) + '\n';
}

// ---- the writer ----
export class LumberjackWriter {
  private readonly rand: Rand;
  private readonly livePath: string;
  private readonly keysFd: number;
  private fd: number;
  private size = 0;
  private readonly manifest: WriterManifest;
  private current: WriterFile;
  /** Requests whose ResponseComplete is still to come, with the sequence it is due at. */
  private open: Array<{ req: Request; due: number }> = [];
  private seq = 0;
  private lastRotation = 0;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly opts: WriterOptions) {
    this.rand = seededRandom(`writer:${opts.seed}`);
    this.livePath = path.join(opts.dir, 'audit.log');
    const keysFile = `${opts.manifest}.keys`;
    this.keysFd = openSync(keysFile, 'w');
    this.fd = openSync(this.livePath, 'a');
    this.current = { index: 0, firstSeq: 0, endSeq: 0, bytes: 0, createdAt: new Date().toISOString() };
    this.manifest = {
      version: 1, seed: opts.seed, dir: opts.dir, livePath: this.livePath, keysFile,
      rate: opts.rate, seconds: opts.seconds, maxSizeBytes: opts.maxSizeBytes, maxBackups: opts.maxBackups, compressFraction: opts.compressFraction,
      startedAt: new Date().toISOString(), done: false, written: 0, rotations: 0, files: [this.current],
    };
    this.saveManifest();
  }

  /** Writes events at the rate for the duration, then lets the mill finish and writes the final manifest. */
  async run(): Promise<WriterManifest> {
    const t0 = performance.now();
    const total = Math.round(this.opts.rate * this.opts.seconds);
    while (this.seq < total) {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * this.opts.rate));
      if (due > this.seq) this.writeEvents(due - this.seq);
      await new Promise((r) => setTimeout(r, 10));
    }
    // The requests still open complete now, so every RequestReceived has its ResponseComplete.
    this.writeEvents(0, true);
    while (this.timers.size > 0) await new Promise((r) => setTimeout(r, 50));
    closeSync(this.fd);
    closeSync(this.keysFd);
    this.manifest.done = true;
    this.manifest.finishedAt = new Date().toISOString();
    this.saveManifest();
    return this.manifest;
  }

  /** `n` more events (0 with flush: the open requests' completions), each one lumberjack Write. */
  private writeEvents(n: number, flush = false): void {
    let lines: string[] = [];
    let keys: string[] = [];
    let pendingBytes = 0;
    const flushPending = () => {
      if (lines.length === 0) return;
      // Keys first: the keys file always covers what the log holds.
      writeSync(this.keysFd, keys.join(''));
      writeSync(this.fd, lines.join(''));
      this.size += pendingBytes;
      this.current.bytes = this.size;
      this.current.endSeq = this.seq;
      this.manifest.written = this.seq;
      lines = [];
      keys = [];
      pendingBytes = 0;
    };
    const emit = (line: string, key: string) => {
      const len = Buffer.byteLength(line);
      // lumberjack's Write: rotate first when this write would take the file past max.
      if (this.size + pendingBytes + len > this.opts.maxSizeBytes && this.size + pendingBytes > 0) {
        flushPending();
        this.rotate();
      }
      lines.push(line);
      keys.push(`${key}\n`);
      pendingBytes += len;
      this.seq += 1;
    };
    const now = Date.now();
    const target = this.seq + n;
    while (flush ? this.open.length > 0 : this.seq < target) {
      const i = this.open.findIndex((o) => o.due <= this.seq);
      if (i >= 0 || flush) {
        const [{ req }] = this.open.splice(Math.max(i, 0), 1) as [{ req: Request; due: number }];
        emit(eventLine(this.rand, req, 'ResponseComplete', now), `${req.auditID}/ResponseComplete`);
      } else {
        const req = newRequest(this.rand, now);
        emit(eventLine(this.rand, req, 'RequestReceived', now), `${req.auditID}/RequestReceived`);
        this.open.push({ req, due: this.seq + 1 + Math.floor(this.rand() * 30) });
      }
    }
    flushPending();
  }

  /** lumberjack's rotate: openNew (rename to the backup name, create audit.log), then the mill. */
  private rotate(): void {
    closeSync(this.fd);
    // Backup names must differ; at a rotation per second the clock always moves on.
    let at = Date.now();
    if (at <= this.lastRotation) at = this.lastRotation + 1;
    this.lastRotation = at;
    const name = backupName('audit.log', new Date(at));
    renameSync(this.livePath, path.join(this.opts.dir, name));
    this.fd = openSync(this.livePath, 'w');
    const rotated = this.current;
    rotated.rotatedName = name;
    rotated.rotatedAt = new Date(at).toISOString();
    rotated.compress = this.rand() < this.opts.compressFraction;
    this.current = { index: rotated.index + 1, firstSeq: this.seq, endSeq: this.seq, bytes: 0, createdAt: new Date().toISOString() };
    this.size = 0;
    this.manifest.files.push(this.current);
    this.manifest.rotations += 1;
    this.mill();
    if (rotated.compress) {
      const [lo, hi] = this.opts.gzipDelayMs;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.compress(rotated);
      }, lo + this.rand() * (hi - lo));
      this.timers.add(timer);
    }
    this.saveManifest();
  }

  /** lumberjack's millRunOnce, removal part: keep the newest maxBackups backups (a pair once). */
  private mill(): void {
    if (this.opts.maxBackups <= 0) return;
    const live = this.manifest.files.filter((f) => f.rotatedName && !f.deletedAt);
    live.sort((a, b) => (a.rotatedName! < b.rotatedName! ? 1 : -1)); // newest first, by the time in the name
    const now = new Date().toISOString();
    for (const f of live.slice(this.opts.maxBackups)) {
      const plain = path.join(this.opts.dir, f.rotatedName!);
      const removed: string[] = [];
      for (const p of [plain, `${plain}.gz`]) {
        if (!existsSync(p)) continue;
        unlinkSync(p);
        removed.push(p);
      }
      f.deletedAt = now;
      f.deletedPaths = removed;
    }
  }

  /** lumberjack's compressLogFile: write <name>.gz completely, then remove the plain file. */
  private compress(f: WriterFile): void {
    if (f.deletedAt) return; // removed by the mill before its turn came
    const plain = path.join(this.opts.dir, f.rotatedName!);
    const gz = gzipSync(readFileSync(plain));
    const fd = openSync(`${plain}.gz`, 'w');
    try {
      for (let off = 0; off < gz.length; off += 64 * 1024) writeSync(fd, gz, off, Math.min(64 * 1024, gz.length - off));
    } finally {
      closeSync(fd);
    }
    unlinkSync(plain);
    f.gzippedAt = new Date().toISOString();
    this.saveManifest();
  }

  private saveManifest(): void {
    const tmp = `${this.opts.manifest}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.manifest));
    renameSync(tmp, this.opts.manifest);
  }
}

export async function runWriter(opts: WriterOptions): Promise<WriterManifest> {
  return new LumberjackWriter(opts).run();
}

// No top-level await: the e2e suite imports this module (through audit-chaos.ts), and mocha loads
// a spec whose module graph awaits at the top through import() instead of require(), which gives
// it a second instance of test/e2e/hooks.ts (whose cluster() is then never set).
if (process.argv[1] && path.resolve(process.argv[1]) === new URL(import.meta.url).pathname) {
  runWriter(parseWriterArgs(process.argv.slice(2))).then(
    (m) => process.stdout.write(`${JSON.stringify({ written: m.written, rotations: m.rotations, deleted: m.files.filter((f) => f.deletedAt).length })}\n`),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
