// Manager: owns the KubeConfig, the informers and controllers, the health/metrics server and
// leader election, like controller-runtime's manager.
//
// start(): health/metrics server first; then leader election (if enabled); only once leading are
// informers started (waiting for their first list) and then controllers. A standby keeps no
// caches and does no work.
// Losing leadership (renew deadline missed) stops the controllers and then calls onFatal, which
// by default exits the process with status 1 (controller-runtime does the same): a fresh process
// starts from clean caches and campaigns again.
// stop() (SIGTERM/SIGINT when installSignalHandlers): stop controllers (drain in-flight
// reconciles), stop informers, release the lease (a standby takes over at once), close the server.
//
// Readiness (/readyz) — the choice made here:
//  - without leader election: ready once every informer has synced and controllers run;
//  - with leader election, the leader: ready once its informers have synced;
//  - a standby: ready while it can talk to the API server (its last lease read is younger than
//    the lease duration). Standbys are deliberately ready: readiness gates rollouts and Service
//    endpoints, and a never-ready standby would stall a rolling update of a 2-replica Deployment;
//    one that cannot reach the API server could not take over either, so it is reported unready.
//    The Service therefore sends requests to standbys too: they pass them on to the leader
//    (forward.ts).

import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { errorMessage, loggerFor } from '../util/log.js';
import type { Controller } from './controller.js';
import type { Informer } from './informer.js';
import { LeaderElector, type LeaderElectionOptions, type StoppedReason } from './leader.js';
import type { ServingCredentials } from './https.js';
import { HealthServer, type ReadinessCheck, type ServerOptions } from './server.js';

/** The elector's options without its callbacks (the manager supplies those), plus an on/off switch. */
export type LeaderElectionSettings = { enabled: boolean } & Omit<LeaderElectionOptions, 'onStartedLeading' | 'onStoppedLeading' | 'onNewLeader'>;

export interface ManagerOptions {
  metricsPort: number;
  /** May equal metricsPort. */
  healthPort: number;
  /** Address to bind health and metrics on; all addresses when unset. */
  host?: string;
  /** Who may read /metrics (metricsServing); open to anyone when unset. */
  metricsAuth?: ServerOptions['metricsAuth'];
  /** Serve health and metrics over HTTPS (certificate: setMetricsCertificate). */
  metricsTls?: ServerOptions['tls'];
  leaderElection?: LeaderElectionSettings;
  /** Called when leadership is lost or startup fails after start(); default exits with 1. */
  onFatal?: (reason: string) => void;
  /** Stop on SIGTERM/SIGINT. Default true. */
  installSignalHandlers?: boolean;
}

type State = 'new' | 'starting' | 'standby' | 'running' | 'stopping' | 'stopped';

export class Manager {
  readonly kc: KubeConfig;
  private readonly opts: ManagerOptions;
  private readonly informers: Array<Informer<KubernetesObject>> = [];
  private readonly readinessChecks: ReadinessCheck[] = [];
  private readonly controllers: Controller[] = [];
  private readonly server: HealthServer;
  private elector: LeaderElector | undefined;
  private state: State = 'new';
  private controllersRunning = false;
  private stopping: Promise<void> | undefined;
  private readonly log = loggerFor('manager');
  private readonly onSignal = (sig: NodeJS.Signals): void => {
    this.log.info('signal received, shutting down', { signal: sig });
    void this.stop().then(() => process.exit(0));
  };

  constructor(kc: KubeConfig, opts: ManagerOptions) {
    this.kc = kc;
    this.opts = opts;
    this.server = new HealthServer({
      healthPort: opts.healthPort,
      metricsPort: opts.metricsPort,
      host: opts.host,
      readiness: () => this.notReadyReason(),
      metricsAuth: opts.metricsAuth,
      tls: opts.metricsTls,
    });
  }

  /** Registers an informer the manager starts (only while leading). Returns it. */
  addInformer<T extends KubernetesObject>(informer: Informer<T>): Informer<T> {
    const inf = informer as unknown as Informer<KubernetesObject>;
    if (!this.informers.includes(inf)) this.informers.push(inf);
    return informer;
  }

  /** Registers a controller; the informers it watches are registered too. */
  addController(controller: Controller): Controller {
    this.controllers.push(controller);
    for (const inf of controller.watchedInformers()) this.addInformer(inf);
    return controller;
  }

