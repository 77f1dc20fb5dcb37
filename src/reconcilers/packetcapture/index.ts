// Wires the PacketCapture feature of the controller: the reconciler (targets, phase, status), kept
// current by the captures and the pods they select, and the capture file endpoints on the HTTPS API.
import type { V1Pod } from '@kubernetes/client-node';
import { PacketCaptureType } from '../../apis/meta.js';
import type { PacketCapture } from '../../apis/packetcapture.js';
import { Controller } from '../../runtime/controller.js';
import { customResourceInformer } from '../../runtime/informer.js';
import { keyOf } from '../../runtime/keys.js';
import type { ControllerContext } from '../context.js';
import { registerCaptureFileApi } from './download.js';
import { PacketCaptureReconciler, type ClusterCaptureCeilings } from './reconciler.js';

export interface PacketCaptureOptions {
  /** Cluster-wide ceilings over every capture's spec (the controller's --capture-* flags). */
  ceilings?: ClusterCaptureCeilings;
}

export function registerPacketCapture(ctx: ControllerContext, opts: PacketCaptureOptions = {}): Controller {
  const { kc, manager, pods } = ctx;
  const captures = customResourceInformer<PacketCapture>(kc, PacketCaptureType, { resyncMs: ctx.resyncMs });
  const reconciler = new PacketCaptureReconciler(kc, captures, pods, { ceilings: opts.ceilings });
  const controller = new Controller({ name: 'packetcapture', reconciler, concurrency: 2 })
    .watches(captures)
    .watches(pods, (pod: V1Pod) => captures.list(pod.metadata?.namespace).map(keyOf));
  manager.addController(controller);
  registerCaptureFileApi(ctx, captures);
  return controller;
}
