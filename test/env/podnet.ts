// Real pod networking, wired the way Calico wires a pod: a network namespace per pod, a veth pair
// (cali<hash> on the host, eth0 inside), the pod IP as a /32, a default route via the link-local
// next hop 169.254.1.1 that the host answers with proxy ARP, and a host /32 route to the veth.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { registerExitCleanup, run, type ExecResult } from './controlplane.js';

export interface PodNetworkSpec {
  /** Short name; the namespace is nw-<name>. */
  name: string;
  /** Pod IPv4 address, inside 10.244.0.0/16. */
  ip: string;
  /** Host-side veth name (max 15 chars); default cali + 11 hex of sha1(name). */
  hostIfName?: string;
}

export interface PodNetwork {
  name: string;
  netns: string;
  ip: string;
  hostInterface: string;
  /** Runs a command inside the pod's network namespace (`ip netns exec`). */
  exec(cmd: string[], opts?: { timeoutMs?: number; input?: string }): Promise<ExecResult>;
  /** One ICMP echo from inside the pod: `ping -c1 -W<s>`, or a python3 raw-socket echo where iputils-ping is absent. */
  ping(target: string, timeoutSeconds?: number): Promise<ExecResult>;
  destroy(): Promise<void>;
}

const GATEWAY = '169.254.1.1';
const live = new Map<string, PodNetwork>();
/** netns -> host interface, for the synchronous exit cleanup. */
const liveSync = new Map<string, string>();
let unregisterExit: (() => void) | undefined;

// iputils-ping is not among the bootstrap's Debian packages; python3 is, and a raw socket suffices.
const PY_PING = `
import os, socket, struct, sys, time
dst, timeout = sys.argv[1], float(sys.argv[2])
def csum(b):
    b += b'\\0' * (len(b) % 2)
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    return ~(t + (t >> 16)) & 0xffff
ident, payload = os.getpid() & 0xffff, b'netwarden-ping'
hdr = struct.pack('!BBHHH', 8, 0, 0, ident, 1)
pkt = struct.pack('!BBHHH', 8, 0, csum(hdr + payload), ident, 1) + payload
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.sendto(pkt, (dst, 0))
end = time.time() + timeout
while time.time() < end:
    s.settimeout(max(end - time.time(), 0.01))
    try:
        data, addr = s.recvfrom(2048)
    except socket.timeout:
        break
    ihl = (data[0] & 15) * 4
    typ, _, _, rid, _ = struct.unpack('!BBHHH', data[ihl:ihl + 8])
    if typ == 0 and rid == ident and addr[0] == dst:
        print('echo reply from', dst)
        sys.exit(0)
print('no echo reply from', dst, 'within', timeout, 's')
sys.exit(1)
`;

let pingBinary: boolean | undefined;
function hasPing(): boolean {
  pingBinary ??= spawnSync('sh', ['-c', 'command -v ping'], { stdio: 'ignore' }).status === 0;
  return pingBinary;
}

function pingCommand(target: string, timeoutSeconds: number): string[] {
  return hasPing()
    ? ['ping', '-c1', `-W${timeoutSeconds}`, target]
    : ['python3', '-c', PY_PING, target, String(timeoutSeconds)];
}

/** Only 10.244.0.0/16: the tests must never touch the host's real routes. */
export function assertPodIP(ip: string): void {
  const parts = ip.split('.').map(Number);
  if (net.isIPv4(ip) && parts[0] === 10 && parts[1] === 244) return;
  throw new Error(`pod IP ${ip} is outside 10.244.0.0/16`);
}

function defaultHostIf(name: string): string {
  return `cali${createHash('sha1').update(name).digest('hex').slice(0, 11)}`;
}

