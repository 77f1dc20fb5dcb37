// A real Kubernetes node for the e2e tests: etcd and kube-apiserver (controlplane.ts, listening on a
// bridge this module creates), kube-controller-manager, kube-scheduler, containerd + runc + the CNI
// bridge plugin, kubelet, kube-proxy (nftables mode) and CoreDNS behind the kube-dns Service. All
// state lives under one temporary directory but the apiserver's audit log, which goes where a
// kubeadm control plane writes it (/var/log/kubernetes/audit); everything the components change on
// the host (sysctls, directories they create at fixed paths, that audit directory, nftables tables,
// cgroups, the bridge, mounts) is recorded
// first and restored by stop(), and by a synchronous exit cleanup when a run dies or is interrupted.
// hack/realnode/setup.sh installs and builds what it needs on first use.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { errorMessage, loggerFor } from '../../src/util/log.js';
import {
  freePorts, registerExitCleanup, run, startControlPlane, startDaemon, stopDaemon, tail, trackChild,
  type ControlPlane, type Daemon,
} from './controlplane.js';

const log = loggerFor('realnode');
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The suite's own bridge and range: outside podnet.ts's 10.244.0.0/16 and the host's networks. */
export const bridgeName = 'nwnode0';
export const nodeIP = '10.247.0.1';
export const podSubnet = '10.247.0.0/24';
export const clusterDNSIP = '10.96.0.10';
const cgroupRootName = 'netwarden-realnode';

/** Sysctls kubelet, kube-proxy or the CNI bridge plugin may write, whatever their config says. */
export const watchedSysctls = [
  'vm/overcommit_memory', 'vm/panic_on_oom', 'kernel/panic', 'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys', 'kernel/keys/root_maxbytes',
  'net/ipv4/ip_forward', 'net/ipv4/conf/all/forwarding', 'net/ipv6/conf/all/forwarding',
  'net/ipv4/conf/all/route_localnet', 'net/bridge/bridge-nf-call-iptables', 'net/bridge/bridge-nf-call-ip6tables',
  'net/netfilter/nf_conntrack_max', 'net/netfilter/nf_conntrack_tcp_timeout_established',
  'net/netfilter/nf_conntrack_tcp_timeout_close_wait',
];

/**
 * Where this control-plane node's kube-apiserver writes its audit log: kubeadm's documented place,
 * and Netwarden's defaults (the agent's --audit-log-dir, the DaemonSet's hostPath, an
 * AuditForwarder's spec.source.path), so that `kubectl apply -k config/` needs no patch to ship it.
 */
export const hostAuditLogDir = '/var/log/kubernetes/audit';

/**
 * Fixed paths kubelet, containerd and libcni create even when told to keep state elsewhere, and the
 * audit log directory above (the parent first: removing it takes the child along).
 */
export const watchedDirs = [
  '/var/lib/kubelet', '/var/log/containers', '/var/log/pods', '/var/lib/cni', '/run/containerd', '/var/run/kubernetes',
  '/etc/cni', '/var/lib/containerd', '/opt/containerd', '/run/runc', '/var/log/kubernetes', hostAuditLogDir,
];

/** What the suite compares before and after: the host as a user sees it. */
export interface HostState {
  sysctls: Record<string, string>;
  dirs: Record<string, boolean>;
  /** `nft list ruleset` per table ("family name" → text). */
  nftTables: Record<string, string>;
  /** iptables-legacy-save and ip6tables-legacy-save: the x_tables rules nft does not list. */
  iptablesLegacy: string;
  links: string[];
  mounts: string[];
  cgroupRoots: string[];
}

function readSysctl(name: string): string | undefined {
  try {
    return readFileSync(path.join('/proc/sys', name), 'utf8').trim();
  } catch {
    return undefined;
  }
}

