// The agent DaemonSet starts node with V8 flags on its command line and tunes glibc through its
// environment (config/agent/daemonset.yaml). A flag this node does not know makes the agent
// crash-loop on every node, so the flags are checked against the node that runs the tests.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { deployedRuntime, workloadContainer, type DeployedContainer } from '../../bench/build.js';

describe('deployed runtime', () => {
  it('starts node with the DaemonSet command flags and environment', () => {
    const { env, agentNodeArgs: nodeArgs } = deployedRuntime();
    expect(nodeArgs, 'node flags of the DaemonSet command').to.include('--heap-growing-percent=20');
    const result = spawnSync(process.execPath, [...nodeArgs, '-e', 'process.stdout.write(JSON.stringify(process.execArgv))'], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
    });
    expect(result.stderr, 'node complained about a flag').to.equal('');
    expect(result.status).to.equal(0);
    expect(JSON.parse(result.stdout)).to.include.members(nodeArgs);
  });

  it('gives the controller the same runtime environment, and node flags this node accepts', () => {
    // The benches measure both with the agent's environment (bench/build.ts deployedRuntime).
    const runtime = (c: DeployedContainer) => (c.env ?? []).filter((e) => e.name === 'NODE_OPTIONS' || e.name.startsWith('MALLOC_'));
    expect(runtime(workloadContainer('config/controller/deployment.yaml'))).to.deep.equal(runtime(workloadContainer('config/agent/daemonset.yaml')));
    const result = spawnSync(process.execPath, [...deployedRuntime().controllerNodeArgs, '-e', '0'], { encoding: 'utf8' });
    expect(result.stderr).to.equal('');
    expect(result.status).to.equal(0);
  });

  it('keeps an unknown V8 flag from passing unnoticed', () => {
    const result = spawnSync(process.execPath, ['--heap-growing-percentage=20', '-e', '0'], { encoding: 'utf8' });
    expect(result.status).to.not.equal(0);
  });
});
