// Where capture files live on the node, and what counts as one of ours. Every path is built here
// from checked Kubernetes names: <stateDir>/captures/<namespace>/<name>/<pod>_<interface>_<seq>.pcap
// plus metadata-<node>.txt. A name from a request is only ever compared with the patterns of
// src/apis/capturefiles.ts (isCaptureFileName), which the controller checks agents' lists with.
import { readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { isCaptureFileName, pcapFileNameParts } from '../../apis/capturefiles.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Linux interface names: up to 15 bytes, no "/", whitespace or ":"; we accept a safe subset. */
const INTERFACE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}$/;

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

export function captureDirectory(stateDir: string, ref: CaptureRef): string {
  if (!DNS_LABEL.test(ref.namespace) || !DNS_SUBDOMAIN.test(ref.name)) throw new Error(`not a Kubernetes object name: ${ref.namespace}/${ref.name}`);
  return path.join(capturesRoot(stateDir), ref.namespace, ref.name);
}

export function pcapFileName(pod: string, iface: string, sequence: number): string {
  if (!DNS_SUBDOMAIN.test(pod)) throw new Error(`not a pod name: ${pod}`);
  if (!isInterfaceName(iface)) throw new Error(`not an interface name: ${iface}`);
  return `${pod}_${iface}_${String(sequence).padStart(5, '0')}.pcap`;
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

/** Removes the capture's directory, and its namespace directory once empty. */
export function removeCaptureDirectory(stateDir: string, ref: CaptureRef): void {
  const dir = captureDirectory(stateDir, ref);
  rmSync(dir, { recursive: true, force: true });
  try {
    const parent = path.dirname(dir);
    if (readdirSync(parent).length === 0) rmSync(parent, { recursive: true, force: true });
  } catch {
    // already gone
  }
}

/** Capture directories present on disk (e.g. left from before a restart). */
export function storedCaptures(stateDir: string): CaptureRef[] {
  const root = capturesRoot(stateDir);
  const refs: CaptureRef[] = [];
  let namespaces: string[] = [];
  try {
    namespaces = readdirSync(root);
  } catch {
    return refs;
  }
  for (const namespace of namespaces) {
    if (!DNS_LABEL.test(namespace)) continue;
    try {
      for (const name of readdirSync(path.join(root, namespace))) if (DNS_SUBDOMAIN.test(name)) refs.push({ namespace, name });
    } catch {
      // not a directory
    }
  }
  return refs;
}
