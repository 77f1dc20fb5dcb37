// Cluster fixtures for the e2e tests and the demo. Without a kubelet or controller-manager nothing
// fills in status or default ServiceAccounts, so these helpers write what those components would.
import { writeFile } from 'node:fs/promises';
import {
  ApiException,
  CoreV1Api,
  type KubeConfig,
  type V1Namespace,
  type V1Node,
  type V1Pod,
  type V1Service,
  type V1ServiceAccount,
  type V1ServicePort,
} from '@kubernetes/client-node';
import YAML from 'yaml';
import type { ControlPlane } from './controlplane.js';
import { createPodNetwork, type PodNetwork } from './podnet.js';

function core(kc: KubeConfig): CoreV1Api {
  return kc.makeApiClient(CoreV1Api);
}

function isConflict(err: unknown): boolean {
  return err instanceof ApiException && err.code === 409;
}

/**
 * Creates a namespace, or takes the one there (suites share one control plane and some share a
 * namespace name, like storefront), and its "default" ServiceAccount (the controller-manager's
 * job), which Pod admission needs.
 */
export async function createNamespace(kc: KubeConfig, name: string): Promise<V1Namespace> {
  const ns = await core(kc)
    .createNamespace({ body: { metadata: { name } } })
    .catch((err: unknown) => {
      if (isConflict(err)) return core(kc).readNamespace({ name });
      throw err;
    });
  await createServiceAccount(kc, name, 'default').catch((err: unknown) => {
    if (!isConflict(err)) throw err;
  });
  return ns;
}

export interface NodeSpec {
  labels?: Record<string, string>;
  internalIP?: string;
  controlPlane?: boolean;
}

/** Creates a Node and sets its addresses and Ready condition through nodes/status, as a kubelet would. */
export async function createNode(kc: KubeConfig, name: string, spec: NodeSpec = {}): Promise<V1Node> {
  const labels: Record<string, string> = { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', ...spec.labels };
  if (spec.controlPlane) labels['node-role.kubernetes.io/control-plane'] = '';
  const api = core(kc);
  const node = await api.createNode({ body: { metadata: { name, labels } } });
  const now = new Date();
  node.status = {
    ...node.status,
    addresses: [
      ...(spec.internalIP ? [{ type: 'InternalIP', address: spec.internalIP }] : []),
      { type: 'Hostname', address: name },
    ],
    conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'fixture', lastHeartbeatTime: now, lastTransitionTime: now }],
  };
  return api.replaceNodeStatus({ name, body: node });
}

export interface PodSpec {
  namespace: string;
  name: string;
  nodeName: string;
  labels?: Record<string, string>;
  podIP?: string;
  hostNetwork?: boolean;
  containerPort?: number;
  image?: string;
}

/**
 * A Pod with real networking: its network namespace (podnet.ts, named nw-<network>) and the Pod
 * object bound to nodeName with that IP. The caller destroys the network.
 */
export async function createNetworkedPod(kc: KubeConfig, spec: PodSpec & { podIP: string; network: string }): Promise<PodNetwork> {
  const net = await createPodNetwork({ name: spec.network, ip: spec.podIP });
  try {
    await createPod(kc, spec);
  } catch (err) {
    await net.destroy();
    throw err;
  }
  return net;
}

/** Creates a Pod bound to nodeName, then marks it Running with its IP through pods/status. */
export async function createPod(kc: KubeConfig, spec: PodSpec): Promise<V1Pod> {
  const api = core(kc);
  const pod = await api.createNamespacedPod({
    namespace: spec.namespace,
    body: {
      metadata: { name: spec.name, namespace: spec.namespace, labels: spec.labels },
      spec: {
        nodeName: spec.nodeName,
        hostNetwork: spec.hostNetwork,
        automountServiceAccountToken: false,
        containers: [{
          name: 'main',
          image: spec.image ?? 'registry.k8s.io/pause:3.10',
          ports: spec.containerPort ? [{ containerPort: spec.containerPort, protocol: 'TCP' }] : undefined,
        }],
      },
    },
  });
  const now = new Date();
  pod.status = {
    ...pod.status,
    phase: 'Running',
    podIP: spec.podIP,
    podIPs: spec.podIP ? [{ ip: spec.podIP }] : undefined,
    startTime: now,
    conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }],
  };
  return api.replaceNamespacedPodStatus({ namespace: spec.namespace, name: spec.name, body: pod });
}

