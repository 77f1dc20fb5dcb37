// Who reads captured packets, as one table (issue 11, tenancy): every identity below against both
// hops of the capture file API, the controller's download (what `kubectl netwarden capture
// download` calls) and node X's agent file API (what the controller calls with a token of audience
// netwarden-agent:X), in namespace A (the capture), B (another team's capture of the same name) and
// one that does not exist. One mocha test per cell; the suite prints the whole table at the end.
// Every 200 must hold exactly that namespace's files, byte for byte; every refusal the right
// status, its reason in the JSON body, and no file bytes.
import { expect } from 'chai';
import { createSign } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { AuthenticationV1Api, AuthorizationV1Api } from '@kubernetes/client-node';
import JSZip from 'jszip';
import { cluster } from './hooks.js';
import { createNamespace, createNode, createPod, createServiceAccount, requestPodBoundToken, requestToken, waitFor } from '../env/fixtures.js';
import {
  agentControllerToken, agentPod, ensureInstalled, mustKubectl, netwardenCaFile, netwardenPorts, nextNodeIP, startAgent, startController, SYSTEM_NAMESPACE,
  type NetwardenProcess,
} from '../env/netwarden.js';
import { createPodNetwork, type PodNetwork } from '../env/podnet.js';
import { agentFilesPath, deleteFilesPath, downloadPath } from '../../src/apis/capturefiles.js';
import { agentAudience } from '../../src/apis/identity.js';
import type { PacketCapture } from '../../src/apis/packetcapture.js';

const NS = { A: 'mx-a', B: 'mx-b', none: 'mx-no-such-namespace' } as const;
type Where = keyof typeof NS;
const USERS = 'mx-users';
const PC = 'pc-shared';
const X = 'mx-node-x';
const Y = 'mx-node-y';
const POD_IP = { A: '10.244.213.10', B: '10.244.213.11' } as const;
/** Nobody has this address: the packets are only seen leaving each pod's veth. */
const SINK_IP = '10.244.213.99';
const MARKER = { A: 'mx-team-a-packet', B: 'mx-team-b-packet' } as const;
const PCAP_MAGIC = [Buffer.from('d4c3b2a1', 'hex'), Buffer.from('a1b2c3d4', 'hex'), Buffer.from('4d3cb2a1', 'hex')];
const ZIP_MAGIC = Buffer.from('PK\x03\x04', 'latin1');

// --- the table ---------------------------------------------------------------------------------

type Hop = 'controller' | 'agent';
interface Target {
  title: string;
  hop: Hop;
  method: 'GET' | 'POST' | 'DELETE';
  where: Where;
  /** What a 200 must carry. */
  serves?: 'zip' | 'listing' | 'file';
  /** The verb the access review asks for. */
  verb: 'get' | 'delete';
}

const TARGETS: Target[] = [
  { title: 'ctl GET A', hop: 'controller', method: 'GET', where: 'A', serves: 'zip', verb: 'get' },
  { title: 'ctl GET B', hop: 'controller', method: 'GET', where: 'B', serves: 'zip', verb: 'get' },
  { title: 'ctl GET none', hop: 'controller', method: 'GET', where: 'none', serves: 'zip', verb: 'get' },
  { title: 'ctl POST A', hop: 'controller', method: 'POST', where: 'A', verb: 'get' },
  { title: 'ctl DELETE A', hop: 'controller', method: 'DELETE', where: 'A', verb: 'delete' },
  { title: 'agent GET A list', hop: 'agent', method: 'GET', where: 'A', serves: 'listing', verb: 'get' },
  { title: 'agent GET A file', hop: 'agent', method: 'GET', where: 'A', serves: 'file', verb: 'get' },
  { title: 'agent GET B list', hop: 'agent', method: 'GET', where: 'B', serves: 'listing', verb: 'get' },
  { title: 'agent GET B file', hop: 'agent', method: 'GET', where: 'B', serves: 'file', verb: 'get' },
  { title: 'agent GET none list', hop: 'agent', method: 'GET', where: 'none', serves: 'listing', verb: 'get' },
  { title: 'agent POST A', hop: 'agent', method: 'POST', where: 'A', verb: 'get' },
  // DELETE where no capture is: an allowed caller gets 404 and nothing of A's or B's is removed.
  { title: 'agent DELETE none', hop: 'agent', method: 'DELETE', where: 'none', verb: 'delete' },
];

