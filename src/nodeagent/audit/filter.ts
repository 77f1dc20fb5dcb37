// Filter rules of an AuditForwarder: the first rule an event matches decides (keep or drop); an
// event no rule matches is kept. A rule matches when every field it sets matches; an empty or
// absent list matches anything.
import type { AuditRule } from '../../apis/auditforwarder.js';
import type { AuditEventFields } from './event.js';

export type AuditFilter = (ev: AuditEventFields) => boolean;

type Matcher = (ev: AuditEventFields) => boolean;

function inList(list: readonly string[] | undefined, value: string): boolean {
  return !list || list.length === 0 || list.includes(value);
}

function resourceMatcher(entries: NonNullable<AuditRule['resources']>): Matcher {
  return (ev) => {
    const ref = ev.objectRef;
    if (!ref) return false; // non-resource requests never match a resource rule
    return entries.some((e) => (e.group ?? '') === ref.apiGroup && inList(e.resources, ref.resource) && inList(e.subresources, ref.subresource));
  };
}

function ruleMatcher(rule: AuditRule): Matcher {
  const checks: Matcher[] = [];
  if (rule.stages?.length) checks.push((ev) => inList(rule.stages, ev.stage));
  if (rule.verbs?.length) checks.push((ev) => inList(rule.verbs, ev.verb));
  if (rule.users?.length) checks.push((ev) => inList(rule.users, ev.username));
  if (rule.groups?.length) {
    const groups = new Set(rule.groups);
    checks.push((ev) => ev.groups.some((g) => groups.has(g)));
  }
  if (rule.resources?.length) checks.push(resourceMatcher(rule.resources));
  // "" names cluster-scoped (and non-resource) requests.
  if (rule.namespaces?.length) checks.push((ev) => inList(rule.namespaces, ev.objectRef?.namespace ?? ''));
  return (ev) => checks.every((c) => c(ev));
}

/** Returns whether an event is kept. */
export function compileFilter(rules: readonly AuditRule[] | undefined): AuditFilter {
  const compiled = (rules ?? []).map((r) => ({ keep: r.action === 'keep', matches: ruleMatcher(r) }));
  if (compiled.length === 0) return () => true;
  return (ev) => {
    for (const r of compiled) if (r.matches(ev)) return r.keep;
    return true;
  };
}
