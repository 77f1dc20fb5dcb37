// A standby controller replica passes its HTTPS API's requests on to the leader (the Service and
// `kubectl port-forward svc/...` send callers to either pod): two real HTTPS API servers on
// loopback, one leading, one standing by, with a certificate for the Service's name.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
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
    const forwarder = new LeaderForwarder({
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
