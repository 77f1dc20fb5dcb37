// The krew package of kubectl-netwarden: one archive for every platform (the plugin is JavaScript
// bundled with its dependencies by esbuild, started by a POSIX sh launcher with the Node.js on
// PATH) and the plugin manifest netwarden.yaml pointing at it with its sha256.
//   node --import tsx hack/krew/package.ts [--out dist/krew] [--base-url https://.../releases/download/v0.1.0]
// The archive is reproducible: sorted entries, fixed owner and mtime (SOURCE_DATE_EPOCH, else the
// commit time of HEAD), gzip without a name or time, so a rebuild gives the same sha256.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { stringify } from 'yaml';
import { buildUi, UI_FILES } from '../build-ui.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const PLUGIN_NAME = 'netwarden';
export const BIN = 'kubectl-netwarden';
/** The platforms krew users are on; the one archive serves them all (it needs node, not a CPU). */
const PLATFORMS = [
  { os: 'linux', arch: 'amd64' },
  { os: 'linux', arch: 'arm64' },
  { os: 'darwin', arch: 'amd64' },
  { os: 'darwin', arch: 'arm64' },
];

export interface KrewPackage {
  archive: string;
  manifest: string;
  sha256: string;
  version: string;
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** License texts of every package the bundle contains, from esbuild's list of its inputs. */
function thirdPartyLicenses(inputs: string[]): string {
  const roots = new Set<string>();
  for (const input of inputs) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) roots.add(m[1]!);
  }
  const parts: string[] = [];
  for (const root of [...roots].sort()) {
    const pkg = JSON.parse(readFileSync(path.join(repo, root, 'package.json'), 'utf8')) as { name: string; version: string; license?: string };
    const file = ['LICENSE', 'LICENSE.md', 'LICENSE.txt', 'license', 'LICENCE', 'LICENSE-MIT'].map((f) => path.join(repo, root, f)).find((f) => {
      try {
        return readFileSync(f, 'utf8').length > 0;
      } catch {
        return false;
      }
    });
    parts.push(`${pkg.name} ${pkg.version} (${pkg.license ?? 'see package'})\n\n${file ? readFileSync(file, 'utf8').trim() : '(no license file in the package)'}\n`);
  }
  return parts.join(`\n${'-'.repeat(72)}\n\n`);
}

/** Seconds since the epoch of HEAD's commit; 0 outside a git checkout. */
function commitTime(): string {
  try {
    return execFileSync('git', ['-C', repo, 'log', '-1', '--format=%ct'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || '0';
  } catch {
    return '0';
  }
}

export async function packagePlugin(outDir: string, baseUrl?: string): Promise<KrewPackage> {
  const { version: pkgVersion, license } = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string; license: string };
  const version = `v${pkgVersion}`;
  const base = (baseUrl ?? `https://github.com/netwarden/netwarden/releases/download/${version}`).replace(/\/$/, '');
  const stage = mkdtempSync(path.join(tmpdir(), 'netwarden-krew-'));
  try {
    // ESM output; the CommonJS dependencies inside it get a require() of their own.
    const result = await build({
      absWorkingDir: repo,
      entryPoints: ['src/plugin/main.ts'],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node22',
      outfile: path.join(stage, `${BIN}.mjs`),
      banner: { js: "import { createRequire as __netwardenRequire } from 'node:module';\nconst require = __netwardenRequire(import.meta.url);" },
      legalComments: 'none',
      metafile: true,
      logLevel: 'warning',
    });
    // The console's page, beside the bundle, where `kubectl netwarden ui` looks for it.
    const uiInputs = await buildUi(path.join(stage, 'ui'));
    copyFileSync(path.join(repo, 'hack/krew/kubectl-netwarden.sh'), path.join(stage, BIN));
    chmodSync(path.join(stage, BIN), 0o755);
    chmodSync(path.join(stage, `${BIN}.mjs`), 0o644);
    writeFileSync(path.join(stage, 'THIRD-PARTY-LICENSES'), thirdPartyLicenses([...Object.keys(result.metafile.inputs), ...uiInputs]));
    writeFileSync(path.join(stage, 'LICENSE'), `Netwarden ${version}: ${license}. The bundled dependencies' licenses are in THIRD-PARTY-LICENSES.\n`);

    mkdirSync(outDir, { recursive: true });
    const archiveName = `${BIN}-${version}.tar.gz`;
    const archive = path.join(outDir, archiveName);
    const epoch = process.env.SOURCE_DATE_EPOCH ?? commitTime();
    const tar = execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', `--mtime=@${epoch}`, '-C', stage, '-cf', '-', BIN, `${BIN}.mjs`, 'LICENSE', 'THIRD-PARTY-LICENSES', ...UI_FILES.map((f) => `ui/${f}`)], { maxBuffer: 256 * 1024 * 1024 });
    writeFileSync(archive, execFileSync('gzip', ['-n', '-9'], { input: tar, maxBuffer: 256 * 1024 * 1024 }));
    const sha256 = createHash('sha256').update(readFileSync(archive)).digest('hex');

    const manifest = {
      apiVersion: 'krew.googlecontainertools.github.com/v1alpha2',
      kind: 'Plugin',
      metadata: { name: PLUGIN_NAME },
      spec: {
        version,
        homepage: 'https://github.com/netwarden/netwarden',
        shortDescription: 'Download and summarize Netwarden PacketCapture files',
        description:
          'The kubectl side of Netwarden, the operator that shows packet drops, packet captures and\n' +
          'the audit log as Kubernetes resources. Downloads the pcap files of a PacketCapture from every\n' +
          "node as one zip (for callers RBAC allows get packetcaptures/files), summarizes them like\n" +
          'tcpdump, and deletes them once the capture has ended. `kubectl netwarden ui` serves a web\n' +
          'console on 127.0.0.1 (drops graph, captures, audit forwarders) that acts with your kubeconfig.\n',
        caveats:
          'Needs Node.js 22.19 or newer on PATH.\n' +
          "It talks to the Netwarden controller's HTTPS API; from outside the cluster:\n" +
          '  kubectl -n netwarden-system port-forward svc/netwarden-controller 8443:443\n' +
          'then: kubectl netwarden capture download -n NAMESPACE NAME\n',
        platforms: PLATFORMS.map((p) => ({ selector: { matchLabels: p }, uri: `${base}/${archiveName}`, sha256, bin: BIN })),
      },
    };
    const manifestPath = path.join(outDir, `${PLUGIN_NAME}.yaml`);
    writeFileSync(manifestPath, stringify(manifest, { lineWidth: 0 }));
    return { archive, manifest: manifestPath, sha256, version };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const out = path.resolve(flag(args, '--out') ?? path.join(repo, 'dist', 'krew'));
  const made = await packagePlugin(out, flag(args, '--base-url'));
  console.log(`${made.archive}\n${made.manifest}\nsha256 ${made.sha256}`);
}
