// A small HTTPS API server for Netwarden's own endpoints (drop batches, capture downloads, agent
// file access). Routes match method and a path pattern with named segments; handlers throw
// HttpError (or AccessDenied) to answer with a status and a JSON message the caller can read.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorMessage, LogThrottle, loggerFor } from '../util/log.js';
import { AccessDenied } from './auth.js';
import { API_SERVER_LIMITS, limitConnections, serverOptions, type ConnectionBudget, type ServerLimits } from './limits.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Takes a request before its route's handler (a standby passing it to the leader); true when it answered. */
export type RequestForwarder = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, params: Record<string, string>) => Promise<void>;

interface Route {
  method: string;
  pattern: RegExp;
  names: string[];
  handler: RouteHandler;
}

/** A serving certificate (PEM, with any intermediates after it) and its key. */
export interface ServingCredentials {
  cert: string | Buffer;
  key: string | Buffer;
}

export interface HttpsServerOptions {
  /** Files read once at start when no certificate was set (rotating sources: setCertificate). */
  certFile?: string;
  keyFile?: string;
  port: number;
  host?: string;
  name: string;
  /** Timeouts and connection caps; API_SERVER_LIMITS when unset. */
  limits?: ServerLimits;
}

export class HttpsApiServer {
  private readonly routes: Route[] = [];
  private server: https.Server | undefined;
  private connections: ConnectionBudget | undefined;
  private credentials: ServingCredentials | undefined;
  private readonly log;
  private readonly unknownCallers = new LogThrottle();
  private forwarder: RequestForwarder | undefined;

  constructor(private readonly opts: HttpsServerOptions) {
    this.log = loggerFor(`https/${opts.name}`);
  }

  /** `path` like "/packet-capture/download/:namespace/:name/files.zip"; segments never contain "/". */
  route(method: string, path: string, handler: RouteHandler): this {
    const names: string[] = [];
    const source = path
      .split('/')
      .map((seg) => (seg.startsWith(':') ? (names.push(seg.slice(1)), '([^/]+)') : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('/');
    this.routes.push({ method, pattern: new RegExp(`^${source}$`), names, handler });
    return this;
  }

  /** Every routed request goes to the forwarder first (src/runtime/forward.ts). */
  setForwarder(forwarder: RequestForwarder): void {
    this.forwarder = forwarder;
  }

  /**
   * The certificate to serve with. On a running server it swaps the secure context: handshakes
   * from now on get the new certificate, connections already open keep theirs, so no request fails.
   */
  setCertificate(credentials: ServingCredentials): void {
    this.credentials = credentials;
    this.server?.setSecureContext(credentials);
  }

  listening(): boolean {
    return this.server !== undefined;
  }

  async start(): Promise<number> {
    const { certFile, keyFile } = this.opts;
    const credentials = this.credentials ?? (certFile && keyFile ? { cert: readFileSync(certFile), key: readFileSync(keyFile) } : undefined);
    if (!credentials) throw new Error(`https/${this.opts.name}: no serving certificate yet`);
    const limits = this.opts.limits ?? API_SERVER_LIMITS;
    const server = https.createServer({ ...serverOptions(limits), ...credentials }, (req, res) => void this.dispatch(req, res));
    this.connections = limitConnections(server, limits, this.opts.name, this.log);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host ?? '0.0.0.0', () => resolve());
    });
    this.server = server;
    if (this.credentials && this.credentials !== credentials) server.setSecureContext(this.credentials); // swapped while binding
    const port = (server.address() as AddressInfo).port;
    this.log.info('listening', { port, host: this.opts.host ?? '0.0.0.0' });
    return port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Decided on arrival: the header is sent with whatever answer follows.
    this.connections?.onRequest(res);
    let pathMatched = false;
    try {
      // URL parsing folds "a/../b" away; a path that needs folding is refused, not reinterpreted.
      const rawPath = (req.url ?? '/').split('?')[0]!;
      if (rawPath.split('/').some((segment) => segment === '..' || segment === '.')) throw new HttpError(400, `malformed path ${JSON.stringify(rawPath)}: "." and ".." segments are not allowed`);
      const url = new URL(req.url ?? '/', 'https://localhost');
      for (const route of this.routes) {
        const match = route.pattern.exec(url.pathname);
        if (!match) continue;
        pathMatched = true;
        if (route.method !== req.method) continue;
        const params = Object.fromEntries(route.names.map((n, i) => [n, decodeURIComponent(match[i + 1]!)]));
        if (this.forwarder && (await this.forwarder(req, res))) return;
        await route.handler(req, res, params);
        return;
      }
      throw pathMatched ? new HttpError(405, `method ${req.method} not allowed on ${url.pathname}`) : new HttpError(404, `no such endpoint: ${url.pathname}`);
    } catch (err) {
      this.fail(req, res, err);
    }
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const status = err instanceof HttpError || err instanceof AccessDenied ? err.status : 500;
    const message = errorMessage(err);
    if (status >= 500) this.log.error('request failed', { method: req.method, url: req.url, status, error: message });
    else this.logRefusal(req, status, message);
    if (res.headersSent) {
      res.destroy(err instanceof Error ? err : undefined); // mid-stream: the client sees a cut, not a bad zip
      return;
    }
    if (err instanceof AccessDenied && err.retryAfterSeconds !== undefined) res.setHeader('retry-after', String(err.retryAfterSeconds));
    sendJson(res, status, { status: 'Failure', code: status, message });
  }

  /** Refusals of unknown callers (401, 429) are what a flood of bad tokens repeats: one line per 10 s of them. */
  private logRefusal(req: IncomingMessage, status: number, reason: string): void {
    const fields = { method: req.method, url: req.url, status, reason, client: req.socket.remoteAddress };
    if (status !== 401 && status !== 429) return void this.log.info('request refused', fields);
    const held = this.unknownCallers.take();
    if (held !== undefined) this.log.info('request refused', { ...fields, alsoRefusedSinceLastLine: held });
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Reads a request body up to `limit` bytes; 413 beyond it. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, `request body over ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Kubernetes object names: DNS-1123 subdomain (names) and label (namespaces). Anything else is a 400. */
export function checkObjectName(kind: 'namespace' | 'name', value: string): void {
  const label = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
  const subdomain = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
  if (!(kind === 'namespace' ? label : subdomain).test(value)) throw new HttpError(400, `malformed ${kind} ${JSON.stringify(value)}`);
}
