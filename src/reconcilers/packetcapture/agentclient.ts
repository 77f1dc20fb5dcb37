// The controller's client of the agents' capture file API (one HTTPS server per node, on the
// node's InternalIP). It authenticates with a token of the controller's ServiceAccount made for
// that node's agent alone (audience agentAudience(node), src/apis/identity.ts), which the agent
// checks by TokenReview with its own audience and SubjectAccessReview: no other pod can read
// capture files, and no agent can replay the token to another agent or to the API server.
// It verifies each agent's certificate with the CA bundle and the node's address (the agents'
// certificates name only their own node's IPs), and with Netwarden's own CA also the node's name
// in the subject, so that no node's agent can answer for another.
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import tls, { type PeerCertificate } from 'node:tls';
import type { V1Node } from '@kubernetes/client-node';
import { agentFilesPath, isCaptureFileName, type CaptureFile, type CaptureFileListing } from '../../apis/capturefiles.js';
import type { Informer } from '../../runtime/informer.js';
import { FileTrustBundle, type TrustBundle } from '../../runtime/tls.js';
import { errorBodyMessage } from '../../util/http.js';
import { errorMessage } from '../../util/log.js';

/** A node's agent could not be reached or refused; names the node so the user knows where to look. */
export class AgentError extends Error {
  constructor(
    readonly node: string,
    message: string,
    readonly status?: number,
  ) {
    super(`node ${node}: ${message}`);
  }
}

export interface AgentClientOptions {
  /** The bearer token for the agent of `node` (ServiceAccountTokens.tokenFor(agentAudience(node))). */
  token(node: string): Promise<string>;
  /** Where each node's InternalIP is looked up. */
  nodes: Pick<Informer<V1Node>, 'get'>;
  port: number;
  /** CA bundle for the agents' certificates (or caFile); system CAs when neither is set. */
  trust?: TrustBundle | undefined;
  caFile?: string | undefined;
  /** The subject CN an agent's certificate must have (Netwarden's CA names the node there); unchecked when unset. */
  expectedCommonName?: ((node: string) => string) | undefined;
  /** For listing and deleting; a download may take as long as it takes while data flows. */
  requestTimeoutMs?: number;
}

export class AgentFilesClient {
  private readonly trust: TrustBundle | undefined;
  // Keep-alive: a download fetches many files from the same few agents one after another.
  private readonly agent = new https.Agent({ keepAlive: true, maxSockets: 8 });
  private readonly timeoutMs: number;

  constructor(private readonly opts: AgentClientOptions) {
    this.trust = opts.trust ?? (opts.caFile ? new FileTrustBundle(opts.caFile) : undefined);
    this.timeoutMs = opts.requestTimeoutMs ?? 15_000;
  }

  /** `uid`: the capture meant; an agent that knows the name under another UID answers 404. */
  async list(node: string, namespace: string, name: string, uid?: string): Promise<CaptureFileListing> {
    const res = await this.request(node, 'GET', agentFilesPath(namespace, name, undefined, uid), this.timeoutMs);
    const body = await readAll(res);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      throw new AgentError(node, 'answered the file list with something other than JSON');
    }
    return { node, files: checkFileList(node, parsed) };
  }

  /** The response stream of one file; the caller consumes (or destroys) it. */
  async open(node: string, namespace: string, name: string, fileName: string, uid?: string): Promise<IncomingMessage> {
    if (!isCaptureFileName(fileName)) throw new AgentError(node, `refusing the file name ${JSON.stringify(fileName)}`);
    return this.request(node, 'GET', agentFilesPath(namespace, name, fileName, uid), 0);
  }

  async remove(node: string, namespace: string, name: string, uid?: string): Promise<void> {
    const res = await this.request(node, 'DELETE', agentFilesPath(namespace, name, undefined, uid), this.timeoutMs);
    res.resume();
  }

  close(): void {
    this.agent.destroy();
  }

  /** The address check Node does anyway, and the node's name in the subject when expected. */
  private checkAgentIdentity(node: string, hostname: string, cert: PeerCertificate): Error | undefined {
    const addressError = tls.checkServerIdentity(hostname, cert);
    if (addressError) return addressError;
    const expected = this.opts.expectedCommonName?.(node);
    if (expected !== undefined && cert.subject?.CN !== expected) return new Error(`the certificate at ${hostname} is for ${JSON.stringify(cert.subject?.CN ?? '')}, not the agent of node ${node} (${expected})`);
    return undefined;
  }

  private address(node: string): string {
    const found = this.opts.nodes.get(node);
    if (!found) throw new AgentError(node, 'no such Node');
    const ip = found.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
    if (!ip) throw new AgentError(node, 'the Node has no InternalIP address');
    return ip;
  }

  /** Sends a request and resolves with a 2xx response; anything else becomes an AgentError with the agent's message. */
  private async request(node: string, method: string, path: string, timeoutMs: number): Promise<IncomingMessage> {
    const host = this.address(node);
    let token: string;
    try {
      token = await this.opts.token(node);
    } catch (err) {
      throw new AgentError(node, `no token for its agent: ${errorMessage(err)}`);
    }
    // Read per request: a rotated bundle is a different connection pool key, so new connections use it.
    let ca: string | undefined;
    try {
      ca = this.trust?.current();
    } catch (err) {
      throw new AgentError(node, `no CA bundle to verify its certificate with: ${errorMessage(err)}`);
    }
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = https.request(
        {
          host,
          port: this.opts.port,
          method,
          path,
          ca,
          agent: this.agent,
          // The agents' certificates name their node IP; SNI is not allowed for IP literals.
          servername: net.isIP(host) ? '' : host,
          checkServerIdentity: (hostname, cert) => this.checkAgentIdentity(node, hostname, cert),
          headers: { authorization: `Bearer ${token}`, accept: method === 'GET' && path.split('?')[0]!.endsWith('/files') ? 'application/json' : '*/*' },
        },
        resolve,
      );
      if (timeoutMs > 0) req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.once('error', (err) => reject(new AgentError(node, `${method} ${path} at ${host}:${this.opts.port} failed: ${err.message}`)));
      req.end();
    });
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) {
      res.setTimeout(0);
      return res;
    }
    const text = (await readAll(res).catch(() => Buffer.alloc(0))).toString('utf8');
    throw new AgentError(node, `${method} ${path} answered ${status}: ${errorBodyMessage(text)}`, status);
  }
}

async function readAll(res: IncomingMessage, limit = 16 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new Error(`answer over ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The agent's list, checked: a malformed or unsafe entry is refused rather than passed to users. */
function checkFileList(node: string, body: unknown): CaptureFile[] {
  const files = (body as { files?: unknown } | null)?.files;
  if (!Array.isArray(files)) throw new AgentError(node, 'the file list has no "files" array');
  return files.map((f: unknown, i) => {
    const entry = f as Partial<CaptureFile> | null;
    if (!entry || typeof entry.fileName !== 'string' || !isCaptureFileName(entry.fileName)) {
      throw new AgentError(node, `files[${i}] has a missing or unsafe fileName ${JSON.stringify(entry?.fileName)}`);
    }
    return {
      pod: typeof entry.pod === 'string' ? entry.pod : '',
      fileName: entry.fileName,
      bytes: typeof entry.bytes === 'number' && entry.bytes >= 0 ? entry.bytes : 0,
      complete: entry.complete === true,
    };
  });
}
