// The IP helpers of the parsers read addresses in place (a range of a log line) and write IPv6 in
// RFC 5952 form as bytes or as a string. WHATWG URL serializes IPv6 hosts the same way (lower case,
// no leading zeros, the first longest run of two or more zero groups as "::"), except that it keeps
// an IPv4-mapped address in hex, so it is the reference here for the other addresses.
import { expect } from 'chai';
import { formatIPv6Groups, isIPv4At, normalizeIPv6, normalizeIPv6At, parseIPv6At, writeIPv6Groups } from '../../src/util/ip.js';

function rng(seed: number): (n: number) => number {
  let s = seed;
  return (n) => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s % n;
  };
}

function expanded(g: readonly number[]): string {
  return g.map((x) => x.toString(16).padStart(4, '0')).join(':');
}

describe('IP helpers', () => {
  it('normalise the kernel\'s expanded IPv6 like WHATWG URL, read in place from a line', () => {
    const r = rng(5);
    for (let n = 0; n < 20_000; n++) {
      const g = Array.from({ length: 8 }, () => [0, 0, 1, 0xffff, r(65536)][r(5)]!);
      if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) g[5] = 1; // mapped: below
      const text = expanded(g);
      const want = new URL(`http://[${text}]/`).hostname.slice(1, -1);
      const line = `SRC=${text} DST=`;
      expect(normalizeIPv6At(line, 4, 4 + text.length), text).to.equal(want);
      expect(normalizeIPv6(text.toUpperCase()), text).to.equal(want);
      const bytes = new Uint8Array(48);
      const end = writeIPv6Groups(Uint16Array.from(g), 0, bytes, 3);
      expect(Buffer.from(bytes.subarray(3, end)).toString('latin1')).to.equal(want);
    }
  });

  it('write IPv4-mapped addresses with the IPv4 part dotted, and read compressed forms and zones', () => {
    expect(normalizeIPv6('0000:0000:0000:0000:0000:ffff:0a00:0001')).to.equal('::ffff:10.0.0.1');
    expect(normalizeIPv6('::ffff:192.168.1.1')).to.equal('::ffff:192.168.1.1');
    expect(normalizeIPv6('fe80::1%eth0')).to.equal('fe80::1');
    expect(normalizeIPv6('1:0:0:1:0:0:0:1')).to.equal('1:0:0:1::1');
    expect(normalizeIPv6('::')).to.equal('::');
    expect(normalizeIPv6('1::')).to.equal('1::');
    for (const bad of ['1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', ':1::', '1:2:3:4:5:6:7:', '::1.2.3', '::ffff:1.2.3.256', '1:2:3:4:5:6:7:1.2.3.4', 'g::1', '']) {
      expect(normalizeIPv6(bad), bad).to.equal(undefined);
    }
    const g = new Uint16Array(8);
    expect(parseIPv6At('x 2001:db8::1 y', 2, 13, g, 0)).to.equal(true);
    expect(formatIPv6Groups(g)).to.equal('2001:db8::1');
  });

  it('check dotted quads in place', () => {
    const line = ' 10.0.0.1,256.0.0.1,01.2.3.4,1.2.3,1.2.3.4.5,0.0.0.0 ';
    const at = (s: string): boolean => isIPv4At(line, line.indexOf(s), line.indexOf(s) + s.length);
    expect(['10.0.0.1', '0.0.0.0'].map(at)).to.deep.equal([true, true]);
    expect(['256.0.0.1', '01.2.3.4', '1.2.3', '1.2.3.4.5'].map(at)).to.deep.equal([false, false, false, false]);
  });
});
