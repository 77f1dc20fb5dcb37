// The bounded per-node summary the controller writes into DropTail and AuditForwarder status from
// the agents' reports (src/apis/nodereport.ts): how many nodes report, how many of them are
// unhealthy, and the newest few problems. Its size does not grow with the number of nodes; the
// per-node detail is in each agent's metrics (and the controller's GET .../nodes).
import { dateTimeSchema, type FromSchema, type JSONSchemaProps } from './schema.js';

/** Problems kept in status, newest first. */
export const MAX_PROBLEMS = 10;

export const nodeProblemSchema = {
  type: 'object',
  required: ['node', 'time', 'message'],
  properties: {
    node: { type: 'string', maxLength: 253 },
    time: { ...dateTimeSchema, description: 'When the controller first saw this problem in the node\'s reports.' },
    message: { type: 'string', maxLength: 1024 },
  },
} as const satisfies JSONSchemaProps;

export const nodeSummaryProperties = {
  nodeCount: { type: 'integer', minimum: 0, description: 'Nodes whose agents report (a node silent for 10 minutes, deleted or no longer selected is dropped).' },
  unhealthyNodes: { type: 'integer', minimum: 0, description: 'Reporting nodes with a current problem: a failing source or sink, a send error, or no report for 3 heartbeats (90 s). A past gap is listed in problems but does not count.' },
  problems: {
    type: 'array',
    maxItems: MAX_PROBLEMS,
    'x-kubernetes-list-type': 'atomic',
    description: `The newest problems of the nodes (at most ${MAX_PROBLEMS}, newest first); every node's own is in its agent's metrics.`,
    items: nodeProblemSchema,
  },
} as const satisfies Record<string, JSONSchemaProps>;

export type NodeProblem = FromSchema<typeof nodeProblemSchema>;

export const unhealthyColumn = { name: 'Unhealthy', type: 'integer', jsonPath: '.status.unhealthyNodes', description: 'Reporting nodes with a problem.' } as const;