/** `ip ...`, throwing with stderr on failure. */
async function ip(...args: string[]): Promise<void> {
  const r = await run('ip', args, { timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

async function writeSysctl(key: string, value: string): Promise<void> {
  await writeFile(`/proc/sys/${key.replaceAll('.', '/')}`, value);
}

/** Pods on one host reach each other only through the host's routing. */
async function ensureIpForward(): Promise<void> {
  const current = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
  if (current !== '1') await writeSysctl('net.ipv4.ip_forward', '1');
}

/** Synchronous teardown for process exit: deleting the netns destroys the veth pair too. */
function destroySync(netns: string, hostIf: string): void {
  spawnSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
  spawnSync('ip', ['link', 'del', hostIf], { stdio: 'ignore' });
}

function trackLive(pn: PodNetwork): void {
  live.set(pn.netns, pn);
  liveSync.set(pn.netns, pn.hostInterface);
  unregisterExit ??= registerExitCleanup(() => {
    for (const [netns, hostIf] of liveSync) destroySync(netns, hostIf);
    liveSync.clear();
  });
}

async function plumb(netns: string, hostIf: string, podIP: string): Promise<void> {
  await ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns);
  // Proxy ARP lets the host answer for 169.254.1.1, so the pod needs no real gateway address.
  await writeSysctl(`net.ipv4.conf.${hostIf}.proxy_arp`, '1');
  await writeSysctl(`net.ipv4.neigh.${hostIf}.proxy_delay`, '0');
  await ip('link', 'set', hostIf, 'up');
  await ip('-n', netns, 'link', 'set', 'lo', 'up');
  await ip('-n', netns, 'addr', 'add', `${podIP}/32`, 'dev', 'eth0');
  await ip('-n', netns, 'link', 'set', 'eth0', 'up');
  await ip('-n', netns, 'route', 'add', GATEWAY, 'dev', 'eth0', 'scope', 'link');
  await ip('-n', netns, 'route', 'add', 'default', 'via', GATEWAY, 'dev', 'eth0');
  // "add", not "replace": an existing route for this IP belongs to someone else, so fail loudly.
  await ip('route', 'add', `${podIP}/32`, 'dev', hostIf);
}

/** Creates the namespace nw-<name> wired like a Calico pod with address ip. */
export async function createPodNetwork(spec: PodNetworkSpec): Promise<PodNetwork> {
  assertPodIP(spec.ip);
  const netns = `nw-${spec.name}`;
  const hostIf = spec.hostIfName ?? defaultHostIf(spec.name);
  if (hostIf.length > 15) throw new Error(`interface name ${hostIf} is longer than 15 characters`);
  if (live.has(netns)) throw new Error(`pod network ${netns} already exists`);
  await ensureIpForward();
  await ip('netns', 'add', netns);
  const pn: PodNetwork = {
    name: spec.name,
    netns,
    ip: spec.ip,
    hostInterface: hostIf,
    exec: (cmd, opts) => run('ip', ['netns', 'exec', netns, ...cmd], { timeoutMs: opts?.timeoutMs ?? 60_000, input: opts?.input }),
    ping: (target, timeoutSeconds = 1) => pn.exec(pingCommand(target, timeoutSeconds), { timeoutMs: (timeoutSeconds + 10) * 1000 }),
    destroy: async () => {
      if (!live.delete(netns)) return;
      liveSync.delete(netns);
      // Deleting the netns takes eth0 and so its veth peer; the explicit link del covers a lagging kernel.
      await run('ip', ['netns', 'del', netns]);
      await run('ip', ['link', 'del', hostIf]);
    },
  };
  trackLive(pn);
  try {
    await plumb(netns, hostIf, spec.ip);
  } catch (err) {
    await pn.destroy();
    throw err;
  }
  return pn;
}

/** Destroys every pod network this process created. */
export async function destroyAllPodNetworks(): Promise<void> {
  for (const pn of [...live.values()]) await pn.destroy();
}

/**
 * A Python DNS client run inside a pod network: `python3 -c DNS_CLIENT SERVER NAME...` sends one A
 * query per name and prints "answered NAME" or "no answer NAME" for each.
 */
export const DNS_CLIENT = `
import socket, struct, sys
server, names = sys.argv[1], sys.argv[2:]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
for i, name in enumerate(names):
    q = struct.pack('!HHHHHH', 0x1000 + i, 0x0100, 1, 0, 0, 0)
    q += b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\\0' + struct.pack('!HH', 1, 1)
    s.sendto(q, (server, 53))
    try:
        s.recvfrom(512)
        print('answered', name)
    except socket.timeout:
        print('no answer', name)
`;

/** A host nftables table of its own: removed by remove(), or at process exit if a test dies first. */
export interface HostTable {
  remove(): Promise<void>;
}

/**
 * Adds `table ip <name>` with one forward chain (the pod-to-pod path through the host) holding
 * `rules`, as a NetworkPolicy engine would.
 */
export async function addForwardTable(name: string, rules: string[], priority = -5): Promise<HostTable> {
  const script = [`table ip ${name} {`, '  chain forward {', `    type filter hook forward priority ${priority}; policy accept;`, ...rules.map((r) => `    ${r}`), '  }', '}', ''].join('\n');
  const added = await run('nft', ['-f', '-'], { input: script });
  if (added.code !== 0) throw new Error(`nft -f failed: ${added.stderr}`);
  const unregister = registerExitCleanup(() => spawnSync('nft', ['delete', 'table', 'ip', name], { stdio: 'ignore' }));
  let removed = false;
  return {
    remove: async () => {
      if (removed) return;
      removed = true;
      await run('nft', ['delete', 'table', 'ip', name]);
      unregister();
    },
  };
}
