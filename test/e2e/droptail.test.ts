// DropTail, controller side, against the real control plane: drop batches POSTed to the intake
// with an agent ServiceAccount token (as the agent sends them) become Events on the Pods involved,
// metrics and status, with IPs resolved through Pods, Services, Nodes and a reverse DNS server
// (dnsmasq) on loopback. Access is decided by TokenReview + SubjectAccessReview (RBAC).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import https from 'node:https';
import { expect } from 'chai';
import { cluster } from './hooks.js';
import { trackChild } from '../env/controlplane.js';
import { addForwardTable, type HostTable, type PodNetwork } from '../env/podnet.js';
import {
  agentControllerToken, controllerUrl, ensureInstalled, netwardenCaFile, freePort, getLocal, mustKubectl, netwardenPorts, nextNodeIP, startAgent, startController, metricValue, waitNodesHealthy, type NetwardenProcess,
} from '../env/netwarden.js';
import { createNamespace, createNode, createNetworkedPod, createPod, createService, createServiceAccount, requestToken, waitFor } from '../env/fixtures.js';
import type { AggregatedDrop, DropBatch } from '../../src/apis/drops.js';
import { CONTROLLER_AUDIENCE } from '../../src/apis/identity.js';
import type { PacketDrop } from '../../src/apis/drops.js';

const ns = 'dt-intake-e2e';
const node = 'dt-intake-node';
const dropTail = 'dt-intake';
const WEB_IP = '10.244.71.10';
const CLIENT_IP = '10.244.71.11';
const QUIET_IP = '10.244.71.12';
const EXTERNAL_IP = '203.0.113.7';
const EXTERNAL_NAME = 'edge.example.test';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** POSTs to the controller's HTTPS API, trusting the CA it publishes. */
function post(path: string, body: string | Buffer, token?: string): Promise<Answer> {
  const cp = cluster();
  return Promise.all([netwardenPorts(cp), netwardenCaFile(cp)]).then(
    ([ports, caFile]) =>
      new Promise<Answer>((resolve, reject) => {
        const req = https.request(
          `${controllerUrl(ports)}${path}`,
          {
            method: 'POST',
            ca: readFileSync(caFile),
            headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
          },
        );
        req.on('error', reject);
        req.end(body);
      }),
  );
}

function packetDrop(src: string, dst: string, protocol: 'TCP' | 'UDP', dstPort: number, time: Date): PacketDrop {
  return {
    time: time.toISOString(), timeSource: 'nflog', prefix: 'nftables-metal-dropped:', family: 'ipv4',
    inInterface: 'cali1', outInterface: 'cali2', src, dst, protocol, srcPort: 40000, dstPort, length: 60, ttl: 63,
  };
}

function entry(drop: PacketDrop, count: number, firstSeen: Date, lastSeen = firstSeen): AggregatedDrop {
  return { drop, count, firstSeen: firstSeen.toISOString(), lastSeen: lastSeen.toISOString(), source: 'nflog' };
}

let sequence = 0;
function batch(drops: AggregatedDrop[]): DropBatch {
  sequence += 1;
  return { node, sequence, sentAt: new Date().toISOString(), drops, shedSinceLastBatch: 0 };
}

interface EventView {
  name: string;
  message: string;
  reason: string;
  type: string;
  count: number;
  reportingComponent: string;
}

/** What `kubectl get events --field-selector involvedObject.name=POD` shows. */
async function podEvents(pod: string): Promise<EventView[]> {
  const out = await mustKubectl(cluster(), ['get', 'events', '-n', ns, '--field-selector', `involvedObject.name=${pod}`, '-o', 'json']);
  const items = (JSON.parse(out) as { items: Array<Record<string, unknown> & { metadata: { name: string } }> }).items;
  return items.map((e) => ({
    name: e.metadata.name,
    message: String(e.message),
    reason: String(e.reason),
    type: String(e.type),
    count: Number(e.count),
    reportingComponent: String(e.reportingComponent),
  }));
}

async function eventWith(pod: string, text: string, count?: number): Promise<EventView> {
  return waitFor(async () => (await podEvents(pod)).find((e) => e.message.includes(text) && (count === undefined || e.count === count)), {
    timeoutMs: 15_000,
    description: `an Event on ${pod} saying "${text}"${count === undefined ? '' : ` with count ${count}`}`,
  });
}

