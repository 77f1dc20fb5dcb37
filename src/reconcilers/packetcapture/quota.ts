// Namespace capture quotas: how many PacketCaptures of one namespace may run at once, and how many
// bytes of capture files the namespace may hold across all nodes. Set by the cluster admin in the
// ConfigMap netwarden-capture-quotas of Netwarden's own namespace (tenants cannot write there),
// with a default and per-namespace overrides; enforced here, by the controller, for every node at
// once. A capture held back gets no targets (so no agent captures it), and waits its turn: first
// come, first served by creation time, level-triggered by capture and ConfigMap events.
import type { V1ConfigMap } from '@kubernetes/client-node';
import YAML from 'yaml';
import type { Condition } from '../../apis/meta.js';
import type { PacketCapture } from '../../apis/packetcapture.js';
import { parseByteSize } from '../../util/size.js';
import { captureSchedule } from './phase.js';

export const CAPTURE_QUOTA_CONFIGMAP = 'netwarden-capture-quotas';
/** The controller's condition: the namespace quota has a place for this capture (sticky until it ends). */
export const QUOTA_CONDITION = 'QuotaReserved';

export interface NamespaceQuota {
  /** PacketCaptures of the namespace that may hold a place at once (running, waiting for traffic or stopped before their end). */
  maxConcurrentCaptures: number;
  /** Bytes of capture files of the namespace on all nodes together, ended captures' included. */
  maxBytes: number;
}

/** Used for every namespace when the ConfigMap is missing, does not parse, or sets no default. */
export const BUILTIN_NAMESPACE_QUOTA: NamespaceQuota = { maxConcurrentCaptures: 10, maxBytes: 10 * 1024 ** 3 };

export interface QuotaConfig {
  default: NamespaceQuota;
  namespaces: Record<string, Partial<NamespaceQuota>>;
  /** Where the numbers come from, for messages. */
  source: string;
  /** Why the ConfigMap was not used, if it was not. */
  error?: string | undefined;
}

/** A namespace's quota, with where it comes from. */
export interface EffectiveQuota extends NamespaceQuota {
  source: string;
}

/**
 * The ConfigMap's data:
 *   default: |            every namespace not listed below
 *     maxConcurrentCaptures: 10
 *     maxBytes: 10Gi
 *   namespaces: |         overrides; a field left out comes from default
 *     storefront: {maxConcurrentCaptures: 10, maxBytes: 50Gi}
 */
export function parseQuotaConfig(configMap: Pick<V1ConfigMap, 'data' | 'metadata'> | undefined): QuotaConfig {
  const where = configMap ? `ConfigMap ${configMap.metadata?.namespace ?? ''}/${configMap.metadata?.name ?? CAPTURE_QUOTA_CONFIGMAP}` : `ConfigMap ${CAPTURE_QUOTA_CONFIGMAP}`;
  const builtin: QuotaConfig = { default: BUILTIN_NAMESPACE_QUOTA, namespaces: {}, source: `the built-in default; no ${where}` };
  if (!configMap) return builtin;
  try {
    const data = configMap.data ?? {};
    const unknown = Object.keys(data).filter((k) => k !== 'default' && k !== 'namespaces');
    if (unknown.length > 0) throw new Error(`unknown key(s) ${unknown.join(', ')}: only default and namespaces`);
    const defaults = { ...BUILTIN_NAMESPACE_QUOTA, ...quotaFields(parseYaml(data.default, 'default'), 'default') };
    const namespaces: Record<string, Partial<NamespaceQuota>> = {};
    const listed = parseYaml(data.namespaces, 'namespaces');
    for (const [namespace, fields] of Object.entries(listed)) namespaces[namespace] = quotaFields(fields, `namespaces.${namespace}`);
    return { default: defaults, namespaces, source: where };
  } catch (err) {
    const error = `${where} is invalid: ${err instanceof Error ? err.message : String(err)}`;
    return { ...builtin, source: `the built-in default (${error})`, error };
  }
}

export function quotaFor(config: QuotaConfig, namespace: string): EffectiveQuota {
  const override = config.namespaces[namespace];
  return override ? { ...config.default, ...override, source: `${config.source}, namespaces.${namespace}` } : { ...config.default, source: `${config.source}, default` };
}

