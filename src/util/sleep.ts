// Waiting that a stop can cut short: backoffs and retry loops must not hold up a shutdown.

/** Resolves after ms, or early (without throwing) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Longest single timer: Node fires a setTimeout of more than 2^31-1 ms at once. */
const MAX_TIMER_MS = 3_600_000;

/** Resolves at `when` (in steps of at most an hour, so far-off times work), or early when the signal aborts. */
export async function sleepUntil(when: Date, signal?: AbortSignal): Promise<void> {
  for (let left = when.getTime() - Date.now(); left > 0 && !signal?.aborted; left = when.getTime() - Date.now()) {
    await sleep(Math.min(left, MAX_TIMER_MS), signal);
  }
}
