// Runs Netwarden itself against the local control plane: `kubectl apply -k config/` (RBAC for
// real, workloads by server-side dry run since there is no kubelet), then the controller and one
// agent per simulated node as local processes, each with its own ServiceAccount's token so the
// RBAC in config/rbac is what they really run with.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiException, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { COMPILED_CLI_ENV, runtimeOf } from '../../bench/build.js';
import { CONTROLLER_AUDIENCE } from '../../src/apis/identity.js';
import { CA_BUNDLE_KEY, CA_CONFIGMAP } from '../../src/apis/certificates.js';
import { trackChild, type ControlPlane } from './controlplane.js';
import { kubeconfigForToken, requestPodBoundToken, requestToken, waitFor } from './fixtures.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SYSTEM_NAMESPACE = 'netwarden-system';

/** Applies config/: CRDs, namespace and RBAC for real; the Deployment and DaemonSet by server-side dry run. */
export async function installConfig(cp: ControlPlane): Promise<void> {
  const real = ['crds', 'config/namespace.yaml', 'config/rbac', 'config/admission'];
  for (const part of real) {
    const args = part.endsWith('.yaml') ? ['apply', '--server-side', '-f', path.join(REPO_ROOT, part)] : ['apply', '--server-side', '-k', path.join(REPO_ROOT, part)];
    await mustKubectl(cp, args);
  }
  // The simulated nodes' audit logs live in the control plane's directory, as the agents' --audit-log-dir says.
  await mustKubectl(cp, ['create', 'configmap', 'netwarden-auditforwarder', '-n', SYSTEM_NAMESPACE, `--from-literal=namespace=${SYSTEM_NAMESPACE}`, `--from-literal=auditLogDirs=/var/log/kubernetes/audit,${cp.dir}`, '--dry-run=client', '-o', 'yaml'])
    .then((yaml) => mustKubectl(cp, ['apply', '--server-side', '--force-conflicts', '-f', '-'], yaml));
  const crds = ['droptails', 'packetcaptures', 'auditforwarders'].map((plural) => `crd/${plural}.netwarden.io`);
  await mustKubectl(cp, ['wait', '--for=condition=Established', '--timeout=60s', ...crds]);
  await mustKubectl(cp, ['apply', '--server-side', '--dry-run=server', '-k', path.join(REPO_ROOT, 'config')]);
}

