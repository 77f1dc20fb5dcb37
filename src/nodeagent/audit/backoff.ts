// Delay before the next delivery attempt: the shared backoff (src/util/backoff.ts: exponential with
// full jitter), at least 100 ms, and at least what the server asked for with Retry-After.
import { backoffDelay } from '../../util/backoff.js';

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_MAX_MS = 10_000;
/** A Retry-After longer than this is capped: the forwarder keeps probing the sink. */
export const RETRY_AFTER_MAX_MS = 5 * 60_000;

export function retryDelayMs(attempt: number, retryAfterMs?: number, random: () => number = Math.random): number {
  const jittered = Math.max(100, Math.floor(backoffDelay(attempt, BACKOFF_BASE_MS, BACKOFF_MAX_MS, random)));
  return retryAfterMs === undefined ? jittered : Math.max(Math.min(retryAfterMs, RETRY_AFTER_MAX_MS), jittered);
}
