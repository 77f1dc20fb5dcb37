// A standby controller replica passes its HTTPS API's requests on to the leader (the Service and
// `kubectl port-forward svc/...` send callers to either pod): two real HTTPS API servers on
// loopback, one leading, one standing by, with a certificate for the Service's name.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { FORWARDED_HEADER, LeaderForwarder } from '../../src/runtime/forward.js';
import { HttpError, HttpsApiServer, readBody, sendJson } from '../../src/runtime/https.js';
import { call, messageOf } from './support/reviews.js';

const serviceName = 'netwarden-controller.netwarden-system.svc';

/** A loopback port nothing listens on (bound, read, closed). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

describe('a standby passes API requests on to the leader', () => {
  let dir: string;
  let cert: Buffer;
  let key: Buffer;
  let leader: HttpsApiServer;
  let standby: HttpsApiServer;
  let leaderPort = 0;
  let standbyPort = 0;
  let leaderAddress: string | undefined = '127.0.0.1';
  let forwardPort = 0;
  let forwarder: LeaderForwarder;

  const serve = (name: string, leading: boolean): HttpsApiServer => {
    const api = new HttpsApiServer({ name, port: 0, host: '127.0.0.1' });
    api.setCertificate({ cert, key });
    api.route('POST', '/droptail/:name/drops', async (req, res, params) => {
      if (!leading) throw new HttpError(503, 'this controller replica is not the leader (or is still starting); retry');
      const body = (await readBody(req, 1 << 20)).toString();
      sendJson(res, 202, { answeredBy: name, name: params.name, body, authorization: req.headers.authorization, forwardedBy: req.headers[FORWARDED_HEADER] });
    });
    return api;
  };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'nw-forward-'));
    // The replicas' certificates name the Service, not the pod IP the standby dials.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=netwarden-controller',
      '-addext', `subjectAltName=DNS:${serviceName},IP:127.0.0.1`, '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
    cert = readFileSync(path.join(dir, 'cert.pem'));
    key = readFileSync(path.join(dir, 'key.pem'));
    leader = serve('leader-pod', true);
    leaderPort = await leader.start();
    forwardPort = leaderPort;
    standby = serve('standby-pod', false);
    forwarder = new LeaderForwarder({
      identity: 'standby-pod', isLeader: () => false, leader: () => 'leader-pod',
      addressOf: async (holder) => (holder === 'leader-pod' ? leaderAddress : undefined),
      get port() {
        return forwardPort;
      },
      trust: { current: () => cert.toString() }, servername: serviceName,
    });
    standby.setForwarder((req, res) => forwarder.forward(req, res));
    standbyPort = await standby.start();
  });

  after(async () => {
    forwarder.close();
    await standby.stop();
    await leader.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers with the leader\'s answer: body, caller\'s token and path passed on, one hop marked', async () => {
    const answer = await call(standbyPort, cert, 'POST', '/droptail/all-nodes/drops', { token: 'agent-token', body: '{"drops":[1,2,3]}', headers: { 'content-type': 'application/json' } });
    expect(answer.status).to.equal(202);
    expect(JSON.parse(answer.body.toString())).to.deep.equal({
      answeredBy: 'leader-pod', name: 'all-nodes', body: '{"drops":[1,2,3]}', authorization: 'Bearer agent-token', forwardedBy: 'standby-pod',
    });
  });

  it('does not pass on a request that was passed on already (no loops): it answers 503 itself', async () => {
    const answer = await call(standbyPort, cert, 'POST', '/droptail/all-nodes/drops', { body: '{}', headers: { [FORWARDED_HEADER]: 'other-standby' } });
    expect(answer.status).to.equal(503);
    expect(messageOf(answer)).to.contain('not the leader');
  });

  it('answers 503 (retry) when the leader cannot be reached, and itself when no leader is known', async () => {
    forwardPort = await freePort();
    try {
      const unreachable = await call(standbyPort, cert, 'POST', '/droptail/all-nodes/drops', { body: '{}' });
      expect(unreachable.status).to.equal(503);
      expect(unreachable.headers['retry-after']).to.equal('1');
      expect(messageOf(unreachable)).to.contain('could not reach the leader leader-pod');
    } finally {
      forwardPort = leaderPort;
    }
    leaderAddress = undefined;
    try {
      const unknown = await call(standbyPort, cert, 'POST', '/droptail/all-nodes/drops', { body: '{}' });
      expect(unknown.status).to.equal(503);
      expect(messageOf(unknown)).to.contain('not the leader');
    } finally {
      leaderAddress = '127.0.0.1';
    }
  });
});

// A drop flood the Service sends half to the standby: with a new TLS connection per forwarded
// batch both replicas paid a handshake and ~87 KB of TLS buffers per batch. Two leaders on two
// loopback addresses (the same port, as two pods), connections counted where they arrive.
describe('a standby keeps its connections to the leader alive', () => {
  let dir: string;
  let cert: Buffer;
  let key: Buffer;
  const leaders = new Map<string, { api: HttpsApiServer; address: string; sockets: Set<Socket> }>();
  let holder = 'leader-a';
  let port = 0;
  let standby: HttpsApiServer;
  let standbyPort = 0;
  let forwarder: LeaderForwarder;
  let releaseSlow: () => void = () => undefined;
  let slowArrived = false;
  const slow = new Promise<void>((r) => (releaseSlow = r));

  const serve = async (name: string, address: string): Promise<void> => {
    const api = new HttpsApiServer({ name, port, host: address });
    const sockets = new Set<Socket>();
    api.setCertificate({ cert, key });
    api.route('POST', '/droptail/:name/drops', async (req, res, params) => {
      sockets.add(req.socket);
      await readBody(req, 1 << 20);
      if (params.name === 'slow') {
        slowArrived = true;
        await slow;
      }
      sendJson(res, 202, { answeredBy: name });
    });
    port = await api.start();
    leaders.set(name, { api, address, sockets });
  };
  const post = async (name = 'all-nodes'): Promise<{ status: number; answeredBy?: string }> => {
    const answer = await call(standbyPort, cert, 'POST', `/droptail/${name}/drops`, { token: 'agent-token', body: '{"drops":[1]}' });
    return { status: answer.status, answeredBy: (JSON.parse(answer.body.toString()) as { answeredBy?: string }).answeredBy };
  };
  const open = (name: string): Socket[] => [...leaders.get(name)!.sockets].filter((s) => !s.destroyed);
  const until = async (cond: () => boolean, ms: number, what: string): Promise<void> => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'nw-forward-pool-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=netwarden-controller',
      '-addext', `subjectAltName=DNS:${serviceName},IP:127.0.0.1`, '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
    cert = readFileSync(path.join(dir, 'cert.pem'));
    key = readFileSync(path.join(dir, 'key.pem'));
    await serve('leader-a', '127.0.0.2');
    await serve('leader-b', '127.0.0.3');
    forwarder = new LeaderForwarder({
      identity: 'standby-pod', isLeader: () => false, leader: () => holder,
      addressOf: async (identity) => leaders.get(identity)?.address,
      port, trust: { current: () => cert.toString() }, servername: serviceName, maxSockets: 4,
    });
    standby = new HttpsApiServer({ name: 'standby-pod', port: 0, host: '127.0.0.1' });
    standby.setCertificate({ cert: readFileSync(path.join(dir, 'cert.pem')), key });
    standby.route('POST', '/droptail/:name/drops', async () => {
      throw new HttpError(503, 'this controller replica is not the leader (or is still starting); retry');
    });
    standby.setForwarder((req, res) => forwarder.forward(req, res));
    standbyPort = await standby.start();
  });

  after(async () => {
    releaseSlow();
    forwarder.close();
    await standby.stop();
    for (const { api } of leaders.values()) await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends 30 batches one after another over one connection, and 40 at once over at most maxSockets (4)', async () => {
    for (let i = 0; i < 30; i++) expect(await post()).to.deep.equal({ status: 202, answeredBy: 'leader-a' });
    expect(leaders.get('leader-a')!.sockets.size).to.equal(1);
    const answers = await Promise.all(Array.from({ length: 40 }, () => post()));
    expect(answers.every((a) => a.status === 202 && a.answeredBy === 'leader-a')).to.equal(true);
    expect(leaders.get('leader-a')!.sockets.size).to.be.within(1, 4);
    expect(open('leader-a').length).to.be.within(1, 4); // kept alive, not closed after each answer
  });

  it('sends to the new leader once the Lease moves, and closes the connections to the former one (a request under way finishes)', async () => {
    const underWay = post('slow');
    await until(() => slowArrived, 2000, 'the slow request at leader-a');
    holder = 'leader-b';
    const movedAt = Date.now();
    expect(await post()).to.deep.equal({ status: 202, answeredBy: 'leader-b' });
    // Idle connections to leader-a close at once (their keep-alive would have lasted 4 s); the busy one stays.
    await until(() => open('leader-a').length === 1, 1000, 'only the busy connection to leader-a left open');
    releaseSlow();
    expect(await underWay).to.deep.equal({ status: 202, answeredBy: 'leader-a' });
    await until(() => open('leader-a').length === 0, 1000, 'no connection to leader-a left open');
    expect(Date.now() - movedAt).to.be.lessThan(2000);
    for (let i = 0; i < 10; i++) expect((await post()).answeredBy).to.equal('leader-b');
    expect(leaders.get('leader-b')!.sockets.size).to.equal(1);
  });
});
