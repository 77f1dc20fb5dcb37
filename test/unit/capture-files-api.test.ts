// The capture file API (src/apis/capturefiles.ts) end to end on loopback, without a cluster: the
// agent's file server, the controller's client of it, and the controller's download and delete
// endpoints in front of it, each a real HTTPS server, with the real AccessReviewer asking a fake
// TokenReview/SubjectAccessReview API.
import { expect } from 'chai';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { V1Node } from '@kubernetes/client-node';
import JSZip from 'jszip';
import {
  agentFilesPath,
  deleteFilesPath,
  downloadPath,
  EXPECTED_BYTES_HEADER,
  isCaptureFileName,
  MISSING_NODES_FILE,
  MISSING_NODES_HEADER,
  type CaptureFileListing,
} from '../../src/apis/capturefiles.js';
import { GROUP } from '../../src/apis/meta.js';
import type { PacketCapture } from '../../src/apis/packetcapture.js';
import { AccessReviewer } from '../../src/runtime/auth.js';
import { HttpsApiServer } from '../../src/runtime/https.js';
import { FileTrustBundle } from '../../src/runtime/tls.js';
import { captureDirectory, type CaptureRef } from '../../src/nodeagent/capture/store.js';
import { CaptureFileLayout, PcapFileWriter } from '../../src/nodeagent/capture/pcapfile.js';
import { readCapture } from '../../src/pcap/reader.js';
import { registerCaptureFileRoutes } from '../../src/nodeagent/capture/api.js';
import { AgentError, AgentFilesClient } from '../../src/reconcilers/packetcapture/agentclient.js';
import { registerCaptureFileApi } from '../../src/reconcilers/packetcapture/download.js';
import { agentAudience } from '../../src/apis/identity.js';
import { API_SERVER_AUDIENCE, call, FakeReviewApi, messageOf, selfSignedCertificate, type Tls } from './support/reviews.js';

const NS = 'storefront';
const NAME = 'pc-dns';
const NODE = 'node-1';
const CONTROLLER = 'system:serviceaccount:netwarden-system:netwarden-controller';
const PCAP = Buffer.concat([Buffer.from('d4c3b2a1', 'hex'), Buffer.alloc(20), Buffer.alloc(100, 7)]);
const METADATA = 'node node-1\ninterfaces: cali1234\n';
/** The controller's token for this node's agent (TokenRequest with agentAudience(NODE)). */
const FOR_NODE = 'controller-for-node-1';
const UID = '2f0c4a8e-3b1d-4c6e-9a7f-0d1e2f3a4b5c';
/** An older capture of the same name, deleted while its files stayed on the disk. */
const OLD_UID = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
const PARTIAL_UID = '11111111-2222-4333-8444-555555555555';
/** A spec.format: pcapng capture: web-0's files rotated once, db-0's one file. */
const NG_NAME = 'pc-ng';
const NG_UID = '44444444-2222-4333-8444-555555555555';
const T0 = 1_764_000_000_000_000;

/** A pcapng file as the agent writes it, one UDP-ish frame of `size` bytes per timestamp. */
function writePcapng(file: string, pod: string, times: readonly number[], size: number): void {
  const w = new PcapFileWriter(file, new CaptureFileLayout('pcapng', 65535, { namespace: NS, pod, node: NODE, iface: 'cali1234', direction: 'both', capture: `${NS}/${NG_NAME}` }), 1);
  for (const t of times) w.write(Buffer.alloc(size, 1), size, T0 + t);
  w.close();
}

const files = (verb: string, user: string, namespace = NS) => ({ user, verb, group: GROUP, resource: 'packetcaptures', subresource: 'files', namespace });

