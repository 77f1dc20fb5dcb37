#!/usr/bin/env node
// The one `netwarden` command: the controller, the node agent, and offline tools.
// Each subcommand imports its code when it runs: the offline tools (validate, drops parse, pcap
// summary) start without the Kubernetes client, libpcap or the runtime (test/unit/cli-lazy-load.test.ts).
import { Command, InvalidArgumentError } from 'commander';
import type { ControllerFlags } from './controller.js';
import type { AgentFlags } from './agent.js';
import { parseByteSize, parseDiskThreshold, parseRingSize } from '../nodeagent/capture/plan.js';
import { parseDuration } from '../util/duration.js';
import { CONTROLLER_AUDIENCE, CONTROLLER_SERVICE_ACCOUNT, DEFAULT_CONTROLLER_TOKEN_FILE } from '../apis/identity.js';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('not a port number');
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** A commander argument parser from a parser that throws plain Errors. */
function flagParser<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (err) {
      throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
    }
  };
}

function durationFlag(value: string): string {
  // The CRDs' duration syntax, so a flag accepts exactly what a spec field would.
  if (parseDuration(value) === undefined) throw new Error(`${JSON.stringify(value)} is not a duration such as 90s, 30m or 1h`);
  return value;
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('not a positive integer');
  return n;
}

