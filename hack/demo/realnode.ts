// `npm run demo` on the real node (test/env/realnode.ts: kubelet, containerd, kube-proxy and CoreDNS
// on the bridge nwnode0), installed the way test/e2e/install-realnode.test.ts installs it and with
// the same helpers (test/env/install.ts): the image of hack/image/build.sh imported into the node's
// containerd, `kubectl apply -k config/`, the pods turning Ready, examples/, then the drop story
// (an nftables drop between two real pods becomes Events on both) and the capture story (a capture
// of a real pod downloaded with the plugin through `kubectl port-forward`, 403 first without
// `packetcaptures/files`), and the audit story (this node's apiserver audit log shipped through the
// agent pod to a receiver on the node's address). Every command is printed with its output, as the user would see it.
// The node's stop() restores the host, at the end and on Ctrl-C (its exit cleanup).
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { registerExitCleanup, run, type ExecResult } from '../../test/env/controlplane.js';
import { kubeconfigForToken, requestToken, waitFor } from '../../test/env/fixtures.js';
import {
  diagnoseInstall, nodeKubectl, pluginThrough, podDropRules, portForward, probeIn, probePod, rolloutInstall, startRealNodeWithImage,
} from '../../test/env/install.js';
import { REPO_ROOT, SYSTEM_NAMESPACE, waitNodesHealthy } from '../../test/env/netwarden.js';
import { bridgeName, hostAuditLogDir, nodeIP, podSubnet, type RealNode } from '../../test/env/realnode.js';
import { auditLogEvents, AuditReceiver } from '../../test/env/audit-receiver.js';

const NODE = 'demo-node';
const APP = 'shop';
const DROPTAIL = 'shop-firewall';
const DROP_TABLE = 'netwarden_demo_realnode';
// Not the examples' 100 nor the e2e file's 87: the agent runs hostNetwork, so its NFLOG groups are
// this host's, shared with whatever else runs here.
const DROP_GROUP = 3982;
const DROP_PREFIX = 'shop-drop: ';
const CAPTURE = 'web-http';
const AUDIT_FORWARDER = 'to-receiver';
const AUDIT_PROBE = 'audit-hello';

function step(text: string): void {
  process.stdout.write(`\n\x1b[1m==> ${text}\x1b[0m\n`);
}

