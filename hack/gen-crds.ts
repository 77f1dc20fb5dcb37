// npm run gen:crds: write crds/<plural>.netwarden.io.yaml from the schemas in src/apis/, their JSON
// schemas for kubeconform schemas/<group>/<kind>_<version>.json (hack/crd-jsonschema.ts), and the
// admission policies config/admission/<name>.yaml from src/apis/admission.ts, and the argocd-cm
// patch with the Argo CD health checks (hack/argocd-cm.ts), and the Grafana dashboard
// (hack/grafana-dashboard.ts).
// Pass --check to only report (and exit 1) when a committed file is out of date.

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADMISSION_POLICIES, renderAdmissionYaml } from '../src/apis/admission.js';
import { CRD_DEFINITIONS, crdFileName, renderCrdYaml } from '../src/apis/crd.js';
import { allCrdJsonSchemas, renderJsonSchema } from './crd-jsonschema.js';
import { ARGOCD_CM_PATCH, renderArgocdCmPatch } from './argocd-cm.js';
import { DASHBOARD_PATH, renderDashboardJson } from './grafana-dashboard.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const crdDir = join(repo, 'crds');
const admissionDir = join(repo, 'config', 'admission');

async function readOrEmpty(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return '';
  }
}

async function main(check: boolean): Promise<number> {
  await mkdir(crdDir, { recursive: true });
  await mkdir(admissionDir, { recursive: true });
  let stale = 0;
  const files = [
    ...CRD_DEFINITIONS.map((def) => ({ path: join(crdDir, crdFileName(def)), text: renderCrdYaml(def) })),
    ...ADMISSION_POLICIES.map((p) => ({ path: join(admissionDir, `${p.name}.yaml`), text: renderAdmissionYaml(p) })),
    ...allCrdJsonSchemas().map((f) => ({ path: join(repo, f.path), text: renderJsonSchema(f) })),
    { path: join(repo, ARGOCD_CM_PATCH), text: renderArgocdCmPatch(repo) },
    { path: join(repo, DASHBOARD_PATH), text: renderDashboardJson() },
  ];
  for (const { path, text } of files) {
    if ((await readOrEmpty(path)) === text) continue;
    stale++;
    if (check) console.error(`${path} is out of date; run npm run gen:crds`);
    else {
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, text);
      console.log(`wrote ${path}`);
    }
  }
  return check && stale > 0 ? 1 : 0;
}

process.exitCode = await main(process.argv.includes('--check'));