/** How a token fails TokenReview, for the expected 401 reason. */
type TokenKind = 'none' | 'bogus' | 'expired' | 'valid';

interface Identity {
  id: string;
  /** As the API server names it, for the expected 403 reason. */
  user?: string;
  kind: TokenKind;
  /** The hop whose audience the token carries (none: neither hop's). */
  audience?: Hop;
  token: () => Promise<string | undefined>;
  /** Expected status per TARGETS column. */
  expect: number[];
}

const sa = (name: string) => `system:serviceaccount:${USERS}:${name}`;
const userToken = (name: string, audiences?: string[]) => () => requestToken(cluster().kubeConfig(), USERS, name, audiences);
const controllerToken = (audiences?: string[]) => () => requestToken(cluster().kubeConfig(), SYSTEM_NAMESPACE, 'netwarden-controller', audiences);
const CONTROLLER_USER = `system:serviceaccount:${SYSTEM_NAMESPACE}:netwarden-controller`;
const AGENT_USER = `system:serviceaccount:${SYSTEM_NAMESPACE}:netwarden-agent`;

//                                                 controller: GET A, GET B, GET none, POST A, DELETE A | agent X: A list, A file, B list, B file, none list, POST A, DELETE none
const IDENTITIES: Identity[] = [
  { id: 'anonymous (no token)', kind: 'none', token: async () => undefined, expect: [401, 401, 401, 405, 401, 401, 401, 401, 401, 401, 405, 401] },
  { id: 'bogus token', kind: 'bogus', token: async () => 'bogus.not-a.jwt', expect: [401, 401, 401, 405, 401, 401, 401, 401, 401, 401, 405, 401] },
  { id: 'SA without RBAC', user: sa('nobody'), audience: 'controller', kind: 'valid', token: userToken('nobody'), expect: [403, 403, 403, 405, 403, 401, 401, 401, 401, 401, 405, 401] },
  { id: 'Role get packetcaptures/files in A', user: sa('files-get-a'), audience: 'controller', kind: 'valid', token: userToken('files-get-a'), expect: [200, 403, 403, 405, 403, 401, 401, 401, 401, 401, 405, 401] },
  { id: 'netwarden-packetcapture-files-reader in A', user: sa('files-reader-a'), audience: 'controller', kind: 'valid', token: userToken('files-reader-a'), expect: [200, 403, 403, 405, 409, 401, 401, 401, 401, 401, 405, 401] },
  { id: 'netwarden-packetcapture-editor in A (no files)', user: sa('editor-a'), audience: 'controller', kind: 'valid', token: userToken('editor-a'), expect: [403, 403, 403, 405, 403, 401, 401, 401, 401, 401, 405, 401] },
  { id: 'Role list/watch packetcaptures/files in A', user: sa('lister-a'), audience: 'controller', kind: 'valid', token: userToken('lister-a'), expect: [403, 403, 403, 405, 403, 401, 401, 401, 401, 401, 405, 401] },
  { id: 'ClusterRoleBinding files-reader (all ns)', user: sa('files-reader-all'), audience: 'controller', kind: 'valid', token: userToken('files-reader-all'), expect: [200, 200, 404, 405, 409, 401, 401, 401, 401, 401, 405, 401] },
  { id: 'cluster-admin', user: sa('admin'), audience: 'controller', kind: 'valid', token: userToken('admin'), expect: [200, 200, 404, 405, 409, 401, 401, 401, 401, 401, 405, 401] },
  { id: "agent X's pod-bound token (API server audience)", user: AGENT_USER, audience: 'controller', kind: 'valid', token: async () => requestPodBoundToken(cluster().kubeConfig(), await agentPod(cluster(), X)), expect: [403, 403, 403, 405, 403, 401, 401, 401, 401, 401, 405, 401] },
  { id: "agent X's pod-bound token (controller audience)", user: AGENT_USER, kind: 'valid', token: async () => agentControllerToken(cluster(), X), expect: [401, 401, 401, 405, 401, 401, 401, 401, 401, 401, 405, 401] },
  { id: "agent Y's pod-bound token, audience netwarden-agent:X", user: AGENT_USER, audience: 'agent', kind: 'valid', token: async () => requestPodBoundToken(cluster().kubeConfig(), await agentPod(cluster(), Y), [agentAudience(X)]), expect: [401, 401, 401, 405, 401, 403, 403, 403, 403, 403, 405, 403] },
  { id: "controller's token for node X", user: CONTROLLER_USER, audience: 'agent', kind: 'valid', token: controllerToken([agentAudience(X)]), expect: [401, 401, 401, 405, 401, 200, 200, 200, 200, 404, 405, 404] },
  { id: "controller's token for node Y", user: CONTROLLER_USER, kind: 'valid', token: controllerToken([agentAudience(Y)]), expect: [401, 401, 401, 405, 401, 401, 401, 401, 401, 401, 405, 401] },
  { id: "controller's token (API server audience)", user: CONTROLLER_USER, audience: 'controller', kind: 'valid', token: controllerToken(), expect: [200, 200, 404, 405, 409, 401, 401, 401, 401, 401, 405, 401] },
  { id: 'Role get files in A, token audience netwarden-agent:X', user: sa('files-get-a'), audience: 'agent', kind: 'valid', token: userToken('files-get-a', [agentAudience(X)]), expect: [401, 401, 401, 405, 401, 200, 200, 403, 403, 403, 405, 403] },
  { id: 'expired token of cluster-admin', user: sa('admin'), audience: 'controller', kind: 'expired', token: async () => expiredCopy(await userToken('admin')()), expect: [401, 401, 401, 405, 401, 401, 401, 401, 401, 401, 405, 401] },
  { id: "expired controller's token for node X", user: CONTROLLER_USER, audience: 'agent', kind: 'expired', token: async () => expiredCopy(await controllerToken([agentAudience(X)])()), expect: [401, 401, 401, 405, 401, 401, 401, 401, 401, 401, 405, 401] },
];

