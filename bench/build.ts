// Benchmarks that measure a process's memory run it the way users do: compiled JavaScript from
// `tsc -p .` (dist/, as in the Dockerfile), not through tsx, whose loader and on-the-fly transpiler
// alone add about 100 MB of RSS. The build runs once per bench run, whichever bench asks first.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(REPO_ROOT, 'dist');
/** Read by test/env/netwarden.ts: when set, controller and agent processes run this file instead of tsx. */
export const COMPILED_CLI_ENV = 'NETWARDEN_COMPILED_CLI';

let build: Promise<number> | undefined;

/** Runs `tsc -p .` once; resolves to the time it started (outputs must be at least as new). */
function buildOnce(): Promise<number> {
  build ??= new Promise((resolve, reject) => {
    const started = Date.now();
    const tsc = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const child = spawn(process.execPath, [tsc, '-p', REPO_ROOT], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString('utf8')));
    child.stderr.on('data', (b: Buffer) => (output += b.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => {
      // tsc still emits when a file has type errors (noEmitOnError is off): say so, but measure.
      if (code !== 0) process.stderr.write(`bench: tsc reported errors (the build is still used):\n${output.split('\n').slice(0, 20).join('\n')}\n`);
      resolve(started);
    });
  });
  return build;
}

/**
 * The compiled JavaScript of a source file of this repository (e.g. 'src/cli/main.ts' →
 * dist/src/cli/main.js), built first if this bench run has not built yet.
 */
export async function compiled(sourceFile: string): Promise<string> {
  const started = await buildOnce();
  const relative = path.relative(REPO_ROOT, path.resolve(REPO_ROOT, sourceFile)).replace(/\.ts$/, '.js');
  const out = path.join(DIST, relative);
  if (!existsSync(out)) throw new Error(`tsc did not produce ${out}`);
  // tsc leaves an output whose content did not change untouched, so the check is against the
  // source, not against the build's start. Whole seconds: some filesystems keep coarse times.
  const source = path.resolve(REPO_ROOT, sourceFile);
  if (Math.floor(statSync(out).mtimeMs / 1000) < Math.floor(statSync(source).mtimeMs / 1000)) {
    throw new Error(`${out} is older than ${sourceFile}: tsc did not emit it (started ${new Date(started).toISOString()})`);
  }
  return out;
}

/**
 * Makes startController/startAgent (test/env/netwarden.ts) run the compiled CLI for the rest of
 * this process, as users run it; returns the entry's path.
 */
export async function useCompiledCli(): Promise<string> {
  const cli = await compiled('src/cli/main.ts');
  process.env[COMPILED_CLI_ENV] = cli;
  return cli;
}

/**
 * Set by bench/run.ts from config/ and read by test/env/netwarden.ts and spawnCompiled: how each
 * workload's processes start (JSON of DeployedRuntime). Unset in tests: plain node, no extra env.
 */
export const DEPLOYED_RUNTIME_ENV = 'NETWARDEN_DEPLOYED_RUNTIME';

export interface DeployedContainer {
  command?: string[];
  env?: Array<{ name: string; value?: string }>;
}

/** The first container of the Deployment or DaemonSet in a manifest of config/. */
export function workloadContainer(file: string): DeployedContainer {
  const docs = YAML.parseAllDocuments(readFileSync(path.join(REPO_ROOT, file), 'utf8')).map(
    (d) => d.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: DeployedContainer[] } } } },
  );
  const container = docs.find((d) => d.kind === 'Deployment' || d.kind === 'DaemonSet')?.spec?.template?.spec?.containers?.[0];
  if (!container) throw new Error(`${file} has no Deployment or DaemonSet container`);
  return container;
}

/** The flags before the script in a container command `node <flags> <script>`. */
export function nodeFlagsOf(container: DeployedContainer): string[] {
  const command = container.command ?? [];
  return command[0] === 'node' ? command.slice(1).filter((a) => a.startsWith('--')) : [];
}

/** How a workload's node process starts: the literal environment (NODE_OPTIONS, MALLOC_*) and node flags. */
export interface WorkloadRuntime {
  env: Record<string, string>;
  nodeArgs: string[];
}

export type Workload = 'agent' | 'controller';

const MANIFESTS: Record<Workload, string> = { agent: 'config/agent/daemonset.yaml', controller: 'config/controller/deployment.yaml' };

/** Each workload's runtime as config/ deploys it, so measured processes run as deployed ones do. */
export function deployedRuntime(): Record<Workload, WorkloadRuntime> {
  const runtime = (file: string): WorkloadRuntime => {
    const container = workloadContainer(file);
    const env = Object.fromEntries((container.env ?? []).filter((e) => e.value !== undefined && /^(NODE_OPTIONS|MALLOC_)/.test(e.name)).map((e) => [e.name, e.value!]));
    return { env, nodeArgs: nodeFlagsOf(container) };
  };
  return { agent: runtime(MANIFESTS.agent), controller: runtime(MANIFESTS.controller) };
}

/** The runtime a workload's processes start with in this run: the deployed one in benches, none in tests. */
export function runtimeOf(workload: Workload): WorkloadRuntime {
  const json = process.env[DEPLOYED_RUNTIME_ENV];
  return json ? (JSON.parse(json) as Record<Workload, WorkloadRuntime>)[workload] : { env: {}, nodeArgs: [] };
}

/**
 * A bench's measured child: the compiled sourceFile run as the agent is deployed (its node flags
 * and environment), stdout piped (its report), stderr inherited.
 */
export async function spawnCompiled(sourceFile: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ChildProcessByStdio<null, Readable, null>> {
  const agent = runtimeOf('agent');
  return spawn(process.execPath, [...agent.nodeArgs, await compiled(sourceFile), ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...env, ...agent.env } });
}

/**
 * Runs a child that takes its config as JSON in argv, prints `ready`, and on SIGTERM prints its
 * report as one JSON line: `during` runs between the two; returns the report and during's result.
 */
export async function measureChild<Report, T>(sourceFile: string, config: unknown, during: () => Promise<T>, env?: NodeJS.ProcessEnv): Promise<{ report: Report; result: T }> {
  const child = await spawnCompiled(sourceFile, [JSON.stringify(config)], env);
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  // 'close', not 'exit': the report may still be in the pipe when the process has exited.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  for (let i = 0; i < 300 && !out.includes('ready'); i++) await new Promise((r) => setTimeout(r, 100));
  if (!out.includes('ready')) throw new Error(`${sourceFile} did not start: ${out}`);
  const result = await during();
  child.kill('SIGTERM');
  await closed;
  const report = out.split('\n').filter((l) => l.startsWith('{')).pop();
  if (!report) throw new Error(`${sourceFile} reported nothing: ${out}`);
  return { report: JSON.parse(report) as Report, result };
}
