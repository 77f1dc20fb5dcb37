// Netwarden installed on the real node (realnode.ts) the way a user installs it, shared by
// test/e2e/install-realnode.test.ts and `npm run demo` (hack/demo/realnode.ts), so that both run
// one implementation: the image of hack/image/build.sh imported into the node's containerd (built
// while the node starts), kubectl on the node with the admin kubeconfig, rollouts that say why they
// failed, the probe image's pods, the drop rule, and the plugin through `kubectl port-forward`.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { freePorts, registerExitCleanup, run, trackChild, type ExecResult } from './controlplane.js';
import { REPO_ROOT, SYSTEM_NAMESPACE } from './netwarden.js';
import { startRealNode, type RealNode } from './realnode.js';

/** The test image of the real node (hack/realnode/probe): `serve`, `get`, `udp`, `lookup`. */
export const PROBE_IMAGE = 'localhost/netwarden-probe:test';

/** The hostPath volumes of config/agent/daemonset.yaml (DirectoryOrCreate: the kubelet makes them on the host). */
export const AGENT_HOST_DIRS = ['/var/lib/netwarden', '/var/log/kubernetes/audit', '/var/log/kubernetes', '/var/log/journal', '/run/log/journal'];

export interface InstallTimings {
  /** The image build (cached: a few seconds) and the node's start, side by side. */
  buildAndNodeMs: number;
  /** `ctr images import` of the Netwarden image into the node's containerd. */
  importMs: number;
}

export interface NodeWithImage {
  node: RealNode;
  timings: InstallTimings;
  /** Stops the node (which restores the host) and removes the agent's hostPath directories it made. */
  stop(): Promise<string[]>;
}

/**
 * A real node with the Netwarden image in its containerd under the tag config/ and the chart use
 * (IfNotPresent: nothing is pulled). The image is built while the node starts: they share nothing.
 * When the build fails after the node started, the node is stopped before the error is thrown.
 */
