// `kubectl netwarden ui` acts with the user's credentials, so its server must answer only the
// page it printed the URL of: the token, the Host (DNS rebinding), the Origin (another site's
// page) and the custom header on mutations (a cross-site form) are each checked over real HTTP.
import { expect } from 'chai';
import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REQUEST_HEADER, sendJson, startConsoleServer, tokenCookie, type ConsoleServer } from '../../src/plugin/ui/server.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function call(port: number, opts: { method?: string; path?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path ?? '/api/ping', headers: { host: `127.0.0.1:${port}`, ...opts.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('console server: token, Host and Origin checks', function () {
  const token = 'tok-3f9a0c1d2e';
  let server: ConsoleServer;
  let dir: string;
  let apiCalls: string[];

  before(async function () {
    dir = await mkdtemp(path.join(tmpdir(), 'nw-ui-'));
    await writeFile(path.join(dir, 'index.html'), '<p>console</p>');
    await writeFile(path.join(dir, 'app.js'), 'console.log(1)');
    apiCalls = [];
    server = await startConsoleServer({
      token,
      staticDir: dir,
      api: async (req, res, url) => {
        apiCalls.push(`${req.method} ${url.pathname}`);
        sendJson(res, 200, { ok: true });
        return true;
      },
    });
  });

  after(async function () {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  beforeEach(() => (apiCalls = []));

  it('binds to 127.0.0.1 on a random port and prints a URL with the token', function () {
    expect(server.port).to.be.greaterThan(0);
    expect(server.url).to.equal(`http://127.0.0.1:${server.port}/?token=${token}`);
  });

  it('answers 401 without a token, and with a wrong one, before any API handler runs', async function () {
    const none = await call(server.port);
    expect(none.status).to.equal(401);
    expect(JSON.parse(none.body).message).to.match(/needs the token/);
    const wrong = await call(server.port, { headers: { authorization: 'Bearer tok-3f9a0c1d2f' } });
    expect(wrong.status).to.equal(401);
    const short = await call(server.port, { path: '/api/ping?token=tok' });
    expect(short.status).to.equal(401);
    const page = await call(server.port, { path: '/' });
    expect(page.status).to.equal(401);
    expect(apiCalls).to.deep.equal([]);
  });

  it('accepts the token as a bearer header, and as the cookie the URL sets', async function () {
    const ok = await call(server.port, { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).to.equal(200);
    const first = await call(server.port, { path: `/?token=${token}` });
    expect(first.status).to.equal(303);
    expect(first.headers.location).to.equal('/');
    const cookie = String(first.headers['set-cookie']);
    expect(cookie).to.contain(`${tokenCookie(server.port)}=${token}`).and.to.contain('HttpOnly').and.to.contain('SameSite=Strict');
    const page = await call(server.port, { path: '/', headers: { cookie: `${tokenCookie(server.port)}=${token}` } });
    expect(page.status).to.equal(200);
    expect(page.body).to.equal('<p>console</p>');
    expect(page.headers['content-security-policy']).to.contain("default-src 'self'");
    const api = await call(server.port, { headers: { cookie: `other=1; ${tokenCookie(server.port)}=${token}` } });
    expect(api.status).to.equal(200);
    expect(apiCalls).to.deep.equal(['GET /api/ping', 'GET /api/ping']);
  });

  it('refuses a Host other than its own loopback address and port (DNS rebinding), even with the token', async function () {
    for (const host of ['evil.example:' + server.port, `127.0.0.1:${server.port + 1}`, '127.0.0.1', `0.0.0.0:${server.port}`]) {
      const r = await call(server.port, { headers: { host, authorization: `Bearer ${token}` } });
      expect(r.status, host).to.equal(403);
      expect(JSON.parse(r.body).message).to.match(/not this console's address/);
    }
    const local = await call(server.port, { headers: { host: `localhost:${server.port}`, authorization: `Bearer ${token}` } });
    expect(local.status).to.equal(200);
    expect(apiCalls).to.deep.equal(['GET /api/ping']);
  });

  it('refuses another origin and sends no CORS headers', async function () {
    const cross = await call(server.port, { headers: { origin: 'https://evil.example', authorization: `Bearer ${token}` } });
    expect(cross.status).to.equal(403);
    const opaque = await call(server.port, { headers: { origin: 'null', authorization: `Bearer ${token}` } });
    expect(opaque.status).to.equal(403);
    const same = await call(server.port, { headers: { origin: `http://127.0.0.1:${server.port}`, authorization: `Bearer ${token}` } });
    expect(same.status).to.equal(200);
    expect(Object.keys(same.headers).filter((h) => h.startsWith('access-control-'))).to.deep.equal([]);
    const preflight = await call(server.port, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'DELETE' } });
    expect(preflight.status).to.equal(403);
    expect(preflight.headers['access-control-allow-origin']).to.equal(undefined);
  });

  it('names its cookie after its port, so a second console in the same browser does not replace the token', async function () {
    const other = await startConsoleServer({ token: 'tok-other', staticDir: dir, api: async () => false });
    try {
      expect(tokenCookie(other.port)).to.not.equal(tokenCookie(server.port));
      const r = await call(other.port, { path: `/?token=tok-other` });
      expect(String(r.headers['set-cookie'])).to.match(new RegExp(`^${tokenCookie(other.port)}=tok-other;`));
      // The first console's cookie, sent to the second (same host), does not open it.
      const cross = await call(other.port, { path: '/', headers: { cookie: `${tokenCookie(server.port)}=${token}` } });
      expect(cross.status).to.equal(401);
    } finally {
      await other.close();
    }
  });

  it(`refuses a POST or DELETE without the ${REQUEST_HEADER} header, as a cross-site form would send it`, async function () {
    const form = await call(server.port, { method: 'POST', path: '/api/captures', headers: { cookie: `${tokenCookie(server.port)}=${token}`, 'content-type': 'application/x-www-form-urlencoded' } });
    expect(form.status).to.equal(403);
    const del = await call(server.port, { method: 'DELETE', path: '/api/captures/a/b', headers: { cookie: `${tokenCookie(server.port)}=${token}` } });
    expect(del.status).to.equal(403);
    expect(apiCalls).to.deep.equal([]);
    const ok = await call(server.port, { method: 'DELETE', path: '/api/captures/a/b', headers: { cookie: `${tokenCookie(server.port)}=${token}`, [REQUEST_HEADER]: '1' } });
    expect(ok.status).to.equal(200);
    expect(apiCalls).to.deep.equal(['DELETE /api/captures/a/b']);
  });

  it('does not listen on other addresses of the machine', async function () {
    const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      const req = http.request({ host: '::1', port: server.port, path: '/' }, () => resolve(undefined));
      req.on('error', (e: NodeJS.ErrnoException) => resolve(e));
      req.end();
    });
    expect(err?.code).to.be.oneOf(['ECONNREFUSED', 'EADDRNOTAVAIL', 'ENETUNREACH']);
  });
});
