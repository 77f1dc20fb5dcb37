// The Helm chart (charts/netwarden) and its tools for the tests: helm and helm-docs from the cache
// that hack/tools/build.sh fills (NETWARDEN_TOOLS_BIN), kubectl from the control plane's.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { findKubeBinDir } from './controlplane.js';
import { REPO_ROOT } from './netwarden.js';

const run = promisify(execFile);
export const CHART_DIR = path.join(REPO_ROOT, 'charts', 'netwarden');
/** The chart installs only here (its templates refuse another namespace). */
export const RELEASE_NAMESPACE = 'netwarden-system';

let toolsBin: string | undefined;

/** NETWARDEN_TOOLS_BIN, else what hack/tools/build.sh prints (it builds only what is missing). */
export function findToolsBinDir(): string {
  if (toolsBin) return toolsBin;
  const fromEnv = process.env.NETWARDEN_TOOLS_BIN;
  const dir = fromEnv || execFileSync(path.join(REPO_ROOT, 'hack', 'tools', 'build.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  for (const tool of ['helm', 'helm-docs']) if (!existsSync(path.join(dir, tool))) throw new Error(`${dir} lacks ${tool}: run hack/tools/build.sh`);
  toolsBin = dir;
  return dir;
}

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a tool of the tools cache (helm, helm-docs) or kubectl, without a kubeconfig of the host. */
export async function tool(name: 'helm' | 'helm-docs' | 'kubectl', args: string[], opts: { cwd?: string } = {}): Promise<ToolResult> {
  const bin = name === 'kubectl' ? path.join(findKubeBinDir(), 'kubectl') : path.join(findToolsBinDir(), name);
  // Helm keeps caches and repositories under HOME; a throwaway one keeps the tests off the user's.
  const home = helmHome();
  const env = { ...process.env, HELM_CACHE_HOME: path.join(home, 'cache'), HELM_CONFIG_HOME: path.join(home, 'config'), HELM_DATA_HOME: path.join(home, 'data'), KUBECONFIG: path.join(home, 'no-kubeconfig') };
  try {
    const { stdout, stderr } = await run(bin, args, { cwd: opts.cwd ?? REPO_ROOT, env, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
  }
}

let home: string | undefined;
function helmHome(): string {
  if (!home) {
    home = mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'netwarden-helm-'));
    const dir = home;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return home;
}

export async function mustTool(name: 'helm' | 'helm-docs' | 'kubectl', args: string[], opts: { cwd?: string } = {}): Promise<string> {
  const r = await tool(name, args, opts);
  if (r.code !== 0) throw new Error(`${name} ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** `helm template` of the chart with these --set values, as YAML text. */
export function helmTemplate(values: Record<string, string | boolean | number> = {}, extra: string[] = []): Promise<string> {
  const sets = Object.entries(values).flatMap(([k, v]) => ['--set', `${k}=${String(v)}`]);
  return mustTool('helm', ['template', 'netwarden', CHART_DIR, '--namespace', RELEASE_NAMESPACE, ...sets, ...extra]);
}

/** `kubectl kustomize` of config/ with these components (names under config/components), in order. */
export async function kustomize(components: string[] = []): Promise<string> {
  if (components.length === 0) return mustTool('kubectl', ['kustomize', path.join(REPO_ROOT, 'config')]);
  // kustomize takes no absolute resource paths: a kustomization in a temporary directory inside the repo.
  const dir = mkdtempSync(path.join(REPO_ROOT, '.kustomize-'));
  try {
    const kustomization = { resources: ['../config'], components: components.map((c) => `../config/components/${c}`) };
    writeFileSync(path.join(dir, 'kustomization.yaml'), YAML.stringify(kustomization));
    return await mustTool('kubectl', ['kustomize', dir]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** The objects of a multi-document YAML stream (empty documents left out). */
export function parseObjects(text: string): K8sObject[] {
  return YAML.parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => !!o && typeof o === 'object' && typeof o.kind === 'string');
}

export function objectKey(o: K8sObject): string {
  return `${o.kind}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
}
