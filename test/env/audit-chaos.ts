// The AuditForwarder chaos scenario, shared by test/e2e/audit-chaos.test.ts and
// bench/audit-chaos.ts, written against the product's black-box behaviour only: what the agent
// process ships to a webhook, the status summary in `kubectl get auditforwarder -o json`, its
// metrics and the JSON lines it logs.
//
// A writer child (test/env/audit-log-writer.ts) writes a kube-apiserver audit log as lumberjack
// does (thousands of events/s, a rotation about every second, most backups gzipped 0.2-2 s later,
// a small maxBackups removing the oldest), while the real agent follows it to a receiver in this
// process. Meanwhile the agent is killed (SIGKILL several times, once with a batch the receiver
// read but has not answered, SIGTERM once) and restarted 1-3 s later from its checkpoint, and the
// receiver is down (refusing connections) once and slow (answering 3-8 s late) once, with no kill
// near the slow spell so the agent falls behind while running. When the writer has stopped and
// the agent has caught up, every event written is accounted for with the writer's manifest:
// received, or lost. A lost event is explained only if the writer removed the file holding it AND
// a gap the agent logged covers that file ("audit log lines skipped": the file's path in `files`,
// or its basename strictly between `after` and `before`) once the file was gone, AND no later
// event arrived while the file was still on disk (the agent reads in order: moving past a file it
// could still read is the skipped-rotation bug, whatever the gaps say).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { trackChild, type ControlPlane } from './controlplane.js';
import { createNode, waitFor } from './fixtures.js';
import { REPO_ROOT, ensureInstalled, getLocal, mustKubectl, startAgent, startController, type NetwardenProcess } from './netwarden.js';
import { seededRandom, type WriterFile, type WriterManifest } from './audit-log-writer.js';

export interface ChaosOptions {
  /** Names the forwarder, its node (<name>-cp) and the temp dir. */
  name: string;
  /** Starts a controller for the run (default true); false when one already runs on the control plane. */
  startController?: boolean;
  seed: string;
  /** Seconds the writer writes (default 45). */
  writeSeconds?: number;
  /** Events per second (default 2,500). */
  rate?: number;
  /** lumberjack MaxSize in bytes (default 2 MiB: a rotation about every 0.9 s at 2,500 events/s). */
  maxSizeBytes?: number;
  /** lumberjack MaxBackups (default 5). */
  maxBackups?: number;
  /** Share of backups gzipped (default 0.75). */
  compressFraction?: number;
  /** Agent SIGKILLs (default 3) and SIGTERMs (default 1), each restarted restartDelayMs later. */
  sigkills?: number;
  sigterms?: number;
  restartDelayMs?: [number, number];
  /** How long the receiver is down once (default 6-10 s) and slow once (default 6-10 s). */
  receiverDownMs?: [number, number];
  receiverSlowMs?: [number, number];
  /** How late the slow receiver answers (default 3-8 s). */
  slowAnswerMs?: [number, number];
  /** Budget for catching up once the writer has stopped (default 120 s). */
  catchUpTimeoutMs?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

/** One "audit log lines skipped" line of the agent's log (the gap contract). */
export interface GapRecord {
  reason?: string;
  files?: string[];
  after?: string;
  before?: string;
  bytes?: number;
  timestamp?: string;
}

export interface LostFile {
  index: number;
  name: string | undefined;
  lost: number;
  events: number;
  deleted: boolean;
  /** Named by a gap (path in files, or between after and before). */
  covered: boolean;
  /**
   * Named by a gap logged when the writer had already removed it. A file named only by gaps
   * logged before its removal was skipped while it was still on disk: that is no deletion's doing.
   */
  coveredAfterRemoval: boolean;
  /**
   * An event written after this file's was received while the file was still on disk (or it was
   * never removed): the agent had moved past lines it could still read. Set to that arrival time.
   */
  overtakenOnDiskAt?: string;
  compressed: boolean;
}

export interface ChaosResult {
  seed: string;
  written: number;
  /** Distinct written events the receiver got. */
  received: number;
  /** Event deliveries in all (duplicates included). */
  deliveries: number;
  lost: number;
  explained: number;
  unexplained: number;
  /** Deliveries beyond the first of an event, and per distinct event received. */
  duplicates: number;
  duplicateRate: number;
  /** Received keys the writer never wrote (should be none), and quarantined lines. */
  unknown: number;
  quarantined: number;
  files: number;
  rotations: number;
  filesDeleted: number;
  /** Files that hold lost events. */
  lostFiles: LostFile[];
  gapRecords: GapRecord[];
  /** The node's status entry at the end. */
  gaps: number;
  lastGap: string | undefined;
  skippedBytes: number | undefined;
  lagBytes: number | undefined;
  /** netwarden_audit_gaps_total of the last agent process (counts since its start only). */
  gapsMetric: number | undefined;
  /** "tail dataLoss" warnings in the agent log (the follower's own lines, before the gap contract). */
  tailDataLossWarnings: number;
  /** The agent's warn and error lines, counted by message (all its runs). */
  agentWarnings: Record<string, number>;
  caughtUp: 'all-on-disk-received' | 'lag-zero' | 'timeout';
  catchUpSeconds: number;
  agentStarts: number;
  timeline: string[];
}

const SKIP_MESSAGE = 'audit log lines skipped';
const WRITER = path.join(REPO_ROOT, 'test/env/audit-log-writer.ts');

// ---- the receiver: a webhook on 127.0.0.1 that can be down or slow ----
export class ChaosReceiver {
  /** auditID/stage → deliveries. */
  readonly counts = new Map<string, number>();
  /** auditID/stage → when it first arrived (ms since the epoch). */
  readonly firstArrival = new Map<string, number>();
  deliveries = 0;
  quarantined = 0;
  batches = 0;
  port = 0;
  /** When set, answers that many ms after the body arrived (drawn per request). */
  slow: (() => number) | null = null;
  private server: http.Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();

