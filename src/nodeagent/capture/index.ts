// PacketCapture on the node agent: a controller keyed by PacketCapture that captures this node's
// target pods, and the file endpoints on the agent's HTTPS API.
import { PacketCaptureType } from '../../apis/meta.js';
import type { PacketCapture } from '../../apis/packetcapture.js';
import { Controller } from '../../runtime/controller.js';
import { customResourceInformer } from '../../runtime/informer.js';
import type { AgentContext } from '../context.js';
import { registerCaptureFileRoutes } from './api.js';
import type { CaptureCeilings } from './plan.js';
import { CaptureAgentReconciler } from './reconciler.js';
import { storedCaptures } from './store.js';

export { DEFAULT_CEILINGS, parseByteSize, parseDiskThreshold, type CaptureCeilings } from './plan.js';

export function registerCapture(ctx: AgentContext, ceilings: CaptureCeilings, resyncMs: number): void {
  const captures = ctx.manager.addInformer(customResourceInformer<PacketCapture>(ctx.kc, PacketCaptureType, { resyncMs }));
  let controller: Controller | undefined;
  const reconciler = new CaptureAgentReconciler(ctx, captures, ceilings, (key) => controller?.enqueue(key));
  // Several captures can run at once; one slow status write should not hold up the others.
  controller = new Controller({ name: 'agent-packetcapture', reconciler, concurrency: 4 }).watches(captures);
  // Directories left from captures deleted while the agent was down get cleaned up too.
  for (const ref of storedCaptures(ctx.stateDir)) controller.enqueue(ref);
  ctx.manager.addController(controller);
  if (ctx.api) registerCaptureFileRoutes(ctx.api, ctx.reviewer, ctx.stateDir, ctx.nodeName, reconciler);
}
