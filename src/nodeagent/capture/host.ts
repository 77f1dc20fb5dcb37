// What the agent asks the node itself: the host-side interface of a pod (from the host route to
// its IP, or the bridge port its MAC is behind), free disk space, and a snapshot of the network state for includeMetadata.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import net from 'node:net';
import { promisify } from 'node:util';
import { isInterfaceName } from './store.js';

const exec = promisify(execFile);

interface RouteGetEntry {
  type?: string;
  dst?: string;
  dev?: string;
  gateway?: string;
}

/**
 * Routed CNIs (Calico, Cilium with per-endpoint routes, kindnet, ptp) give every local pod a host
 * route `<podIP> dev <host-side veth>`. A route via a gateway or to a local address means the pod
 * is not attached here, and capturing there would see other traffic.
 */
export async function hostInterfaceFor(podIP: string): Promise<string> {
  if (net.isIP(podIP) === 0) throw new Error(`pod IP ${JSON.stringify(podIP)} is not an IP address`);
  const { stdout } = await exec('ip', ['-j', 'route', 'get', podIP], { timeout: 10_000 });
  const [route] = JSON.parse(stdout) as RouteGetEntry[];
  if (!route?.dev) throw new Error(`no route to pod IP ${podIP} on this node`);
  if (route.type === 'local') throw new Error(`pod IP ${podIP} is an address of this node, not a pod behind an interface`);
  if (route.gateway) throw new Error(`pod IP ${podIP} is routed via ${route.gateway} (${route.dev}), not to a pod interface on this node`);
  if (!isInterfaceName(route.dev)) throw new Error(`interface ${JSON.stringify(route.dev)} of pod IP ${podIP} has an unexpected name`);
  // Bridge CNIs (the CNI bridge plugin, flannel's cni0, kubenet's cbr0) route every pod to the
  // bridge: found on the real node, where captures opened the bridge and saw the pod's packets
  // only through its promiscuous copy. The pod's own port is the one its MAC was learnt on.
  if (existsSync(`/sys/class/net/${route.dev}/bridge`)) return (await bridgePortFor(route.dev, podIP).catch(() => undefined)) ?? route.dev;
  return route.dev;
}

interface NeighEntry {
  lladdr?: string;
}

interface FdbEntry {
  mac?: string;
  ifname?: string;
  master?: string;
}

/** The bridge port behind which the pod's MAC (from the neighbour table) was learnt; undefined when either is unknown. */
async function bridgePortFor(bridge: string, podIP: string): Promise<string | undefined> {
  const neigh = JSON.parse((await exec('ip', ['-j', 'neigh', 'show', 'to', podIP, 'dev', bridge], { timeout: 10_000 })).stdout || '[]') as NeighEntry[];
  const mac = neigh.find((n) => n.lladdr)?.lladdr?.toLowerCase();
  if (!mac) return undefined;
  const fdb = JSON.parse((await exec('bridge', ['-j', 'fdb', 'show', 'br', bridge], { timeout: 10_000 })).stdout || '[]') as FdbEntry[];
  const port = fdb.find((e) => e.mac?.toLowerCase() === mac && e.master === bridge && e.ifname)?.ifname;
  return port && isInterfaceName(port) ? port : undefined;
}

export interface DiskSpace {
  freeBytes: number;
  totalBytes: number;
}

/** Space available to unprivileged writers, like df's "Avail". */
export async function diskSpace(dir: string): Promise<DiskSpace> {
  const s = await statfs(dir);
  return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
}

const SNAPSHOT_COMMANDS: ReadonlyArray<readonly string[]> = [
  ['ip', '-d', 'addr'],
  ['ip', 'route'],
  ['ip', '-6', 'route'],
  ['ip', 'neigh'],
  ['nft', 'list', 'ruleset'],
];

/** Addresses, routes, neighbours and the nftables ruleset, each under its command line. */
export async function networkSnapshot(header: string): Promise<string> {
  const parts = [header];
  for (const cmd of SNAPSHOT_COMMANDS) {
    let body: string;
    try {
      const { stdout, stderr } = await exec(cmd[0]!, cmd.slice(1), { timeout: 15_000, maxBuffer: 64 * 1024 * 1024 });
      body = stdout + (stderr ? `\n(stderr) ${stderr}` : '');
    } catch (err) {
      body = `(failed: ${err instanceof Error ? err.message : String(err)})`;
    }
    parts.push(`### ${cmd.join(' ')}\n${body.trimEnd()}\n`);
  }
  return parts.join('\n');
}