function nftTables(): Record<string, string> {
  const r = spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' });
  const tables: Record<string, string> = {};
  let current: string | undefined;
  for (const line of (r.stdout ?? '').split('\n')) {
    const m = /^table (\S+) (\S+) \{/.exec(line);
    if (m) current = `${m[1]} ${m[2]}`;
    if (current) tables[current] = (tables[current] ?? '') + line + '\n';
    if (line === '}') current = undefined;
  }
  return tables;
}

function cgroupHierarchies(): string[] {
  return readdirSync('/sys/fs/cgroup').map((n) => path.join('/sys/fs/cgroup', n))
    .filter((d) => existsSync(path.join(d, 'cgroup.procs')));
}

export function captureHostState(): HostState {
  const sysctls: Record<string, string> = {};
  for (const s of watchedSysctls) {
    const v = readSysctl(s);
    if (v !== undefined) sysctls[s] = v;
  }
  const links = (spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout ?? '')
    .split('\n').map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1]).filter((n): n is string => !!n).sort();
  const mounts = (spawnSync('findmnt', ['-rn', '-o', 'TARGET'], { encoding: 'utf8' }).stdout ?? '')
    .split('\n').filter((l) => l).sort();
  return {
    sysctls,
    dirs: Object.fromEntries(watchedDirs.map((d) => [d, existsSync(d)])),
    nftTables: nftTables(),
    iptablesLegacy: ['iptables-legacy-save', 'ip6tables-legacy-save']
      .map((c) => (spawnSync(c, [], { encoding: 'utf8' }).stdout ?? '').split('\n').filter((l) => !l.startsWith('#')).join('\n'))
      .join('\n'),
    links,
    mounts,
    cgroupRoots: cgroupHierarchies().map((h) => path.join(h, cgroupRootName)).filter((d) => existsSync(d)),
  };
}

/** Why this machine cannot run a real node, or undefined when it can. */
export function realNodeUnsupported(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  if (!existsSync('/sys/fs/cgroup/pids/cgroup.procs') && !existsSync('/sys/fs/cgroup/cgroup.controllers')) return 'no cgroups';
  if (spawnSync('go', ['version']).status !== 0) return 'no Go toolchain to build kubelet';
  // kube-proxy runs in nftables mode: its rules live in tables of its own, deleted whole at the end.
  if (spawnSync('nft', ['list', 'tables']).status !== 0) return 'no working nft (kube-proxy runs in nftables mode)';
  return undefined;
}

interface SetupResult {
  kubeBin: string;
  coredns: string;
  images: string;
  ms: number;
}

/** hack/realnode/setup.sh: Debian packages and builds, each skipped when already there. */
async function setup(): Promise<SetupResult> {
  const t0 = performance.now();
  // stderr goes straight to the run's output: a first run builds for minutes and says what.
  const child = spawn('bash', [path.join(repo, 'hack/realnode/setup.sh')], { stdio: ['ignore', 'pipe', 'inherit'] });
  trackChild(child);
  const out: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  const code = await new Promise<number>((resolve) => {
    child.on('error', () => resolve(127));
    child.on('close', (c) => resolve(c ?? 128));
  });
  if (code !== 0) throw new Error(`hack/realnode/setup.sh failed (${code}); its output is above`);
  const vars = Object.fromEntries(Buffer.concat(out).toString().split('\n').map((l) => l.split('=', 2)).filter((kv) => kv.length === 2));
  const need = (k: string): string => {
    const v = vars[k];
    if (!v) throw new Error(`hack/realnode/setup.sh printed no ${k}=`);
    return v;
  };
  return { kubeBin: need('KUBE_BIN'), coredns: need('COREDNS'), images: need('IMAGES'), ms: Math.round(performance.now() - t0) };
}

export interface RealNodeTimings {
  /** Package installs and builds (near zero when cached). */
  setupMs: number;
  /** From the bridge to a Ready node with kube-proxy and DNS answering, images imported. */
  upMs: number;
  /** stop(): processes, mounts, cgroups, rules, sysctls, directories. */
  downMs?: number;
}

