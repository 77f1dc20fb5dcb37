// Socket options libpcap does not set on its NFLOG (netlink) socket, set afterwards on its file
// descriptor. Without NETLINK_NO_ENOBUFS, a flood that overruns the socket's receive buffer sets a
// socket error; epoll reports it as POLLERR, libuv as UV_EBADF, and the `cap` binding asserts on
// that status and aborts the whole agent (`Pcap::cb_packets: Assertion 'status == 0' failed`, seen
// at 50,000 logged drops/s). With it, the kernel only drops what does not fit, as a ring would.
// SO_RCVBUFFORCE (CAP_NET_ADMIN, which NFLOG needs anyway) lifts the buffer past net.core.rmem_max,
// which caps the SO_RCVBUF libpcap asks for.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';

const SOL_SOCKET = 1;
const SO_RCVBUFFORCE = 33;
const SOL_NETLINK = 270;
const NETLINK_NO_ENOBUFS = 5;
const NETLINK_NETFILTER = 12;

type SetSockOpt = (fd: number, level: number, name: number, value: Buffer, length: number) => number;
let setsockopt: SetSockOpt | undefined;

// Synchronous, and only when an NFLOG group is opened: the options must be on before the event
// loop polls the socket for the first time.
function libc(): SetSockOpt {
  if (setsockopt) return setsockopt;
  const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  const lib = koffi.load('libc.so.6');
  setsockopt = lib.func('int setsockopt(int fd, int level, int name, void *value, uint32_t length)') as unknown as SetSockOpt;
  return setsockopt;
}

/** This process's socket file descriptors by inode. */
export function socketFds(): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${name}`));
      if (m) out.set(Number(m[1]), Number(name));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** Inodes of this network namespace's NETLINK_NETFILTER sockets (/proc/net/netlink). */
function netfilterSocketInodes(): Set<number> {
  const out = new Set<number>();
  for (const line of readFileSync('/proc/net/netlink', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    if (f.length >= 10 && Number(f[1]) === NETLINK_NETFILTER) out.add(Number(f[9]));
  }
  return out;
}

/**
 * Sets NETLINK_NO_ENOBUFS and the receive buffer on the netfilter netlink sockets opened since
 * `before` (socketFds() taken just before the open). Returns how many; throws when setsockopt fails.
 */
export function hardenNewNflogSockets(before: ReadonlyMap<number, number>, receiveBufferBytes: number): number {
  const netfilter = netfilterSocketInodes();
  const fds = [...socketFds()].filter(([inode]) => !before.has(inode) && netfilter.has(inode)).map(([, fd]) => fd);
  if (fds.length === 0) return 0;
  const set = libc();
  const one = Buffer.alloc(4);
  one.writeInt32LE(1);
  const size = Buffer.alloc(4);
  size.writeInt32LE(receiveBufferBytes);
  for (const fd of fds) {
    if (set(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, one, 4) !== 0) throw new Error(`setsockopt(NETLINK_NO_ENOBUFS) on fd ${fd} failed`);
    // Best effort: without CAP_NET_ADMIN the kernel's rmem_max stays the limit.
    set(fd, SOL_SOCKET, SO_RCVBUFFORCE, size, 4);
  }
  return fds.length;
}