/** The users' ServiceAccounts and their bindings, as an admin grants them (the shipped roles where they fit). */
function rbacManifests(): string {
  const doc = (o: object) => JSON.stringify(o);
  const subject = (name: string) => [{ kind: 'ServiceAccount', name, namespace: USERS }];
  const roleRef = (kind: 'Role' | 'ClusterRole', name: string) => ({ apiGroup: 'rbac.authorization.k8s.io', kind, name });
  const rules = (verbs: string[]) => [{ apiGroups: ['netwarden.io'], resources: ['packetcaptures/files'], verbs }];
  const rb = (name: string, ref: object, who: string) => doc({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name, namespace: NS.A }, roleRef: ref, subjects: subject(who) });
  const crb = (name: string, role: string, who: string) => doc({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name }, roleRef: roleRef('ClusterRole', role), subjects: subject(who) });
  return [
    doc({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'mx-files-get', namespace: NS.A }, rules: rules(['get']) }),
    doc({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'mx-files-list-watch', namespace: NS.A }, rules: rules(['list', 'watch']) }),
    rb('mx-files-get-a', roleRef('Role', 'mx-files-get'), 'files-get-a'),
    rb('mx-files-reader-a', roleRef('ClusterRole', 'netwarden-packetcapture-files-reader'), 'files-reader-a'),
    rb('mx-editor-a', roleRef('ClusterRole', 'netwarden-packetcapture-editor'), 'editor-a'),
    rb('mx-lister-a', roleRef('Role', 'mx-files-list-watch'), 'lister-a'),
    crb('mx-files-reader-all', 'netwarden-packetcapture-files-reader', 'files-reader-all'),
    crb('mx-admin', 'cluster-admin', 'admin'),
  ].join('\n');
}