describe('capture file API', function () {
  let tls: Tls;
  let kube: FakeReviewApi;
  let stateDir: string;
  let agent: HttpsApiServer;
  let agentPort: number;
  const discarded: CaptureRef[] = [];

  before(async () => {
    tls = selfSignedCertificate('nw-capture-files-');
    kube = new FakeReviewApi(tls);
    kube.tokens.set('controller-token', CONTROLLER);
    kube.tokens.set('alice-token', 'alice');
    kube.tokens.set('bob-token', 'bob');
    kube.tokens.set('nosy-token', 'nosy');
    kube.tokens.set(FOR_NODE, CONTROLLER);
    kube.audiences.set(FOR_NODE, [agentAudience(NODE)]);
    kube.tokens.set('controller-for-node-2', CONTROLLER);
    kube.audiences.set('controller-for-node-2', [agentAudience('node-2')]);
    // Tokens for this agent that RBAC grants nothing (nosy) or only get (bob).
    kube.audiences.set('nosy-token', [API_SERVER_AUDIENCE, agentAudience(NODE)]);
    kube.audiences.set('bob-token', [API_SERVER_AUDIENCE, agentAudience(NODE)]);
    kube.grants.push(files('get', CONTROLLER), files('delete', CONTROLLER), files('get', 'alice'), files('delete', 'alice'), files('get', 'bob'));
    await kube.start();

    stateDir = path.join(tls.dir, 'state');
    const dir = captureDirectory(stateDir, { namespace: NS, name: NAME }, UID);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'logging-7d9_cali1234_00001.pcap'), PCAP);
    writeFileSync(path.join(dir, `metadata-${NODE}.txt`), METADATA);
    writeFileSync(path.join(dir, 'notes.txt'), 'not a capture file');
    const ng = captureDirectory(stateDir, { namespace: NS, name: NG_NAME }, NG_UID);
    mkdirSync(ng, { recursive: true });
    writePcapng(path.join(ng, 'web-0_cali1234_00001.pcapng'), 'web-0', [1, 5], 60);
    writePcapng(path.join(ng, 'web-0_cali1234_00002.pcapng'), 'web-0', [7, 20], 61);
    writePcapng(path.join(ng, 'db-0_cali1234_00001.pcapng'), 'db-0', [3, 6, 30], 62);
    writeFileSync(path.join(ng, `metadata-${NODE}.txt`), METADATA);
    const old = captureDirectory(stateDir, { namespace: NS, name: NAME }, OLD_UID);
    mkdirSync(old, { recursive: true });
    writeFileSync(path.join(old, 'logging-7d9_cali1234_00001.pcap'), Buffer.alloc(64, 1));
    writeFileSync(path.join(old, 'logging-7d9_cali1234_00002.pcap'), Buffer.alloc(64, 2));

    agent = new HttpsApiServer({ name: 'unit-agent', certFile: tls.certFile, keyFile: tls.keyFile, port: 0, host: '127.0.0.1' });
    const reviewer = new AccessReviewer(kube.kubeConfig('agent-token'), { audiences: [agentAudience(NODE)] });
    // The captures this agent knows, by name: what its informer would hold.
    const known = new Map([[`${NS}/${NAME}`, UID], [`${NS}/pc-partial`, PARTIAL_UID], [`${NS}/${NG_NAME}`, NG_UID]]);
    const current = (ref: CaptureRef, uid?: string) => {
      const knownUid = known.get(`${ref.namespace}/${ref.name}`);
      return knownUid && (uid === undefined || uid === knownUid) ? { uid: knownUid, dir: captureDirectory(stateDir, ref, knownUid) } : undefined;
    };
    registerCaptureFileRoutes(agent, reviewer, NODE, { current, discardFiles: (ref) => void discarded.push(ref) });
    agentPort = await agent.start();
  });

  after(async () => {
    await agent.stop();
    await kube.stop();
    tls.remove();
  });

  describe("the agent's server", () => {
    it('lists only capture files, to the controller', async () => {
      const answer = await call(agentPort, tls.cert, 'GET', agentFilesPath(NS, NAME), { token: FOR_NODE });
      expect(answer.status).to.equal(200);
      const listing = JSON.parse(answer.body.toString('utf8')) as CaptureFileListing;
      expect(listing).to.deep.equal({
        node: NODE,
        files: [
          { pod: '', fileName: `metadata-${NODE}.txt`, bytes: METADATA.length, complete: true },
          { pod: 'logging-7d9', fileName: 'logging-7d9_cali1234_00001.pcap', bytes: PCAP.length, complete: true },
        ],
      });
      expect(kube.accessReviews.at(-1)).to.deep.include({ user: CONTROLLER, verb: 'get', group: GROUP, resource: 'packetcaptures', subresource: 'files', namespace: NS, name: NAME });
    });

    it('serves a file with its length and type', async () => {
      const answer = await call(agentPort, tls.cert, 'GET', agentFilesPath(NS, NAME, 'logging-7d9_cali1234_00001.pcap'), { token: FOR_NODE });
      expect(answer.status).to.equal(200);
      expect(answer.headers['content-type']).to.equal('application/vnd.tcpdump.pcap');
      expect(answer.headers['content-length']).to.equal(String(PCAP.length));
      expect(answer.body.equals(PCAP)).to.equal(true);
    });

    it('answers 401 without a valid token and 403 without the grant', async () => {
      expect((await call(agentPort, tls.cert, 'GET', agentFilesPath(NS, NAME))).status).to.equal(401);
      expect((await call(agentPort, tls.cert, 'GET', agentFilesPath(NS, NAME), { token: 'made-up' })).status).to.equal(401);
      // The controller's own token for the API server, and the one it made for another node's agent.
      for (const token of ['controller-token', 'controller-for-node-2']) {
        const wrongAudience = await call(agentPort, tls.cert, 'GET', agentFilesPath(NS, NAME), { token });
        expect(wrongAudience.status, token).to.equal(401);
        expect(messageOf(wrongAudience), token).to.contain('audience');
      }
      const denied = await call(agentPort, tls.cert, 'GET', agentFilesPath(NS, NAME, 'logging-7d9_cali1234_00001.pcap'), { token: 'nosy-token' });
      expect(denied.status).to.equal(403);
      expect(messageOf(denied)).to.contain('nosy may not get packetcaptures/files');
      expect((await call(agentPort, tls.cert, 'DELETE', agentFilesPath(NS, NAME), { token: 'bob-token' })).status).to.equal(403);
    });

    it('refuses names that are not capture files (400) and answers 404 for one that is not there', async () => {
      for (const name of ['notes.txt', 'etc-passwd', '..%2F..%2Fkubeconfig']) {
        const answer = await call(agentPort, tls.cert, 'GET', `${agentFilesPath(NS, NAME)}/${name}`, { token: FOR_NODE });
        expect(answer.status, name).to.equal(400);
      }
      expect((await call(agentPort, tls.cert, 'GET', `/captures/..%2F${NS}/${NAME}/files`, { token: FOR_NODE })).status).to.equal(400);
      expect((await call(agentPort, tls.cert, 'GET', agentFilesPath(NS, NAME, 'logging-7d9_cali1234_00099.pcap'), { token: FOR_NODE })).status).to.equal(404);
    });

    it("serves only the capture it knows by that name: an older one's files never, another uid 404", async () => {
      const listing = JSON.parse((await call(agentPort, tls.cert, 'GET', agentFilesPath(NS, NAME, undefined, UID), { token: FOR_NODE })).body.toString('utf8')) as CaptureFileListing;
      expect(listing.files.map((f) => f.fileName)).to.deep.equal([`metadata-${NODE}.txt`, 'logging-7d9_cali1234_00001.pcap']);
      const file = await call(agentPort, tls.cert, 'GET', agentFilesPath(NS, NAME, 'logging-7d9_cali1234_00001.pcap'), { token: FOR_NODE });
      expect(file.body.equals(PCAP)).to.equal(true);
      // The old capture's second file exists on disk, but not under the current capture.
      expect((await call(agentPort, tls.cert, 'GET', agentFilesPath(NS, NAME, 'logging-7d9_cali1234_00002.pcap'), { token: FOR_NODE })).status).to.equal(404);
      for (const [method, urlPath] of [['GET', agentFilesPath(NS, NAME, undefined, OLD_UID)], ['GET', agentFilesPath(NS, NAME, 'logging-7d9_cali1234_00001.pcap', OLD_UID)], ['DELETE', agentFilesPath(NS, NAME, undefined, OLD_UID)]] as const) {
        const answer = await call(agentPort, tls.cert, method, urlPath, { token: FOR_NODE });
        expect(answer.status, `${method} ${urlPath}`).to.equal(404);
        expect(messageOf(answer)).to.equal(`no packetcapture ${NS}/${NAME} with uid ${OLD_UID} on node ${NODE}`);
      }
      expect((await call(agentPort, tls.cert, 'GET', agentFilesPath(NS, 'never-created'), { token: FOR_NODE })).status).to.equal(404);
      expect((await call(agentPort, tls.cert, 'GET', `${agentFilesPath(NS, NAME)}?uid=..%2F..`, { token: FOR_NODE })).status).to.equal(400);
    });

    it('deletes on DELETE (204) for a caller allowed to', async () => {
      discarded.length = 0;
      const answer = await call(agentPort, tls.cert, 'DELETE', agentFilesPath(NS, NAME), { token: FOR_NODE });
      expect(answer.status).to.equal(204);
      expect(discarded).to.deep.equal([{ namespace: NS, name: NAME }]);
    });
  });

  describe("the controller's client", () => {
    const nodes = { get: (name: string): V1Node | undefined => (name === NODE ? { metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }] } } : name === 'no-ip' ? { metadata: { name } } : undefined) };
    let client: AgentFilesClient;
    beforeEach(() => {
      client = new AgentFilesClient({ token: async (node) => (node === NODE ? FOR_NODE : 'controller-for-node-2'), nodes, port: agentPort, caFile: tls.certFile });
    });
    afterEach(() => client.close());

    it('lists and opens files with its own token', async () => {
      const listing = await client.list(NODE, NS, NAME);
      expect(listing.node).to.equal(NODE);
      expect(listing.files.map((f) => f.fileName)).to.deep.equal([`metadata-${NODE}.txt`, 'logging-7d9_cali1234_00001.pcap']);
      const chunks: Buffer[] = [];
      for await (const chunk of await client.open(NODE, NS, NAME, 'logging-7d9_cali1234_00001.pcap')) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(PCAP)).to.equal(true);
    });

    it("names the node and carries the agent's status and message when refused", async () => {
      const nosy = new AgentFilesClient({ token: async () => 'nosy-token', nodes, port: agentPort, caFile: tls.certFile });
      try {
        const err = await nosy.list(NODE, NS, NAME).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).to.be.instanceOf(AgentError);
        expect((err as AgentError).status).to.equal(403);
        expect((err as AgentError).message).to.match(/^node node-1: GET \/captures\/storefront\/pc-dns\/files answered 403: nosy may not get packetcaptures\/files/);
      } finally {
        nosy.close();
      }
    });

    it('refuses a file name that no agent writes, and nodes it cannot address', async () => {
      expect(isCaptureFileName('../metadata-node-1.txt')).to.equal(false);
      expect(await client.open(NODE, NS, NAME, '../../etc/passwd').catch((e: unknown) => e)).to.be.instanceOf(AgentError);
      const unsafe = await client.open(NODE, NS, NAME, 'notes.txt').catch((e: unknown) => e);
      expect((unsafe as Error).message).to.equal('node node-1: refusing the file name "notes.txt"');
      expect(((await client.list('no-such-node', NS, NAME).catch((e: unknown) => e)) as Error).message).to.equal('node no-such-node: no such Node');
      expect(((await client.list('no-ip', NS, NAME).catch((e: unknown) => e)) as Error).message).to.equal('node no-ip: the Node has no InternalIP address');
    });
  });

  describe("the controller's download endpoints", () => {
    let controller: HttpsApiServer;
    let port: number;
    let leader = true;
    const captures = new Map<string, PacketCapture>();
    const capture = (name: string, phase: 'Capturing' | 'Finished', nodes: string[], spec: Partial<PacketCapture['spec']> = {}): PacketCapture =>
      ({
        apiVersion: 'netwarden.io/v1alpha1',
        kind: 'PacketCapture',
        metadata: { namespace: NS, name, uid: name === NAME ? UID : name === 'pc-partial' ? PARTIAL_UID : name === NG_NAME ? NG_UID : '33333333-2222-4333-8444-555555555555' },
        spec,
        status: { phase, files: nodes.map((node) => ({ node, directory: `/var/lib/netwarden/captures/${NS}/${name}`, fileNames: [] })) },
      }) as unknown as PacketCapture;

    before(async () => {
      captures.set(NAME, capture(NAME, 'Finished', [NODE]));
      captures.set('pc-running', capture('pc-running', 'Capturing', [NODE]));
      captures.set('pc-partial', capture('pc-partial', 'Finished', [NODE, 'node-gone']));
      captures.set(NG_NAME, capture(NG_NAME, 'Finished', [NODE], { format: 'pcapng' }));
      controller = new HttpsApiServer({ name: 'unit-controller', certFile: tls.certFile, keyFile: tls.keyFile, port: 0, host: '127.0.0.1' });
      const nodes = { get: (name: string): V1Node | undefined => (name === NODE ? { metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }] } } : undefined) };
      registerCaptureFileApi(
        {
          api: controller,
          reviewer: new AccessReviewer(kube.kubeConfig('controller-token')),
          isLeader: () => leader,
          agentToken: async () => FOR_NODE,
          nodes,
          agentPort,
          agentTrust: new FileTrustBundle(tls.certFile),
        },
        { get: (name: string, namespace?: string) => (namespace === NS ? captures.get(name) : undefined) },
      );
      port = await controller.start();
    });
    after(() => controller.stop());
    beforeEach(() => {
      leader = true;
    });

    it('checks in order: the name (400), the caller (401, 403), leadership (503), the capture (404)', async () => {
      // A malformed name is refused before anyone is asked about the caller.
      const reviewsBefore = kube.tokenReviews;
      expect((await call(port, tls.cert, 'GET', '/packet-capture/download/Bad_NS/x/files.zip')).status).to.equal(400);
      expect(kube.tokenReviews).to.equal(reviewsBefore);
      // The caller is checked before leadership: a standby still tells strangers 401/403.
      leader = false;
      expect((await call(port, tls.cert, 'GET', downloadPath(NS, NAME))).status).to.equal(401);
      expect((await call(port, tls.cert, 'GET', downloadPath(NS, NAME), { token: 'nosy-token' })).status).to.equal(403);
      // An allowed caller on a standby learns nothing about the capture, not even whether it exists.
      expect((await call(port, tls.cert, 'GET', downloadPath(NS, 'no-such-capture'), { token: 'alice-token' })).status).to.equal(503);
      leader = true;
      const unknown = await call(port, tls.cert, 'GET', downloadPath(NS, 'no-such-capture'), { token: 'alice-token' });
      expect(unknown.status).to.equal(404);
      expect(messageOf(unknown)).to.equal(`packetcapture ${NS}/no-such-capture not found`);
      // delete is its own verb: bob may get but not delete.
      expect((await call(port, tls.cert, 'DELETE', deleteFilesPath(NS, NAME), { token: 'bob-token' })).status).to.equal(403);
    });

    it("streams one zip of every node's files, with the bytes to expect", async () => {
      const answer = await call(port, tls.cert, 'GET', downloadPath(NS, NAME), { token: 'bob-token' });
      expect(answer.status).to.equal(200);
      expect(answer.headers['content-type']).to.equal('application/zip');
      expect(answer.headers[EXPECTED_BYTES_HEADER]).to.equal(String(PCAP.length + METADATA.length));
      expect(answer.headers[MISSING_NODES_HEADER]).to.equal(undefined);
      const zip = await JSZip.loadAsync(answer.body);
      expect(Object.keys(zip.files).filter((f) => !f.endsWith('/')).sort()).to.deep.equal([`${NODE}/logging-7d9_cali1234_00001.pcap`, `${NODE}/metadata-${NODE}.txt`]);
      expect((await zip.file(`${NODE}/logging-7d9_cali1234_00001.pcap`)!.async('nodebuffer')).equals(PCAP)).to.equal(true);
    });

    it('pcapng: one file per node merging its pods by time, one interface per pod interface; ?merge=true one file for the capture', async () => {
      const answer = await call(port, tls.cert, 'GET', downloadPath(NS, NG_NAME), { token: 'bob-token' });
      expect(answer.status).to.equal(200);
      const zip = await JSZip.loadAsync(answer.body);
      expect(Object.keys(zip.files).filter((f) => !f.endsWith('/')).sort()).to.deep.equal([`${NODE}/metadata-${NODE}.txt`, `${NODE}/${NODE}.pcapng`]);
      const packets = readCapture(await zip.file(`${NODE}/${NODE}.pcapng`)!.async('nodebuffer'));
      expect(packets.map((p) => [Number(p.timestampNs / 1000n) - T0, p.comment, p.interfaceName, p.data.length])).to.deep.equal([
        [1, `${NS}/web-0`, `${NS}/web-0@${NODE}/cali1234`, 60],
        [3, `${NS}/db-0`, `${NS}/db-0@${NODE}/cali1234`, 62],
        [5, `${NS}/web-0`, `${NS}/web-0@${NODE}/cali1234`, 60],
        [6, `${NS}/db-0`, `${NS}/db-0@${NODE}/cali1234`, 62],
        [7, `${NS}/web-0`, `${NS}/web-0@${NODE}/cali1234`, 61],
        [20, `${NS}/web-0`, `${NS}/web-0@${NODE}/cali1234`, 61],
        [30, `${NS}/db-0`, `${NS}/db-0@${NODE}/cali1234`, 62],
      ]);
      const merged = await call(port, tls.cert, 'GET', downloadPath(NS, NG_NAME, { merge: true }), { token: 'bob-token' });
      expect(merged.status).to.equal(200);
      const mergedZip = await JSZip.loadAsync(merged.body);
      expect(Object.keys(mergedZip.files).filter((f) => !f.endsWith('/')).sort()).to.deep.equal([`${NODE}/metadata-${NODE}.txt`, `${NS}-${NG_NAME}.pcapng`]);
      expect(readCapture(await mergedZip.file(`${NS}-${NG_NAME}.pcapng`)!.async('nodebuffer')).map((p) => p.comment)).to.deep.equal(packets.map((p) => p.comment));
    });

    it('the agent serves a pcapng file as application/x-pcapng', async () => {
      const file = await call(agentPort, tls.cert, 'GET', agentFilesPath(NS, NG_NAME, 'db-0_cali1234_00001.pcapng'), { token: FOR_NODE });
      expect(file.status).to.equal(200);
      expect(file.headers['content-type']).to.equal('application/x-pcapng');
      expect(readCapture(file.body).map((p) => p.comment)).to.deep.equal([`${NS}/db-0`, `${NS}/db-0`, `${NS}/db-0`]);
    });

    it('?merge=true on a pcap capture is a 400 that says why', async () => {
      const answer = await call(port, tls.cert, 'GET', downloadPath(NS, NAME, { merge: true }), { token: 'bob-token' });
      expect(answer.status).to.equal(400);
      expect(messageOf(answer)).to.match(/^\?merge=true needs spec\.format: pcapng \(packetcapture storefront\/pc-dns writes pcap/);
      const bad = await call(port, tls.cert, 'GET', `${downloadPath(NS, NG_NAME)}?merge=yes`, { token: 'bob-token' });
      expect(bad.status).to.equal(400);
      expect(messageOf(bad)).to.equal('?merge= takes true or false, not "yes"');
    });

    it('says which nodes are missing, in a header and in the zip', async () => {
      const answer = await call(port, tls.cert, 'GET', downloadPath(NS, 'pc-partial'), { token: 'alice-token' });
      expect(answer.status).to.equal(200);
      expect(answer.headers[MISSING_NODES_HEADER]).to.equal('node-gone');
      const zip = await JSZip.loadAsync(answer.body);
      expect(await zip.file(MISSING_NODES_FILE)!.async('string')).to.equal('node node-gone: no such Node\n');
    });

    it('deletes files only once the capture ended (409 before), on every node', async () => {
      const running = await call(port, tls.cert, 'DELETE', deleteFilesPath(NS, 'pc-running'), { token: 'alice-token' });
      expect(running.status).to.equal(409);
      expect(messageOf(running)).to.match(/^packetcapture storefront\/pc-running is still running \(phase Capturing\)/);
      discarded.length = 0;
      const done = await call(port, tls.cert, 'DELETE', deleteFilesPath(NS, NAME), { token: 'alice-token' });
      expect(done.status).to.equal(200);
      expect(JSON.parse(done.body.toString('utf8'))).to.deep.include({ status: 'Success', nodes: [NODE] });
      expect(discarded).to.deep.equal([{ namespace: NS, name: NAME }]);
    });
  });
});
