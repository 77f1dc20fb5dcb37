// The capture exporter against the S3-compatible test server (hack/s3): a file closed and then
// removed by a rotation (maxFiles) is still uploaded whole, an agent restart neither uploads again
// nor counts twice, the status lists a bounded number of objects with counts beyond, and an
// http:// endpoint without allowInsecure uploads nothing.
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { startS3Server, type S3Server } from '../../hack/s3/server.js';
import { CaptureExporter, type CaptureS3Export } from '../../src/nodeagent/capture/export.js';
import { MAX_LISTED_UPLOADS } from '../../src/apis/captureretention.js';

const BUCKET = 'unit-captures';
const REF = { namespace: 'ns', name: 'pc' };

async function until<T>(f: () => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('capture export to S3 (hack/s3 test server)', function () {
  this.timeout(60_000);
  let s3: S3Server;
  let client: S3Client;
  let dir: string;
  /** The admin's Secrets in Netwarden's namespace, as the agent would read them. */
  const secrets: Record<string, { annotations: Record<string, string> }> = {
    's3-ns': { annotations: { 'netwarden.io/allowed-namespaces': 'other, ns' } },
    's3-other': { annotations: { 'netwarden.io/allowed-namespaces': 'other' } },
  };
  const node = {
    namespace: 'netwarden-system',
    name: 'n1',
    readSecret: async (name: string) => {
      const s = secrets[name];
      if (!s) throw new Error(`cannot read Secret netwarden-system/${name} (HTTP 404)`);
      return { data: { accessKeyID: 'AKIDUNIT', secretAccessKey: 'unit-secret' }, annotations: s.annotations };
    },
  };
  const exporters: CaptureExporter[] = [];
  const exporter = (spec: CaptureS3Export) => {
    const e = new CaptureExporter(REF, dir, spec, node, () => undefined);
    exporters.push(e);
    return e;
  };

  before(async function () {
    s3 = await startS3Server([BUCKET]);
    client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'AKIDUNIT', secretAccessKey: 'unit-secret' } });
  });

  beforeEach(function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'nw-export-'));
  });

  afterEach(function () {
    for (const e of exporters.splice(0)) e.close();
    rmSync(dir, { recursive: true, force: true });
  });

  after(async function () {
    client?.destroy();
    await s3?.stop();
  });

  async function object(key: string): Promise<Buffer> {
    return Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToByteArray());
  }

  async function keys(prefix: string): Promise<string[]> {
    const page = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
    return (page.Contents ?? []).map((c) => c.Key!).sort();
  }

  const spec = (prefix: string, secret = 's3-ns'): CaptureS3Export => ({ endpoint: s3.endpoint, allowInsecure: true, bucket: BUCKET, prefix, forcePathStyle: true, credentialsSecretRef: { name: secret } });

  it('uploads a closed file whole even when a rotation removes it before its turn', async function () {
    const data = Buffer.alloc(300_000, 7);
    writeFileSync(path.join(dir, 'web_eth0_00001.pcap'), data);
    const e = exporter(spec('pinned'));
    e.fileClosed('web_eth0_00001.pcap');
    unlinkSync(path.join(dir, 'web_eth0_00001.pcap')); // maxFiles: 1 rotates it away at once
    const entry = await until(() => (e.entry().state === 'Uploaded' ? e.entry() : undefined), 'the upload');
    expect(entry).to.deep.equal({ state: 'Uploaded', objects: [{ key: 'pinned/ns/pc/n1/web_eth0_00001.pcap', bytes: data.length }], count: 1, bytes: data.length, pending: 0 });
    expect((await object('pinned/ns/pc/n1/web_eth0_00001.pcap')).equals(data)).to.equal(true);
  });

  it('does not upload again, nor count twice, after a restart; lists the first objects and counts the rest', async function () {
    const names = Array.from({ length: MAX_LISTED_UPLOADS + 5 }, (_, i) => `web_eth0_${String(i + 1).padStart(5, '0')}.pcap`);
    for (const n of names) writeFileSync(path.join(dir, n), Buffer.from(n));
    const first = exporter(spec('restart'));
    first.sync(names);
    const done = await until(() => (first.entry().pending === 0 && first.entry().count === names.length ? first.entry() : undefined), 'every upload', 30_000);
    expect(done.objects).to.have.length(MAX_LISTED_UPLOADS);
    expect(done.bytes).to.equal(names.reduce((s, n) => s + n.length, 0));
    expect(await keys('restart/')).to.have.length(names.length);
    first.close();

    // The agent restarts: a new exporter over the same directory.
    const second = exporter(spec('restart'));
    second.sync(names);
    expect(second.busy(), 'nothing queued again').to.equal(false);
    expect(second.entry()).to.deep.include({ state: 'Uploaded', count: names.length, bytes: done.bytes, pending: 0 });
  });

  it('refuses a Secret whose allowed-namespaces does not name the capture\'s namespace, and uploads nothing', async function () {
    writeFileSync(path.join(dir, 'web_eth0_00001.pcap'), 'x');
    const e = exporter(spec('denied', 's3-other'));
    e.sync(['web_eth0_00001.pcap']);
    const entry = await until(() => (e.entry().state === 'Refused' ? e.entry() : undefined), 'the refusal');
    expect(entry.message).to.equal('Secret netwarden-system/s3-other may not be used by PacketCaptures in namespace ns: its annotation netwarden.io/allowed-namespaces does not name it (the admin lists the namespaces allowed, or "*"); nothing is uploaded');
    expect([entry.count, entry.pending]).to.deep.equal([0, 1]);
    expect(await keys('denied/')).to.deep.equal([]);
  });

  it('refuses an http:// endpoint without allowInsecure, and uploads nothing', async function () {
    writeFileSync(path.join(dir, 'web_eth0_00001.pcap'), 'x');
    const e = exporter({ ...spec('insecure'), allowInsecure: false });
    e.sync(['web_eth0_00001.pcap']);
    const entry = await until(() => (e.entry().state === 'Refused' ? e.entry() : undefined), 'the refusal');
    expect(entry.message).to.equal('spec.export.s3.endpoint: http:// sends the packets in clear text; use https://, or set spec.export.s3.allowInsecure: true');
    expect([entry.count, entry.pending]).to.deep.equal([0, 1]);
    expect(await keys('insecure/')).to.deep.equal([]);
  });
});
