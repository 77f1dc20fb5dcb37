// Each agent is its node, the way a kubelet is: its token is bound to the DaemonSet pod on that
// node, so the API server names the node in every review of it. Everything that binds an agent to
// its own node (drop batches, status entries, certificates) starts from this.
import { expect } from 'chai';
import { AuthenticationV1Api } from '@kubernetes/client-node';
import { cluster } from './hooks.js';
import { createNode, requestPodBoundToken } from '../env/fixtures.js';
import { agentPod, ensureInstalled } from '../env/netwarden.js';

const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';

describe('agent node identity (pod-bound tokens)', function () {
  this.timeout(60_000);

  it("reviews an agent's token as the netwarden-agent ServiceAccount on its own node", async function () {
    const cp = cluster();
    await ensureInstalled(cp);
    const kc = cp.kubeConfig();
    await createNode(kc, 'identity-a');
    await createNode(kc, 'identity-b');
    const authn = kc.makeApiClient(AuthenticationV1Api);
    for (const node of ['identity-a', 'identity-b']) {
      const token = await requestPodBoundToken(kc, await agentPod(cp, node));
      const review = await authn.createTokenReview({ body: { spec: { token } } });
      expect(review.status?.authenticated, review.status?.error).to.equal(true);
      expect(review.status?.user?.username).to.equal('system:serviceaccount:netwarden-system:netwarden-agent');
      expect(review.status?.user?.extra?.[NODE_NAME_EXTRA]).to.deep.equal([node]);
    }
  });
});
