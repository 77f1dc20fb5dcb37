// The DropTail spec as the drop pipeline uses it: durations in milliseconds and every default
// filled in, so an object stored before a default existed behaves like a new one.
import type { DropTail } from '../../apis/droptail.js';

export interface DropTailSettings {
  eventReason: string;
  reportingComponent: string;
  repeatIntervalMs: number;
  expirationMs: number;
  reverseDNS: boolean;
  metrics: boolean;
  recentDropsLimit: number;
}

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go-style duration ("90s", "1m30s", "1.5h", "250ms") in milliseconds; undefined if malformed. */
export function parseDuration(text: string): number | undefined {
  if (!/^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/.test(text)) return undefined;
  return sumDurationTerms(text);
}

/** The "<number><unit>" terms found in text, summed in milliseconds; no checks (0 when none). */
export function sumDurationTerms(text: string): number {
  let total = 0;
  for (const [, value, unit] of text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) total += Number(value) * UNIT_MS[unit!]!;
  return total;
}

export function settingsOf(dropTail: DropTail): DropTailSettings {
  const spec = dropTail.spec ?? {};
  return {
    eventReason: spec.eventReason ?? 'PacketDrop',
    reportingComponent: spec.reportingComponent ?? 'netwarden',
    repeatIntervalMs: parseDuration(spec.repeatInterval ?? '') ?? 2 * 60_000,
    expirationMs: parseDuration(spec.expiration ?? '') ?? 10 * 60_000,
    reverseDNS: spec.reverseDNS ?? true,
    metrics: spec.metrics ?? true,
    recentDropsLimit: spec.recentDropsLimit ?? 20,
  };
}