function jsonpath(path: string): Promise<string> {
  return mustKubectl(cluster(), ['get', 'droptail', dropTail, '-o', `jsonpath={${path}}`]);
}

function startDnsmasq(port: number): ChildProcess {
  const [a, b, c, d] = EXTERNAL_IP.split('.');
  const child = spawn('dnsmasq', [
    '--no-daemon', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', '--pid-file', '--user=root',
    `--ptr-record=${d}.${c}.${b}.${a}.in-addr.arpa,${EXTERNAL_NAME}`,
  ], { stdio: 'ignore' });
  trackChild(child);
  return child;
}

describe('DropTail controller: drop intake, Events, metrics and status', function () {
  let controller: NetwardenProcess;
  let dnsmasq: ChildProcess;
  let agentToken: string;
  let serviceIP: string;
  let nodeIP: string;

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNamespace(kc, ns);
    nodeIP = nextNodeIP();
    await createNode(kc, node, { internalIP: nodeIP, labels: { 'dt-intake': 'yes' } });
    await createPod(kc, { namespace: ns, name: 'web-1', nodeName: node, podIP: WEB_IP });
    await createPod(kc, { namespace: ns, name: 'client-1', nodeName: node, podIP: CLIENT_IP });
    await createPod(kc, { namespace: ns, name: 'quiet-1', nodeName: node, podIP: QUIET_IP });
    const service = await createService(kc, { namespace: ns, name: 'web', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] });
    serviceIP = service.spec?.clusterIP ?? '';
    await createServiceAccount(kc, ns, 'intruder');
    // What the agent on `node` sends: its pod's projected token for the controller.
    agentToken = await agentControllerToken(cp, node);

    const dnsPort = await freePort();
    dnsmasq = startDnsmasq(dnsPort);
    controller = await startController(cp, 'controller-droptail', [`--dns-server=127.0.0.1:${dnsPort}`]);
    await mustKubectl(cp, ['apply', '-f', '-'], [
      'apiVersion: netwarden.io/v1alpha1', 'kind: DropTail', `metadata: {name: ${dropTail}}`,
      "spec: {nodeSelector: {dt-intake: 'yes'}, repeatInterval: 2m, expiration: 10m, recentDropsLimit: 5}",
    ].join('\n'));
    await mustKubectl(cp, ['wait', '--for=condition=Ready', `droptail/${dropTail}`, '--timeout=60s']);
    // Ready once its HTTPS API serves (it waits for a certificate from the CA it loads).
    await waitFor(async () => (await getLocal(controller.metricsPort, '/readyz')).status === 200, { timeoutMs: 60_000, description: 'the controller ready' });
  });

  after(async function () {
    await controller?.kill();
    dnsmasq?.kill();
  });

  describe('who may send drops', function () {
    const path = `/droptail/${dropTail}/drops`;
    const good = () => JSON.stringify(batch([]));

    it('answers 401 without a token and with a token the API server does not know', async function () {
      const none = await post(path, good());
      expect(none.status).to.equal(401);
      expect(JSON.parse(none.body).message).to.match(/no bearer token/);
      expect((await post(path, good(), 'not-a-real-token')).status).to.equal(401);
    });

    it('answers 403 to a ServiceAccount that may not create droptails/drops', async function () {
      // With the controller's audience: authenticated, so what refuses it is RBAC.
      const token = await requestToken(cluster().kubeConfig(), ns, 'intruder', [CONTROLLER_AUDIENCE]);
      const answer = await post(path, good(), token);
      expect(answer.status).to.equal(403);
      expect(JSON.parse(answer.body).message).to.contain(`system:serviceaccount:${ns}:intruder may not create droptails/drops.netwarden.io`);
    });

    it('answers 404 for a DropTail that does not exist, 400 for a malformed batch, 413 for an oversized one', async function () {
      expect((await post('/droptail/no-such-droptail/drops', good(), agentToken)).status).to.equal(404);

      const now = new Date();
      const badAddress = batch([entry(packetDrop(CLIENT_IP, '10.244.999.1', 'UDP', 53, now), 1, now)]);
      const refused = await post(path, JSON.stringify(badAddress), agentToken);
      expect(refused.status).to.equal(400);
      expect(JSON.parse(refused.body).message).to.equal('invalid drop batch: $.drops[0].drop.dst: "10.244.999.1" is not an IP address');

      expect((await post(path, '{"node": "x", "drops": [', agentToken)).status).to.equal(400);
      const huge = Buffer.alloc(5 * 1024 * 1024, 0x20);
      expect((await post(path, huge, agentToken)).status).to.equal(413);
    });

    it('accepts a good batch with 202 and counts batches by answer code', async function () {
      const now = new Date();
      const answer = await post(path, JSON.stringify(batch([entry(packetDrop(CLIENT_IP, QUIET_IP, 'TCP', 8443, now), 1, now)])), agentToken);
      expect(answer.status).to.equal(202);
      expect(JSON.parse(answer.body)).to.deep.equal({ accepted: 1 });
      const metrics = (await getLocal(controller.metricsPort, '/metrics')).body;
      for (const code of ['202', '400', '401', '403', '404', '413']) expect(metrics).to.match(new RegExp(`netwarden_droptail_batches_total\\{code="${code}"\\} [1-9]`));
    });
  });

  describe('from drops to Events, metrics and status', function () {
    const path = `/droptail/${dropTail}/drops`;

    it('puts an Event on both pods of a pod-to-pod drop, counts it and shows it in status with names resolved', async function () {
      const now = new Date();
      const udp = entry(packetDrop(CLIENT_IP, WEB_IP, 'UDP', 53, now), 3, now);
      expect((await post(path, JSON.stringify(batch([udp])), agentToken)).status).to.equal(202);

      const received = await eventWith('web-1', `Packet dropped when receiving traffic from ${ns}/client-1 (IP: ${CLIENT_IP}, UDP/53)`);
      expect(received).to.include({ reason: 'PacketDrop', type: 'Warning', count: 3, reportingComponent: 'netwarden' });
      const sent = await eventWith('client-1', `Packet dropped when sending traffic to ${ns}/web-1 (IP: ${WEB_IP}, UDP/53)`);
      expect(sent.count).to.equal(3);

      const describe = await mustKubectl(cluster(), ['describe', 'pod', 'web-1', '-n', ns]);
      expect(describe).to.match(/Warning\s+PacketDrop\s+.*netwarden.*Packet dropped when receiving traffic from dt-intake-e2e\/client-1/);

      const metrics = (await getLocal(controller.metricsPort, '/metrics')).body;
      expect(metrics).to.contain(`netwarden_packet_drops_total{droptail="${dropTail}",node="${node}",protocol="UDP",src_namespace="${ns}",dst_namespace="${ns}"} 3`);
      expect(metrics).not.to.contain('client-1');

      const last = await waitFor(async () => {
        const raw = await jsonpath('.status.lastDrop');
        const drop = raw ? (JSON.parse(raw) as Record<string, unknown>) : undefined;
        return drop && (drop.dst as { name?: string }).name === 'web-1' ? drop : undefined;
      }, { timeoutMs: 15_000, description: 'status.lastDrop naming web-1' });
      expect(last).to.deep.include({
        node, protocol: 'UDP', dstPort: 53, srcPort: 40000, count: 3, direction: 'forward', prefix: 'nftables-metal-dropped:',
        src: { ip: CLIENT_IP, kind: 'Pod', namespace: ns, name: 'client-1' },
        dst: { ip: WEB_IP, kind: 'Pod', namespace: ns, name: 'web-1' },
      });
      // The 8443 drop of the 202 test plus these 3.
      await waitFor(async () => (await jsonpath('.status.totalDrops')) === '4', { timeoutMs: 15_000, description: 'totalDrops 4' });
      const row = await mustKubectl(cluster(), ['get', 'droptail', dropTail, '--no-headers']);
      expect(row).to.match(new RegExp(`^${dropTail}\\s+\\d+\\s+\\d+\\s+4\\s+\\S+\\s+True\\s+`));
    });

    it('names Service and Node addresses, and other addresses by reverse DNS', async function () {
      const now = new Date();
      const drops = [
        entry(packetDrop(CLIENT_IP, serviceIP, 'TCP', 80, now), 1, now),
        entry(packetDrop(nodeIP, WEB_IP, 'TCP', 10250, now), 1, now),
        entry(packetDrop(EXTERNAL_IP, WEB_IP, 'TCP', 443, now), 1, now),
        entry(packetDrop('198.51.100.99', WEB_IP, 'TCP', 22, now), 1, now),
      ];
      expect((await post(path, JSON.stringify(batch(drops)), agentToken)).status).to.equal(202);
      await eventWith('client-1', `Packet dropped when sending traffic to service ${ns}/web (IP: ${serviceIP}, TCP/80)`);
      await eventWith('web-1', `Packet dropped when receiving traffic from node ${node} (IP: ${nodeIP}, TCP/10250)`);
      await eventWith('web-1', `Packet dropped when receiving traffic from ${EXTERNAL_NAME} (IP: ${EXTERNAL_IP}, TCP/443)`);
      await eventWith('web-1', 'Packet dropped when receiving traffic from unknown (IP: 198.51.100.99, TCP/22)');

      const recent = await waitFor(async () => {
        const raw = await jsonpath('.status.recentDrops');
        const list = raw ? (JSON.parse(raw) as Array<{ src: { ip: string; kind: string; name?: string } }>) : [];
        return list.some((d) => d.src.ip === EXTERNAL_IP) ? list : undefined;
      }, { timeoutMs: 15_000, description: 'recentDrops with the external drop' });
      expect(recent.length).to.be.at.most(5);
      expect(recent.find((d) => d.src.ip === EXTERNAL_IP)?.src).to.deep.equal({ ip: EXTERNAL_IP, kind: 'External', name: EXTERNAL_NAME });
      expect(recent.find((d) => d.src.ip === nodeIP)?.src).to.deep.equal({ ip: nodeIP, kind: 'Node', name: node });
      const metrics = (await getLocal(controller.metricsPort, '/metrics')).body;
      expect(metrics).to.contain(`netwarden_packet_drops_total{droptail="${dropTail}",node="${node}",protocol="TCP",src_namespace="${ns}",dst_namespace="service:${ns}"} 1`);
      expect(metrics).to.contain(`netwarden_packet_drops_total{droptail="${dropTail}",node="${node}",protocol="TCP",src_namespace="node",dst_namespace="${ns}"} 1`);
    });

    it('raises one Event\'s count for repeats within repeatInterval, counts a re-sent drop once and a re-read one only for its new part', async function () {
      const first = new Date();
      const second = new Date(first.getTime() + 1500);
      const drop = packetDrop(CLIENT_IP, WEB_IP, 'TCP', 5432, first);
      const text = `receiving traffic from ${ns}/client-1 (IP: ${CLIENT_IP}, TCP/5432)`;
      const one = batch([entry(drop, 2, first)]);
      expect((await post(path, JSON.stringify(one), agentToken)).status).to.equal(202);
      await eventWith('web-1', text, 2);
      expect((await post(path, JSON.stringify(batch([entry(drop, 5, second)])), agentToken)).status).to.equal(202);
      const bumped = await eventWith('web-1', text, 7);
      // The same aggregated drop again (an agent re-sending after a restart): no change.
      expect((await post(path, JSON.stringify({ ...one, sequence: 1 }), agentToken)).status).to.equal(202);
      // Re-read after a restart with one newer drop merged into that window: only the new one counts.
      expect((await post(path, JSON.stringify(batch([entry(drop, 3, first)])), agentToken)).status).to.equal(202);
      // A fresh drop of another pair, sent after the re-send, shows the re-send was handled.
      const marker = new Date();
      await post(path, JSON.stringify(batch([entry(packetDrop(CLIENT_IP, WEB_IP, 'TCP', 5433, marker), 1, marker)])), agentToken);
      await eventWith('web-1', 'TCP/5433');
      await eventWith('web-1', text, 8);
      const events = (await podEvents('web-1')).filter((e) => e.message.includes(text));
      expect(events).to.have.length(1);
      expect(events[0]).to.include({ name: bumped.name, count: 8 });
    });

    it('makes no Event for a drop older than expiration', async function () {
      const old = new Date(Date.now() - 11 * 60_000);
      const now = new Date();
      const drops = [entry(packetDrop(CLIENT_IP, QUIET_IP, 'UDP', 123, old), 4, old), entry(packetDrop(CLIENT_IP, QUIET_IP, 'UDP', 124, now), 1, now)];
      expect((await post(path, JSON.stringify(batch(drops)), agentToken)).status).to.equal(202);
      await eventWith('quiet-1', 'UDP/124');
      const quiet = await podEvents('quiet-1');
      expect(quiet.filter((e) => e.message.includes('UDP/123'))).to.deep.equal([]);
      const metrics = (await getLocal(controller.metricsPort, '/metrics')).body;
      expect(metrics).to.match(/netwarden_droptail_batch_drops_total\{result="expired"\} [1-9]/);
    });

    it('exports no drop series for a DropTail with metrics: false, while its Events still come', async function () {
      const cp = cluster();
      await mustKubectl(cp, ['patch', 'droptail', dropTail, '--type=merge', '-p', '{"spec":{"metrics":false}}']);
      const series = `netwarden_packet_drops_total{droptail="${dropTail}"`;
      await waitFor(async () => !(await getLocal(controller.metricsPort, '/metrics')).body.includes(series), { timeoutMs: 15_000, description: 'the series removed' });
      const now = new Date();
      await post(path, JSON.stringify(batch([entry(packetDrop(CLIENT_IP, WEB_IP, 'UDP', 161, now), 1, now)])), agentToken);
      await eventWith('web-1', 'UDP/161');
      expect((await getLocal(controller.metricsPort, '/metrics')).body).not.to.contain(series);
      await mustKubectl(cp, ['patch', 'droptail', dropTail, '--type=merge', '-p', '{"spec":{"metrics":true}}']);
    });

    it('after a controller restart, keeps bumping the same Event and does not count a re-sent drop again', async function () {
      const cp = cluster();
      const first = new Date();
      const drop = packetDrop(CLIENT_IP, WEB_IP, 'UDP', 514, first);
      const text = `receiving traffic from ${ns}/client-1 (IP: ${CLIENT_IP}, UDP/514)`;
      const sent = batch([entry(drop, 1, first)]);
      await post(`/droptail/${dropTail}/drops`, JSON.stringify(sent), agentToken);
      const before = await eventWith('web-1', text, 1);
      // The status is written at most every 2 s: wait until the total stops moving.
      let previous = -1;
      const total = await waitFor(async () => {
        await new Promise((r) => setTimeout(r, 2500));
        const now = Number(await jsonpath('.status.totalDrops'));
        const stable = now === previous;
        previous = now;
        return stable ? now : undefined;
      }, { description: 'totalDrops stable' });

      await controller.kill();
      controller = await startController(cp, 'controller-droptail', controller.child.spawnargs.filter((a) => a.startsWith('--dns-server')));
      await waitFor(async () => (await post(path, JSON.stringify(batch([])), agentToken)).status === 202, { timeoutMs: 30_000, description: 'the new controller accepting batches' });

      expect((await post(path, JSON.stringify(sent), agentToken)).status).to.equal(202);
      const later = new Date();
      expect((await post(path, JSON.stringify(batch([entry(drop, 2, later)])), agentToken)).status).to.equal(202);
      const after = await eventWith('web-1', text, 3);
      expect(after.name).to.equal(before.name);
      expect((await podEvents('web-1')).filter((e) => e.message.includes(text))).to.have.length(1);
      await waitFor(async () => Number(await jsonpath('.status.totalDrops')) === total + 2, { timeoutMs: 15_000, description: `totalDrops ${total + 2}` });
    });
  });
});