function say(text: string): void {
  process.stdout.write(`${text.trimEnd()}\n`);
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** Prints `$ kubectl ARGS` and its output; the repository's directories (config, examples) as `config/`. */
async function show(node: RealNode, args: string[], input?: string): Promise<string> {
  say(`$ kubectl ${args.map((a) => (a.startsWith(REPO_ROOT + '/') ? `${path.relative(REPO_ROOT, a)}/` : a)).join(' ')}${input ? ' -f -' : ''}`);
  const out = await nodeKubectl(node, input ? [...args, '-f', '-'] : args, input);
  say(out);
  return out;
}

/** Prints a command and what it printed, stdout and stderr as a terminal shows them. */
function printed(command: string, r: ExecResult): ExecResult {
  say(`$ ${command}`);
  const text = `${r.stdout}${r.stderr}`.trimEnd();
  if (text) say(text);
  return r;
}

export async function realNodeDemo(keep: boolean): Promise<void> {
  const t0 = performance.now();
  const timings: Record<string, string> = {};
  step(`Starting a real node: kubelet, containerd, kube-proxy and CoreDNS on the bridge ${bridgeName} (${podSubnet}); the image built beside it (cached after the first run)`);
  const started = await startRealNodeWithImage(NODE);
  const { node } = started;
  // After the node's exit cleanup (registered when it started), which has restored the host by then.
  process.once('SIGINT', () => {
    process.stdout.write('\nInterrupted: every process of the real node stopped, the host restored\n');
    process.exit(130);
  });
  try {
    timings.node = `${seconds(node.timings.upMs)} to a Ready node (setup ${seconds(node.timings.setupMs)})`;
    timings.image = `build and node side by side ${seconds(started.timings.buildAndNodeMs)}, import ${seconds(started.timings.importMs)}`;
    say(`node ${NODE} Ready in ${seconds(node.timings.upMs)}; image ghcr.io/netwarden/netwarden:0.1.0 imported into its containerd in ${seconds(started.timings.importMs)} (nothing is pulled)`);
    await show(node, ['get', 'nodes', '-o', 'wide']);

    await install(node, timings);
    await examples(node);
    await dropStory(node, timings);
    await captureStory(node, timings);
    await auditStory(node, timings);

    step('Everything at the end');
    await show(node, ['get', 'netwarden', '-A']);
    timings.total = seconds(performance.now() - t0);
    say(`timings: ${Object.entries(timings).map(([k, v]) => `${k} ${v}`).join('; ')}`);

    if (keep) {
      step(`Still running. Explore with: export KUBECONFIG=${node.cp.kubeconfigPath}; kubectl get pods -A -o wide. Ctrl-C stops the node and restores the host.`);
      await new Promise(() => undefined);
    }
  } catch (err) {
    // What the pods of netwarden-system were doing, before the node goes with their logs.
    say(await diagnoseInstall(node).catch(() => ''));
    throw err;
  } finally {
    step('Stopping the real node and restoring the host (processes, mounts, cgroups, nftables tables, sysctls, directories)');
    const problems = await started.stop();
    say(problems.length ? `left on the host: ${problems.join('; ')}` : `host restored in ${seconds(node.timings.downMs ?? 0)}; demo wall time ${seconds(performance.now() - t0)}`);
  }
}

/** `kubectl apply -k config/` and the pods turning Ready, printed each time a pod's state changes. */
async function install(node: RealNode, timings: Record<string, string>): Promise<void> {
  step('Installing as a user does: kubectl apply -k config/');
  await show(node, ['apply', '-k', path.join(REPO_ROOT, 'config')]);
  const t0 = performance.now();
  let done = false;
  const rolled = Promise.all([
    rolloutInstall(node, 'deployment/netwarden-controller', '180s'),
    rolloutInstall(node, 'daemonset/netwarden-agent', '180s'),
  ]).finally(() => { done = true; });
  // What `kubectl get pods -w` would show: the table again whenever a pod's READY or STATUS changes.
  const podsArgs = ['get', 'pods', '-n', SYSTEM_NAMESPACE, '-o', 'wide'];
  let last = '';
  while (!done) {
    const r = await node.cp.kubectl(podsArgs);
    const states = r.stdout.split('\n').slice(1).map((l) => l.split(/\s+/).slice(0, 3).join(' ')).join('\n');
    if (r.code === 0 && states !== last) {
      last = states;
      say(`$ kubectl ${podsArgs.join(' ')}   # after ${seconds(performance.now() - t0)}\n${r.stdout}`);
    }
    await Promise.race([rolled.catch(() => undefined), new Promise((res) => setTimeout(res, 1000))]);
  }
  await rolled;
  timings.installReady = seconds(performance.now() - t0);
  say(`controller (2 replicas) and agent Ready by their /readyz probes ${timings.installReady} after kubectl apply`);
  await show(node, podsArgs);
}

/** examples/ applied; the Ready condition of each, in the words the controller wrote. */
async function examples(node: RealNode): Promise<void> {
  step('Applying examples/ (their namespace and the Secret the AuditForwarder names first)');
  await show(node, ['create', 'namespace', 'storefront']);
  await show(node, ['create', 'secret', 'generic', 'audit-collector', '-n', SYSTEM_NAMESPACE, '--from-literal=token=demo-token']);
  await show(node, ['apply', '-f', path.join(REPO_ROOT, 'examples')]);
  await waitFor(async () => (await nodeKubectl(node, ['get', 'droptail', 'all-nodes', '-o', 'jsonpath={.status.nodeCount}'])) === '1', {
    timeoutMs: 60_000, description: 'the agent reporting on the example DropTail',
  });
  await show(node, ['get', 'netwarden', '-A']);
  const readyMessages = 'jsonpath={range .items[*]}{.kind}/{.metadata.name}: Ready={.status.conditions[?(@.type=="Ready")].status}: {.status.conditions[?(@.type=="Ready")].message}{"\\n"}{end}';
  await show(node, ['get', 'droptails,auditforwarders', '-o', readyMessages]);
  await show(node, ['get', 'packetcaptures', '-n', 'storefront', '-o', readyMessages]);
  say('The example DropTail reads NFLOG group 100 of this host (the agent runs hostNetwork), which other runs on this machine use: it goes; the drop story brings its own group.');
  await show(node, ['delete', 'droptail', 'all-nodes']);
}

/** Two real pods; an nftables rule on the node drops client → web; the Events both pods get. */
async function dropStory(node: RealNode, timings: Record<string, string>): Promise<void> {
  step('DropTail: a firewall rule on the node drops one pod\'s traffic to another, and both pods get Events');
  say(`Two pods of the probe image in namespace ${APP}: web serves HTTP (and UDP echo) on :8080, client runs sleep`);
  await show(node, ['create', 'namespace', APP]);
  await nodeKubectl(node, ['apply', '-f', '-'], YAML.stringify({ apiVersion: 'v1', kind: 'List', items: [
    probePod(APP, 'web', { app: 'web' }, ['serve', ':8080']),
    probePod(APP, 'client', { app: 'client' }, ['86400'], ['/bin/sleep']),
  ] }));
  await show(node, ['-n', APP, 'wait', '--for=condition=Ready', 'pod/web', 'pod/client', '--timeout=120s']);
  await show(node, ['-n', APP, 'get', 'pods', '-o', 'wide']);
  const webIP = (await nodeKubectl(node, ['-n', APP, 'get', 'pod', 'web', '-o', 'jsonpath={.status.podIP}'])).trim();
  const clientIP = (await nodeKubectl(node, ['-n', APP, 'get', 'pod', 'client', '-o', 'jsonpath={.status.podIP}'])).trim();
  const get = ['get', `http://${webIP}:8080/`];
  printed(`kubectl -n ${APP} exec client -- /bin/nwprobe ${get.join(' ')}`, await probeIn(node, APP, 'client', get));

  const dropTail = YAML.stringify({
    apiVersion: 'netwarden.io/v1alpha1', kind: 'DropTail', metadata: { name: DROPTAIL },
    spec: { sources: [{ type: 'nflog', group: DROP_GROUP }], prefixes: [DROP_PREFIX] },
  });
  say(`A DropTail reading NFLOG group ${DROP_GROUP}:\n${dropTail}`);
  await show(node, ['apply'], dropTail);
  await waitNodesHealthy(node.cp, 'droptail', DROPTAIL, 1, 60_000);
  await show(node, ['get', 'droptail', DROPTAIL]);

  say('The node\'s firewall, as a NetworkPolicy engine writes it: client may not reach web, and every refused packet is logged to the group');
  const unregister = registerExitCleanup(() => spawnSync('nft', ['delete', 'table', 'ip', DROP_TABLE], { stdio: 'ignore' }));
  try {
    const added = await run('nft', ['-f', '-'], { input: podDropRules({ table: DROP_TABLE, group: DROP_GROUP, prefix: DROP_PREFIX, fromIP: clientIP, toIP: webIP }) });
    if (added.code !== 0) throw new Error(`nft -f failed: ${added.stderr}`);
    printed(`nft list table ip ${DROP_TABLE}`, await run('nft', ['list', 'table', 'ip', DROP_TABLE]));

    const t0 = performance.now();
    const udp = ['udp', `${webIP}:8080`, 'ping'];
    // Each probe waits for its answer until its timeout (UDP 5 s, TCP 10 s); the Events come meanwhile.
    const probes = Promise.all([probeIn(node, APP, 'client', udp), probeIn(node, APP, 'client', get)]);
    const received = `Packet dropped when receiving traffic from ${APP}/client (IP: ${clientIP}, UDP/8080)`;
    const sent = `Packet dropped when sending traffic to ${APP}/web (IP: ${webIP}, TCP/8080)`;
    const eventsOf = async (pod: string): Promise<string> =>
      nodeKubectl(node, ['-n', APP, 'get', 'events', '--field-selector', `involvedObject.name=${pod},reason=PacketDrop`, '-o', 'jsonpath={range .items[*]}{.message}{"\\n"}{end}']);
    await waitFor(async () => (await eventsOf('web')).includes(received) && (await eventsOf('client')).includes(sent), {
      timeoutMs: 30_000, description: `Events "${received}" on web and "${sent}" on client`,
    });
    timings.dropToEvents = seconds(performance.now() - t0);
    const [udpResult, getResult] = await probes;
    printed(`kubectl -n ${APP} exec client -- /bin/nwprobe ${udp.join(' ')}`, udpResult);
    printed(`kubectl -n ${APP} exec client -- /bin/nwprobe ${get.join(' ')}`, getResult);
    say(`Both Events were there ${timings.dropToEvents} after the first packet, while the client still waited`);
    await show(node, ['-n', APP, 'get', 'events', '--field-selector', 'reason=PacketDrop']);
    const described = await nodeKubectl(node, ['-n', APP, 'describe', 'pod', 'web']);
    say(`$ kubectl -n ${APP} describe pod web   # the Events section\n${described.slice(described.indexOf('Events:'))}`);
    await show(node, ['get', 'droptail', DROPTAIL]);

    say('The rule taken away again: traffic flows');
    printed(`nft delete table ip ${DROP_TABLE}`, await run('nft', ['delete', 'table', 'ip', DROP_TABLE]));
    printed(`kubectl -n ${APP} exec client -- /bin/nwprobe ${get.join(' ')}`, await probeIn(node, APP, 'client', get));
  } finally {
    spawnSync('nft', ['delete', 'table', 'ip', DROP_TABLE], { stdio: 'ignore' });
    unregister();
  }
}

/**
 * A ServiceAccount that may only create PacketCaptures captures the web pod's HTTP, is refused the
 * files (403), is granted `get packetcaptures/files` and downloads them with the plugin through a
 * port-forward to the controller's Service; `kubectl netwarden capture summary` reads the packets.
 */
async function captureStory(node: RealNode, timings: Record<string, string>): Promise<void> {
  step('PacketCapture: a capture of the web pod, downloaded with the plugin through kubectl port-forward');
  const dir = await mkdtemp(path.join(node.dir, 'demo-downloads-'));
  await show(node, ['-n', APP, 'create', 'serviceaccount', 'capture-editor']);
  await show(node, ['-n', APP, 'create', 'rolebinding', 'capture-editor', '--clusterrole=netwarden-packetcapture-editor', `--serviceaccount=${APP}:capture-editor`]);
  const editor = await kubeconfigForToken(node.cp, await requestToken(node.cp.kubeConfig(), APP, 'capture-editor'), path.join(dir, 'kubeconfig-capture-editor'));
  const capture = YAML.stringify({
    apiVersion: 'netwarden.io/v1alpha1', kind: 'PacketCapture', metadata: { name: CAPTURE, namespace: APP },
    spec: { selector: 'app == "web"', filters: [{ protocol: 'TCP', ports: [8080] }], direction: 'both', duration: '10m' },
  });
  say(`As ${APP}:capture-editor, who may create PacketCaptures and nothing more:\n${capture}`);
  const created = printed(`kubectl apply -f -   # as ${APP}:capture-editor`, await node.cp.kubectl(['apply', '-f', '-'], { kubeconfig: editor, input: capture }));
  if (created.code !== 0) throw new Error(`the capture-editor could not create the PacketCapture: ${created.stderr}`);
  const iface = await waitFor(async () => {
    const files = JSON.parse((await nodeKubectl(node, ['-n', APP, 'get', 'packetcapture', CAPTURE, '-o', 'jsonpath={.status.files}'])) || '[]') as { state?: string }[];
    if (!files.some((f) => f.state === 'WaitingForTraffic' || f.state === 'Capturing')) return undefined;
    return (await nodeKubectl(node, ['-n', APP, 'get', 'packetcapture', CAPTURE, '-o', 'jsonpath={.status.targets[0].interface}'])).trim();
  }, { timeoutMs: 60_000, description: 'the capture running on the node, on the pod\'s interface' });
  say(`The agent captures on the web pod's own veth (${iface}), not on the bridge every pod's traffic passes`);

  const webIP = (await nodeKubectl(node, ['-n', APP, 'get', 'pod', 'web', '-o', 'jsonpath={.status.podIP}'])).trim();
  const get = ['get', `http://${webIP}:8080/`];
  for (let i = 0; i < 3; i++) printed(`kubectl -n ${APP} exec client -- /bin/nwprobe ${get.join(' ')}`, await probeIn(node, APP, 'client', get));
  await waitFor(async () => Number(await nodeKubectl(node, ['-n', APP, 'get', 'packetcapture', CAPTURE, '-o', 'jsonpath={.status.files[0].packets}'])) >= 10, {
    timeoutMs: 30_000, description: 'the agent counting the HTTP packets',
  });
  await show(node, ['-n', APP, 'get', 'packetcapture']);

  const forward = await portForward(node, 'svc/netwarden-controller', 443);
  try {
    say(`$ kubectl -n ${SYSTEM_NAMESPACE} port-forward svc/netwarden-controller ${forward.port}:443 &`);
    const plugin = (args: string[]): string => `kubectl netwarden ${args.join(' ')} --controller-url=https://localhost:${forward.port}   # as ${APP}:capture-editor`;
    const out = path.join(dir, 'capture');
    const download = ['capture', 'download', '-n', APP, CAPTURE, '-o', out, '--extract'];
    say('Without `get packetcaptures/files`, the download is refused:');
    printed(plugin(download), await pluginThrough(forward.port, download, editor));
    const t0 = performance.now();
    await show(node, ['-n', APP, 'create', 'rolebinding', 'capture-files-reader', '--clusterrole=netwarden-packetcapture-files-reader', `--serviceaccount=${APP}:capture-editor`]);
    // The controller caches access decisions for a few seconds.
    const got = await waitFor(async () => {
      const r = await pluginThrough(forward.port, download, editor);
      return r.code === 0 ? r : undefined;
    }, { timeoutMs: 30_000, intervalMs: 2000, description: 'the download allowed' });
    printed(plugin(download), got);
    timings.grantToDownload = seconds(performance.now() - t0);
    const files = (await readdir(out, { recursive: true })).filter((f) => f.endsWith('.pcap'));
    say(`extracted: ${files.join(', ')}`);
    const summary = ['capture', 'summary', '-n', APP, CAPTURE];
    const r = await pluginThrough(forward.port, summary, editor);
    const lines = `${r.stdout}${r.stderr}`.trimEnd().split('\n');
    const head = lines.length > 16 ? [...lines.slice(0, 14), `... (${lines.length - 14} more lines)`] : lines;
    printed(plugin(summary), { ...r, stdout: head.join('\n'), stderr: '' });
  } finally {
    forward.stop();
  }
}

/**
 * The AuditForwarder story: the example's forwarder (its collector does not exist here) and one
 * shipping this node's apiserver audit log to a receiver on the node's address, through the agent pod.
 */
async function auditStory(node: RealNode, timings: Record<string, string>): Promise<void> {
  step('AuditForwarder: the example as applied, then this node\'s audit log shipped to a receiver');
  say('The example ships to https://audit-collector.example.com, which does not exist here; its status says so:');
  const ready = 'jsonpath={.status.conditions[?(@.type=="Ready")].reason}: {.status.conditions[?(@.type=="Ready")].message}';
  await show(node, ['get', 'auditforwarder', 'to-collector', '-o', ready]);
  say('');
  const receiver = new AuditReceiver();
  await receiver.start(nodeIP);
  try {
    say(`A webhook receiver listens on ${receiver.url('/audit')} (the node's address: the agent pod is on the host network).`);
    say(`The apiserver of this control-plane node writes its audit log to ${node.cp.auditLogPath}, where the agent reads it.`);
    const forwarder = {
      apiVersion: 'netwarden.io/v1alpha1', kind: 'AuditForwarder', metadata: { name: AUDIT_FORWARDER },
      spec: {
        ...(node.cp.auditLogPath === `${hostAuditLogDir}/audit.log` ? {} : { source: { path: node.cp.auditLogPath } }),
        batch: { maxWait: '2s' },
        sink: { webhook: { url: receiver.url('/audit'), allowInsecure: true } },
      },
    };
    const yaml = YAML.stringify(forwarder);
    say(yaml);
    await show(node, ['apply'], yaml);
    const t0 = Date.now();
    await show(node, ['-n', APP, 'create', 'configmap', AUDIT_PROBE, '--from-literal=hello=audit']);
    const event = await waitFor(async () => (await auditLogEvents(node.cp.auditLogPath)).find((e) => e.verb === 'create' && e.resource === 'configmaps' && e.name === AUDIT_PROBE), {
      timeoutMs: 10_000, description: `the audit event of creating configmap ${AUDIT_PROBE}`,
    });
    await waitFor(() => receiver.has(event.key), { timeoutMs: 60_000, description: 'the audit event at the receiver' });
    const item = receiver.item(event.key)!;
    const user = (item.user as { username?: string } | undefined)?.username;
    say(`The receiver got it ${seconds(receiver.receivedAt(event.key)! - t0)} after the request: ${String(item.verb)} ${String(item.requestURI)} by ${user} (auditID ${String(item.auditID)}), among ${receiver.distinct()} events in ${receiver.batches} batches (the log from before the forwarder too)`);
    timings.auditToReceiver = seconds(receiver.receivedAt(event.key)! - t0);
    await waitFor(async () => Number(await nodeKubectl(node, ['get', 'auditforwarder', AUDIT_FORWARDER, '-o', 'jsonpath={.status.shippedEvents}'])) > 0, {
      timeoutMs: 60_000, description: 'the forwarder\'s status counting what it shipped',
    });
    await show(node, ['get', 'auditforwarders']);
  } finally {
    await receiver.stop();
  }
}
