// A user's first hour, on the real node (test/env/realnode.ts): the image built by
// hack/image/build.sh is imported into the node's containerd under the tag config/ names, then
// `kubectl apply -k config/` and nothing else. The controller's two replicas and the agent
// DaemonSet's pod must turn Ready by their probes, with the certificates of the controller's own
// CA (the agent's through the CSR API), and the leader's Lease must pass to another replica when
// its pod is deleted; then an nftables drop between two real pods becomes Events, and a capture of
// a real pod is downloaded with the plugin through a port-forward to either controller pod, and
// the node's apiserver audit log reaches a webhook receiver through the agent pod, without a loss
// while the DaemonSet rolls. A second suite, on a fresh node, runs `helm install` of
// charts/netwarden and one `helm upgrade`.
// Host directories the DaemonSet's hostPath volumes create are removed after.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { expect } from 'chai';
import YAML from 'yaml';
import { loggerFor } from '../../src/util/log.js';
import { registerExitCleanup, run, type ExecResult } from '../env/controlplane.js';
import { CHART_DIR, tool } from '../env/chart.js';
import { REPO_ROOT, waitNodesHealthy } from '../env/netwarden.js';
import { kubeconfigForToken, requestToken, waitFor } from '../env/fixtures.js';
import {
  diagnoseInstall, nodeKubectl, pluginThrough, podDropRules, portForward, probeIn, probePod, rolloutInstall, startRealNodeWithImage,
  type NodeWithImage,
} from '../env/install.js';
import { auditLogEvents, AuditReceiver, type LoggedEvent } from '../env/audit-receiver.js';
import { hostAuditLogDir, nodeIP, realNodeUnsupported, type RealNode } from '../env/realnode.js';

const log = loggerFor('install-realnode-test');
const ns = 'netwarden-system';
/** Two plain pods of the real node's probe image (hack/realnode/probe): a server and a client. */
const app = 'shop';
const dropTable = 'netwarden_install_e2e';
const dropGroup = 87;

/** The AuditForwarder status fields these tests read. */
interface ForwarderStatus {
  conditions?: { type: string; status: string; message?: string }[];
  nodeCount?: number;
  shippedEvents?: number;
  gaps?: number;
}

/** Requests that make the audit log grow: loops of ConfigMap create, get and list, as a user's client would. */
class Traffic {
  requests = 0;
  failures = 0;
  private running = false;
  private loops: Promise<void>[] = [];
  private n = 0;
  constructor(private readonly cp: RealNode['cp'], private readonly namespace: string) {}