export interface RealNode {
  cp: ControlPlane;
  nodeName: string;
  dir: string;
  /** The host before the node started, for the suite's after-check. */
  before: HostState;
  timings: RealNodeTimings;
  /** Resident set size of a component in MiB (kubelet, containerd, kube-proxy, coredns). */
  rssMiB(component: string): number;
  /** Restores the host; what it could not restore is returned (empty when all is back). */
  stop(): Promise<string[]>;
}

function rss(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

function sh(cmd: string, args: string[]): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { code: r.status ?? 128, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

/** PIDs whose command line names our containerd socket: the shims, which outlive containerd by design. */
function shimPids(socket: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (cmd.includes('containerd-shim') && cmd.includes(socket)) pids.push(Number(d));
    } catch {
      // gone
    }
  }
  return pids;
}

/** Every cgroup directory under our root in every hierarchy, deepest first. */
function cgroupDirs(): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: string[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return;
    }
    for (const e of entries) walk(path.join(d, e));
    out.push(d);
  };
  for (const h of cgroupHierarchies()) {
    const root = path.join(h, cgroupRootName);
    if (existsSync(root)) walk(root);
  }
  return out;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Synchronous host restore, shared by stop() and the exit cleanup: kills what runs in our cgroups
 * and the shims, unmounts, removes cgroups, the bridge, kube-proxy's tables, restores sysctls and
 * removes the fixed directories that were not there before. Returns what it could not undo.
 */
function restoreHost(dir: string, socket: string, before: HostState, ownDirs: string[]): string[] {
  const problems: string[] = [];
  // What was undone, logged so that a reader sees what a real node changes on a host.
  const restored: string[] = [];
  // Container processes are in our cgroups; the shims are not (containerd starts them outside).
  for (let attempt = 0; attempt < 20; attempt++) {
    const pids = new Set<number>(shimPids(socket));
    for (const d of cgroupDirs()) {
      try {
        for (const p of readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) if (p) pids.add(Number(p));
      } catch {
        // removed meanwhile
      }
    }
    if (pids.size === 0) break;
    if (attempt === 0) restored.push(`killed ${pids.size} shim/container processes`);
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
    sleepSync(100);
  }
  // Mounts under our directory (rootfs overlays, netns, secrets, shm), deepest first.
  const mountsUnder = (): string[] => sh('findmnt', ['-rn', '-o', 'TARGET']).out.split('\n')
    // Under the fixed paths only when they are ours: a machine's own containerd keeps its mounts.
    .filter((m) => m.startsWith(dir + '/') || ['/run/containerd', '/var/lib/kubelet'].some((d) => !before.dirs[d] && m.startsWith(d + '/')))
    .sort().reverse();
  const mounts = mountsUnder();
  for (const m of mounts) if (sh('umount', [m]).code !== 0) sh('umount', ['-l', m]);
  if (mounts.length) restored.push(`unmounted ${mounts.length} mounts`);
  for (const m of mountsUnder()) problems.push(`mount left: ${m}`);
  const cgroups = cgroupDirs();
  if (cgroups.length) restored.push(`removed ${cgroups.length} cgroup dirs`);
  for (const d of cgroups) {
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        rmdirSync(d);
        break;
      } catch {
        sleepSync(50);
      }
    }
    if (existsSync(d)) problems.push(`cgroup left: ${d}`);
  }
  if (sh('ip', ['link', 'show', bridgeName]).code === 0) {
    sh('ip', ['link', 'del', bridgeName]);
    restored.push(`deleted link ${bridgeName}`);
  }
  // kube-proxy's own tables, and any iptables-nft table a component created that was not there before.
  const ours = /^(ip|ip6|inet) (kube-proxy|filter|nat|mangle|raw|security)$/;
  for (const t of Object.keys(nftTables())) {
    if (!before.nftTables[t] && ours.test(t)) {
      const [family, name] = t.split(' ') as [string, string];
      const r = sh('nft', ['delete', 'table', family, name]);
      if (r.code !== 0) problems.push(`nft table ${t}: ${r.out}`);
      else restored.push(`deleted nft table ${t}`);
    }
  }
  for (const [name, value] of Object.entries(before.sysctls)) {
    const now = readSysctl(name);
    if (now === value) continue;
    try {
      writeFileSync(path.join('/proc/sys', name), value);
      restored.push(`sysctl ${name} ${now} -> ${value}`);
    } catch (err) {
      problems.push(`sysctl ${name}: ${errorMessage(err)}`);
    }
  }
  for (const [d, existed] of Object.entries(before.dirs)) {
    if (!existed && existsSync(d)) {
      rmSync(d, { recursive: true, force: true });
      restored.push(`removed ${d}`);
    }
  }
  // Directories of this run inside host directories that were there before (and stay).
  for (const d of ownDirs) {
    if (existsSync(d)) {
      rmSync(d, { recursive: true, force: true });
      restored.push(`removed ${d}`);
    }
  }
  if (process.env.NETWARDEN_KEEP_TMP !== '1') rmSync(dir, { recursive: true, force: true });
  log.info('host restored', { restored, problems });
  return problems;
}

