// Object keys under a user's prefix, apart from src/util/s3.ts so that computing a key does not load
// the AWS SDK (the controller and the plugin show keys, and never upload).

/** Joins a user's prefix (slashes at either end trimmed) and the key's own parts. */
export function joinS3Key(prefix: string | undefined, parts: readonly string[]): string {
  const head = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  return (head ? [head, ...parts] : parts).join('/');
}