export async function startRealNodeWithImage(nodeName?: string): Promise<NodeWithImage> {
  const t0 = performance.now();
  const [built, started] = await Promise.allSettled([
    run('bash', [path.join(REPO_ROOT, 'hack/image/build.sh')], { timeoutMs: 30 * 60_000 }),
    startRealNode(nodeName),
  ]);
  if (started.status === 'rejected') throw started.reason;
  const node = started.value;
  // Looked at once the node is ours (startRealNode waits for another run's node to go, and its
  // agent's directories with it); removed at the end, also when the run dies: a checkpoint left in
  // /var/lib/netwarden would be resumed by the next run's agent. Registered after the node's own
  // restore, so on an interrupted run it runs after it, when no agent container can make them again.
  const createdDirs = AGENT_HOST_DIRS.filter((d) => !existsSync(d));
  const removeDirs = (): void => {
    for (const d of createdDirs) rmSync(d, { recursive: true, force: true });
  };
  const unregister = registerExitCleanup(removeDirs);
  const stop = async (): Promise<string[]> => {
    const problems = await node.stop();
    removeDirs();
    unregister();
    return problems;
  };
  try {
    if (built.status === 'rejected') throw built.reason;
    if (built.value.code !== 0) throw new Error(`hack/image/build.sh failed (${built.value.code}):\n${built.value.stderr.trim().slice(-4000)}`);
    const buildAndNodeMs = Math.round(performance.now() - t0);
    const tars = Object.fromEntries(built.value.stdout.trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
    const t1 = performance.now();
    const imported = await run('ctr', ['--address', path.join(node.dir, 'containerd', 'containerd.sock'), '-n', 'k8s.io', 'images', 'import', tars.image!], { timeoutMs: 300_000 });
    if (imported.code !== 0) throw new Error(`ctr images import: ${imported.stderr}`);
    return { node, timings: { buildAndNodeMs, importMs: Math.round(performance.now() - t1) }, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** kubectl on the node as admin; throws with its stderr on a non-zero exit. */
export async function nodeKubectl(node: RealNode, args: string[], input?: string): Promise<string> {
  const r = await node.cp.kubectl(args, { input, timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Why netwarden-system's pods are not Ready: their states, the namespace's last Events and the pods' last log lines. */
export async function diagnoseInstall(node: RealNode): Promise<string> {
  const k = (args: string[]): Promise<ExecResult> => node.cp.kubectl(['-n', SYSTEM_NAMESPACE, ...args]);
  const parts = [(await k(['get', 'pods', '-o', 'wide'])).stdout, (await k(['get', 'events', '--sort-by=.lastTimestamp'])).stdout.split('\n').slice(-25).join('\n')];
  for (const p of (await k(['get', 'pods', '-o', 'jsonpath={.items[*].metadata.name}'])).stdout.trim().split(/\s+/).filter(Boolean)) {
    const l = await k(['logs', p, '--tail=15']);
    const prev = await k(['logs', p, '--previous', '--tail=15']);
    parts.push(`--- ${p}\n${l.stdout}${l.stderr}${prev.code === 0 ? `--- previous\n${prev.stdout}` : ''}`);
  }
  return parts.join('\n');
}

/** `kubectl rollout status` in netwarden-system; a failure carries diagnoseInstall(). */
export async function rolloutInstall(node: RealNode, what: string, timeout: string): Promise<void> {
  const r = await node.cp.kubectl(['-n', SYSTEM_NAMESPACE, 'rollout', 'status', what, `--timeout=${timeout}`], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`${what} not rolled out: ${r.stderr}\n${await diagnoseInstall(node)}`);
}

/**
 * A plain pod of the probe image: with no command it serves HTTP (and UDP echo) on :8080 and is
 * Ready when it answers; with one (e.g. /bin/sleep) it is a client to `kubectl exec` in.
 */
export function probePod(namespace: string, name: string, labels: Record<string, string>, args: string[], command?: string[]): Record<string, unknown> {
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, labels },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [{
        name, image: PROBE_IMAGE, imagePullPolicy: 'Never', args, ...(command ? { command } : {}),
        ...(command ? {} : { ports: [{ name: 'http', containerPort: 8080 }], readinessProbe: { httpGet: { path: '/', port: 'http' }, periodSeconds: 1 } }),
      }],
    },
  };
}

/** `/bin/nwprobe ARGS` in a pod, by `kubectl exec`. */
export function probeIn(node: RealNode, namespace: string, pod: string, args: string[]): Promise<ExecResult> {
  return node.cp.kubectl(['-n', namespace, 'exec', pod, '--', '/bin/nwprobe', ...args], { timeoutMs: 60_000 });
}

/**
 * The node's own drop rule, as a NetworkPolicy engine writes it: log to an NFLOG group, then drop,
 * for TCP and UDP from one pod to another. Pod to pod on one bridge: br_netfilter passes the frames
 * through the ip family's forward hook.
 */
export function podDropRules(opts: { table: string; group: number; prefix: string; fromIP: string; toIP: string }): string {
  return [
    `table ip ${opts.table} {`,
    '  chain forward {',
    '    type filter hook forward priority -5; policy accept;',
    `    ip saddr ${opts.fromIP} ip daddr ${opts.toIP} meta l4proto { tcp, udp } log prefix "${opts.prefix}" group ${opts.group} drop`,
    '  }',
    '}',
  ].join('\n');
}

/** `kubectl netwarden ARGS` (bin/kubectl-netwarden) against a controller on https://localhost:port. */
export function pluginThrough(port: number, args: string[], kubeconfig: string): Promise<ExecResult> {
  return run(path.join(REPO_ROOT, 'bin/kubectl-netwarden'), [...args, `--kubeconfig=${kubeconfig}`, `--controller-url=https://localhost:${port}`], {
    timeoutMs: 120_000, env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` },
  });
}

export interface PortForward {
  port: number;
  child: ChildProcess;
  stop(): void;
}

/**
 * `kubectl port-forward -n netwarden-system TARGET PORT:REMOTE` on a free local port (other runs
 * share this machine: not the default 8443), resolved once kubectl says it listens.
 */
export async function portForward(node: RealNode, target: string, remote: number): Promise<PortForward> {
  const [port] = await freePorts(1) as [number];
  const child = spawn(path.join(node.cp.binDir, 'kubectl'), ['--kubeconfig', node.cp.kubeconfigPath, '-n', SYSTEM_NAMESPACE, 'port-forward', target, `${port}:${remote}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  try {
    await waitForForward(child);
  } catch (err) {
    child.kill();
    throw err;
  }
  return { port, child, stop: () => child.kill() };
}

/** Resolves once kubectl port-forward says it listens. */
export function waitForForward(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`port-forward not listening after 30 s: ${err}`)), 30_000);
    child.stdout?.on('data', (b: Buffer) => {
      if (b.toString().includes('Forwarding from')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on('data', (b: Buffer) => { err += b.toString(); });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`port-forward exited ${code}: ${err}`));
    });
  });
}