// The whole chain with real packets: an nftables rule on the host logs to an NFLOG group and drops
// UDP and TCP from one pod network namespace to another; the node agent reads the group, aggregates
// and sends the drops; the controller puts Events on both Pods, counts them and shows them.
describe('DropTail end to end: real drops from an nftables rule to Events on both pods', function () {
  const realNs = 'dt-real-e2e';
  const realNode = 'dt-real-node';
  const realDropTail = 'dt-real';
  const table = 'netwarden_dt_real_e2e';
  const group = 3917;
  const webIP = '10.244.72.10';
  const clientIP = '10.244.72.11';
  const processes: NetwardenProcess[] = [];
  let web: PodNetwork;
  let client: PodNetwork;
  let hostTable: HostTable | undefined;

  function realJsonpath(path: string): Promise<string> {
    return mustKubectl(cluster(), ['get', 'droptail', realDropTail, '-o', `jsonpath={${path}}`]);
  }

  async function realEvents(pod: string): Promise<string[]> {
    const out = await mustKubectl(cluster(), ['get', 'events', '-n', realNs, '--field-selector', `involvedObject.name=${pod}`, '-o', 'jsonpath={range .items[*]}{.message}{"\\n"}{end}']);
    return out.split('\n').filter(Boolean);
  }

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNamespace(kc, realNs);
    await createNode(kc, realNode, { internalIP: nextNodeIP(), labels: { 'dt-real': 'yes' } });
    web = await createNetworkedPod(kc, { namespace: realNs, name: 'web-1', nodeName: realNode, podIP: webIP, network: 'dtr-web' });
    client = await createNetworkedPod(kc, { namespace: realNs, name: 'client-1', nodeName: realNode, podIP: clientIP, network: 'dtr-client' });
    hostTable = await addForwardTable(table, [`ip saddr ${clientIP} ip daddr ${webIP} meta l4proto { tcp, udp } log prefix "nwdt-e2e: " group ${group} drop`]);

    processes.push(await startController(cp, 'controller-droptail-real'));
    await mustKubectl(cp, ['apply', '-f', '-'], [
      'apiVersion: netwarden.io/v1alpha1', 'kind: DropTail', `metadata: {name: ${realDropTail}}`,
      'spec:', "  nodeSelector: {dt-real: 'yes'}", `  sources: [{type: nflog, group: ${group}}]`, "  prefixes: ['nwdt-e2e: ']",
    ].join('\n'));
    processes.push(await startAgent(cp, realNode));
    // What `kubectl get droptail` shows: NODES 1, UNHEALTHY 0 once the agent reads the group.
    await waitNodesHealthy(cp, 'droptail', realDropTail, 1);
  });

  after(async function () {
    await Promise.all(processes.map((p) => p.kill()));
    await hostTable?.remove();
    await web?.destroy();
    await client?.destroy();
  });

  it('drops UDP and TCP between two pods; both pods get Events, the metric and the status count them', async function () {
    const udp = 'import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor _ in range(3): s.sendto(b"q", ("%s", 53))' ;
    const tcp = 'import socket\ntry: socket.create_connection(("%s", 8080), timeout=0.5)\nexcept OSError: pass';
    const sentUdp = await client.exec(['python3', '-c', udp.replace('%s', webIP)]);
    expect(sentUdp.code, sentUdp.stderr).to.equal(0);
    const sentTcp = await client.exec(['python3', '-c', tcp.replace('%s', webIP)]);
    expect(sentTcp.code, sentTcp.stderr).to.equal(0);

    const description = 'Events for UDP/53 and TCP/8080 on both pods';
    await waitFor(async () => {
      const received = await realEvents('web-1');
      const sent = await realEvents('client-1');
      return (
        received.includes(`Packet dropped when receiving traffic from ${realNs}/client-1 (IP: ${clientIP}, UDP/53)`) &&
        received.includes(`Packet dropped when receiving traffic from ${realNs}/client-1 (IP: ${clientIP}, TCP/8080)`) &&
        sent.includes(`Packet dropped when sending traffic to ${realNs}/web-1 (IP: ${webIP}, UDP/53)`) &&
        sent.includes(`Packet dropped when sending traffic to ${realNs}/web-1 (IP: ${webIP}, TCP/8080)`)
      );
    }, { timeoutMs: 10_000, description });
    const describePod = await mustKubectl(cluster(), ['describe', 'pod', 'web-1', '-n', realNs]);
    expect(describePod).to.match(/Warning\s+PacketDrop\s+.*Packet dropped when receiving traffic from dt-real-e2e\/client-1 \(IP: 10\.244\.72\.11, UDP\/53\)/);

    const controller = processes[0]!;
    const metrics = (await getLocal(controller.metricsPort, '/metrics')).body;
    const series = (protocol: string) =>
      new RegExp(`netwarden_packet_drops_total\\{droptail="${realDropTail}",node="${realNode}",protocol="${protocol}",src_namespace="${realNs}",dst_namespace="${realNs}"\\} (\\d+)`).exec(metrics);
    expect(Number(series('UDP')?.[1])).to.equal(3);
    expect(Number(series('TCP')?.[1])).to.be.at.least(1);

    const recent = await waitFor(async () => {
      const raw = await realJsonpath('.status.recentDrops');
      const list = raw ? (JSON.parse(raw) as Array<{ protocol: string; src: Record<string, string>; dst: Record<string, string>; node: string; prefix?: string }>) : [];
      return list.some((d) => d.protocol === 'UDP') && list.some((d) => d.protocol === 'TCP') ? list : undefined;
    }, { timeoutMs: 10_000, description: 'recentDrops with the UDP and the TCP drop' });
    for (const drop of recent) {
      expect(drop).to.deep.include({ node: realNode, prefix: 'nwdt-e2e:' });
      expect(drop.src).to.deep.equal({ ip: clientIP, kind: 'Pod', namespace: realNs, name: 'client-1' });
      expect(drop.dst).to.deep.equal({ ip: webIP, kind: 'Pod', namespace: realNs, name: 'web-1' });
    }
    await waitFor(async () => Number(await realJsonpath('.status.totalDrops')) >= 4, { timeoutMs: 10_000, description: 'totalDrops of at least 4' });
    expect(await realJsonpath('.status.lastDrop.dst.name')).to.equal('web-1');
  });
});

