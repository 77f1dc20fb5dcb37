// `kubectl netwarden ui`: a web console served on loopback, acting with the user's kubeconfig.
//
// The same guard as `kubectl proxy --www` plus what a browser on the same machine needs:
//  - it binds 127.0.0.1 only: nothing off the machine reaches it;
//  - every request needs the random token of the URL it prints (query ?token=, a cookie set from
//    it, or Authorization: Bearer): another local user or a web page cannot act as this user;
//  - the Host header must name the loopback address and port (a DNS-rebinding page has its own
//    name there) and an Origin, when sent, must be this server's own;
//  - no CORS headers, and state-changing requests must carry X-Netwarden-Request, a custom header
//    that a cross-site form or a no-preflight fetch cannot send.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import { logger } from '../../util/log.js';

/**
 * The cookie's name carries the port: cookies are per host, not per port, so two consoles on this
 * machine (two users, two clusters) would otherwise overwrite each other's token in one browser.
 */
export function tokenCookie(port: number): string {
  return `netwarden_ui_token_${port}`;
}
export const REQUEST_HEADER = 'x-netwarden-request';

/** Why a request is refused before any route sees it; undefined when it may go on. */
export interface Refusal {
  status: 401 | 403;
  message: string;
}

export interface GuardOptions {
  token: string;
  /** The port actually bound, for the Host check. */
  port: number;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

/** The hosts a browser on this machine sends for our own address; anything else is rebinding or a mistake. */
export function allowedHosts(port: number): string[] {
  return [`127.0.0.1:${port}`, `localhost:${port}`];
}

/** Where the request carried the token, if it did. */
export function presentedToken(req: Pick<IncomingMessage, 'headers' | 'url'>, port: number): { token: string; via: 'query' | 'cookie' | 'header' } | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && auth.startsWith('Bearer ')) return { token: auth.slice(7), via: 'header' };
  const query = new URL(req.url ?? '/', 'http://x').searchParams.get('token');
  if (query) return { token: query, via: 'query' };
  const cookie = cookieValue(req.headers.cookie, tokenCookie(port));
  if (cookie) return { token: cookie, via: 'cookie' };
  return undefined;
}

/** The checks every request passes before routing; exported for the unit tests. */
export function checkRequest(req: Pick<IncomingMessage, 'headers' | 'url' | 'method'>, opts: GuardOptions): Refusal | undefined {
  const host = (req.headers.host ?? '').toLowerCase();
  if (!allowedHosts(opts.port).includes(host)) {
    return { status: 403, message: `Host ${JSON.stringify(req.headers.host ?? '')} is not this console's address (127.0.0.1:${opts.port}); refusing (DNS rebinding?)` };
  }
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== 'null' && !allowedHosts(opts.port).some((h) => origin === `http://${h}`)) {
    return { status: 403, message: `cross-origin requests are refused (Origin ${JSON.stringify(origin)})` };
  }
  if (origin === 'null') return { status: 403, message: 'requests from an opaque origin are refused' };
  const presented = presentedToken(req, opts.port);
  if (!presented) return { status: 401, message: 'this console needs the token of the URL that `kubectl netwarden ui` printed' };
  if (!safeEqual(presented.token, opts.token)) return { status: 401, message: 'wrong token: use the URL that `kubectl netwarden ui` printed' };
  const method = (req.method ?? 'GET').toUpperCase();
  if (method !== 'GET' && method !== 'HEAD' && req.headers[REQUEST_HEADER] === undefined) {
    return { status: 403, message: `${method} requests must carry the ${REQUEST_HEADER} header` };
  }
  return undefined;
}

/** Headers on every answer: no framing, no sniffing, no referrer leaking the token, scripts only from here. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'cache-control': 'no-store',
};

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** An API handler: answers the request, or resolves false when no route matched. */
export type ApiHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>;

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

async function serveStatic(dir: string, pathname: string, res: ServerResponse): Promise<void> {
  // The bundle is a flat directory: index.html for every page path (routing is in the page), files by name.
  const name = path.basename(pathname);
  const file = path.join(dir, name && name.includes('.') ? name : 'index.html');
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) {
    sendJson(res, 404, { message: `no such file: ${name}` });
    return;
  }
  res.writeHead(200, { 'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream', 'content-length': info.size });
  createReadStream(file).pipe(res);
}

export interface ConsoleServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface ServeOptions {
  token: string;
  port?: number;
  /** The built front end (index.html, app.js, app.css). */
  staticDir: string;
  api: ApiHandler;
}

export async function startConsoleServer(opts: ServeOptions): Promise<ConsoleServer> {
  let port = opts.port ?? 0;
  const server = http.createServer((req, res) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    const refusal = checkRequest(req, { token: opts.token, port });
    if (refusal) {
      sendJson(res, refusal.status, { message: refusal.message });
      return;
    }
    const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
    const presented = presentedToken(req, port);
    if (presented?.via === 'query' && req.method === 'GET' && !url.pathname.startsWith('/api/')) {
      // The token moves into a cookie only this origin sends (SameSite=Strict), and out of the
      // address bar and history.
      url.searchParams.delete('token');
      res.writeHead(303, {
        'set-cookie': `${tokenCookie(port)}=${encodeURIComponent(opts.token)}; HttpOnly; SameSite=Strict; Path=/`,
        location: `${url.pathname}${url.search}`,
      });
      res.end();
      return;
    }
    const handle = async (): Promise<void> => {
      if (url.pathname.startsWith('/api/')) {
        if (!(await opts.api(req, res, url))) sendJson(res, 404, { message: `no API route ${req.method} ${url.pathname}` });
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        sendJson(res, 405, { message: 'method not allowed' });
        return;
      }
      await serveStatic(opts.staticDir, url.pathname, res);
    };
    handle().catch((err: unknown) => {
      logger.error('console request failed', { method: req.method, path: url.pathname, error: err instanceof Error ? err.message : String(err) });
      if (!res.headersSent) sendJson(res, 500, { message: err instanceof Error ? err.message : String(err) });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/?token=${opts.token}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
