// The agent DaemonSet starts node with V8 flags on its command line and tunes glibc through its
// environment (config/agent/daemonset.yaml). A flag this node does not know makes the agent
// crash-loop on every node, so the flags are checked against the node that runs the tests.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { REPO_ROOT, deployedRuntime } from '../../bench/build.js';

interface Container {
  command?: string[];
  env?: Array<{ name: string; value?: string }>;
}

/** The first container of the file's Deployment or DaemonSet (the file may hold more documents). */
function containerOf(file: string): Container {
  const docs = YAML.parseAllDocuments(readFileSync(path.join(REPO_ROOT, file), 'utf8')).map((d) => d.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: Container[] } } } });
  const workload = docs.find((d) => d.kind === 'Deployment' || d.kind === 'DaemonSet');
  const container = workload?.spec?.template?.spec?.containers?.[0];
  if (!container) throw new Error(`${file} has no Deployment or DaemonSet container`);
  return container;
}

describe('deployed agent runtime', () => {
  it('starts node with the DaemonSet command flags and environment', () => {
    const { env, nodeArgs } = deployedRuntime();
    expect(nodeArgs, 'node flags of the DaemonSet command').to.include('--heap-growing-percent=20');
    const result = spawnSync(process.execPath, [...nodeArgs, '-e', 'process.stdout.write(JSON.stringify(process.execArgv))'], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
    });
    expect(result.stderr, 'node complained about a flag').to.equal('');
    expect(result.status).to.equal(0);
    expect(JSON.parse(result.stdout)).to.include.members(nodeArgs);
  });

  it('runs the controller with the same node flags and runtime environment as the agent', () => {
    // The benches measure both with the agent's settings (bench/build.ts deployedRuntime).
    const agent = containerOf('config/agent/daemonset.yaml');
    const controller = containerOf('config/controller/deployment.yaml');
    expect(controller.command).to.deep.equal(agent.command);
    const runtime = (c: Container) => (c.env ?? []).filter((e) => e.name === 'NODE_OPTIONS' || e.name.startsWith('MALLOC_'));
    expect(runtime(controller)).to.deep.equal(runtime(agent));
  });

  it('keeps an unknown V8 flag from passing unnoticed', () => {
    const result = spawnSync(process.execPath, ['--heap-growing-percentage=20', '-e', '0'], { encoding: 'utf8' });
    expect(result.status).to.not.equal(0);
  });
});
