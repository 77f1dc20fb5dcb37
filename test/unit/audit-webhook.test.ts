// The webhook sink's transport options on real sockets: a receiver with a certificate from a
// private CA (caBundle), an HTTP proxy on loopback (proxyURL), and the headers it always sends.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { BatchEncoder, type EncodedBatch } from '../../src/nodeagent/audit/encoder.js';
import { HttpWebhookSink, parseHeaderLines } from '../../src/nodeagent/audit/sinks/webhook.js';
import type { WebhookSink } from '../../src/apis/auditforwarder.js';

interface Received {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'ignore' });
}

/** A private CA and a server certificate for 127.0.0.1 signed by it (PEM). */
async function privatePki(dir: string): Promise<{ ca: string; key: string; cert: string }> {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=netwarden-test-receiver-ca'], dir);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=receiver'], dir);
  await writeFile(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'san.ext', '-out', 'server.crt'], dir);
  const read = (f: string) => readFile(path.join(dir, f), 'utf8');
  return { ca: await read('ca.crt'), key: await read('server.key'), cert: await read('server.crt') };
}

function receive(got: Received[]) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', () => {
      got.push({ url: req.url ?? '', headers: req.headers, body: Buffer.concat(parts) });
      res.writeHead(200).end();
    });
  };
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** A forward proxy: CONNECT tunnels, and absolute-form requests relayed; records what it was asked. */
function forwardProxy(asked: string[]): http.Server {
  const proxy = http.createServer((req, res) => {
    asked.push(`${req.method} ${req.url}`);
    const target = new URL(req.url ?? '');
    const upstream = http.request({ host: target.hostname, port: target.port, path: target.pathname + target.search, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    req.pipe(upstream);
  });
  proxy.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    asked.push(`CONNECT ${req.url}`);
    const [host, port] = (req.url ?? '').split(':');
    const upstream = net.connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  return proxy;
}

describe('audit webhook sink transport', function () {
  this.timeout(20_000);
  let dir: string;
  let pki: { ca: string; key: string; cert: string };
  let batch: EncodedBatch;
  const servers: net.Server[] = [];
  const sinks: HttpWebhookSink[] = [];
  const info = { forwarder: 'af-main', clusterID: 'prod-eu', node: 'cp-1', seq: 7, sealedAt: new Date() };
  const event = { kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Metadata', auditID: 'a1', stage: 'ResponseComplete', verb: 'get' };

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'nw-webhook-'));
    pki = await privatePki(dir);
    const encoder = new BatchEncoder('eventList', true, path.join(dir, 'batch.spool'));
    await encoder.add(Buffer.from(JSON.stringify(event)));
    batch = await encoder.finish();
  });
  afterEach(async () => {
    await Promise.all(sinks.splice(0).map((s) => s.close()));
    for (const s of servers.splice(0)) {
      (s as http.Server).closeAllConnections?.();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const send = (s: HttpWebhookSink): Promise<void> => s.send(batch, info, new AbortController().signal);

  /** What sending the batch fails with (undefined when the receiver took it). */
  function sendError(s: HttpWebhookSink): Promise<unknown> {
    return send(s).then(
      () => undefined,
      (e: unknown) => e,
    );
  }

  function sink(spec: WebhookSink, headers: Record<string, string> = {}, bearerToken?: string): HttpWebhookSink {
    const s = new HttpWebhookSink(spec, () => Promise.resolve({ headers, bearerToken }));
    sinks.push(s);
    return s;
  }

  async function httpsReceiver(got: Received[]): Promise<string> {
    const server = https.createServer({ key: pki.key, cert: pki.cert }, receive(got));
    servers.push(server);
    return `https://127.0.0.1:${await listen(server)}/audit`;
  }

  it('verifies an HTTPS receiver against caBundle and sends the batch with its headers', async () => {
    const got: Received[] = [];
    const url = await httpsReceiver(got);
    const headers = parseHeaderLines('X-Scope-OrgID: tenant-a\n# comment\n');
    await send(sink({ url, format: 'eventList', gzip: true, caBundle: Buffer.from(pki.ca).toString('base64') }, headers, 's3cr3t'));
    expect(got).to.have.length(1);
    const [req] = got;
    expect(req!.headers).to.include({
      authorization: 'Bearer s3cr3t',
      'x-scope-orgid': 'tenant-a',
      'content-type': 'application/json',
      'content-encoding': 'gzip',
      'x-netwarden-cluster-id': 'prod-eu',
      'x-netwarden-node': 'cp-1',
      'x-netwarden-batch': 'cp-1/af-main/7',
    });
    expect(JSON.parse(gunzipSync(req!.body).toString('utf8'))).to.deep.equal({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', metadata: {}, items: [event] });
  });

  it('refuses an HTTPS receiver whose certificate is not from caBundle or the system roots, naming the cause', async () => {
    const got: Received[] = [];
    const url = await httpsReceiver(got);
    const error = await sendError(sink({ url, format: 'eventList', gzip: true }));
    expect(String(error)).to.match(/^SinkError: POST https:\/\/127\.0\.0\.1:\d+\/audit: .*certificate.*: set caBundle to the CA that signed the receiver's certificate$/);
    expect(got).to.have.length(0);
  });

  it('sends through proxyURL, to an HTTP receiver and through a tunnel to an HTTPS one', async () => {
    const asked: string[] = [];
    const proxy = forwardProxy(asked);
    servers.push(proxy);
    const proxyURL = `http://127.0.0.1:${await listen(proxy)}`;
    const got: Received[] = [];
    const plain = http.createServer(receive(got));
    servers.push(plain);
    const plainPort = await listen(plain);
    const httpsUrl = await httpsReceiver(got);

    await send(sink({ url: `http://127.0.0.1:${plainPort}/plain`, format: 'eventList', gzip: true, proxyURL }));
    await send(sink({ url: httpsUrl, format: 'eventList', gzip: true, proxyURL, caBundle: Buffer.from(pki.ca).toString('base64') }));

    expect(got.map((r) => r.url)).to.deep.equal(['/plain', '/audit']);
    expect(asked).to.have.length(2);
    expect(asked[0]).to.match(new RegExp(`^(CONNECT 127\\.0\\.0\\.1:${plainPort}|POST http://127\\.0\\.0\\.1:${plainPort}/plain)$`));
    expect(asked[1]).to.equal(`CONNECT ${new URL(httpsUrl).host}`);
  });

  it('reports a proxy that refuses the connection as the error of the send, without its password', async () => {
    const closed = net.createServer();
    const port = await listen(closed);
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const refused = await sendError(sink({ url: 'http://127.0.0.1:9/audit', format: 'eventList', gzip: true, proxyURL: `http://127.0.0.1:${port}` }));
    expect(String(refused)).to.match(new RegExp(`^SinkError: POST http://127\\.0\\.0\\.1:9/audit \\(through the proxy http://127\\.0\\.0\\.1:${port}\\): .*ECONNREFUSED`));
    const withPassword = await sendError(sink({ url: 'http://127.0.0.1:9/audit', format: 'eventList', gzip: true, proxyURL: `http://audit:hunter2@127.0.0.1:${port}` }));
    expect(String(withPassword)).to.include(`(through the proxy http://audit:***@127.0.0.1:${port}/)`);
    expect(String(withPassword)).to.not.include('hunter2');
  });
});
