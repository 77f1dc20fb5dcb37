// What the unit tests of Netwarden's HTTPS endpoints share: a self-signed certificate for
// 127.0.0.1 (made with openssl, as the other HTTPS unit tests do), and a loopback HTTPS server
// that answers the two Kubernetes APIs the AccessReviewer calls, TokenReview and
// SubjectAccessReview, from a table of tokens and grants. The endpoints under test run with the
// real AccessReviewer and a KubeConfig pointed at it; nothing else of Kubernetes is involved.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { AccessRequest } from '../../../src/runtime/auth.js';

export interface Tls {
  dir: string;
  keyFile: string;
  certFile: string;
  key: Buffer;
  cert: Buffer;
  remove(): void;
}

export function selfSignedCertificate(prefix: string): Tls {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile],
    { stdio: 'ignore' },
  );
  return { dir, keyFile, certFile, key: readFileSync(keyFile), cert: readFileSync(certFile), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** One allowed action of a user, as the reviewer asks about it (namespace/name: any when absent). */
export interface Grant extends AccessRequest {
  user: string;
}

type ResourceAttributes = Partial<AccessRequest>;

const TOKEN_REQUEST = /^\/api\/v1\/namespaces\/([^/]+)\/serviceaccounts\/([^/]+)\/token(\?|$)/;

/** The audience of tokens for the API server itself: what a TokenReview without audiences asks for. */
export const API_SERVER_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';

/** One allowed non-resource URL of a user (RBAC nonResourceURLs). */
export interface NonResourceGrant {
  user: string;
  verb: string;
  path: string;
}

/** TokenReview and SubjectAccessReview on loopback: tokens map to user names, grants allow actions. */
export class FakeReviewApi {
  /** token -> username */
  readonly tokens = new Map<string, string>();
  /** token -> the audiences it was issued for; API_SERVER_AUDIENCE when absent. */
  readonly audiences = new Map<string, string[]>();
  /** token -> the user's extra, e.g. the node of a pod-bound token. */
  readonly extras = new Map<string, Record<string, string[]>>();
  readonly grants: Grant[] = [];
  readonly nonResourceGrants: NonResourceGrant[] = [];
  /** Every SubjectAccessReview asked, in order. */
  readonly accessReviews: Array<{ user: string; path?: string } & ResourceAttributes> = [];
  tokenReviews = 0;
  /** Every TokenRequest asked; the tokens it issues pass this fake's TokenReview with their audiences. */
  readonly tokenRequests: Array<{ namespace: string; serviceAccount: string; audiences: string[]; expirationSeconds: number }> = [];
  /** Answer TokenRequests with 500 while set. */
  failTokenRequests = false;
  private server: Server | undefined;
  private port = 0;

  constructor(private readonly tls: Tls) {}

  async start(): Promise<void> {
    this.server = createServer({ key: this.tls.key, cert: this.tls.cert }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { spec?: Record<string, unknown> };
        const spec = body.spec ?? {};
        let status: object;
        if (req.url?.startsWith('/apis/authentication.k8s.io/v1/tokenreviews')) {
          this.tokenReviews += 1;
          const token = String(spec.token);
          const user = this.tokens.get(token);
          const wanted = Array.isArray(spec.audiences) ? (spec.audiences as string[]) : [API_SERVER_AUDIENCE];
          const audiences = (this.audiences.get(token) ?? [API_SERVER_AUDIENCE]).filter((a) => wanted.includes(a));
          if (!user) status = { authenticated: false, error: 'token unknown' };
          else if (audiences.length === 0) status = { authenticated: false, error: 'token audiences is invalid for the target audiences' };
          else status = { authenticated: true, audiences, user: { username: user, groups: ['system:authenticated'], extra: this.extras.get(token) ?? {} } };
        } else if (req.url?.startsWith('/apis/authorization.k8s.io/v1/subjectaccessreviews')) {
          const user = String(spec.user);
          const attrs = (spec.resourceAttributes ?? {}) as ResourceAttributes;
          const nonResource = spec.nonResourceAttributes as { verb?: string; path?: string } | undefined;
          this.accessReviews.push({ user, ...attrs, ...(nonResource ? { path: nonResource.path } : {}) });
          const allowed = nonResource
            ? this.nonResourceGrants.some((g) => g.user === user && g.verb === nonResource.verb && g.path === nonResource.path)
            : this.grants.some((g) => allows(g, user, attrs));
          status = { allowed };
        } else if (TOKEN_REQUEST.test(req.url ?? '')) {
          const [, namespace = '', serviceAccount = ''] = TOKEN_REQUEST.exec(req.url ?? '') ?? [];
          if (this.failTokenRequests) {
            res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 500, message: 'etcd is down' }));
            return;
          }
          const audiences = (spec.audiences as string[] | undefined) ?? [API_SERVER_AUDIENCE];
          const expirationSeconds = Number(spec.expirationSeconds ?? 3600);
          this.tokenRequests.push({ namespace, serviceAccount, audiences, expirationSeconds });
          const token = `issued-${this.tokenRequests.length}`;
          this.tokens.set(token, `system:serviceaccount:${namespace}:${serviceAccount}`);
          this.audiences.set(token, audiences);
          status = { token, expirationTimestamp: new Date(Date.now() + expirationSeconds * 1000).toISOString() };
        } else {
          res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 404, message: `no ${req.url}` }));
          return;
        }
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ ...body, status }));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** A KubeConfig for this "cluster" whose user presents `token`. */
  kubeConfig(token: string): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'unit', server: `https://127.0.0.1:${this.port}`, caFile: this.tls.certFile }],
      users: [{ name: 'unit', token }],
      contexts: [{ name: 'unit', cluster: 'unit', user: 'unit' }],
      currentContext: 'unit',
    });
    return kc;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

function allows(g: Grant, user: string, a: ResourceAttributes): boolean {
  return (
    g.user === user &&
    g.verb === a.verb &&
    g.group === a.group &&
    g.resource === a.resource &&
    (g.subresource ?? '') === (a.subresource ?? '') &&
    (g.namespace === undefined || g.namespace === a.namespace) &&
    (g.name === undefined || g.name === a.name)
  );
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One HTTPS request to 127.0.0.1:port, trusting the test certificate. */
export async function call(port: number, ca: Buffer, method: string, path: string, opts: { token?: string; body?: Buffer | string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(
      // A connection per request: a refused upload must not leave a half-read socket for the next one.
      { host: '127.0.0.1', port, method, path, ca, agent: false, headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...opts.headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The `message` of a JSON error answer. */
export function messageOf(answer: Answer): string {
  return (JSON.parse(answer.body.toString('utf8')) as { message?: string }).message ?? '';
}
