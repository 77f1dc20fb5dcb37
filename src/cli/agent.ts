// `netwarden agent --node-name N`.
import { buildAgent } from '../nodeagent/agent.js';
import { loadKubeConfig } from '../util/kube.js';
import { loggerFor } from '../util/log.js';

export interface AgentFlags {
  nodeName?: string;
  kubeconfig?: string;
  metricsPort: number;
  metricsAddress: string;
}

export async function runAgent(flags: AgentFlags & { nodeName: string }): Promise<void> {
  const manager = buildAgent(loadKubeConfig(flags.kubeconfig), flags);
  loggerFor('agent').info('starting', { node: flags.nodeName });
  await manager.start();
}
