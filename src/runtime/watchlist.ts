// Watch-list (KEP-3157, "streaming lists"): the initial state of a collection read as a watch
// with sendInitialEvents=true. The API server streams one ADDED event per object, from its watch
// cache, then a BOOKMARK annotated k8s.io/initial-events-end whose resourceVersion is the state's.
// Each object is decoded and transformed alone, so neither the server nor the informer builds a
// whole list (or a page of 500) in memory. client-go's reflector does the same (watchList), and
// falls back to a paginated list where the server does not offer it: so does the informer.
import { Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Transform } from './transform.js';

export const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

export interface WatchListOptions {
  labelSelector?: string;
  fieldSelector?: string;
}

/** The server refused the watch-list request itself (4xx: the WatchList feature is off, or an old server). */
export class WatchListUnsupported extends Error {
  constructor(readonly statusCode: number | undefined, message: string) {
    super(message);
  }
}

interface WatchEventObject extends KubernetesObject {
  code?: number;
  message?: string;
}

/** Streams the collection's current objects; resolves with them and the bookmark's resourceVersion. */
export function watchListAll<T extends KubernetesObject, In extends KubernetesObject = T>(
  kc: KubeConfig,
  path: string,
  transform: Transform<T, In>,
  opts: WatchListOptions = {},
): Promise<KubernetesListObject<T>> {
  const items: T[] = [];
  return new Promise((resolve, reject) => {
    let settled = false;
    let abort: AbortController | undefined;
    const finish = (err: Error | undefined, resourceVersion?: string) => {
      if (settled) return;
      settled = true;
      abort?.abort();
      if (err) reject(err);
      else resolve({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion }, items });
    };
    const onEvent = (phase: string, obj: WatchEventObject) => {
      if (settled) return;
      if (phase === 'ADDED') items.push(transform(obj as KubernetesObject as In));
      else if (phase === 'BOOKMARK' && obj.metadata?.annotations?.[INITIAL_EVENTS_END] === 'true') finish(undefined, obj.metadata.resourceVersion);
      else if (phase === 'ERROR') finish(new Error(`watch-list: ${obj.message ?? 'error event'} (code ${obj.code ?? '?'})`));
    };
    const onDone = (err: unknown) => {
      const status = (err as { statusCode?: number } | null)?.statusCode;
      if (status !== undefined && status >= 400 && status < 500) finish(new WatchListUnsupported(status, `watch-list refused: HTTP ${status}`));
      else finish(err instanceof Error ? err : new Error('watch-list: the stream ended before the initial-events-end bookmark'));
    };
    const params = {
      sendInitialEvents: true,
      resourceVersionMatch: 'NotOlderThan',
      allowWatchBookmarks: true,
      labelSelector: opts.labelSelector,
      fieldSelector: opts.fieldSelector,
    };
    new Watch(kc).watch(path, params, onEvent, onDone).then(
      (controller) => {
        abort = controller;
        if (settled) controller.abort();
      },
      (err: unknown) => finish(err instanceof Error ? err : new Error(String(err))),
    );
  });
}
