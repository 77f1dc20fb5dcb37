// Leader election on a coordination.k8s.io/v1 Lease with client-go semantics:
//  - a candidate reads the Lease; it takes it when there is none (create; 409 = lost the race),
//    when holderIdentity is empty (released), or when the holder has not renewed for
//    leaseDurationSeconds as measured on OUR clock from when we last saw the record change
//    (client-go's observedTime: immune to clock skew between replicas);
//  - writes are replace (PUT) calls carrying the resourceVersion that was read: a concurrent
//    writer makes them fail with 409 Conflict, which simply means "not acquired/renewed";
//  - leaseTransitions is incremented whenever the holder changes, acquireTime set on acquisition;
//  - the leader renews every retryPeriod; if it cannot renew within renewDeadline it has lost
//    leadership (onStoppedLeading('lost')). renewDeadline < leaseDuration so that a leader gives up
//    before another replica can consider the lease expired;
//  - stop() while leading releases the lease (holderIdentity "", leaseDurationSeconds 1) so that a
//    standby takes over on its next retry instead of waiting for expiry.

import { CoordinationV1Api, KubeConfig, V1MicroTime, type V1Lease, type V1LeaseSpec } from '@kubernetes/client-node';
import { errorMessage, loggerFor, type Logger } from '../util/log.js';
import { leaderGauge } from './metrics.js';

export type StoppedReason = 'lost' | 'released';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  renewDeadlineSeconds?: number;
  retryPeriodSeconds?: number;
  onStartedLeading?: () => void | Promise<void>;
  onStoppedLeading?: (reason: StoppedReason) => void | Promise<void>;
  onNewLeader?: (identity: string) => void;
}

const mono = (): number => performance.now();

