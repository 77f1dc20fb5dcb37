// Health and metrics endpoints. One server per distinct port: health and metrics may share.
//   /healthz  200 while the process runs (liveness: the event loop answers).
//   /readyz   200 when the readiness check passes, else 503 with the reason.
//   /metrics  prom-client text format of `registry`, to callers `metricsAuth` lets through.
//
// /healthz and /readyz stay open: the kubelet probes them without credentials, and they tell
// nothing but "up" and a reason. /metrics tells a lot (resource names, namespaces, node names,
// error counts), and the agents serve it on the host network, so any pod could read it: it takes
// a bearer token that passes TokenReview and a SubjectAccessReview for the non-resource URL
// (get /metrics), as controller-runtime's secure metrics do. The port then serves HTTPS, so the
// scraper's token does not cross the network in clear text: with the process's serving certificate
// once it has one (setCertificate), and until then with a self-signed one made at start, as
// controller-runtime does when no certificate is given.

import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { errorMessage, LogThrottle, loggerFor } from '../util/log.js';
import { AccessDenied, type AccessReviewer, type NonResourceAccessRequest } from './auth.js';
import { limitConnections, METRICS_SERVER_LIMITS, serverOptions, type ServerLimits } from './limits.js';
import { registry } from './metrics.js';
import type { ServingCredentials } from './https.js';
import { createSelfSignedServing } from '../util/x509.js';

export interface ReadinessCheck {
  /** undefined when ready, else the reason it is not. */
  (): string | undefined;
}

/** Resolves when the request may read /metrics; throws AccessDenied (401, 403, 429, 503) when not. */
export type RequestCheck = (req: http.IncomingMessage) => Promise<unknown>;

export interface ServerOptions {
  healthPort: number;
  /** May equal healthPort; 0 picks a free port. */
  metricsPort: number;
  readiness: ReadinessCheck;
  host?: string;
  /** Who may read /metrics; open to anyone when unset (--metrics-insecure). */
  metricsAuth?: RequestCheck;
  /** Serve the metrics port (and health, when it shares it) over HTTPS (see setCertificate). */
  tls?: boolean;
  /** METRICS_SERVER_LIMITS when unset. */
  limits?: ServerLimits;
}

/** What a scraper's identity must be allowed: RBAC `nonResourceURLs: ["/metrics"]`, verb get. */
export const METRICS_ACCESS: NonResourceAccessRequest = { verb: 'get', path: '/metrics' };

/**
 * The metrics settings of a process: /metrics behind TokenReview and SubjectAccessReview, over
 * HTTPS when the process has a serving key pair; open over plain HTTP when `insecure`.
 */
export function metricsServing(opts: { insecure: boolean; reviewer: AccessReviewer }): Pick<ServerOptions, 'metricsAuth' | 'tls'> {
  if (opts.insecure) return {};
  const { reviewer } = opts;
  return { metricsAuth: (req) => reviewer.check(req, METRICS_ACCESS), tls: true };
}

/** How long the stand-in certificate of a process that has none yet is valid. */
const SELF_SIGNED_VALIDITY_MS = 365 * 24 * 3600_000;

interface Serves {
  health: boolean;
  metrics: boolean;
}

export class HealthServer {
  private readonly servers: http.Server[] = [];
  private readonly opts: ServerOptions;
  private readonly log = loggerFor('server');
  private readonly refusalLog = new LogThrottle();
  private credentials: ServingCredentials | undefined;

  constructor(opts: ServerOptions) {
    this.opts = opts;
  }

  async start(): Promise<void> {
    const { healthPort, metricsPort } = this.opts;
    const shared = healthPort === metricsPort && healthPort !== 0;
    if (shared) {
      await this.listen(healthPort, { health: true, metrics: true });
    } else {
      await this.listen(healthPort, { health: true, metrics: false });
      await this.listen(metricsPort, { health: false, metrics: true });
    }
  }

  /** Actual ports: [health, metrics]. */
  ports(): { health: number; metrics: number } {
    const port = (s: http.Server | undefined) => (s?.address() as AddressInfo | null)?.port ?? 0;
    return { health: port(this.servers[0]), metrics: port(this.servers[1] ?? this.servers[0]) };
  }

  /**
   * The certificate of the HTTPS listeners, first or renewed: handshakes from now on get it,
   * open connections keep theirs. Before start, the listeners start with it.
   */
  setCertificate(credentials: ServingCredentials): void {
    this.credentials = credentials;
    for (const server of this.servers) if (server instanceof https.Server) server.setSecureContext(credentials);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.servers.splice(0).map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
  }

  private async listen(port: number, serve: Serves): Promise<void> {
    const limits = this.opts.limits ?? METRICS_SERVER_LIMITS;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      void this.handle(req, res, serve).catch((err: unknown) => {
        this.log.error('request failed', { url: req.url, error: errorMessage(err) });
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    };
    const tls = serve.metrics && this.opts.tls === true;
    const server = tls ? https.createServer({ ...serverOptions(limits), ...(await this.currentCredentials()) }, handler) : http.createServer(serverOptions(limits), handler);
    limitConnections(server, limits, serve.metrics ? 'metrics' : 'health', this.log);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.opts.host ?? '0.0.0.0', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.servers.push(server);
    const metricsAccess = !serve.metrics ? undefined : this.opts.metricsAuth ? 'TokenReview and SubjectAccessReview' : 'open (--metrics-insecure)';
    this.log.info('listening', { port: (server.address() as AddressInfo).port, ...serve, scheme: tls ? 'https' : 'http', ...(metricsAccess ? { metricsAccess } : {}) });
    if (serve.metrics && this.opts.metricsAuth && !tls) this.log.warn('metrics served over plain HTTP: scrapers send their bearer tokens in clear text; give the process a serving certificate');
  }

  private async currentCredentials(): Promise<ServingCredentials> {
    if (this.credentials) return this.credentials;
    const now = Date.now();
    const issued = await createSelfSignedServing('netwarden-metrics', { notBefore: new Date(now - 60_000), notAfter: new Date(now + SELF_SIGNED_VALIDITY_MS) });
    this.log.info('metrics served with a self-signed certificate until the serving certificate arrives');
    // A certificate set while this one was made wins.
    return this.credentials ?? { cert: issued.certPem, key: issued.keyPem };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, serve: Serves): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (serve.health && path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }
    if (serve.health && path === '/readyz') {
      const reason = this.opts.readiness();
      if (reason === undefined) res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      else res.writeHead(503, { 'content-type': 'text/plain' }).end(`not ready: ${reason}`);
      return;
    }
    if (serve.metrics && path === '/metrics') {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end(`method ${req.method} not allowed on /metrics\n`);
        return;
      }
      if (!(await this.metricsAllowed(req, res))) return;
      const body = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType }).end(body);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  }

  /** Runs metricsAuth; on a refusal answers with its status and reason and returns false. */
  private async metricsAllowed(req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> {
    if (!this.opts.metricsAuth) return true;
    try {
      await this.opts.metricsAuth(req);
      return true;
    } catch (err) {
      if (!(err instanceof AccessDenied)) throw err;
      const held = this.refusalLog.take();
      if (held !== undefined) this.log.info('metrics request refused', { status: err.status, reason: err.message, client: req.socket.remoteAddress, alsoRefusedSinceLastLine: held });
      const headers: http.OutgoingHttpHeaders = { 'content-type': 'text/plain' };
      if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(err.retryAfterSeconds);
      if (err.status === 401) headers['www-authenticate'] = 'Bearer';
      res.writeHead(err.status, headers).end(`${err.message}\n`);
      return false;
    }
  }
}
