// How the plugin reaches the controller's HTTPS API with the user's own Kubernetes identity.
//
// Credentials: the bearer token of the current kubeconfig user (a token, a token file, or what an
// exec/auth-provider plugin returns), because the controller authenticates callers by TokenReview.
// A user who authenticates with a client certificate has no token to pass on; they are told to
// give one with --token or NETWARDEN_TOKEN (e.g. `kubectl create token <serviceaccount>`):
// a TokenRequest can only mint ServiceAccount tokens, so there is nothing to convert a
// certificate into.
//
// Address: --controller-url or NETWARDEN_CONTROLLER_URL; the default https://localhost:8443 is
// where `kubectl -n netwarden-system port-forward svc/netwarden-controller 8443:443` puts it.
//
// Trust: --ca-file or NETWARDEN_CA_FILE, else the CA bundle the controller publishes in the
// ConfigMap netwarden-ca of netwarden-system (every authenticated user may read it), else the
// system's CAs.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { text } from 'node:stream/consumers';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { CA_BUNDLE_KEY, CA_CONFIGMAP } from '../apis/certificates.js';
import { SYSTEM_NAMESPACE } from '../apis/limits.js';
import { errorBodyMessage } from '../util/http.js';
import { currentBearerToken } from '../util/kube.js';
import { escapeForTerminal } from '../util/terminal.js';

export const DEFAULT_CONTROLLER_URL = 'https://localhost:8443';

export interface ConnectionFlags {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  controllerUrl?: string;
  caFile?: string;
  insecureSkipTlsVerify?: boolean;
  token?: string;
}

/** A refusal or failure to show the user as is, with the exit code to leave with. */
export class PluginError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export interface Connection {
  baseUrl: URL;
  namespace: string;
  token: string;
  ca?: string | Buffer | undefined;
  insecure: boolean;
}

export function loadConfig(flags: ConnectionFlags): KubeConfig {
  const kc = new KubeConfig();
  if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
  else kc.loadFromDefault();
  if (flags.context) kc.setCurrentContext(flags.context);
  return kc;
}

export async function connect(flags: ConnectionFlags): Promise<Connection> {
  const kc = loadConfig(flags);
  const namespace = flags.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  const token = flags.token ?? process.env.NETWARDEN_TOKEN ?? (await kubeconfigToken(kc));
  const url = flags.controllerUrl ?? process.env.NETWARDEN_CONTROLLER_URL ?? DEFAULT_CONTROLLER_URL;
  let baseUrl: URL;
  try {
    baseUrl = new URL(url);
  } catch {
    throw new PluginError(`--controller-url ${JSON.stringify(url)} is not a URL`);
  }
  if (baseUrl.protocol !== 'https:') throw new PluginError(`--controller-url must be https (the controller only serves HTTPS), got ${url}`);
  const caFile = flags.caFile ?? process.env.NETWARDEN_CA_FILE;
  const insecure = flags.insecureSkipTlsVerify === true;
  const ca = caFile ? readFileSync(caFile) : insecure ? undefined : await publishedCa(kc);
  return { baseUrl, namespace, token, ca, insecure };
}

/** The controller's CA bundle from its ConfigMap; undefined (system CAs) when it cannot be read. */
async function publishedCa(kc: KubeConfig): Promise<string | undefined> {
  try {
    const cm = await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, name: CA_CONFIGMAP });
    return cm.data?.[CA_BUNDLE_KEY];
  } catch {
    return undefined; // certificates from another CA (cert-manager): the hint on a TLS error says what to pass
  }
}

async function kubeconfigToken(kc: KubeConfig): Promise<string> {
  try {
    return await currentBearerToken(kc);
  } catch {
    const user = kc.getCurrentUser();
    const how = user?.certFile || user?.certData ? 'a client certificate' : 'no bearer token';
    throw new PluginError(
      `the kubeconfig user ${JSON.stringify(user?.name ?? '')} authenticates with ${how}; Netwarden's endpoints accept bearer tokens ` +
        '(checked by TokenReview). Pass --token or set NETWARDEN_TOKEN, e.g. NETWARDEN_TOKEN=$(kubectl create token <serviceaccount> -n <namespace>)',
    );
  }
}

/** Sends a request and resolves with the response when it is 2xx; otherwise a PluginError with the server's message. */
export async function request(conn: Connection, method: string, path: string): Promise<IncomingMessage> {
  const url = new URL(path, conn.baseUrl);
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = https.request(url, { method, ca: conn.ca, rejectUnauthorized: !conn.insecure, headers: { authorization: `Bearer ${conn.token}` } }, resolve);
    req.once('error', (err) => reject(new PluginError(`cannot reach the Netwarden controller at ${conn.baseUrl.origin}: ${err.message}${hint(err)}`)));
    req.end();
  });
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) return res;
  throw new PluginError(`${status} ${httpReason(status)}: ${await responseMessage(res)}`);
}

/** The `message` of a response (the controller answers with metav1.Status-like JSON), else its text; escaped for a terminal. */
export async function responseMessage(res: IncomingMessage): Promise<string> {
  return escapeForTerminal(errorBodyMessage(await text(res), Infinity));
}

function hint(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (code === 'ECONNREFUSED') return `\n(is a port-forward running? kubectl -n netwarden-system port-forward svc/netwarden-controller 8443:443, or set --controller-url)`;
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)) {
    return `\n(the CA bundle of ConfigMap ${SYSTEM_NAMESPACE}/${CA_CONFIGMAP} did not verify it, or could not be read: pass the CA that signed the controller certificate with --ca-file, or --insecure-skip-tls-verify)`;
  }
  return '';
}

function httpReason(status: number): string {
  return { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict', 429: 'Too Many Requests', 502: 'Bad Gateway', 503: 'Service Unavailable' }[status] ?? 'Error';
}
