// `npm run demo`: the whole system as a user sees it. On the real node where this machine allows one
// (root, cgroups, nft, Go: hack/demo/realnode.ts): the image built and imported, `kubectl apply -k
// config/`, examples/, a drop between two real pods and a capture downloaded through a port-forward.
// Elsewhere, or with NETWARDEN_DEMO_PROCESSES=1, one line says why and the controller and agents run
// as local processes beside a control plane without a kubelet (hack/demo/processes.ts).
// `npm run demo -- --keep` leaves everything running until Ctrl-C, with a kubeconfig to explore.
import { realNodeUnsupported } from '../test/env/realnode.js';
import { demoMode } from './demo/mode.js';

const keep = process.argv.includes('--keep');
const mode = demoMode(process.env, realNodeUnsupported);
if (mode.kind === 'realnode') {
  const { realNodeDemo } = await import('./demo/realnode.js');
  await realNodeDemo(keep);
} else {
  process.stdout.write(`${mode.line}\n`);
  const { processDemo } = await import('./demo/processes.js');
  await processDemo(keep);
}