// A journal source read by a real agent, sent to the real controller: kernel drop messages in
// journal files written by systemd-journal-remote become one Event per Pod and direction, and the
// Event's count stays exactly the number of drops in the journal across agent restarts (SIGTERM:
// graceful drain; SIGKILL: killed after reading, before its window was sent).
describe('DropTail end to end: journal drops to Events, exact across agent restarts', function () {
  const jNs = 'dt-journal-e2e';
  const jNode = 'dt-journal-node';
  const jDropTail = 'dt-journal';
  const jWebIP = '10.244.74.10';
  const jClientIP = '10.244.74.11';
  const prefix = 'nwdtj-e2e: ';
  const receivedText = `Packet dropped when receiving traffic from ${jNs}/client-1 (IP: ${jClientIP}, TCP/5432)`;
  const sentText = `Packet dropped when sending traffic to ${jNs}/web-1 (IP: ${jWebIP}, TCP/5432)`;
  let controller: NetwardenProcess | undefined;
  let agent: NetwardenProcess | undefined;
  let journalFile = '';
  let sequence = 0;

  /** Appends kernel drop entries (client-1 -> web-1 TCP/5432) and one userspace look-alike to the journal. */
  function writeJournal(drops: number): void {
    const entries: string[] = [];
    for (let i = 0; i < drops; i++) {
      sequence += 1;
      const message = `${prefix}IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=${jClientIP} DST=${jWebIP} LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=${sequence} DF PROTO=TCP SPT=${40000 + sequence} DPT=5432 WINDOW=64240 RES=0x00 SYN URGP=0`;
      entries.push([`__REALTIME_TIMESTAMP=${BigInt(Date.now()) * 1000n + BigInt(sequence)}`, `__MONOTONIC_TIMESTAMP=${sequence}`, '_BOOT_ID=2a6f3c0e9d8b4f1aa7c5e3d2b1f09e87', '_TRANSPORT=kernel', 'SYSLOG_IDENTIFIER=kernel', `MESSAGE=${message}`, ''].join('\n'));
    }
    sequence += 1;
    // Not from the kernel: the source's default match (_TRANSPORT=kernel) must leave it out.
    entries.push([`__REALTIME_TIMESTAMP=${BigInt(Date.now()) * 1000n + BigInt(sequence)}`, `__MONOTONIC_TIMESTAMP=${sequence}`, '_BOOT_ID=2a6f3c0e9d8b4f1aa7c5e3d2b1f09e87', '_TRANSPORT=stdout', `MESSAGE=${prefix}IN=eth0 OUT= SRC=${jClientIP} DST=${jWebIP} LEN=60 TTL=64 PROTO=TCP SPT=1 DPT=5432 SYN`, ''].join('\n'));
    const written = spawnSync('/usr/lib/systemd/systemd-journal-remote', [`--output=${journalFile}`, '-'], { input: entries.join('\n') + '\n', stdio: ['pipe', 'ignore', 'pipe'] });
    if (written.status !== 0) throw new Error(`systemd-journal-remote failed: ${written.stderr.toString()}`);
  }

  interface PairEvent {
    name: string;
    count: number;
  }

  /** The Events on a pod whose message is `text`. */
  async function eventsSaying(pod: string, text: string): Promise<PairEvent[]> {
    const out = await mustKubectl(cluster(), ['get', 'events', '-n', jNs, '--field-selector', `involvedObject.name=${pod}`, '-o', 'json']);
    const items = (JSON.parse(out) as { items: Array<{ metadata: { name: string }; message?: string; count?: number }> }).items;
    return items.filter((e) => e.message === text).map((e) => ({ name: e.metadata.name, count: Number(e.count) }));
  }

  /** Waits until both pods show exactly one Event for the pair, with `count`. */
  async function waitForCount(count: number): Promise<void> {
    let seen = '';
    await waitFor(async () => {
      const received = await eventsSaying('web-1', receivedText);
      const sent = await eventsSaying('client-1', sentText);
      seen = JSON.stringify({ received, sent });
      return received.length === 1 && received[0]!.count === count && sent.length === 1 && sent[0]!.count === count;
    }, { timeoutMs: 20_000, description: `one Event per pod with count ${count}` }).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; Events: ${seen}`);
    });
  }

  /** The agent's netwarden_agent_droptail_drops_seen_total of this DropTail (0 when absent). */
  async function dropsRead(agentProcess: NetwardenProcess): Promise<number> {
    const body = (await getLocal(agentProcess.metricsPort, '/metrics')).body;
    const m = new RegExp(`^netwarden_agent_droptail_drops_seen_total\\{droptail="${jDropTail}",source="[^"]*"\\} (\\d+)$`, 'm').exec(body);
    return m ? Number(m[1]) : 0;
  }

  async function startJournalAgent(): Promise<NetwardenProcess> {
    const started = await startAgent(cluster(), jNode);
    // The agent's own gauge: the controller's summary may still show the run before this restart.
    await waitFor(async () => (await metricValue(started.metricsPort, 'netwarden_agent_droptail_source_healthy', { droptail: jDropTail })) === 1, {
      timeoutMs: 30_000,
      description: `the agent on ${jNode} following the journal`,
    });
    return started;
  }

  before(async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNamespace(kc, jNs);
    await createNode(kc, jNode, { internalIP: nextNodeIP(), labels: { 'dt-journal': 'yes' } });
    await createPod(kc, { namespace: jNs, name: 'web-1', nodeName: jNode, podIP: jWebIP });
    await createPod(kc, { namespace: jNs, name: 'client-1', nodeName: jNode, podIP: jClientIP });
    const dir = join(cp.dir, 'dt-journal');
    mkdirSync(dir, { recursive: true });
    journalFile = join(dir, 'remote.journal');
    writeJournal(1); // before the agent's first start: it joins the journal at its end, so this one is not reported

    controller = await startController(cp, 'controller-droptail-journal');
    await mustKubectl(cp, ['apply', '-f', '-'], [
      'apiVersion: netwarden.io/v1alpha1', 'kind: DropTail', `metadata: {name: ${jDropTail}}`,
      'spec:', "  nodeSelector: {dt-journal: 'yes'}", `  sources: [{type: journal, directory: '${dir}'}]`, `  prefixes: ['${prefix}']`,
    ].join('\n'));
    await mustKubectl(cp, ['wait', '--for=condition=Ready', `droptail/${jDropTail}`, '--timeout=60s']);
    agent = await startJournalAgent();
  });

  after(async function () {
    await agent?.kill('SIGKILL');
    await controller?.kill();
  });

  it('counts each journal drop once in the Events on both pods, across a SIGTERM and a SIGKILL of the agent', async function () {
    writeJournal(3);
    await waitForCount(3);

    // Graceful stop: the agent drains its queue and saves its cursor; drops written while it is down come after.
    await agent!.kill('SIGTERM');
    writeJournal(2);
    agent = await startJournalAgent();
    writeJournal(1);
    await waitForCount(6);

    // Killed right after it read two more drops, before its aggregation window (1 s) was sent: the
    // saved cursor is older, so they are read again after the restart, and must count once.
    const readBefore = await dropsRead(agent);
    writeJournal(2);
    await waitFor(async () => (await dropsRead(agent!)) >= readBefore + 2, { timeoutMs: 10_000, intervalMs: 10, description: 'the agent read the 2 drops' });
    await agent.kill('SIGKILL');
    writeJournal(1);
    agent = await startJournalAgent();
    await waitForCount(9);

    // Nothing late: a re-sent or re-read drop would show within a few windows.
    await new Promise((r) => setTimeout(r, 3_000));
    await waitForCount(9);
    const metrics = (await getLocal(controller!.metricsPort, '/metrics')).body;
    expect(metrics).to.contain(`netwarden_packet_drops_total{droptail="${jDropTail}",node="${jNode}",protocol="TCP",src_namespace="${jNs}",dst_namespace="${jNs}"} 9`);
    await waitFor(async () => (await mustKubectl(cluster(), ['get', 'droptail', jDropTail, '-o', 'jsonpath={.status.totalDrops}'])) === '9', { timeoutMs: 15_000, description: 'status.totalDrops 9' });
  });
});
