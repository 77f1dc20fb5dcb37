// The rules behind Netwarden's own certificates, without an API server: which agent requests the
// signer approves (and why it refuses the others), and when the CA is staged, promoted and pruned.
import { expect } from 'chai';
import type { V1CertificateSigningRequest, V1Node } from '@kubernetes/client-node';
import { agentCommonName, AGENT_SERVING_SIGNER, NODE_NAME_EXTRA } from '../../src/apis/certificates.js';
import { applyStep, caStep, leafValidity, trustBundle, type CaState } from '../../src/reconcilers/certificates/authority.js';
import { reviewAgentRequest, type RequestFacts, type SignerPolicy } from '../../src/reconcilers/certificates/policy.js';
import { certificateValidity } from '../../src/util/certinfo.js';
import { createCertificateAuthority, createCertificateRequest, generateKeyPair, parseCertificateRequest, type CertificateAuthority } from '../../src/util/x509.js';
import { renewalTime } from '../../src/runtime/tls.js';

const AGENT = 'system:serviceaccount:netwarden-system:netwarden-agent';
const POLICY: SignerPolicy = { agentUsername: AGENT, maxLifetimeMs: 24 * 3600_000 };

function node(name: string, ...ips: string[]): V1Node {
  return { metadata: { name }, status: { addresses: [...ips.map((address) => ({ type: 'InternalIP', address })), { type: 'Hostname', address: name }] } };
}

const NODES = [node('n1', '10.0.0.1', 'fd00::1'), node('n2', '10.0.0.2')];

interface Ask {
  username?: string;
  nodeName?: string[] | undefined;
  commonName?: string;
  ips?: string[];
  dns?: string[];
  usages?: string[];
  expirationSeconds?: number;
  reserved?: Map<string, string>;
  nodes?: V1Node[];
}

async function review(ask: Ask = {}) {
  const key = await generateKeyPair();
  const pem = await createCertificateRequest(key, ask.commonName ?? agentCommonName('n1'), { ips: ask.ips ?? ['10.0.0.1'], dns: ask.dns ?? [] });
  const csr: V1CertificateSigningRequest = {
    metadata: { name: 'csr-1' },
    spec: {
      request: Buffer.from(pem).toString('base64'),
      signerName: AGENT_SERVING_SIGNER,
      username: ask.username ?? AGENT,
      extra: ask.nodeName === undefined && 'nodeName' in ask ? {} : { [NODE_NAME_EXTRA]: ask.nodeName ?? ['n1'] },
      usages: ask.usages ?? ['digital signature', 'server auth'],
      expirationSeconds: ask.expirationSeconds,
    },
  };
  const nodes = ask.nodes ?? NODES;
  const facts: RequestFacts = {
    csr,
    request: await parseCertificateRequest(pem),
    nodes: { get: (name) => nodes.find((n) => n.metadata?.name === name), list: () => nodes },
    reserved: ask.reserved ?? new Map(),
  };
  return reviewAgentRequest(facts, POLICY);
}

describe('agent certificate requests', function () {
  it("approves the agent's request for its own node's addresses, for at most the signer's lifetime", async function () {
    const verdict = await review({ ips: ['10.0.0.1', 'fd00:0:0:0:0:0:0:1'], expirationSeconds: 7 * 24 * 3600 });
    expect(verdict).to.include({ approve: true, nodeName: 'n1', commonName: 'netwarden:agent:n1', lifetimeMs: POLICY.maxLifetimeMs });
    expect(verdict.approve && verdict.ips).to.deep.equal(['10.0.0.1', 'fd00::1']);
    const shorter = await review({ expirationSeconds: 600 });
    expect(shorter.approve && shorter.lifetimeMs).to.equal(600_000);
  });

  const refusals: Array<[string, Ask, string, RegExp]> = [
    ['another requester', { username: 'system:serviceaccount:default:sneaky' }, 'NotAnAgent', /sneaky/],
    ['a token bound to no pod', { nodeName: undefined }, 'NoNodeIdentity', /names no node/],
    ['a node that does not exist', { nodeName: ['n9'] }, 'UnknownNode', /n9 does not exist/],
    ["another node's address", { ips: ['10.0.0.2'] }, 'NotNodeAddress', /10\.0\.0\.2 is not an address of node n1/],
    ['a DNS name (the kubelet writes Hostname addresses)', { dns: ['netwarden-controller.netwarden-system.svc'] }, 'NotAnIPAddress', /DNS:netwarden-controller/],
    ['no address at all', { ips: [] }, 'NoAddresses', /no IP address/],
    ["another node's name", { commonName: agentCommonName('n2') }, 'WrongCommonName', /netwarden:agent:n2/],
    ['client auth', { usages: ['digital signature', 'server auth', 'client auth'] }, 'DisallowedUsage', /client auth/],
    ['no server auth', { usages: ['digital signature'] }, 'MissingServerAuth', /server auth/],
    ['a Service IP', { reserved: new Map([['10.0.0.1', 'the cluster IP of Service default/kubernetes']]) }, 'ReservedAddress', /Service default\/kubernetes/],
    ['an address two nodes claim', { nodes: [node('n1', '10.0.0.1'), node('n2', '10.0.0.1')] }, 'AddressOfAnotherNode', /also an address of node n2/],
  ];
  for (const [what, ask, reason, message] of refusals) {
    it(`denies ${what} (${reason})`, async function () {
      const verdict = await review(ask);
      expect(verdict.approve).to.equal(false);
      if (verdict.approve) return;
      expect(verdict.reason).to.equal(reason);
      expect(verdict.message).to.match(message);
    });
  }
});

