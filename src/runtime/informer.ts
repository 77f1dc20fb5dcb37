// Informer: a local cache of one resource kept current by list+watch, with event handlers.
//
// Wraps client-node's ListWatch (cache.js) and fills its gaps. What ListWatch does by itself:
//  - watch ends cleanly (server timeout, stream closed): re-watches from the last resourceVersion
//    with a 1s..30s doubling delay (reset by any event); a client-side inactivity timeout
//    (30s without data) re-watches at once;
//  - 410 Gone (HTTP status or an ERROR event with code 410): clears the resourceVersion, so the
//    next round re-lists; the re-list emits `delete` for cached objects missing from the list and
//    add/update for the others — nothing changed while the watch was down is lost;
//  - any other error (list fails, watch cannot connect, stream errors, e.g. the API server is
//    down): calls the `error` callbacks and STOPS for good. The caller must restart it.
// What this wrapper adds:
//  - restarts after any error with jittered exponential backoff (500ms..30s) until stop(); a
//    restart re-watches from the last resourceVersion (the server replays what happened since) or
//    re-lists when that is too old (410);
//  - ERROR events other than 410 (e.g. "too large resource version" after an API server restart,
//    internal errors) are turned into a re-list instead of a retry of the same watch;
//  - allowWatchBookmarks, so a quiet watch's resourceVersion stays fresh and 410s are rarer;
//  - an exception thrown while opening the watch (auth plugin failure) becomes a restart instead
//    of an unhandled rejection; no watch is opened after stop() (ListWatch would open one when a
//    list was in flight during stop());
//  - start() resolves only once the first list has been applied to the cache (ListWatch's start()
//    also resolves when the list failed);
//  - handler exceptions are caught and logged (ListWatch's watch callback swallows them silently
//    and skips the resourceVersion update);
//  - periodic resync: every resyncMs each cached object is replayed to the `update` handlers;
//  - a transform (transform.ts) applied to every object of a list page or watch event before it
//    is cached or handed on: managedFields are always dropped, and a consumer can keep only the
//    fields it reads;
//  - the initial state (and every re-list) is read by watch-list, a stream of one event per object
//    (watchlist.ts), where the server offers it, else by a paginated list decoded page by page
//    (pager.ts); neither holds a whole list, nor copies one. A watch-list the server cannot serve
//    now (429 while a new CRD's watch cache initializes) is tried again after the Retry-After or
//    the restart backoff; only a server that does not offer it is listed in pages for good. Each
//    list is counted by netwarden_informer_lists_total{via} and logged ('initial state read').

import {
  KubeConfig,
  ListWatch,
  Watch,
  type KubernetesListObject,
  type KubernetesObject,
  type V1CertificateSigningRequest,
  type V1ConfigMap,
  type V1Namespace,
  type V1Node,
  type V1Pod,
  type V1Secret,
  type V1Service,
} from '@kubernetes/client-node';
import { resourcePath, type ResourceType } from '../apis/meta.js';
import { errorMessage, loggerFor, type Logger } from '../util/log.js';
import { keyOf, keyToString } from './keys.js';
import { informerLists, informerRestarts, informerSynced } from './metrics.js';
import { backoffDelay } from '../util/backoff.js';
import { CachedPod, CachedPodPools } from './cachedpod.js';
import { listAllPages } from './pager.js';
import { dropManagedFields, keepFields, type Transform } from './transform.js';
import { watchListAll, WatchListRetry, WatchListUnsupported } from './watchlist.js';

export type InformerEvent = 'add' | 'update' | 'delete';
export type InformerHandler<T> = (obj: T) => void;

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
}

/** Lists the collection the informer watches (same path and selectors). */
export type ListFn<T extends KubernetesObject> = (opts: ListOptions) => Promise<KubernetesListObject<T>>;

export interface InformerOptions<T extends KubernetesObject> {
  /** Name for logs and metrics, e.g. "packetcaptures" or "pods". */
  name: string;
  /** Collection path to watch, e.g. /api/v1/pods or /apis/netwarden.io/v1alpha1/droptails. */
  path: string;
  list: ListFn<T>;
  labelSelector?: string;
  fieldSelector?: string;
  /** Replay every cached object to `update` handlers this often; 0 or unset: never. */
  resyncMs?: number;
  /** Restart backoff after errors. Defaults 500ms .. 30s. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * Applied to every object of a watch event before it is cached or handed on (list results are
   * the list function's to transform, see listAllPages). Default: dropManagedFields.
   */
  transform?: Transform<T, KubernetesObject>;
}

