// Live NFLOG: an nftables rule logs a UDP packet to group 77, libpcap's nflog:77 device (through the
// `cap` binding) hands it over, decodeNflogPacket turns it into a PacketDrop. Needs root (skipped otherwise).
// The handle is opened through src/nodeagent/libpcap.ts, as the agent does: a raw cap handle that is
// closed and then garbage collected corrupts libuv's handle list, and the mocha process crashed
// with SIGSEGV several test files later.

import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { decodeNflogPacket, DLT_NFLOG } from '../../src/nodeagent/drops/nflog.js';
import { noDropMetrics } from '../../src/nodeagent/drops/metrics.js';
import { openPacketSource, type PacketSource } from '../../src/nodeagent/libpcap.js';

const TABLE = 'nwtest';
const GROUP = 77;

function nft(script: string): void {
  execFileSync('nft', ['-f', '-'], { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
}

describe('drops: NFLOG live capture (root)', function () {
  let source: PacketSource | undefined;
  let tableAdded = false;

  before(function () {
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) this.skip();
  });

  after(() => {
    source?.close();
    if (tableAdded) {
      try {
        nft(`delete table inet ${TABLE}\n`);
      } catch {
        // gone already
      }
    }
  });

  it('decodes a UDP packet to 127.0.0.1:9 logged by nft `log group 77`', async () => {
    try {
      nft(`delete table inet ${TABLE}\n`);
    } catch {
      // not there: fine
    }
    nft(`table inet ${TABLE} {\n  chain out {\n    type filter hook output priority 0;\n    udp dport 9 log group ${GROUP} prefix "nwtest-dropped: "\n  }\n}\n`);
    tableAdded = true;

    const buffer = Buffer.alloc(65535);
    let onPacket = (_nbytes: number): void => undefined;
    source = openPacketSource(`nflog:${GROUP}`, '', 1024 * 1024, buffer, (nbytes) => onPacket(nbytes));
    // the binding names only a few link types; NFLOG comes back as "Unknown linktype 239"
    expect(source.linkName).to.contain(String(DLT_NFLOG));

    const got = new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no NFLOG packet within 5 s')), 5000);
      onPacket = (nbytes) => {
        clearTimeout(timer);
        resolve(Buffer.from(buffer.subarray(0, nbytes)));
      };
    });
    const sock = createSocket('udp4');
    const payload = Buffer.from('netwarden-nflog-live-test');
    await new Promise<void>((resolve, reject) => sock.send(payload, 9, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
    sock.close();

    const before = Date.now();
    const pkt = await got;
    const r = decodeNflogPacket(pkt, { metrics: noDropMetrics });
    if (!r.ok) throw new Error(`not decoded: ${r.reason}`);
    expect(r.drop).to.deep.include({
      prefix: 'nwtest-dropped:',
      family: 'ipv4',
      src: '127.0.0.1',
      dst: '127.0.0.1',
      protocol: 'UDP',
      dstPort: 9,
      outInterface: 'lo',
      length: 20 + 8 + payload.length,
    });
    expect(r.drop.srcPort).to.be.a('number');
    expect(Math.abs(Date.parse(r.drop.time) - before)).to.be.lessThan(10_000);
  });
});
