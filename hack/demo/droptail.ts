// Demo story for DropTail: a real nftables rule on this host drops a pod's TCP connection to
// another pod and logs it to an NFLOG group; the node agent reads the group, the controller puts
// an Event on both Pods, and `kubectl describe pod` shows it where users look.
//
// Needs the controller running on cp (hack/demo.ts starts it; this story starts one if nothing
// answers on the controller port) and root (network namespaces, nftables). It starts the agent of
// its own node and removes its rule, namespaces and agent at the end; the Events stay.
import { run, type ControlPlane } from '../../test/env/controlplane.js';
import { createNamespace, createNode, createPod, waitFor } from '../../test/env/fixtures.js';
import { isListening, mustKubectl, netwardenPorts, nextNodeIP, startAgent, startController, type NetwardenProcess } from '../../test/env/netwarden.js';
import { createPodNetwork, type PodNetwork } from '../../test/env/podnet.js';

const NS = 'shop';
const NODE = 'demo-droptail-node';
const DROPTAIL = 'shop-firewall';
const TABLE = 'netwarden_demo_droptail';
const GROUP = 3981;
const FRONTEND = { name: 'frontend-5f7', ip: '10.244.60.10' };
const PAYMENTS = { name: 'payments-7c4', ip: '10.244.60.11' };

export async function dropTailStory(cp: ControlPlane, log: (line: string) => void): Promise<void> {
  const show = async (args: string[]) => log(`$ kubectl ${args.join(' ')}\n${(await mustKubectl(cp, args)).trimEnd()}`);
  const started: NetwardenProcess[] = [];
  const networks: PodNetwork[] = [];
  try {
    const kc = cp.kubeConfig();
    if (!(await isListening((await netwardenPorts(cp)).controllerHttps))) started.push(await startController(cp, 'demo-droptail-controller'));

    log(`A node (${NODE}), the ${NS} namespace and two pods with real network namespaces on this host`);
    await createNamespace(kc, NS).catch(() => undefined);
    await createNode(kc, NODE, { internalIP: nextNodeIP(), labels: { 'demo-droptail': 'yes' } });
    for (const pod of [FRONTEND, PAYMENTS]) {
      networks.push(await createPodNetwork({ name: `demo-${pod.name.slice(0, 8)}`, ip: pod.ip }));
      await createPod(kc, { namespace: NS, name: pod.name, nodeName: NODE, podIP: pod.ip, labels: { app: pod.name.split('-')[0]! } });
    }
    started.push(await startAgent(cp, NODE));

    log('A DropTail reading NFLOG group 3981 on that node');
    const dropTail = [
      'apiVersion: netwarden.io/v1alpha1', 'kind: DropTail', `metadata: {name: ${DROPTAIL}}`,
      'spec:', "  nodeSelector: {demo-droptail: 'yes'}", `  sources: [{type: nflog, group: ${GROUP}}]`, "  prefixes: ['shop-drop: ']", '  repeatInterval: 2m',
    ].join('\n');
    log(`$ kubectl apply -f -\n${dropTail}`);
    await mustKubectl(cp, ['apply', '-f', '-'], dropTail);
    await waitFor(async () => (await mustKubectl(cp, ['get', 'droptail', DROPTAIL, '-o', 'jsonpath={.status.nodeCount}/{.status.unhealthyNodes}'])) === '1/0', {
      timeoutMs: 40_000,
      description: 'the agent reading the NFLOG group',
    });

    log('The firewall: frontend may not reach payments on 8443, and every refused packet is logged to the group');
    const rules = [
      `table ip ${TABLE} {`,
      '  chain forward {',
      '    type filter hook forward priority -5; policy accept;',
      `    ip saddr ${FRONTEND.ip} ip daddr ${PAYMENTS.ip} tcp dport 8443 log prefix "shop-drop: " group ${GROUP} drop`,
      '  }',
      '}',
    ].join('\n');
    const added = await run('nft', ['-f', '-'], { input: rules });
    if (added.code !== 0) throw new Error(`nft -f failed: ${added.stderr}`);
    log(`$ nft list table ip ${TABLE}\n${(await run('nft', ['list', 'table', 'ip', TABLE])).stdout.trimEnd()}`);

    log(`frontend tries to connect to payments:8443 (three times)`);
    const connect = `import socket\nfor _ in range(3):\n    try: socket.create_connection(("${PAYMENTS.ip}", 8443), timeout=0.5)\n    except OSError as e: print("connect failed:", e)`;
    log((await networks[0]!.exec(['python3', '-c', connect])).stdout.trimEnd());

    await waitFor(async () => (await mustKubectl(cp, ['get', 'events', '-n', NS, '--field-selector', `involvedObject.name=${PAYMENTS.name}`, '-o', 'name'])).trim() !== '', {
      timeoutMs: 20_000,
      description: 'the drop Event on payments',
    });
    await new Promise((r) => setTimeout(r, 2500)); // the count settles and the status is written (every 2 s at most)
    await show(['get', 'events', '-n', NS, '--field-selector', `involvedObject.name=${PAYMENTS.name}`]);
    await show(['get', 'events', '-n', NS, '--field-selector', `involvedObject.name=${FRONTEND.name}`]);
    const describe = await mustKubectl(cp, ['describe', 'pod', PAYMENTS.name, '-n', NS]);
    log(`$ kubectl describe pod ${PAYMENTS.name} -n ${NS}   (the Events section)\n${describe.slice(describe.indexOf('Events:')).trimEnd()}`);
    await show(['get', 'droptail', DROPTAIL]);
    await waitFor(async () => (await mustKubectl(cp, ['get', 'droptail', DROPTAIL, '-o', 'jsonpath={.status.lastDrop}'])) !== '', { timeoutMs: 15_000, description: 'status.lastDrop' });
    await show(['get', 'droptail', DROPTAIL, '-o', 'jsonpath={.status.lastDrop}']);
  } finally {
    await run('nft', ['delete', 'table', 'ip', TABLE]);
    for (const n of networks) await n.destroy();
    await Promise.all(started.map((p) => p.kill()));
  }
}