export async function mustKubectl(cp: ControlPlane, args: string[], input?: string): Promise<string> {
  const result = await cp.kubectl(args, input === undefined ? {} : { input });
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${result.code}): ${result.stderr || result.stdout}`);
  return result.stdout;
}

/** A kubeconfig that authenticates as a ServiceAccount of netwarden-system via TokenRequest. */
export async function serviceAccountKubeconfig(cp: ControlPlane, serviceAccount: string): Promise<string> {
  const token = await requestToken(cp.kubeConfig(), SYSTEM_NAMESPACE, serviceAccount);
  const file = path.join(cp.dir, `kubeconfig-${serviceAccount}-${Date.now()}`);
  await kubeconfigForToken(cp, token, file);
  return file;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export interface NetwardenProcess {
  name: string;
  child: ChildProcess;
  metricsPort: number;
  logFile: string;
  /** The process's JSON log lines, parsed. */
  logs(): Record<string, unknown>[];
  kill(signal?: NodeJS.Signals): Promise<void>;
  exited: Promise<number | null>;
}

/** Starts `netwarden <args>` from the sources (tsx), logging to a file in the control plane's directory. */
export async function startNetwarden(cp: ControlPlane, name: string, args: string[], env: NodeJS.ProcessEnv = {}, wrapper: string[] = []): Promise<NetwardenProcess> {
  const metricsPort = await freePort();
  rememberMetricsEndpoint(cp, metricsPort, args);
  const logFile = path.join(cp.dir, `${name}.log`);
  const out = createWriteStream(logFile, { flags: 'a' });
  // Benchmarks set COMPILED_CLI_ENV (bench/build.ts) to measure the compiled CLI, as users run it,
  // with the node flags and environment of its workload in config/ (set by bench/run.ts; none in tests).
  const compiledCli = process.env[COMPILED_CLI_ENV];
  const runtime = runtimeOf(args[0] === 'controller' ? 'controller' : 'agent');
  const entry = [...runtime.nodeArgs, ...(compiledCli ? [compiledCli] : ['--import', 'tsx', path.join(REPO_ROOT, 'src/cli/main.ts')])];
  // A wrapper (setpriv dropping capabilities, ...) runs node in turn.
  const command = [...wrapper, process.execPath, ...entry, ...args, `--metrics-port=${metricsPort}`, '--metrics-address=127.0.0.1'];
  const child = spawn(command[0]!, command.slice(1), {
    cwd: REPO_ROOT,
    // Tests read the processes' info lines (status writes, leadership), whatever the test run logs.
    env: { ...process.env, ...runtime.env, NETWARDEN_LOG_LEVEL: process.env.NETWARDEN_CHILD_LOG_LEVEL ?? 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child);
  child.stdout?.pipe(out, { end: false });
  child.stderr?.pipe(out, { end: false });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const logs = () =>
    readFileSync(logFile, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  const kill = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return { name, child, metricsPort, logFile, logs, kill, exited };
}

/** Ports shared by every Netwarden process of one control plane (agents differ by node IP). */
export interface NetwardenPorts {
  controllerHttps: number;
  agentFiles: number;
}

const portsByCluster = new WeakMap<ControlPlane, Promise<NetwardenPorts>>();

export function netwardenPorts(cp: ControlPlane): Promise<NetwardenPorts> {
  let ports = portsByCluster.get(cp);
  if (!ports) {
    ports = (async () => ({ controllerHttps: await freePort(), agentFiles: await freePort() }))();
    portsByCluster.set(cp, ports);
  }
  return ports;
}

export function controllerUrl(ports: NetwardenPorts): string {
  return `https://127.0.0.1:${ports.controllerHttps}`;
}

export interface CertificateOptions {
  /**
   * Certificates from the test CA through --tls-cert-file/--tls-key-file/--ca-file, as a user who
   * brings their own (cert-manager) runs Netwarden. Default: none, as config/ runs it: the
   * controller keeps its own CA and signs the agents' certificates through the CSR API.
   */
  ownCertificates?: boolean;
  /** A command the agent runs under, e.g. setpriv dropping capabilities. */
  wrapper?: string[];
}

/**
 * The controller with its HTTPS API on 127.0.0.1 and the agents' file API reached at each Node's
 * InternalIP. Later flags in extraArgs override these. As in its Deployment, it requests its
 * tokens for the agents itself (TokenRequest on its ServiceAccount).
 */
export async function startController(cp: ControlPlane, name = 'controller', extraArgs: string[] = [], opts: CertificateOptions = {}): Promise<NetwardenProcess> {
  const kubeconfig = await serviceAccountKubeconfig(cp, 'netwarden-controller');
  const ports = await netwardenPorts(cp);
  const args = ['controller', `--kubeconfig=${kubeconfig}`, `--https-port=${ports.controllerHttps}`, '--https-address=127.0.0.1', `--agent-port=${ports.agentFiles}`];
  if (opts.ownCertificates) {
    const cert = await cp.issueServingCert(`controller-${name}`, ['127.0.0.1', 'localhost', 'netwarden-controller.netwarden-system.svc']);
    args.push(`--tls-cert-file=${cert.certPath}`, `--tls-key-file=${cert.keyPath}`, `--ca-file=${cp.caCertPath}`);
  }
  return startNetwarden(cp, name, [...args, ...extraArgs], { POD_NAMESPACE: SYSTEM_NAMESPACE });
}

/**
 * The CA bundle the controller publishes (ConfigMap netwarden-ca), in a file: what verifies the
 * controller's and the agents' certificates unless a test brought its own. Waits for it.
 */
