// PacketCapture retention and export against the real control plane, the real controller and one
// real agent per simulated node, with real packets on real veths and the S3-compatible test server
// of the AuditForwarder tests (hack/s3):
// - ttlSecondsAfterFinished removes a finished capture's files on every node, and the status says
//   when (filesExpireAt, the EXPIRES column) and that it happened (FilesExpired);
// - with deleteObject the object goes too;
// - spec.export.s3 uploads every file, rotated ones while the capture still runs, under
//   <prefix>/<namespace>/<capture>/<node>/<file>, byte for byte, and the status lists the keys and
//   sizes; the files stay downloadable from the nodes;
// - a Secret whose netwarden.io/allowed-namespaces does not name the namespace uploads nothing
//   and says so in Exported;
// - at a node's --capture-max-bytes, a finished capture's files are evicted, oldest first, for a
//   running capture, and the finished capture's status says which and why.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { cluster } from './hooks.js';
import { run, trackChild } from '../env/controlplane.js';
import { applyCapture, condition, entryOn, getCapture, sendUdp, sendUdpUntil } from '../env/captures.js';
import { createNamespace, createNode, createPod, createServiceAccount, requestToken, waitFor } from '../env/fixtures.js';
import { controllerUrl, ensureInstalled, mustKubectl, netwardenPorts, nextNodeIP, REPO_ROOT, startAgent, startController, type NetwardenProcess } from '../env/netwarden.js';
import { createPodNetwork, type PodNetwork } from '../env/podnet.js';
import { startS3Server, type S3Server } from '../../hack/s3/server.js';
import type { PacketCapture } from '../../src/apis/packetcapture.js';

const NS = 'cret';
const NODE_A = 'cret-node-a';
const NODE_B = 'cret-node-b';
const A_IP = '10.244.216.10';
const B_IP = '10.244.216.11';
const BUCKET = 'captures';
const FILE = 65536;
const SIZE = 1000;
const CREDS = { accessKeyId: 'AKIDCAPTURE', secretAccessKey: 'capture-secret-key' };

function nameDir(node: string, name: string): string {
  return path.join(cluster().dir, 'nodes', node, 'captures', NS, name);
}

/** Both pods' UDP on one port, seen on both nodes (a sends to b). */
function spec(port: number, extra = ''): string {
  return `  selector: app in {"a", "b"}\n  filters: [{protocol: UDP, ports: [${port}]}]\n  fileSizeBytes: ${FILE}\n  maxFiles: 100${extra}`;
}

async function running(name: string, nodes: string[]): Promise<void> {
  await waitFor(async () => {
    const c = await getCapture(cluster(), NS, name);
    return nodes.every((n) => ['WaitingForTraffic', 'Capturing'].includes(c.status?.files?.find((f) => f.node === n)?.state ?? ''));
  }, { timeoutMs: 60_000, description: `${name} running on ${nodes.join(', ')}` });
}

/** Ends the capture now: an end time in the past. */
async function finish(name: string): Promise<PacketCapture> {
  const past = new Date(Date.now() - 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  await mustKubectl(cluster(), ['patch', 'packetcapture', name, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: { endTime: past } })]);
  return waitFor(async () => {
    const c = await getCapture(cluster(), NS, name);
    return c.status?.phase === 'Finished' ? c : undefined;
  }, { timeoutMs: 30_000, description: `${name} Finished` });
}