function containerdConfig(dir: string): string {
  const c = path.join(dir, 'containerd');
  return `version = 2
root = "${c}/root"
state = "${c}/state"
[grpc]
  address = "${c}/containerd.sock"
[ttrpc]
  address = "${c}/containerd.sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "${c}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  # containerd 1.6 defaults to pause:3.6, which is not here: the suite builds 3.10 itself.
  sandbox_image = "registry.k8s.io/pause:3.10"
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  # Without CAP_SYS_RESOURCE, runc cannot write oom_score_adj and every container fails to start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${c}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dir}/cni/net.d"
`;
}

function cniConfig(dir: string): string {
  return JSON.stringify({
    cniVersion: '0.4.0',
    name: 'netwarden-realnode',
    plugins: [
      {
        type: 'bridge', bridge: bridgeName, isGateway: true, ipMasq: false, hairpinMode: true,
        ipam: {
          type: 'host-local', dataDir: path.join(dir, 'cni', 'ipam'),
          ranges: [[{ subnet: podSubnet, rangeStart: '10.247.0.10', rangeEnd: '10.247.0.250', gateway: nodeIP }]],
          routes: [{ dst: '0.0.0.0/0' }],
        },
      },
      { type: 'loopback' },
    ],
  }, null, 2);
}

function kubeconfigFor(cp: ControlPlane, cert: string, key: string): string {
  return YAML.stringify({
    apiVersion: 'v1', kind: 'Config',
    clusters: [{ name: 'local', cluster: { server: cp.server, 'certificate-authority': cp.caCertPath } }],
    users: [{ name: 'u', user: { 'client-certificate': cert, 'client-key': key } }],
    contexts: [{ name: 'c', context: { cluster: 'local', user: 'u' } }],
    'current-context': 'c',
  });
}