export async function netwardenCaFile(cp: ControlPlane, timeoutMs = 60_000): Promise<string> {
  const core = cp.kubeConfig().makeApiClient(CoreV1Api);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const bundle = await core
      .readNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, name: CA_CONFIGMAP })
      .then((cm) => cm.data?.[CA_BUNDLE_KEY])
      .catch(() => undefined);
    if (bundle) {
      const file = path.join(cp.dir, `netwarden-ca-${Date.now()}.crt`);
      writeFileSync(file, bundle);
      return file;
    }
    if (Date.now() > deadline) throw new Error(`no ConfigMap ${SYSTEM_NAMESPACE}/${CA_CONFIGMAP} within ${timeoutMs} ms: is a controller running?`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * One agent for a simulated node, with its own state directory. When the Node's InternalIP is a
 * loopback address (127.0.0.10, ...), the agent serves its file API there, where the controller
 * looks for it, with a certificate for that address from the CSR API (or the test CA's, with
 * ownCertificates); other agents serve none (they would all want the same port).
 */
export async function startAgent(cp: ControlPlane, nodeName: string, extraArgs: string[] = [], opts: CertificateOptions = {}): Promise<NetwardenProcess> {
  const kubeconfig = await agentKubeconfig(cp, nodeName);
  const ports = await netwardenPorts(cp);
  const nodeIP = await nodeInternalIP(cp, nodeName);
  const stateDir = path.join(cp.dir, 'nodes', nodeName);
  mkdirSync(stateDir, { recursive: true });
  const tokenFile = await writeAgentControllerToken(cp, nodeName);
  const args = ['agent', `--node-name=${nodeName}`, `--kubeconfig=${kubeconfig}`, `--controller-token-file=${tokenFile}`, `--state-dir=${stateDir}`, `--controller-url=${controllerUrl(ports)}`, `--audit-log-dir=/var/log/kubernetes/audit`, `--audit-log-dir=${cp.dir}`];
  if (opts.ownCertificates) args.push(`--ca-file=${cp.caCertPath}`);
  if (nodeIP?.startsWith('127.')) {
    args.push(`--files-port=${ports.agentFiles}`, `--bind-address=${nodeIP}`);
    if (opts.ownCertificates) {
      const cert = await cp.issueServingCert(`agent-${nodeName}`, [nodeIP]);
      args.push(`--tls-cert-file=${cert.certPath}`, `--tls-key-file=${cert.keyPath}`);
    }
  } else {
    args.push('--no-files-api');
  }
  return startNetwarden(cp, `agent-${nodeName}`, [...args, ...extraArgs], {}, opts.wrapper);
}

/**
 * The DaemonSet pod an agent would run as on this node: no kubelet runs it, but it exists, bound to
 * the node, so the agent's token is pod-bound like a projected one and carries the node's name.
 */
export async function agentPod(cp: ControlPlane, nodeName: string): Promise<V1Pod> {
  const core = cp.kubeConfig().makeApiClient(CoreV1Api);
  const name = `netwarden-agent-${nodeName}`;
  try {
    return await core.readNamespacedPod({ namespace: SYSTEM_NAMESPACE, name });
  } catch (err) {
    if (!(err instanceof ApiException) || err.code !== 404) throw err;
  }
  return core.createNamespacedPod({
    namespace: SYSTEM_NAMESPACE,
    body: {
      metadata: { name, namespace: SYSTEM_NAMESPACE, labels: { 'app.kubernetes.io/name': 'netwarden-agent' } },
      spec: {
        nodeName,
        serviceAccountName: 'netwarden-agent',
        automountServiceAccountToken: false,
        containers: [{ name: 'agent', image: 'ghcr.io/netwarden/netwarden:0.1.0' }],
      },
    },
  });
}

/** A kubeconfig with the agent's pod-bound token for the API server (see agentPod). */
export async function agentKubeconfig(cp: ControlPlane, nodeName: string, audiences?: string[]): Promise<string> {
  const pod = await agentPod(cp, nodeName);
  const token = await requestPodBoundToken(cp.kubeConfig(), pod, audiences);
  const file = path.join(cp.dir, `kubeconfig-agent-${nodeName}-${Date.now()}`);
  await kubeconfigForToken(cp, token, file);
  return file;
}

/** The agent's token for the controller, as its DaemonSet projects it: pod-bound, audience CONTROLLER_AUDIENCE. */
export async function agentControllerToken(cp: ControlPlane, nodeName: string): Promise<string> {
  return requestPodBoundToken(cp.kubeConfig(), await agentPod(cp, nodeName), [CONTROLLER_AUDIENCE]);
}

/** Writes agentControllerToken where the kubelet would mount it; returns the file (--controller-token-file). */
export async function writeAgentControllerToken(cp: ControlPlane, nodeName: string): Promise<string> {
  const dir = path.join(cp.dir, 'tokens', nodeName);
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'controller-token');
  writeFileSync(file, await agentControllerToken(cp, nodeName), { mode: 0o600 });
  return file;
}

