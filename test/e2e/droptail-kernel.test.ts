// The DropTail kernel source end to end: the eBPF program on skb:kfree_skb in the real kernel sees
// packets an nftables `drop` rule without any `log` statement drops between two pod network
// namespaces, the agent sends them with the kernel's reason, and the controller puts Events on
// both pods, counts them by reason and shows them in status. A closed port's drop (NO_SOCKET) is
// reported only once it is selected; a packet an NFLOG rule logs and drops is counted once; an
// agent without CAP_BPF/CAP_PERFMON says so in status while its NFLOG source keeps working.
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { cluster } from './hooks.js';
import { run } from '../env/controlplane.js';
import { createNamespace, createNetworkedPod, createNode, waitFor } from '../env/fixtures.js';
import { addForwardTable, type HostTable, type PodNetwork } from '../env/podnet.js';
import { ensureInstalled, getLocal, metricValue, mustKubectl, nextNodeIP, startAgent, startController, waitNodesHealthy, type NetwardenProcess } from '../env/netwarden.js';

const ns = 'dtk-e2e';
const node = 'dtk-node';
const dropTail = 'dtk';
const table = 'netwarden_dtk_e2e';
const group = 3941;
const webIP = '10.244.76.10';
const clientIP = '10.244.76.11';

async function podEvents(pod: string): Promise<Array<{ message: string; count: number }>> {
  const out = await mustKubectl(cluster(), ['get', 'events', '-n', ns, '--field-selector', `involvedObject.name=${pod}`, '-o', 'json']);
  return (JSON.parse(out) as { items: Array<{ message: string; count?: number }> }).items.map((e) => ({ message: e.message, count: e.count ?? 1 }));
}

async function hasEvent(pod: string, message: string): Promise<boolean> {
  return (await podEvents(pod)).some((e) => e.message === message);
}

/** Python in a pod: n UDP datagrams to host:port (send() may fail with EPERM where a rule drops them). */
function udpScript(host: string, port: number, n: number): string {
  return `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor _ in range(${n}):\n  try: s.sendto(b"q", ("${host}", ${port}))\n  except OSError: pass`;
}

function applyDropTail(name: string, spec: Record<string, unknown>): Promise<string> {
  return mustKubectl(cluster(), ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'netwarden.io/v1alpha1', kind: 'DropTail', metadata: { name }, spec }));
}

