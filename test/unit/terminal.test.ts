// What the CLI prints from packets, logs and manifests reaches a terminal: control characters and
// bidi overrides in that text must come out escaped, and JSON output must still parse to the text.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { escapeForTerminal } from '../../src/util/terminal.js';
import { runDropsParse } from '../../src/cli/drops.js';
import { runValidate } from '../../src/cli/validate.js';
import { noDropMetrics } from '../../src/nodeagent/drops/metrics.js';

/** Any character a terminal acts on: C0 but newline, DEL, C1, bidi controls. */
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

describe('terminal escaping', function () {
  it('writes C0, DEL, C1 and bidi controls as escapes, and a backslash as two', function () {
    expect(escapeForTerminal('a\x1b[31mb\x07c\td\ne\x7ff\x9bg\u202eh\u2066i\\x1b')).to.equal('a\\x1b[31mb\\x07c\\x09d\\x0ae\\x7ff\\x9bg\\u202eh\\u2066i\\\\x1b');
    expect(escapeForTerminal('storefront.svc.cluster.local. ünïcode')).to.equal('storefront.svc.cluster.local. ünïcode');
  });

  it('keeps JSON valid and equal to its value', function () {
    const value = { line: 'x\x1by\x7fz\x85\u202e\\' };
    const json = escapeForTerminal(JSON.stringify(value), { json: true });
    expect(json).to.not.match(RAW_CONTROL);
    expect(JSON.parse(json)).to.deep.equal(value);
  });

  it('escapes what `netwarden drops parse` copies from log lines', async function () {
    const line = 'Nov 23 03:20:56 node1 kernel: [UFW BLOCK] IN=eth0\x1b]0;x\x07\u202e OUT= SRC=203.0.113.7 DST=10.0.0.5 LEN=60 PROTO=TCP SPT=40000 DPT=22\x9b2J\n';
    const out = new PassThrough();
    await runDropsParse({ prefixes: ['[UFW BLOCK]'], input: Readable.from([line]), output: out, keepRaw: true, metrics: noDropMetrics, bootTime: new Date('2026-11-23T00:00:00Z') });
    const text = (out.read() as Buffer).toString('utf8');
    expect(text.trimEnd()).to.not.match(RAW_CONTROL);
    const parsed = JSON.parse(text) as { drop?: { raw?: string }; line?: string };
    expect(parsed.drop?.raw ?? parsed.line).to.equal(line.trimEnd());
  });

  it('escapes names from manifests in `netwarden validate` lines', async function () {
    const dir = mkdtempSync(path.join(tmpdir(), 'terminal-'));
    try {
      const file = path.join(dir, 'bad.yaml');
      writeFileSync(file, 'apiVersion: netwarden.io/v1alpha1\nkind: DropTail\nmetadata: {name: "x\\e[2Jy"}\nspec: {nodeSelector: 7}\n');
      const out = new PassThrough();
      await runValidate([file], out);
      const text = (out.read() as Buffer).toString('utf8');
      expect(text).to.contain('DropTail/x\\x1b[2Jy');
      expect(text.replace(/\n/g, '')).to.not.match(RAW_CONTROL);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
