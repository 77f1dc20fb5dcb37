// `netwarden agent --node-name N`.
import path from 'node:path';
import { DEFAULT_AUDIT_LOG_DIR, SYSTEM_NAMESPACE } from '../apis/limits.js';
import { buildAgent } from '../nodeagent/agent.js';
import { ceilingsProblem, DEFAULT_CEILINGS, type CaptureCeilings } from '../nodeagent/capture/index.js';
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
  /** false with --no-files-api: no capture file API (nor a serving certificate) on this node. */
  filesApi: boolean;
  captureMaxBytesPerPod?: number;
  captureMaxFiles?: number;
  captureMinFreeDisk?: CaptureCeilings['minFreeDisk'];
  captureMaxConcurrent?: number;
  captureMaxBytes?: number;
  /** false with --no-capture-evict-finished. */
  captureEvictFinished?: boolean;
  captureRingSize?: number;
  captureRingBudget?: number;
  namespace?: string;
  auditLogDir: string[];
}

export async function runAgent(flags: AgentFlags & { nodeName: string }): Promise<void> {
  if (Boolean(flags.tlsCertFile) !== Boolean(flags.tlsKeyFile)) throw new Error('--tls-cert-file and --tls-key-file go together');
  // Without the files, the certificate comes from the CSR API (Netwarden's signer), for this node only.
  const files = flags.filesApi ? { port: flags.filesPort, bindAddress: flags.bindAddress } : undefined;
  const servingCertificate = flags.tlsCertFile && flags.tlsKeyFile ? { certFile: flags.tlsCertFile, keyFile: flags.tlsKeyFile } : undefined;
  const captureCeilings: CaptureCeilings = {
    maxBytesPerPod: flags.captureMaxBytesPerPod ?? DEFAULT_CEILINGS.maxBytesPerPod,
    maxFiles: flags.captureMaxFiles ?? DEFAULT_CEILINGS.maxFiles,
    minFreeDisk: flags.captureMinFreeDisk ?? DEFAULT_CEILINGS.minFreeDisk,
    maxConcurrent: flags.captureMaxConcurrent ?? DEFAULT_CEILINGS.maxConcurrent,
    maxBytes: flags.captureMaxBytes ?? DEFAULT_CEILINGS.maxBytes,
    ringBytes: flags.captureRingSize ?? DEFAULT_CEILINGS.ringBytes,
    ringBudgetBytes: flags.captureRingBudget ?? DEFAULT_CEILINGS.ringBudgetBytes,
    evictFinished: flags.captureEvictFinished ?? true,
  };
  const problem = ceilingsProblem(captureCeilings);
  if (problem) throw new Error(problem);
  const namespace = flags.namespace ?? process.env.POD_NAMESPACE ?? SYSTEM_NAMESPACE;
  const auditLogDirs = flags.auditLogDir.length > 0 ? flags.auditLogDir.map((d) => path.resolve(d)) : [DEFAULT_AUDIT_LOG_DIR];
  const agent = buildAgent(loadKubeConfig(flags.kubeconfig), { ...flags, files, servingCertificate, captureCeilings, namespace, auditLogDirs });
  loggerFor('agent').info('starting', {
    node: flags.nodeName, namespace, stateDir: flags.stateDir, auditLogDirs, controllerUrl: flags.controllerUrl,
    filesServer: files ? `${files.bindAddress}:${files.port}` : 'off',
    servingCertificate: servingCertificate ? servingCertificate.certFile : files ? 'from the CSR API' : 'none (the metrics port serves a self-signed one)',
    controllerCa: flags.caFile ?? `ConfigMap ${namespace}/netwarden-ca`,
  });
  await agent.start();
}