function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, daemons: Daemon[], timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const d of daemons) {
      if (d.exitCode() !== undefined) throw new Error(`${d.name} exited with ${d.exitCode()} while waiting for ${what}; log ${d.logPath}:\n${tail(d.logPath)}`);
    }
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}; logs: ${daemons.map((d) => `${d.name}:\n${tail(d.logPath, 10)}`).join('\n')}`);
}

/** Starts the whole node; the caller must stop() it (the exit cleanup covers crashes). */
export async function startRealNode(nodeName = 'realnode-1'): Promise<RealNode> {
  const unsupported = realNodeUnsupported();
  if (unsupported) throw new Error(`no real node on this machine: ${unsupported}`);
  const built = await setup();
  // One real node per machine (fixed bridge, range, cgroup root): wait for another run to finish.
  for (let waited = 0; sh('ip', ['link', 'show', bridgeName]).code === 0; waited += 2_000) {
    if (waited === 0) log.info('waiting for another real-node run to end', { bridge: bridgeName });
    if (waited > 600_000) throw new Error(`${bridgeName} still exists after 10 min: another real-node run, or a killed one left it (ip link del ${bridgeName})`);
    await new Promise((r) => setTimeout(r, 2_000));
  }
  const t0 = performance.now();
  const before = captureHostState();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'netwarden-node-'));
  const socket = path.join(dir, 'containerd', 'containerd.sock');
  // A host that has the audit directory already (its own control plane?) keeps its files: this run
  // writes into a subdirectory of its own, removed at the end, and a forwarder names it in spec.source.path.
  const auditDir = before.dirs[hostAuditLogDir] ? path.join(hostAuditLogDir, path.basename(dir)) : hostAuditLogDir;
  const daemons: Daemon[] = [];
  let cp: ControlPlane | undefined;
  let restored = false;
  // Set once the bridge is ours: a run that lost the race for it must not tear down the winner's node.
  let owner = false;
  const restore = (): string[] => {
    if (restored) return [];
    restored = true;
    if (owner) return restoreHost(dir, socket, before, auditDir === hostAuditLogDir ? [] : [auditDir]);
    rmSync(dir, { recursive: true, force: true });
    return [];
  };
  // On a crash or signal controlplane.ts SIGKILLs every child first; this then undoes the rest.
  const unregister = registerExitCleanup(() => void restore());

  const stop = async (): Promise<string[]> => {
    const s0 = performance.now();
    // kubelet first, so that it does not restart what the rest of the teardown kills.
    for (const name of ['kubelet', 'kube-proxy', 'coredns', 'kube-scheduler', 'kube-controller-manager']) {
      const d = daemons.find((x) => x.name === name);
      if (d) await stopDaemon(d, 5_000);
    }
    const containerd = daemons.find((x) => x.name === 'containerd');
    if (containerd) await stopDaemon(containerd, 5_000);
    await cp?.stop();
    const problems = restore();
    unregister();
    node.timings.downMs = Math.round(performance.now() - s0);
    log.info('real node stopped', { downMs: node.timings.downMs, problems });
    return problems;
  };
  const node: RealNode = {
    get cp(): ControlPlane {
      if (!cp) throw new Error('control plane not started');
      return cp;
    },
    nodeName, dir, before,
    timings: { setupMs: built.ms, upMs: 0 },
    rssMiB: (component) => rss(daemons.find((d) => d.name === component)?.child.pid),
    stop,
  };

  try {
    for (const sub of ['logs', 'containerd', 'cni/net.d', 'cni/ipam', 'kubelet/root', 'kubelet/pki', 'pod-logs', 'pki']) {
      await mkdir(path.join(dir, sub), { recursive: true });
    }
    // The bridge carries the apiserver's and kubelet's address: pods reach neither on loopback.
    for (const args of [['link', 'add', bridgeName, 'type', 'bridge'], ['addr', 'add', `${nodeIP}/24`, 'dev', bridgeName], ['link', 'set', bridgeName, 'up']]) {
      const r = sh('ip', args);
      if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.out}`);
      owner = true;
    }
    // cgroup v1: kubelet's cgroupRoot must exist in every hierarchy.
    for (const h of cgroupHierarchies()) await mkdir(path.join(h, cgroupRootName), { recursive: true });

    await mkdir(auditDir, { recursive: true, mode: 0o700 });
    cp = await startControlPlane({ binDir: built.kubeBin, listenAddress: nodeIP, auditLogPath: path.join(auditDir, 'audit.log') });
    const bin = (name: string): string => path.join(built.kubeBin, name);
    const logFile = (name: string): string => path.join(dir, 'logs', `${name}.log`);
    const start = (name: string, cmd: string, args: string[]): Daemon => {
      const d = startDaemon(name, cmd, args, logFile(name));
      daemons.push(d);
      return d;
    };
    const [kcmPort, schedPort, kubeletPort, kubeletHealthz, proxyHealthz, proxyMetrics, dnsHealth, dnsReady] = await freePorts(8) as
      [number, number, number, number, number, number, number, number];
    const pkiDir = path.join(dir, 'pki');
    const [kubeletClient, kubeletServing] = await Promise.all([
      cp.issueClientCert(`kubelet-${nodeName}`, `/O=system:nodes/CN=system:node:${nodeName}`),
      cp.issueServingCert(`kubelet-serving-${nodeName}`, [nodeIP, nodeName]),
    ]);
    const kubeletKubeconfig = path.join(pkiDir, 'kubelet.kubeconfig');
    await writeFile(kubeletKubeconfig, kubeconfigFor(cp, kubeletClient.certPath, kubeletClient.keyPath), { mode: 0o600 });
    const admin = cp.kubeconfigPath;
    const caKey = cp.caKeyPath;

    // The CSR API signs with the cluster CA: Netwarden's agents get their certificates that way.
    start('kube-controller-manager', bin('kube-controller-manager'), [
      `--kubeconfig=${admin}`, `--authentication-kubeconfig=${admin}`, `--authorization-kubeconfig=${admin}`,
      '--bind-address=127.0.0.1', `--secure-port=${kcmPort}`, '--leader-elect=false',
      `--service-account-private-key-file=${cp.saKeyPath}`, `--root-ca-file=${cp.caCertPath}`, '--use-service-account-credentials=true',
      `--cluster-signing-cert-file=${cp.caCertPath}`, `--cluster-signing-key-file=${caKey}`,
      '--controllers=*,-nodeipam', `--cert-dir=${path.join(dir, 'kcm-certs')}`, '--v=1',
    ]);
    start('kube-scheduler', bin('kube-scheduler'), [
      `--kubeconfig=${admin}`, `--authentication-kubeconfig=${admin}`, `--authorization-kubeconfig=${admin}`,
      '--bind-address=127.0.0.1', `--secure-port=${schedPort}`, '--leader-elect=false', '--v=1',
    ]);

    const containerdConf = path.join(dir, 'containerd', 'config.toml');
    await writeFile(containerdConf, containerdConfig(dir));
    await writeFile(path.join(dir, 'cni', 'net.d', '10-netwarden.conflist'), cniConfig(dir));
    const containerd = start('containerd', 'containerd', ['--config', containerdConf]);
    const ctr = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      run('ctr', ['--address', socket, '-n', 'k8s.io', ...args], { timeoutMs: 120_000 });
    await waitFor('containerd', async () => (await ctr(['version'])).code === 0, [containerd]);
    for (const image of ['pause', 'probe']) {
      const r = await ctr(['images', 'import', path.join(built.images, `${image}.tar`)]);
      if (r.code !== 0) throw new Error(`ctr images import ${image}: ${r.stderr}`);
    }

    const kubeletConf = path.join(dir, 'kubelet', 'config.yaml');
    await writeFile(kubeletConf, YAML.stringify({
      apiVersion: 'kubelet.config.k8s.io/v1beta1', kind: 'KubeletConfiguration',
      // This machine has cgroup v1 only; kubelet 1.35 refuses it unless told.
      failCgroupV1: false, cgroupDriver: 'cgroupfs', cgroupRoot: `/${cgroupRootName}`,
      containerRuntimeEndpoint: `unix://${socket}`,
      address: nodeIP, port: kubeletPort, readOnlyPort: 0, healthzBindAddress: '127.0.0.1', healthzPort: kubeletHealthz,
      tlsCertFile: kubeletServing.certPath, tlsPrivateKeyFile: kubeletServing.keyPath,
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: cp.caCertPath } },
      authorization: { mode: 'Webhook' },
      clusterDomain: 'cluster.local', clusterDNS: [clusterDNSIP], resolvConf: '/etc/resolv.conf',
      failSwapOn: false, makeIPTablesUtilChains: false, podLogsDir: path.join(dir, 'pod-logs'), registerNode: true,
      syncFrequency: '10s', nodeStatusUpdateFrequency: '5s', fileCheckFrequency: '5s',
      // Images come from tars, not a registry: never collect them.
      imageMinimumGCAge: '24h', imageGCHighThresholdPercent: 100,
      evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
      serializeImagePulls: false,
    }));
    const kubelet = start('kubelet', bin('kubelet'), [
      `--config=${kubeletConf}`, `--kubeconfig=${kubeletKubeconfig}`,
      `--root-dir=${path.join(dir, 'kubelet', 'root')}`, `--cert-dir=${path.join(dir, 'kubelet', 'pki')}`,
      `--hostname-override=${nodeName}`, `--node-ip=${nodeIP}`, '--v=1',
    ]);

    const proxyConf = path.join(dir, 'kube-proxy.yaml');
    await writeFile(proxyConf, YAML.stringify({
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1', kind: 'KubeProxyConfiguration',
      // nftables: kube-proxy keeps everything in its own tables, which the teardown deletes whole.
      mode: 'nftables', clientConnection: { kubeconfig: admin }, hostnameOverride: nodeName,
      clusterCIDR: podSubnet, bindAddress: nodeIP,
      healthzBindAddress: `127.0.0.1:${proxyHealthz}`, metricsBindAddress: `127.0.0.1:${proxyMetrics}`,
      nodePortAddresses: [`${nodeIP}/32`],
      // Pod→Service→pod on one bridge: SNAT makes the reply come back through the host to be un-DNATed.
      masqueradeAll: true,
      // Zero: leave the host's conntrack sysctls alone.
      conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
    }));
    const proxy = start('kube-proxy', bin('kube-proxy'), [`--config=${proxyConf}`, '--v=1']);

    // Cluster DNS: CoreDNS on the node's address, behind the kube-dns Service like in a cluster.
    const corefile = path.join(dir, 'Corefile');
    await writeFile(corefile, `.:53 {
  bind ${nodeIP}
  errors
  health 127.0.0.1:${dnsHealth}
  ready 127.0.0.1:${dnsReady}
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig ${admin}
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
  }
  forward . /etc/resolv.conf
  cache 5
}
`);
    const coredns = start('coredns', built.coredns, ['-conf', corefile]);
    await cp.kubectl(['apply', '-f', '-'], { input: YAML.stringify({
      apiVersion: 'v1', kind: 'List', items: [
        {
          apiVersion: 'v1', kind: 'Service', metadata: { name: 'kube-dns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' } },
          spec: { clusterIP: clusterDNSIP, ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }] },
        },
        {
          apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
          metadata: { name: 'kube-dns-node', namespace: 'kube-system', labels: { 'kubernetes.io/service-name': 'kube-dns' } },
          addressType: 'IPv4', endpoints: [{ addresses: [nodeIP], conditions: { ready: true } }],
          ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }],
        },
      ],
    }) }).then((r) => {
      if (r.code !== 0) throw new Error(`kube-dns Service: ${r.stderr}`);
    });

    const all = [...daemons];
    const ready = async (): Promise<boolean> => {
      const r = await cp!.kubectl(['get', 'node', nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
      return r.stdout.trim() === 'True';
    };
    await waitFor(`node ${nodeName} Ready`, ready, all);
    // The node runs the control plane: labelled as kubeadm's mark-control-plane phase does (the
    // kubelet may not set node-role labels itself), without kubeadm's NoSchedule taint, since
    // the tests' pods run here too. AuditForwarders select nodes by this label by default.
    const labelled = await cp.kubectl(['label', 'node', nodeName, 'node-role.kubernetes.io/control-plane=']);
    if (labelled.code !== 0) throw new Error(`kubectl label node ${nodeName}: ${labelled.stderr}`);
    await waitFor('kube-proxy healthz', () => httpOk(`http://127.0.0.1:${proxyHealthz}/healthz`), [proxy]);
    await waitFor('CoreDNS ready', () => httpOk(`http://127.0.0.1:${dnsReady}/ready`), [coredns]);
    await waitFor('default ServiceAccount', async () => (await cp!.kubectl(['get', 'sa', 'default'])).code === 0, all);
    void kubelet;
    node.timings.upMs = Math.round(performance.now() - t0);
    log.info('real node ready', { node: nodeName, dir, upMs: node.timings.upMs, setupMs: built.ms });
    return node;
  } catch (err) {
    const problems = await stop().catch((e: unknown) => [errorMessage(e)]);
    if (problems.length) log.error('real node teardown after a failed start left things', { problems });
    throw err;
  }
}
