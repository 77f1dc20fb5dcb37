// The apiserver's audit log as it is on disk, and a webhook receiver that keeps every copy of every
// audit event sent to it: what the real-node e2e (test/e2e/install-realnode.test.ts) checks an
// AuditForwarder's delivery against, and what `npm run demo` ships to on the real node.
import { readdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';

/** One audit event as kube-apiserver logged it: what the receiver is checked against. */
export interface LoggedEvent {
  /** auditID/stage: one request logs ResponseComplete, a watch ResponseStarted as well. */
  key: string;
  /** stageTimestamp in ms: when the apiserver wrote this line. */
  at: number;
  verb: string;
  uri: string;
  resource?: string;
  namespace?: string;
  name?: string;
}

/**
 * Every complete event in the audit log and its lumberjack rotations (<base>-<time>.log[.gz]),
 * oldest first. A file renamed or gzipped while it is read makes the whole listing start again:
 * an event missed here would make the loss check weaker without anyone seeing it.
 */
export async function auditLogEvents(logPath: string): Promise<LoggedEvent[]> {
  const dir = path.dirname(logPath);
  const base = path.basename(logPath, '.log');
  for (let attempt = 0; ; attempt++) {
    try {
      const names = await readdir(dir);
      // lumberjack's backup names carry a sortable UTC time; the live file comes last.
      const files = [...names.filter((n) => n.startsWith(`${base}-`) && /\.log(\.gz)?$/.test(n)).sort(), `${base}.log`];
      const out: LoggedEvent[] = [];
      for (const n of files) {
        const raw = await readFile(path.join(dir, n));
        const lines = (n.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8').split('\n');
        lines.pop(); // after the last newline: empty, or a line still being written
        for (const l of lines) {
          const e = JSON.parse(l) as { auditID: string; stage: string; stageTimestamp: string; verb: string; requestURI: string; objectRef?: { resource?: string; namespace?: string; name?: string } };
          out.push({
            key: `${e.auditID}/${e.stage}`, at: Date.parse(e.stageTimestamp), verb: e.verb, uri: e.requestURI,
            resource: e.objectRef?.resource, namespace: e.objectRef?.namespace, name: e.objectRef?.name,
          });
        }
      }
      return out;
    } catch (err) {
      if (attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** A webhook sink: takes audit.k8s.io/v1 EventLists (or NDJSON) and keeps every copy of every event. */
export class AuditReceiver {
  batches = 0;
  private server: http.Server | undefined;
  private address = '';
  private port = 0;
  /** key → when each copy arrived. */
  private readonly arrivals = new Map<string, number[]>();
  private readonly items = new Map<string, Record<string, unknown>>();

  async start(host: string): Promise<void> {
    const server = http.createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (b: Buffer) => parts.push(b));
      req.on('end', () => {
        const raw = Buffer.concat(parts);
        const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
        const items = req.headers['content-type'] === 'application/json'
          ? (JSON.parse(text) as { items: Record<string, unknown>[] }).items
          : text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
        const now = Date.now();
        for (const item of items) {
          const key = `${String(item.auditID)}/${String(item.stage)}`;
          this.arrivals.set(key, [...(this.arrivals.get(key) ?? []), now]);
          this.items.set(key, item);
        }
        this.batches += 1;
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, resolve);
    });
    this.server = server;
    this.address = host;
    this.port = (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  url(p: string): string {
    return `http://${this.address}:${this.port}${p}`;
  }

  has(key: string): boolean {
    return this.arrivals.has(key);
  }

  item(key: string): Record<string, unknown> | undefined {
    return this.items.get(key);
  }

  /** When the first copy arrived. */
  receivedAt(key: string): number | undefined {
    return this.arrivals.get(key)?.[0];
  }

  keys(): string[] {
    return [...this.arrivals.keys()];
  }

  distinct(): number {
    return this.arrivals.size;
  }

  /** [key, copies received] for every key. */
  copies(): [string, number][] {
    return [...this.arrivals].map(([k, times]) => [k, times.length]);
  }

  /** Keys of which a copy arrived at or after `ms`. */
  keysReceivedAfter(ms: number): string[] {
    return [...this.arrivals].filter(([, times]) => times.some((t) => t >= ms)).map(([k]) => k);
  }
}
