// Go-style durations ("90s", "1m30s", "1.5h", "250ms"), the syntax of every duration field of the
// CRDs, of the duration flags and of CEL's duration(), read into milliseconds.

/** The syntax, as the CRD schemas' pattern. */
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';
const DURATION_RE = new RegExp(DURATION_PATTERN);

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A duration in milliseconds; undefined if malformed. */
export function parseDuration(text: string): number | undefined {
  return DURATION_RE.test(text) ? sumDurationTerms(text) : undefined;
}

/** The "<number><unit>" terms found in text, summed in milliseconds; no checks (0 when none), for text already validated. */
export function sumDurationTerms(text: string): number {
  let total = 0;
  for (const [, value, unit] of text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) total += Number(value) * UNIT_MS[unit!]!;
  return total;
}
