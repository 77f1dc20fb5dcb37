// A real local Kubernetes control plane (etcd + kube-apiserver, no kubelet, no controller-manager)
// for the e2e tests and the demo. Certificates come from the openssl CLI; binaries from the cache
// that hack/bootstrap.sh fills (NETWARDEN_KUBE_BIN).
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { KubeConfig } from '@kubernetes/client-node';
import YAML from 'yaml';
import { errorMessage, loggerFor } from '../../src/util/log.js';

const log = loggerFor('controlplane');

export interface ControlPlaneOptions {
  /** Directory with kube-apiserver, kubectl and etcd; default: NETWARDEN_KUBE_BIN or the cache. */
  binDir?: string;
  /** --audit-log-maxsize in MB (default 1). */
  auditLogMaxSizeMB?: number;
  /** --audit-log-maxbackup (default 10). */
  auditLogMaxBackups?: number;
  /** --audit-log-compress (default false). */
  auditLogCompress?: boolean;
  /**
   * --audit-log-path (default <temp dir>/audit/audit.log). Elsewhere, its directory is the caller's:
   * created here if missing, never removed by stop().
   */
  auditLogPath?: string;
  /** Extra kube-apiserver flags, appended last so they win. */
  extraApiServerArgs?: string[];
  /** Budget for each component to become ready (default 90 s). */
  startTimeoutMs?: number;
  /**
   * Address kube-apiserver binds to and advertises (default 127.0.0.1). A real node needs another:
   * pods cannot reach the host's loopback. Off loopback, the "kubernetes" Service gets Endpoints
   * and the apiserver holds a client certificate for the kubelets (logs, exec).
   */
  listenAddress?: string;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface KubectlOptions {
  input?: string;
  /** Another kubeconfig (e.g. a ServiceAccount token's); default: the admin one. */
  kubeconfig?: string;
  timeoutMs?: number;
}

export interface ServingCert {
  certPath: string;
  keyPath: string;
}

export interface ControlPlane {
  dir: string;
  server: string;
  port: number;
  kubeconfigPath: string;
  caCertPath: string;
  caKeyPath: string;
  adminCertPath: string;
  adminKeyPath: string;
  auditLogPath: string;
  /** The ServiceAccount token signing key (kube-controller-manager's token controller needs it). */
  saKeyPath: string;
  binDir: string;
  /** Milliseconds the last start (PKI + etcd + apiserver) took. */
  startupMs: number;
  kubeConfig(): KubeConfig;
  kubectl(args: string[], opts?: KubectlOptions): Promise<ExecResult>;
  issueServingCert(name: string, hosts: string[]): Promise<ServingCert>;
  /** A client certificate from the cluster CA; subject like /O=system:nodes/CN=system:node:n1. */
  issueClientCert(name: string, subject: string): Promise<ServingCert>;
  stopApiServer(): Promise<void>;
  startApiServer(): Promise<void>;
  restartApiServer(): Promise<void>;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Process-exit cleanup: every child and temp resource is released even when the run dies.

const children = new Set<ChildProcess>();
const cleanups = new Set<() => void>();
let handlersInstalled = false;

/** Registers a synchronous cleanup run at process exit; returns its unregister function. */
export function registerExitCleanup(fn: () => void): () => void {
  installExitHandlers();
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

function runExitCleanups(): void {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    try {
      fn();
    } catch {
      // best effort while exiting
    }
  }
}

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', runExitCleanups);
  // The monitor variant observes without swallowing the error, so Node still crashes as usual.
  process.on('uncaughtExceptionMonitor', runExitCleanups);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      runExitCleanups();
      // Only decide the exit when nobody else (e.g. the operator's graceful shutdown) listens.
      if (process.listenerCount(signal) === 1) process.exit(128 + (os.constants.signals[signal] ?? 0));
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Small process helpers.

/** Runs a command to completion, capturing output (never throws on a non-zero exit). */
export function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    installExitHandlers();
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    children.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', (e) => {
      children.delete(child);
      if (timer) clearTimeout(timer);
      reject(new Error(`${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      children.delete(child);
      if (timer) clearTimeout(timer);
      const stderr = Buffer.concat(err).toString() + (signal ? `\n(killed by ${signal})` : '');
      resolve({ code: code ?? 128, stdout: Buffer.concat(out).toString(), stderr });
    });
    child.stdin.on('error', () => undefined); // the child may exit before reading its input
    child.stdin.end(opts.input ?? '');
  });
}

/** Like run() but throws with the command's stderr when it fails. */
async function runOk(cmd: string, args: string[], input?: string): Promise<string> {
  const r = await run(cmd, args, { input, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** A long-running child whose stdout+stderr go to a log file. */
export interface Daemon {
  name: string;
  child: ChildProcess;
  logPath: string;
  exited: Promise<number | null>;
  exitCode(): number | null | undefined;
}

export function startDaemon(name: string, bin: string, args: string[], logPath: string): Daemon {
  installExitHandlers();
  const fd = openSync(logPath, 'a');
  const child = spawn(bin, args, { stdio: ['ignore', fd, fd] });
  closeSync(fd); // the child holds its own copy
  children.add(child);
  let code: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (c, signal) => {
      children.delete(child);
      code = c ?? (signal ? 128 : null);
      resolve(code);
    });
    child.on('error', (e) => {
      children.delete(child);
      code = 127;
      log.error('spawn failed', { component: name, error: e.message });
      resolve(code);
    });
  });
  return { name, child, logPath, exited, exitCode: () => code };
}

/** Stops a daemon: SIGTERM, then SIGKILL after the grace period. */
export async function stopDaemon(d: Daemon, graceMs = 10_000): Promise<void> {
  if (d.exitCode() !== undefined) return;
  d.child.kill('SIGTERM');
  const timer = setTimeout(() => d.child.kill('SIGKILL'), graceMs);
  await d.exited;
  clearTimeout(timer);
}

/** The last lines of a log file, for startup errors. */
export function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(no log: ${errorMessage(err)})`;
  }
}

// ---------------------------------------------------------------------------------------------
// Binaries, ports and HTTPS probing.

const kubeBinaries = ['kube-apiserver', 'kubectl', 'etcd'];

function hasBinaries(dir: string): boolean {
  return kubeBinaries.every((b) => existsSync(path.join(dir, b)));
}

/** NETWARDEN_KUBE_BIN, else the newest complete kube-* directory in the netwarden cache. */
export function findKubeBinDir(): string {
  const fromEnv = process.env.NETWARDEN_KUBE_BIN;
  if (fromEnv) {
    if (!hasBinaries(fromEnv)) throw new Error(`NETWARDEN_KUBE_BIN=${fromEnv} lacks one of ${kubeBinaries.join(', ')}`);
    return fromEnv;
  }
  const roots = [
    process.env.NETWARDEN_CACHE,
    process.env.XDG_CACHE_HOME && path.join(process.env.XDG_CACHE_HOME, 'netwarden'),
    path.join(os.homedir(), '.cache', 'netwarden'),
  ].filter((r): r is string => !!r && existsSync(r));
  const candidates = roots
    .flatMap((root) => readdirSync(root).filter((n) => n.startsWith('kube-')).map((n) => path.join(root, n)))
    .filter(hasBinaries)
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (!candidates[0]) throw new Error('no kube binaries: set NETWARDEN_KUBE_BIN or run hack/bootstrap.sh');
  return candidates[0];
}

/** n distinct free loopback ports (held open together so they cannot repeat). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<net.Server>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

/** GET over mutual TLS; resolves with status and body, rejects on connection errors. */
function httpsGet(url: string, tls: TlsFiles): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ...tls, agent: false, timeout: 3_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Polls url until it answers 200, failing early (with the log tail) if the daemon dies. */
async function waitHealthy(d: Daemon, url: string, tls: TlsFiles, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (d.exitCode() !== undefined) {
      throw new Error(`${d.name} exited with ${d.exitCode()} during startup; log ${d.logPath}:\n${tail(d.logPath)}`);
    }
    try {
      const r = await httpsGet(url, tls);
      if (r.status === 200) return;
      last = `HTTP ${r.status}: ${r.body.slice(0, 2000)}`;
    } catch (err) {
      last = errorMessage(err);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${d.name} not ready at ${url} after ${timeoutMs} ms (${last}); log ${d.logPath}:\n${tail(d.logPath)}`);
}

// ---------------------------------------------------------------------------------------------
// PKI with the openssl CLI.

interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  saKey: string;
  saPub: string;
  kubeletClientCert: string;
  kubeletClientKey: string;
}

async function genRsaKey(keyPath: string): Promise<void> {
  await runOk('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', keyPath]);
}

async function createCa(dir: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, 'ca.crt');
  const key = path.join(dir, 'ca.key');
  await genRsaKey(key);
  await runOk('openssl', ['req', '-x509', '-new', '-key', key, '-sha256', '-days', '3650', '-subj', '/CN=netwarden-test-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', cert]);
  return { cert, key };
}

/** subjectAltName value: IPs as IP:, the rest as DNS:. */
function sanList(hosts: string[]): string {
  return hosts.map((h) => (net.isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
}

interface LeafSpec {
  name: string;
  subject: string;
  hosts?: string[];
  usage: 'server' | 'client' | 'both';
}

/** A key and a certificate signed by the CA, written as <name>.key / <name>.crt. */
async function issueLeaf(dir: string, ca: { cert: string; key: string }, spec: LeafSpec): Promise<ServingCert> {
  const keyPath = path.join(dir, `${spec.name}.key`);
  const certPath = path.join(dir, `${spec.name}.crt`);
  const extPath = path.join(dir, `${spec.name}.ext`);
  const eku = { server: 'serverAuth', client: 'clientAuth', both: 'serverAuth,clientAuth' }[spec.usage];
  const ext = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', `extendedKeyUsage=${eku}`];
  if (spec.hosts?.length) ext.push(`subjectAltName=${sanList(spec.hosts)}`);
  await writeFile(extPath, ext.join('\n') + '\n');
  await genRsaKey(keyPath);
  const csr = await runOk('openssl', ['req', '-new', '-key', keyPath, '-subj', spec.subject]);
  // A random serial of our own: -CAcreateserial shares one ca.srl file, and two certificates issued
  // at once (realnode.ts issues the kubelet's client and serving ones together) raced on it.
  const serial = `0x${randomBytes(16).toString('hex').replace(/^[89a-f]/, '1')}`;
  await runOk('openssl', ['x509', '-req', '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', serial, '-sha256', '-days', '825',
    '-extfile', extPath, '-out', certPath], csr);
  return { certPath, keyPath };
}

async function createPki(dir: string, listenAddress: string): Promise<Pki> {
  await mkdir(dir, { recursive: true });
  const ca = await createCa(dir);
  const saKey = path.join(dir, 'sa.key');
  const saPub = path.join(dir, 'sa.pub');
  const [serving, admin, , kubeletClient] = await Promise.all([
    // One serving cert for etcd and the apiserver; clientAuth too, as the apiserver's etcd client cert.
    issueLeaf(dir, ca, {
      name: 'serving', subject: '/CN=kube-apiserver', usage: 'both',
      hosts: [...new Set(['127.0.0.1', listenAddress]), 'localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc',
        'kubernetes.default.svc.cluster.local', '10.96.0.1'],
    }),
    issueLeaf(dir, ca, { name: 'admin', subject: '/O=system:masters/CN=admin', usage: 'client' }),
    genRsaKey(saKey).then(() => runOk('openssl', ['pkey', '-in', saKey, '-pubout', '-out', saPub])),
    // The apiserver's identity towards kubelets (logs, exec); only a real node asks for it.
    listenAddress === '127.0.0.1' ? undefined
      : issueLeaf(dir, ca, { name: 'apiserver-kubelet-client', subject: '/O=system:masters/CN=kube-apiserver-kubelet-client', usage: 'client' }),
  ]);
  return {
    dir, caCert: ca.cert, caKey: ca.key, servingCert: serving.certPath, servingKey: serving.keyPath,
    adminCert: admin.certPath, adminKey: admin.keyPath, saKey, saPub,
    kubeletClientCert: kubeletClient?.certPath ?? '', kubeletClientKey: kubeletClient?.keyPath ?? '',
  };
}

// ---------------------------------------------------------------------------------------------
// etcd, kube-apiserver and the kubeconfig.

interface Ports {
  etcdClient: number;
  etcdPeer: number;
  apiserver: number;
}

function etcdArgs(dir: string, pki: Pki, ports: Ports): string[] {
  const client = `https://127.0.0.1:${ports.etcdClient}`;
  const peer = `http://127.0.0.1:${ports.etcdPeer}`;
  return [
    '--name=netwarden', `--data-dir=${path.join(dir, 'etcd')}`,
    `--listen-client-urls=${client}`, `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`, `--initial-advertise-peer-urls=${peer}`, `--initial-cluster=netwarden=${peer}`,
    `--cert-file=${pki.servingCert}`, `--key-file=${pki.servingKey}`, `--trusted-ca-file=${pki.caCert}`, '--client-cert-auth',
    '--unsafe-no-fsync', // test data only: fsync dominates etcd latency on small machines
    '--log-level=warn',
  ];
}

const auditPolicy = {
  apiVersion: 'audit.k8s.io/v1',
  kind: 'Policy',
  // RequestReceived would double every event without adding anything the tests look at.
  omitStages: ['RequestReceived'],
  rules: [{ level: 'Metadata' }],
};

interface ApiServerConfig {
  dir: string;
  pki: Pki;
  ports: Ports;
  auditLogPath: string;
  auditPolicyPath: string;
  options: ControlPlaneOptions;
}

function apiServerArgs(c: ApiServerConfig): string[] {
  const o = c.options;
  const address = o.listenAddress ?? '127.0.0.1';
  const realNode = address === '127.0.0.1' ? [
    // 127.0.0.1 is not a valid Endpoints IP, so reconciling the "kubernetes" Service would only log errors.
    '--endpoint-reconciler-type=none',
  ] : [
    `--kubelet-client-certificate=${c.pki.kubeletClientCert}`, `--kubelet-client-key=${c.pki.kubeletClientKey}`,
    `--kubelet-certificate-authority=${c.pki.caCert}`, '--kubelet-preferred-address-types=InternalIP',
  ];
  return [
    `--advertise-address=${address}`, `--bind-address=${address}`, `--secure-port=${c.ports.apiserver}`,
    `--tls-cert-file=${c.pki.servingCert}`, `--tls-private-key-file=${c.pki.servingKey}`,
    `--client-ca-file=${c.pki.caCert}`,
    `--etcd-servers=https://127.0.0.1:${c.ports.etcdClient}`, `--etcd-cafile=${c.pki.caCert}`,
    `--etcd-certfile=${c.pki.servingCert}`, `--etcd-keyfile=${c.pki.servingKey}`,
    '--authorization-mode=Node,RBAC',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${c.pki.saPub}`, `--service-account-signing-key-file=${c.pki.saKey}`,
    '--service-cluster-ip-range=10.96.0.0/16',
    ...realNode,
    `--audit-policy-file=${c.auditPolicyPath}`, `--audit-log-path=${c.auditLogPath}`,
    `--audit-log-maxsize=${o.auditLogMaxSizeMB ?? 1}`, `--audit-log-maxbackup=${o.auditLogMaxBackups ?? 10}`,
    `--audit-log-compress=${o.auditLogCompress ?? false}`,
    `--cert-dir=${path.join(c.dir, 'apiserver-certs')}`, // never /var/run/kubernetes
    '--profiling=false', '--v=1',
    ...(o.extraApiServerArgs ?? []),
  ];
}

function adminKubeconfig(server: string, pki: Pki): string {
  return YAML.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'netwarden', cluster: { server, 'certificate-authority': pki.caCert } }],
    users: [{ name: 'admin', user: { 'client-certificate': pki.adminCert, 'client-key': pki.adminKey } }],
    contexts: [{ name: 'admin@netwarden', context: { cluster: 'netwarden', user: 'admin' } }],
    'current-context': 'admin@netwarden',
  });
}

// ---------------------------------------------------------------------------------------------

/** The running control plane; methods are bound so callers may pass them around. */
class LocalControlPlane implements ControlPlane {
  readonly server: string;
  readonly port: number;
  readonly kubeconfigPath: string;
  readonly caCertPath: string;
  readonly caKeyPath: string;
  readonly adminCertPath: string;
  readonly adminKeyPath: string;
  readonly auditLogPath: string;
  readonly saKeyPath: string;
  startupMs = 0;
  private etcd: Daemon | undefined;
  private apiserver: Daemon | undefined;
  private apiserverStarts = 0;
  private stopped = false;

  constructor(
    readonly dir: string,
    readonly binDir: string,
    private readonly pki: Pki,
    private readonly ports: Ports,
    private readonly options: ControlPlaneOptions,
    private readonly unregisterCleanup: () => void,
  ) {
    this.port = ports.apiserver;
    this.server = `https://${options.listenAddress ?? '127.0.0.1'}:${ports.apiserver}`;
    this.kubeconfigPath = path.join(dir, 'admin.kubeconfig');
    this.caCertPath = pki.caCert;
    this.caKeyPath = pki.caKey;
    this.adminCertPath = pki.adminCert;
    this.adminKeyPath = pki.adminKey;
    this.saKeyPath = pki.saKey;
    this.auditLogPath = options.auditLogPath ?? path.join(dir, 'audit', 'audit.log');
  }

  private get tls(): TlsFiles {
    return { ca: readFileSync(this.pki.caCert, 'utf8'), cert: readFileSync(this.pki.adminCert, 'utf8'), key: readFileSync(this.pki.adminKey, 'utf8') };
  }

  private get timeoutMs(): number {
    return this.options.startTimeoutMs ?? 90_000;
  }

  async startEtcd(): Promise<void> {
    const logPath = path.join(this.dir, 'logs', 'etcd.log');
    this.etcd = startDaemon('etcd', path.join(this.binDir, 'etcd'), etcdArgs(this.dir, this.pki, this.ports), logPath);
    const tls = { ...this.tls, cert: readFileSync(this.pki.servingCert, 'utf8'), key: readFileSync(this.pki.servingKey, 'utf8') };
    await waitHealthy(this.etcd, `https://127.0.0.1:${this.ports.etcdClient}/health`, tls, this.timeoutMs);
  }

  async writeStaticFiles(): Promise<void> {
    await mkdir(path.dirname(this.auditLogPath), { recursive: true });
    await writeFile(path.join(this.dir, 'audit-policy.yaml'), YAML.stringify(auditPolicy));
    await writeFile(this.kubeconfigPath, adminKubeconfig(this.server, this.pki), { mode: 0o600 });
  }

  startApiServer = async (): Promise<void> => {
    if (this.apiserver && this.apiserver.exitCode() === undefined) return;
    this.apiserverStarts += 1;
    const logPath = path.join(this.dir, 'logs', `kube-apiserver.${this.apiserverStarts}.log`);
    const args = apiServerArgs({
      dir: this.dir, pki: this.pki, ports: this.ports, auditLogPath: this.auditLogPath,
      auditPolicyPath: path.join(this.dir, 'audit-policy.yaml'), options: this.options,
    });
    this.apiserver = startDaemon('kube-apiserver', path.join(this.binDir, 'kube-apiserver'), args, logPath);
    await waitHealthy(this.apiserver, `${this.server}/readyz`, this.tls, this.timeoutMs);
  };

  stopApiServer = async (): Promise<void> => {
    if (this.apiserver) await stopDaemon(this.apiserver);
  };

  restartApiServer = async (): Promise<void> => {
    const t0 = performance.now();
    await this.stopApiServer();
    await this.startApiServer();
    log.info('kube-apiserver restarted', { ms: Math.round(performance.now() - t0) });
  };

  kubeConfig = (): KubeConfig => {
    const kc = new KubeConfig();
    kc.loadFromFile(this.kubeconfigPath);
    return kc;
  };

  kubectl = (args: string[], opts: KubectlOptions = {}): Promise<ExecResult> => {
    const kubeconfig = opts.kubeconfig ?? this.kubeconfigPath;
    // KUBECONFIG is pinned too so the user's own config can never leak into a test.
    const env = { ...process.env, KUBECONFIG: kubeconfig };
    const cacheDir = `--cache-dir=${path.join(this.dir, 'kubectl-cache')}`;
    return run(path.join(this.binDir, 'kubectl'), [`--kubeconfig=${kubeconfig}`, cacheDir, ...args], {
      input: opts.input, timeoutMs: opts.timeoutMs ?? 60_000, env,
    });
  };

  issueServingCert = async (name: string, hosts: string[]): Promise<ServingCert> => {
    if (!/^[a-z0-9][a-z0-9.-]*$/i.test(name)) throw new Error(`bad certificate name ${JSON.stringify(name)}`);
    const dir = path.join(this.dir, 'pki', 'issued');
    await mkdir(dir, { recursive: true });
    return issueLeaf(dir, { cert: this.pki.caCert, key: this.pki.caKey }, { name, subject: `/CN=${name}`, hosts, usage: 'server' });
  };

  issueClientCert = async (name: string, subject: string): Promise<ServingCert> => {
    if (!/^[a-z0-9][a-z0-9.-]*$/i.test(name)) throw new Error(`bad certificate name ${JSON.stringify(name)}`);
    const dir = path.join(this.dir, 'pki', 'issued');
    await mkdir(dir, { recursive: true });
    return issueLeaf(dir, { cert: this.pki.caCert, key: this.pki.caKey }, { name, subject, usage: 'client' });
  };

  stop = async (): Promise<void> => {
    if (this.stopped) return;
    this.stopped = true;
    await this.stopApiServer();
    if (this.etcd) await stopDaemon(this.etcd);
    this.unregisterCleanup();
    if (process.env.NETWARDEN_KEEP_TMP === '1') log.info('keeping control plane dir', { dir: this.dir });
    else await rm(this.dir, { recursive: true, force: true });
  };
}

/** Starts etcd and kube-apiserver on free loopback ports and waits until /readyz says ok. */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const t0 = performance.now();
  const binDir = options.binDir ?? findKubeBinDir();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'netwarden-cp-'));
  // The temp dir goes with the process even if stop() is never reached.
  const unregister = registerExitCleanup(() => {
    if (process.env.NETWARDEN_KEEP_TMP !== '1') rmSync(dir, { recursive: true, force: true });
  });
  await mkdir(path.join(dir, 'logs'), { recursive: true });
  const [pki, [etcdClient, etcdPeer, apiserver]] = await Promise.all([createPki(path.join(dir, 'pki'), options.listenAddress ?? '127.0.0.1'), freePorts(3)]);
  const t1 = performance.now();
  const cp = new LocalControlPlane(dir, binDir, pki, { etcdClient: etcdClient!, etcdPeer: etcdPeer!, apiserver: apiserver! }, options, unregister);
  try {
    await cp.writeStaticFiles();
    await cp.startEtcd();
    const t2 = performance.now();
    await cp.startApiServer();
    const t3 = performance.now();
    cp.startupMs = Math.round(t3 - t0);
    log.info('control plane ready', {
      server: cp.server, dir, totalMs: cp.startupMs, pkiMs: Math.round(t1 - t0), etcdMs: Math.round(t2 - t1), apiserverMs: Math.round(t3 - t2),
    });
    return cp;
  } catch (err) {
    await cp.stop().catch(() => undefined);
    throw err;
  }
}

/** Parsed audit events from the log and its rotated backups (gzipped ones too), oldest first. */
export async function readAuditEvents(cp: ControlPlane): Promise<Record<string, unknown>[]> {
  const dir = path.dirname(cp.auditLogPath);
  const base = path.basename(cp.auditLogPath, '.log');
  // lumberjack names backups <base>-<timestamp>.log[.gz]; timestamps sort lexically.
  const backups = (await readdir(dir)).filter((n) => n.startsWith(`${base}-`)).sort();
  const files = [...backups.map((n) => path.join(dir, n)), cp.auditLogPath];
  const texts = await Promise.all(files.map(async (f) => {
    const raw = await readFile(f).catch(() => Buffer.alloc(0));
    return (f.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
  }));
  return texts.flatMap((t) => t.split('\n')).filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Adds a child spawned elsewhere to the registry killed at process exit. */
export function trackChild(child: ChildProcess): void {
  installExitHandlers();
  children.add(child);
  child.once('exit', () => children.delete(child));
}
