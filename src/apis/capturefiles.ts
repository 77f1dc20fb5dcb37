// The PacketCapture file API, in both of its hops:
//
//   user (kubectl plugin) --HTTPS--> controller --HTTPS--> each node's agent
//
// The controller's endpoints, for users:
//   GET    /packet-capture/download/:namespace/:name/files.zip  one zip of every node's files
//          (spec.format pcapng: one merged pcapng per node; ?merge=true: one across all nodes)
//   DELETE /packet-capture/files/:namespace/:name               removes the files once the capture ended
// The agents' endpoints, for the controller only:
//   GET    /captures/:namespace/:name/files            -> CaptureFileListing
//   GET    /captures/:namespace/:name/files/:fileName  -> the file (pcap, or the metadata text)
//   DELETE /captures/:namespace/:name/files            -> 204 once stopped there and removed
//   (each may carry ?uid=<metadata.uid>: the capture meant, see CAPTURE_UID_PARAM)
// Every request on either hop is authenticated by TokenReview and authorized by a
// SubjectAccessReview for packetcaptures/files (verb get or delete) on that very capture.
import { GROUP } from './meta.js';

/** The access review of every request (plus verb, namespace and name). */
export const CAPTURE_FILES_ACCESS = { group: GROUP, resource: 'packetcaptures', subresource: 'files' } as const;
export type CaptureFilesVerb = 'get' | 'delete';

// --- controller, for users ---------------------------------------------------------------------

export const DOWNLOAD_ROUTE = '/packet-capture/download/:namespace/:name/files.zip';
export const DELETE_FILES_ROUTE = '/packet-capture/files/:namespace/:name';

/** Query parameter of a download: true merges every node's pcapng into one file sorted by time. */
export const MERGE_PARAM = 'merge';

export function downloadPath(namespace: string, name: string, opts: { merge?: boolean } = {}): string {
  const base = `/packet-capture/download/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/files.zip`;
  return opts.merge ? `${base}?${MERGE_PARAM}=true` : base;
}

/** A pcapng capture's zip entry per node, under <node>/: that node's pod files merged. */
export function nodeFileName(node: string): string {
  return `${node}.pcapng`;
}

/** A pcapng capture's zip entry with ?merge=true: every node's packets in one file. */
export function mergedFileName(namespace: string, name: string): string {
  return `${namespace}-${name}.pcapng`;
}

export function deleteFilesPath(namespace: string, name: string): string {
  return `/packet-capture/files/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`;
}

/** Response headers of a download: the pcap bytes to expect (for progress) and the nodes left out. */
export const EXPECTED_BYTES_HEADER = 'x-netwarden-expected-bytes';
export const MISSING_NODES_HEADER = 'x-netwarden-missing-nodes';
/** Listed in the zip when some nodes could not be listed, so an incomplete zip says so itself. */
export const MISSING_NODES_FILE = 'MISSING-NODES.txt';

// --- agents, for the controller ----------------------------------------------------------------

export const AGENT_FILES_ROUTE = '/captures/:namespace/:name/files';
export const AGENT_FILE_ROUTE = '/captures/:namespace/:name/files/:fileName';

/**
 * Optional query parameter of every agent request: the capture's metadata.uid. An agent that knows
 * the name under another UID (the capture was deleted and created again) answers 404 instead of
 * serving or deleting the other one's files; without it, the agent means the capture it knows.
 */
export const CAPTURE_UID_PARAM = 'uid';

/** The list of a capture's files on one node, or one of them when fileName is given. */
export function agentFilesPath(namespace: string, name: string, fileName?: string, uid?: string): string {
  const base = `/captures/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/files`;
  const path = fileName === undefined ? base : `${base}/${encodeURIComponent(fileName)}`;
  return uid === undefined ? path : `${path}?${CAPTURE_UID_PARAM}=${encodeURIComponent(uid)}`;
}

/** One file as an agent lists it. */
export interface CaptureFile {
  /** Empty for the node metadata snapshot. */
  pod: string;
  fileName: string;
  bytes: number;
  /** False while the agent is still writing it. */
  complete: boolean;
}

export interface CaptureFileListing {
  node: string;
  files: CaptureFile[];
}

// --- file names ----------------------------------------------------------------------------------

/** <pod>_<interface>_<5-digit sequence>.pcap (or .pcapng: spec.format) */
const PCAP_FILE = /^([a-z0-9][-a-z0-9.]*)_([A-Za-z0-9_.@-]{1,15})_(\d{5})\.(pcap|pcapng)$/;
/** metadata-<node>.txt */
const METADATA_FILE = /^metadata-[a-z0-9][-a-z0-9.]*\.txt$/;

/**
 * The one rule for capture file names: true only for names an agent writes. The agent serves
 * nothing else and the controller accepts nothing else from an agent's list, so a name from a
 * request or a listing never reaches a path or a zip entry unless it is one of these.
 */
export function isCaptureFileName(fileName: string): boolean {
  if (fileName.includes('/') || fileName.includes('..')) return false;
  return PCAP_FILE.test(fileName) || METADATA_FILE.test(fileName);
}

/** The pod and sequence number a pcap file's name carries; undefined for other names. */
export function pcapFileNameParts(fileName: string): { pod: string; iface: string; sequence: number; format: 'pcap' | 'pcapng' } | undefined {
  const m = PCAP_FILE.exec(fileName);
  return m ? { pod: m[1]!, iface: m[2]!, sequence: Number(m[3]), format: m[4] === 'pcapng' ? 'pcapng' : 'pcap' } : undefined;
}
