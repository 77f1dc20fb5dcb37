// The parsers compare characters by code through a per-file `const enum Ch` whose members the
// compiler writes in as numbers. Each member's comment shows its character; this keeps the two in
// step, so a mistyped number cannot hide behind a readable name.
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

function sourcesWithCharacterEnums(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (p.endsWith('.ts') && readFileSync(p, 'utf8').includes('const enum Ch {')) out.push(p);
    }
  };
  walk(SRC);
  return out;
}

const UNESCAPE: Record<string, string> = { '\\t': '\t', '\\n': '\n', '\\r': '\r', "\\'": "'", '\\\\': '\\' };

describe('character constants of the parsers', () => {
  const files = sourcesWithCharacterEnums();

  it('are used by the kernel log parser, its field scanners, the time header parser and the IP helpers', () => {
    const names = files.map((f) => path.basename(f));
    expect(names).to.include.members(['kernellog.ts', 'kernelfields.ts', 'timeheader.ts', 'ebtables.ts', 'ip.ts']);
  });

  for (const file of files) {
    it(`each member of ${path.relative(SRC, file)}'s Ch is the code of the character it shows`, () => {
      const text = readFileSync(file, 'utf8');
      const body = text.slice(text.indexOf('const enum Ch {'), text.indexOf('\n}', text.indexOf('const enum Ch {')));
      const members = [...body.matchAll(/^\s+(\w+) = 0x([0-9a-f]+), \/\/ '(\\.|.)'$/gm)];
      expect(members.length, 'the members were found').to.be.greaterThan(0);
      for (const [, name, hex, shown] of members) {
        const ch = UNESCAPE[shown!] ?? shown!;
        expect(Number.parseInt(hex!, 16), `${name} shows '${shown}'`).to.equal(ch.charCodeAt(0));
      }
      const declared = body.split('\n').filter((l) => /^\s+\w+ = /.test(l) && !/LowerCaseBit/.test(l));
      expect(declared.length, 'every member has the form Name = 0xNN, // \'c\'').to.equal(members.length);
    });
  }
});
