// Calls to the console's backend. Same-origin: the token cookie goes along; mutations add the
// header the server requires of them (a cross-site page cannot send it without a preflight).
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

async function check(res: Response): Promise<Response> {
  if (res.ok) return res;
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as { message?: string };
    if (body.message) message = `${res.status}: ${body.message}`;
  } catch {
    // not JSON
  }
  throw new ApiError(message, res.status);
}

export async function getJson<T>(path: string): Promise<T> {
  return (await check(await fetch(path))).json() as Promise<T>;
}

export async function send<T>(method: 'POST' | 'DELETE', path: string, body?: string): Promise<T> {
  const headers: Record<string, string> = { 'x-netwarden-request': '1' };
  if (body !== undefined) headers['content-type'] = 'application/yaml';
  return (await check(await fetch(path, { method, headers, body }))).json() as Promise<T>;
}

export interface Progress {
  bytes: number;
  expected: number | undefined;
}

/** Streams a download, reporting bytes as they come, and hands the finished file to the browser. */
export async function download(path: string, fileName: string, onProgress: (p: Progress) => void): Promise<{ bytes: number; expected: number | undefined; missingNodes: string[] }> {
  const res = await check(await fetch(path));
  const expectedHeader = res.headers.get('x-netwarden-expected-bytes');
  const expected = expectedHeader && /^\d+$/.test(expectedHeader) ? Number(expectedHeader) : undefined;
  const missing = res.headers.get('x-netwarden-missing-nodes');
  const reader = res.body!.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    bytes += value.length;
    onProgress({ bytes, expected });
  }
  const url = URL.createObjectURL(new Blob(chunks as BlobPart[], { type: 'application/zip' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return { bytes, expected, missingNodes: missing ? missing.split(',') : [] };
}

export function formatBytes(n: number | undefined): string {
  if (n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

export function age(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '—';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}
