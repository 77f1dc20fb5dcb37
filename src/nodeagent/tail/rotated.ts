// Rotated siblings of a log file: listing, grouping plain/.gz twins, and ordering oldest first.
//
// Naming schemes recognised by the default filter and ordering:
//  - lumberjack (kube-apiserver): audit.log -> audit-2026-11-23T03-20-56.123.log[.gz]
//  - logrotate numeric: kern.log -> kern.log.1, kern.log.2.gz (higher number = older)
//  - logrotate dateext: kern.log -> kern.log-20261123[.gz]
// Anything else falls back to mtime order.

import { readdir, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { contentMatchesPath, type FileIdentity } from './identity.js';

/** One rotated file, with its `.gz` twin merged in (a plain file is preferred while both exist). */
export interface RotatedFile {
  /** Logical name: the file name without a trailing `.gz`. */
  name: string;
  /** Path to read: the plain file if it exists, else the `.gz`. */
  path: string;
  compressed: boolean;
  ino: bigint;
  dev: bigint;
  mtimeMs: number;
  size: number;
  /** The other member of a plain/.gz pair, if both exist. */
  twin?: { path: string; ino: bigint; dev: bigint };
}

export type RotatedFilter = (name: string) => boolean;
export type RotatedCompare = (a: RotatedFile, b: RotatedFile) => number;

const OTHER_COMPRESSION = /\.(bz2|xz|zst|lz4|lzma|Z|zip)$/;

/**
 * Default sibling filter for the live file `base` (a file name): any other name that starts with
 * the full base name (logrotate: kern.log.1, kern.log-20261123.gz) or that starts with the name
 * without extension and ends with the extension or extension+.gz (lumberjack: audit-<ts>.log[.gz]).
 * Other compressions (.xz, .bz2, ...) are not readable and are skipped.
 */
export function defaultRotatedFilter(base: string): RotatedFilter {
  const ext = extname(base);
  const stem = ext ? base.slice(0, -ext.length) : base;
  return (name) => {
    if (name === base || OTHER_COMPRESSION.test(name)) return false;
    if (name.startsWith(base)) return true;
    if (!name.startsWith(stem)) return false;
    return ext === '' ? true : name.endsWith(ext) || name.endsWith(`${ext}.gz`);
  };
}

type RotationKey = { kind: 'ts'; key: string } | { kind: 'num'; n: number };

const LUMBERJACK_TS = /(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?)/;
const DATEEXT = /[-_.](\d{8}(?:\d{2}){0,3})(?=[-_.]|$)/;
const NUMERIC = /\.(\d{1,6})$/;

function rotationKey(name: string): RotationKey | null {
  const ts = LUMBERJACK_TS.exec(name);
  if (ts?.[1]) return { kind: 'ts', key: ts[1] };
  const num = NUMERIC.exec(name);
  if (num?.[1]) return { kind: 'num', n: Number(num[1]) };
  const d = DATEEXT.exec(name);
  if (d?.[1]) return { kind: 'ts', key: d[1] };
  return null;
}

/** Oldest first: by name timestamp, then logrotate number (descending), else mtime; name breaks ties. */
export const defaultRotatedCompare: RotatedCompare = (a, b) => {
  const ka = rotationKey(a.name);
  const kb = rotationKey(b.name);
  let c = 0;
  if (ka?.kind === 'ts' && kb?.kind === 'ts') c = ka.key < kb.key ? -1 : ka.key > kb.key ? 1 : 0;
  else if (ka?.kind === 'num' && kb?.kind === 'num') c = kb.n - ka.n;
  else c = a.mtimeMs - b.mtimeMs;
  if (c !== 0) return c;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
};

/**
 * Lists the rotated siblings of `livePath`, grouped by logical name and sorted oldest first.
 * Files that vanish while listing are skipped.
 */
export async function listRotated(
  livePath: string,
  filter: RotatedFilter = defaultRotatedFilter(basename(livePath)),
  compare: RotatedCompare = defaultRotatedCompare,
): Promise<RotatedFile[]> {
  const dir = join(livePath, '..');
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const groups = new Map<string, { plain?: RotatedFile; gz?: RotatedFile }>();
  for (const n of names) {
    if (!filter(n)) continue;
    const p = join(dir, n);
    let st;
    try {
      st = await stat(p, { bigint: true });
    } catch {
      continue;
    }
    if (!st.isFile()) continue;
    const compressed = n.endsWith('.gz');
    const logical = compressed ? n.slice(0, -3) : n;
    const f: RotatedFile = { name: logical, path: p, compressed, ino: st.ino, dev: st.dev, mtimeMs: Number(st.mtimeMs), size: Number(st.size) };
    const g = groups.get(logical) ?? {};
    if (compressed) g.gz = f;
    else g.plain = f;
    groups.set(logical, g);
  }
  const out: RotatedFile[] = [];
  for (const g of groups.values()) {
    if (g.plain) {
      out.push(g.gz ? { ...g.plain, twin: { path: g.gz.path, ino: g.gz.ino, dev: g.gz.dev } } : g.plain);
    } else if (g.gz) {
      out.push(g.gz);
    }
  }
  return out.sort(compare);
}

/** True if the entry (or its twin) is the file with this inode/device. */
export function rotatedHasInode(f: RotatedFile, ino: bigint, dev: bigint): boolean {
  return (f.ino === ino && f.dev === dev) || (f.twin !== undefined && f.twin.ino === ino && f.twin.dev === dev);
}

/**
 * Index in `list` of the rotated file `id` names: the newest with the same inode (its own or its
 * twin's) and content prefix, else the newest with the same content prefix (renamed, then
 * gzipped); -1 if none. An inode alone is not an identity: a deleted file's inode is soon reused.
 */
export async function findIdentified(list: readonly RotatedFile[], id: FileIdentity): Promise<number> {
  for (let i = list.length - 1; i >= 0; i--) {
    const f = list[i]!;
    const sameIno = f.ino.toString() === id.inode || f.twin?.ino.toString() === id.inode;
    if (sameIno && (await contentMatchesPath(id, f.path))) return i;
  }
  for (let i = list.length - 1; i >= 0; i--) if (await contentMatchesPath(id, list[i]!.path)) return i;
  return -1;
}
