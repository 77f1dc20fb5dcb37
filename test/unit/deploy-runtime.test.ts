// The agent DaemonSet and the controller Deployment start node with V8 flags on their command line
// and tune glibc through their environment (config/). A flag this node does not know makes the
// workload crash-loop on every node, so each workload's flags and environment are tried on the
// node that runs the tests; the benches run the measured processes with the same settings.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { deployedRuntime, type WorkloadRuntime } from '../../bench/build.js';

/** Starts node as the workload is deployed and returns the V8 flags it runs with. */
function startAsDeployed(runtime: WorkloadRuntime): string[] {
  const result = spawnSync(process.execPath, [...runtime.nodeArgs, '-e', 'process.stdout.write(JSON.stringify(process.execArgv))'], {
    env: { ...process.env, ...runtime.env },
    encoding: 'utf8',
  });
  expect(result.stderr, 'node complained about a flag or NODE_OPTIONS').to.equal('');
  expect(result.status).to.equal(0);
  return JSON.parse(result.stdout) as string[];
}

describe('deployed runtime', () => {
  it('starts the agent with the DaemonSet command flags and environment', () => {
    const { agent } = deployedRuntime();
    expect(agent.nodeArgs, 'node flags of the DaemonSet command').to.include('--heap-growing-percent=20');
    expect(agent.env).to.include({ NODE_OPTIONS: '--max-semi-space-size=2', MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072' });
    expect(startAsDeployed(agent)).to.include.members(agent.nodeArgs);
  });

  it('starts the controller with the Deployment command flags and environment', () => {
    const { controller } = deployedRuntime();
    expect(controller.env).to.include({ NODE_OPTIONS: '--max-semi-space-size=2', MALLOC_ARENA_MAX: '2' });
    expect(startAsDeployed(controller)).to.include.members(controller.nodeArgs);
  });

  it('keeps an unknown V8 flag from passing unnoticed', () => {
    const result = spawnSync(process.execPath, ['--heap-growing-percentage=20', '-e', '0'], { encoding: 'utf8' });
    expect(result.status).to.not.equal(0);
  });
});
