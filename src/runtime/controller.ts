// Controller: informer events -> keys in a work queue -> Reconciler, level-triggered. Event
// handlers only enqueue keys; the reconciler reads the current state itself (from informer caches
// or the API server), so missed or merged events do not matter.

import type { KubernetesObject } from '@kubernetes/client-node';
import { errorMessage, loggerFor, type Logger } from '../util/log.js';
import type { Informer } from './informer.js';
import { keyOf, keyToString, parseKey, type ObjectKey } from './keys.js';
import { reconcileDuration, reconcileErrors, reconcileTotal } from './metrics.js';
import { WorkQueue, type WorkQueueOptions } from './workqueue.js';

export interface ReconcileResult {
  /** Reconcile this key again after this long, even without events. */
  requeueAfterMs?: number;
}

export interface Reconciler {
  reconcile(key: ObjectKey): Promise<ReconcileResult | void>;
}

/** Maps an event object to the keys to reconcile (e.g. a Pod to the PacketCaptures selecting it). */
export type MapToKeys<T extends KubernetesObject> = (obj: T) => ObjectKey[];

export interface ControllerOptions {
  name: string;
  reconciler: Reconciler;
  /** Concurrent reconciles (of different keys). Default 1. */
  concurrency?: number;
  log?: Logger;
  /** Work queue rate limiting (defaults: 5ms .. 1000s per key, full jitter). */
  queue?: Omit<WorkQueueOptions, 'name'>;
}

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  private readonly reconciler: Reconciler;
  private readonly concurrency: number;
  private readonly log: Logger;
  private readonly informers: Array<Informer<KubernetesObject>> = [];
  private started = false;

  constructor(opts: ControllerOptions) {
    this.name = opts.name;
    this.reconciler = opts.reconciler;
    this.concurrency = Math.max(1, opts.concurrency ?? 1);
    this.log = opts.log ?? loggerFor(`controller/${opts.name}`);
    this.queue = new WorkQueue({ ...opts.queue, name: opts.name });
  }

  /** Enqueues keys for every add/update/delete (and resync) of the informer's objects. */
  watches<T extends KubernetesObject>(informer: Informer<T>, mapToKeys?: MapToKeys<T>): this {
    const map: MapToKeys<T> = mapToKeys ?? ((obj) => [keyOf(obj)]);
    const enqueue = (obj: T): void => {
      for (const key of map(obj)) this.enqueue(key);
    };
    informer.on('add', enqueue);
    informer.on('update', enqueue);
    informer.on('delete', enqueue);
    this.informers.push(informer as unknown as Informer<KubernetesObject>);
    return this;
  }

  /** The informers this controller watches (the manager starts them). */
  watchedInformers(): ReadonlyArray<Informer<KubernetesObject>> {
    return this.informers;
  }

  enqueue(key: ObjectKey | string): void {
    this.queue.add(typeof key === 'string' ? key : keyToString(key));
  }

  /** Starts the workers. Informers are started (and synced) by the caller before this. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.log.info('starting workers', { concurrency: this.concurrency });
    this.queue.run((key) => this.process(key), this.concurrency);
  }

  /** Stops taking keys and waits for running reconciles to finish. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.log.info('stopping, draining in-flight reconciles');
    await this.queue.shutDown();
  }

  private async process(key: string): Promise<void> {
    const end = reconcileDuration.startTimer({ controller: this.name });
    try {
      const result = await this.reconciler.reconcile(parseKey(key));
      this.queue.forget(key);
      const after = result?.requeueAfterMs;
      if (after !== undefined && after > 0) {
        reconcileTotal.inc({ controller: this.name, result: 'requeue_after' });
        this.queue.addAfter(key, after);
      } else {
        reconcileTotal.inc({ controller: this.name, result: 'success' });
      }
    } catch (err) {
      reconcileTotal.inc({ controller: this.name, result: 'error' });
      reconcileErrors.inc({ controller: this.name });
      this.log.error('reconcile failed', { key, error: errorMessage(err), retries: this.queue.numRequeues(key) + 1 });
      this.queue.addRateLimited(key);
    } finally {
      end();
    }
  }
}
