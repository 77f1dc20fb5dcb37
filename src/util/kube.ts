import { readFile } from 'node:fs/promises';
import { KubeConfig } from '@kubernetes/client-node';

/** In-cluster config by default (as a Pod sees it), or the given kubeconfig file. */
export function loadKubeConfig(kubeconfigPath?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
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
