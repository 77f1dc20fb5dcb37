// Timeouts and connection limits of Netwarden's servers. Node's defaults let a client hold a
// connection for 60 s without finishing its headers, 300 s without finishing its request, and open
// as many connections as the file descriptor limit allows: a pod that can reach a port could tie
// up the controller's intake or an agent's metrics port with a handful of slow sockets.
//
// requestTimeout bounds *receiving* the request (headers and body, e.g. a drop batch of up to
// MAX_BATCH_BYTES); it does not bound the response, so a capture zip may stream for as long as the
// client keeps reading. A client that stops reading is cut after idleTimeoutMs without progress.
import type http from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import { Counter, Gauge } from 'prom-client';
import { LogThrottle, type Logger } from '../util/log.js';
import { registry } from './metrics.js';

export interface ServerLimits {
  /** The whole header block must arrive within this, however slowly it trickles in. */
  headersTimeoutMs: number;
  /** The whole request, headers and body, must arrive within this (not the response). */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** A connection with no bytes moving either way for this long is closed. */
  idleTimeoutMs: number;
  /** TLS only: the handshake must be done within this. */
  handshakeTimeoutMs: number;
  maxHeadersCount: number;
  maxHeaderBytes: number;
  /** Open connections of the server; more are closed as they arrive. */
  maxConnections: number;
  /** Open connections from one client address; more from it are closed as they arrive. */
  maxConnectionsPerClient: number;
  /**
   * Open connections kept alive after a response; above it, the connection that was just answered
   * is closed (`Connection: close`) and its client opens a new one for its next request. Node holds
   * ~90 KB of TLS buffers per open connection: 5,000 agents kept alive would take 440 MB.
   * Unset: as many as maxConnections.
   */
  maxKeptAlive?: number;
  /** How often expired headers and requests are looked for (Node's default is 30 s). */
  checkIntervalMs: number;
}

/**
 * The controller's HTTPS API (drop intake from every agent, capture downloads) and the agents'
 * file API. A 4 MiB drop batch at 1 Mbit/s takes 32 s: requestTimeout leaves room for it. The
 * agents reach the controller from their node addresses (one per node, one connection each), users
 * through port-forward all from one address.
 */
export const API_SERVER_LIMITS: ServerLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 120_000,
  handshakeTimeoutMs: 10_000,
  maxHeadersCount: 100,
  maxHeaderBytes: 16 * 1024,
  maxConnections: 1024,
  maxConnectionsPerClient: 64,
  checkIntervalMs: 1_000,
};

/**
 * The controller's HTTPS API: every agent may connect to it while it sends drops (5,000 nodes),
 * and users come on top; 512 of them stay kept alive (the busiest, since each answered request
 * over the budget closes its connection), the others reconnect per request, resuming their TLS
 * session. Each connection stays subject to the timeouts above.
 */
export const CONTROLLER_API_LIMITS: ServerLimits = { ...API_SERVER_LIMITS, maxConnections: 8192, maxKeptAlive: 512 };

/** /healthz, /readyz and /metrics: GETs without a body from the kubelet and a few Prometheus replicas. */
export const METRICS_SERVER_LIMITS: ServerLimits = {
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  handshakeTimeoutMs: 5_000,
  maxHeadersCount: 50,
  maxHeaderBytes: 16 * 1024,
  maxConnections: 64,
  maxConnectionsPerClient: 16,
  checkIntervalMs: 1_000,
};

const openConnections = new Gauge({
  name: 'netwarden_http_open_connections',
  help: 'Connections open on the server now.',
  labelNames: ['server'] as const,
  registers: [registry],
});

const connectionsNotKeptAlive = new Counter({
  name: 'netwarden_http_connections_not_kept_alive_total',
  help: 'Connections closed after a response because the server had more open than it keeps alive (max_kept_alive); their clients reconnect.',
  labelNames: ['server'] as const,
  registers: [registry],
});

const connectionsRefused = new Counter({
  name: 'netwarden_http_connections_refused_total',
  help: 'Connections closed on arrival because the server (max_connections) or the client address (max_per_client) had too many open.',
  labelNames: ['server', 'reason'] as const,
  registers: [registry],
});

/** The options of http.createServer / https.createServer that carry the limits. */
export function serverOptions(limits: ServerLimits): http.ServerOptions & { handshakeTimeout: number } {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: limits.checkIntervalMs,
    maxHeaderSize: limits.maxHeaderBytes,
    handshakeTimeout: limits.handshakeTimeoutMs,
  };
}

/** The peer's address, "::ffff:10.0.0.1" as "10.0.0.1", so one client counts once whichever family it used. */
export function clientAddress(socket: Socket): string {
  const address = socket.remoteAddress ?? '';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/** What a server asks of its connections after limitConnections. */
export interface ConnectionBudget {
  /** Called as a request arrives: its connection is closed after the answer when over maxKeptAlive. */
  onRequest(res: http.ServerResponse): void;
}

/**
 * Applies what cannot be passed at creation (header count, idle timeout, connection caps) and
 * counts connections per client address. Refusals are counted by a metric and logged at most once
 * per 10 s per reason, so a flood does not become a flood of log lines.
 */
export function limitConnections(server: http.Server, limits: ServerLimits, name: string, log: Logger): ConnectionBudget {
  server.maxHeadersCount = limits.maxHeadersCount;
  server.maxConnections = limits.maxConnections;
  server.setTimeout(limits.idleTimeoutMs);
  const throttles = { max_connections: new LogThrottle(), max_per_client: new LogThrottle() };
  const refused = (reason: keyof typeof throttles, client: string): void => {
    connectionsRefused.inc({ server: name, reason });
    const held = throttles[reason].take();
    if (held !== undefined) log.warn('connection refused', { reason, client, alsoRefusedSinceLastLine: held, maxConnections: limits.maxConnections, maxConnectionsPerClient: limits.maxConnectionsPerClient });
  };
  (server as NetServer).on('drop', (data?: { remoteAddress?: string }) => refused('max_connections', data?.remoteAddress ?? ''));
  const open = new Map<string, number>();
  let total = 0;
  const gauge = openConnections.labels({ server: name });
  gauge.set(0);
  // prependListener: refuse before the HTTP or TLS layer spends anything on the socket.
  server.prependListener('connection', (socket: Socket) => {
    const client = clientAddress(socket);
    const count = (open.get(client) ?? 0) + 1;
    if (count > limits.maxConnectionsPerClient) {
      refused('max_per_client', client);
      socket.destroy();
      return;
    }
    open.set(client, count);
    gauge.set(++total);
    socket.once('close', () => {
      gauge.set(--total);
      const left = (open.get(client) ?? 1) - 1;
      if (left > 0) open.set(client, left);
      else open.delete(client);
    });
  });
  const maxKeptAlive = limits.maxKeptAlive ?? limits.maxConnections;
  return {
    onRequest(res) {
      if (total <= maxKeptAlive || res.headersSent) return;
      connectionsNotKeptAlive.inc({ server: name });
      // Node closes the connection after this response and tells the client so.
      res.setHeader('connection', 'close');
    },
  };
}
