// The kubectl plugin reads the downloaded zip entry by entry from disk. A damaged or cut-off
// download must fail with a message, not hand back a short pcap that looks complete.
import { expect } from 'chai';
import JSZip from 'jszip';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { listZip, openZipEntry, type ZipEntry } from '../../src/plugin/zip.js';

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** What reading the entry to its end fails with (undefined when it does not). */
async function readError(file: string, entry: ZipEntry): Promise<unknown> {
  return readAll(await openZipEntry(file, entry)).then(
    () => undefined,
    (e: unknown) => e,
  );
}

describe('plugin zip reader', () => {
  let dir: string;
  // Incompressible bytes and text, so DEFLATE data spans many blocks.
  const pcap = randomBytes(300_000);
  const text = Buffer.from('GET /healthz HTTP/1.1\r\n'.repeat(20_000));

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'nw-zip-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Where an entry's data starts: after its local header, file name and extra field. */
  async function dataStart(file: string, entry: ZipEntry): Promise<number> {
    const header = (await readFile(file)).subarray(entry.localHeaderOffset, entry.localHeaderOffset + 30);
    return entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  }

  async function writeZip(compression: 'STORE' | 'DEFLATE'): Promise<{ file: string; entries: ZipEntry[] }> {
    const zip = new JSZip();
    zip.file('node-a/web/web_00001.pcap', pcap);
    zip.file('node-a/web/notes.txt', text);
    const file = path.join(dir, `${compression}.zip`);
    await writeFile(file, await zip.generateAsync({ type: 'nodebuffer', compression }));
    return { file, entries: await listZip(file) };
  }

  for (const compression of ['STORE', 'DEFLATE'] as const) {
    it(`streams every ${compression} entry back byte for byte`, async () => {
      const { file, entries } = await writeZip(compression);
      expect(entries.map((e) => [e.name, e.method])).to.deep.equal([
        ['node-a/', 0],
        ['node-a/web/', 0],
        ['node-a/web/web_00001.pcap', compression === 'STORE' ? 0 : 8],
        ['node-a/web/notes.txt', compression === 'STORE' ? 0 : 8],
      ]);
      expect(await readAll(await openZipEntry(file, entries[2]!))).to.deep.equal(pcap);
      expect(await readAll(await openZipEntry(file, entries[3]!))).to.deep.equal(text);
    });
  }

  it('fails a STORE entry whose data is cut short instead of ending early', async () => {
    const { file, entries } = await writeZip('STORE');
    const entry = entries[2]!;
    // The central directory read before the cut still promises the whole entry.
    await truncate(file, (await dataStart(file, entry)) + 1000);
    const error = await readError(file, entry);
    expect(String(error)).to.include(`${entry.name} has 1000 bytes instead of ${pcap.length}: the zip is damaged or cut off`);
  });

  it('fails a DEFLATE entry whose compressed data is corrupt', async () => {
    const { file, entries } = await writeZip('DEFLATE');
    const entry = entries[3]!;
    const bytes = await readFile(file);
    const data = await dataStart(file, entry);
    bytes.fill(0xff, data, data + 64);
    await writeFile(file, bytes);
    const error = await readError(file, entry);
    expect(error, 'reading corrupt DEFLATE data').to.be.instanceOf(Error);
  });

  it('fails a DEFLATE entry that is cut short', async () => {
    const { file, entries } = await writeZip('DEFLATE');
    const entry = entries[2]!;
    await truncate(file, (await dataStart(file, entry)) + 1000);
    const error = await readError(file, entry);
    expect(error, 'reading a cut DEFLATE entry').to.be.instanceOf(Error);
  });
});
