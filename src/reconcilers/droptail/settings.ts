// The DropTail spec as the drop pipeline uses it: durations in milliseconds and every default
// filled in, so an object stored before a default existed behaves like a new one.
import type { DropTail } from '../../apis/droptail.js';
import { parseDuration } from '../../util/duration.js';

export interface DropTailSettings {
  eventReason: string;
  reportingComponent: string;
  repeatIntervalMs: number;
  expirationMs: number;
  reverseDNS: boolean;
  metrics: boolean;
  recentDropsLimit: number;
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
