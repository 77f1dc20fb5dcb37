// The krew package of kubectl-netwarden (hack/krew/package.ts): the manifest passes krew's rules
// (hack/krew/plugin-manifest.schema.json, with ajv), its sha256 is the archive's, the archive holds
// the bin, and krew (built from its Go module by hack/krew/build.sh) installs it offline with
// --manifest/--archive, after which `kubectl netwarden` runs with no checkout or node_modules near it.
import { expect } from 'chai';
import { execFileSync, spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse, stringify } from 'yaml';
import { BIN, PLUGIN_NAME, packagePlugin, type KrewPackage } from '../../hack/krew/package.js';
import { findKubeBinDir } from '../env/controlplane.js';

const repo = path.resolve(import.meta.dirname, '../..');
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const validateManifest = addFormats(new Ajv({ allErrors: true })).compile(JSON.parse(readFileSync(path.join(repo, 'hack/krew/plugin-manifest.schema.json'), 'utf8')) as object);

interface Manifest {
  metadata: { name: string };
  spec: { version: string; platforms: Array<{ selector: { matchLabels: Record<string, string> }; uri: string; sha256: string; bin: string }> };
}

function schemaErrors(manifest: unknown): string[] {
  return validateManifest(manifest) ? [] : (validateManifest.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`);
}

describe('krew plugin manifest and archive', function () {
  this.timeout(60_000);
  let dir: string;
  let made: KrewPackage;
  let manifest: Manifest;
  let krew: string;
  let root: string;
  let run: (cmd: string, args: string[]) => SpawnSyncReturns<string>;
  let env: NodeJS.ProcessEnv;

  before(async function () {
    dir = mkdtempSync(path.join(tmpdir(), 'netwarden-krew-test-'));
    krew = process.env.NETWARDEN_KREW ?? execFileSync('bash', [path.join(repo, 'hack/krew/build.sh')], { encoding: 'utf8' }).trim();
    root = path.join(dir, 'krew-root');
    // Only kubectl, node, krew's bin and the system's tools: nothing of the checkout is reachable.
    env = { PATH: [path.join(root, 'bin'), findKubeBinDir(), path.dirname(process.execPath), '/usr/bin', '/bin'].join(':'), HOME: dir, KREW_ROOT: root, KREW_NO_UPGRADE_CHECK: '1' };
    run = (cmd, args) => spawnSync(cmd, args, { cwd: dir, env, encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
    made = await packagePlugin(path.join(dir, 'out'), 'https://example.invalid/releases/download/v0.1.0');
    manifest = parse(readFileSync(made.manifest, 'utf8')) as Manifest;
  });

  after(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it("passes krew's manifest rules, named like its file, for Linux and macOS on amd64 and arm64", function () {
    expect(schemaErrors(manifest)).to.deep.equal([]);
    expect(path.basename(made.manifest)).to.equal(`${manifest.metadata.name}.yaml`);
    expect(manifest.metadata.name).to.equal(PLUGIN_NAME);
    const { version } = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string };
    expect(manifest.spec.version).to.equal(`v${version}`);
    expect(manifest.spec.platforms.map((p) => `${p.selector.matchLabels.os}/${p.selector.matchLabels.arch}`)).to.deep.equal(['linux/amd64', 'linux/arm64', 'darwin/amd64', 'darwin/arm64']);
  });

  it('the schema refuses what krew refuses, and krew refuses it too', function () {
    const platform = manifest.spec.platforms[0]!;
    const broken = (spec: Record<string, unknown>) => ({ ...manifest, spec: { ...manifest.spec, ...spec } });
    const cases: Array<[Record<string, unknown>, string[]]> = [
      [broken({ version: '0.1.0' }), ['/spec/version must match pattern "^v(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?$"']],
      [broken({ platforms: [{ ...platform, sha256: platform.sha256.toUpperCase() }] }), ['/spec/platforms/0/sha256 must match pattern "^[a-f0-9]{64}$"']],
      [broken({ platforms: [{ ...platform, selector: { matchLabels: { distro: 'debian' } } }] }), ['/spec/platforms/0/selector/matchLabels must be equal to one of the allowed values', '/spec/platforms/0/selector/matchLabels property name must be valid']],
      [broken({ shortDescription: 'two\nlines' }), ['/spec/shortDescription must match pattern "^[^\\r\\n]+$"']],
      [broken({ platforms: [] }), ['/spec/platforms must NOT have fewer than 1 items']],
    ];
    for (const [i, [bad, errors]] of cases.entries()) {
      expect(schemaErrors(bad), `case ${i}`).to.deep.equal(errors);
      const file = path.join(dir, `bad-${i}`, `${PLUGIN_NAME}.yaml`);
      mkdirSync(path.dirname(file));
      writeFileSync(file, stringify(bad));
      const r = run(krew, ['install', `--manifest=${file}`, `--archive=${made.archive}`]);
      expect(r.status, `krew installed case ${i}`).to.not.equal(0);
      expect(r.stderr, `case ${i}`).to.match(/plugin manifest validation error|failed to parse plugin version/);
    }
  });

  it("points every platform at the archive with the archive's sha256 and bin", function () {
    const sha256 = createHash('sha256').update(readFileSync(made.archive)).digest('hex');
    for (const p of manifest.spec.platforms) {
      expect(p.sha256).to.equal(sha256);
      expect(p.uri).to.equal(`https://example.invalid/releases/download/v0.1.0/${path.basename(made.archive)}`);
      expect(p.bin).to.equal(BIN);
    }
  });

  it('is reproducible: a second build has the same sha256', async function () {
    expect((await packagePlugin(path.join(dir, 'again'))).sha256).to.equal(made.sha256);
  });

  it("holds the executable bin, the bundle, the licenses and the console's page", function () {
    const listing = execFileSync('tar', ['-tvzf', made.archive], { encoding: 'utf8' }).trim().split('\n');
    expect(listing.map((l) => l.split(/\s+/).at(-1))).to.deep.equal([BIN, `${BIN}.mjs`, 'LICENSE', 'THIRD-PARTY-LICENSES', 'ui/app.css', 'ui/app.js', 'ui/index.html']);
    const licenses = execFileSync('tar', ['-xzOf', made.archive, 'THIRD-PARTY-LICENSES'], { encoding: 'utf8' });
    expect(licenses).to.match(/^preact \d/m);
    expect(listing[0]).to.match(/^-rwxr-xr-x 0\/0 /);
  });

  it('installs with krew itself (built from its Go module) and runs as `kubectl netwarden` from krew\'s bin', function () {
    // krew checks the archive against the manifest's sha256 before it unpacks anything.
    const wrong = path.join(dir, `${PLUGIN_NAME}.yaml`);
    writeFileSync(wrong, readFileSync(made.manifest, 'utf8').replaceAll(made.sha256, 'ab'.repeat(32)));
    const refused = run(krew, ['install', `--manifest=${wrong}`, `--archive=${made.archive}`]);
    expect(refused.status).to.not.equal(0);
    expect(refused.stderr).to.match(/checksum does not match/i);

    const installed = run(krew, ['install', `--manifest=${made.manifest}`, `--archive=${made.archive}`]);
    expect(installed.status, installed.stderr).to.equal(0);
    expect(installed.stderr + installed.stdout).to.contain(`Installed plugin: ${PLUGIN_NAME}`).and.contain('Needs Node.js 22.19 or newer on PATH.');
    // krew's record of the installation (`krew list` would need the index from GitHub).
    expect((parse(readFileSync(path.join(root, 'receipts', `${PLUGIN_NAME}.yaml`), 'utf8')) as Manifest).spec.version).to.equal(manifest.spec.version);
    expect(lstatSync(path.join(root, 'bin', BIN)).isSymbolicLink(), 'krew links the bin into its bin directory').to.equal(true);

    const help = run('kubectl', ['netwarden', '--help']);
    expect(help.status, help.stderr).to.equal(0);
    expect(help.stdout).to.match(/^Usage: kubectl-netwarden \[options\] \[command\]/);
    expect(help.stdout).to.contain('capture').and.contain('port-forward svc/netwarden-controller 8443:443');
    const sub = run('kubectl', ['netwarden', 'capture', 'download', '--help']);
    expect(sub.status, sub.stderr).to.equal(0);
    expect(sub.stdout).to.contain('--output-dir');
    expect(run('kubectl', ['plugin', 'list']).stdout).to.contain(path.join(root, 'bin', BIN));
  });

  it('serves the console from the installed package: `kubectl netwarden ui` prints a URL whose page and script load', async function () {
    const child = spawn('kubectl', ['netwarden', 'ui', '--controller-url=https://127.0.0.1:1'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        let err = '';
        child.stderr.on('data', (c: Buffer) => (err += c.toString()));
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          const m = /Netwarden console: (http:\/\/127\.0\.0\.1:\d+\/\?token=\S+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.once('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
      });
      const page = await fetch(url, { redirect: 'manual' });
      expect(page.status).to.equal(303);
      const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0]!;
      const index = await fetch(new URL('/', url), { headers: { cookie } });
      expect(index.status).to.equal(200);
      expect(await index.text()).to.contain('<script type="module" src="/app.js">');
      const script = await fetch(new URL('/app.js', url), { headers: { cookie } });
      expect(script.status).to.equal(200);
      expect(script.headers.get('content-type')).to.match(/^text\/javascript/);
      expect((await script.text()).length).to.be.greaterThan(10_000);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