function statusCode(err: unknown): number | undefined {
  if (err && typeof err === 'object') {
    const e = err as { code?: unknown; statusCode?: unknown };
    if (typeof e.code === 'number') return e.code;
    if (typeof e.statusCode === 'number') return e.statusCode;
  }
  return undefined;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${Math.round(ms)}ms`)), Math.max(0, ms));
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export class LeaderElector {
  readonly identity: string;
  private readonly api: CoordinationV1Api;
  private readonly opts: LeaderElectionOptions;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly log: Logger;
  private leading = false;
  private stopped = false;
  private running: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private observedKey = '';
  private observedTime = 0;
  private observedHolder = '';
  private lastApiContact = -Infinity;

  constructor(kc: KubeConfig, opts: LeaderElectionOptions) {
    this.api = kc.makeApiClient(CoordinationV1Api);
    this.opts = opts;
    this.identity = opts.identity;
    this.leaseDurationMs = (opts.leaseDurationSeconds ?? 15) * 1000;
    this.renewDeadlineMs = (opts.renewDeadlineSeconds ?? 10) * 1000;
    this.retryPeriodMs = (opts.retryPeriodSeconds ?? 2) * 1000;
    if (this.renewDeadlineMs >= this.leaseDurationMs) throw new Error('leader election: renewDeadline must be less than leaseDuration');
    if (this.retryPeriodMs >= this.renewDeadlineMs) throw new Error('leader election: retryPeriod must be less than renewDeadline');
    this.log = loggerFor('leader-election', `${opts.namespace}/${opts.name}`);
    leaderGauge.set({ identity: this.identity, lease: `${opts.namespace}/${opts.name}` }, 0);
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** Holder seen in the last successful read of the lease ("" when unheld). */
  observedLeader(): string {
    return this.observedHolder;
  }

  /** Milliseconds since the API server last answered a lease request (Infinity if never). */
  msSinceApiContact(): number {
    return mono() - this.lastApiContact;
  }

  /**
   * Runs the election in the background: tries to acquire, then renews. The returned promise
   * resolves when leadership is lost or stop() was called.
   */
  start(): Promise<void> {
    this.running ??= this.loop();
    return this.running;
  }

  /** Stops campaigning; releases the lease if held. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  private async loop(): Promise<void> {
    this.log.info('campaigning for leadership', { identity: this.identity });
    while (!this.stopped) {
      if (await this.attempt(this.renewDeadlineMs)) break;
      await this.sleep(this.retryPeriodMs * (1 + 0.2 * Math.random()));
    }
    if (this.stopped) return;
    this.setLeading(true);
    this.log.info('became leader', { identity: this.identity });
    void Promise.resolve()
      .then(() => this.opts.onStartedLeading?.())
      .catch((err: unknown) => this.log.error('onStartedLeading failed', { error: errorMessage(err) }));

    let lost = false;
    while (!this.stopped && !lost) {
      await this.sleep(this.retryPeriodMs);
      if (this.stopped) break;
      const deadline = mono() + this.renewDeadlineMs;
      let renewed = false;
      while (!this.stopped && mono() < deadline) {
        if (await this.attempt(deadline - mono())) {
          renewed = true;
          break;
        }
        await this.sleep(Math.min(this.retryPeriodMs, Math.max(0, deadline - mono())));
      }
      if (!renewed && !this.stopped) lost = true;
    }

    let reason: StoppedReason = 'lost';
    if (lost) {
      this.log.error('leadership lost: could not renew the lease within the renew deadline', { renewDeadlineMs: this.renewDeadlineMs });
    } else {
      reason = 'released';
      await this.release();
    }
    this.setLeading(false);
    try {
      await this.opts.onStoppedLeading?.(reason);
    } catch (err) {
      this.log.error('onStoppedLeading failed', { error: errorMessage(err) });
    }
  }

  private setLeading(v: boolean): void {
    this.leading = v;
    leaderGauge.set({ identity: this.identity, lease: `${this.opts.namespace}/${this.opts.name}` }, v ? 1 : 0);
  }

  private async attempt(timeoutMs: number): Promise<boolean> {
    try {
      return await withTimeout(this.tryAcquireOrRenew(), timeoutMs);
    } catch (err) {
      this.log.warn('lease acquire/renew failed', { error: errorMessage(err) });
      return false;
    }
  }

  private observe(spec: V1LeaseSpec | undefined, resourceVersion: string | undefined): void {
    this.lastApiContact = mono();
    const holder = spec?.holderIdentity ?? '';
    const key = `${holder}|${String(spec?.renewTime ?? '')}|${resourceVersion ?? ''}`;
    if (key !== this.observedKey) {
      this.observedKey = key;
      this.observedTime = mono();
      if (holder !== this.observedHolder) {
        this.observedHolder = holder;
        if (holder) this.opts.onNewLeader?.(holder);
      }
    }
  }

  /** One round: true when we hold the lease afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name } = this.opts;
    const now = new V1MicroTime();
    const leaseDurationSeconds = this.leaseDurationMs / 1000;
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ namespace, name });
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
      this.lastApiContact = mono();
      const spec: V1LeaseSpec = { holderIdentity: this.identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 };
      try {
        const created = await this.api.createNamespacedLease({ namespace, body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec } });
        this.observe(created.spec, created.metadata?.resourceVersion);
        return true;
      } catch (e) {
        if (statusCode(e) === 409) return false;
        throw e;
      }
    }
    const old = lease.spec ?? {};
    this.observe(old, lease.metadata?.resourceVersion);
    const holder = old.holderIdentity ?? '';
    const oldDurationMs = (old.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    if (holder !== '' && holder !== this.identity && this.observedTime + oldDurationMs > mono()) return false;

    const weHeldIt = holder === this.identity;
    const spec: V1LeaseSpec = {
      ...old,
      holderIdentity: this.identity,
      leaseDurationSeconds,
      renewTime: now,
      acquireTime: weHeldIt && old.acquireTime ? old.acquireTime : now,
      leaseTransitions: weHeldIt ? (old.leaseTransitions ?? 0) : (old.leaseTransitions ?? 0) + 1,
    };
    try {
      const updated = await this.replaceLease(lease, spec);
      this.observe(updated.spec, updated.metadata?.resourceVersion);
      if (!weHeldIt) this.log.info('acquired lease', { previousHolder: holder || '(none)', leaseTransitions: spec.leaseTransitions });
      return true;
    } catch (err) {
      if (statusCode(err) === 409) return false;
      throw err;
    }
  }

  /** Replaces the Lease's spec, guarded by the resourceVersion we read (409 when someone wrote first). */
  private replaceLease(lease: V1Lease, spec: V1LeaseSpec): Promise<V1Lease> {
    const { namespace, name } = this.opts;
    const { resourceVersion, labels, annotations } = lease.metadata ?? {};
    return this.api.replaceNamespacedLease({
      namespace,
      name,
      body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace, resourceVersion, labels, annotations }, spec },
    });
  }

  /** Clears holderIdentity if we still hold the lease, so a standby can take over at once. */
  private async release(): Promise<void> {
    const { namespace, name } = this.opts;
    try {
      const lease = await withTimeout(this.api.readNamespacedLease({ namespace, name }), this.renewDeadlineMs);
      if (lease.spec?.holderIdentity !== this.identity) return;
      const now = new V1MicroTime();
      await withTimeout(this.replaceLease(lease, { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now }), this.renewDeadlineMs);
      this.log.info('released lease');
    } catch (err) {
      this.log.warn('could not release lease; it will expire instead', { error: errorMessage(err) });
    }
  }
}
