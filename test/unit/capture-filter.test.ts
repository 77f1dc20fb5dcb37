// PacketCapture filters: Calico's protocol/ports list and the direction compile into one libpcap
// expression that libpcap itself accepts, and that matches the right packets on a live interface.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { compileCaptureFilter, FilterError } from '../../src/nodeagent/capture/filter.js';
import { libpcapRejects, openLiveCapture } from '../../src/nodeagent/libpcap.js';

const isRoot = process.getuid?.() === 0;
const POD = '10.244.1.3';

describe('capture: filter compile', function () {
  it('captures all of the pod when there are no filters', function () {
    expect(compileCaptureFilter(undefined, 'both', POD)).to.equal('(host 10.244.1.3)');
    expect(compileCaptureFilter([], 'both', POD)).to.equal('(host 10.244.1.3)');
  });

  it('states the direction by the pod address: ingress is to the pod, egress from it', function () {
    expect(compileCaptureFilter([], 'ingress', POD)).to.equal('(dst host 10.244.1.3)');
    expect(compileCaptureFilter([], 'egress', POD)).to.equal('(src host 10.244.1.3)');
    expect(compileCaptureFilter([], 'ingress', 'fd00::5')).to.equal('(dst host fd00::5)');
  });

  it('ORs the filters; ports and a:b ranges go with their protocol', function () {
    const f = compileCaptureFilter(
      [
        { protocol: 'UDP', ports: [53] },
        { protocol: 'TCP', ports: ['8000:8080', '443'] },
      ],
      'both',
      POD,
    );
    expect(f).to.equal('(host 10.244.1.3) and ((udp and (port 53)) or (tcp and (portrange 8000-8080 or port 443)))');
  });

  it('maps every Calico protocol name, and numbers', function () {
    const one = (protocol: string | number) => compileCaptureFilter([{ protocol }], 'both', POD).replace('(host 10.244.1.3) and ', '');
    expect(one('TCP')).to.equal('((tcp))');
    expect(one('ICMP')).to.equal('((icmp))');
    expect(one('ICMPv6')).to.equal('((icmp6))');
    expect(one('SCTP')).to.equal('((sctp))');
    expect(one('UDPLite')).to.equal('((ip proto 136 or ip6 proto 136))');
    expect(one(17)).to.equal('((udp))');
    expect(one(47)).to.equal('(((ip proto 47 or ip6 proto 47)))');
  });

  it('treats a filter with ports but no protocol as any ported protocol, and an empty filter as everything', function () {
    expect(compileCaptureFilter([{ ports: [53] }], 'both', POD)).to.equal('(host 10.244.1.3) and ((port 53))');
    expect(compileCaptureFilter([{ protocol: 'UDP' }, {}], 'both', POD)).to.equal('(host 10.244.1.3)');
  });

  it('refuses what Calico refuses and anything that is not an IP, a port or a protocol', function () {
    expect(() => compileCaptureFilter([{ protocol: 'ICMP', ports: [1] }], 'both', POD)).to.throw(FilterError, /ports are only valid/);
    expect(() => compileCaptureFilter([{ protocol: 'UDP', ports: ['90:80'] }], 'both', POD)).to.throw(FilterError, /low <= high/);
    expect(() => compileCaptureFilter([{ protocol: 'UDP', ports: ['53 or host 1.2.3.4'] }], 'both', POD)).to.throw(FilterError, /not a port/);
    expect(() => compileCaptureFilter([{ protocol: 'udp' }], 'both', POD)).to.throw(FilterError, /not one of/);
    expect(() => compileCaptureFilter([{ protocol: 300 }], 'both', POD)).to.throw(FilterError, /1\.\.255/);
    expect(() => compileCaptureFilter([], 'both', '10.244.1.3 or net 0/0')).to.throw(FilterError, /not an IP/);
  });

  (isRoot ? it : it.skip)('compiles to expressions libpcap accepts, and libpcap names what it rejects', function () {
    const filters = [
      [{ protocol: 'UDP', ports: [53] }, { protocol: 'TCP', ports: ['8000:8080'] }],
      [{ protocol: 'UDPLite', ports: [53, '100:200'] }],
      [{ protocol: 'SCTP', ports: ['1:65535'] }, { protocol: 'ICMPv6' }, { protocol: 132 }, { protocol: 255 }],
      [{ ports: ['1:2', 3] }],
    ];
    for (const direction of ['ingress', 'egress', 'both'] as const) {
      for (const f of filters) {
        for (const ip of [POD, 'fd00:10:244::3']) {
          const expr = compileCaptureFilter(f, direction, ip);
          expect(libpcapRejects(expr), expr).to.equal(undefined);
        }
      }
    }
    expect(libpcapRejects('udp port nosuchservice')).to.match(/unknown port/);
  });
});

describe('capture: filter on live packets (root)', function () {
  before(function () {
    if (!isRoot) this.skip();
  });

  /** Sends the datagrams over lo and returns the destination ports libpcap let through. */
  async function capturedPorts(filter: string, send: () => Promise<void>): Promise<number[]> {
    const seen: number[] = [];
    const live = openLiveCapture({
      device: 'lo',
      filter,
      snapLen: 256,
      kernelBufferBytes: 1 << 20,
      onPacket: (pkt) => {
        // lo is Ethernet-framed: 14 + IPv4 header, then the destination port.
        const ihl = (pkt[14]! & 0xf) * 4;
        seen.push(pkt.readUInt16BE(14 + ihl + 2));
      },
    });
    try {
      await send();
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      live.close();
    }
    return seen.sort((a, b) => a - b);
  }

  it('keeps only UDP to and from the listed port and ranges', async function () {
    const base = 40000 + Math.floor(Math.random() * 20000);
    const filter = compileCaptureFilter([{ protocol: 'UDP', ports: [base, `${base + 10}:${base + 12}`] }], 'both', '127.0.0.1');
    const ports = await capturedPorts(filter, async () => {
      const s = createSocket('udp4');
      for (const p of [base, base + 1, base + 10, base + 12, base + 13]) await new Promise<void>((r) => s.send('x', p, '127.0.0.1', () => r()));
      s.close();
    });
    expect(ports).to.deep.equal([base, base + 10, base + 12]);
  });

  it('matches UDPLite ports by header offset (no libpcap keyword covers them)', async function () {
    const base = 40000 + Math.floor(Math.random() * 20000);
    const filter = compileCaptureFilter([{ protocol: 'UDPLite', ports: [`${base}:${base + 1}`] }], 'both', '127.0.0.1');
    const ports = await capturedPorts(filter, async () => {
      // A raw IP-protocol-136 socket: the kernel adds the IPv4 header, we write the UDPLite one.
      const py = `import socket,struct,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_RAW,136)\nfor p in map(int,sys.argv[1:]): s.sendto(struct.pack('!HHHH',1234,p,8,0)+b'x',('127.0.0.1',0))`;
      execFileSync('python3', ['-c', py, String(base), String(base + 1), String(base + 2)]);
    });
    expect(ports).to.deep.equal([base, base + 1]);
  });
});
