// npm run demo's choice: the real node where the machine allows one, else the processes with one
// line that says why (hack/demo/mode.ts).
import { expect } from 'chai';
import { demoMode } from '../../hack/demo/mode.js';

describe('npm run demo: real node or processes', function () {
  it('runs on the real node when the machine can run one', function () {
    expect(demoMode({}, () => undefined)).to.deep.equal({ kind: 'realnode' });
  });

  it('falls back to processes with one line naming the reason when it cannot', function () {
    for (const reason of ['not root', 'no cgroups']) {
      expect(demoMode({}, () => reason)).to.deep.equal({
        kind: 'processes',
        line: `no real node on this machine (${reason}): running the demo as local processes`,
      });
    }
  });

  it('runs the processes when NETWARDEN_DEMO_PROCESSES=1, without asking the machine', function () {
    let asked = false;
    const mode = demoMode({ NETWARDEN_DEMO_PROCESSES: '1' }, () => {
      asked = true;
      return undefined;
    });
    expect(mode).to.deep.equal({ kind: 'processes', line: 'NETWARDEN_DEMO_PROCESSES=1: running the demo as local processes' });
    expect(asked).to.equal(false);
  });

  it('takes only the value 1 as the choice of processes', function () {
    expect(demoMode({ NETWARDEN_DEMO_PROCESSES: '0' }, () => undefined)).to.deep.equal({ kind: 'realnode' });
  });
});