describe('PacketCapture retention: ttlSecondsAfterFinished, deleteObject', function () {
  this.timeout(300_000);
  const processes: NetwardenProcess[] = [];
  const nets: PodNetwork[] = [];
  let a: PodNetwork;
  let s3: S3Server;
  let client: S3Client;

  before(async function () {
    const cp = cluster();
    [s3] = await Promise.all([startS3Server([BUCKET], trackChild), ensureInstalled(cp)]);
    client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: CREDS });
    const kc = cp.kubeConfig();
    await createNamespace(kc, NS);
    await createNode(kc, NODE_A, { internalIP: nextNodeIP() });
    await createNode(kc, NODE_B, { internalIP: nextNodeIP() });
    nets.push((a = await createPodNetwork({ name: 'cret-a', ip: A_IP })));
    nets.push(await createPodNetwork({ name: 'cret-b', ip: B_IP }));
    await createPod(kc, { namespace: NS, name: 'a', nodeName: NODE_A, labels: { app: 'a' }, podIP: A_IP });
    await createPod(kc, { namespace: NS, name: 'b', nodeName: NODE_B, labels: { app: 'b' }, podIP: B_IP });
    const core = kc.makeApiClient(CoreV1Api);
    const secret = (name: string, allowed: string) => ({
      metadata: { name, annotations: { 'netwarden.io/allowed-namespaces': allowed } },
      stringData: { accessKeyID: CREDS.accessKeyId, secretAccessKey: CREDS.secretAccessKey },
    });
    await core.createNamespacedSecret({ namespace: 'netwarden-system', body: secret('cret-s3', `other-team, ${NS}`) });
    await core.createNamespacedSecret({ namespace: 'netwarden-system', body: secret('cret-s3-other', 'other-team') });
    processes.push(await startController(cp, 'cret-controller'), await startAgent(cp, NODE_A), await startAgent(cp, NODE_B));
  });

  after(async function () {
    await Promise.all(processes.map((p) => p.kill()));
    for (const n of nets) await n.destroy();
    await s3?.stop();
    const core = cluster().kubeConfig().makeApiClient(CoreV1Api);
    for (const name of ['cret-s3', 'cret-s3-other']) await core.deleteNamespacedSecret({ name, namespace: 'netwarden-system' }).catch(() => undefined);
  });

  async function keysUnder(prefix: string): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken: token }));
      for (const c of page.Contents ?? []) out.set(c.Key!, c.Size ?? -1);
      token = page.NextContinuationToken;
    } while (token);
    return out;
  }

  it('deletes the files on every node ttlSecondsAfterFinished after the capture finished, says when beforehand and that it did, and keeps the object', async function () {
    const cp = cluster();
    await applyCapture(cp, NS, 'pc-ttl', spec(5901, '\n  ttlSecondsAfterFinished: 15'));
    await running('pc-ttl', [NODE_A, NODE_B]);
    await sendUdp(a, B_IP, 5901, 'ttl', 20, SIZE);
    await waitFor(async () => ((await entryOn(cp, NS, 'pc-ttl', NODE_A))?.packets ?? 0) >= 20 && ((await entryOn(cp, NS, 'pc-ttl', NODE_B))?.packets ?? 0) >= 20, { timeoutMs: 30_000, description: 'both nodes counting' });
    const finished = await finish('pc-ttl');
    const endTime = Date.parse(finished.spec.endTime!);
    // Before the expiry: when, in the status and in the EXPIRES column, and the files still there.
    const expires = await waitFor(async () => (await getCapture(cp, NS, 'pc-ttl')).status?.filesExpireAt, { timeoutMs: 20_000, description: 'filesExpireAt' });
    expect(Date.parse(expires) - endTime, 'filesExpireAt = the end time + 15 s').to.equal(15_000);
    const row = await mustKubectl(cp, ['get', 'packetcapture', 'pc-ttl', '-n', NS, '--no-headers']);
    expect(row).to.match(new RegExp(`^pc-ttl\\s+Finished\\s+2\\s+\\d+\\s+\\d+\\s+${expires}\\s+`));
    const c = await getCapture(cp, NS, 'pc-ttl');
    expect(condition(c, 'FilesExpired')).to.equal(undefined);
    expect(existsSync(nameDir(NODE_A, 'pc-ttl')) && existsSync(nameDir(NODE_B, 'pc-ttl')), 'files on both nodes before the expiry').to.equal(true);

    const expired = await waitFor(async () => {
      const now = await getCapture(cp, NS, 'pc-ttl');
      return condition(now, 'FilesExpired')?.status === 'True' && (now.status?.files ?? []).length === 0 ? now : undefined;
    }, { timeoutMs: 60_000, intervalMs: 500, description: 'FilesExpired=True and every node released its entry' });
    expect(Date.now(), 'not before the expiry').to.be.at.least(Date.parse(expires));
    const done = condition(expired, 'FilesExpired')!;
    expect(done.reason).to.equal('TTLExpired');
    expect(done.message).to.equal(`ttlSecondsAfterFinished (15s) passed at ${expires}: the files were deleted on every node`);
    expect(existsSync(nameDir(NODE_A, 'pc-ttl')) || existsSync(nameDir(NODE_B, 'pc-ttl')), 'files left on a node').to.equal(false);
    expect(expired.status?.phase).to.equal('Finished');
    expect([expired.status?.fileCount, expired.status?.totalBytes]).to.deep.equal([0, 0]);
  });

  it('expires from the finish time in the status, so a controller that was down at the expiry deletes the files once it is back', async function () {
    const cp = cluster();
    await applyCapture(cp, NS, 'pc-ttl-restart', spec(5905, '\n  ttlSecondsAfterFinished: 4'));
    await running('pc-ttl-restart', [NODE_A, NODE_B]);
    await sendUdp(a, B_IP, 5905, 'restart', 5, SIZE);
    await waitFor(async () => ((await entryOn(cp, NS, 'pc-ttl-restart', NODE_A))?.packets ?? 0) >= 5, { timeoutMs: 30_000, description: 'counting' });
    await finish('pc-ttl-restart');
    const expires = await waitFor(async () => (await getCapture(cp, NS, 'pc-ttl-restart')).status?.filesExpireAt, { timeoutMs: 20_000, description: 'filesExpireAt' });
    const controller = processes.shift()!;
    await controller.kill();
    await controller.exited;
    // Well past the expiry with no controller: the files are still there.
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(expires) - Date.now()) + 3000));
    expect(existsSync(nameDir(NODE_A, 'pc-ttl-restart')), 'files kept while no controller runs').to.equal(true);
    processes.unshift(await startController(cp, 'cret-controller-2'));
    const c = await waitFor(async () => {
      const now = await getCapture(cp, NS, 'pc-ttl-restart');
      return condition(now, 'FilesExpired')?.status === 'True' && (now.status?.files ?? []).length === 0 ? now : undefined;
    }, { timeoutMs: 60_000, intervalMs: 500, description: 'the new controller expiring the files' });
    expect(c.status?.filesExpireAt, 'the same expiry as before the restart').to.equal(expires);
    expect(existsSync(nameDir(NODE_A, 'pc-ttl-restart')) || existsSync(nameDir(NODE_B, 'pc-ttl-restart'))).to.equal(false);
  });

  it('deletes the object too with deleteObject: true', async function () {
    const cp = cluster();
    await applyCapture(cp, NS, 'pc-ttl-delete', spec(5902, '\n  ttlSecondsAfterFinished: 3\n  deleteObject: true'));
    await running('pc-ttl-delete', [NODE_A, NODE_B]);
    await sendUdp(a, B_IP, 5902, 'gone', 5, SIZE);
    await waitFor(async () => ((await entryOn(cp, NS, 'pc-ttl-delete', NODE_A))?.packets ?? 0) >= 5, { timeoutMs: 30_000, description: 'counting' });
    await finish('pc-ttl-delete');
    await waitFor(async () => (await cp.kubectl(['get', 'packetcapture', 'pc-ttl-delete', '-n', NS])).stderr.includes('NotFound'), { timeoutMs: 60_000, intervalMs: 500, description: 'the object deleted' });
    expect(existsSync(nameDir(NODE_A, 'pc-ttl-delete')) || existsSync(nameDir(NODE_B, 'pc-ttl-delete')), 'files left on a node').to.equal(false);
  });

  it('refuses a deleteObject without a TTL, and an export without a Secret, at apply', async function () {
    const r = await cluster().kubectl(['apply', '-f', '-'], { input: `apiVersion: netwarden.io/v1alpha1\nkind: PacketCapture\nmetadata: {name: pc-bad-retention, namespace: ${NS}}\nspec:\n  deleteObject: true\n` });
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.contain('deleteObject needs ttlSecondsAfterFinished');
    // The node's own credentials are never a namespace's: an export names its Secret.
    const ambient = await cluster().kubectl(['apply', '-f', '-'], { input: `apiVersion: netwarden.io/v1alpha1\nkind: PacketCapture\nmetadata: {name: pc-bad-export, namespace: ${NS}}\nspec:\n  export: {s3: {bucket: ${BUCKET}}}\n` });
    expect(ambient.code).to.not.equal(0);
    expect(ambient.stderr).to.contain('spec.export.s3.credentialsSecretRef: Required value');
  });

  it('uploads each file to S3 as it is rotated and as the capture finishes, byte for byte, lists keys and sizes in the status, and still serves downloads', async function () {
    const cp = cluster();
    await applyCapture(cp, NS, 'pc-export', spec(5903, `\n  export:\n    s3: {endpoint: "${s3.endpoint}", allowInsecure: true, bucket: ${BUCKET}, prefix: /e2e/, region: us-east-1, forcePathStyle: true, credentialsSecretRef: {name: cret-s3}}`));
    await running('pc-export', [NODE_A, NODE_B]);
    // 61 records to a 64 KiB file: 150 datagrams rotate at least twice on each node.
    const rotated = await sendUdpUntil(a, B_IP, 5903, 'exp', SIZE, async () => {
      const c = await getCapture(cp, NS, 'pc-export');
      const uploaded = [NODE_A, NODE_B].map((n) => c.status?.files?.find((f) => f.node === n)?.uploads?.count ?? 0);
      return c.status?.phase === 'Capturing' && uploaded.every((u) => u >= 1) ? c : undefined;
    }, { description: 'a rotated file uploaded on each node while capturing', burst: 150 });
    expect(rotated.status?.phase).to.equal('Capturing');

    await finish('pc-export');
    const c = await waitFor(async () => {
      const now = await getCapture(cp, NS, 'pc-export');
      return condition(now, 'Exported')?.status === 'True' ? now : undefined;
    }, { timeoutMs: 60_000, description: 'Exported=True' });
    const uid = c.metadata.uid!;
    const inBucket = await keysUnder(`e2e/${NS}/pc-export/`);
    let listed = 0;
    let listedBytes = 0;
    for (const node of [NODE_A, NODE_B]) {
      const entry = c.status!.files!.find((f) => f.node === node)!;
      expect(entry.uploads?.state).to.equal('Uploaded');
      expect(entry.uploads?.pending).to.equal(0);
      const onDisk = readdirSync(path.join(nameDir(node, 'pc-export'), uid)).filter((f) => f.endsWith('.pcap')).sort();
      expect(onDisk.length, `rotated files on ${node}`).to.be.at.least(2);
      expect([...(entry.fileNames ?? [])].sort()).to.deep.equal(onDisk);
      // Every file on the node, once, with the status's size = the object's size = the file's size.
      const objects = new Map((entry.uploads?.objects ?? []).map((o) => [o.key, o.bytes]));
      expect([...objects.keys()].sort()).to.deep.equal(onDisk.map((f) => `e2e/${NS}/pc-export/${node}/${f}`));
      for (const f of onDisk) {
        const key = `e2e/${NS}/pc-export/${node}/${f}`;
        const file = readFileSync(path.join(nameDir(node, 'pc-export'), uid, f));
        expect(objects.get(key), key).to.equal(file.length);
        expect(inBucket.get(key), key).to.equal(file.length);
        const body = Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToByteArray());
        expect(body.equals(file), `${key} byte for byte`).to.equal(true);
      }
      expect(entry.uploads?.count).to.equal(onDisk.length);
      listed += onDisk.length;
      listedBytes += [...objects.values()].reduce((s, b) => s + b, 0);
    }
    expect(inBucket.size, 'nothing else under the capture').to.equal(listed);
    expect([c.status?.uploadedObjects, c.status?.uploadedBytes]).to.deep.equal([listed, listedBytes]);
    expect(condition(c, 'Exported')!.message).to.equal(`${listed} object(s), ${listedBytes} bytes uploaded to s3://${BUCKET}/e2e`);

    // The nodes keep the files: the zip download works as before.
    const workDir = await mkdtemp(path.join(cp.dir, 'cret-'));
    const url = controllerUrl(await netwardenPorts(cp));
    await createServiceAccount(cp.kubeConfig(), NS, 'cret-reader').catch(() => undefined);
    await mustKubectl(cp, ['create', 'rolebinding', 'cret-reader', '-n', NS, '--clusterrole=netwarden-packetcapture-files-reader', `--serviceaccount=${NS}:cret-reader`]);
    const token = await requestToken(cp.kubeConfig(), NS, 'cret-reader');
    const r = await run(path.join(REPO_ROOT, 'bin/kubectl-netwarden'), ['capture', 'download', '-n', NS, 'pc-export', '-o', workDir, '--extract', `--kubeconfig=${cp.kubeconfigPath}`, `--token=${token}`, `--controller-url=${url}`], {
      timeoutMs: 120_000,
      env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` },
    });
    expect(r.code, r.stderr).to.equal(0);
    const extracted = readdirSync(path.join(workDir, `${NS}-pc-export`), { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith('.pcap'));
    expect(extracted.length).to.equal(listed);
    for (const e of extracted) expect(statSync(path.join(e.parentPath, e.name)).size).to.be.greaterThan(24);
  });

  it('uploads nothing with a Secret whose allowed-namespaces does not name the namespace, and says so in Exported', async function () {
    const cp = cluster();
    await applyCapture(cp, NS, 'pc-export-denied', spec(5904, `\n  export:\n    s3: {endpoint: "${s3.endpoint}", allowInsecure: true, bucket: ${BUCKET}, prefix: e2e, forcePathStyle: true, credentialsSecretRef: {name: cret-s3-other}}`));
    await running('pc-export-denied', [NODE_A, NODE_B]);
    await sendUdp(a, B_IP, 5904, 'denied', 100, SIZE);
    await finish('pc-export-denied');
    const c = await waitFor(async () => {
      const now = await getCapture(cp, NS, 'pc-export-denied');
      return condition(now, 'Exported')?.reason === 'SecretNotAllowed' && now.status?.files?.length === 2 && now.status.files.every((f) => f.uploads?.state === 'Refused') ? now : undefined;
    }, { timeoutMs: 60_000, description: 'Exported=False SecretNotAllowed on both nodes' });
    const exported = condition(c, 'Exported')!;
    expect(exported.status).to.equal('False');
    const refusal = `Secret netwarden-system/cret-s3-other may not be used by PacketCaptures in namespace ${NS}: its annotation netwarden.io/allowed-namespaces does not name it (the admin lists the namespaces allowed, or "*"); nothing is uploaded`;
    expect(exported.message).to.equal(`node ${NODE_A}: ${refusal}; node ${NODE_B}: ${refusal}`);
    for (const f of c.status!.files!) expect([f.uploads?.count, f.uploads?.objects]).to.deep.equal([0, []]);
    expect(c.status?.uploadedObjects).to.equal(0);
    // Longer than the first upload would take: still nothing in the bucket.
    await new Promise((r) => setTimeout(r, 3000));
    expect((await keysUnder(`e2e/${NS}/pc-export-denied/`)).size).to.equal(0);
  });
});

describe("PacketCapture retention: the node's byte budget evicts the oldest finished capture's files", function () {
  this.timeout(300_000);
  const NODE = 'cret-node-c';
  const SRC_IP = '10.244.216.20';
  const DST_IP = '10.244.216.21';
  const MAX_BYTES = 320 * 1024;
  const processes: NetwardenProcess[] = [];
  const nets: PodNetwork[] = [];
  let src: PodNetwork;

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNamespace(kc, NS).catch(() => undefined);
    await createNode(kc, NODE, { internalIP: nextNodeIP() });
    nets.push((src = await createPodNetwork({ name: 'cret-c', ip: SRC_IP })));
    nets.push(await createPodNetwork({ name: 'cret-d', ip: DST_IP }));
    await createPod(kc, { namespace: NS, name: 'c', nodeName: NODE, labels: { app: 'c' }, podIP: SRC_IP });
    processes.push(await startController(cp, 'cret-evict-controller'), await startAgent(cp, NODE, [`--capture-max-bytes=${MAX_BYTES / 1024}Ki`]));
  });

  after(async function () {
    await Promise.all(processes.map((p) => p.kill()));
    for (const n of nets) await n.destroy();
  });

  it('deletes pc-old\'s files oldest first so that the running pc-new keeps writing, and pc-old\'s status says which and why', async function () {
    const cp = cluster();
    const cspec = (port: number, extra = '') => `  selector: app == "c"\n  filters: [{protocol: UDP, ports: [${port}]}]\n  fileSizeBytes: ${FILE}\n  maxFiles: 100${extra}`;
    await applyCapture(cp, NS, 'pc-old', cspec(5911, `\n  maxBytesPerPod: ${3 * FILE}`));
    await waitFor(async () => (await entryOn(cp, NS, 'pc-old', NODE))?.state === 'WaitingForTraffic', { timeoutMs: 60_000, description: 'pc-old capturing' });
    await sendUdpUntil(src, DST_IP, 5911, 'old', SIZE, async () => ((await getCapture(cp, NS, 'pc-old')).status?.phase === 'Stopped' ? true : undefined), { description: 'pc-old stopped at its maxBytesPerPod' });
    const old = (await entryOn(cp, NS, 'pc-old', NODE))!;
    const oldFiles = [...(old.fileNames ?? [])];
    expect(oldFiles.length, 'rotated files of pc-old').to.be.at.least(3);

    await applyCapture(cp, NS, 'pc-new', cspec(5910));
    await waitFor(async () => (await entryOn(cp, NS, 'pc-new', NODE))?.state === 'WaitingForTraffic', { timeoutMs: 60_000, description: 'pc-new capturing' });
    // Past the room pc-old leaves: pc-new writes on only because pc-old's files go.
    const grown = await sendUdpUntil(src, DST_IP, 5910, 'new', SIZE, async () => {
      const e = await entryOn(cp, NS, 'pc-new', NODE);
      return (e?.bytes ?? 0) > MAX_BYTES - 3 * FILE + FILE ? e : undefined;
    }, { description: 'pc-new past the room pc-old left', burst: 100 });
    expect(grown.notCaptured, 'pc-new not held').to.equal(undefined);

    const c = await waitFor(async () => {
      const now = await getCapture(cp, NS, 'pc-old');
      return condition(now, 'FilesEvicted') ? now : undefined;
    }, { timeoutMs: 30_000, description: 'pc-old FilesEvicted' });
    const entry = c.status!.files!.find((f) => f.node === NODE)!;
    const evicted = entry.evicted!;
    expect(evicted.count).to.be.at.least(1);
    expect(evicted.fileNames, 'the oldest first').to.deep.equal(oldFiles.slice(0, evicted.count));
    expect(entry.fileNames, 'what is left').to.deep.equal(oldFiles.slice(evicted.count));
    expect(evicted.reason).to.contain(`the node's capture budget of ${MAX_BYTES} bytes (--capture-max-bytes)`);
    expect(condition(c, 'FilesEvicted')!.message).to.match(new RegExp(`^node ${NODE}: ${evicted.count} file\\(s\\), ${evicted.bytes} bytes evicted: to make room`));
    const uid = c.metadata.uid!;
    for (const f of evicted.fileNames ?? []) expect(existsSync(path.join(nameDir(NODE, 'pc-old'), uid, f)), f).to.equal(false);
    await mustKubectl(cp, ['delete', 'packetcapture', 'pc-old', 'pc-new', '-n', NS, '--timeout=60s']);
  });
});
