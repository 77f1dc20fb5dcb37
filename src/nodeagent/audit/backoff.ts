// Delay before the next delivery attempt: exponential with full jitter (AWS architecture blog,
// "Exponential Backoff And Jitter"), at least what the server asked for with Retry-After.
export const BACKOFF_BASE_MS = 500;
export const BACKOFF_MAX_MS = 10_000;
/** A Retry-After longer than this is capped: the forwarder keeps probing the sink. */
export const RETRY_AFTER_MAX_MS = 5 * 60_000;

export function retryDelayMs(attempt: number, retryAfterMs?: number, random: () => number = Math.random): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 20));
  const jittered = Math.max(100, Math.floor(random() * ceiling));
  return retryAfterMs === undefined ? jittered : Math.max(Math.min(retryAfterMs, RETRY_AFTER_MAX_MS), jittered);
}
