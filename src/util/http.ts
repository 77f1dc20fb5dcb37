// What Netwarden's HTTP clients (the agents' drop sender, the controller's agent client, the
// webhook sink, the kubectl plugin) read from an answer the same way.

/** Retry-After: delta-seconds or an HTTP date (RFC 9110 §10.2.3), as ms from now; undefined when absent or invalid. */
export function parseRetryAfter(value: string | readonly string[] | undefined, now = Date.now()): number | undefined {
  const first = typeof value === 'string' ? value : value?.[0];
  if (first === undefined) return undefined;
  const v = first.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * The `message` (or `error`) of a JSON error answer (Netwarden's HttpError bodies, a Kubernetes
 * Status), else the text itself, trimmed and cut to maxChars.
 */
export function errorBodyMessage(text: string, maxChars = 512): string {
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null) {
      const message = (parsed as Record<string, unknown>).message ?? (parsed as Record<string, unknown>).error;
      if (typeof message === 'string') return message;
    }
  } catch {
    // not JSON: use the text
  }
  return text.trim().slice(0, maxChars);
}
