// This node's report about one DropTail or AuditForwarder, sent to the controller
// (src/apis/nodereport.ts) rather than written into the object's status: a changed report at most
// every REPORT_MIN_INTERVAL_MS, and a heartbeat every REPORT_HEARTBEAT_MS (± jitter, so 5,000
// agents started together do not report in lockstep) even when nothing changed, which is how the
// controller tells a quiet node from a dead one. Failures are retried with backoff: unreachable /
// 5xx from 1 s (honouring Retry-After), refusals (401/403/404: RBAC or the controller's cache must
// change first) from 5 s. After stop() nothing more is sent; the controller forgets the node when
// it is no longer selected or the object is gone.
import { Backoff, type BackoffOptions } from '../util/backoff.js';
import { errorMessage, loggerFor, type Logger } from '../util/log.js';
import { REPORT_HEARTBEAT_MS, REPORT_MIN_INTERVAL_MS } from '../apis/nodereport.js';
import type { SendOutcome } from './droptail/client.js';

/** What posts a report: the agent's controller client (DropBatchClient), or a test double. */
export interface ReportPoster {
  post(body: Buffer): Promise<SendOutcome>;
  resetConnections(): void;
}

export interface NodeReporterOptions<R> {
  /** Log key, e.g. the object's name. */
  name: string;
  component: string;
  poster: ReportPoster;
  /** The report as of now. */
  snapshot: () => R | Promise<R>;
  minIntervalMs?: number;
  heartbeatMs?: number;
  /** Heartbeats come at heartbeatMs · (1 ± jitter). Default 0.2. */
  jitter?: number;
  /** For a source that cannot tell when it changed (the audit pipeline's counters): look this often. */
  pollMs?: number;
  /** Delay of the first report after start (the sources have had a moment to open). Default 1 s. */
  firstDelayMs?: number;
  retryBackoff?: BackoffOptions;
  refusedBackoff?: BackoffOptions;
  random?: () => number;
  log?: Logger;
}

export class NodeReporter<R> {
  private readonly log: Logger;
  private readonly minIntervalMs: number;
  private readonly heartbeatMs: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private readonly retryBackoff: Backoff;
  private readonly refusedBackoff: Backoff;
  private timer: NodeJS.Timeout | undefined;
  private dueAt = Infinity;
  private sentBody: string | undefined;
  private lastSentAt = -Infinity;
  private nextHeartbeatAt = -Infinity;
  private failing = false;
  private lastFailure: string | undefined;
  private failures = 0;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Reports the controller accepted (for tests and the log). */
  accepted = 0;

  constructor(private readonly opts: NodeReporterOptions<R>) {
    this.log = opts.log ?? loggerFor(opts.component, opts.name);
    this.minIntervalMs = opts.minIntervalMs ?? REPORT_MIN_INTERVAL_MS;
    this.heartbeatMs = opts.heartbeatMs ?? REPORT_HEARTBEAT_MS;
    this.jitter = Math.min(0.9, Math.max(0, opts.jitter ?? 0.2));
    this.random = opts.random ?? Math.random;
    this.retryBackoff = new Backoff({ initialMs: 1_000, maxMs: 30_000, minMs: 500, random: this.random, ...opts.retryBackoff });
    this.refusedBackoff = new Backoff({ initialMs: 5_000, maxMs: 300_000, minMs: 2_500, random: this.random, ...opts.refusedBackoff });
  }

  start(): void {
    this.schedule(this.opts.firstDelayMs ?? 1_000);
  }

  /** Something changed: report at the next free slot (at most one report per minIntervalMs). */
  poke(): void {
    if (this.stopped || this.failing) return; // a failing send retries on its own backoff
    this.schedule(Math.max(0, this.lastSentAt + this.minIntervalMs - Date.now()));
  }

  /** Sends nothing more; waits for a report in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Runs at `delayMs` from now unless a run is due sooner already. */
  private schedule(delayMs: number): void {
    if (this.stopped) return;
    const at = Date.now() + delayMs;
    if (this.timer !== undefined && this.dueAt <= at) return;
    clearTimeout(this.timer);
    this.dueAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.dueAt = Infinity;
      this.running = this.running.then(() => this.tick());
    }, delayMs);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let body: string;
    try {
      body = JSON.stringify(await this.opts.snapshot());
    } catch (err) {
      this.log.warn('cannot build the node report', { error: errorMessage(err) });
      return this.schedule(this.minIntervalMs);
    }
    const now = Date.now();
    if (!this.failing && body === this.sentBody && now < this.nextHeartbeatAt) return this.schedule(Math.min(this.nextHeartbeatAt - now, this.opts.pollMs ?? Infinity));
    let outcome: SendOutcome;
    try {
      outcome = await this.opts.poster.post(Buffer.from(body));
    } catch (err) {
      outcome = { kind: 'retry', message: errorMessage(err) };
    }
    if (this.stopped) return;
    if (outcome.kind === 'accepted') {
      this.accepted++;
      this.sentBody = body;
      this.lastSentAt = Date.now();
      this.nextHeartbeatAt = this.lastSentAt + this.heartbeatMs * (1 - this.jitter + 2 * this.jitter * this.random());
      this.retryBackoff.reset();
      this.refusedBackoff.reset();
      if (this.failing) this.log.info('reporting to the controller works again', { after: this.failures });
      this.failing = false;
      this.failures = 0;
      this.lastFailure = undefined;
      return this.schedule(Math.min(this.nextHeartbeatAt - this.lastSentAt, Math.max(this.minIntervalMs, this.opts.pollMs ?? Infinity)));
    }
    this.failing = true;
    this.failures++;
    const delayMs =
      outcome.kind === 'retry'
        ? Math.min(this.retryBackoff.maxMs, Math.max(this.retryBackoff.next(), outcome.retryAfterMs ?? 0))
        : this.refusedBackoff.next();
    // Logged on every change, and then only every 10th repeat, so a long outage does not flood the log.
    if (outcome.message !== this.lastFailure || this.failures % 10 === 0) this.log.warn('reporting to the controller failed', { error: outcome.message, retryInMs: delayMs, failures: this.failures });
    this.lastFailure = outcome.message;
    this.schedule(delayMs);
  }
}
