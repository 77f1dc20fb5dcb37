// `netwarden agent --node-name N`.
import path from 'node:path';
import { DEFAULT_AUDIT_LOG_DIR, SYSTEM_NAMESPACE } from '../apis/limits.js';
import { buildAgent } from '../nodeagent/agent.js';
import { DEFAULT_CEILINGS, type CaptureCeilings } from '../nodeagent/capture/index.js';
import { loadKubeConfig } from '../util/kube.js';
import { loggerFor } from '../util/log.js';

export interface AgentFlags {
  nodeName?: string;
  kubeconfig?: string;
  metricsPort: number;
  metricsAddress: string;
  /** /metrics open to anyone over plain HTTP, as before TokenReview guarded it. */
  metricsInsecure?: boolean;
  stateDir: string;
  controllerUrl: string;
  caFile?: string;
  controllerTokenFile: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  filesPort: number;
  bindAddress: string;
  captureMaxBytesPerPod?: number;
  captureMaxFiles?: number;
  captureMinFreeDisk?: CaptureCeilings['minFreeDisk'];
  namespace?: string;
  auditLogDir: string[];
}

export async function runAgent(flags: AgentFlags & { nodeName: string }): Promise<void> {
  const tls = flags.tlsCertFile && flags.tlsKeyFile ? { certFile: flags.tlsCertFile, keyFile: flags.tlsKeyFile, port: flags.filesPort, bindAddress: flags.bindAddress } : undefined;
  const captureCeilings: CaptureCeilings = {
    maxBytesPerPod: flags.captureMaxBytesPerPod ?? DEFAULT_CEILINGS.maxBytesPerPod,
    maxFiles: flags.captureMaxFiles ?? DEFAULT_CEILINGS.maxFiles,
    minFreeDisk: flags.captureMinFreeDisk ?? DEFAULT_CEILINGS.minFreeDisk,
  };
  const namespace = flags.namespace ?? process.env.POD_NAMESPACE ?? SYSTEM_NAMESPACE;
  const auditLogDirs = flags.auditLogDir.length > 0 ? flags.auditLogDir.map((d) => path.resolve(d)) : [DEFAULT_AUDIT_LOG_DIR];
  const agent = buildAgent(loadKubeConfig(flags.kubeconfig), { ...flags, tls, captureCeilings, namespace, auditLogDirs });
  loggerFor('agent').info('starting', { node: flags.nodeName, namespace, stateDir: flags.stateDir, auditLogDirs, controllerUrl: flags.controllerUrl, filesServer: tls ? `${tls.bindAddress}:${tls.port}` : 'off' });
  await agent.start();
}
