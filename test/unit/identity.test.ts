// The pieces of "an agent is its node" that need no cluster: the controller's per-audience tokens
// from TokenRequest (kept, renewed, shared), the agent's rotating token file, and which status
// fields the admission policy gives to the agents.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { V1Node } from '@kubernetes/client-node';
import { agentAudience } from '../../src/apis/identity.js';
import { AGENT_NODE_STATUS_POLICY, statusOwnership } from '../../src/apis/nodestatus.js';
import { AccessDenied, AccessReviewer } from '../../src/runtime/auth.js';
import { ServiceAccountTokens } from '../../src/runtime/tokens.js';
import { AgentError, AgentFilesClient } from '../../src/reconcilers/packetcapture/agentclient.js';
import { tokenFromFile } from '../../src/util/kube.js';
import { FakeReviewApi, selfSignedCertificate, type Tls } from './support/reviews.js';

const CONTROLLER = 'system:serviceaccount:netwarden-system:netwarden-controller';
const HOUR_MS = 3600_000;

describe("the controller's tokens for the agents (TokenRequest)", function () {
  let tls: Tls;
  let kube: FakeReviewApi;
  let now: number;
  let tokens: ServiceAccountTokens;

  before(async () => {
    tls = selfSignedCertificate('nw-tokens-');
    kube = new FakeReviewApi(tls);
    await kube.start();
  });
  after(async () => {
    await kube.stop();
    tls.remove();
  });
  beforeEach(() => {
    now = 0;
    kube.tokenRequests.length = 0;
    kube.failTokenRequests = false;
    tokens = new ServiceAccountTokens(kube.kubeConfig('controller-token'), { namespace: 'netwarden-system', serviceAccount: 'netwarden-controller', now: () => now });
  });

  it("requests one token per audience of its own ServiceAccount, which only that audience's reviewer accepts", async () => {
    const forA = await tokens.tokenFor(agentAudience('node-a'));
    const forB = await tokens.tokenFor(agentAudience('node-b'));
    expect(forA).to.not.equal(forB);
    expect(kube.tokenRequests).to.deep.equal([
      { namespace: 'netwarden-system', serviceAccount: 'netwarden-controller', audiences: ['netwarden-agent:node-a'], expirationSeconds: 3600 },
      { namespace: 'netwarden-system', serviceAccount: 'netwarden-controller', audiences: ['netwarden-agent:node-b'], expirationSeconds: 3600 },
    ]);
    const agentA = new AccessReviewer(kube.kubeConfig('agent-token'), { audiences: [agentAudience('node-a')] });
    expect((await agentA.authenticate(forA)).username).to.equal(CONTROLLER);
    const replayed = await agentA.authenticate(forB).catch((err: unknown) => err);
    expect(replayed).to.be.instanceOf(AccessDenied);
    expect((replayed as AccessDenied).status).to.equal(401);
  });

  it('keeps a token until 80 % of its lifetime has passed, then renews it', async () => {
    const first = await tokens.tokenFor('aud');
    now = 0.79 * HOUR_MS;
    expect(await tokens.tokenFor('aud')).to.equal(first);
    expect(kube.tokenRequests).to.have.length(1);
    now = 0.81 * HOUR_MS;
    const renewed = await tokens.tokenFor('aud');
    expect(renewed).to.not.equal(first);
    expect(kube.tokenRequests).to.have.length(2);
  });

  it('asks once for many callers at the same time', async () => {
    const all = await Promise.all(Array.from({ length: 5 }, () => tokens.tokenFor('aud')));
    expect(new Set(all).size).to.equal(1);
    expect(kube.tokenRequests).to.have.length(1);
  });

  it('hands out the old token while a renewal fails and it is still valid, then fails with the cause', async () => {
    const first = await tokens.tokenFor('aud');
    kube.failTokenRequests = true;
    now = 0.85 * HOUR_MS;
    expect(await tokens.tokenFor('aud')).to.equal(first);
    now = 0.96 * HOUR_MS;
    const err = await tokens.tokenFor('aud').catch((e: unknown) => e);
    expect(err).to.be.instanceOf(Error);
    expect((err as Error).message).to.match(/^TokenRequest for netwarden-system\/netwarden-controller with audience aud failed: /);
  });

  it('names the node when the agent client has no token for it', async () => {
    const nodes = { get: (name: string): V1Node => ({ metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }] } }) };
    const client = new AgentFilesClient({ token: () => Promise.reject(new Error('forbidden')), nodes, port: 1 });
    const err = await client.list('node-a', 'ns', 'pc').catch((e: unknown) => e);
    client.close();
    expect(err).to.be.instanceOf(AgentError);
    expect((err as AgentError).message).to.equal('node node-a: no token for its agent: forbidden');
  });
});

describe("the agent's token file (a projected serviceAccountToken)", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'nw-token-file-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is read again on every use, so a token the kubelet rotated is sent from then on', async () => {
    const file = path.join(dir, 'token');
    writeFileSync(file, 'first-token\n');
    const token = tokenFromFile(file);
    expect(await token()).to.equal('first-token');
    writeFileSync(file, 'rotated-token');
    expect(await token()).to.equal('rotated-token');
  });

  it('fails with the file name when it is empty or missing', async () => {
    const empty = path.join(dir, 'empty');
    writeFileSync(empty, '\n');
    expect(((await tokenFromFile(empty)().catch((e: unknown) => e)) as Error).message).to.equal(`the token file ${empty} is empty`);
    expect(((await tokenFromFile(path.join(dir, 'none'))().catch((e: unknown) => e)) as Error).message).to.contain('ENOENT');
  });
});

describe('netwarden-agent-node-status: who owns which status field', () => {
  it("gives the agents PacketCapture's per-node files and the interface of targets, and every other field to the controller", () => {
    const ownership = statusOwnership();
    expect(ownership.perNode).to.have.members(['files']);
    expect(ownership.nodeAssigned).to.deep.equal([{ field: 'targets', key: 'pod', controllerFields: ['pod', 'node', 'ip'], agentFields: ['interface'] }]);
    for (const field of ['observedGeneration', 'conditions', 'phase', 'podCount', 'fileCount', 'totalBytes']) {
      expect(ownership.controller, field).to.include(field);
    }
    expect(ownership.controller).to.not.include.members(['files', 'targets']);
  });

  it('checks only PacketCapture status updates by the agent ServiceAccount (DropTail and AuditForwarder agents write no status)', () => {
    expect(AGENT_NODE_STATUS_POLICY.resources).to.deep.equal(['packetcaptures/status']);
    expect(AGENT_NODE_STATUS_POLICY.operations).to.deep.equal(['UPDATE']);
    expect(AGENT_NODE_STATUS_POLICY.matchConditions[0]?.expression).to.equal("request.userInfo.username == 'system:serviceaccount:netwarden-system:netwarden-agent'");
  });
});