  start(concurrency = 2, pauseMs = 100): void {
    const api = this.cp.kubeConfig().makeApiClient(CoreV1Api);
    const call = async (p: Promise<unknown>): Promise<void> => {
      this.requests += 1;
      await p.catch(() => { this.failures += 1; });
    };
    this.running = true;
    this.loops = Array.from({ length: concurrency }, async () => {
      while (this.running) {
        const name = `rollout-${this.n++}`;
        await call(api.createNamespacedConfigMap({ namespace: this.namespace, body: { metadata: { name }, data: { k: 'v' } } }));
        await call(api.readNamespacedConfigMap({ namespace: this.namespace, name }));
        await call(api.listNamespacedConfigMap({ namespace: this.namespace, limit: 1 }));
        await new Promise((r) => setTimeout(r, pauseMs));
      }
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

/**
 * Runs where a real node can (root, cgroups, nft, Go) and the image can be built (root for buildah);
 * NETWARDEN_REALNODE=0 skips it. The reason is one line.
 */
let skipSaid = false;

function skipReason(): string | undefined {
  if (process.env.NETWARDEN_REALNODE === '0') return 'install on the real node skipped: NETWARDEN_REALNODE=0';
  const why = realNodeUnsupported();
  return why ? `install on the real node skipped: ${why}` : undefined;
}

interface NodeFixture {
  node(): RealNode;
  timings: Record<string, number>;
  kubectl(args: string[], input?: string): Promise<string>;
  /** Why the pods are not Ready: their states, the namespace's last Events and the pods' last log lines. */
  diagnose(): Promise<string>;
  rollout(what: string, timeout: string): Promise<void>;
}

/**
 * Hooks of a suite on its own real node: the image built (cached) while the node starts, then
 * imported into its containerd under the tag config/ and the chart use; at the end the node
 * stopped and the hostPath directories the agent's pod made on the host removed.
 */
function realNodeWithImage(): NodeFixture {
  let started: NodeWithImage | undefined;
  let node: RealNode | undefined;
  const timings: Record<string, number> = {};

  before(async function () {
    // A cold run builds the image (~8 min here) and the node's components (~13 min).
    this.timeout(2_700_000);
    const reason = skipReason();
    if (reason) {
      // One line for the file, not one per suite.
      if (!skipSaid) console.log(`      ${reason}`);
      skipSaid = true;
      this.skip();
    }
    started = await startRealNodeWithImage();
    node = started.node;
    Object.assign(timings, started.timings);
  });

  after(async function () {
    this.timeout(120_000);
    if (started) {
      const pods = await started.node.cp.kubectl(['-n', ns, 'get', 'pods', '-o', 'wide']).catch(() => undefined);
      if (pods) log.info('pods at the end', { pods: pods.stdout });
      await started.stop();
    }
    log.info('install timings', timings);
  });

  const get = (): RealNode => {
    if (!node) throw new Error('no real node');
    return node;
  };
  const kubectl = (args: string[], input?: string): Promise<string> => nodeKubectl(get(), args, input);
  const diagnose = (): Promise<string> => diagnoseInstall(get());
  const rollout = (what: string, timeout: string): Promise<void> => rolloutInstall(get(), what, timeout);
  return { node: get, timings, kubectl, diagnose, rollout };
}

describe('kubectl apply -k config/ on a real node', function () {
  this.timeout(300_000);
  const f = realNodeWithImage();
  const { timings, kubectl, diagnose, rollout } = f;
  let node: RealNode | undefined;
  before(function () {
    node = f.node();
  });

  it('installs with kubectl apply -k config/ and the controller\'s two replicas and the agent turn Ready', async function () {
    const t0 = performance.now();
    const out = await kubectl(['apply', '-k', path.join(REPO_ROOT, 'config')]);
    expect(out).to.contain('deployment.apps/netwarden-controller created');
    expect(out).to.contain('daemonset.apps/netwarden-agent created');
    await rollout('deployment/netwarden-controller', '180s');
    await rollout('daemonset/netwarden-agent', '180s');
    timings.readyMs = Math.round(performance.now() - t0);
    const deployment = JSON.parse(await kubectl(['-n', ns, 'get', 'deployment', 'netwarden-controller', '-o', 'json'])) as { status: { readyReplicas?: number } };
    expect(deployment.status.readyReplicas).to.equal(2);
    const ds = JSON.parse(await kubectl(['-n', ns, 'get', 'daemonset', 'netwarden-agent', '-o', 'json'])) as { status: { numberReady?: number } };
    expect(ds.status.numberReady).to.equal(1);
    // Ready by their readiness probes (/readyz), which say more than a started process.
    const pods = JSON.parse(await kubectl(['-n', ns, 'get', 'pods', '-o', 'json'])) as { items: { metadata: { labels?: Record<string, string> }; spec: { containers: { readinessProbe?: { httpGet?: { path?: string } } }[] } }[] };
    expect(pods.items.map((p) => `${p.metadata.labels?.['app.kubernetes.io/name']} ${p.spec.containers[0]?.readinessProbe?.httpGet?.path}`).sort())
      .to.deep.equal(['netwarden-agent /readyz', 'netwarden-controller /readyz', 'netwarden-controller /readyz']);
  });

  it('gives the agent a certificate of the controller\'s CA through the CSR API, and publishes the CA bundle', async function () {
    const csrs = JSON.parse(await kubectl(['get', 'csr', '-o', 'json'])) as {
      items: { spec: { signerName: string; username: string }; status: { certificate?: string; conditions?: { type: string }[] } }[];
    };
    const agentCsrs = csrs.items.filter((c) => c.spec.signerName === 'netwarden.io/agent-serving');
    expect(agentCsrs.length).to.be.greaterThan(0);
    const issued = agentCsrs.find((c) => c.status.certificate);
    expect(issued?.spec.username).to.equal(`system:serviceaccount:${ns}:netwarden-agent`);
    expect(issued?.status.conditions?.map((c) => c.type)).to.include('Approved');
    const bundle = await kubectl(['-n', ns, 'get', 'configmap', 'netwarden-ca', '-o', 'jsonpath={.data.ca\\.crt}']);
    expect(bundle).to.contain('BEGIN CERTIFICATE');
    // The agent's certificate chains to the published bundle, for the node's address.
    const cert = Buffer.from(issued!.status.certificate!, 'base64').toString();
    const dir = node!.dir;
    await writeFile(path.join(dir, 'netwarden-ca.crt'), bundle);
    await writeFile(path.join(dir, 'agent.crt'), cert);
    const verified = await run('openssl', ['verify', '-CAfile', path.join(dir, 'netwarden-ca.crt'), path.join(dir, 'agent.crt')]);
    expect(verified.stdout.trim(), verified.stderr).to.match(/: OK$/);
  });

  it('hands the Lease to another replica when the leader\'s pod is deleted', async function () {
    const lease = async (): Promise<string> => {
      const leases = JSON.parse(await kubectl(['-n', ns, 'get', 'lease', '-o', 'json'])) as { items: { metadata: { name: string }; spec: { holderIdentity?: string } }[] };
      const l = leases.items.find((x) => x.metadata.name.startsWith('netwarden'));
      return l?.spec.holderIdentity ?? '';
    };
    const pods = (await kubectl(['-n', ns, 'get', 'pods', '-l', 'app.kubernetes.io/name=netwarden-controller', '-o', 'jsonpath={.items[*].metadata.name}'])).trim().split(/\s+/);
    expect(pods).to.have.length(2);
    const leader = await lease();
    const leaderPod = pods.find((p) => leader.includes(p));
    expect(leaderPod, `holder ${leader} of ${pods.join(', ')}`).to.not.equal(undefined);
    const t0 = performance.now();
    await kubectl(['-n', ns, 'delete', 'pod', leaderPod!, '--wait=false']);
    // The released Lease goes to whichever replica asks first: the standby, or the pod the
    // ReplicaSet starts in the deleted one's place (seen here both ways).
    let holder = leader;
    for (let i = 0; i < 120 && (holder === '' || holder === leader); i++) {
      await new Promise((r) => setTimeout(r, 500));
      holder = await lease();
    }
    timings.handoverMs = Math.round(performance.now() - t0);
    if (holder === '' || holder === leader) {
      const old = await node!.cp.kubectl(['-n', ns, 'logs', leaderPod!, '--tail=30']);
      throw new Error(`the Lease is still held by ${holder || 'nobody'} 60 s after deleting ${leaderPod!}\n--- ${leaderPod!}\n${old.stdout}${old.stderr}\n${await diagnose()}`);
    }
    const live = (await kubectl(['-n', ns, 'get', 'pods', '-l', 'app.kubernetes.io/name=netwarden-controller', '-o', 'jsonpath={.items[*].metadata.name}'])).trim().split(/\s+/);
    expect(live, `new holder ${holder}`).to.include(holder);
    // Well under the lease duration (15 s): the deleted pod's node process, PID 1 in its container,
    // took the kubelet's SIGTERM and released the Lease. Without that it would renew until the
    // SIGKILL 30 s later and the Lease pass only 15 s after that.
    expect(timings.handoverMs).to.be.below(15_000);
    log.info('lease handed over', { from: leaderPod, to: holder, toTheStandby: holder === pods.find((p) => p !== leaderPod), ms: timings.handoverMs });
    await rollout('deployment/netwarden-controller', '120s');
  });

  describe('through real pods', function () {
    const pod = (name: string, labels: Record<string, string>, args: string[], command?: string[]): Record<string, unknown> => probePod(app, name, labels, args, command);
    let webIP = '';
    let clientIP = '';
    let unregisterTable: (() => void) | undefined;
    const probe = (from: string, args: string[]): Promise<ExecResult> => probeIn(node!, app, from, args);
    const eventsOf = async (name: string): Promise<string[]> =>
      (await kubectl(['-n', app, 'get', 'events', '--field-selector', `involvedObject.name=${name},reason=PacketDrop`, '-o', 'jsonpath={range .items[*]}{.message}{"\\n"}{end}']))
        .split('\n').filter(Boolean);

    before(async function () {
      if (!node) this.skip();
      await kubectl(['apply', '-f', '-'], YAML.stringify({ apiVersion: 'v1', kind: 'List', items: [
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: app } },
        pod('web', { app: 'web' }, ['serve', ':8080']),
        pod('client', { app: 'client' }, ['86400'], ['/bin/sleep']),
      ] }));
      await kubectl(['-n', app, 'wait', '--for=condition=Ready', 'pod/web', 'pod/client', '--timeout=120s']);
      webIP = (await kubectl(['-n', app, 'get', 'pod', 'web', '-o', 'jsonpath={.status.podIP}'])).trim();
      clientIP = (await kubectl(['-n', app, 'get', 'pod', 'client', '-o', 'jsonpath={.status.podIP}'])).trim();
    });

    after(async function () {
      if (unregisterTable) {
        spawnSync('nft', ['delete', 'table', 'ip', dropTable], { stdio: 'ignore' });
        unregisterTable();
      }
    });

    it('turns a drop between two pods, by an nftables rule on the node, into Events on both pods', async function () {
      // The node's own rule, as a NetworkPolicy engine writes it: log to an NFLOG group, then drop.
      const rules = podDropRules({ table: dropTable, group: dropGroup, prefix: 'nwinst: ', fromIP: clientIP, toIP: webIP });
      const added = await run('nft', ['-f', '-'], { input: rules });
      expect(added.code, added.stderr).to.equal(0);
      unregisterTable = registerExitCleanup(() => spawnSync('nft', ['delete', 'table', 'ip', dropTable], { stdio: 'ignore' }));
      await kubectl(['apply', '-f', '-'], YAML.stringify({
        apiVersion: 'netwarden.io/v1alpha1', kind: 'DropTail', metadata: { name: 'install-drops' },
        // The kernel source beside it: its eBPF program loads in the DaemonSet's pod (BPF and
        // PERFMON, containerd's RuntimeDefault seccomp, the image's libbpf and program), and a
        // packet both see is counted once, as the logged drop.
        spec: { sources: [{ type: 'nflog', group: dropGroup }, { type: 'kernel' }], prefixes: ['nwinst: '] },
      }));
      // The agent pod reports the DropTail's node healthy (both sources) to the controller through the Service.
      await waitNodesHealthy(node!.cp, 'droptail', 'install-drops', 1, 60_000);
      // Each probe waits for an answer until its timeout (UDP 5 s, TCP 10 s); the Events come while they wait.
      const t0 = performance.now();
      const probes = Promise.all([probe('client', ['udp', `${webIP}:8080`, 'ping']), probe('client', ['get', `http://${webIP}:8080/`])]);
      const received = `Packet dropped when receiving traffic from ${app}/client (IP: ${clientIP}, UDP/8080)`;
      const sent = `Packet dropped when sending traffic to ${app}/web (IP: ${webIP}, TCP/8080)`;
      await waitFor(async () => (await eventsOf('web')).includes(received) && (await eventsOf('client')).includes(sent), {
        timeoutMs: 30_000, description: `Events "${received}" on web and "${sent}" on client`,
      }).catch(async (err: unknown) => {
        throw new Error(`${String(err)}\nweb: ${(await eventsOf('web')).join('; ')}\nclient: ${(await eventsOf('client')).join('; ')}\n${await diagnose()}`);
      });
      timings.dropToEventsMs = Math.round(performance.now() - t0);
      const [udp, tcp] = await probes;
      expect(udp.code).to.not.equal(0);
      expect(tcp.code).to.not.equal(0);
      const described = await kubectl(['-n', app, 'describe', 'pod', 'web']);
      expect(described).to.match(/Warning\s+PacketDrop\s+.*Packet dropped when receiving traffic from shop\/client/);
      expect(await eventsOf('web'), 'the logged drops counted again by the kernel source').to.not.include(`${received}: NETFILTER_DROP`);
      // Taken away again: traffic flows.
      expect((await run('nft', ['delete', 'table', 'ip', dropTable])).code).to.equal(0);
      unregisterTable();
      unregisterTable = undefined;
      expect((await probe('client', ['get', `http://${webIP}:8080/`])).stdout).to.equal('200 hello from web\n');
    });

    it('downloads a PacketCapture of a real pod with the plugin for a user with packetcaptures/files, and refuses one without (403)', async function () {
      const dir = await mkdtemp(path.join(node!.dir, 'downloads-'));
      const kubeconfigOf = async (sa: string, role: string): Promise<string> => {
        await kubectl(['-n', app, 'create', 'serviceaccount', sa]);
        await kubectl(['-n', app, 'create', 'rolebinding', sa, `--clusterrole=${role}`, `--serviceaccount=${app}:${sa}`]);
        return kubeconfigForToken(node!.cp, await requestToken(node!.cp.kubeConfig(), app, sa), path.join(dir, `kubeconfig-${sa}`));
      };
      const editor = await kubeconfigOf('editor', 'netwarden-packetcapture-editor');
      const reader = await kubeconfigOf('reader', 'netwarden-packetcapture-files-reader');
      const created = await node!.cp.kubectl(['apply', '-f', '-'], {
        kubeconfig: editor,
        input: YAML.stringify({
          apiVersion: 'netwarden.io/v1alpha1', kind: 'PacketCapture', metadata: { name: 'web-http', namespace: app },
          spec: { selector: 'app == "web"', filters: [{ protocol: 'TCP', ports: [8080] }], direction: 'both', duration: '10m' },
        }),
      });
      expect(created.code, created.stderr).to.equal(0);
      await waitFor(async () => {
        const files = JSON.parse((await kubectl(['-n', app, 'get', 'packetcapture', 'web-http', '-o', 'jsonpath={.status.files}'])) || '[]') as { state?: string }[];
        return files.some((f) => f.state === 'WaitingForTraffic' || f.state === 'Capturing');
      }, { timeoutMs: 60_000, description: 'the capture running on the node' }).catch(async (err: unknown) => {
        throw new Error(`${String(err)}\n${await kubectl(['-n', app, 'get', 'packetcapture', 'web-http', '-o', 'yaml'])}\n${await diagnose()}`);
      });
      // On the pod's own veth, not the node's bridge (where every pod's traffic passes).
      const iface = await waitFor(async () => (await kubectl(['-n', app, 'get', 'packetcapture', 'web-http', '-o', 'jsonpath={.status.targets[0].interface}'])).trim(), {
        timeoutMs: 30_000, description: 'the interface of the capture in status.targets',
      });
      expect(iface).to.match(/^veth/);
      for (let i = 0; i < 3; i++) expect((await probe('client', ['get', `http://${webIP}:8080/`])).stdout).to.equal('200 hello from web\n');
      await waitFor(async () => Number(await kubectl(['-n', app, 'get', 'packetcapture', 'web-http', '-o', 'jsonpath={.status.files[0].packets}'])) >= 10, {
        timeoutMs: 30_000, description: 'the agent counting the HTTP packets',
      });
      const plugin = (args: string[], kubeconfig: string, port: number): Promise<ExecResult> => pluginThrough(port, args, kubeconfig);
      // What a user does: a port-forward to the controller's Service (through the kubelet), then the plugin.
      // kubectl picks one pod of the Service and keeps it: whichever replica that is must answer,
      // so the standby's pod is tried by name too.
      const holder = (await kubectl(['-n', ns, 'get', 'lease', '-o', 'jsonpath={.items[0].spec.holderIdentity}'])).trim();
      const standby = (await kubectl(['-n', ns, 'get', 'pods', '-l', 'app.kubernetes.io/name=netwarden-controller', '-o', 'jsonpath={.items[*].metadata.name}']))
        .trim().split(/\s+/).find((p) => p !== holder);
      expect(standby, `a standby besides ${holder}`).to.be.a('string');
      for (const [target, remote] of [['svc/netwarden-controller', 443], [`pod/${standby!}`, 8443]] as const) {
        const forward = await portForward(node!, target, remote);
        const port = forward.port;
        try {
          const denied = await plugin(['capture', 'download', '-n', app, 'web-http', '-o', dir], editor, port);
          expect(denied.code, target).to.not.equal(0);
          expect(denied.stderr, target).to.contain(`403 Forbidden: system:serviceaccount:${app}:editor may not get packetcaptures/files.netwarden.io in namespace ${app}`);
          const out = path.join(dir, target.replace('/', '-'));
          const got = await plugin(['capture', 'download', '-n', app, 'web-http', '-o', out, '--extract'], reader, port);
          expect(got.code, `${target}: ${got.stderr}`).to.equal(0);
          const pcaps = (await readdir(out, { recursive: true })).filter((f) => f.endsWith('.pcap'));
          expect(pcaps, got.stdout).to.have.length(1);
          expect(path.basename(pcaps[0]!)).to.match(new RegExp(`^web_${iface}_\\d+\\.pcap$`));
          const summary = await plugin(['capture', 'summary', '-n', app, 'web-http'], reader, port);
          expect(summary.code, summary.stderr).to.equal(0);
          // tcpdump-like lines of the client's requests to the web pod.
          expect(summary.stdout).to.match(new RegExp(`IP ${clientIP.replaceAll('.', '\\.')}\\.\\d+ > ${webIP.replaceAll('.', '\\.')}\\.8080: Flags \\[S\\]`));
          log.info('capture downloaded', { through: target, files: pcaps });
        } finally {
          forward.stop();
        }
      }
    });
  });

  describe('the apiserver\'s audit log, through the agent pod', function () {
    const fwd = 'to-receiver';
    const trafficNs = 'audit-traffic';
    const receiver = new AuditReceiver();
    const logged = (): Promise<LoggedEvent[]> => auditLogEvents(node!.cp.auditLogPath);
    const forwarder = async (): Promise<ForwarderStatus> =>
      (JSON.parse(await kubectl(['get', 'auditforwarder', fwd, '-o', 'json'])) as { status?: ForwarderStatus }).status ?? {};
    const readyOf = async (): Promise<string> => (await forwarder()).conditions?.find((c) => c.type === 'Ready')?.status ?? '';
    const agentPod = async (): Promise<string> =>
      (await kubectl(['-n', ns, 'get', 'pods', '-l', 'app.kubernetes.io/name=netwarden-agent', '--field-selector=status.phase=Running', '-o', 'jsonpath={.items[*].metadata.name}'])).trim();
    /** Waits until the receiver holds every one of `events` (by auditID and stage); says which are missing. */
    const waitDelivered = async (events: LoggedEvent[], what: string, timeoutMs: number): Promise<void> => {
      let missing: LoggedEvent[] = [];
      await waitFor(() => {
        missing = events.filter((e) => !receiver.has(e.key));
        return missing.length === 0;
      }, { timeoutMs, intervalMs: 250, description: `${what}: all ${events.length} events at the receiver` }).catch(async (err: unknown) => {
        const m = missing.slice(0, 5).map((e) => `${e.key} ${e.verb} ${e.uri} at ${new Date(e.at).toISOString()}`).join('; ');
        const agentLog = await node!.cp.kubectl(['-n', ns, 'logs', '-l', 'app.kubernetes.io/name=netwarden-agent', '--tail=30']);
        throw new Error(`${String(err)}; ${missing.length} missing, e.g. ${m}\nstatus: ${JSON.stringify(await forwarder())}\n--- agent\n${agentLog.stdout}${agentLog.stderr}`);
      });
    };

    before(async function () {
      if (!node) this.skip();
      // On the node's bridge address: the agent pod is in the host's network namespace, like a
      // collector on the node's network would be.
      await receiver.start(nodeIP);
      await kubectl(['create', 'namespace', trafficNs]);
    });

    after(async function () {
      await receiver.stop();
    });

    it('ships the audit events of a user\'s requests to a webhook receiver, and kubectl get auditforwarders shows them shipped', async function () {
      this.timeout(240_000);
      const t0 = performance.now();
      const defaultPath = `${hostAuditLogDir}/audit.log`;
      await kubectl(['apply', '-f', '-'], YAML.stringify({
        apiVersion: 'netwarden.io/v1alpha1', kind: 'AuditForwarder', metadata: { name: fwd },
        spec: {
          // Left to their defaults: nodeSelector (the control-plane label kubeadm puts on the node)
          // and source.path, unless this host had an audit directory of its own (realnode.ts).
          ...(node!.cp.auditLogPath === defaultPath ? {} : { source: { path: node!.cp.auditLogPath } }),
          batch: { maxWait: '2s' },
          sink: { webhook: { url: receiver.url('/audit'), allowInsecure: true } },
        },
      }));
      await waitFor(async () => (await readyOf()) === 'True', { timeoutMs: 60_000, description: `AuditForwarder ${fwd} Ready` }).catch(async (err: unknown) => {
        throw new Error(`${String(err)}\n${JSON.stringify(await forwarder())}\n${await diagnose()}`);
      });
      timings.auditReadyMs = Math.round(performance.now() - t0);
      // With no checkpoint the agent starts at the oldest file on disk: the log from before the
      // forwarder existed (the install itself) is shipped too.
      const backlog = await logged();
      const install = backlog.find((e) => e.verb === 'create' && e.resource === 'daemonsets' && e.name === 'netwarden-agent');
      await waitDelivered(backlog, 'the log written before the forwarder', 90_000);
      timings.auditBacklogMs = Math.round(performance.now() - t0);
      log.info('audit backlog shipped', { events: backlog.length, since: new Date(backlog[0]!.at).toISOString(), installCreateShipped: install ? receiver.has(install.key) : 'rotated away before' });

      // A user's requests: each ConfigMap's create event, found in the log by its name, reaches the receiver.
      const latencies: number[] = [];
      for (let i = 0; i < 5; i++) {
        const name = `audit-probe-${i}`;
        const sent = Date.now();
        await kubectl(['-n', trafficNs, 'create', 'configmap', name, '--from-literal=k=v']);
        const event = await waitFor(async () => (await logged()).find((e) => e.verb === 'create' && e.resource === 'configmaps' && e.name === name), {
          timeoutMs: 10_000, description: `the apiserver's audit event of creating ${name}`,
        });
        await waitDelivered([event], name, 30_000);
        latencies.push(receiver.receivedAt(event.key)! - sent);
        const item = receiver.item(event.key)!;
        expect(item.objectRef, name).to.deep.include({ resource: 'configmaps', namespace: trafficNs, name });
        expect((item.user as { username?: string }).username).to.equal('admin');
      }
      timings.auditRequestToReceiverMaxMs = Math.max(...latencies);
      log.info('audit events of the requests at the receiver', { msFromRequest: latencies, maxWait: '2s' });

      // What the user sees: Ready, one node, and the counts shipped.
      const got = receiver.distinct();
      await waitFor(async () => ((await forwarder()).shippedEvents ?? 0) >= got, { timeoutMs: 60_000, description: `status.shippedEvents >= the ${got} events received` });
      const table = await kubectl(['get', 'auditforwarders']);
      const row = table.split('\n').find((l) => l.startsWith(`${fwd} `)) ?? '';
      const [, nodes, unhealthy, shipped, , ready] = row.trim().split(/\s+/);
      expect({ nodes, unhealthy, ready }, table).to.deep.equal({ nodes: '1', unhealthy: '0', ready: 'True' });
      expect(Number(shipped), table).to.be.greaterThan(0);
      log.info('kubectl get auditforwarders', { table, receivedEvents: got, receivedBatches: receiver.batches });
    });

    it('loses no audit event while the agent DaemonSet rolls (kubectl rollout restart), and the new pod resumes from the checkpoint', async function () {
      this.timeout(300_000);
      const oldPod = await agentPod();
      const shippedBefore = (await forwarder()).shippedEvents ?? 0;
      // Everything logged until here is at the receiver (the test above waited for it): a new pod
      // that started over instead of resuming from its checkpoint would send it all again.
      const settled = new Set(receiver.keys());
      const windowStart = Date.now();
      const traffic = new Traffic(node!.cp, trafficNs);
      traffic.start();
      await new Promise((r) => setTimeout(r, 5_000));
      const r0 = Date.now();
      await kubectl(['-n', ns, 'rollout', 'restart', 'daemonset/netwarden-agent']);
      await rollout('daemonset/netwarden-agent', '180s');
      const r1 = Date.now();
      // Requests go on while the new pod catches up.
      await new Promise((r) => setTimeout(r, 5_000));
      await traffic.stop();
      const windowEnd = Date.now();
      const newPod = await agentPod();
      expect(newPod).to.not.equal(oldPod);
      expect(newPod).to.not.equal('');

      const all = await logged();
      // Nothing of the window rotated away before it could be checked (lumberjack keeps 10 files of 1 MB).
      expect(all[0]!.at, 'the oldest event on disk is older than the window').to.be.below(windowStart);
      const window = all.filter((e) => e.at >= windowStart && e.at <= windowEnd);
      const duringRollout = window.filter((e) => e.at >= r0 && e.at <= r1).length;
      const trafficCreates = window.filter((e) => e.verb === 'create' && e.namespace === trafficNs).length;
      expect(trafficCreates, 'the traffic\'s creates are in the log').to.be.greaterThan(0);
      const d0 = Date.now();
      await waitDelivered(window, 'the rollout window', 120_000);
      const drainMs = Date.now() - d0;
      const inWindow = new Set(window.map((e) => e.key));
      const duplicates = receiver.copies().filter(([k]) => inWindow.has(k)).reduce((n, [, c]) => n + c - 1, 0);
      const resent = receiver.keysReceivedAfter(r0).filter((k) => settled.has(k));
      expect(resent, 'events delivered before the rollout, sent again by the new pod').to.have.length(0);
      const status = await waitFor(async () => {
        const s = await forwarder();
        return (s.shippedEvents ?? 0) - shippedBefore >= window.length ? s : undefined;
      }, { timeoutMs: 60_000, description: `status.shippedEvents up by the window's ${window.length} events from ${shippedBefore}` });
      expect(status.gaps ?? 0, 'lines skipped').to.equal(0);
      expect(status.conditions?.find((c) => c.type === 'Ready')?.status).to.equal('True');
      timings.auditRolloutMs = r1 - r0;
      log.info('audit log through the rollout', {
        oldPod, newPod, rolloutMs: r1 - r0, windowMs: windowEnd - windowStart, eventsInWindow: window.length,
        eventsDuringRollout: duringRollout, lost: 0, duplicates, drainAfterTrafficMs: drainMs,
        requests: traffic.requests, failedRequests: traffic.failures, shippedEvents: status.shippedEvents,
      });
    });
  });
});

describe('helm install and helm upgrade of charts/netwarden on a real node', function () {
  this.timeout(300_000);
  const { node, timings, kubectl, rollout } = realNodeWithImage();
  const helm = async (args: string[]): Promise<string> => {
    const r = await tool('helm', [...args, `--kubeconfig=${node().cp.kubeconfigPath}`]);
    if (r.code !== 0) throw new Error(`helm ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const agentCsrs = async (): Promise<number> =>
    (JSON.parse(await kubectl(['get', 'csr', '-o', 'json'])) as { items: { spec: { signerName: string }; status: { certificate?: string } }[] }).items
      .filter((c) => c.spec.signerName === 'netwarden.io/agent-serving' && c.status.certificate).length;

  it('installs with the README\'s helm install and the pods turn Ready', async function () {
    const t0 = performance.now();
    const out = await helm(['install', 'netwarden', CHART_DIR, '--namespace', ns, '--create-namespace']);
    expect(out).to.match(/STATUS: deployed/);
    await rollout('deployment/netwarden-controller', '180s');
    await rollout('daemonset/netwarden-agent', '180s');
    timings.helmReadyMs = Math.round(performance.now() - t0);
    expect(await kubectl(['-n', ns, 'get', 'deployment', 'netwarden-controller', '-o', 'jsonpath={.status.readyReplicas}'])).to.equal('2');
    await waitFor(async () => (await agentCsrs()) >= 1, { timeoutMs: 30_000, description: 'the agent\'s certificate signed' });
  });

  it('rolls the controller and the agent with helm upgrade, and they turn Ready again', async function () {
    const t0 = performance.now();
    const out = await helm(['upgrade', 'netwarden', CHART_DIR, '--namespace', ns, '--reuse-values',
      '--set', 'controller.podAnnotations.netwarden\\.io/upgraded=yes', '--set', 'agent.podAnnotations.netwarden\\.io/upgraded=yes']);
    expect(out).to.match(/REVISION: 2/);
    await rollout('deployment/netwarden-controller', '180s');
    await rollout('daemonset/netwarden-agent', '180s');
    timings.helmUpgradeMs = Math.round(performance.now() - t0);
    const pods = JSON.parse(await kubectl(['-n', ns, 'get', 'pods', '-o', 'json'])) as { items: { metadata: { name: string; annotations?: Record<string, string>; deletionTimestamp?: string } }[] };
    const live = pods.items.filter((p) => !p.metadata.deletionTimestamp);
    expect(live.map((p) => p.metadata.annotations?.['netwarden.io/upgraded'])).to.deep.equal(live.map(() => 'yes'));
    // The new agent pod gets its own certificate (the old pod's key died with it).
    await waitFor(async () => (await agentCsrs()) >= 2, { timeoutMs: 30_000, description: 'the new agent pod\'s certificate signed' });
    expect(await helm(['history', 'netwarden', '--namespace', ns, '--max', '1'])).to.match(/^2\s.*deployed\s.*Upgrade complete/m);
  });
});