  async start(): Promise<void> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 30_000;
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Down: the port refuses connections, open ones are cut. */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (!s) return;
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    for (const sock of this.sockets) sock.destroy();
    await closed;
  }

  url(): string {
    return `http://127.0.0.1:${this.port}/audit`;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('error', () => undefined);
    req.on('end', () => {
      const raw = Buffer.concat(parts);
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      // What arrived whole was received, whether or not the sender waits for the answer.
      this.take(body.toString('utf8'), req.headers['content-type']);
      const answer = () => {
        if (!res.destroyed) res.writeHead(200).end();
      };
      const delay = this.slow?.();
      if (delay === undefined) return answer();
      const t = setTimeout(() => {
        this.timers.delete(t);
        answer();
      }, delay);
      this.timers.add(t);
    });
  }

  private take(text: string, contentType: string | undefined): void {
    this.batches += 1;
    const now = Date.now();
    const items: Record<string, unknown>[] = contentType === 'application/json'
      ? (JSON.parse(text) as { items: Record<string, unknown>[] }).items
      : text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const e of items) {
      if (e.kind === 'NetwardenQuarantinedLine') {
        this.quarantined += 1;
        continue;
      }
      const key = `${String(e.auditID)}/${String(e.stage)}`;
      this.deliveries += 1;
      const n = this.counts.get(key);
      this.counts.set(key, (n ?? 0) + 1);
      if (n === undefined) this.firstArrival.set(key, now);
    }
  }
}

// ---- gaps ----
const strip = (n: string): string => (n.endsWith('.gz') ? n.slice(0, -3) : n);

