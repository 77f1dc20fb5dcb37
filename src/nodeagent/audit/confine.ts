// Where an AuditForwarder may read: a path under the agent's --audit-log-dir directories, checked
// as written (no . or .. segments) and as the filesystem resolves it (a symlinked directory or log
// file may not lead out), so a forwarder cannot ship the agent's key, its token or a pod's logs.
import { lstat, realpath } from 'node:fs/promises';
import path from 'node:path';
import { isInsideLexically } from '../../apis/limits.js';

/** Why `file` may not be read, or undefined. A path that does not exist yet is judged as written. */
export async function sourcePathRefusal(file: string, dirs: readonly string[]): Promise<string | undefined> {
  const refused = `spec.source.path ${file} is outside the directories this agent reads audit logs from (${dirs.join(', ')}; set with --audit-log-dir)`;
  if (!isInsideLexically(file, dirs)) return refused;
  const realDirs = (await Promise.all(dirs.map((d) => realpath(d).catch(() => null)))).filter((d): d is string => d !== null);
  const within = (p: string) => realDirs.some((d) => p === d || p.startsWith(d.endsWith('/') ? d : `${d}/`));
  const parent = await realpath(path.dirname(file)).catch(() => null);
  if (parent !== null && !within(parent)) return `${refused}: its directory resolves to ${parent}`;
  const st = await lstat(file).catch(() => null);
  if (st?.isSymbolicLink()) {
    const target = await realpath(file).catch(() => null);
    if (target === null || !within(target)) return `${refused}: it is a symbolic link to ${target ?? 'a missing file'}`;
  }
  return undefined;
}
