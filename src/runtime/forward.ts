// A standby replica passes requests to its HTTPS API on to the leader. The Service of a
// two-replica controller sends requests to both pods (standbys are Ready on purpose: manager.ts),
// and `kubectl port-forward svc/netwarden-controller` picks one pod and keeps it: a user whose
// port-forward landed on the standby got 503 for every download until they restarted it. The
// standby knows the leader from the Lease (holderIdentity is the pod's name), finds its pod IP,
// and proxies the request there unchanged (the leader reviews the caller's token itself), the
// answer streamed back. One hop only: a forwarded request is never forwarded again.
// Connections to the leader are kept alive and reused (one https.Agent, at most maxSockets of
// them): a drop flood the Service sends half to the standby would otherwise cost a TLS handshake
// and ~87 KB of TLS buffers on both replicas per batch. When the leader's address changes, the
// old address's pool is retired: its idle connections close at once, busy ones after their answer.
// An idle connection is closed before the leader would close it (Node reads its Keep-Alive: timeout=5
// and keeps a second of margin), so a request is not sent down a connection the leader is closing.
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorMessage, loggerFor } from '../util/log.js';
import { sendJson } from './https.js';
import type { TrustBundle } from './tls.js';

/** Set on a forwarded request; a replica that receives it answers itself (503 when not leading). */
export const FORWARDED_HEADER = 'x-netwarden-forwarded-by';

export interface LeaderForwarderOptions {
  /** This replica's identity in the Lease. */
  identity: string;
  /** Whether this replica leads now (then nothing is forwarded). */
  isLeader(): boolean;
  /** The Lease's current holder, '' when none. */
  leader(): string;
  /** The pod IP of a holder identity (its pod's name), undefined when unknown. */
  addressOf(identity: string): Promise<string | undefined>;
  /** The leader's HTTPS API port (the same on every replica). */
  port: number;
  /** CA bundle of the replicas' serving certificates. */
  trust: TrustBundle;
  /** A name in every replica's certificate: the Service's DNS name. */
  servername: string;
  /** Per-request timeout for reaching the leader and its first answer, and for the wait for a free connection. Default 30 s. */
  timeoutMs?: number;
  /** Connections to the leader at most, busy and idle; more requests wait for one. Default 32. */
  maxSockets?: number;
}

/**
 * Half the leader's cap per client address (limits.ts, maxConnectionsPerClient 64), which would
 * close any more as they arrive; 32 forwarded drop batches at a time is ~1,000 batches/s at 30 ms each.
 */
export const FORWARD_MAX_SOCKETS = 32;

/** An idle kept-alive connection is closed after this, or sooner when the leader announces a shorter keep-alive. */
const IDLE_MS = 15_000;

/** Hop-by-hop headers (RFC 9110 7.6.1) are not passed on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host']);

export class LeaderForwarder {
  private readonly log = loggerFor('forward');
  private cached: { identity: string; address: string; at: number } | undefined;
  private pool: { address: string; ca: string; agent: https.Agent } | undefined;

  constructor(private readonly opts: LeaderForwarderOptions) {}

  /** Closes the connections to the leader (shutdown); a later forward opens new ones. */
  close(): void {
    this.pool?.agent.destroy();
    this.pool = undefined;
  }

  /** Proxies the request to the leader and resolves true, or resolves false (leading, or no leader known) to let this replica answer. */
  async forward(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if (this.opts.isLeader() || req.headers[FORWARDED_HEADER] !== undefined) return false;
    const leader = this.opts.leader();
    if (!leader || leader === this.opts.identity) return false;
    const ca = this.opts.trust.current();
    if (!ca) return false;
    const address = await this.address(leader).catch((err: unknown) => {
      this.log.warn('leader address unknown; answering here', { leader, error: errorMessage(err) });
      return undefined;
    });
    if (!address) return false;
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    headers[FORWARDED_HEADER] = this.opts.identity;
    const agent = this.agentFor(address, ca);
    const timeoutMs = this.opts.timeoutMs ?? 30_000;
    return new Promise<boolean>((resolve) => {
      let answered = false;
      const upstream = https.request({
        host: address, port: this.opts.port, method: req.method, path: req.url, headers, ca, servername: this.opts.servername,
        timeout: timeoutMs, agent,
      }, (answer) => {
        answered = true;
        const back: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(answer.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) back[name] = value;
        res.writeHead(answer.statusCode ?? 502, back);
        answer.pipe(res);
        answer.on('error', () => res.destroy());
        answer.on('end', () => resolve(true));
        res.on('close', () => {
          answer.destroy();
          resolve(true);
        });
      });
      // The socket's (inactivity) timeout starts only once a connection is free: this one bounds the wait for it.
      const noConnection = setTimeout(() => upstream.destroy(new Error(`no free connection to the leader within ${timeoutMs} ms`)), timeoutMs);
      upstream.once('socket', () => clearTimeout(noConnection));
      upstream.on('close', () => clearTimeout(noConnection));
      upstream.on('timeout', () => upstream.destroy(new Error('timed out')));
      upstream.on('error', (err) => {
        // The request body is gone into the failed hop: answer 503 (retry) here; mid-stream the client sees a cut.
        this.cached = undefined;
        if (!answered) {
          this.log.warn('leader not reachable from the standby', { leader, address, error: errorMessage(err) });
          if (!res.headersSent) {
            res.setHeader('retry-after', '1');
            sendJson(res, 503, { status: 'Failure', code: 503, message: `this controller replica is a standby and could not reach the leader ${leader}; retry` });
          }
          resolve(true);
        } else {
          res.destroy();
          resolve(true);
        }
      });
      req.pipe(upstream);
    });
  }

  /** The kept-alive connections to this address (verified with this CA); another address's or CA's pool is retired. */
  private agentFor(address: string, ca: string): https.Agent {
    const pool = this.pool;
    if (pool && pool.address === address && pool.ca === ca) return pool.agent;
    if (pool) {
      this.log.info('the leader moved (or its CA changed); closing the kept-alive connections to the former address', { from: pool.address, to: address, caChanged: pool.ca !== ca });
      retire(pool.agent);
    }
    const agent = new https.Agent({ keepAlive: true, maxSockets: this.opts.maxSockets ?? FORWARD_MAX_SOCKETS, timeout: IDLE_MS, scheduling: 'lifo' });
    this.pool = { address, ca, agent };
    return agent;
  }

  /** The leader's pod IP, looked up again when the holder changes or after 30 s. */
  private async address(leader: string): Promise<string | undefined> {
    const c = this.cached;
    if (c && c.identity === leader && Date.now() - c.at < 30_000) return c.address;
    const address = await this.opts.addressOf(leader);
    this.cached = address ? { identity: leader, address, at: Date.now() } : undefined;
    return address;
  }
}

/** Requests under way finish on their connections; none is kept alive or reused after them. */
function retire(agent: https.Agent): void {
  agent.keepSocketAlive = () => false;
  for (const sockets of Object.values(agent.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
}