/** Whether a rotated file (its basename without .gz) is covered by a gap record. */
export function gapCovers(g: GapRecord, dir: string, rotatedName: string): boolean {
  const plain = path.join(dir, rotatedName);
  if ((g.files ?? []).some((f) => path.resolve(f) === plain || path.resolve(f) === `${plain}.gz`)) return true;
  if (g.after === undefined && g.before === undefined) return false;
  // lumberjack names sort by time; the live audit.log (or a missing before) is +infinity.
  const after = g.after === undefined ? undefined : strip(path.basename(g.after));
  const before = g.before === undefined ? undefined : strip(path.basename(g.before));
  const aboveAfter = after === undefined || rotatedName > after;
  const belowBefore = before === undefined || before === 'audit.log' || rotatedName < before;
  return aboveAfter && belowBefore;
}

export function gapRecordsOf(logs: Record<string, unknown>[], forwarder: string): GapRecord[] {
  return logs
    .filter((l) => l.message === SKIP_MESSAGE && l.key === forwarder)
    .map((l) => ({
      reason: typeof l.reason === 'string' ? l.reason : undefined,
      files: Array.isArray(l.files) ? l.files.map(String) : undefined,
      after: typeof l.after === 'string' ? l.after : undefined,
      before: typeof l.before === 'string' ? l.before : undefined,
      bytes: typeof l.bytes === 'number' ? l.bytes : undefined,
      timestamp: typeof l.timestamp === 'string' ? l.timestamp : undefined,
    }));
}

// ---- the accounting, from the manifest, the keys and what arrived ----
/** Slack between the writer's clock read before its unlink and the agent's log timestamp (one machine, one clock). */
const CLOCK_SLACK_MS = 100;

/**
 * Accounts for every written event. A lost event is explained iff its file was removed by the
 * writer, a gap logged once the file was gone names it, and nothing written after it arrived
 * while the file was still on disk (the agent reads in order, one batch at a time: moving past a
 * file it could still read is the skipped-rotation bug, whatever the gaps say).
 */
export function account(
  manifest: WriterManifest, keys: string[], counts: Map<string, number>, gapRecords: GapRecord[], firstArrival: Map<string, number> = new Map(),
): Pick<ChaosResult, 'written' | 'received' | 'lost' | 'explained' | 'unexplained' | 'duplicates' | 'duplicateRate' | 'unknown' | 'lostFiles'> {
  const written = keys.length;
  // laterArrival[s]: the earliest arrival of any event with sequence >= s.
  const laterArrival = new Float64Array(written + 1).fill(Infinity);
  for (let seq = written - 1; seq >= 0; seq--) laterArrival[seq] = Math.min(laterArrival[seq + 1]!, firstArrival.get(keys[seq]!) ?? Infinity);
  let received = 0;
  const lostPerFile = new Map<WriterFile, number>();
  const fileOf = fileLookup(manifest.files);
  for (let seq = 0; seq < written; seq++) {
    if (counts.has(keys[seq]!)) {
      received += 1;
      continue;
    }
    const f = fileOf(seq);
    lostPerFile.set(f, (lostPerFile.get(f) ?? 0) + 1);
  }
  const writtenKeys = new Set(keys);
  let duplicates = 0;
  let unknown = 0;
  for (const [k, n] of counts) {
    duplicates += n - 1;
    if (!writtenKeys.has(k)) unknown += 1;
  }
  const lostFiles: LostFile[] = [...lostPerFile].map(([f, lost]) => {
    const covering = f.rotatedName === undefined ? [] : gapRecords.filter((g) => gapCovers(g, manifest.dir, f.rotatedName!));
    const removedAt = f.deletedAt === undefined ? undefined : Date.parse(f.deletedAt);
    const overtaken = laterArrival[Math.min(f.endSeq, written)]!;
    const overtakenOnDisk = overtaken < (removedAt ?? Infinity) - CLOCK_SLACK_MS;
    return {
      index: f.index,
      name: f.rotatedName,
      lost,
      events: f.endSeq - f.firstSeq,
      deleted: removedAt !== undefined,
      covered: covering.length > 0,
      coveredAfterRemoval: removedAt !== undefined && covering.some((g) => g.timestamp === undefined || Date.parse(g.timestamp) >= removedAt - CLOCK_SLACK_MS),
      compressed: f.gzippedAt !== undefined,
      ...(overtakenOnDisk ? { overtakenOnDiskAt: new Date(overtaken).toISOString() } : {}),
    };
  }).sort((a, b) => a.index - b.index);
  const explained = lostFiles.filter((f) => f.deleted && f.coveredAfterRemoval && !f.overtakenOnDiskAt).reduce((n, f) => n + f.lost, 0);
  const lost = written - received;
  return { written, received, lost, explained, unexplained: lost - explained, duplicates, duplicateRate: received ? duplicates / received : 0, unknown, lostFiles };
}

