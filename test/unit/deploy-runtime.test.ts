// The agent DaemonSet starts node with V8 flags on its command line and tunes glibc through its
// environment (config/agent/daemonset.yaml). A flag this node does not know makes the agent
// crash-loop on every node, so the flags are checked against the node that runs the tests.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { deployedRuntime } from '../../bench/build.js';

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

  it('keeps an unknown V8 flag from passing unnoticed', () => {
    const result = spawnSync(process.execPath, ['--heap-growing-percentage=20', '-e', '0'], { encoding: 'utf8' });
    expect(result.status).to.not.equal(0);
  });
});
