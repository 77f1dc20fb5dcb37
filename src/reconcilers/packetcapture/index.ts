// Wires the PacketCapture feature of the controller: the reconciler (targets, phase, quotas,
// status), kept current by the captures, the pods they select and the admin's quota ConfigMap, and
// the capture file endpoints on the HTTPS API.
import type { V1ConfigMap } from '@kubernetes/client-node';
import { SYSTEM_NAMESPACE } from '../../apis/limits.js';
import { PacketCaptureType } from '../../apis/meta.js';
import type { PacketCapture } from '../../apis/packetcapture.js';
import { Controller } from '../../runtime/controller.js';
import { coreInformer, customResourceInformer, type Informer } from '../../runtime/informer.js';
import { keyOf, type ObjectKey } from '../../runtime/keys.js';
import { loggerFor } from '../../util/log.js';
import type { ControllerContext } from '../context.js';
import { agentFilesClient, registerCaptureFileApi } from './download.js';
import { CAPTURE_QUOTA_CONFIGMAP, parseQuotaConfig, quotaFor, type QuotaConfig } from '../../apis/capturequota.js';
import { captureBytes, holdsPlace } from './quota.js';
import { PacketCaptureReconciler, type ClusterCaptureCeilings } from './reconciler.js';

export interface PacketCaptureOptions {
  /** Cluster-wide ceilings over every capture's spec (the controller's --capture-* flags). */
  ceilings?: ClusterCaptureCeilings;
  /** Netwarden's own namespace, where the admin's quota ConfigMap lives. */
  namespace?: string;
}

export function registerPacketCapture(ctx: ControllerContext, opts: PacketCaptureOptions = {}): Controller {
  const { kc, manager, pods } = ctx;
  const captures = customResourceInformer<PacketCapture>(kc, PacketCaptureType, { resyncMs: ctx.resyncMs });
  const namespace = opts.namespace ?? SYSTEM_NAMESPACE;
  // Only the one ConfigMap: the controller may read no other (a Role with resourceNames).
  const quotaMaps = coreInformer(kc, 'configmaps', { namespace, fieldSelector: `metadata.name=${CAPTURE_QUOTA_CONFIGMAP}`, resyncMs: ctx.resyncMs });
  const quotas = quotaSource(quotaMaps);
  // One client for downloads and for the files that expire (spec.ttlSecondsAfterFinished).
  const agents = agentFilesClient(ctx);
  const removeFiles = (node: string, ns: string, name: string, uid: string | undefined) => agents.remove(node, ns, name, uid);
  const reconciler = new PacketCaptureReconciler(kc, captures, pods, { ceilings: opts.ceilings, quotas, removeFiles });
  const controller = new Controller({ name: 'packetcapture', reconciler, concurrency: 2 })
    .watches(captures, (capture) => [keyOf(capture), ...waitingBehind(capture, captures, quotas())])
    .watches(pods, (pod) => captures.list(pod.namespace).map(keyOf))
    .watches(quotaMaps, () => captures.list().map(keyOf));
  manager.addController(controller);
  registerCaptureFileApi(ctx, captures, agents);
  return controller;
}

/**
 * Any change to a capture may free (or take) room in its namespace: the captures that wait for a
 * place look again, and when the namespace is at its byte quota every capture there does.
 */
function waitingBehind(changed: PacketCapture, captures: Informer<PacketCapture>, config: QuotaConfig): ObjectKey[] {
  const namespace = changed.metadata.namespace ?? '';
  const others = captures.list(namespace).filter((c) => c.metadata.uid !== changed.metadata.uid);
  const now = new Date();
  const full = [changed, ...others].reduce((sum, c) => sum + captureBytes(c), 0) >= quotaFor(config, namespace).maxBytes;
  return others.filter((c) => full || !holdsPlace(c, now)).map(keyOf);
}

/** The parsed ConfigMap, parsed again only when it changes; a bad one is logged once per version. */
function quotaSource(configMaps: Informer<V1ConfigMap>): () => QuotaConfig {
  const log = loggerFor('packetcapture-quotas');
  let parsed: { version: string | undefined; config: QuotaConfig } | undefined;
  return () => {
    const current = configMaps.list()[0];
    const version = current?.metadata?.resourceVersion;
    if (parsed && parsed.version === version) return parsed.config;
    const config = parseQuotaConfig(current);
    parsed = { version, config };
    if (config.error) log.error('capture quota ConfigMap not used', { error: config.error });
    else log.info('capture quotas', { source: config.source, default: config.default, namespaces: Object.keys(config.namespaces).length });
    return config;
  };
}
