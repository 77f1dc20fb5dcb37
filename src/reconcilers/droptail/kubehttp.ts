// A minimal JSON client for the API server with one keep-alive connection pool, for the hot path
// of the drop pipeline (Event creates and patches). @kubernetes/client-node 2.0 builds a new undici
// dispatcher, and so a new TLS connection, for every request, which costs ~4 ms of CPU each: too
// much at a thousand Events a second. Credentials still come from the KubeConfig on every request
// (applyToHTTPSOptions), so rotated tokens and exec/auth plugins keep working.
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export class KubeHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface KubeHttpOptions {
  maxSockets?: number;
  timeoutMs?: number;
}

export class KubeHttp {
  private readonly server: URL;
  private agent: https.Agent | undefined;
  private readonly maxSockets: number;
  private readonly timeoutMs: number;

  constructor(
    private readonly kc: KubeConfig,
    opts: KubeHttpOptions = {},
  ) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
    this.maxSockets = opts.maxSockets ?? 16;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** Sends a JSON body; resolves with the parsed answer; throws KubeHttpError for any non-2xx status. */
  async request<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const options: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(options);
    // Our own pool: the KubeConfig's agent does not keep connections alive.
    this.agent ??= new https.Agent({ keepAlive: true, maxSockets: this.maxSockets, ca: options.ca, cert: options.cert, key: options.key, rejectUnauthorized: options.rejectUnauthorized });
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = { accept: 'application/json', ...(options.headers as Record<string, string>) };
    if (payload) Object.assign(headers, { 'content-type': contentType, 'content-length': payload.length });
    return new Promise<T>((resolve, reject) => {
      const req = https.request(
        { protocol: this.server.protocol, hostname: this.server.hostname, port: this.server.port, path: `${this.server.pathname.replace(/\/$/, '')}${path}`, method, headers, agent: this.agent, timeout: this.timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              try {
                resolve((text ? JSON.parse(text) : undefined) as T);
              } catch (err) {
                reject(err instanceof Error ? err : new Error(String(err)));
              }
              return;
            }
            let message = text;
            try {
              message = (JSON.parse(text) as { message?: string }).message ?? text;
            } catch {
              // not a Status object: keep the text
            }
            reject(new KubeHttpError(status, `${method} ${path}: HTTP ${status}: ${message}`));
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}