interface WatchHooks {
  stopped(): boolean;
  onWatchStart(): void;
  onEvent(): void;
  transform(obj: unknown): unknown;
}

type WatchCallback = (phase: string, apiObj: unknown, watchObj?: unknown) => void;

/** Watch that asks for bookmarks, turns non-410 ERROR events into re-lists and never throws. */
class ResilientWatch extends Watch {
  constructor(
    kc: KubeConfig,
    private readonly hooks: WatchHooks,
    private readonly log: Logger,
  ) {
    super(kc);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: WatchCallback,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    if (this.hooks.stopped()) return new AbortController();
    this.hooks.onWatchStart();
    const wrapped: WatchCallback = (phase, obj, raw) => {
      if (phase === 'ERROR') {
        const status = (obj ?? {}) as { code?: number; message?: string; reason?: string };
        this.log.info('watch error event, will re-list', { code: status.code, reason: status.reason, message: status.message });
        // ListWatch only re-lists on code 410; any watch error may mean our resourceVersion is
        // unusable, and a re-list is always safe.
        callback('ERROR', { ...status, code: 410 }, raw);
        return;
      }
      this.hooks.onEvent();
      // A bookmark carries only a resourceVersion: nothing to cache, nothing to trim.
      callback(phase, phase === 'BOOKMARK' ? obj : this.hooks.transform(obj), raw);
    };
    try {
      return await super.watch(path, { ...queryParams, allowWatchBookmarks: true }, wrapped, done);
    } catch (err) {
      done(err);
      return new AbortController();
    }
  }
}

export class Informer<T extends KubernetesObject> {
  readonly name: string;
  private readonly opts: InformerOptions<T>;
  private readonly lw: ListWatch<T>;
  private readonly log: Logger;
  private readonly handlers: Record<InformerEvent, InformerHandler<T>[]> = { add: [], update: [], delete: [] };
  private stopped = true;
  private listed = false;
  private synced = false;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private syncWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];

  constructor(kc: KubeConfig, opts: InformerOptions<T>) {
    this.name = opts.name;
    this.opts = opts;
    this.log = loggerFor('informer', opts.name);
    const watch = new ResilientWatch(
      kc,
      {
        stopped: () => this.stopped,
        onWatchStart: () => this.onWatchStart(),
        onEvent: () => (this.failures = 0),
        transform: (obj) => (opts.transform ?? ((o: KubernetesObject) => dropManagedFields(o) as T))(obj as KubernetesObject),
      },
      this.log,
    );
    const listFn = async (): Promise<KubernetesListObject<T>> => {
      const list = await opts.list({ labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector });
      this.listed = true;
      this.failures = 0;
      this.log.debug('listed', { items: list.items.length, resourceVersion: list.metadata?.resourceVersion });
      return list;
    };
    this.lw = new ListWatch<T>(opts.path, watch, listFn, false, opts.labelSelector, opts.fieldSelector);
    this.lw.on('add', (obj) => this.emit('add', obj));
    this.lw.on('update', (obj) => this.emit('update', obj));
    this.lw.on('delete', (obj) => this.emit('delete', obj));
    this.lw.on('error', (err?: unknown) => this.onError(err));
    informerSynced.set({ informer: this.name }, 0);
  }

  on(event: InformerEvent, handler: InformerHandler<T>): void {
    this.handlers[event].push(handler);
  }

  /** Starts list+watch; resolves once the first list is in the cache (retries until then). */
  start(): Promise<void> {
    if (!this.stopped) return this.waitForSync();
    this.stopped = false;
    const synced = this.waitForSync();
    void this.lw.start().catch((err: unknown) => this.onError(err));
    if (this.opts.resyncMs && this.opts.resyncMs > 0) {
      this.resyncTimer = setInterval(() => this.resync(), this.opts.resyncMs);
    }
    return synced;
  }

  hasSynced(): boolean {
    return this.synced;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.lw.get(name, namespace);
  }

  list(namespace?: string): T[] {
    return [...this.lw.list(namespace)];
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.restartTimer = undefined;
    this.resyncTimer = undefined;
    await this.lw.stop();
    this.syncWaiters.splice(0).forEach((w) => w.reject(new Error(`informer ${this.name} stopped before it synced`)));
  }

  private waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => this.syncWaiters.push({ resolve, reject }));
  }

  /** ListWatch opens a watch right after it applied a list to the cache. */
  private onWatchStart(): void {
    if (this.synced || !this.listed) return;
    this.synced = true;
    informerSynced.set({ informer: this.name }, 1);
    this.log.info('synced', { objects: this.lw.list().length });
    this.syncWaiters.splice(0).forEach((w) => w.resolve());
  }

  private onError(err: unknown): void {
    if (this.stopped || this.restartTimer) return;
    const maxMs = this.opts.maxBackoffMs ?? 30_000;
    // A server that said when to come back (Retry-After of a 429) is not asked sooner.
    const retryAfterMs = err instanceof WatchListRetry ? err.retryAfterMs : undefined;
    const delay = Math.min(maxMs, Math.max(backoffDelay(this.failures, this.opts.minBackoffMs ?? 500, maxMs), retryAfterMs ?? 0));
    this.failures++;
    informerRestarts.inc({ informer: this.name });
    this.log.warn('list/watch failed, restarting', { error: errorMessage(err), retryInMs: Math.round(delay), retryAfterMs, failures: this.failures });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopped) return;
      void this.lw.start().catch((e: unknown) => this.onError(e));
    }, delay);
  }

  private resync(): void {
    if (!this.synced || this.stopped) return;
    for (const obj of this.lw.list()) this.emit('update', obj);
  }

  private emit(event: InformerEvent, obj: T): void {
    if (this.stopped) return;
    for (const h of this.handlers[event]) {
      try {
        h(obj);
      } catch (err) {
        this.log.error('event handler failed', { event, object: keyToString(keyOf(obj)), error: errorMessage(err) });
      }
    }
  }
}

