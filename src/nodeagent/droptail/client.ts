// One HTTPS POST of a DropBatch to the controller's intake, classified for the sender:
//   202            → accepted
//   5xx, network   → retry (a standby replica answers 503; the next try opens a new connection so
//                    a Service can route it to the leader)
//   4xx            → refused, with the controller's reason (401/403: RBAC, 404: DropTail unknown
//                    there yet, 400/413: this batch itself)
import https from 'node:https';
import { FileTrustBundle, type TrustBundle } from '../../runtime/tls.js';
import { errorBodyMessage, parseRetryAfter } from '../../util/http.js';
import { errorMessage } from '../../util/log.js';

export type SendOutcome =
  | { kind: 'accepted' }
  | { kind: 'retry'; message: string; retryAfterMs?: number }
  | { kind: 'refused'; status: number; message: string };

export interface DropBatchClientOptions {
  /** Full intake URL: {controllerUrl}/droptail/{name}/drops. */
  url: string;
  /** CA bundle for the controller's certificate (or caFile); system CAs when neither is set. */
  trust?: TrustBundle | undefined;
  caFile?: string | undefined;
  /** The bearer token, fetched for every request (projected tokens rotate). */
  token: () => Promise<string>;
  /** Per-request timeout. Default 10 s. */
  timeoutMs?: number;
  /** The local address to send from (a multi-homed node's; the scale bench gives each simulated node its own). */
  localAddress?: string | undefined;
}

/** Longest controller answer kept for messages. */
const MAX_ANSWER_BYTES = 4096;

export class DropBatchClient {
  private agent: https.Agent | undefined;
  private agentCa: string | undefined;
  private readonly trust: TrustBundle | undefined;

  constructor(private readonly opts: DropBatchClientOptions) {
    this.trust = opts.trust ?? (opts.caFile ? new FileTrustBundle(opts.caFile) : undefined);
  }

  /** Posts `body`, the JSON of one DropBatch (encodeDropBatch). */
  async post(body: Buffer): Promise<SendOutcome> {
    let token: string;
    try {
      token = await this.opts.token();
    } catch (err) {
      return { kind: 'refused', status: 0, message: `no token to authenticate to the controller: ${errorMessage(err)}` };
    }
    let agent: https.Agent;
    try {
      agent = this.connectionPool();
    } catch (err) {
      return { kind: 'retry', message: `no CA bundle for the controller's certificate: ${errorMessage(err)}` };
    }
    const outcome = await this.request(agent, token, body);
    // A new connection after a failure: the old one may be pinned to a standby or a dead peer.
    if (outcome.kind !== 'accepted') this.resetConnections();
    return outcome;
  }

  /** Closes pooled connections; the next request opens a new one. */
  resetConnections(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }

  private connectionPool(): https.Agent {
    // A changed bundle (a CA rotation) gets a new pool; the open connection was verified already.
    const ca = this.trust?.current();
    if (this.agent && ca !== this.agentCa) this.resetConnections();
    this.agentCa = ca;
    this.agent ??= new https.Agent({ keepAlive: true, maxSockets: 1, ca, ...(this.opts.localAddress ? { localAddress: this.opts.localAddress } : {}) });
    return this.agent;
  }

  private request(agent: https.Agent, token: string, body: Buffer): Promise<SendOutcome> {
    return new Promise((resolve) => {
      const req = https.request(
        this.opts.url,
        {
          method: 'POST',
          agent,
          timeout: this.opts.timeoutMs ?? 10_000,
          headers: { 'content-type': 'application/json', 'content-length': body.length, authorization: `Bearer ${token}` },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            if (size < MAX_ANSWER_BYTES) chunks.push(chunk);
            size += chunk.length;
          });
          res.on('error', (err) => resolve({ kind: 'retry', message: `reading the controller's answer: ${errorMessage(err)}` }));
          res.on('end', () => resolve(classify(res.statusCode ?? 0, res.headers['retry-after'], Buffer.concat(chunks).subarray(0, MAX_ANSWER_BYTES).toString('utf8'))));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.opts.timeoutMs ?? 10_000} ms`)));
      req.on('error', (err) => resolve({ kind: 'retry', message: `controller unreachable at ${this.opts.url}: ${errorMessage(err)}` }));
      req.end(body);
    });
  }
}

function classify(status: number, retryAfter: string | undefined, text: string): SendOutcome {
  if (status >= 200 && status < 300) return { kind: 'accepted' };
  const message = `controller answered ${status}: ${errorBodyMessage(text) || '(empty answer)'}`;
  if (status >= 500 || status === 429) {
    const retryAfterMs = parseRetryAfter(retryAfter);
    return retryAfterMs !== undefined ? { kind: 'retry', message, retryAfterMs } : { kind: 'retry', message };
  }
  return { kind: 'refused', status, message };
}
