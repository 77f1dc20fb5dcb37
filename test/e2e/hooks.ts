// Mocha root hooks: one shared control plane for the whole e2e run (starting one takes seconds).
import { startControlPlane, type ControlPlane } from '../env/controlplane.js';
import { destroyAllPodNetworks } from '../env/podnet.js';

let shared: ControlPlane | undefined;

/** The run's control plane; only valid inside tests and hooks. */
export function cluster(): ControlPlane {
  if (!shared) throw new Error('control plane not started: is test/e2e/hooks.ts loaded as a mocha root hook?');
  return shared;
}

export const mochaHooks = {
  async beforeAll(this: Mocha.Context): Promise<void> {
    this.timeout(180_000);
    shared = await startControlPlane();
  },
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(60_000);
    await destroyAllPodNetworks();
    await shared?.stop();
    shared = undefined;
  },
};
