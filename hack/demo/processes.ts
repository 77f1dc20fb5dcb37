// `npm run demo` where there is no real node (hack/demo.ts decides): the whole system on a local
// control plane. Starts etcd and kube-apiserver, installs config/, runs the controller and one agent
// per simulated node as local processes with their ServiceAccounts' tokens, applies examples/, and
// shows what a user sees. With `keep` everything runs until Ctrl-C, with a kubeconfig to explore.
import path from 'node:path';
import { startControlPlane, type ControlPlane } from '../../test/env/controlplane.js';
import { createNamespace, createNode, waitFor } from '../../test/env/fixtures.js';
import { ensureInstalled, mustKubectl, REPO_ROOT, startAgent, startController, type NetwardenProcess } from '../../test/env/netwarden.js';
import { auditStory } from './audit.js';
import { dropTailStory } from './droptail.js';
import { packetCaptureStory } from './packetcapture.js';

// Loopback node addresses: each node's agent serves its capture files there.
const NODES = [
  { name: 'demo-control-plane', controlPlane: true, internalIP: '127.0.0.2' },
  { name: 'demo-worker-1', controlPlane: false, internalIP: '127.0.0.3' },
];

function step(text: string): void {
  process.stdout.write(`\n\x1b[1m==> ${text}\x1b[0m\n`);
}

async function show(cp: ControlPlane, args: string[]): Promise<void> {
  process.stdout.write(`$ kubectl ${args.join(' ')}\n${await mustKubectl(cp, args)}`);
}

export async function processDemo(keep: boolean): Promise<void> {
  step('Starting etcd and kube-apiserver on loopback (RBAC, service-account tokens, audit log)');
  const cp = await startControlPlane();
  const processes: NetwardenProcess[] = [];
  const stopAll = async () => {
    await Promise.all(processes.map((p) => p.kill()));
    await cp.stop();
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    process.stdout.write(`control plane ready in ${cp.startupMs} ms at ${cp.server}\n`);

    step('Installing config/ (CRDs, namespace, RBAC; Deployment and DaemonSet by server-side dry run: there is no kubelet)');
    await ensureInstalled(cp);
    await show(cp, ['get', 'crd', '-l', 'app.kubernetes.io/part-of=netwarden']);

    step('Simulated nodes and the storefront namespace');
    const kc = cp.kubeConfig();
    for (const node of NODES) await createNode(kc, node.name, { controlPlane: node.controlPlane, internalIP: node.internalIP });
    await createNamespace(kc, 'storefront');
    // The example AuditForwarder takes its collector's token from this Secret.
    await mustKubectl(cp, ['create', 'secret', 'generic', 'audit-collector', '-n', 'netwarden-system', '--from-literal=token=demo-token']);
    await show(cp, ['get', 'nodes', '-o', 'wide']);

    step('Starting the controller and one agent per node (local processes, ServiceAccount tokens)');
    processes.push(await startController(cp));
    for (const node of NODES) processes.push(await startAgent(cp, node.name));
    for (const p of processes) process.stdout.write(`${p.name}: pid ${p.child.pid}, metrics on 127.0.0.1:${p.metricsPort} (a netwarden-metrics-reader token, HTTPS where it has a certificate), log ${p.logFile}\n`);

    step('Applying examples/');
    await show(cp, ['apply', '-f', path.join(REPO_ROOT, 'examples')]);
    await waitFor(async () => (await mustKubectl(cp, ['get', 'droptail', '-o', 'jsonpath={.items[0].status.nodeCount}'])) === String(NODES.length), {
      timeoutMs: 30_000,
      description: 'every agent reporting on the DropTail',
    });

    step('What a user sees');
    await show(cp, ['get', 'netwarden', '-A']);
    // Why each one is or is not Ready, in the words the controller wrote. On this machine the
    // example's /var/log/kern.log does not exist, and both simulated nodes share one host, so only
    // one agent can hold NFLOG group 100: the DropTail says so.
    const readyMessages = 'jsonpath={range .items[*]}{.kind}/{.metadata.name}: Ready={.status.conditions[?(@.type=="Ready")].status}: {.status.conditions[?(@.type=="Ready")].message}{"\\n"}{end}';
    await show(cp, ['get', 'droptails,auditforwarders', '-o', readyMessages]);
    await show(cp, ['get', 'packetcaptures', '-n', 'storefront', '-o', readyMessages]);
    // The stories below bring their own resources; the examples would compete with them for this
    // host's one NFLOG group 100 and the storefront pods.
    await show(cp, ['delete', '-f', path.join(REPO_ROOT, 'examples')]);

    const log = (line: string) => process.stdout.write(`${line}\n`);
    step('DropTail: a pod whose traffic a node firewall drops, and the Events it gets');
    await dropTailStory(cp, log);
    step('PacketCapture: the storefront story');
    await packetCaptureStory(cp, log, { startController: false });
    step('AuditForwarder: this control plane\'s own audit log, shipped to a receiver');
    await auditStory(cp, log);

    step('Everything at the end');
    await show(cp, ['get', 'netwarden', '-A']);

    if (keep) {
      step(`Still running. Explore with: export KUBECONFIG=${cp.kubeconfigPath}; kubectl get netwarden -A. Ctrl-C stops everything.`);
      await new Promise(() => undefined);
    }
  } finally {
    if (!keep) {
      step('Stopping every process the demo started');
      await stopAll();
    }
  }
}