export interface InformerConfig {
  /** Only this namespace (namespaced types); all namespaces when unset. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  resyncMs?: number;
  /**
   * Cache only these dotted paths (e.g. "spec.nodeName") besides identity and resourceVersion
   * (keepFields). Unset: whole objects without metadata.managedFields.
   */
  keep?: readonly string[];
  /** With `keep`: paths whose values many objects share (keepFields' `shared`), e.g. labels. */
  shared?: readonly string[];
  /** Objects per list page. Default 500. */
  pageSize?: number;
  /**
   * Read the initial state by watch-list (watchlist.ts) where the server offers it; paginated
   * lists otherwise. Default true.
   */
  watchList?: boolean;
  /** Called with how each (re-)list was read (tests, benches). */
  onList?: (via: ListVia) => void;
}

export type ListVia = 'watch-list' | 'pages';

/** Informer for a custom resource type (objects are typed by the caller). */
export function customResourceInformer<T extends KubernetesObject = KubernetesObject>(
  kc: KubeConfig,
  type: ResourceType,
  cfg: InformerConfig = {},
): Informer<T> {
  return informerFor<T>(kc, type, type.namespaced ? cfg.namespace : undefined, cfg);
}

/**
 * An informer of one resource type, in one namespace or all of them. Lists and watches read plain
 * JSON (no typed client): cached objects have one shape whichever way they arrived, and Date-typed
 * fields of core objects are RFC 3339 strings at runtime.
 */
