// Netwarden's servers on loopback against clients that misbehave: a slowloris that never finishes
// its headers is cut, connections over the caps are refused while others still get answers, and a
// response that streams longer than the request timeout is not cut. Then /metrics: who gets in.
import { expect } from 'chai';
import net from 'node:net';
import tls from 'node:tls';
import { AccessReviewer } from '../../src/runtime/auth.js';
import { HttpsApiServer, sendJson } from '../../src/runtime/https.js';
import { API_SERVER_LIMITS, METRICS_SERVER_LIMITS, type ServerLimits } from '../../src/runtime/limits.js';
import { registry } from '../../src/runtime/metrics.js';
import { HealthServer, metricsServing } from '../../src/runtime/server.js';
import { call, FakeReviewApi, selfSignedCertificate, type Tls } from './support/reviews.js';

/** Limits small enough to watch them act within a test; checked every 100 ms. */
const TIGHT: ServerLimits = { ...API_SERVER_LIMITS, headersTimeoutMs: 1_000, requestTimeoutMs: 1_500, handshakeTimeoutMs: 1_000, checkIntervalMs: 100, maxConnections: 6, maxConnectionsPerClient: 3 };

interface Connection {
  socket: net.Socket;
  /** Resolves with everything the server sent once it closed the connection. */
  closed: Promise<string>;
}

/** A raw TCP connection from `localAddress` (127.0.0.1 unless given), or a TLS one trusting `tls`. */
async function connect(port: number, opts: { tls?: Buffer; localAddress?: string } = {}): Promise<Connection> {
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = opts.tls
      ? tls.connect({ host: '127.0.0.1', port, ca: opts.tls }, () => resolve(s))
      : net.connect({ host: '127.0.0.1', port, localAddress: opts.localAddress }, () => resolve(s));
    s.once('error', reject);
  });
  socket.on('error', () => undefined); // a reset is one way of being closed
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  const closed = new Promise<string>((resolve) => socket.once('close', () => resolve(received)));
  return { socket, closed };
}

/** Sends one byte of a never-ending header every 100 ms until the server closes the connection. */
function trickleHeaders(c: Connection): void {
  c.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
  const timer = setInterval(() => c.socket.writable && c.socket.write('a'), 100);
  void c.closed.then(() => clearInterval(timer));
}

/** A keep-alive GET on an open connection; resolves with the status line once the answer is in. */
async function getOn(c: Connection, path: string): Promise<string> {
  return (await headOfAnswer(c, path)).split('\r\n')[0]!;
}

/** A keep-alive GET on an open connection; resolves with the answer's status line and headers. */
async function headOfAnswer(c: Connection, path: string): Promise<string> {
  const answer = new Promise<string>((resolve) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (/\r\n\r\n/.test(text)) {
        c.socket.off('data', onData);
        resolve(text.split('\r\n\r\n')[0]!);
      }
    };
    c.socket.on('data', onData);
  });
  c.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  return answer;
}

async function refusedCount(reason: string): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'netwarden_http_connections_refused_total');
  return (metric?.values ?? []).filter((v) => v.labels.reason === reason).reduce((sum, v) => sum + v.value, 0);
}