export interface ServiceSpec {
  namespace: string;
  name: string;
  /** Fixed ClusterIP in 10.96.0.0/16, "None" for headless; allocated by the apiserver when omitted. */
  clusterIP?: string;
  selector?: Record<string, string>;
  ports?: V1ServicePort[];
  labels?: Record<string, string>;
}

/** Creates a ClusterIP Service (default port 80/TCP). No EndpointSlices appear: there is no controller. */
export async function createService(kc: KubeConfig, spec: ServiceSpec): Promise<V1Service> {
  return core(kc).createNamespacedService({
    namespace: spec.namespace,
    body: {
      metadata: { name: spec.name, namespace: spec.namespace, labels: spec.labels },
      spec: {
        type: 'ClusterIP',
        clusterIP: spec.clusterIP,
        selector: spec.selector,
        ports: spec.ports ?? [{ name: 'http', port: 80, protocol: 'TCP' }],
      },
    },
  });
}

export async function createServiceAccount(kc: KubeConfig, namespace: string, name: string): Promise<V1ServiceAccount> {
  return core(kc).createNamespacedServiceAccount({ namespace, body: { metadata: { name, namespace } } });
}

/** A bound ServiceAccount token from the TokenRequest API. */
export async function requestToken(
  kc: KubeConfig, namespace: string, serviceAccount: string, audiences?: string[], expirationSeconds = 3600,
): Promise<string> {
  const tr = await core(kc).createNamespacedServiceAccountToken({
    namespace,
    name: serviceAccount,
    body: { spec: { audiences: audiences ?? [], expirationSeconds } },
  });
  const token = tr.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${serviceAccount} returned no token`);
  return token;
}

/**
 * A token bound to a Pod, as the kubelet projects into a pod's volume: the API server records the
 * pod's node in it, so TokenReview (and admission) see
 * extra["authentication.kubernetes.io/node-name"], which is how Netwarden tells one agent from another.
 */
export async function requestPodBoundToken(
  kc: KubeConfig, pod: V1Pod, audiences?: string[], expirationSeconds = 3600,
): Promise<string> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const serviceAccount = pod.spec?.serviceAccountName ?? 'default';
  const tr = await core(kc).createNamespacedServiceAccountToken({
    namespace,
    name: serviceAccount,
    body: {
      spec: {
        audiences: audiences ?? [],
        expirationSeconds,
        boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name, uid: pod.metadata?.uid },
      },
    },
  });
  const token = tr.status?.token;
  if (!token) throw new Error(`TokenRequest bound to pod ${namespace}/${pod.metadata?.name} returned no token`);
  return token;
}

/** Writes a kubeconfig for the control plane that authenticates with a bearer token; returns path. */
export async function kubeconfigForToken(cp: ControlPlane, token: string, path: string): Promise<string> {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'netwarden', cluster: { server: cp.server, 'certificate-authority': cp.caCertPath } }],
    users: [{ name: 'token', user: { token } }],
    contexts: [{ name: 'token@netwarden', context: { cluster: 'netwarden', user: 'token' } }],
    'current-context': 'token@netwarden',
  };
  await writeFile(path, YAML.stringify(config), { mode: 0o600 });
  return path;
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  description: string;
}

/**
 * Polls fn until it returns a value other than undefined/null/false and resolves with it. Errors
 * thrown by fn count as "not yet"; the timeout error reports the last one and the last value.
 */
export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitOptions): Promise<Exclude<T, undefined | null | false>> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const intervalMs = opts.intervalMs ?? 200;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let lastValue: unknown;
  let attempts = 0;
  for (;;) {
    attempts += 1;
    try {
      const value = await fn();
      if (value !== undefined && value !== null && value !== false) return value as Exclude<T, undefined | null | false>;
      lastValue = value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() + intervalMs > deadline) break;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  const why = lastError !== undefined ? `last error: ${describe(lastError)}` : `last value: ${JSON.stringify(lastValue)}`;
  throw new Error(`timed out after ${timeoutMs} ms (${attempts} attempts) waiting for ${opts.description}; ${why}`);
}

function describe(err: unknown): string {
  if (err instanceof ApiException) return `HTTP ${err.code}: ${typeof err.body === 'string' ? err.body : JSON.stringify(err.body)}`;
  return err instanceof Error ? err.message : String(err);
}
