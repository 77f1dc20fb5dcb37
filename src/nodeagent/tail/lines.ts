// LineAssembler: cuts the chunks a follower reads into lines. It holds at most the unconsumed
// rest of one chunk and one partial line, itself bounded by maxLineBytes (what is beyond is only
// counted, and the record is flagged oversize); a file's last line without a newline is yielded,
// flagged incomplete, only when the follower says the file is finished.
import type { Source } from './sources.js';
import type { TailRecord } from './types.js';

export class LineAssembler {
  // unconsumed part of the last chunk read
  private buf: Buffer | null = null;
  private bufIdx = 0;
  private bufOffset = 0;
  // the line being assembled
  private parts: Buffer[] = [];
  private keptLen = 0;
  private lineLen = 0;
  private lineStart = 0;
  private skipFirst = false;
  /** Finished partial lines, waiting to be taken. */
  private out: TailRecord[] = [];

  constructor(private readonly maxLineBytes: number) {}

  /** A chunk read at `offset` of the current file. */
  feed(chunk: Buffer, offset: number): void {
    this.buf = chunk;
    this.bufIdx = 0;
    this.bufOffset = offset;
  }

  /** The next line of `source` (or a finished partial line), or null when more must be read. */
  take(source: Source | null): TailRecord | null {
    const queued = this.out.shift();
    if (queued) return queued;
    while (this.buf !== null) {
      const buf = this.buf;
      const nl = buf.indexOf(0x0a, this.bufIdx);
      if (nl === -1) {
        this.appendPart(buf, this.bufIdx, buf.length);
        this.buf = null;
        return null;
      }
      this.appendPart(buf, this.bufIdx, nl);
      this.bufIdx = nl + 1;
      if (this.bufIdx >= buf.length) this.buf = null;
      const end = this.bufOffset + nl + 1;
      if (this.skipFirst) {
        this.skipFirst = false;
        this.resetLine(end);
        continue;
      }
      const rec = this.makeRecord(source, end, false);
      this.resetLine(end);
      return rec;
    }
    return null;
  }

  /** Reading (re)starts at `start` of a file. */
  startFile(start: number): void {
    this.buf = null;
    this.skipFirst = false;
    this.resetLine(start);
  }

  /** The first line is a fragment (reading started mid-line): drop it. */
  skipFirstLine(): void {
    this.skipFirst = true;
  }

  /** `source` is finished (rotated away, truncated): its held partial line is queued, flagged incomplete. */
  finishFile(source: Source): void {
    if (this.lineLen > 0 && !this.skipFirst) this.out.push(this.makeRecord(source, this.lineStart + this.lineLen, true));
    this.skipFirst = false;
    this.buf = null;
    this.resetLine(0);
  }

  private appendPart(buf: Buffer, from: number, to: number): void {
    const len = to - from;
    if (len <= 0) return;
    this.lineLen += len;
    if (this.skipFirst) return;
    const room = this.maxLineBytes - this.keptLen;
    if (room <= 0) return;
    const take = Math.min(room, len);
    this.parts.push(Buffer.from(buf.subarray(from, from + take))); // copy: buf may be the reused scratch
    this.keptLen += take;
  }

  private makeRecord(source: Source | null, endOffset: number, incomplete: boolean): TailRecord {
    if (source === null) throw new Error('internal: record without a source');
    const line = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.keptLen);
    return {
      line,
      file: source.identity,
      path: source.path,
      offset: this.lineStart,
      endOffset,
      length: this.lineLen,
      oversize: this.lineLen > this.maxLineBytes,
      incomplete,
      compressed: source.kind === 'gzip',
      place: source.place,
    };
  }

  private resetLine(start: number): void {
    this.parts = [];
    this.keptLen = 0;
    this.lineLen = 0;
    this.lineStart = start;
  }
}