describe('DropTail kernel source: the kernel\'s own drops, with reasons, on Events, metrics and status', function () {
  const processes: NetwardenProcess[] = [];
  let controller: NetwardenProcess;
  let agent: NetwardenProcess;
  let web: PodNetwork;
  let client: PodNetwork;
  let hostTable: HostTable | undefined;

  before(async function () {
    if (process.getuid?.() !== 0 || !existsSync('/sys/kernel/btf/vmlinux') || !process.env.NETWARDEN_BPF_OBJECT) {
      // The bootstrap builds the program where the kernel has BTF; without it nothing here can run.
      this.skip();
    }
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNamespace(kc, ns);
    await createNode(kc, node, { internalIP: nextNodeIP(), labels: { 'dtk-e2e': 'yes' } });
    web = await createNetworkedPod(kc, { namespace: ns, name: 'web-1', nodeName: node, podIP: webIP, network: 'dtk-web' });
    client = await createNetworkedPod(kc, { namespace: ns, name: 'client-1', nodeName: node, podIP: clientIP, network: 'dtk-client' });
    // No `log` on the plain drop: only the kernel source can see it. UDP/5353 is logged to NFLOG
    // first (and dropped), for the count-once test.
    hostTable = await addForwardTable(table, [
      `ip saddr ${clientIP} ip daddr ${webIP} udp dport 5353 log prefix "nwdtk-e2e: " group ${group} drop`,
      `ip saddr ${clientIP} ip daddr ${webIP} meta l4proto { tcp, udp } drop`,
    ]);

    controller = await startController(cp, 'controller-droptail-kernel');
    processes.push(controller);
    await applyDropTail(dropTail, { nodeSelector: { 'dtk-e2e': 'yes' }, sources: [{ type: 'kernel' }] });
    agent = await startAgent(cp, node);
    processes.push(agent);
    await waitNodesHealthy(cp, 'droptail', dropTail, 1);
  });

  after(async function () {
    // The program sees the whole host's drops: no DropTail of this test may outlive it.
    await run('kubectl', ['--kubeconfig', cluster().kubeconfigPath, 'delete', 'droptail', dropTail, 'dtk-nocap', '--ignore-not-found']).catch(() => undefined);
    await Promise.all(processes.map((p) => p.kill()));
    await hostTable?.remove();
    await web?.destroy();
    await client?.destroy();
  });

  it('sees TCP and UDP that an nftables drop rule without `log` drops: Events on both pods name NETFILTER_DROP, the metric counts by reason', async function () {
    const sentUdp = await client.exec(['python3', '-c', udpScript(webIP, 53, 3)]);
    expect(sentUdp.code, sentUdp.stderr).to.equal(0);
    const sentTcp = await client.exec(['python3', '-c', `import socket\ntry: socket.create_connection(("${webIP}", 8080), timeout=0.5)\nexcept OSError: pass`]);
    expect(sentTcp.code, sentTcp.stderr).to.equal(0);

    const wanted = [
      ['web-1', `Packet dropped when receiving traffic from ${ns}/client-1 (IP: ${clientIP}, UDP/53): NETFILTER_DROP`],
      ['web-1', `Packet dropped when receiving traffic from ${ns}/client-1 (IP: ${clientIP}, TCP/8080): NETFILTER_DROP`],
      ['client-1', `Packet dropped when sending traffic to ${ns}/web-1 (IP: ${webIP}, UDP/53): NETFILTER_DROP`],
      ['client-1', `Packet dropped when sending traffic to ${ns}/web-1 (IP: ${webIP}, TCP/8080): NETFILTER_DROP`],
    ] as const;
    const started = Date.now();
    await waitFor(async () => (await Promise.all(wanted.map(([pod, text]) => hasEvent(pod, text)))).every(Boolean), { timeoutMs: 15_000, description: 'NETFILTER_DROP Events for UDP/53 and TCP/8080 on both pods' });
    // "Within a couple of seconds": the agent's 1 s window plus the controller's write.
    expect(Date.now() - started, 'ms from the packets to the Events').to.be.lessThan(5_000);
    const udpEvent = (await podEvents('web-1')).find((e) => e.message === wanted[0][1])!;
    expect(udpEvent.count).to.equal(3);

    const labels = { droptail: dropTail, node, protocol: 'UDP', src_namespace: ns, dst_namespace: ns, reason: 'NETFILTER_DROP' };
    expect(await metricValue(controller.metricsPort, 'netwarden_packet_drops_total', labels)).to.equal(3);
    expect(await metricValue(controller.metricsPort, 'netwarden_packet_drops_total', { ...labels, protocol: 'TCP' })).to.be.at.least(1);

    const recent = JSON.parse(await mustKubectl(cluster(), ['get', 'droptail', dropTail, '-o', 'jsonpath={.status.recentDrops}'])) as Array<{ reason?: string; protocol: string; src: { name?: string }; dst: { name?: string } }>;
    const udp = recent.find((d) => d.protocol === 'UDP');
    expect(udp).to.deep.include({ reason: 'NETFILTER_DROP' });
    expect(udp?.src.name).to.equal('client-1');
    expect(udp?.dst.name).to.equal('web-1');
    // The agent's program lost nothing at this rate, and its counters are scraped.
    const body = (await getLocal(agent.metricsPort, '/metrics')).body;
    expect(body).to.match(/netwarden_agent_droptail_kernel_samples_total\{result="submitted"\} [1-9]/);
    expect(body).not.to.match(/netwarden_agent_droptail_kernel_samples_total\{result="lost"\} [1-9]/);
  });

  it('reports a packet to a closed port (NO_SOCKET) only once the DropTail selects that reason', async function () {
    const closedText = `Packet dropped when receiving traffic from ${ns}/web-1 (IP: ${webIP}, UDP/9999): NO_SOCKET`;
    const marker = (port: number) => `Packet dropped when receiving traffic from ${ns}/client-1 (IP: ${clientIP}, UDP/${port}): NETFILTER_DROP`;
    // web → client is not filtered; nothing listens on client:9999, so the client's kernel drops it.
    expect((await web.exec(['python3', '-c', udpScript(clientIP, 9999, 2)])).code).to.equal(0);
    // A NETFILTER_DROP after it: once its Event is there, the NO_SOCKET drop had its chance too.
    await client.exec(['python3', '-c', udpScript(webIP, 7001, 1)]);
    await waitFor(() => hasEvent('web-1', marker(7001)), { timeoutMs: 15_000, description: 'the marker drop after the closed-port packets' });
    expect(await hasEvent('client-1', closedText), 'NO_SOCKET reported while not selected').to.equal(false);

    await applyDropTail(dropTail, { nodeSelector: { 'dtk-e2e': 'yes' }, sources: [{ type: 'kernel', reasons: ['NETFILTER_DROP', 'NO_SOCKET'] }] });
    await waitFor(async () => {
      const report = await mustKubectl(cluster(), ['get', '--raw', `/apis/netwarden.io/v1alpha1/droptails/${dropTail}`]);
      return (JSON.parse(report) as { status?: { observedGeneration?: number }; metadata: { generation: number } }).status?.observedGeneration === JSON.parse(report).metadata.generation;
    }, { timeoutMs: 15_000, description: 'the new spec observed' });
    // The agent restarts the source with the new reasons; keep sending until it is seen.
    await waitFor(async () => {
      await web.exec(['python3', '-c', udpScript(clientIP, 9999, 1)]);
      return hasEvent('client-1', closedText);
    }, { timeoutMs: 20_000, intervalMs: 1_000, description: `the Event "${closedText}" on client-1` });
    expect(await hasEvent('web-1', `Packet dropped when sending traffic to ${ns}/client-1 (IP: ${clientIP}, UDP/9999): NO_SOCKET`)).to.equal(true);
    expect(await metricValue(controller.metricsPort, 'netwarden_packet_drops_total', { droptail: dropTail, reason: 'NO_SOCKET', protocol: 'UDP' })).to.be.at.least(1);
  });

  it('counts a packet that an NFLOG rule logs and drops once, not again as the kernel\'s NETFILTER_DROP', async function () {
    await applyDropTail(dropTail, {
      nodeSelector: { 'dtk-e2e': 'yes' },
      sources: [{ type: 'kernel', reasons: ['NETFILTER_DROP', 'NO_SOCKET'] }, { type: 'nflog', group }],
      prefixes: ['nwdtk-e2e: '],
    });
    await waitFor(async () => {
      const raw = await mustKubectl(cluster(), ['get', 'droptail', dropTail, '-o', 'json']);
      const obj = JSON.parse(raw) as { status?: { observedGeneration?: number; nodeCount?: number; unhealthyNodes?: number }; metadata: { generation: number } };
      return obj.status?.observedGeneration === obj.metadata.generation && obj.status.nodeCount === 1 && obj.status.unhealthyNodes === 0;
    }, { timeoutMs: 20_000, description: 'kernel and nflog sources healthy' });
    // The NFLOG source reads only once its group is bound: send until the logged Event appears.
    const loggedText = `Packet dropped when receiving traffic from ${ns}/client-1 (IP: ${clientIP}, UDP/5353)`;
    await waitFor(async () => {
      await client.exec(['python3', '-c', udpScript(webIP, 5353, 1)]);
      return hasEvent('web-1', loggedText);
    }, { timeoutMs: 20_000, intervalMs: 1_000, description: 'the logged drop of UDP/5353' });
    const countOf = async (text: string) => (await podEvents('web-1')).find((e) => e.message === text)?.count ?? 0;
    const loggedCount = () => countOf(loggedText);
    // Probes sent before the NFLOG group was bound were the kernel's alone, and rightly reported so.
    const kernelText = `${loggedText}: NETFILTER_DROP`;
    // The probes above may still be on their way: start from a count that stays put for 3 s.
    let before = -1;
    await waitFor(async () => {
      const now = await loggedCount();
      const settled = now === before;
      before = now;
      return settled;
    }, { timeoutMs: 20_000, intervalMs: 3_000, description: "the logged Event's count settled" });
    const kernelBefore = await countOf(kernelText);
    const duplicates = async () => (await metricValue(agent.metricsPort, 'netwarden_agent_droptail_kernel_duplicates_total', { droptail: dropTail })) ?? 0;
    const duplicatesBefore = await duplicates();
    await client.exec(['python3', '-c', udpScript(webIP, 5353, 4)]);
    await waitFor(async () => (await loggedCount()) >= before + 4, { timeoutMs: 15_000, description: `the logged Event's count at ${before + 4}` });
    // The kernel's drops of the same packets waited their hold (1 s) and were let go.
    await client.exec(['python3', '-c', udpScript(webIP, 7002, 1)]);
    await waitFor(() => hasEvent('web-1', `Packet dropped when receiving traffic from ${ns}/client-1 (IP: ${clientIP}, UDP/7002): NETFILTER_DROP`), { timeoutMs: 15_000, description: 'a later kernel-only drop' });
    expect(await loggedCount(), 'each logged packet counted once').to.equal(before + 4);
    expect(await countOf(kernelText), 'the logged packets counted again by the kernel source').to.equal(kernelBefore);
    // Counted once per window: the metric may lag its last window by a second.
    await waitFor(async () => (await duplicates()) - duplicatesBefore >= 4, { timeoutMs: 5_000, description: 'the 4 kernel twins counted as duplicates' });
  });

  it('without CAP_BPF and CAP_PERFMON (nor CAP_SYS_ADMIN), the agent says so in status and its NFLOG source keeps working', async function () {
    const cp = cluster();
    const nocapNode = 'dtk-nocap';
    const nocapGroup = group + 1;
    await createNode(cp.kubeConfig(), nocapNode, { internalIP: nextNodeIP(), labels: { 'dtk-nocap': 'yes' } });
    const nocapTable = `${table}_nocap`;
    const nocapRules = await addForwardTable(nocapTable, [`ip saddr ${clientIP} ip daddr ${webIP} udp dport 5454 log prefix "nwdtk-nocap: " group ${nocapGroup} drop`], -6);
    try {
      await applyDropTail('dtk-nocap', { nodeSelector: { 'dtk-nocap': 'yes' }, sources: [{ type: 'kernel' }, { type: 'nflog', group: nocapGroup }], prefixes: ['nwdtk-nocap: '] });
      // As a DaemonSet without BPF and PERFMON in its capabilities would run it.
      const nocap = await startAgent(cp, nocapNode, [], { wrapper: ['setpriv', '--bounding-set=-bpf,-perfmon,-sys_admin'] });
      processes.push(nocap);
      const problem = await waitFor(async () => {
        const raw = await mustKubectl(cp, ['get', 'droptail', 'dtk-nocap', '-o', 'jsonpath={.status.problems}']);
        const list = raw ? (JSON.parse(raw) as Array<{ node: string; message: string }>) : [];
        return list.find((p) => p.node === nocapNode && p.message.startsWith('kernel source unhealthy'));
      }, { timeoutMs: 30_000, description: 'the kernel source problem in status' });
      expect(problem.message).to.match(/lacks CAP_BPF and CAP_PERFMON \(or CAP_SYS_ADMIN on kernels before 5\.8\).*securityContext\.capabilities/);
      expect(await mustKubectl(cp, ['get', 'droptail', 'dtk-nocap', '-o', 'jsonpath={.status.unhealthyNodes}'])).to.equal('1');

      const text = `Packet dropped when receiving traffic from ${ns}/client-1 (IP: ${clientIP}, UDP/5454)`;
      await waitFor(async () => {
        await client.exec(['python3', '-c', udpScript(webIP, 5454, 1)]);
        return hasEvent('web-1', text);
      }, { timeoutMs: 20_000, intervalMs: 1_000, description: 'the NFLOG drop of the agent without BPF capabilities' });
      expect(nocap.child.exitCode, 'the agent is still running').to.equal(null);
    } finally {
      await nocapRules.remove();
    }
  });
});
