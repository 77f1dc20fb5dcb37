import { expect } from 'chai';
import { runInNewContext } from 'node:vm';
import { collectYoungGarbage } from '../../src/util/gc.js';

describe('collectYoungGarbage', () => {
  it('leaves no gc global behind, in this context or in contexts made later', () => {
    collectYoungGarbage();
    collectYoungGarbage(); // the function it took keeps working
    expect(typeof (globalThis as { gc?: unknown }).gc).to.equal('undefined');
    expect(runInNewContext('typeof gc')).to.equal('undefined');
  });
});