function informerFor<T extends KubernetesObject>(kc: KubeConfig, type: ResourceType, namespace: string | undefined, cfg: InformerConfig, decode?: Transform<T, KubernetesObject>): Informer<T> {
  const name = namespace ? `${type.plural}/${namespace}` : type.plural;
  const path = resourcePath(type, namespace);
  const trim: Transform<T> = cfg.keep ? keepFields<T>(cfg.keep, { shared: cfg.shared }) : dropManagedFields;
  const decodeNew: Transform<T, KubernetesObject> = decode ?? ((obj) => trim(obj as T));
  // A re-list (after a 410, or an API server restart) brings every object again, most of them
  // unchanged: the cached one is kept instead of a second copy of each, which at 150,000 Pods
  // would be tens of MB held next to the cache until the list is applied.
  let cached: ((name: string, namespace?: string) => T | undefined) | undefined;
  const transform: Transform<T, KubernetesObject> = (obj) => {
    const meta = obj.metadata;
    const held = meta?.name && meta.resourceVersion ? cached?.(meta.name, meta.namespace) : undefined;
    return held !== undefined && held.metadata?.resourceVersion === meta?.resourceVersion ? held : decodeNew(obj);
  };
  const log = loggerFor('informer', name);
  let watchList = cfg.watchList ?? true;
  const pages: ListFn<T> = ({ labelSelector, fieldSelector }) => {
    let page = 0;
    return listAllPages<T>(kc, path, transform, {
      labelSelector,
      fieldSelector,
      pageSize: cfg.pageSize,
      onPage: (items, restarted) => log.debug('list page', { page: ++page, items, restarted }),
    });
  };
  const listed = (via: ListVia, result: KubernetesListObject<T>): KubernetesListObject<T> => {
    informerLists.inc({ informer: name, via });
    log.info('initial state read', { via, objects: result.items.length, resourceVersion: result.metadata?.resourceVersion });
    cfg.onList?.(via);
    return result;
  };
  const list: ListFn<T> = async (opts) => {
    if (watchList) {
      try {
        return listed('watch-list', await watchListAll<T>(kc, path, transform, opts));
      } catch (err) {
        // Not now (429 while a new CRD's watch cache initializes, 5xx, unreachable): the informer
        // restarts after the Retry-After or its backoff and tries watch-list again (informer.onError).
        if (err instanceof WatchListRetry) throw err;
        if (err instanceof WatchListUnsupported) {
          watchList = false; // the server's answer will not change: no second try each re-list
          log.info('the API server does not offer watch-list, paginated lists from now on', { status: err.statusCode, error: err.message });
        } else {
          log.warn('watch-list failed, a paginated list this time', { error: errorMessage(err) });
        }
      }
    }
    return listed('pages', await pages(opts));
  };
  const informer = new Informer<T>(kc, { name, path, list, transform, labelSelector: cfg.labelSelector, fieldSelector: cfg.fieldSelector, resyncMs: cfg.resyncMs });
  cached = (objName, namespace) => informer.get(objName, namespace);
  return informer;
}

export interface CoreKinds {
  pods: V1Pod;
  nodes: V1Node;
  services: V1Service;
  namespaces: V1Namespace;
  configmaps: V1ConfigMap;
  secrets: V1Secret;
}

const NAMESPACED_CORE_KINDS: ReadonlyArray<keyof CoreKinds> = ['pods', 'services', 'configmaps', 'secrets'];

/** Informer for a core/v1 resource. */
export function coreInformer<K extends keyof CoreKinds>(kc: KubeConfig, kind: K, cfg: InformerConfig = {}): Informer<CoreKinds[K]> {
  const namespaced = NAMESPACED_CORE_KINDS.includes(kind);
  const type: ResourceType = { group: '', version: 'v1', kind, plural: kind, namespaced };
  return informerFor<CoreKinds[K]>(kc, type, namespaced ? cfg.namespace : undefined, cfg);
}

/**
 * The Pods of the cluster (or of cfg.namespace) cached as CachedPods: flat objects with the few
 * fields the controller reads (cachedpod.ts), a third of a trimmed V1Pod's memory.
 */
export function cachedPodInformer(kc: KubeConfig, cfg: Omit<InformerConfig, 'keep' | 'shared'> = {}): Informer<CachedPod> {
  const pools = new CachedPodPools();
  const type: ResourceType = { group: '', version: 'v1', kind: 'pods', plural: 'pods', namespaced: true };
  return informerFor<CachedPod>(kc, type, cfg.namespace, cfg, (pod) => CachedPod.from(pod as V1Pod, pools));
}

/** Informer for certificates.k8s.io/v1 CertificateSigningRequests (e.g. fieldSelector spec.signerName=...). */
export function certificateSigningRequestInformer(kc: KubeConfig, cfg: InformerConfig = {}): Informer<V1CertificateSigningRequest> {
  const type: ResourceType = { group: 'certificates.k8s.io', version: 'v1', kind: 'CertificateSigningRequest', plural: 'certificatesigningrequests', namespaced: false };
  return informerFor<V1CertificateSigningRequest>(kc, type, undefined, cfg);
}
