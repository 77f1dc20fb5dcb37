// PacketCapture on the node agent: a controller keyed by PacketCapture that captures this node's
// target pods (checked against this node's own pods), within the node's budget of slots, ring
// memory and disk, and the file endpoints on the agent's HTTPS API.
import { mkdirSync, statfsSync } from 'node:fs';
import type { V1Pod } from '@kubernetes/client-node';
import { PacketCaptureType } from '../../apis/meta.js';
import type { PacketCapture } from '../../apis/packetcapture.js';
import { Controller } from '../../runtime/controller.js';
import { coreInformer, customResourceInformer } from '../../runtime/informer.js';
import { keyOf } from '../../runtime/keys.js';
import type { AgentContext } from '../context.js';
import { registerCaptureFileRoutes } from './api.js';
import { NodeCaptureBudget, type DiskProbe } from './budget.js';
import type { CaptureCeilings } from './plan.js';
import { CaptureAgentReconciler } from './reconciler.js';
import { storedBytes, storedCaptures } from './store.js';


/** What ownership.ts reads of this node's pods; the cache keeps nothing else (add a path before reading a new field). */
const OWNERSHIP_POD_FIELDS = ['spec.nodeName', 'spec.hostNetwork', 'status.phase', 'status.podIP', 'status.podIPs'];
export { ceilingsProblem, DEFAULT_CEILINGS, parseByteSize, parseDiskThreshold, parseRingSize, type CaptureCeilings } from './plan.js';

export function registerCapture(ctx: AgentContext, ceilings: CaptureCeilings, resyncMs: number): void {
  const captures = ctx.manager.addInformer(customResourceInformer<PacketCapture>(ctx.kc, PacketCaptureType, { resyncMs }));
  // Who owns which IP on this node: the agent's own view, not what a status entry claims.
  const pods = ctx.manager.addInformer(coreInformer(ctx.kc, 'pods', { fieldSelector: `spec.nodeName=${ctx.nodeName}`, resyncMs, keep: OWNERSHIP_POD_FIELDS }));
  let controller: Controller | undefined;
  const enqueue = (key: { namespace?: string; name: string }) => controller?.enqueue(key);
  const budget = new NodeCaptureBudget(ceilings, diskProbe(ctx.stateDir), (refs) => refs.forEach(enqueue));
  const reconciler = new CaptureAgentReconciler(ctx, captures, pods, ceilings, budget, enqueue);
  // Several captures can run at once; one slow status write should not hold up the others.
  controller = new Controller({ name: 'agent-packetcapture', reconciler, concurrency: 4 })
    .watches(captures)
    .watches(pods, (pod: V1Pod) => captures.list(pod.metadata?.namespace).map(keyOf));
  // Directories left from captures deleted while the agent was down get cleaned up too.
  for (const ref of storedCaptures(ctx.stateDir)) controller.enqueue(ref);
  ctx.manager.addController(controller);
  if (ctx.api) registerCaptureFileRoutes(ctx.api, ctx.reviewer, ctx.nodeName, reconciler);
}

/** The state directory's filesystem and the capture files on it. */
function diskProbe(stateDir: string): DiskProbe {
  return {
    storedBytes: (skip) => storedBytes(stateDir, skip),
    space: () => {
      mkdirSync(stateDir, { recursive: true });
      const s = statfsSync(stateDir);
      return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
    },
  };
}