  /** The Lease's holder as last seen ('' when none or without leader election). */
  leaderIdentity(): string {
    return this.elector?.observedLeader() ?? '';
  }

  isLeader(): boolean {
    return this.elector ? this.elector.isLeader() : this.state === 'running';
  }

  /** The serving certificate of the HTTPS metrics port, first or renewed, without a restart. */
  setMetricsCertificate(credentials: ServingCredentials): void {
    this.server.setCertificate(credentials);
  }

  /** Ports actually bound (useful with port 0). */
  ports(): { health: number; metrics: number } {
    return this.server.ports();
  }

  /**
   * Starts serving health/metrics, then campaigns (if enabled). Resolves once the process is
   * running controllers or, with leader election, once it campaigns as a standby.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`manager already ${this.state}`);
    this.state = 'starting';
    if (this.opts.installSignalHandlers ?? true) {
      process.once('SIGTERM', this.onSignal);
      process.once('SIGINT', this.onSignal);
    }
    await this.server.start();
    const le = this.opts.leaderElection;
    if (!le?.enabled) {
      await this.startWork();
      return;
    }
    this.elector = new LeaderElector(this.kc, {
      namespace: le.namespace,
      name: le.name,
      identity: le.identity,
      leaseDurationSeconds: le.leaseDurationSeconds,
      renewDeadlineSeconds: le.renewDeadlineSeconds,
      retryPeriodSeconds: le.retryPeriodSeconds,
      onStartedLeading: () => this.startWork().catch((err: unknown) => this.fatal(`starting controllers failed: ${errorMessage(err)}`)),
      onStoppedLeading: (reason) => this.onStoppedLeading(reason),
      onNewLeader: (id) => this.log.info('leader observed', { leader: id, me: le.identity }),
    });
    this.state = 'standby';
    void this.elector.start();
  }

  /** Graceful stop: drain controllers, stop informers, release the lease, close the server. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.state = 'stopping';
    process.off('SIGTERM', this.onSignal);
    process.off('SIGINT', this.onSignal);
    await this.stopWork();
    await this.elector?.stop();
    await this.server.stop();
    this.state = 'stopped';
    this.log.info('stopped');
  }

  private async startWork(): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    this.log.info('starting informers', { count: this.informers.length });
    await Promise.all(this.informers.map((i) => i.start()));
    if ((this.state as State) === 'stopping' || (this.state as State) === 'stopped') return;
    this.log.info('informers synced, starting controllers', { count: this.controllers.length });
    for (const c of this.controllers) c.start();
    this.controllersRunning = true;
    this.state = 'running';
  }

  private async stopWork(): Promise<void> {
    await Promise.all(this.controllers.map((c) => c.stop()));
    this.controllersRunning = false;
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  private async onStoppedLeading(reason: StoppedReason): Promise<void> {
    if (reason === 'released') return; // our own stop()
    this.log.error('leadership lost, stopping controllers');
    await this.stopWork();
    this.fatal('leader election lost');
  }

  private fatal(reason: string): void {
    this.log.error('fatal', { reason });
    if (this.opts.onFatal) this.opts.onFatal(reason);
    else process.exit(1);
  }

  /** Another condition of readiness, e.g. an API server that waits for its certificate. Undefined: ready as far as it goes. */
  addReadinessCheck(check: ReadinessCheck): void {
    this.readinessChecks.push(check);
  }

  private notReadyReason(): string | undefined {
    if (this.state === 'stopping' || this.state === 'stopped') return 'shutting down';
    for (const check of this.readinessChecks) {
      const reason = check();
      if (reason !== undefined) return reason;
    }
    const unsynced = (): string | undefined => {
      const pending = this.informers.filter((i) => !i.hasSynced()).map((i) => i.name);
      if (pending.length > 0) return `informers not synced: ${pending.join(', ')}`;
      return this.controllersRunning ? undefined : 'controllers not started';
    };
    if (!this.elector) return unsynced();
    if (this.elector.isLeader()) return unsynced();
    const leaseMs = (this.opts.leaderElection?.leaseDurationSeconds ?? 15) * 1000;
    if (this.elector.msSinceApiContact() > leaseMs) return 'standby cannot reach the API server';
    return undefined;
  }
}
