// Health and metrics HTTP endpoints. One server per distinct port: health and metrics may share.
//   /healthz  200 while the process runs (liveness: the event loop answers).
//   /readyz   200 when the readiness check passes, else 503 with the reason.
//   /metrics  prom-client text format of `registry`.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorMessage, loggerFor } from '../util/log.js';
import { registry } from './metrics.js';

export interface ReadinessCheck {
  /** undefined when ready, else the reason it is not. */
  (): string | undefined;
}

export interface ServerOptions {
  healthPort: number;
  /** May equal healthPort; 0 picks a free port. */
  metricsPort: number;
  readiness: ReadinessCheck;
  host?: string;
}

export class HealthServer {
  private readonly servers: http.Server[] = [];
  private readonly opts: ServerOptions;
  private readonly log = loggerFor('server');

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

  private async listen(port: number, serve: { health: boolean; metrics: boolean }): Promise<void> {
    const server = http.createServer((req, res) => {
      void this.handle(req, res, serve).catch((err: unknown) => {
        this.log.error('request failed', { url: req.url, error: errorMessage(err) });
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.opts.host ?? '0.0.0.0', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.servers.push(server);
    this.log.info('listening', { port: (server.address() as AddressInfo).port, ...serve });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, serve: { health: boolean; metrics: boolean }): Promise<void> {
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
      const body = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType }).end(body);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  }
}
