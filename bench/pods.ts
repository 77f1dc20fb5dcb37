// Realistic Pods for memory benchmarks: what a Deployment's Pod looks like on a real cluster (two
// containers with env, probes, resources and mounts; an owner reference to its ReplicaSet; status
// with conditions and container statuses), written by server-side apply with two field managers
// (the "controller" for the object, the "kubelet" for its status), so the apiserver records
// managedFields as it does for real Pods. Sent over one keep-alive pool, a few dozen at a time.
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeHttp } from '../src/reconcilers/droptail/kubehttp.js';

const APPLY = 'application/apply-patch+yaml';

function container(name: string, port: number, i: number): Record<string, unknown> {
  const probe = (path: string) => ({ httpGet: { path, port, scheme: 'HTTP' }, initialDelaySeconds: 5, periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 });
  return {
    name,
    image: `registry.example.com/team/${name}:1.${i % 7}.3`,
    imagePullPolicy: 'IfNotPresent',
    ports: [{ name: 'http', containerPort: port, protocol: 'TCP' }],
    env: [
      { name: 'APP_ENV', value: 'production' },
      { name: 'LOG_LEVEL', value: 'info' },
      { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://otel-collector.observability.svc:4317' },
      { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
      { name: 'POD_IP', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'status.podIP' } } },
      { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db-credentials', key: 'password' } } },
    ],
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
    livenessProbe: probe('/healthz'),
    readinessProbe: probe('/readyz'),
    volumeMounts: [
      { name: 'config', mountPath: '/etc/app', readOnly: true },
      { name: 'kube-api-access', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true },
    ],
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    securityContext: { allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: { drop: ['ALL'] } },
  };
}

/** The Pod as its ReplicaSet controller would create it. */
function podManifest(namespace: string, name: string, nodeName: string, i: number): Record<string, unknown> {
  const app = `app-${i % 50}`;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace,
      labels: { app, 'pod-template-hash': '5d8f9c7b6d', 'app.kubernetes.io/name': app, 'app.kubernetes.io/part-of': 'shop' },
      annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-11-30T10:00:00Z', 'prometheus.io/scrape': 'true', 'prometheus.io/port': '8080' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${app}-5d8f9c7b6d`, uid: `00000000-0000-4000-8000-${String(i % 50).padStart(12, '0')}`, controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      nodeName,
      containers: [container('server', 8080, i), container('sidecar', 9090, i)],
      volumes: [
        { name: 'config', configMap: { name: `${app}-config`, defaultMode: 420 } },
        { name: 'kube-api-access', projected: { defaultMode: 420, sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }, { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } }] } },
      ],
      automountServiceAccountToken: false,
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
    },
  };
}

/** The status a kubelet reports for it: Running, its IP, conditions and both containers' states. */
function podStatus(namespace: string, name: string, nodeIP: string, podIP: string, i: number): Record<string, unknown> {
  const at = '2026-11-30T10:00:05Z';
  const state = (c: string) => ({
    name: c,
    ready: true,
    started: true,
    restartCount: 0,
    image: `registry.example.com/team/${c}:1.${i % 7}.3`,
    imageID: `registry.example.com/team/${c}@sha256:${'ab12'.repeat(16)}`,
    containerID: `containerd://${(i * 7919).toString(16).padStart(8, '0')}${'cd34'.repeat(14)}`,
    state: { running: { startedAt: at } },
  });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace },
    status: {
      phase: 'Running',
      hostIP: nodeIP,
      hostIPs: [{ ip: nodeIP }],
      podIP,
      podIPs: [{ ip: podIP }],
      startTime: at,
      qosClass: 'Burstable',
      conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: at })),
      containerStatuses: [state('server'), state('sidecar')],
    },
  };
}

/** 10.128.0.0/9 by index: distinct, never a loopback or test-network address. */
export function benchPodIP(i: number): string {
  return `10.${128 + ((i >> 16) & 127)}.${(i >> 8) & 255}.${i & 255}`;
}

export interface PodSet {
  namespace: string;
  /** Node names the Pods are spread over, with their InternalIPs. */
  nodes: Array<{ name: string; ip: string }>;
}

/** Applies Pods from..to-1 (object, then status), `concurrency` at a time. */
export async function applyRealisticPods(kc: KubeConfig, set: PodSet, from: number, to: number, concurrency = 24): Promise<void> {
  const http = new KubeHttp(kc, { maxSockets: concurrency });
  let next = from;
  const worker = async () => {
    for (let i = next++; i < to; i = next++) {
      const name = `bench-pod-${i}`;
      const node = set.nodes[i % set.nodes.length]!;
      const base = `/api/v1/namespaces/${set.namespace}/pods/${name}`;
      await http.request('PATCH', `${base}?fieldManager=kube-controller-manager&force=true`, podManifest(set.namespace, name, node.name, i), APPLY);
      await http.request('PATCH', `${base}/status?fieldManager=kubelet&force=true`, podStatus(set.namespace, name, node.ip, benchPodIP(i), i), APPLY);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
