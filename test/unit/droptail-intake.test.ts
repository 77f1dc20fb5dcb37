// The controller's drop intake (POST /droptail/:name/drops) on a real HTTPS server, with the real
// AccessReviewer asking a fake TokenReview/SubjectAccessReview API: each of its answers, in the
// order intake.ts documents them.
import { expect } from 'chai';
import { dropsPath, MAX_BATCH_BYTES, type DropBatch } from '../../src/apis/drops.js';
import type { DropTail } from '../../src/apis/droptail.js';
import { CONTROLLER_AUDIENCE, NODE_NAME_EXTRA } from '../../src/apis/identity.js';
import { GROUP } from '../../src/apis/meta.js';
import { AccessReviewer } from '../../src/runtime/auth.js';
import { HttpsApiServer } from '../../src/runtime/https.js';
import { DropIntake } from '../../src/reconcilers/droptail/intake.js';
import { call, FakeReviewApi, messageOf, selfSignedCertificate, type Tls } from './support/reviews.js';

const AGENT = 'system:serviceaccount:netwarden-system:netwarden-agent';
const T0 = '2026-11-23T01:00:00.000Z';

function batch(over: Partial<DropBatch> = {}): string {
  const b: DropBatch = {
    node: 'worker-1',
    sequence: 1,
    sentAt: T0,
    drops: [{ drop: { time: T0, timeSource: 'nflog', prefix: 'nwdrop:', family: 'ipv4', src: '10.1.2.3', dst: '10.1.2.4', protocol: 'UDP', dstPort: 53 }, count: 2, firstSeen: T0, lastSeen: T0, source: 'nflog' }],
    shedSinceLastBatch: 0,
    ...over,
  };
  return JSON.stringify(b);
}