function fileLookup(files: WriterFile[]): (seq: number) => WriterFile {
  const sorted = [...files].sort((a, b) => a.firstSeq - b.firstSeq);
  return (seq) => {
    let lo = 0;
    let hi = sorted.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (sorted[mid]!.firstSeq <= seq) lo = mid;
      else hi = mid - 1;
    }
    return sorted[lo]!;
  };
}

// ---- the scenario ----
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface NodeEntry {
  node?: string;
  lagBytes?: number;
  gaps?: number;
  lastGap?: string;
  skippedBytes?: number;
  shippedEvents?: number;
  lastError?: string;
}

/**
 * What `kubectl get auditforwarder -o json` shows of the node: the forwarder selects only it, so
 * the summary's totals are its own, and its last gap is among the problems.
 */
async function nodeEntry(cp: ControlPlane, forwarder: string, node: string): Promise<NodeEntry | undefined> {
  const af = JSON.parse(await mustKubectl(cp, ['get', 'auditforwarder', forwarder, '-o', 'json'])) as {
    status?: { nodeCount?: number; lagBytes?: number; gaps?: number; skippedBytes?: number; shippedEvents?: number; problems?: Array<{ node: string; message: string }> };
  };
  const s = af.status;
  if (!s?.nodeCount) return undefined;
  const mine = (s.problems ?? []).filter((p) => p.node === node);
  const gap = mine.find((p) => p.message.startsWith('lines skipped ('));
  const lastGap = gap ? gap.message.slice(gap.message.indexOf('; last: ') + '; last: '.length) : undefined;
  const lastError = mine.find((p) => p !== gap)?.message;
  return { node, lagBytes: s.lagBytes ?? 0, gaps: s.gaps ?? 0, skippedBytes: s.skippedBytes ?? 0, shippedEvents: s.shippedEvents ?? 0, ...(lastGap ? { lastGap } : {}), ...(lastError ? { lastError } : {}) };
}

