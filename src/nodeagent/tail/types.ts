// What a LineFollower hands out and reports: records, events and gaps.
import type { FileIdentity } from './identity.js';

/** Where a follower stopped: the file and the byte offset after the last consumed line. */
export interface TailCheckpoint {
  identity: FileIdentity;
  /** Byte offset (decompressed offset for gzip files) of the next unread line. */
  offset: number;
  /** The file's place among its rotated siblings, to name what was missed if it is gone later. */
  place?: RotationPlace;
}

/** One line of a followed file. */
export interface TailRecord {
  /** Line content without the trailing newline (truncated to maxLineBytes when `oversize`). */
  line: Buffer;
  /** Identity of the file the line came from; its fingerprint covers ≥ min(fingerprintBytes, endOffset). */
  file: FileIdentity;
  /** Path the file was opened under (a rotated file keeps the path it was opened as). */
  path: string;
  /** Byte offset of the line start (decompressed offset for gzip files). */
  offset: number;
  /** Offset after the newline: the checkpoint offset once this line is consumed. */
  endOffset: number;
  /** Real length of the line in bytes, without the newline. */
  length: number;
  /** The line was longer than maxLineBytes; `line` holds its first maxLineBytes bytes. */
  oversize: boolean;
  /** The line has no newline: its file was finished (rotated away or truncated) mid-line. */
  incomplete: boolean;
  /** Read from a gzip file. */
  compressed: boolean;
  /** Where the file stands among its rotated siblings, as far as known (see RotationPlace). */
  place: RotationPlace;
}

/**
 * A file's place in the rotation order, so that after a restart the follower can say which
 * rotated files it may have missed: its own rotated name once seen, else (the live file) the
 * newest rotated sibling that existed when it was opened, which its rotated name will follow.
 */
export interface RotationPlace {
  /** Logical name (basename without `.gz`) of this file among the rotated siblings. */
  name?: string;
  /** Logical name of the newest rotated sibling older than this file. */
  after?: string;
}

/**
 * Lines that were skipped: files deleted before they were read to the end. `files` are known by
 * name; `after`/`before` bound (exclusively, in rotation order) a run of rotated files that may
 * have come and gone unseen, e.g. while the agent was down.
 */
export interface TailGap {
  reason: string;
  /** Paths of files skipped wholly or from some offset on. */
  files: string[];
  /** Logical name of the last rotated file known to precede the unseen run (absent: from the oldest). */
  after?: string;
  /** Logical name of the file reading went on with (the live file's basename for the live file). */
  before?: string;
  /** Bytes known to be skipped. */
  bytes?: number;
  /** The file reading went on with. */
  path?: string;
}

export type TailStart = 'beginning' | 'end' | { checkpoint: TailCheckpoint };

export type TailEvent =
  | { type: 'opened'; path: string; identity: FileIdentity; offset: number; compressed: boolean }
  | { type: 'rotated'; from: string; to: string }
  | { type: 'truncated'; path: string; previousOffset: number }
  | ({ type: 'dataLoss' } & TailGap)
  | { type: 'oversize'; path: string; offset: number; length: number }
  | { type: 'error'; path: string; message: string };

export interface TailStartResult {
  /**
   * live: checkpointed file is the live file; rotated: found among rotated siblings; oldest:
   * checkpointed file not found, started at the oldest sibling (or the live file);
   * beginning/end: no checkpoint. waiting: the file does not exist yet (read from 0 once it does).
   */
  mode: 'live' | 'rotated' | 'oldest' | 'beginning' | 'end' | 'waiting';
  /** File reading starts in, if any. */
  path: string | null;
  /** Lines may have been skipped (checkpoint not found, or its offset is past the file's end). */
  possibleDataLoss: boolean;
  reason?: string;
}

/** What a gap skipped, for the status: the files by name, else the run of rotated names it lies in. */
export function describeGap(gap: TailGap): string {
  const parts: string[] = [];
  if (gap.files.length > 0) parts.push(gap.files.join(', '));
  if (gap.after !== undefined || gap.before !== undefined) {
    parts.push(`rotated files ${gap.after !== undefined ? `after ${gap.after} ` : ''}${gap.before !== undefined ? `before ${gap.before}` : ''}`.trimEnd());
  }
  if (gap.bytes) parts.push(`${gap.bytes} bytes`);
  if (gap.path) parts.push(`reading went on at ${gap.path}`);
  return parts.join('; ') || 'unknown lines';
}
