// The container image, as `docker run` would start it: hack/image/build.sh builds the Dockerfile with
// buildah from local bases (or reuses the tars it cached for the same inputs), and each check runs
// the image's entrypoint in a chroot of its unpacked layers, with the image's environment and
// working directory. The first build takes minutes; later runs reuse the cache.
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { run, type ExecResult } from '../env/controlplane.js';
import { REPO_ROOT } from '../env/netwarden.js';

const enabled = process.env.NETWARDEN_IMAGE_TEST === '1';

interface ImageConfig {
  Env?: string[];
  Entrypoint?: string[];
  WorkingDir?: string;
  User?: string;
}

interface Unpacked {
  root: string;
  config: ImageConfig;
  /** Uncompressed size of each layer, bottom first. */
  layerBytes: number[];
  repoTags: string[];
}

async function must(cmd: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const r = await run(cmd, args, { timeoutMs });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim().slice(-2000)}`);
  return r.stdout;
}

/** Unpacks a docker-archive tar into dir/rootfs, layer by layer, applying whiteouts as a runtime does. */
async function unpack(archive: string, dir: string): Promise<Unpacked> {
  const meta = path.join(dir, 'archive');
  const root = path.join(dir, 'rootfs');
  await mkdir(meta, { recursive: true });
  await mkdir(root, { recursive: true });
  await must('tar', ['-xf', archive, '-C', meta]);
  const manifest = JSON.parse(await readFile(path.join(meta, 'manifest.json'), 'utf8')) as { Config: string; Layers: string[]; RepoTags?: string[] }[];
  const image = manifest[0];
  if (!image) throw new Error(`${archive}: empty manifest.json`);
  const layerBytes: number[] = [];
  for (const layer of image.Layers) {
    const file = path.join(meta, layer);
    const members = (await must('tar', ['-tf', file])).split('\n').filter(Boolean);
    for (const member of members) {
      const base = path.posix.basename(member);
      if (!base.startsWith('.wh.')) continue;
      const parent = path.join(root, path.posix.dirname(member));
      if (base === '.wh..wh..opq') await must('find', [parent, '-mindepth', '1', '-maxdepth', '1', '-exec', 'rm', '-rf', '{}', '+']).catch(() => '');
      else await rm(path.join(parent, base.slice('.wh.'.length)), { recursive: true, force: true });
    }
    await must('tar', ['-xf', file, '-C', root, '--exclude=.wh.*']);
    layerBytes.push(Number((await must('stat', ['-c', '%s', file])).trim()));
  }
  const config = (JSON.parse(await readFile(path.join(meta, image.Config), 'utf8')) as { config?: ImageConfig }).config ?? {};
  return { root, config, layerBytes, repoTags: image.RepoTags ?? [] };
}

/** `docker run IMAGE args...`: the entrypoint in a chroot, with only the image's environment. */
function runImage(image: Unpacked, args: string[], entrypoint = image.config.Entrypoint ?? []): Promise<ExecResult> {
  return run('chroot', [image.root, '/usr/bin/env', '-i', '-C', image.config.WorkingDir || '/', ...(image.config.Env ?? []), ...entrypoint, ...args], { timeoutMs: 60_000 });
}

describe('the container image (built with buildah, no Docker engine)', function () {
  let work = '';
  let app: Unpacked;
  let pause: Unpacked;

  before(async function () {
    if (!enabled) {
      console.log('    (skipped: set NETWARDEN_IMAGE_TEST=1 to build the image with hack/image/build.sh: minutes the first time, cached after)');
      this.skip();
    }
    if (process.getuid?.() !== 0) throw new Error('the image build and the chroot checks need root');
    this.timeout(30 * 60_000);
    const started = Date.now();
    const built = await run('bash', [path.join(REPO_ROOT, 'hack/image/build.sh')], { timeoutMs: 30 * 60_000 });
    if (built.code !== 0) throw new Error(`hack/image/build.sh failed (${built.code}):\n${built.stderr.trim().slice(-4000)}`);
    const tars = Object.fromEntries(built.stdout.trim().split('\n').map((line) => line.split('=', 2) as [string, string]));
    console.log(`    image ready in ${((Date.now() - started) / 1000).toFixed(1)}s: ${tars.image}`);
    work = await mkdtemp(path.join(tmpdir(), 'netwarden-image-'));
    app = await unpack(tars.image!, path.join(work, 'app'));
    pause = await unpack(tars.pause!, path.join(work, 'pause'));
  });

  after(async function () {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('is tagged as config/ references it and runs the CLI as its entrypoint', async function () {
    const deployment = await readFile(path.join(REPO_ROOT, 'config/controller/deployment.yaml'), 'utf8');
    const tag = /image:\s*(\S+)/.exec(deployment)?.[1];
    expect(app.repoTags).to.deep.equal([tag]);
    const help = await runImage(app, ['--help']);
    expect(help.code, help.stderr).to.equal(0);
    expect(help.stdout).to.contain('Usage: netwarden');
    expect(help.stdout).to.match(/^\s+controller \[options\]/m);
    expect(help.stdout).to.match(/^\s+agent \[options\]/m);
  });

  it('runs the node agent and the controller commands', async function () {
    const agent = await runImage(app, ['agent', '--help']);
    expect(agent.code, agent.stderr).to.equal(0);
    expect(agent.stdout).to.contain('--node-name <name>');
    const controller = await runImage(app, ['controller', '--help']);
    expect(controller.code, controller.stderr).to.equal(0);
    expect(controller.stdout).to.contain('Usage: netwarden controller');
  });

  it('validates the examples offline with the schemas and rules it carries', async function () {
    await cp(path.join(REPO_ROOT, 'examples'), path.join(app.root, 'tmp/examples'), { recursive: true });
    const ok = await runImage(app, ['validate', '-f', '/tmp/examples/droptail.yaml']);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout).to.contain('valid');
    // What a user sees for a mistake: the field, the value and the rule.
    const broken = (await readFile(path.join(REPO_ROOT, 'examples/droptail.yaml'), 'utf8')).replace('group: 100', 'group: 70000');
    await writeFile(path.join(app.root, 'tmp/broken.yaml'), broken);
    const refused = await runImage(app, ['validate', '-f', '/tmp/broken.yaml']);
    expect(refused.code).to.equal(1);
    expect(refused.stdout + refused.stderr).to.contain('spec.sources[0].group: Invalid value: 70000: should be less than or equal to 65535');
  });

  it('loads libpcap through the cap addon and has nft, ip and journalctl', async function () {
    const pcap = await runImage(app, ['-e', "const { Cap } = require('cap'); console.log(JSON.stringify(Cap.deviceList().map((d) => d.name)))"], ['node']);
    expect(pcap.code, pcap.stderr).to.equal(0);
    expect(JSON.parse(pcap.stdout) as string[]).to.include('lo');
    const ldd = await runImage(app, ['/app/node_modules/cap/build/Release/cap.node'], ['ldd']);
    expect(ldd.stdout).to.match(/libpcap\.so\.0\.8 => \/(usr\/)?lib\/x86_64-linux-gnu\/libpcap\.so\.0\.8/);
    expect((await runImage(app, ['--version'], ['nft'])).stdout).to.match(/^nftables v1\./);
    expect((await runImage(app, ['-V'], ['ip'])).stdout).to.contain('iproute2');
    expect((await runImage(app, ['--version'], ['journalctl'])).stdout).to.match(/^systemd \d+/);
  });

  it('carries no build tools or dev dependencies, and stays under 400 MB', async function () {
    const found = await runImage(app, ['-c', 'for f in /usr/bin/gcc /usr/bin/make /usr/local/bin/npm /usr/share/perl /app/node_modules/typescript /app/node_modules/mocha /app/node_modules/tsx /app/src; do [ -e "$f" ] && echo "$f"; done; true'], ['sh']);
    expect(found.stdout.trim()).to.equal('');
    const total = app.layerBytes.reduce((a, b) => a + b, 0);
    expect(total / 1e6, `layers: ${app.layerBytes.map((b) => `${(b / 1e6).toFixed(0)} MB`).join(', ')}`).to.be.below(400);
  });

  it('has a pause image for the kubelet: one static binary, non-root', async function () {
    expect(pause.repoTags).to.deep.equal(['registry.k8s.io/pause:3.10']);
    expect(pause.config.Entrypoint).to.deep.equal(['/pause']);
    expect(pause.config.User).to.equal('65535:65535');
    const version = await run('chroot', [pause.root, '/pause', '-v'], { timeoutMs: 10_000 });
    expect(version.stdout).to.contain('pause');
  });
});
