// The storefront story of PacketCapture, printed step by step for `npm run demo`: a ServiceAccount
// that may only create PacketCaptures captures the logging pod's DNS traffic, is refused the files
// (403), is granted `get packetcaptures/files`, downloads the zip with the kubectl plugin, and reads
// the packets with `kubectl netwarden capture summary`.
//
// Self-contained on the given control plane: its own node (with a real pod network namespace and
// a DNS server) and agent. It starts a controller too unless told one runs already
// (`{ startController: false }`), since two controllers without leader election would both act.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { run, trackChild, type ControlPlane } from '../../test/env/controlplane.js';
import { createNamespace, createNode, createPod, createServiceAccount, kubeconfigForToken, requestToken, waitFor } from '../../test/env/fixtures.js';
import { controllerUrl, ensureInstalled, mustKubectl, netwardenPorts, nextNodeIP, REPO_ROOT, startAgent, startController, type NetwardenProcess } from '../../test/env/netwarden.js';
import { createPodNetwork, DNS_CLIENT, type PodNetwork } from '../../test/env/podnet.js';

const NS = 'storefront';
const CAPTURE = 'pc-storefront-logging-dns';
const NODE = 'storefront-story-node';
const LOGGING_IP = '10.244.78.3';
const DNS_IP = '10.244.78.10';

export interface StoryOptions {
  startController?: boolean;
}

export async function packetCaptureStory(cp: ControlPlane, log: (line: string) => void, opts: StoryOptions = {}): Promise<void> {
  const processes: NetwardenProcess[] = [];
  const pods: PodNetwork[] = [];
  const shell = async (text: string, cmd: () => Promise<{ code: number; stdout: string; stderr: string }>): Promise<{ code: number; stdout: string; stderr: string }> => {
    log(`$ ${text}`);
    const r = await cmd();
    for (const line of `${r.stdout}${r.stderr}`.trimEnd().split('\n')) if (line) log(line);
    return r;
  };
  const plugin = async (args: string[], kubeconfig: string) => {
    const url = controllerUrl(await netwardenPorts(cp));
    return shell(`kubectl netwarden ${args.join(' ')}`, () =>
      run(path.join(REPO_ROOT, 'bin/kubectl-netwarden'), [...args, `--kubeconfig=${kubeconfig}`, `--controller-url=${url}`], {
        timeoutMs: 120_000,
        env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` },
      }),
    );
  };
  let dnsServer: ReturnType<typeof spawn> | undefined;
  try {
    log('==> PacketCapture: the storefront story');
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNode(kc, NODE, { internalIP: nextNodeIP() });
    await createNamespace(kc, NS).catch(() => undefined);
    await createPod(kc, { namespace: NS, name: 'logging-story', nodeName: NODE, labels: { app: 'logging' }, podIP: LOGGING_IP });
    await createPod(kc, { namespace: NS, name: 'dns-story', nodeName: NODE, labels: { app: 'dns' }, podIP: DNS_IP });
    pods.push(await createPodNetwork({ name: 'story-logging', ip: LOGGING_IP }), await createPodNetwork({ name: 'story-dns', ip: DNS_IP }));
    dnsServer = spawn('ip', ['netns', 'exec', 'nw-story-dns', 'dnsmasq', '-k', '-C', '/dev/null', '--no-resolv', '--no-hosts', '--pid-file=', '--user=root', `--listen-address=${DNS_IP}`, '--bind-interfaces', '--address=/storefront.test/10.244.78.99'], { stdio: 'ignore' });
    trackChild(dnsServer);
    if (opts.startController !== false) processes.push(await startController(cp, 'story-controller'));
    processes.push(await startAgent(cp, NODE));
    log(`pods logging-story (${LOGGING_IP}) and dns-story (${DNS_IP}, dnsmasq) on node ${NODE}, wired like Calico pods`);

    log('==> A ServiceAccount that may only create PacketCaptures in storefront');
    await createServiceAccount(kc, NS, 'capture-editor').catch(() => undefined);
    await mustKubectl(cp, ['create', 'rolebinding', 'capture-editor', '-n', NS, '--clusterrole=netwarden-packetcapture-editor', `--serviceaccount=${NS}:capture-editor`]);
    const kubeconfig = await kubeconfigForToken(cp, await requestToken(kc, NS, 'capture-editor'), path.join(cp.dir, 'kubeconfig-story-capture-editor'));
    await shell('kubectl apply -f examples/packetcapture-storefront-logging-dns.yaml   # as storefront:capture-editor', () =>
      cp.kubectl(['apply', '-f', path.join(REPO_ROOT, 'examples/packetcapture-storefront-logging-dns.yaml')], { kubeconfig }),
    );
    await waitFor(async () => (await mustKubectl(cp, ['get', 'packetcapture', CAPTURE, '-n', NS, '-o', `jsonpath={.status.files[?(@.node=="${NODE}")].state}`])) !== '', {
      timeoutMs: 60_000,
      description: 'the agent running the capture',
    });

    log('==> The logging pod resolves names');
    const names = ['cart.storefront.test', 'payments.storefront.test', 'search.storefront.test'];
    await shell(`ip netns exec nw-story-logging python3 dns-client.py ${DNS_IP} ${names.join(' ')}`, () => pods[0]!.exec(['python3', '-c', DNS_CLIENT, DNS_IP, ...names]));
    await waitFor(async () => Number(await mustKubectl(cp, ['get', 'packetcapture', CAPTURE, '-n', NS, '-o', `jsonpath={.status.files[?(@.node=="${NODE}")].packets}`])) >= 2 * names.length, {
      timeoutMs: 30_000,
      description: 'the packets counted',
    });
    await shell(`kubectl get packetcapture -n ${NS}`, () => cp.kubectl(['get', 'packetcapture', '-n', NS]));

    log('==> Downloading without `get packetcaptures/files`: 403');
    const out = path.join(cp.dir, 'story-downloads');
    await plugin(['capture', 'download', '-n', NS, CAPTURE, '-o', out], kubeconfig);

    log('==> Granted netwarden-packetcapture-files-reader, the download works');
    await shell(`kubectl create rolebinding capture-files-reader -n ${NS} --clusterrole=netwarden-packetcapture-files-reader --serviceaccount=${NS}:capture-editor`, () =>
      cp.kubectl(['create', 'rolebinding', 'capture-files-reader', '-n', NS, '--clusterrole=netwarden-packetcapture-files-reader', `--serviceaccount=${NS}:capture-editor`]),
    );
    // Access decisions are cached for a few seconds by the controller.
    await waitFor(async () => (await plugin(['capture', 'download', '-n', NS, CAPTURE, '-o', out, '--extract'], kubeconfig)).code === 0, {
      timeoutMs: 30_000,
      intervalMs: 3000,
      description: 'the download allowed',
    });

    log('==> What was captured');
    await plugin(['capture', 'summary', '-n', NS, CAPTURE], kubeconfig);
  } finally {
    dnsServer?.kill();
    await Promise.all(processes.map((p) => p.kill()));
    for (const pod of pods) await pod.destroy();
  }
}

// `node --import tsx hack/demo/packetcapture.ts` runs the story alone on a fresh control plane.
if (import.meta.url === `file://${process.argv[1]}`) {
  const { startControlPlane } = await import('../../test/env/controlplane.js');
  const cp = await startControlPlane();
  try {
    await packetCaptureStory(cp, (line) => process.stdout.write(`${line}\n`));
  } finally {
    await cp.stop();
  }
}
