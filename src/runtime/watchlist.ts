// Watch-list (KEP-3157, "streaming lists"): the initial state of a collection read as a watch
// with sendInitialEvents=true. The API server streams one ADDED event per object, from its watch
// cache, then a BOOKMARK annotated k8s.io/initial-events-end whose resourceVersion is the state's.
// Each object is decoded and transformed alone, so neither the server nor the informer builds a
// whole list (or a page of 500) in memory. client-go's reflector does the same (watchList).
//
// How an attempt fails says what to do next, as client-go's reflector decides it:
//  - WatchListRetry: "not now". 429 (a new CRD's watch cache still initializing: "storage is
//    (re)initializing", Retry-After: 1; or priority-and-fairness), 5xx but 501, the server
//    unreachable, the stream cut before the initial-events-end bookmark. The informer tries
//    watch-list again after the Retry-After or its backoff, whichever is longer; a paginated list
//    would only hide the moment (the reflector's isWatchErrorRetriable backs off the same way).
//  - WatchListUnsupported: "never here". The server refused the request itself (400, 403, 405,
//    406, 415, 422 — what a server with the WatchList feature off answers —, 501) or answered
//    with something that is not a watch stream (a plain list): paginated lists from then on.
//  - WatchListFailed, anything else (401, 404 of a collection not served yet, an ERROR event of
//    another code, a stream silent for 30 s before its bookmark): a paginated list this time,
//    watch-list again at the next list (the reflector's fallback for one ListAndWatch).
// The request is made here rather than through client-node's Watch, which drops the answer's
// headers (Retry-After) and body (the Status message) of a refusal.
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { HttpMethod, RequestContext, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { fetch } from 'undici';
import { errorBodyMessage, parseRetryAfter } from '../util/http.js';
import { errorMessage } from '../util/log.js';
import type { Transform } from './transform.js';

export const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

/** No byte for this long (the first answer included): the attempt is given up and retried. As client-node's Watch. */
export const WATCH_LIST_INACTIVITY_MS = 30_000;

export interface WatchListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  /** Default WATCH_LIST_INACTIVITY_MS. */
  inactivityTimeoutMs?: number;
}

/** The server does not offer watch-list (the WatchList feature is off, an old or aggregated server): paginated lists from now on. */
export class WatchListUnsupported extends Error {
  constructor(readonly statusCode: number | undefined, message: string) {
    super(message);
  }
}

/** Watch-list is offered but cannot be served now: try it again after retryAfterMs (when the server said) or a backoff. */
export class WatchListRetry extends Error {
  constructor(
    readonly statusCode: number | undefined,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** Watch-list did not work this time for a reason that is neither of the above: a paginated list now, watch-list again next time. */
export class WatchListFailed extends Error {
  constructor(readonly statusCode: number | undefined, message: string) {
    super(message);
  }
}

/** Refusals that say the request itself is not understood or not allowed here; the same answer comes every time. */
const UNSUPPORTED = new Set([400, 403, 405, 406, 415, 422, 501]);

function isTransient(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status !== 501);
}

/** The error for an HTTP status (of the answer, or the code of an ERROR event's Status). */
function failure(status: number, message: string, retryAfterMs: number | undefined): Error {
  if (isTransient(status)) return new WatchListRetry(status, message, retryAfterMs);
  if (UNSUPPORTED.has(status)) return new WatchListUnsupported(status, message);
  return new WatchListFailed(status, message);
}

interface Status {
  code?: number;
  message?: string;
  reason?: string;
  details?: { retryAfterSeconds?: number };
}

function retryAfterOfStatus(status: Status | undefined): number | undefined {
  const s = status?.details?.retryAfterSeconds;
  return typeof s === 'number' && s >= 0 ? s * 1000 : undefined;
}

function parseStatus(text: string): Status | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null ? (parsed as Status) : undefined;
  } catch {
    return undefined;
  }
}

/** undici's fetch says only "fetch failed"; the reason (ECONNREFUSED ...) is its cause. */
function causeOf(err: unknown): string {
  const cause = err instanceof Error ? (err as { cause?: unknown }).cause : undefined;
  return cause === undefined ? errorMessage(err) : `${errorMessage(err)}: ${errorMessage(cause)}`;
}

interface WatchEvent {
  type?: unknown;
  object?: KubernetesObject & Status;
}

