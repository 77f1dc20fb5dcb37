// PacketCapture helpers of the e2e suites: the resource as kubectl shows it, a node's status entry,
// its conditions, and real UDP traffic from inside a pod network for the captures to see.
import type { ControlPlane } from './controlplane.js';
import { waitFor } from './fixtures.js';
import { mustKubectl } from './netwarden.js';
import type { PodNetwork } from './podnet.js';
import type { CaptureFiles, PacketCapture } from '../../src/apis/packetcapture.js';

export type Condition = { type: string; status: string; reason: string; message: string };

export async function getCapture(cp: ControlPlane, namespace: string, name: string): Promise<PacketCapture> {
  return JSON.parse(await mustKubectl(cp, ['get', 'packetcapture', name, '-n', namespace, '-o', 'json'])) as PacketCapture;
}

/** The status.files entry the agent of `node` wrote. */
export async function entryOn(cp: ControlPlane, namespace: string, name: string, node: string): Promise<CaptureFiles | undefined> {
  return (await getCapture(cp, namespace, name)).status?.files?.find((f) => f.node === node);
}

export function condition(c: PacketCapture, type: string): Condition | undefined {
  return c.status?.conditions?.find((x) => x.type === type) as Condition | undefined;
}

/** `kubectl apply` of a PacketCapture with the given spec lines (indented two spaces). */
export function applyCapture(cp: ControlPlane, namespace: string, name: string, spec: string): Promise<string> {
  return mustKubectl(cp, ['apply', '-f', '-'], `apiVersion: netwarden.io/v1alpha1\nkind: PacketCapture\nmetadata: {name: ${name}, namespace: ${namespace}}\nspec:\n${spec}\n`);
}

/** UDP datagrams from inside a pod network, each carrying `marker-<i>`, padded to `size` bytes. */
export async function sendUdp(pod: PodNetwork, dst: string, port: number, marker: string, count: number, size = 100): Promise<void> {
  const py = `
import socket, sys
dst, port, marker, n, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    p = ('%s-%d ' % (marker, i)).encode()
    s.sendto(p + b'.' * max(0, size - len(p)), (dst, port))
`;
  const r = await pod.exec(['python3', '-c', py, dst, String(port), marker, String(count), String(size)], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`sending UDP from ${pod.name} failed: ${r.stderr}`);
}

/**
 * Bursts of `sendUdp` until `done` gives a value. libpcap's ring loses part of a burst when the
 * machine is loaded, so a test that needs some amount captured (a quota, a disk floor) sends until
 * the capture shows it, not a fixed amount that is enough only on a quiet machine.
 */
export async function sendUdpUntil<T>(
  pod: PodNetwork, dst: string, port: number, marker: string, size: number,
  done: () => Promise<T | undefined>, opts: { description: string; burst?: number; timeoutMs?: number },
): Promise<Exclude<T, undefined | null | false>> {
  let burst = 0;
  return waitFor(async () => {
    const value = await done();
    if (value !== undefined) return value;
    await sendUdp(pod, dst, port, `${marker}${burst++}`, opts.burst ?? 250, size);
    await new Promise((r) => setTimeout(r, 1000)); // time for the agent to write its entry
    return done();
  }, { timeoutMs: opts.timeoutMs ?? 120_000, intervalMs: 0, description: opts.description });
}
