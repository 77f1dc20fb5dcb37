// Where capture files live on the node, and what counts as one of ours. Every path is built here
// from checked Kubernetes names and the capture's UID:
//   <stateDir>/captures/<namespace>/<name>/<uid>/<pod>_<interface>_<seq>.pcap or .pcapng (+ metadata-<node>.txt)
// The UID level means a capture deleted and created again under the same name never finds, reuses
// or serves its predecessor's files: anything else under <namespace>/<name>/ is stale and removed.
// A name from a request is only ever compared with the patterns of src/apis/capturefiles.ts
// (isCaptureFileName), which the controller checks agents' lists with.
import { readdirSync, rmSync, statSync, type Dirent } from 'node:fs';
import path from 'node:path';
import { isCaptureFileName, pcapFileNameParts } from '../../apis/capturefiles.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Linux interface names: up to 15 bytes, no "/", whitespace or ":"; we accept a safe subset. */
const INTERFACE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}$/;
/** metadata.uid as the API server assigns it (a UUID). */
const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface CaptureRef {
  namespace: string;
  name: string;
}

export interface StoredFile {
  /** Empty for the node metadata snapshot. */
  pod: string;
  fileName: string;
  bytes: number;
  sequence: number;
}

export function isInterfaceName(name: string): boolean {
  return INTERFACE_NAME.test(name);
}

export function capturesRoot(stateDir: string): string {
  return path.join(stateDir, 'captures');
}

export function isCaptureUid(uid: string): boolean {
  return UID.test(uid);
}

/** <stateDir>/captures/<namespace>/<name>: every capture of that name, one UID directory each. */
export function captureNameDirectory(stateDir: string, ref: CaptureRef): string {
  if (!DNS_LABEL.test(ref.namespace) || !DNS_SUBDOMAIN.test(ref.name)) throw new Error(`not a Kubernetes object name: ${ref.namespace}/${ref.name}`);
  return path.join(capturesRoot(stateDir), ref.namespace, ref.name);
}

/** The files of one capture (this UID) on this node. */
export function captureDirectory(stateDir: string, ref: CaptureRef, uid: string): string {
  if (!isCaptureUid(uid)) throw new Error(`not a capture UID: ${JSON.stringify(uid)}`);
  return path.join(captureNameDirectory(stateDir, ref), uid);
}

export function pcapFileName(pod: string, iface: string, sequence: number, extension: 'pcap' | 'pcapng' = 'pcap'): string {
  if (!DNS_SUBDOMAIN.test(pod)) throw new Error(`not a pod name: ${pod}`);
  if (!isInterfaceName(iface)) throw new Error(`not an interface name: ${iface}`);
  return `${pod}_${iface}_${String(sequence).padStart(5, '0')}.${extension}`;
}

export function metadataFileName(node: string): string {
  return `metadata-${node}.txt`;
}

/** Our files in the directory, oldest sequence first per pod; [] when it does not exist. */
export function listStoredFiles(dir: string): StoredFile[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const files: StoredFile[] = [];
  for (const fileName of names) {
    if (!isCaptureFileName(fileName)) continue;
    let bytes: number;
    try {
      bytes = statSync(path.join(dir, fileName)).size;
    } catch {
      continue; // rotated away between readdir and stat
    }
    const pcap = pcapFileNameParts(fileName);
    files.push({ pod: pcap?.pod ?? '', fileName, bytes, sequence: pcap?.sequence ?? 0 });
  }
  return files.sort((a, b) => a.pod.localeCompare(b.pod) || a.sequence - b.sequence || a.fileName.localeCompare(b.fileName));
}

/** The next sequence number for a pod, given its stored files: after every one (restarts never overwrite). */
export function nextSequence(podFiles: readonly StoredFile[]): number {
  return podFiles.reduce((max, f) => Math.max(max, f.sequence + 1), 1);
}

/** Removes every capture of this name (the resource is gone), and the namespace directory once empty. */
export function removeCaptureDirectory(stateDir: string, ref: CaptureRef): void {
  const dir = captureNameDirectory(stateDir, ref);
  rmSync(dir, { recursive: true, force: true });
  removeIfEmpty(path.dirname(dir));
}

/** Removes one capture's files (its UID directory), and the directories above once empty. */
export function removeCaptureFiles(stateDir: string, ref: CaptureRef, uid: string): void {
  rmSync(captureDirectory(stateDir, ref, uid), { recursive: true, force: true });
  const nameDir = captureNameDirectory(stateDir, ref);
  if (removeIfEmpty(nameDir)) removeIfEmpty(path.dirname(nameDir));
}

/**
 * Removes what an older capture of this name left (other UIDs' directories, and files of the layout
 * before UIDs), keeping `uid`'s. Returns the names removed, for the log.
 */
export function removeStaleEntries(stateDir: string, ref: CaptureRef, uid: string): string[] {
  const dir = captureNameDirectory(stateDir, ref);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const stale = entries.filter((e) => e !== uid);
  for (const entry of stale) rmSync(path.join(dir, entry), { recursive: true, force: true });
  return stale;
}

function removeIfEmpty(dir: string): boolean {
  try {
    if (readdirSync(dir).length > 0) return false;
    rmSync(dir, { recursive: true, force: true });
    return true;
  } catch {
    return false; // already gone
  }
}

/** Capture names with a directory on disk (e.g. left from before a restart). */
export function storedCaptures(stateDir: string): CaptureRef[] {
  const root = capturesRoot(stateDir);
  const refs: CaptureRef[] = [];
  for (const namespace of subdirectories(root)) {
    if (!DNS_LABEL.test(namespace)) continue;
    for (const name of subdirectories(path.join(root, namespace))) if (DNS_SUBDOMAIN.test(name)) refs.push({ namespace, name });
  }
  return refs;
}

function subdirectories(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
}

/**
 * Bytes of the files under the captures root, leaving out `skip` (files being written, which the
 * caller counts its own way). What the node's --capture-max-bytes limits.
 */
export function storedBytes(stateDir: string, skip: ReadonlySet<string> = new Set()): number {
  let entries: Dirent[];
  try {
    entries = readdirSync(capturesRoot(stateDir), { withFileTypes: true, recursive: true });
  } catch {
    return 0;
  }
  let total = 0;
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    if (skip.has(file)) continue;
    try {
      total += statSync(file).size;
    } catch {
      // removed between readdir and stat
    }
  }
  return total;
}