function parseYaml(text: string | undefined, key: string): Record<string, unknown> {
  if (text === undefined || text.trim() === '') return {};
  const value: unknown = YAML.parse(text);
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${key}: expected a mapping`);
  return value as Record<string, unknown>;
}

function quotaFields(value: unknown, where: string): Partial<NamespaceQuota> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${where}: expected a mapping`);
  const out: Partial<NamespaceQuota> = {};
  for (const [field, v] of Object.entries(value)) {
    if (field === 'maxConcurrentCaptures') {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`${where}.maxConcurrentCaptures: ${JSON.stringify(v)} is not a whole number >= 0`);
      out.maxConcurrentCaptures = v;
    } else if (field === 'maxBytes') {
      if (typeof v !== 'number' && typeof v !== 'string') throw new Error(`${where}.maxBytes: ${JSON.stringify(v)} is not a size such as 10Gi`);
      out.maxBytes = typeof v === 'number' ? v : parseByteSize(v);
    } else {
      throw new Error(`${where}: unknown field ${field} (maxConcurrentCaptures, maxBytes)`);
    }
  }
  return out;
}

export type QuotaVerdict = { admitted: true; message: string } | { admitted: false; message: string };

/**
 * Whether the namespace quota has a place for `capture` (valid, started and not ended) among the
 * namespace's captures. Bytes at the limit hold back every capture, running ones too, until files
 * are deleted; the concurrency limit never takes a place from a capture that has one.
 */
export function quotaVerdict(capture: PacketCapture, namespaceCaptures: readonly PacketCapture[], quota: EffectiveQuota, now: Date): QuotaVerdict {
  const namespace = capture.metadata.namespace ?? '';
  const used = namespaceCaptures.reduce((sum, c) => sum + captureBytes(c), 0);
  if (used >= quota.maxBytes) {
    return { admitted: false, message: `namespace quota: ${quota.maxBytes} bytes of capture files (${quota.source}); namespace ${namespace} holds ${used}: delete captures or their files to make room` };
  }
  const within = `within the namespace quota of ${quota.maxConcurrentCaptures} concurrent captures and ${quota.maxBytes} bytes (${quota.source})`;
  if (holdsPlace(capture, now)) return { admitted: true, message: within };
  const others = namespaceCaptures.filter((c) => c.metadata.uid !== capture.metadata.uid);
  const holders = others.filter((c) => holdsPlace(c, now));
  const ahead = others.filter((c) => waitsForPlace(c, now) && comesFirst(c, capture)).length;
  if (holders.length + ahead < quota.maxConcurrentCaptures) return { admitted: true, message: within };
  const names = holders.map((c) => c.metadata.name ?? '').sort();
  const queue = ahead > 0 ? `; ${ahead} earlier capture(s) wait before this one` : '';
  return {
    admitted: false,
    message: `namespace quota: ${quota.maxConcurrentCaptures} concurrent captures (${quota.source}); namespace ${namespace} runs ${holders.length}${names.length ? ` (${names.slice(0, 10).join(', ')}${names.length > 10 ? ', ...' : ''})` : ''}${queue}`,
  };
}

/** Bytes of a capture's files on all nodes, as the agents report them. */
export function captureBytes(capture: PacketCapture): number {
  return (capture.status?.files ?? []).reduce((sum, f) => sum + (f.bytes ?? 0), 0);
}

/** Has a place (QuotaReserved=True) and has not ended: it may run (again) on any node. */
export function holdsPlace(capture: PacketCapture, now: Date): boolean {
  return conditionTrue(capture.status?.conditions, QUOTA_CONDITION) && wantsToRun(capture, now);
}

/** Would run now but has no place yet. */
export function waitsForPlace(capture: PacketCapture, now: Date): boolean {
  return !conditionTrue(capture.status?.conditions, QUOTA_CONDITION) && wantsToRun(capture, now) && capture.status?.phase !== 'Failed';
}

/** Started, not ended, not being deleted. */
export function wantsToRun(capture: PacketCapture, now: Date): boolean {
  if (capture.metadata.deletionTimestamp || capture.status?.phase === 'Finished') return false;
  const { start, end } = captureSchedule(capture);
  return !(start && start > now) && !(end && end <= now);
}

/** First come, first served: creation time, then name (unique within the namespace). */
function comesFirst(a: PacketCapture, b: PacketCapture): boolean {
  const ta = Date.parse(String(a.metadata.creationTimestamp ?? ''));
  const tb = Date.parse(String(b.metadata.creationTimestamp ?? ''));
  if (ta !== tb) return (Number.isFinite(ta) ? ta : Infinity) < (Number.isFinite(tb) ? tb : Infinity);
  return (a.metadata.name ?? '') < (b.metadata.name ?? '');
}

function conditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return conditions?.some((c) => c.type === type && c.status === 'True') ?? false;
}
