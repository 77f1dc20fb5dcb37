// `netwarden agent --node-name N`.
import { buildAgent } from '../nodeagent/agent.js';
import { loadKubeConfig } from '../util/kube.js';
import { loggerFor } from '../util/log.js';

export interface AgentFlags {
  nodeName?: string;
  kubeconfig?: string;
  metricsPort: number;
  metricsAddress: string;
  stateDir: string;
  controllerUrl: string;
  caFile?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  filesPort: number;
  bindAddress: string;
}

export async function runAgent(flags: AgentFlags & { nodeName: string }): Promise<void> {
  const tls = flags.tlsCertFile && flags.tlsKeyFile ? { certFile: flags.tlsCertFile, keyFile: flags.tlsKeyFile, port: flags.filesPort, bindAddress: flags.bindAddress } : undefined;
  const agent = buildAgent(loadKubeConfig(flags.kubeconfig), { ...flags, tls });
  loggerFor('agent').info('starting', { node: flags.nodeName, stateDir: flags.stateDir, controllerUrl: flags.controllerUrl, filesServer: tls ? `${tls.bindAddress}:${tls.port}` : 'off' });
  await agent.start();
}
