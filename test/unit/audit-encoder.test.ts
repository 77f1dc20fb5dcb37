// A batch body is spooled to disk as it is built and streamed back for every delivery attempt.
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { crc32, gunzipSync } from 'node:zlib';
import { BatchEncoder } from '../../src/nodeagent/audit/encoder.js';

/** The chunks a sink would get, kept as handed out (not copied). */
async function chunksOf(stream: Readable): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return chunks;
}

function auditEvent(i: number, pad = ''): Buffer {
  return Buffer.from(JSON.stringify({ kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Metadata', auditID: `id-${i}`, stage: 'ResponseComplete', verb: 'get', annotations: { pad } }));
}

describe('audit batch encoder', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'nw-encoder-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('streams an NDJSON body back whole for every attempt, with its size and CRC-32', async () => {
    const encoder = new BatchEncoder('ndjson', false, path.join(dir, 'batch.spool'));
    const items = [auditEvent(1), auditEvent(2, 'ü'), auditEvent(3)];
    for (const item of items) await encoder.add(item);
    const batch = await encoder.finish();
    const expected = Buffer.concat(items.flatMap((i) => [i, Buffer.from('\n')]));
    for (let attempt = 0; attempt < 2; attempt++) expect(Buffer.concat(await chunksOf(batch.open()))).to.deep.equal(expected);
    expect(batch).to.include({ events: 3, payloadBytes: expected.length, bodyBytes: expected.length, crc32: crc32(expected), contentType: 'application/x-ndjson' });
    expect(batch.contentEncoding).to.equal(undefined);
  });

  it('builds a gzip EventList whose size and CRC-32 are those of the compressed body', async () => {
    const encoder = new BatchEncoder('eventList', true, path.join(dir, 'batch.spool'));
    for (let i = 0; i < 100; i++) await encoder.add(auditEvent(i));
    const batch = await encoder.finish();
    const body = Buffer.concat(await chunksOf(batch.open()));
    const list = JSON.parse(gunzipSync(body).toString('utf8')) as { kind: string; apiVersion: string; items: Array<{ auditID: string }> };
    expect(list.kind).to.equal('EventList');
    expect(list.apiVersion).to.equal('audit.k8s.io/v1');
    expect(list.items.map((e) => e.auditID)).to.deep.equal(Array.from({ length: 100 }, (_, i) => `id-${i}`));
    expect(batch).to.include({ bodyBytes: body.length, crc32: crc32(body), payloadBytes: gunzipSync(body).length, contentEncoding: 'gzip' });
  });

  it('reads a body larger than the collection interval back byte for byte, never reusing a chunk a sink may still hold', async () => {
    const encoder = new BatchEncoder('ndjson', false, path.join(dir, 'batch.spool'));
    const pad = 'x'.repeat(4000);
    const items = Array.from({ length: 6000 }, (_, i) => auditEvent(i, pad)); // ~24 MB
    for (const item of items) await encoder.add(item);
    const batch = await encoder.finish();
    expect(batch.payloadBytes).to.be.greaterThan(20 * 1024 * 1024);
    const chunks = await chunksOf(batch.open());
    const body = Buffer.concat(chunks);
    expect(body.length).to.equal(batch.bodyBytes);
    expect(crc32(body)).to.equal(crc32(Buffer.concat(items.flatMap((i) => [i, Buffer.from('\n')]))));
    expect(new Set(chunks.map((c) => c.buffer)).size, 'distinct buffers').to.equal(chunks.length);
  });
});