describe('CA rotation', function () {
  const HOUR = 3600_000;
  const t0 = Date.parse('2030-01-01T00:00:00Z');
  const at = (fraction: number): Date => new Date(t0 + fraction * 100 * HOUR);
  const ca = (from: number, lifeHours: number): Promise<CertificateAuthority> =>
    createCertificateAuthority('test-ca', { notBefore: new Date(from), notAfter: new Date(from + lifeHours * HOUR) });

  it('stages the next CA at 60 %, promotes it at 80 % once published, prunes the old one when it expires', async function () {
    let state: CaState = { current: await ca(t0, 100), retired: [] };
    expect(caStep(state, at(0.5))).to.deep.equal({ nextCheck: at(0.6) });
    expect(caStep(state, at(0.61)).step).to.equal('stage');
    state = await applyStep(state, 'stage', at(0.61), () => ca(at(0.61).getTime(), 100));
    expect(trustBundle(state, at(0.61)).match(/BEGIN CERTIFICATE/g)).to.have.length(2); // trusted before it signs
    expect(caStep(state, at(0.7)).step).to.equal(undefined);
    expect(caStep(state, at(0.81)).step).to.equal('promote');
    const old = state.current.certPem;
    state = await applyStep(state, 'promote', at(0.81), () => Promise.reject(new Error('no new CA on promote')));
    expect(state.next).to.equal(undefined);
    expect(state.retired).to.deep.equal([old]);
    expect(trustBundle(state, at(0.9))).to.contain(old.trim()); // certificates it signed are still in use
    expect(caStep(state, at(1.0)).step).to.equal('prune');
    state = await applyStep(state, 'prune', at(1.0), () => Promise.reject(new Error('no new CA on prune')));
    expect(trustBundle(state, at(1.0))).to.not.contain(old.trim());
  });

  it('waits for a late-staged CA to be published before it signs, unless the current one has expired', async function () {
    const state: CaState = { current: await ca(t0, 100), next: await ca(at(0.79).getTime(), 100), retired: [] };
    // Staged at 79 %: clients get a tenth of its life (at most an hour) to learn it.
    expect(caStep(state, at(0.8)).step).to.equal(undefined);
    expect(caStep(state, new Date(at(0.79).getTime() + HOUR + 6 * 60_000)).step).to.equal('promote');
    expect(caStep(state, at(1.0)).step).to.equal('promote');
  });

  it('starts over when the CA expired with no successor', async function () {
    expect(caStep({ current: await ca(t0, 1), retired: [] }, at(0.5)).step).to.equal('create');
    expect(caStep(undefined, at(0)).step).to.equal('create');
  });

  it('issues no certificate that outlives its CA, and renews at 70-90 % of a life', async function () {
    const authority = await ca(t0, 10);
    const validity = leafValidity(authority, new Date(t0 + 9 * HOUR), 24 * HOUR);
    expect(validity.notAfter.getTime()).to.equal(certificateValidity(authority.certPem).notAfter.getTime());
    const life = { notBefore: new Date(t0), notAfter: new Date(t0 + 100 * HOUR) };
    expect(renewalTime(life, () => 0).getTime()).to.equal(t0 + 70 * HOUR);
    expect(renewalTime(life, () => 0.999999).getTime()).to.be.closeTo(t0 + 90 * HOUR, 1000);
  });
});
