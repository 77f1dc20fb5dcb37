// Byte sizes as Kubernetes quantities are written: 123, 10k, 5Mi, 1Gi, 2G.

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };

/** Kubernetes quantity-style sizes: 123, 10k, 5Mi, 1Gi, 2G; throws on anything else. */
export function parseByteSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(text.trim());
  if (!m) throw new Error(`${JSON.stringify(text)} is not a size such as 1Gi, 500Mi or 1000000`);
  return Math.floor(Number(m[1]) * SIZE_UNITS[m[2] ?? '']!);
}
