// npm run gen:crds: write crds/<plural>.netwarden.io.yaml from the schemas in src/apis/.
// Pass --check to only report (and exit 1) when a committed file is out of date.

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CRD_DEFINITIONS, crdFileName, renderCrdYaml } from '../src/apis/crd.js';

const crdDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'crds');

async function readOrEmpty(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return '';
  }
}

async function main(check: boolean): Promise<number> {
  await mkdir(crdDir, { recursive: true });
  let stale = 0;
  for (const def of CRD_DEFINITIONS) {
    const path = join(crdDir, crdFileName(def));
    const text = renderCrdYaml(def);
    if ((await readOrEmpty(path)) === text) continue;
    stale++;
    if (check) console.error(`${path} is out of date; run npm run gen:crds`);
    else {
      await writeFile(path, text);
      console.log(`wrote ${path}`);
    }
  }
  return check && stale > 0 ? 1 : 0;
}

process.exitCode = await main(process.argv.includes('--check'));
