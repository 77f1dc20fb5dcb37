// The offline tools of the `netwarden` command (drops parse, validate, pcap summary) start without
// libpcap (`cap`) and the Kubernetes client: main.ts imports each subcommand's code when it runs.
// Each command runs in a child process with a preloaded module (support/loaded-modules.mjs) that
// records every ES module and CommonJS file it loads through Node's module hooks and writes the list
// when the process exits; the agent, which needs both, shows that the check sees them.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LIBPCAP = /node_modules\/cap\//;
const KUBERNETES_CLIENT = /node_modules\/@kubernetes\/client-node\//;
const PROM_CLIENT = /node_modules\/prom-client\//;

const RECORDER = path.join(REPO, 'test/unit/support/loaded-modules.mjs');

/** Runs `netwarden ARGS` (through tsx) with `stdin` as input; its stdout and the modules it loaded, one URL per line. */
function netwarden(args: string[], stdin = ''): Promise<{ code: number | null; stdout: string; loaded: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'netwarden-loaded-'));
  const list = path.join(dir, 'loaded.txt');
  return new Promise<{ code: number | null; stdout: string; loaded: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', RECORDER, '--import', 'tsx', path.join(REPO, 'src/cli/main.ts'), ...args], {
      cwd: REPO,
      env: { ...process.env, NETWARDEN_LOADED_MODULES: list },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    let stdout = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, loaded: existsSync(list) ? readFileSync(list, 'utf8') : '' }));
    child.stdin.end(stdin);
  }).finally(() => rmSync(dir, { recursive: true, force: true }));
}

describe('netwarden CLI: the offline tools load no cluster or capture code', function () {
  this.timeout(120_000);

  it('drops parse parses without libpcap, the Kubernetes client or prom-client', async () => {
    const r = await netwarden(['drops', 'parse'], 'x: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 PROTO=UDP SPT=1 DPT=2\n');
    expect(r.code).to.equal(0);
    expect(r.stdout).to.contain('"src":"10.0.0.1"');
    expect(r.loaded).to.match(/kernellog/); // the list names the modules loaded
    expect(r.loaded).not.to.match(LIBPCAP);
    expect(r.loaded).not.to.match(KUBERNETES_CLIENT);
    expect(r.loaded).not.to.match(PROM_CLIENT);
  });

  it('validate checks manifests without libpcap or the Kubernetes client', async () => {
    const r = await netwarden(['validate', '-f', path.join(REPO, 'examples')]);
    expect(r.loaded).to.match(/validate/);
    expect(r.loaded).not.to.match(LIBPCAP);
    expect(r.loaded).not.to.match(KUBERNETES_CLIENT);
  });

  it('pcap summary runs without libpcap or the Kubernetes client', async () => {
    const r = await netwarden(['pcap', 'summary', path.join(REPO, 'test/fixtures/no-such.pcap')]);
    expect(r.code).not.to.equal(0); // the file is missing; the command ran up to opening it
    expect(r.loaded).to.match(/pcap\/summary/);
    expect(r.loaded).not.to.match(LIBPCAP);
    expect(r.loaded).not.to.match(KUBERNETES_CLIENT);
  });

  it('sees both where they are loaded: the agent', async () => {
    const r = await netwarden(['agent', '--node-name', 'n1', '--kubeconfig', path.join(REPO, 'test/fixtures/no-such-kubeconfig')]);
    expect(r.code).not.to.equal(0);
    expect(r.loaded).to.match(LIBPCAP);
    expect(r.loaded).to.match(KUBERNETES_CLIENT);
  });
});