/** Streams the collection's current objects; resolves with them and the bookmark's resourceVersion. */
export async function watchListAll<T extends KubernetesObject, In extends KubernetesObject = T>(
  kc: KubeConfig,
  path: string,
  transform: Transform<T, In>,
  opts: WatchListOptions = {},
): Promise<KubernetesListObject<T>> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const url = new URL(`${cluster.server.replace(/\/$/, '')}${path}`);
  url.searchParams.set('watch', 'true');
  url.searchParams.set('sendInitialEvents', 'true');
  url.searchParams.set('resourceVersionMatch', 'NotOlderThan');
  url.searchParams.set('allowWatchBookmarks', 'true');
  if (opts.labelSelector) url.searchParams.set('labelSelector', opts.labelSelector);
  if (opts.fieldSelector) url.searchParams.set('fieldSelector', opts.fieldSelector);
  const what = `watch-list ${url.pathname}`;
  const ctx = new RequestContext(url.toString(), HttpMethod.GET);
  ctx.setHeaderParam('Accept', 'application/json');
  await kc.applySecurityAuthentication(ctx);

  const abort = new AbortController();
  const inactivityMs = opts.inactivityTimeoutMs ?? WATCH_LIST_INACTIVITY_MS;
  let silent = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      silent = true;
      abort.abort();
    }, inactivityMs);
    timer.unref();
  };
  const items: T[] = [];
  let body: Readable | undefined;
  try {
    arm();
    const res = await fetch(url, { method: 'GET', headers: ctx.getHeaders(), dispatcher: ctx.getDispatcher(), signal: abort.signal });
    if (res.status !== 200) {
      const text = await res.text();
      const status = parseStatus(text);
      const retryAfterMs = parseRetryAfter(res.headers.get('retry-after') ?? undefined) ?? retryAfterOfStatus(status);
      throw failure(res.status, `${what}: HTTP ${res.status}: ${errorBodyMessage(text) || res.statusText}`, retryAfterMs);
    }
    if (!res.body) throw new WatchListRetry(200, `${what}: an answer without a body`);
    let events = 0;
    body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
    const lines = createInterface({ input: body, crlfDelay: Infinity });
    for await (const line of lines) {
      arm();
      if (line.trim() === '') continue;
      let event: WatchEvent | undefined;
      try {
        event = JSON.parse(line) as WatchEvent;
      } catch {
        event = undefined;
      }
      if (typeof event?.type !== 'string' || typeof event.object !== 'object' || event.object === null) {
        // A watch stream is one event per line from its first byte on: anything else first (a plain
        // list from a server that ignored the parameters, a page of HTML) is not watch-list.
        if (events === 0) throw new WatchListUnsupported(200, `${what}: the server answered something that is not a watch stream (a plain list?)`);
        continue;
      }
      events++;
      const obj = event.object;
      if (event.type === 'ADDED') items.push(transform(obj as KubernetesObject as In));
      else if (event.type === 'BOOKMARK' && obj.metadata?.annotations?.[INITIAL_EVENTS_END] === 'true') {
        return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: obj.metadata.resourceVersion }, items };
      } else if (event.type === 'ERROR') {
        throw failure(obj.code ?? 500, `${what}: ERROR event: ${obj.message ?? obj.reason ?? 'no message'} (code ${obj.code ?? '?'})`, retryAfterOfStatus(obj));
      }
    }
    throw new WatchListRetry(200, `${what}: the stream ended before the initial-events-end bookmark (${items.length} objects)`);
  } catch (err) {
    if (err instanceof WatchListRetry || err instanceof WatchListUnsupported || err instanceof WatchListFailed) throw err;
    // Silent before the bookmark is no "not now" (a server that ignored sendInitialEvents would
    // stay silent every time): a paginated list makes progress this time.
    if (silent) throw new WatchListFailed(undefined, `${what}: nothing received for ${inactivityMs} ms before the initial-events-end bookmark (${items.length} objects)`);
    // fetch or the stream failed: refused or reset connection, TLS, DNS.
    throw new WatchListRetry(undefined, `${what}: ${causeOf(err)}`);
  } finally {
    clearTimeout(timer);
    // Done with the stream (a watch goes on until the client leaves): close it without an
    // unhandled 'error' from the abort.
    body?.on('error', () => undefined).destroy();
    abort.abort();
  }
}
