// DropTail on the node agent: read drops from the selected DropTails' sources, aggregate them,
// push them to the controller and report this node's status entry.
import type { DropTail } from '../../apis/droptail.js';
import { keyOf } from '../../runtime/keys.js';
import type { Informer } from '../../runtime/informer.js';
import type { AgentContext } from '../context.js';
import { DropTailAgentController, DropTailAgentReconciler } from './reconciler.js';

/** Registers the DropTail controller of the agent: it watches the DropTails and this node's labels. */
export function registerDropTailAgent(ctx: AgentContext, dropTails: Informer<DropTail>): void {
  const reconciler = new DropTailAgentReconciler(ctx, dropTails);
  ctx.manager.addController(
    new DropTailAgentController(reconciler)
      .watches(dropTails)
      .watches(ctx.node, () => dropTails.list().map(keyOf)),
  );
}
