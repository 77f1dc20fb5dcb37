// What each node agent reports to the controller about its DropTails and AuditForwarders, instead
// of writing its own entry into their status (issue 12: per-node entries made a DropTail grow
// ~570 B per node, and every agent's write rewrote the whole object):
//   POST {controllerUrl}/droptail/{name}/report        (JSON body: DropTailNodeReport)
//   POST {controllerUrl}/auditforwarder/{name}/report  (JSON body: AuditNodeReport)
// The caller's token must pass a TokenReview (audience CONTROLLER_AUDIENCE, bound to the report's
// node) and a SubjectAccessReview for `create` on the virtual subresource droptails/reports or
// auditforwarders/reports. The controller keeps the last report per node in memory and writes a
// bounded summary into status (src/apis/nodesummary.ts).
//
// Agents send a report when something changed (at most every REPORT_MIN_INTERVAL_MS) and a
// heartbeat every REPORT_HEARTBEAT_MS; a node silent for REPORT_STALE_HEARTBEATS heartbeats counts
// as unhealthy.
import { dropSourceSchema } from './droptail.js';
import { GROUP } from './meta.js';
import type { FromSchema, JSONSchemaProps } from './schema.js';
import { schemaValidator } from './validate.js';

export type ReportKind = 'droptail' | 'auditforwarder';

export const REPORT_PATHS: Readonly<Record<ReportKind, string>> = {
  droptail: '/droptail/:name/report',
  auditforwarder: '/auditforwarder/:name/report',
};

/** The path of one object's report intake, for the agent's POST. */
export function reportPath(kind: ReportKind, name: string): string {
  return REPORT_PATHS[kind].replace(':name', encodeURIComponent(name));
}

/** GET {controllerUrl}/droptail/{name}/nodes (and /auditforwarder/...): every node's last report, for users. */
export const NODES_PATHS: Readonly<Record<ReportKind, string>> = {
  droptail: '/droptail/:name/nodes',
  auditforwarder: '/auditforwarder/:name/nodes',
};

/** Reading every node's report is reading the object's status: `get droptails/status`. */
export function nodesAccess(kind: ReportKind): { verb: 'get'; group: string; resource: string; subresource: 'status' } {
  return { verb: 'get', group: GROUP, resource: kind === 'droptail' ? 'droptails' : 'auditforwarders', subresource: 'status' };
}

/** The answer of GET .../nodes: one entry per node the controller knows, by node name. */
export interface NodeReportList<R> {
  kind: ReportKind;
  name: string;
  nodes: Array<{ node: string; receivedAt: string; stale: boolean; report: R }>;
}

/** The access review an agent's report must pass (plus `name`: the object's). */
export function reportAccess(kind: ReportKind): { verb: 'create'; group: string; resource: string; subresource: 'reports' } {
  return { verb: 'create', group: GROUP, resource: kind === 'droptail' ? 'droptails' : 'auditforwarders', subresource: 'reports' };
}

/** Largest report body the controller reads (a DropTail report with 16 sources and every message at its limit is ~40 KiB). */
export const MAX_REPORT_BYTES = 64 * 1024;

/** Agents send a changed report at most this often. */
export const REPORT_MIN_INTERVAL_MS = 5_000;
/** And a heartbeat this often (with jitter) when nothing changed. */
export const REPORT_HEARTBEAT_MS = 30_000;
/** Missed heartbeats after which the controller counts a node as unhealthy ("no report since"). */
export const REPORT_STALE_HEARTBEATS = 3;
/** A node not heard from this long is forgotten. */
export const REPORT_FORGET_MS = 10 * 60_000;

const NODE_NAME_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const nodeNameSchema = { type: 'string', minLength: 1, maxLength: 253, pattern: NODE_NAME_PATTERN } as const;
const text = (description?: string) => ({ type: 'string', maxLength: 1024, ...(description ? { description } : {}) }) as const;
const counter = (description?: string) => ({ type: 'integer', format: 'int64', minimum: 0, ...(description ? { description } : {}) }) as const;

export const dropTailNodeReportSchema = {
  type: 'object',
  required: ['node', 'sources', 'dropsSeen'],
  properties: {
    node: nodeNameSchema,
    sources: {
      type: 'array',
      maxItems: 16,
      items: {
        type: 'object',
        required: ['type', 'healthy'],
        properties: {
          type: dropSourceSchema.properties.type,
          healthy: { type: 'boolean' },
          message: text(),
          gaps: counter('Times this source skipped lines: a rotated log file deleted before it was read to its end.'),
          lastGap: text('The last of them: <time>: <reason>: <what was skipped>.'),
        },
      },
    },
    dropsSeen: counter('Drops this node read (kept across agent restarts).'),
    lastError: text('Why sending drops to the controller fails, while it does.'),
  },
} as const satisfies JSONSchemaProps;

export const auditNodeReportSchema = {
  type: 'object',
  required: ['node'],
  properties: {
    node: nodeNameSchema,
    file: { type: 'string', maxLength: 4096, description: 'Audit log file being read.' },
    offset: counter('Byte offset shipped up to.'),
    shippedBytes: counter(),
    shippedEvents: counter('Events the sink acknowledged, each counted once (delivery is at least once).'),
    lagBytes: counter('Bytes written to the log but not shipped yet.'),
    bufferedBytes: counter(),
    lastOffloadTime: { type: 'string', format: 'date-time' },
    lastError: text(),
    quarantinedLines: counter('Lines shipped in quarantine form because they were not audit events.'),
    lastQuarantinedLine: text('The last of them: <file>:<offset>: <reason>.'),
    gaps: counter('Times lines were skipped because a file was deleted before it was read to its end.'),
    lastGap: text('The last of them: <time>: <reason>: <what was skipped>.'),
    skippedBytes: counter('Bytes known to be skipped in those gaps.'),
  },
} as const satisfies JSONSchemaProps;

export type DropTailNodeReport = FromSchema<typeof dropTailNodeReportSchema>;
export type DropTailSourceReport = DropTailNodeReport['sources'][number];
export type AuditNodeReport = FromSchema<typeof auditNodeReportSchema>;

export interface NodeReports {
  droptail: DropTailNodeReport;
  auditforwarder: AuditNodeReport;
}

export class ReportError extends Error {}

const validators = {
  droptail: schemaValidator(dropTailNodeReportSchema),
  auditforwarder: schemaValidator(auditNodeReportSchema),
};

/** Parses and checks a report body; throws ReportError naming the first wrong field ($.sources[0].healthy). */
export function parseNodeReport<K extends ReportKind>(kind: K, body: Buffer | string): NodeReports[K] {
  let value: unknown;
  try {
    value = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch (err) {
    throw new ReportError(`body is not JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ReportError('$: must be an object');
  const errors = validators[kind](value);
  if (errors.length > 0) {
    const first = errors[0]!;
    throw new ReportError(`${first.path ? `$.${first.path}` : '$'}: ${first.message}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`);
  }
  return value as NodeReports[K];
}
