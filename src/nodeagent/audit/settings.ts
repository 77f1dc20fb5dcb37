// The AuditForwarder spec as the node pipeline uses it: every default filled in (an object stored
// before a default existed behaves like a new one) and durations in milliseconds.
import type { AuditForwarder, AuditRule, AuditSink } from '../../apis/auditforwarder.js';
import { parseDuration } from '../../util/duration.js';

export interface AuditSettings {
  sourcePath: string;
  clusterID: string;
  maxBytes: number;
  maxWaitMs: number;
  maxEvents: number;
  rules: readonly AuditRule[];
  sink: AuditSink;
}

export const DEFAULT_SOURCE_PATH = '/var/log/kubernetes/audit/audit.log';

export function auditSettingsOf(fwd: AuditForwarder): AuditSettings {
  const spec = fwd.spec;
  return {
    sourcePath: spec.source?.path ?? DEFAULT_SOURCE_PATH,
    clusterID: spec.clusterID ?? 'default_cluster',
    maxBytes: spec.batch?.maxBytes ?? 52_428_800,
    // A zero maxWait would spin; 50 ms is below what any receiver can tell apart.
    maxWaitMs: Math.max(50, parseDuration(spec.batch?.maxWait ?? '') ?? 60_000),
    maxEvents: spec.batch?.maxEvents ?? Number.POSITIVE_INFINITY,
    rules: spec.filter?.rules ?? [],
    sink: spec.sink,
  };
}