/** A positive rate: "10", "0.5" or a fraction such as "1/300". */
function positiveRate(value: string): number {
  const [num = '', den = '1', ...rest] = value.split('/');
  const n = Number(num) / Number(den);
  if (rest.length > 0 || num.trim() === '' || !(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('not a positive number (such as 10, 0.5 or 1/300)');
  return n;
}

const METRICS_INSECURE_HELP =
  'serve /metrics to anyone over plain HTTP (default: only to bearer tokens allowed get on the non-resource URL /metrics, by TokenReview and SubjectAccessReview, over HTTPS with the --tls-cert-file key pair)';

export function buildCli(): Command {
  const program = new Command('netwarden').description('Netwarden: the cluster network, visible and debuggable by Kubernetes means');

  program
    .command('controller')
    .description('run the controller (reconciles DropTail, PacketCapture, AuditForwarder)')
    .option('--kubeconfig <path>', 'kubeconfig file (default: in-cluster config)')
    .option('--metrics-port <port>', 'port of /healthz, /readyz and /metrics', port, 8080)
    .option('--metrics-address <address>', 'address to bind /metrics on', '0.0.0.0')
    .option('--metrics-insecure', METRICS_INSECURE_HELP, false)
    .option('--leader-elect', 'elect one active replica through a Lease', false)
    .option('--leader-election-namespace <ns>', 'namespace of the Lease (default: the pod namespace)')
    .option('--leader-election-id <name>', 'name of the Lease', 'netwarden-controller')
    .option('--identity <id>', 'this replica in the Lease (default: pod name or hostname_pid)')
    .option('--tls-cert-file <path>', 'serving certificate of the HTTPS API (drop intake, capture downloads), reloaded when it changes; default: one from Netwarden\'s own CA')
    .option('--tls-key-file <path>', 'key of that certificate')
    .option('--https-port <port>', 'port of the HTTPS API', port, 8443)
    .option('--https-address <address>', 'address of the HTTPS API', '0.0.0.0')
    .option('--ca-file <path>', "CA bundle that signs the agents' serving certificates; default: Netwarden's own CA, which signs them through the CSR API")
    .option('--ca-secret-namespace <ns>', "namespace of the Secret netwarden-ca that holds Netwarden's CA and its key (one no agent can read)", 'netwarden-pki')
    .option('--ca-validity <duration>', "lifetime of each of Netwarden's CAs (rotated at 80 %)", flagParser(durationFlag), '8760h')
    .option('--serving-cert-validity <duration>', "lifetime of the controller's and (at most) the agents' serving certificates (renewed at 70-90 %)", flagParser(durationFlag), '168h')
    .option('--service-name <name>', "the controller's Service, whose DNS names its certificate carries", 'netwarden-controller')
    .option('--agent-port <port>', "port of the agents' HTTPS API on each node's InternalIP", port, 9443)
    .option('--service-account <name>', "this controller's ServiceAccount (in $POD_NAMESPACE): it requests its tokens for the agents, one audience per node, from it", CONTROLLER_SERVICE_ACCOUNT)
    .option('--capture-max-bytes-per-pod <size>', 'cluster limit: a PacketCapture may not ask for more pcap bytes per pod (e.g. 1Gi)', flagParser(parseByteSize))
    .option('--capture-max-files <n>', 'cluster limit: a PacketCapture may not keep more files per pod', positiveInteger)
    .option('--capture-max-duration <duration>', 'cluster limit: a PacketCapture may not run longer (e.g. 1h)', flagParser(durationFlag))
    .option('--capture-max-nodes <n>', 'cluster limit: a PacketCapture may not select pods on more nodes (each writes its own status.files entry)', positiveInteger, 500)
    .option('--event-qps <rate>', 'DropTail Events the controller writes per second, for all drops together (creates and count bumps; over it, drops fold into one aggregated Event per Pod)', positiveRate, 10)
    .option('--event-burst <n>', 'DropTail Event writes allowed at once above --event-qps', positiveInteger, 50)
    .option('--event-pod-qps <rate>', "DropTail Event writes per second for one Pod (client-go's spam filter default: 1/300)", positiveRate, 1 / 300)
    .option('--event-pod-burst <n>', 'DropTail Event writes allowed at once for one Pod', positiveInteger, 25)
    .option('--dns-server <address>', 'reverse DNS server for DropTail, ip or ip:port (repeatable; default: the system resolvers)', collect, [])
    .option('--drop-queue-max-bytes <size>', 'DropTail: memory for accepted drops waiting for their Events; a batch over it is refused with 503 + Retry-After and the agent sends it again', flagParser(parseByteSize), 16 * 1024 * 1024)
    .option('--https-max-kept-alive <n>', "connections of agents and users the HTTPS API keeps alive (~90 KB of TLS buffers each); above it, each connection is closed after its answer and the client reconnects, resuming its TLS session", positiveInteger, 512)
    .option('--drop-dedupe-max-bytes <size>', 'DropTail: memory for the ids of counted drops, so a re-sent batch is not counted twice (32 B per id; the oldest go first)', flagParser(parseByteSize), 8 * 1024 * 1024)
    .action(async (opts: ControllerFlags) => {
      const { runController } = await import('./controller.js');
      await runController(opts);
    });

  program
    .command('agent')
    .description('run the node agent for one node')
    .option('--node-name <name>', 'the node this agent runs on (default: $NODE_NAME)', process.env.NODE_NAME)
    .option('--kubeconfig <path>', 'kubeconfig file (default: in-cluster config)')
    .option('--metrics-port <port>', 'port of /healthz and /metrics', port, 9090)
    .option('--metrics-address <address>', 'address to bind /metrics on', '0.0.0.0')
    .option('--metrics-insecure', METRICS_INSECURE_HELP, false)
    .option('--state-dir <dir>', 'checkpoints, cursors and capture files', '/var/lib/netwarden')
    .option('--controller-url <url>', "the controller's HTTPS API", 'https://netwarden-controller.netwarden-system.svc')
    .option('--ca-file <path>', "CA bundle for the controller's certificate; default: the ConfigMap netwarden-ca the controller publishes")
    .option('--controller-token-file <path>', `this pod's projected ServiceAccount token of audience ${CONTROLLER_AUDIENCE}, sent to the controller (read again as it rotates)`, DEFAULT_CONTROLLER_TOKEN_FILE)
    .option('--tls-cert-file <path>', 'serving certificate of the agent HTTPS API (capture files), reloaded when it changes; default: one for this node from the CSR API')
    .option('--tls-key-file <path>', 'key of that certificate')
    .option('--files-port <port>', 'port of the agent HTTPS API', port, 9443)
    .option('--no-files-api', 'serve no capture file API on this node (PacketCapture downloads then miss its files)')
    .option('--bind-address <address>', 'address of the agent HTTPS API', '0.0.0.0')
    .option('--capture-max-bytes-per-pod <size>', 'PacketCapture ceiling: pcap bytes per pod (e.g. 1Gi)', flagParser(parseByteSize))
    .option('--capture-max-files <n>', 'PacketCapture ceiling: pcap files kept per pod', positiveInteger)
    .option('--capture-min-free-disk <size|percent>', "PacketCapture: do not start, or stop writing, when free disk of the state directory would fall below this (default 15%: the kubelet's nodefs.available<10% eviction threshold plus a 5% margin; or e.g. 1Gi)", flagParser(parseDiskThreshold))
    .option('--capture-max-concurrent <n>', 'PacketCapture node quota: pod captures running at once on this node (default 12)', positiveInteger)
    .option('--capture-max-bytes <size>', 'PacketCapture node quota: bytes of capture files on this node (default 10Gi)', flagParser(parseByteSize))
    .option('--no-capture-evict-finished', "PacketCapture: at --capture-max-bytes, hold new files back instead of deleting finished captures' files (oldest finished first) to make room")
    .option('--capture-ring-size <size>', 'PacketCapture: libpcap buffer of each pod capture, 1Mi..64Mi; the kernel ring takes twice this (default 16Mi)', flagParser(parseRingSize))
    .option('--capture-ring-budget <size>', 'PacketCapture node quota: kernel ring memory of all pod captures together, 2 x ring size each (default 384Mi: 12 x 32Mi)', flagParser(parseByteSize))
    .option('--namespace <ns>', "Netwarden's own namespace, the only one whose Secrets the agent reads (default: $POD_NAMESPACE, else netwarden-system)")
    .option('--audit-log-dir <dir>', 'directory AuditForwarder may read audit logs from (repeatable; default /var/log/kubernetes/audit)', collect, [])
    .action(async (opts: AgentFlags) => {
      const nodeName = opts.nodeName;
      if (!nodeName) return program.error('--node-name or $NODE_NAME is required');
      const { runAgent } = await import('./agent.js');
      await runAgent({ ...opts, nodeName });
    });

  program
    .command('validate')
    .description('check Netwarden manifests offline against the CRD schemas and rules')
    .requiredOption('-f, --filename <path>', 'file or directory (repeatable)', collect, [])
    .action(async (opts: { filename: string[] }) => {
      const { runValidate } = await import('./validate.js');
      process.exitCode = await runValidate(opts.filename, process.stdout);
    });

  const drops = program.command('drops').description('packet drop tools');
  drops
    .command('parse')
    .description('parse firewall log lines (or journalctl -o json entries) from stdin into one JSON object per line')
    .option('--prefix <prefix>', 'log prefix that marks a drop (repeatable; any netfilter line when none)', collect, [])
    .option('--keep-raw', 'include the raw line in each parsed drop', false)
    .action(async (opts: { prefix: string[]; keepRaw: boolean }) => {
      // Skipped lines are part of the output (with their reason), not a failure of the command.
      const { runDropsParse } = await import('./drops.js');
      const { parsed, skipped } = await runDropsParse({ prefixes: opts.prefix, inputFd: 0, input: () => process.stdin, output: process.stdout, keepRaw: opts.keepRaw });
      process.stderr.write(`${parsed} drops parsed, ${skipped} lines skipped\n`);
    });

  const pcap = program.command('pcap').description('capture file tools');
  pcap
    .command('summary')
    .description('one tcpdump-like line per packet of pcap/pcapng files (times in UTC; decodes IPv4 options such as Cilium DSR)')
    .argument('<files...>', 'pcap or pcapng files')
    .action(async (files: string[]) => {
      const { runPcapSummary } = await import('../pcap/summary.js');
      process.exitCode = await runPcapSummary(files, process.stdout, process.stderr);
    });

  return program;
}

await buildCli().parseAsync(process.argv);