describe('server limits', function () {
  this.timeout(30_000);
  let cert: Tls;
  let api: HttpsApiServer;
  let apiPort: number;
  let health: HealthServer;
  let healthPort: number;

  before(async () => {
    cert = selfSignedCertificate('nw-limits-');
    api = new HttpsApiServer({ name: 'unit-limits', certFile: cert.certFile, keyFile: cert.keyFile, port: 0, host: '0.0.0.0', limits: TIGHT });
    // Streams 30 chunks over 3 s: twice the request timeout.
    api.route('GET', '/slow-download', async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      for (let i = 0; i < 30; i++) {
        res.write(Buffer.alloc(1000, i));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      res.end();
    });
    apiPort = await api.start();
    health = new HealthServer({ healthPort: 0, metricsPort: 0, host: '0.0.0.0', readiness: () => undefined, limits: { ...TIGHT, keepAliveTimeoutMs: 60_000 } });
    await health.start();
    healthPort = health.ports().health;
  });
  after(async () => {
    await api.stop();
    await health.stop();
    cert.remove();
  });

  it('cuts a slowloris that never finishes its headers, on HTTP and after a TLS handshake', async function () {
    for (const open of [() => connect(healthPort), () => connect(apiPort, { tls: cert.cert })]) {
      const c = await open();
      trickleHeaders(c);
      // The client never stops sending and never closes: only the server's header timeout ends this.
      expect(await c.closed).to.equal('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
    }
    // One that opens a TCP connection to the HTTPS port and never starts the handshake.
    const silent = await connect(apiPort);
    expect(await silent.closed).to.equal('');
  });

  it('lets a response stream for longer than the request timeout', async function () {
    const answer = await call(apiPort, cert.cert, 'GET', '/slow-download');
    expect(answer.status).to.equal(200);
    expect(answer.body.length).to.equal(30_000);
  });

  it("refuses one client's connections over its cap while another client's request succeeds", async function () {
    const refusedBefore = await refusedCount('max_per_client');
    const held = [await connect(healthPort), await connect(healthPort), await connect(healthPort)];
    for (const c of held) expect(await getOn(c, '/healthz')).to.equal('HTTP/1.1 200 OK');
    const over = await connect(healthPort);
    over.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(await over.closed, 'the fourth connection from 127.0.0.1 gets no answer').to.equal('');
    expect(await refusedCount('max_per_client')).to.equal(refusedBefore + 1);
    const other = await connect(healthPort, { localAddress: '127.0.0.2' });
    expect(await getOn(other, '/healthz')).to.equal('HTTP/1.1 200 OK');
    for (const c of [...held, other]) c.socket.destroy();
  });

  it('keeps at most maxKeptAlive connections open: over it, an answered connection is closed and says so', async function () {
    const budgetApi = new HttpsApiServer({ name: 'unit-kept-alive', certFile: cert.certFile, keyFile: cert.keyFile, port: 0, host: '127.0.0.1', limits: { ...TIGHT, maxKeptAlive: 2 } });
    budgetApi.route('GET', '/ping', async (_req, res) => sendJson(res, 200, { pong: true }));
    const port = await budgetApi.start();
    try {
      const first = await connect(port, { tls: cert.cert });
      const second = await connect(port, { tls: cert.cert });
      for (const c of [first, second]) expect(await headOfAnswer(c, '/ping')).to.match(/^HTTP\/1.1 200 OK\r\n[^]*Connection: keep-alive/);
      const third = await connect(port, { tls: cert.cert });
      const over = await headOfAnswer(third, '/ping');
      expect(over).to.match(/^HTTP\/1.1 200 OK\r\n/);
      expect(over).to.match(/\r\nconnection: close/i);
      await third.closed; // the server closed it after the answer: the client did nothing
      expect(await headOfAnswer(first, '/ping'), 'two open again: kept alive').to.match(/Connection: keep-alive/);
      for (const c of [first, second]) c.socket.destroy();
    } finally {
      await budgetApi.stop();
    }
  });

  it('refuses connections over the server cap, and answers again once some close', async function () {
    const clients = ['127.0.0.3', '127.0.0.4', '127.0.0.5'];
    const held: Connection[] = [];
    for (const localAddress of clients) for (let i = 0; i < 2; i++) held.push(await connect(healthPort, { localAddress }));
    for (const c of held) expect(await getOn(c, '/healthz')).to.equal('HTTP/1.1 200 OK');
    const over = await connect(healthPort, { localAddress: '127.0.0.6' });
    over.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(await over.closed, 'the seventh connection gets no answer').to.equal('');
    for (const c of held.splice(0, 2)) {
      c.socket.destroy();
      await c.closed;
    }
    // The server counts a connection closed once it has seen the close: ask until it has.
    for (let attempt = 0; ; attempt++) {
      const again = await connect(healthPort, { localAddress: '127.0.0.6' });
      again.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
      const received = await again.closed;
      if (received.startsWith('HTTP/1.1 200')) break;
      expect(attempt, 'answered after two connections closed').to.be.below(50);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const c of held) c.socket.destroy();
  });
});

describe('/metrics access', function () {
  const SCRAPER = 'system:serviceaccount:monitoring:prometheus';
  let cert: Tls;
  let kube: FakeReviewApi;
  let server: HealthServer;
  let port: number;

  before(async () => {
    cert = selfSignedCertificate('nw-metrics-');
    kube = new FakeReviewApi(cert);
    kube.tokens.set('scraper-token', SCRAPER);
    kube.tokens.set('nosy-token', 'system:serviceaccount:tenant:nosy');
    kube.nonResourceGrants.push({ user: SCRAPER, verb: 'get', path: '/metrics' });
    await kube.start();
    const reviewer = new AccessReviewer(kube.kubeConfig('agent-token'), { tokenReviewBurstPerClient: 3, tokenReviewsPerSecondPerClient: 0.01 });
    const metrics = metricsServing({ insecure: false, reviewer });
    // One port for health and metrics, as the controller and the agent serve them.
    const free = net.createServer();
    await new Promise<void>((resolve) => free.listen(0, '127.0.0.1', resolve));
    const shared = (free.address() as net.AddressInfo).port;
    await new Promise((resolve) => free.close(resolve));
    server = new HealthServer({ healthPort: shared, metricsPort: shared, host: '127.0.0.1', readiness: () => 'informers not synced: nodes', limits: METRICS_SERVER_LIMITS, ...metrics });
    server.setCertificate({ cert: cert.cert, key: cert.key });
    await server.start();
    port = server.ports().metrics;
  });
  after(async () => {
    await server.stop();
    await kube.stop();
    cert.remove();
  });

  it('serves /metrics over HTTPS to a token allowed get /metrics, and says why to others', async function () {
    const ok = await call(port, cert.cert, 'GET', '/metrics', { token: 'scraper-token' });
    expect(ok.status).to.equal(200);
    expect(ok.body.toString()).to.contain('netwarden_token_reviews_total');
    const anonymous = await call(port, cert.cert, 'GET', '/metrics');
    expect([anonymous.status, anonymous.headers['www-authenticate'], anonymous.body.toString()]).to.deep.equal([401, 'Bearer', 'no bearer token: send "Authorization: Bearer <token>"\n']);
    const nosy = await call(port, cert.cert, 'GET', '/metrics', { token: 'nosy-token' });
    expect([nosy.status, nosy.body.toString()]).to.deep.equal([403, 'system:serviceaccount:tenant:nosy may not get /metrics\n']);
    const bogus = await call(port, cert.cert, 'GET', '/metrics', { token: 'bogus' });
    expect([bogus.status, bogus.body.toString()]).to.deep.equal([401, 'invalid token: token unknown\n']);
    const post = await call(port, cert.cert, 'POST', '/metrics', { token: 'scraper-token' });
    expect(post.status).to.equal(405);
  });

  it('answers 429 with Retry-After once a client has sent too many unknown tokens', async function () {
    const statuses: number[] = [];
    let last;
    for (let i = 0; i < 6; i++) {
      last = await call(port, cert.cert, 'GET', '/metrics', { token: `random-${i}` });
      statuses.push(last.status);
    }
    expect(statuses.at(-1)).to.equal(429);
    expect(Number(last!.headers['retry-after'])).to.be.at.least(1);
    expect(last!.body.toString()).to.match(/too many requests with tokens not seen before from 127\.0\.0\.1/);
    // The scraper's verified token is served from the cache all the same.
    expect((await call(port, cert.cert, 'GET', '/metrics', { token: 'scraper-token' })).status).to.equal(200);
  });

  it('leaves /healthz and /readyz open for the kubelet', async function () {
    expect((await call(port, cert.cert, 'GET', '/healthz')).status).to.equal(200);
    const ready = await call(port, cert.cert, 'GET', '/readyz');
    expect([ready.status, ready.body.toString()]).to.deep.equal([503, 'not ready: informers not synced: nodes']);
  });
});

describe('metrics port without a serving certificate yet', () => {
  it('serves HTTPS with a self-signed stand-in, then the serving certificate once it is set, without a restart', async function () {
    const cert = selfSignedCertificate('nw-metrics-late-');
    const server = new HealthServer({ healthPort: 0, metricsPort: 0, host: '127.0.0.1', readiness: () => undefined, tls: true });
    await server.start();
    try {
      const port = server.ports().metrics;
      const standIn = await peerCertificate(port);
      expect(standIn.subject?.CN).to.equal('netwarden-metrics');
      expect(standIn.issuer?.CN, 'self-signed').to.equal('netwarden-metrics');
      // A client that trusts only the real CA refuses the stand-in.
      const refused = await call(port, cert.cert, 'GET', '/metrics').then(() => 'accepted', (err: NodeJS.ErrnoException) => err.code);
      expect(refused).to.equal('DEPTH_ZERO_SELF_SIGNED_CERT');
      server.setCertificate({ cert: cert.cert, key: cert.key });
      expect((await peerCertificate(port)).subject?.CN).to.equal('127.0.0.1');
      expect((await call(port, cert.cert, 'GET', '/metrics')).status).to.equal(200);
    } finally {
      await server.stop();
      cert.remove();
    }
  });
});

/** The certificate a TLS server at the port presents (not verified). */
function peerCertificate(port: number): Promise<tls.PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate());
      socket.end();
    });
    socket.on('error', reject);
  });
}
