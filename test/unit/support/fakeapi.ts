// A kubeconfig for a fake API server on loopback (plain HTTP, no credentials), for unit tests
// of the runtime's list and watch code.
import { KubeConfig } from '@kubernetes/client-node';

export function kubeConfigFor(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }],
    currentContext: 'fake',
  });
  return kc;
}