async function nodeInternalIP(cp: ControlPlane, nodeName: string): Promise<string | undefined> {
  const node = await cp.kubeConfig().makeApiClient(CoreV1Api).readNode({ name: nodeName });
  return node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
}

/** POSTs a drop batch to the controller's intake as an agent does (its token); resolves with the HTTP status. */
export function postDropBatch(url: string, ca: Buffer, token: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: 'POST', ca, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** How getLocal reaches a process's metrics port: as the process serves it, with a scraper's token. */
interface MetricsEndpoint {
  https: boolean;
  token: (() => Promise<string>) | undefined;
}

const metricsEndpoints = new Map<number, MetricsEndpoint>();

/** As the CLI decides: HTTPS and a token unless --metrics-insecure. */
function rememberMetricsEndpoint(cp: ControlPlane, port: number, args: string[]): void {
  const insecure = args.includes('--metrics-insecure');
  metricsEndpoints.set(port, { https: !insecure, token: insecure ? undefined : () => metricsScraperToken(cp) });
}

/** The ServiceAccount that scrapes Netwarden's metrics in the tests, bound to netwarden-metrics-reader as the README says. */
export const METRICS_SCRAPER = { namespace: 'monitoring', name: 'prometheus' };

const scraperTokens = new WeakMap<ControlPlane, Promise<string>>();

/** A token of METRICS_SCRAPER (created once per control plane). */
export function metricsScraperToken(cp: ControlPlane): Promise<string> {
  let token = scraperTokens.get(cp);
  if (!token) {
    const { namespace, name } = METRICS_SCRAPER;
    const manifests = [
      `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${namespace}}`,
      `apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: ${name}, namespace: ${namespace}}`,
      `apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: ${name}-netwarden-metrics}\n` +
        `roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: netwarden-metrics-reader}\nsubjects: [{kind: ServiceAccount, name: ${name}, namespace: ${namespace}}]`,
    ];
    token = mustKubectl(cp, ['apply', '--server-side', '-f', '-'], manifests.join('\n---\n')).then(() => requestToken(cp.kubeConfig(), namespace, name));
    token.catch(() => scraperTokens.delete(cp));
    scraperTokens.set(cp, token);
  }
  return token;
}

/** GETs a path of a process's metrics/health server, authenticated as METRICS_SCRAPER where the process asks for it. */
export async function getLocal(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  const endpoint = metricsEndpoints.get(port);
  const headers: Record<string, string> = endpoint?.token ? { authorization: `Bearer ${await endpoint.token()}` } : {};
  if (!endpoint?.https) {
    const response = await fetch(`http://127.0.0.1:${port}${urlPath}`, { headers });
    return { status: response.status, body: await response.text() };
  }
  return new Promise((resolve, reject) => {
    // Not verified, as a kubelet probe: the port serves a self-signed stand-in until the process has
    // its certificate (the certificates suites check those), and this reads metrics, not trust.
    const req = https.get({ host: '127.0.0.1', port, path: urlPath, headers, rejectUnauthorized: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

const installed = new WeakMap<ControlPlane, Promise<void>>();

/** installConfig once per control plane, whichever suite asks first. */
export function ensureInstalled(cp: ControlPlane): Promise<void> {
  let done = installed.get(cp);
  if (!done) {
    done = installConfig(cp);
    installed.set(cp, done);
  }
  return done;
}

let lastNodeIP = 9;

/** A distinct loopback address per simulated node (127.0.0.10, .11, ...): agents serve files there. */
export function nextNodeIP(): string {
  lastNodeIP += 1;
  if (lastNodeIP > 254) throw new Error('out of loopback node addresses');
  return `127.0.0.${lastNodeIP}`;
}

/** Whether something accepts TCP connections on 127.0.0.1:port (e.g. a controller already running). */
export function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** The status of a DropTail or AuditForwarder as `kubectl get -o json` shows it (the node summary and totals). */
export async function statusOf(cp: ControlPlane, kind: 'droptail' | 'auditforwarder', name: string): Promise<SummaryStatus> {
  const obj = JSON.parse(await mustKubectl(cp, ['get', kind, name, '-o', 'json'])) as { status?: SummaryStatus };
  return obj.status ?? {};
}

export interface SummaryStatus {
  nodeCount?: number;
  unhealthyNodes?: number;
  problems?: Array<{ node: string; time: string; message: string }>;
  [field: string]: unknown;
}

/** Waits until the summary says `nodes` nodes report and none of them has a problem. */
export function waitNodesHealthy(cp: ControlPlane, kind: 'droptail' | 'auditforwarder', name: string, nodes: number, timeoutMs = 40_000): Promise<SummaryStatus> {
  return waitFor(async () => {
    const s = await statusOf(cp, kind, name);
    return s.nodeCount === nodes && s.unhealthyNodes === 0 ? s : undefined;
  }, { timeoutMs, description: `${kind} ${name}: ${nodes} node(s) reporting, none unhealthy` });
}

/** One sample of an agent's (or the controller's) /metrics, by metric name and exact labels; undefined when absent. */
export async function metricValue(port: number, metric: string, labels: Record<string, string>): Promise<number | undefined> {
  const body = (await getLocal(port, '/metrics')).body;
  for (const line of body.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    const close = line.lastIndexOf('} ');
    const found = Object.fromEntries([...line.slice(metric.length + 1, close).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(line.slice(close + 2));
  }
  return undefined;
}

const viewerTokens = new WeakMap<ControlPlane, Promise<string>>();

/** A token of a user bound to netwarden-viewer (config/rbac/user-roles.yaml), created once per control plane. */
export function viewerToken(cp: ControlPlane): Promise<string> {
  let token = viewerTokens.get(cp);
  if (!token) {
    const manifests = [
      'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: netwarden-e2e-viewer, namespace: default}',
      'apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: netwarden-e2e-viewer}\n' +
        'roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: netwarden-viewer}\nsubjects: [{kind: ServiceAccount, name: netwarden-e2e-viewer, namespace: default}]',
    ];
    token = mustKubectl(cp, ['apply', '--server-side', '-f', '-'], manifests.join('\n---\n')).then(() => requestToken(cp.kubeConfig(), 'default', 'netwarden-e2e-viewer'));
    token.catch(() => viewerTokens.delete(cp));
    viewerTokens.set(cp, token);
  }
  return token;
}

/** GET /droptail/<name>/nodes (or /auditforwarder/...) on the controller as a netwarden-viewer: every node's last report. */
export async function controllerNodeReports<R = Record<string, unknown>>(cp: ControlPlane, kind: 'droptail' | 'auditforwarder', name: string): Promise<Array<{ node: string; receivedAt: string; stale: boolean; report: R }>> {
  const [ports, caFile, token] = await Promise.all([netwardenPorts(cp), netwardenCaFile(cp), viewerToken(cp)]);
  const url = `${controllerUrl(ports)}/${kind}/${encodeURIComponent(name)}/nodes`;
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = https.get(url, { ca: readFileSync(caFile), headers: { authorization: `Bearer ${token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  if (answer.status !== 200) throw new Error(`GET ${url}: ${answer.status} ${answer.body}`);
  return (JSON.parse(answer.body) as { nodes: Array<{ node: string; receivedAt: string; stale: boolean; report: R }> }).nodes;
}