export async function runAuditChaos(cp: ControlPlane, opts: ChaosOptions): Promise<ChaosResult> {
  const writeSeconds = opts.writeSeconds ?? 45;
  const W = writeSeconds * 1000;
  const rand = seededRandom(`chaos:${opts.seed}`);
  const between = ([lo, hi]: [number, number]) => lo + rand() * (hi - lo);
  const say = opts.log ?? (() => undefined);
  const node = `${opts.name}-cp`;
  const forwarder = opts.name;
  // Under the control plane's directory: the agents' --audit-log-dir, and the admission policy's.
  const tmp = mkdtempSync(path.join(cp.dir, `nw-${opts.name}-`));
  const logDir = path.join(tmp, 'log');
  const livePath = path.join(logDir, 'audit.log');
  const manifestPath = path.join(tmp, 'manifest.json');
  mkdirSync(logDir);
  writeFileSync(livePath, '');
  const rx = new ChaosReceiver();
  const agents: NetwardenProcess[] = [];
  let agent: NetwardenProcess | undefined;
  let writer: ChildProcess | undefined;
  const timeline: string[] = [];
  let t0 = Date.now();
  const mark = (what: string) => {
    const line = `${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s  ${what}`;
    timeline.push(line);
    say(line);
  };
  const launchAgent = async () => {
    agent = await startAgent(cp, node);
    agents.push(agent);
  };
  let controller: NetwardenProcess | undefined;
  try {
    await ensureInstalled(cp);
    // The agent reports its progress to the controller, which writes the summary this reads.
    if (opts.startController !== false) controller = await startController(cp, `${opts.name}-controller`);
    await createNode(cp.kubeConfig(), node, { controlPlane: true });
    await rx.start();
    await mustKubectl(cp, ['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'netwarden.io/v1alpha1', kind: 'AuditForwarder', metadata: { name: forwarder },
      spec: {
        nodeSelector: { 'kubernetes.io/hostname': node },
        source: { path: livePath },
        batch: { maxBytes: 4 * 1024 * 1024, maxWait: '1s' },
        sink: { webhook: { url: rx.url(), allowInsecure: true, format: 'ndjson', gzip: false } },
      },
    }));
    await launchAgent();
    await waitFor(async () => (await nodeEntry(cp, forwarder, node)) !== undefined, { timeoutMs: 60_000, intervalMs: 500, description: `the ${node} entry in ${forwarder}'s status` });

    // The schedule, drawn from the seed: agent kills spread over the run, one outage, one slow spell.
    const signals: NodeJS.Signals[] = [...Array<NodeJS.Signals>(opts.sigkills ?? 3).fill('SIGKILL'), ...Array<NodeJS.Signals>(opts.sigterms ?? 1).fill('SIGTERM')];
    for (let i = signals.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [signals[i], signals[j]] = [signals[j]!, signals[i]!];
    }
    // No kill from 7 s before the slow spell (a restart's time) to 5 s after it, so the agent
    // falls behind while it keeps running, the case of the report; kills and the outage share
    // the rest of the run.
    const downMs = between(opts.receiverDownMs ?? [6000, 10000]);
    const slowMs = between(opts.receiverSlowMs ?? [6000, 10000]);
    const usableFrom = 0.08 * W;
    const usable = 0.82 * W;
    const lead = 7000;
    const quiet = lead + slowMs + 5000;
    const quietFrom = usableFrom + rand() * Math.max(0, usable - quiet);
    const slowAt = quietFrom + lead;
    const quietTo = quietFrom + quiet;
    const rest = Math.max(1000, usable - quiet);
    const place = (v: number) => usableFrom + v + (usableFrom + v >= quietFrom ? quiet : 0); // rest → run time
    const slot = rest / Math.max(1, signals.length);
    const kills = signals.map((signal, i) => ({ signal, at: place(i * slot + rand() * 0.5 * slot), restartMs: between(opts.restartDelayMs ?? [1000, 3000]) }));
    let downV = rand() * Math.max(0, rest - downMs);
    const boundary = quietFrom - usableFrom;
    if (downV < boundary && downV + downMs > boundary) downV = boundary + downMs <= rest ? boundary : Math.max(0, boundary - downMs);
    const downAt = place(downV);
    const slowAnswer = opts.slowAnswerMs ?? [3000, 8000];

    writer = spawn(process.execPath, ['--import', 'tsx', WRITER, `--dir=${logDir}`, `--manifest=${manifestPath}`, `--seed=${opts.seed}`,
      `--rate=${opts.rate ?? 2500}`, `--seconds=${writeSeconds}`, `--max-size=${opts.maxSizeBytes ?? 2 * 1024 * 1024}`,
      `--max-backups=${opts.maxBackups ?? 5}`, `--compress-fraction=${opts.compressFraction ?? 0.75}`], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(writer);
    let writerErr = '';
    writer.stderr?.on('data', (b: Buffer) => (writerErr += b.toString()));
    writer.stdout?.resume();
    const writerDone = new Promise<number | null>((resolve) => writer!.once('exit', (code) => resolve(code)));
    t0 = Date.now();
    mark(`writer started: seed ${opts.seed}, ${opts.rate ?? 2500} events/s for ${writeSeconds} s, maxBackups ${opts.maxBackups ?? 5}`);

    const agentChaos = (async () => {
      for (const k of kills) {
        await sleep(Math.max(0, t0 + k.at - Date.now()));
        // A kill delayed by the restart before it waits out the quiet window.
        if (Date.now() - t0 >= quietFrom && Date.now() - t0 < quietTo) await sleep(t0 + quietTo - Date.now());
        const victim = agent!;
        // The first SIGKILL hits batches the receiver has read but not answered yet: they come
        // again from the checkpoint (at least once), the duplicates counted below.
        const midBatch = k === kills.find((x) => x.signal === 'SIGKILL');
        if (midBatch) {
          rx.slow = () => 60_000;
          await sleep(2_500);
        }
        mark(`agent ${k.signal}${midBatch ? ' with its batch read by the receiver but not answered' : ''}`);
        victim.child.kill(k.signal);
        if (midBatch) rx.slow = null;
        const exited = await Promise.race([victim.exited.then(() => true), sleep(20_000).then(() => false)]);
        if (!exited) {
          mark('agent still running 20 s after SIGTERM: SIGKILL');
          await victim.kill('SIGKILL');
        }
        await sleep(k.restartMs);
        await launchAgent();
        mark(`agent restarted (${Math.round(k.restartMs)} ms after its exit)`);
      }
    })();
    const receiverChaos = (async () => {
      const spells = [{ at: downAt, ms: downMs, kind: 'down' as const }, { at: slowAt, ms: slowMs, kind: 'slow' as const }].sort((a, b) => a.at - b.at);
      for (const s of spells) {
        await sleep(Math.max(0, t0 + s.at - Date.now()));
        if (s.kind === 'down') {
          await rx.stop();
          mark(`receiver down for ${(s.ms / 1000).toFixed(1)} s`);
          await sleep(s.ms);
          await rx.start();
          mark('receiver up');
        } else {
          rx.slow = () => between(slowAnswer);
          mark(`receiver slow (answers ${slowAnswer[0] / 1000}-${slowAnswer[1] / 1000} s late) for ${(s.ms / 1000).toFixed(1)} s`);
          await sleep(s.ms);
          rx.slow = null;
          mark('receiver fast again');
        }
      }
    })();

    const code = await writerDone;
    if (code !== 0) throw new Error(`audit log writer exited with ${code}: ${writerErr.slice(-2000)}`);
    await Promise.all([agentChaos, receiverChaos]);
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as WriterManifest;
    const keys = readFileSync(manifest.keysFile, 'utf8').split('\n');
    keys.pop();
    mark(`writer done: ${manifest.written} events, ${manifest.rotations} rotations, ${manifest.files.filter((f) => f.deletedAt).length} files removed`);

    // Caught up: every event still on disk received, or the status says nothing is left to ship.
    const onDisk = manifest.files.filter((f) => !f.deletedAt).flatMap((f) => keys.slice(f.firstSeq, f.endSeq));
    const catchStart = Date.now();
    const deadline = catchStart + (opts.catchUpTimeoutMs ?? 120_000);
    let caughtUp: ChaosResult['caughtUp'] = 'timeout';
    let zeroSince: number | undefined;
    while (Date.now() < deadline) {
      if (onDisk.every((k) => rx.counts.has(k))) {
        caughtUp = 'all-on-disk-received';
        break;
      }
      const entry = await nodeEntry(cp, forwarder, node).catch(() => undefined);
      // Zero for longer than a report (5 s) plus a summary write (10 s), so it is not from before the last writes.
      if (entry?.lagBytes === 0) {
        zeroSince ??= Date.now();
        if (Date.now() - zeroSince >= 16_000) {
          caughtUp = 'lag-zero';
          break;
        }
      } else zeroSince = undefined;
      await sleep(1_000);
    }
    const catchUpSeconds = (Date.now() - catchStart) / 1000;
    mark(`caught up (${caughtUp}) after ${catchUpSeconds.toFixed(1)} s`);
    // One more report and summary write, so status shows the last gaps and lag.
    await sleep(16_000);
    const entry = await nodeEntry(cp, forwarder, node);
    const metrics = await getLocal(agent!.metricsPort, '/metrics').then((r) => r.body, () => '');
    const metric = new RegExp(`^netwarden_audit_gaps_total\\{forwarder="${forwarder}"\\} (\\d+)`, 'm').exec(metrics)?.[1];
    const logs = agent!.logs();
    const gapRecords = gapRecordsOf(logs, forwarder);
    const acc = account(manifest, keys, rx.counts, gapRecords, rx.firstArrival);
    return {
      seed: opts.seed,
      ...acc,
      deliveries: rx.deliveries,
      quarantined: rx.quarantined,
      files: manifest.files.length,
      rotations: manifest.rotations,
      filesDeleted: manifest.files.filter((f) => f.deletedAt).length,
      gapRecords,
      gaps: entry?.gaps ?? 0,
      lastGap: entry?.lastGap,
      skippedBytes: entry?.skippedBytes,
      lagBytes: entry?.lagBytes,
      gapsMetric: metric === undefined ? undefined : Number(metric),
      tailDataLossWarnings: logs.filter((l) => l.message === 'tail dataLoss').length,
      agentWarnings: logs.filter((l) => l.level === 'warn' || l.level === 'error').reduce<Record<string, number>>((acc, l) => {
        const m = String(l.message);
        acc[m] = (acc[m] ?? 0) + 1;
        return acc;
      }, {}),
      caughtUp,
      catchUpSeconds,
      agentStarts: agents.length,
      timeline,
    };
  } finally {
    if (writer && writer.exitCode === null && writer.signalCode === null) writer.kill('SIGKILL');
    await Promise.all(agents.map((a) => a.kill('SIGKILL')));
    await controller?.kill();
    await rx.stop();
    // The node goes too: suites that run later on a shared control plane count the nodes their
    // resources select (an agent-less control-plane node would never report).
    await cp.kubectl(['delete', 'auditforwarder', forwarder, '--ignore-not-found']).catch(() => undefined);
    await cp.kubectl(['delete', 'node', node, '--ignore-not-found']).catch(() => undefined);
    if (process.env.NETWARDEN_KEEP_TMP === '1') say(`keeping ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  }
}

/** The result as a few lines for a test or bench log. */
export function describeChaos(r: ChaosResult): string {
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const lines = [
    `seed ${r.seed}: written ${r.written}, received ${r.received} (${r.deliveries} deliveries), lost ${r.lost}, explained by deletion ${r.explained}, unexplained ${r.unexplained}`,
    `duplicates ${r.duplicates} (${pct(r.duplicateRate)}), status gaps ${r.gaps}${r.lastGap ? ` (last: ${r.lastGap})` : ''}, skippedBytes ${r.skippedBytes ?? '-'}, gap log lines ${r.gapRecords.length}, tail dataLoss warnings ${r.tailDataLossWarnings}`,
    `${r.files} files, ${r.rotations} rotations, ${r.filesDeleted} removed; agent started ${r.agentStarts} times; caught up: ${r.caughtUp} in ${r.catchUpSeconds.toFixed(1)} s; quarantined ${r.quarantined}, unknown keys ${r.unknown}`,
  ];
  const warnings = Object.entries(r.agentWarnings);
  if (warnings.length) lines.push(`agent warnings: ${warnings.map(([m, n]) => `${JSON.stringify(m)} x${n}`).join(', ')}`);
  for (const f of r.lostFiles) {
    lines.push(`  lost ${f.lost}/${f.events} of file #${f.index} ${f.name ?? '(never rotated)'}${f.compressed ? ' (gzipped)' : ''}: ${f.deleted ? 'removed by the writer' : 'STILL ON DISK'}, ${!f.covered ? 'NOT named by any gap' : f.coveredAfterRemoval || !f.deleted ? 'named by a gap' : 'named only by gaps logged BEFORE its removal (skipped while on disk)'}${f.overtakenOnDiskAt ? `; later events arrived at ${f.overtakenOnDiskAt}, while it was STILL ON DISK` : ''}`);
  }
  return lines.join('\n');
}
