import { expect } from 'chai';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointStore, type TailCheckpoint } from '../../src/nodeagent/tail/checkpoint.js';

const cp: TailCheckpoint = {
  identity: { inode: '1234', device: '66', fingerprint: '0123456789abcdef0123456789abcdef', fingerprintLength: 1024 },
  offset: 4096,
};

describe('tail CheckpointStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tail-cp-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('returns null without error when no checkpoint exists', async () => {
    const s = new CheckpointStore(join(dir, 'missing-dir'), 'audit');
    expect(await s.load()).to.deep.equal({ checkpoint: null });
  });

  it('saves atomically (no temp files left) and loads back', async () => {
    const s = new CheckpointStore(join(dir, 'sub'), 'audit');
    await s.save(cp);
    await s.save({ ...cp, offset: 5000 });
    expect(await s.load()).to.deep.equal({ checkpoint: { ...cp, offset: 5000 } });
    expect(await readdir(join(dir, 'sub'))).to.deep.equal(['audit.json']);
    const doc = JSON.parse(await readFile(join(dir, 'sub', 'audit.json'), 'utf8')) as Record<string, unknown>;
    expect(doc.version).to.equal(1);
    expect(typeof doc.savedAt).to.equal('string');
  });

  it('serialises concurrent saves; the last one wins', async () => {
    const s = new CheckpointStore(dir, 'droptail');
    await Promise.all([1, 2, 3, 4, 5].map((n) => s.save({ ...cp, offset: n })));
    expect((await s.load()).checkpoint?.offset).to.equal(5);
  });

  for (const [what, body] of [
    ['truncated JSON', '{"version":1,"checkpoint":{"identity":'],
    ['garbage', '\u0000\u0001not json'],
    ['a JSON array', '[1,2,3]'],
    ['a wrong version', JSON.stringify({ version: 99, checkpoint: cp })],
    ['an invalid payload', JSON.stringify({ version: 1, checkpoint: { identity: { inode: 5 }, offset: -1 } })],
  ] as const) {
    it(`reports ${what} as an error and treats it as absent`, async () => {
      await writeFile(join(dir, 'audit.json'), body);
      const s = new CheckpointStore(dir, 'audit');
      const r = await s.load();
      expect(r.checkpoint).to.equal(null);
      expect(r.error).to.be.a('string').and.not.empty;
      // and a later save repairs it
      await s.save(cp);
      expect((await s.load()).checkpoint).to.deep.equal(cp);
    });
  }

  it('removes stale temp files left by a crash', async () => {
    await writeFile(join(dir, '.audit.json.tmp-1-abc'), 'partial');
    const s = new CheckpointStore(dir, 'audit');
    expect((await s.load()).checkpoint).to.equal(null);
    expect(await readdir(dir)).to.deep.equal([]);
  });

  it('rejects names that could escape the directory', () => {
    expect(() => new CheckpointStore(dir, '../x')).to.throw();
    expect(() => new CheckpointStore(dir, '.hidden')).to.throw();
  });
});
