import { expect } from 'chai';
import { appendFile, mkdir, mkdtemp, open, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  contentMatchesPath,
  fingerprintPath,
  hashPrefix,
  identityOfPath,
  isFingerprintComplete,
  readGzipPrefix,
} from '../../src/nodeagent/tail/identity.js';
import { defaultRotatedFilter, listRotated } from '../../src/nodeagent/tail/rotated.js';

describe('tail identity', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tail-id-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fingerprints the first N bytes; incomplete while the file is shorter', async () => {
    const p = join(dir, 'a.log');
    await writeFile(p, 'hello\n');
    const small = await identityOfPath(p, 1024);
    expect(small.fingerprintLength).to.equal(6);
    expect(isFingerprintComplete(small, 1024)).to.equal(false);
    expect(small.fingerprint).to.equal(hashPrefix(Buffer.from('hello\n')));
    expect(small.fingerprint).to.match(/^[0-9a-f]{32}$/);

    await appendFile(p, 'x'.repeat(2000));
    const big = await identityOfPath(p, 1024);
    expect(big.fingerprintLength).to.equal(1024);
    expect(isFingerprintComplete(big, 1024)).to.equal(true);
    expect(big.inode).to.equal(small.inode);
    expect(big.fingerprint).to.not.equal(small.fingerprint);
    // the old (incomplete) identity still matches the grown file over its own prefix length
    expect(await contentMatchesPath(small, p)).to.equal(true);
    expect(await contentMatchesPath(big, p)).to.equal(true);
  });

  it('gives a gzip file the fingerprint of its decompressed content', async () => {
    const body = Buffer.from(Array.from({ length: 500 }, (_, i) => `line ${i}\n`).join(''));
    const plain = join(dir, 'audit-2026-11-23T03-20-56.123.log');
    await writeFile(plain, body);
    await writeFile(`${plain}.gz`, gzipSync(body));
    const a = await identityOfPath(plain);
    const b = await identityOfPath(`${plain}.gz`);
    expect(b.fingerprint).to.equal(a.fingerprint);
    expect(b.fingerprintLength).to.equal(1024);
    expect(await contentMatchesPath(a, `${plain}.gz`)).to.equal(true);
    expect(await contentMatchesPath({ ...a, fingerprint: '0'.repeat(32) }, `${plain}.gz`)).to.equal(false);
  });

  it('reads what it can from a truncated gzip', async () => {
    const body = Buffer.from('a'.repeat(100) + Array.from({ length: 2000 }, (_, i) => `${i * 7919}`).join(','));
    const gz = gzipSync(body);
    const p = join(dir, 'partial.gz');
    await writeFile(p, gz.subarray(0, Math.floor(gz.length / 2)));
    const fh = await open(p, 'r');
    try {
      const got = await readGzipPrefix(fh, 50);
      expect(got.toString()).to.equal('a'.repeat(50));
    } finally {
      await fh.close();
    }
    expect((await fingerprintPath(p, 10)).length).to.equal(10);
  });

  it('lists rotated siblings oldest first, merging plain/.gz twins', async () => {
    const live = join(dir, 'audit.log');
    await writeFile(live, 'live\n');
    await writeFile(join(dir, 'audit-2026-11-23T03-20-57.000.log'), 'b\n');
    await writeFile(join(dir, 'audit-2026-11-23T03-20-56.123.log.gz'), gzipSync('a\n'));
    await writeFile(join(dir, 'audit-2026-11-23T03-20-58.500.log'), 'c\n');
    await writeFile(join(dir, 'audit-2026-11-23T03-20-58.500.log.gz'), gzipSync('c\n'));
    await writeFile(join(dir, 'audit-policy.yaml'), 'no');
    await writeFile(join(dir, 'other.log'), 'no');
    const l = await listRotated(live);
    expect(l.map((f) => [f.name, f.compressed, f.twin !== undefined])).to.deep.equal([
      ['audit-2026-11-23T03-20-56.123.log', true, false],
      ['audit-2026-11-23T03-20-57.000.log', false, false],
      ['audit-2026-11-23T03-20-58.500.log', false, true],
    ]);
  });

  it('orders logrotate numeric names oldest (highest number) first and falls back to mtime', async () => {
    const live = join(dir, 'kern.log');
    await writeFile(live, '');
    for (const n of ['kern.log.1', 'kern.log.3.gz', 'kern.log.2.gz']) await writeFile(join(dir, n), n.endsWith('.gz') ? gzipSync(n) : n);
    expect((await listRotated(live)).map((f) => f.name)).to.deep.equal(['kern.log.3', 'kern.log.2', 'kern.log.1']);
    const f = defaultRotatedFilter('kern.log');
    expect(['kern.log.1', 'kern.log-20261123.gz', 'kern.log.2.xz', 'kern.log', 'kernel.txt'].map(f)).to.deep.equal([true, true, false, false, false]);

    const live2 = join(dir, 'x', 'app');
    await mkdir(join(dir, 'x'));
    await writeFile(live2, '');
    await writeFile(join(dir, 'x', 'app.old'), '');
    await writeFile(join(dir, 'x', 'app.older'), '');
    await utimes(join(dir, 'x', 'app.old'), new Date(2000_000), new Date(2000_000));
    await utimes(join(dir, 'x', 'app.older'), new Date(1000_000), new Date(1000_000));
    expect((await listRotated(live2)).map((f) => f.name)).to.deep.equal(['app.older', 'app.old']);
  });
});
