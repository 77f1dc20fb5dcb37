import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type https from 'node:https';
import { KubeConfig, type Cluster } from '@kubernetes/client-node';
import type { Dispatcher } from 'undici';

/** In-cluster config by default (as a Pod sees it), or the given kubeconfig file. */
export function loadKubeConfig(kubeconfigPath?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  reuseConnections(kc);
  return kc;
}

type DispatcherFactory = (cluster: Cluster | null, agentOptions: https.AgentOptions) => Dispatcher | undefined;

/** TLS settings a kubeconfig may rotate (client certificates from files): a new set, a new pool. */
const MAX_POOLS = 2;

/**
 * Makes the KubeConfig's API clients share their connections to the API server. client-node 2.0
 * builds a new undici Agent for every request (KubeConfig.createDispatcher), so each call of a
 * generated API client opened its own TLS connection, kept it open for undici's keep-alive time,
 * and left its buffers to the garbage collector: under a drop flood the controller's TokenReviews,
 * SubjectAccessReviews and Event writes held 200+ MB of TLS state (heaptrack). Here the Agent is
 * made once per set of TLS settings (server, CA, client certificate and key), as client-go's
 * transport cache does, and requests multiplex over its pooled connections (HTTP/2 with the API
 * server). Watches and our own clients do not go through this path.
 */
export function reuseConnections(kc: KubeConfig): void {
  const target = kc as unknown as { createDispatcher?: DispatcherFactory };
  const create = target.createDispatcher;
  if (typeof create !== 'function') return; // another client-node: its own behaviour stands
  const pools = new Map<string, Dispatcher | undefined>();
  target.createDispatcher = (cluster, agentOptions) => {
    const key = poolKey(cluster, agentOptions);
    if (pools.has(key)) return pools.get(key);
    const dispatcher = create.call(kc, cluster, agentOptions);
    pools.set(key, dispatcher);
    if (pools.size > MAX_POOLS) {
      const [oldest, old] = pools.entries().next().value!;
      pools.delete(oldest);
      void old?.close().catch(() => undefined); // after the requests it is serving
    }
    return dispatcher;
  };
}

function poolKey(cluster: Cluster | null, o: https.AgentOptions): string {
  const hash = createHash('sha256');
  for (const part of [cluster?.server, cluster?.proxyUrl, o.servername, String(o.rejectUnauthorized), o.ca, o.cert, o.key, o.pfx, o.passphrase]) {
    hash.update(part === undefined ? '-' : typeof part === 'string' || Buffer.isBuffer(part) ? part : JSON.stringify(part));
    hash.update('\0');
  }
  return hash.digest('hex');
}

/**
 * The bearer token this process authenticates with, for calls to Netwarden's own HTTPS endpoints
 * (which check it by TokenReview). In a Pod the projected token file rotates, so it is read again
 * on each call through the KubeConfig's own auth chain rather than kept.
 */
export async function currentBearerToken(kc: KubeConfig): Promise<string> {
  const opts: { headers?: Record<string, string | string[] | number | undefined> } = { headers: {} };
  await kc.applyToHTTPSOptions(opts);
  const header = opts.headers?.Authorization ?? opts.headers?.authorization;
  const match = typeof header === 'string' ? /^Bearer\s+(.+)$/i.exec(header) : null;
  if (!match?.[1]) throw new Error('the kubeconfig has no bearer token for the current user (a ServiceAccount token is required)');
  return match[1];
}

/**
 * A bearer token kept in a file that the kubelet rotates (a projected serviceAccountToken volume):
 * read again on every call, so a rotated token is used from the moment it is written.
 */
export function tokenFromFile(file: string): () => Promise<string> {
  return async () => {
    const token = (await readFile(file, 'utf8')).trim();
    if (!token) throw new Error(`the token file ${file} is empty`);
    return token;
  };
}

/** The HTTP status of a failed API call of the typed client (404, 409, ...); undefined for other errors. */
export function apiErrorCode(err: unknown): number | undefined {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'number' ? code : undefined;
}