describe('DropTail controller: the drop intake over HTTPS', function () {
  let tls: Tls;
  let kube: FakeReviewApi;
  let api: HttpsApiServer;
  let port: number;
  let leader: boolean;
  let synced: boolean;
  let room: boolean;
  const submitted: Array<{ dropTail: string; batch: DropBatch }> = [];
  const dropTails = new Map<string, DropTail>([['all', { apiVersion: 'netwarden.io/v1alpha1', kind: 'DropTail', metadata: { name: 'all' }, spec: { sources: [] } } as unknown as DropTail]]);

  before(async () => {
    tls = selfSignedCertificate('nw-drop-intake-');
    kube = new FakeReviewApi(tls);
    kube.tokens.set('agent-token', AGENT);
    kube.tokens.set('nosy-token', 'nosy');
    // The agent's projected token: the controller's audience, bound to its pod on worker-1.
    kube.audiences.set('agent-token', [CONTROLLER_AUDIENCE]);
    kube.extras.set('agent-token', { [NODE_NAME_EXTRA]: ['worker-1'] });
    kube.audiences.set('nosy-token', [CONTROLLER_AUDIENCE]);
    // The agent's token for the API server (default audience), and one with the audience but bound to no pod.
    kube.tokens.set('agent-api-token', AGENT);
    kube.extras.set('agent-api-token', { [NODE_NAME_EXTRA]: ['worker-1'] });
    kube.tokens.set('agent-unbound-token', AGENT);
    kube.audiences.set('agent-unbound-token', [CONTROLLER_AUDIENCE]);
    kube.grants.push({ user: AGENT, verb: 'create', group: GROUP, resource: 'droptails', subresource: 'drops' });
    await kube.start();
    api = new HttpsApiServer({ name: 'unit-intake', certFile: tls.certFile, keyFile: tls.keyFile, port: 0, host: '127.0.0.1' });
    new DropIntake({
      reviewer: new AccessReviewer(kube.kubeConfig('controller-token'), { audiences: [CONTROLLER_AUDIENCE] }),
      dropTails: { get: (name: string) => dropTails.get(name), hasSynced: () => synced },
      pipeline: {
        hasRoomFor: () => room,
        pending: 1234,
        submit: (dropTail: string, b: DropBatch) => void submitted.push({ dropTail, batch: b }),
      },
      isLeader: () => leader,
    }).register(api);
    port = await api.start();
  });
  after(async () => {
    await api.stop();
    await kube.stop();
    tls.remove();
  });
  beforeEach(() => {
    leader = true;
    synced = true;
    room = true;
    submitted.length = 0;
  });

  /** token null: no Authorization header. */
  const post = (name: string, body: string, token: string | null = 'agent-token') =>
    call(port, tls.cert, 'POST', dropsPath(name), { body, headers: { 'content-type': 'application/json' }, ...(token !== null ? { token } : {}) });

  it('accepts a batch from an allowed agent with 202 and the count, and queues it', async () => {
    const answer = await post('all', batch());
    expect(answer.status).to.equal(202);
    expect(JSON.parse(answer.body.toString('utf8'))).to.deep.equal({ accepted: 1 });
    expect(submitted.map((s) => [s.dropTail, s.batch.node, s.batch.drops[0]!.count])).to.deep.equal([['all', 'worker-1', 2]]);
    expect(kube.accessReviews.at(-1)).to.deep.include({ user: AGENT, verb: 'create', group: GROUP, resource: 'droptails', subresource: 'drops', name: 'all' });
  });

  it('answers 400 for a malformed DropTail name before asking who calls', async () => {
    const before = kube.tokenReviews;
    const answer = await post('Not_A_Name', batch(), null);
    expect(answer.status).to.equal(400);
    expect(kube.tokenReviews).to.equal(before);
  });

  it('answers 401 without a valid token and 403 without create droptails/drops', async () => {
    expect((await post('all', batch(), null)).status).to.equal(401);
    expect((await post('all', batch(), 'made-up')).status).to.equal(401);
    const denied = await post('all', batch(), 'nosy-token');
    expect(denied.status).to.equal(403);
    expect(messageOf(denied)).to.contain('nosy may not create droptails/drops.netwarden.io');
    expect(submitted).to.deep.equal([]);
  });

  it("answers 401 to the agent's token for the API server: only the controller's audience is taken", async () => {
    const answer = await post('all', batch(), 'agent-api-token');
    expect(answer.status).to.equal(401);
    expect(messageOf(answer)).to.contain('audience');
    expect(submitted).to.deep.equal([]);
  });

  it('answers 403 to a batch for another node than the one the token is bound to, and to a token bound to no node', async () => {
    const forged = await post('all', batch({ node: 'worker-2' }));
    expect(forged.status).to.equal(403);
    expect(messageOf(forged)).to.equal('the agent on node worker-1 may send drops only of node worker-1, not of node worker-2');
    const unbound = await post('all', batch(), 'agent-unbound-token');
    expect(unbound.status).to.equal(403);
    expect(messageOf(unbound)).to.contain(`${AGENT} presented a token bound to no node`);
    expect(submitted).to.deep.equal([]);
  });

  it('answers 503 with Retry-After on a standby and while the caches sync, after checking the caller', async () => {
    leader = false;
    expect((await post('all', batch(), 'nosy-token')).status).to.equal(403);
    const standby = await post('all', batch());
    expect(standby.status).to.equal(503);
    expect(standby.headers['retry-after']).to.equal('2');
    leader = true;
    synced = false;
    const starting = await post('all', batch());
    expect(starting.status).to.equal(503);
    expect(starting.headers['retry-after']).to.equal('2');
  });

  it('answers 404 for a DropTail that does not exist', async () => {
    const answer = await post('gone', batch());
    expect(answer.status).to.equal(404);
    expect(messageOf(answer)).to.equal('droptail gone not found');
  });

  it('answers 413 for a body over the limit, 400 for an invalid batch', async () => {
    const body = batch({ sentAt: T0 + ' '.repeat(MAX_BATCH_BYTES) });
    const tooBig = await post('all', body);
    expect(tooBig.status).to.equal(413);
    expect(messageOf(tooBig)).to.equal(`request body of ${Buffer.byteLength(body)} bytes is over ${MAX_BATCH_BYTES} bytes; send smaller batches`);
    const invalid = await post('all', batch({ node: 'Not A Node' }));
    expect(invalid.status).to.equal(400);
    expect(messageOf(invalid)).to.equal('invalid drop batch: $.node: "Not A Node" is not a node name');
    expect((await post('all', '{not json')).status).to.equal(400);
    expect(submitted).to.deep.equal([]);
  });

  it('answers 503 with Retry-After when the pipeline has no room, keeping nothing of the batch', async () => {
    room = false;
    const answer = await post('all', batch());
    expect(answer.status).to.equal(503);
    expect(answer.headers['retry-after']).to.equal('2');
    expect(messageOf(answer)).to.equal('drop pipeline full (1234 drops pending); retry');
    expect(submitted).to.deep.equal([]);
  });

  it('refuses with 503 by the declared length, before reading the body, while the pipeline is full', async () => {
    room = false;
    // Not even JSON: had the body been read and decoded, the answer would be 400.
    const answer = await post('all', '{' + 'x'.repeat(100_000));
    expect(answer.status).to.equal(503);
    expect(answer.headers['retry-after']).to.equal('2');
    room = true;
    expect((await post('all', '{' + 'x'.repeat(100_000))).status).to.equal(400);
  });
});
