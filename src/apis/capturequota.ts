// The ConfigMap netwarden-capture-quotas: namespace capture quotas as the cluster admin writes
// them in Netwarden's own namespace (tenants cannot write there). Read by the controller, which
// enforces them, and by `netwarden validate`, which checks the ConfigMap before it is applied.
import type { V1ConfigMap } from '@kubernetes/client-node';
import YAML from 'yaml';
import { parseByteSize } from '../util/size.js';

export const CAPTURE_QUOTA_CONFIGMAP = 'netwarden-capture-quotas';

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