/** Who must be allowed what before the table runs (RBAC reaches the authorizer through a watch). */
const GRANTS: Array<[string, Where]> = [['files-get-a', 'A'], ['files-reader-a', 'A'], ['files-reader-all', 'B'], ['admin', 'B']];

// --- tokens --------------------------------------------------------------------------------------

/** The API server's ServiceAccount signing key (the test control plane's PKI). */
function signingKey(): Buffer {
  return readFileSync(path.join(path.dirname(cluster().caCertPath), 'sa.key'));
}

/**
 * A token the API server signed, with its validity moved an hour into the past: what a leaked token
 * is once it expired (TokenRequest gives no less than 10 minutes, too long to wait for here).
 */
function expiredCopy(token: string, shift = -7200): string {
  const [header, payload] = token.split('.') as [string, string];
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { iat: number; nbf: number; exp: number };
  const now = Math.floor(Date.now() / 1000);
  const life = claims.exp - claims.iat;
  Object.assign(claims, { iat: now + shift, nbf: now + shift, exp: now + shift + Math.min(life, 3600) });
  const body = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${body}.${createSign('RSA-SHA256').update(body).sign(signingKey()).toString('base64url')}`;
}

// --- requests ------------------------------------------------------------------------------------

interface Answer {
  status: number;
  contentType: string;
  body: Buffer;
}

let ca: Buffer | undefined;
let nodeIP = '';
const uids: Partial<Record<Where, string>> = {};
/** The files of each namespace's capture on node X, read from the agent's state directory. */
const onDisk: Partial<Record<Where, Map<string, Buffer>>> = {};

function call(host: string, port: number, urlPath: string, method: string, token: string | undefined): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host, port, path: urlPath, method, ca, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The first pcap of the namespace's capture (node X's agent names it after the pod and its veth). */
function firstPcap(where: Where): string {
  return [...(onDisk[where]?.keys() ?? [])].find((f) => f.endsWith('.pcap')) ?? 'web_cali0_00001.pcap';
}

function pathOf(t: Target): string {
  const ns = NS[t.where];
  if (t.hop === 'controller') return t.method === 'DELETE' ? deleteFilesPath(ns, PC) : downloadPath(ns, PC);
  return agentFilesPath(ns, PC, t.serves === 'file' ? firstPcap(t.where) : undefined);
}

async function send(t: Target, token: string | undefined): Promise<Answer> {
  const ports = await netwardenPorts(cluster());
  return t.hop === 'controller' ? call('127.0.0.1', ports.controllerHttps, pathOf(t), t.method, token) : call(nodeIP, ports.agentFiles, pathOf(t), t.method, token);
}

// --- what each answer must be ------------------------------------------------------------------

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** The audiences each hop reviews tokens for, as the API server names them when one does not match. */
const HOP_AUDIENCE: Record<Hop, string> = { controller: '"https://kubernetes\\.default\\.svc[^"]*"', agent: `"netwarden-agent:${X}"` };
const BOGUS_REASON = /^invalid token: invalid bearer token$/;

/** The reason a refusal must give, from the status, the cell's target and the caller. */
function expectedReason(status: number, t: Target, who: Identity): RegExp {
  const ns = NS[t.where];
  switch (status) {
    case 401:
      if (who.kind === 'none') return /^no bearer token: send "Authorization: Bearer <token>"$/;
      if (who.kind === 'bogus') return BOGUS_REASON;
      // The API server checks the audience before the expiry.
      if (who.audience !== t.hop) return new RegExp(`^invalid token: .* is invalid for the target audiences \\[${HOP_AUDIENCE[t.hop]}\\]`);
      if (who.kind === 'expired') return /^invalid token: .*expired/;
      throw new Error(`${who.id} is valid at ${t.hop}: no 401 reason`);
    case 403:
      return new RegExp(`^${escape(who.user ?? '?')} may not ${t.verb} packetcaptures/files\\.netwarden\\.io in namespace ${escape(ns)}(: .*)?$`);
    case 404:
      return t.hop === 'controller' ? new RegExp(`^packetcapture ${escape(ns)}/${PC} not found$`) : new RegExp(`^no packetcapture ${escape(ns)}/${PC} on node ${X}$`);
    case 405:
      return new RegExp(`^method ${t.method} not allowed on ${escape(pathOf(t).split('?')[0]!)}$`);
    case 409:
      return new RegExp(`^packetcapture ${escape(ns)}/${PC} is still running`);
    default:
      throw new Error(`no reason known for ${status}`);
  }
}

/** No pcap, zip or packet bytes of any namespace in a refusal. */
function expectNoFileBytes(answer: Answer): void {
  for (const magic of [...PCAP_MAGIC, ZIP_MAGIC]) expect(answer.body.includes(magic), `refusal body carries ${magic.toString('hex')}`).to.equal(false);
  for (const marker of Object.values(MARKER)) expect(answer.body.includes(marker), `refusal body carries ${marker}`).to.equal(false);
}

function expectRefusal(answer: Answer, t: Target, who: Identity): void {
  expectNoFileBytes(answer);
  expect(answer.contentType).to.equal('application/json');
  const body = JSON.parse(answer.body.toString('utf8')) as { status?: string; code?: number; message?: string };
  expect(body.status).to.equal('Failure');
  expect(body.code).to.equal(answer.status);
  expect(body.message ?? '', `the reason (${body.message ?? ''})`).to.match(expectedReason(answer.status, t, who));
}

/** These files (all of the capture's unless `some`), with their bytes, and packets of this namespace only. */
function expectSameFiles(got: Map<string, Buffer>, where: 'A' | 'B', some = false): void {
  const want = onDisk[where]!;
  if (!some) expect([...got.keys()].sort()).to.deep.equal([...want.keys()].sort());
  for (const [name, bytes] of got) expect(want.get(name)?.equals(bytes), `${name}: the bytes on node ${X}`).to.equal(true);
  const other = where === 'A' ? 'B' : 'A';
  const pcaps = [...got.entries()].filter(([n]) => n.endsWith('.pcap')).map(([, b]) => b);
  expect(pcaps.length, 'pcap files').to.be.greaterThan(0);
  expect(pcaps.some((b) => b.includes(MARKER[where])), `packets of ${NS[where]}`).to.equal(true);
  expect(pcaps.some((b) => b.includes(MARKER[other])), `packets of ${NS[other]}`).to.equal(false);
}

async function expectServed(answer: Answer, t: Target): Promise<void> {
  if (t.where === 'none') throw new Error('nothing to serve where no capture is');
  const where = t.where;
  if (t.serves === 'zip') {
    expect(answer.contentType).to.equal('application/zip');
    const zip = await JSZip.loadAsync(answer.body);
    const entries = new Map<string, Buffer>();
    for (const entry of Object.values(zip.files).filter((e) => !e.dir)) {
      expect(entry.name.startsWith(`${X}/`), `zip entry ${entry.name} is of node ${X}`).to.equal(true);
      entries.set(entry.name.slice(X.length + 1), await entry.async('nodebuffer'));
    }
    expectSameFiles(entries, where);
  } else if (t.serves === 'listing') {
    const listing = JSON.parse(answer.body.toString('utf8')) as { node: string; files: Array<{ fileName: string; bytes: number }> };
    expect(listing.node).to.equal(X);
    expect(listing.files.map((f) => [f.fileName, f.bytes]).sort()).to.deep.equal([...onDisk[where]!.entries()].map(([n, b]) => [n, b.length]).sort());
  } else {
    expectSameFiles(new Map([[firstPcap(where), answer.body]]), where, true);
  }
}

// --- the suite -----------------------------------------------------------------------------------

async function captureOf(where: Where): Promise<PacketCapture> {
  return JSON.parse(await mustKubectl(cluster(), ['get', 'packetcapture', PC, '-n', NS[where], '-o', 'json'])) as PacketCapture;
}

/** One datagram per count from the pod, each starting with the namespace's marker. */
async function sendUdp(pod: PodNetwork, marker: string, count: number): Promise<void> {
  const py = 'import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range(int(sys.argv[3])): s.sendto(("%s-%d" % (sys.argv[2], i)).encode(), (sys.argv[1], 5700))';
  const r = await pod.exec(['python3', '-c', py, SINK_IP, marker, String(count)], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`sending UDP from ${pod.name} failed: ${r.stderr}`);
}

function readCaptureDir(where: 'A' | 'B'): Map<string, Buffer> {
  const dir = path.join(cluster().dir, 'nodes', X, 'captures', NS[where], PC, uids[where]!);
  return new Map(readdirSync(dir).map((f) => [f, readFileSync(path.join(dir, f))]));
}

async function waitUntilGranted(): Promise<void> {
  const authz = cluster().kubeConfig().makeApiClient(AuthorizationV1Api);
  for (const [who, where] of GRANTS) {
    const resourceAttributes = { group: 'netwarden.io', resource: 'packetcaptures', subresource: 'files', verb: 'get', namespace: NS[where], name: PC };
    await waitFor(async () => (await authz.createSubjectAccessReview({ body: { spec: { user: sa(who), groups: ['system:serviceaccounts', `system:serviceaccounts:${USERS}`], resourceAttributes } } })).status?.allowed, {
      description: `RBAC letting ${sa(who)} get files in ${NS[where]}`,
    });
  }
}

const actual = new Map<string, number>();
/** Cells whose every assertion held (status, then files or reason). */
const passed = new Set<string>();
/** Each refusal's status and reason, as the caller read them. */
const reasons = new Set<string>();

describe('capture file access matrix: identities × verbs × namespaces, both hops', function () {
  this.timeout(120_000);
  const processes: NetwardenProcess[] = [];
  const tokens = new Map<string, string | undefined>();

  before(async function () {
    this.timeout(240_000);
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    nodeIP = nextNodeIP();
    await createNode(kc, X, { internalIP: nodeIP });
    await createNode(kc, Y, { internalIP: nextNodeIP() });
    for (const ns of [NS.A, NS.B, USERS]) await createNamespace(kc, ns);
    for (const name of ['nobody', 'files-get-a', 'files-reader-a', 'editor-a', 'lister-a', 'files-reader-all', 'admin']) await createServiceAccount(kc, USERS, name);
    await mustKubectl(cp, ['apply', '-f', '-'], rbacManifests());
    const pods: Partial<Record<'A' | 'B', PodNetwork>> = {};
    for (const where of ['A', 'B'] as const) {
      pods[where] = await createPodNetwork({ name: `mx-${where.toLowerCase()}`, ip: POD_IP[where] });
      await createPod(kc, { namespace: NS[where], name: 'web', nodeName: X, labels: { app: 'web' }, podIP: POD_IP[where] });
    }
    processes.push(await startController(cp, 'mx-controller'), await startAgent(cp, X));
    ca = readFileSync(await netwardenCaFile(cp));
    // The same capture, by name and spec, in both teams' namespaces.
    for (const where of ['A', 'B'] as const) {
      await mustKubectl(cp, ['apply', '-f', '-'], `apiVersion: netwarden.io/v1alpha1\nkind: PacketCapture\nmetadata: {name: ${PC}, namespace: ${NS[where]}}\nspec:\n  selector: app == "web"\n  filters: [{protocol: UDP, ports: [5700]}]\n`);
    }
    for (const where of ['A', 'B'] as const) {
      const entry = async () => (await captureOf(where)).status?.files?.find((f) => f.node === X);
      await waitFor(async () => (await entry())?.state === 'WaitingForTraffic', { timeoutMs: 60_000, description: `${NS[where]}/${PC} capturing on ${X}` });
      await sendUdp(pods[where]!, MARKER[where], 3);
      await waitFor(async () => ((await entry())?.packets ?? 0) >= 3, { timeoutMs: 30_000, description: `${NS[where]}/${PC} counting its packets` });
      uids[where] = (await captureOf(where)).metadata.uid;
    }
    await new Promise((r) => setTimeout(r, 1500)); // the agent flushes its files every second
    onDisk.A = readCaptureDir('A');
    onDisk.B = readCaptureDir('B');
    await waitUntilGranted();
    for (const who of IDENTITIES) tokens.set(who.id, await who.token());
    // The signature of a re-signed token is good: the expired one is refused for its time alone.
    const review = await kc.makeApiClient(AuthenticationV1Api).createTokenReview({ body: { spec: { token: expiredCopy(tokens.get('cluster-admin')!, -60) } } });
    expect(review.status?.authenticated, review.status?.error).to.equal(true);
    // The controller leads (a standby answers 503) and reaches the agent.
    await waitFor(async () => (await send(TARGETS[0]!, tokens.get('cluster-admin'))).status === 200, { timeoutMs: 60_000, description: 'the controller serving downloads' });
  });

  after(async function () {
    printTable();
    await Promise.all(processes.map((p) => p.kill()));
  });

  for (const who of IDENTITIES) {
    describe(who.id, function () {
      TARGETS.forEach((t, i) => {
        const want = who.expect[i]!;
        it(`${t.title} → ${want}`, async function () {
          const answer = await send(t, tokens.get(who.id));
          actual.set(`${who.id}\u0000${t.title}`, answer.status);
          const shown = answer.contentType === 'application/json' ? answer.body.toString('utf8') : `${answer.body.length} bytes of ${answer.contentType}`;
          if (answer.status !== want) expect.fail(`${who.id}, ${t.title}: ${answer.status} ${shown} (expected ${want})`);
          if (answer.contentType === 'application/json' && answer.status !== 200) reasons.add(`${answer.status} ${(JSON.parse(answer.body.toString('utf8')) as { message?: string }).message ?? ''}`);
          if (want === 200) await expectServed(answer, t);
          else expectRefusal(answer, t, who);
          passed.add(`${who.id}\u0000${t.title}`);
        });
      });
    });
  }

  // Mocha runs a suite's own tests before its nested ones: this one is nested to run last.
  describe('afterwards', function () {
    it("leaves both captures' files as they were (no refused or 404 DELETE removed any)", function () {
      for (const where of ['A', 'B'] as const) expect([...readCaptureDir(where).keys()].sort()).to.deep.equal([...onDisk[where]!.keys()].sort());
    });
  });
});

/** The table as markdown, expected/actual per cell ("!" where they differ), for the issue. */
function printTable(): void {
  const head = `| identity | ${TARGETS.map((t) => t.title).join(' | ')} |`;
  const rule = `|---|${TARGETS.map(() => '---').join('|')}|`;
  const rows = IDENTITIES.map((who) => {
    const cells = TARGETS.map((t, i) => {
      const cell = `${who.id}\u0000${t.title}`;
      const got = actual.get(cell);
      const want = who.expect[i]!;
      if (got === undefined) return `${want}/-`;
      if (got !== want) return `**${want}/${got}!**`;
      return passed.has(cell) ? `${want}` : `**${want} (body!)**`;
    });
    return `| ${who.id} | ${cells.join(' | ')} |`;
  });
  console.log(['', 'capture file access matrix (expected status; "want/got!" where they differ, "(body!)" where the files or reason were wrong, "-" not run):', head, rule, ...rows, '', 'the reasons refusals gave:', ...[...reasons].sort().map((r) => `- ${r}`), ''].join('\n'));
}
