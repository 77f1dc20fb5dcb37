// Paginated list of a collection (limit/continue), decoded one page at a time: each page's objects
// go through the informer's transform before the next page is fetched, so a list of 20,000 Pods
// never sits in memory whole, and nothing is copied twice. Requests are authenticated by the
// KubeConfig the same way client-node's Watch does it (RequestContext + its undici dispatcher).
import { HttpMethod, RequestContext, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { fetch } from 'undici';
import type { Transform } from './transform.js';

export const DEFAULT_PAGE_SIZE = 500;

export interface PagedListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  /** Objects per page (the `limit` parameter). Default 500, as client-go's pager. */
  pageSize?: number;
  /** Called after each page with its number of objects (logs, tests). */
  onPage?: (items: number, restarted: boolean) => void;
}

/** An API server answer other than 200; `statusCode` as ListWatch expects it (410 makes it re-list). */
export class ListError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** How often a list starts over after its continue token expired, before it gives up (the informer then backs off). */
const MAX_RESTARTS = 3;

interface Page<T> {
  items?: T[];
  metadata?: { resourceVersion?: string; continue?: string };
}

async function getPage<T>(kc: KubeConfig, url: URL): Promise<Page<T>> {
  const ctx = new RequestContext(url.toString(), HttpMethod.GET);
  ctx.setHeaderParam('Accept', 'application/json');
  await kc.applySecurityAuthentication(ctx);
  const res = await fetch(url, { method: 'GET', headers: ctx.getHeaders(), dispatcher: ctx.getDispatcher() });
  if (res.status !== 200) {
    const text = await res.text();
    let message = text;
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? text;
    } catch {
      // not a Status object: keep the text
    }
    throw new ListError(res.status, `list ${url.pathname}: HTTP ${res.status}: ${message}`);
  }
  return (await res.json()) as Page<T>;
}

/**
 * Lists every object of a collection path (e.g. /api/v1/pods), page by page, each object passed
 * through `transform` as its page arrives. An expired continue token (410 Gone: the snapshot the
 * pages are read from was compacted away) starts the list over from a fresh snapshot.
 */
export async function listAllPages<T extends KubernetesObject, In extends KubernetesObject = T>(
  kc: KubeConfig,
  path: string,
  transform: Transform<T, In>,
  opts: PagedListOptions = {},
): Promise<KubernetesListObject<T>> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const limit = String(opts.pageSize ?? DEFAULT_PAGE_SIZE);
  let items: T[] = [];
  let token: string | undefined;
  let restarts = 0;
  let restarted = false;
  for (;;) {
    const url = new URL(`${cluster.server.replace(/\/$/, '')}${path}`);
    url.searchParams.set('limit', limit);
    if (token) url.searchParams.set('continue', token);
    if (opts.labelSelector) url.searchParams.set('labelSelector', opts.labelSelector);
    if (opts.fieldSelector) url.searchParams.set('fieldSelector', opts.fieldSelector);
    let page: Page<In>;
    try {
      page = await getPage<In>(kc, url);
    } catch (err) {
      if (!(err instanceof ListError && err.statusCode === 410 && token && restarts < MAX_RESTARTS)) throw err;
      restarts++;
      restarted = true;
      items = [];
      token = undefined;
      continue;
    }
    for (const obj of page.items ?? []) items.push(transform(obj));
    opts.onPage?.(page.items?.length ?? 0, restarted);
    token = page.metadata?.continue || undefined;
    if (!token) return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: page.metadata?.resourceVersion }, items };
  }
}
