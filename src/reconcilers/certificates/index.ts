// Wires the controller's side of Netwarden's own certificates: the signer of agent serving
// certificates (netwarden.io/agent-serving), kept current by the requests for that signer. The
// CA it signs with (ca.ts) runs in every replica; the signer, like every controller, only while
// this replica leads.
import { AGENT_SERVING_SIGNER } from '../../apis/certificates.js';
import { Controller } from '../../runtime/controller.js';
import { certificateSigningRequestInformer } from '../../runtime/informer.js';
import type { ControllerContext } from '../context.js';
import type { CaStore } from './ca.js';
import { AgentCsrSigner, type SignerOptions } from './signer.js';

export { CaStore, type CaStoreOptions } from './ca.js';
export type { SignerOptions } from './signer.js';

export function registerAgentCertificates(ctx: ControllerContext, ca: CaStore, opts: SignerOptions): Controller {
  const csrs = certificateSigningRequestInformer(ctx.kc, { fieldSelector: `spec.signerName=${AGENT_SERVING_SIGNER}`, resyncMs: ctx.resyncMs });
  const controller = new Controller({ name: 'agent-certificates', reconciler: new AgentCsrSigner(ctx.kc, csrs, ctx.nodes, ctx.services, ca, opts) }).watches(csrs);
  ctx.manager.addController(controller);
  ctx.manager.addInformer(ctx.nodes);
  ctx.manager.addInformer(ctx.services);
  return controller;
}
