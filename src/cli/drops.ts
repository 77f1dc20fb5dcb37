// `netwarden drops parse --prefix P [--prefix P2 ...]`: kernel firewall log lines on stdin, one JSON
// object per line on stdout: {"drop": {...}} or {"skipped": "<reason>", "line": "..."}.
// Lines may be kernel log text (syslog, RFC 3339, dmesg, /dev/kmsg) or `journalctl -o json` entries.
//
// A stream in constant memory: the input is read in large chunks into one reused Buffer (from fd
// 0 directly when it is a file or pipe, else from the stream), each line parsed in place from its
// bytes (KernelLogParser.readBytes: no string per line) and its JSON written straight from those
// bytes into a reused output Buffer (DropJsonWriter), which is handed to the stream every FLUSH_AT
// bytes; between chunks the reader waits for 'drain' when the stream said it is full.

import { once } from 'node:events';
import { fstatSync, read } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import type { DropMetrics } from '../nodeagent/drops/counting.js';
import { DropJsonWriter } from '../nodeagent/drops/dropjson.js';
import { JsonOut } from '../nodeagent/drops/jsonout.js';
import { KernelLogParser, type KernelLogParserOptions } from '../nodeagent/drops/kernellog.js';
import { escapeForTerminal } from '../util/terminal.js';

export interface DropsParseOptions {
  prefixes: string[];
  /** The lines, as a stream, or a function that makes it only when it is needed (process.stdin, which inputFd leaves alone). */
  input: Readable | (() => Readable);
  /**
   * A file descriptor to read instead of `input` when it is a file or a pipe (the CLI: 0, stdin),
   * read into the line buffer without a stream's Buffer per chunk. Other kinds use `input`.
   */
  inputFd?: number;
  output: Writable;
  bootTime?: Date;
  /** Put the input line into each drop as `raw`. */
  keepRaw?: boolean;
  /** Default: the parsers' default (counting.ts: none in the CLI, which does not load prom-client). */
  metrics?: DropMetrics;
}

/** Output handed to the stream at a time: big writes, few calls. */
const FLUSH_AT = 64 * 1024;
/** Input read at a time (and the line buffer's size): a long line grows the buffer for as long as it lasts. */
export const READ_CHUNK = 256 * 1024;
const Lf = 0x0a; // '\n' as a byte

/**
 * Cuts input bytes into lines in one Buffer that is reused for every chunk: new bytes are read
 * (or copied) behind the part line still waiting for its end, each complete line is handed to
 * `handle` as a range of the Buffer (without the newline), and the unfinished last line is moved
 * to the front. A line longer than the Buffer grows it, and the Buffer shrinks back after it.
 */
export class LineBuffer {
  private buf: Buffer;
  /** buf[0, filled) holds bytes not handed out yet (no newline among them). */
  private filled = 0;

  constructor(
    private readonly handle: (buf: Buffer, start: number, end: number) => void,
    private readonly chunkBytes = READ_CHUNK,
  ) {
    this.buf = Buffer.allocUnsafe(chunkBytes);
  }

  /** Where the next bytes go: buf[offset, offset + length), at least chunkBytes / 2 long. */
  space(): { buf: Buffer; offset: number; length: number } {
    if (this.buf.length - this.filled < this.chunkBytes / 2) this.resize(2 * this.buf.length);
    return { buf: this.buf, offset: this.filled, length: this.buf.length - this.filled };
  }

  /** n bytes were written into space(): hands out the lines they complete. */
  added(n: number): void {
    const buf = this.buf;
    const end = this.filled + n;
    let start = 0;
    // the waiting part has no newline: search only the new bytes (the Buffer's rest is stale, hence `< end`)
    let nl = buf.indexOf(Lf, this.filled);
    while (nl >= 0 && nl < end) {
      this.handle(buf, start, nl);
      start = nl + 1;
      nl = buf.indexOf(Lf, start);
    }
    if (start > 0) buf.copyWithin(0, start, end);
    this.filled = end - start;
    // the long line is done: give its memory back
    if (this.buf.length > this.chunkBytes && this.filled <= this.chunkBytes / 2) this.resize(this.chunkBytes);
  }

  /** Copies a chunk of a stream in, handing out the lines it completes. */
  push(chunk: Buffer): void {
    for (let from = 0; from < chunk.length; ) {
      const space = this.space();
      const n = chunk.copy(space.buf, space.offset, from, from + space.length);
      from += n;
      this.added(n);
    }
  }

  /** The input ended: the last line, when it has no newline. */
  end(): void {
    if (this.filled > 0) this.handle(this.buf, 0, this.filled);
    this.filled = 0;
  }

  private resize(size: number): void {
    const next = Buffer.allocUnsafe(Math.max(size, this.filled + this.chunkBytes / 2));
    this.buf.copy(next, 0, 0, this.filled);
    this.buf = next;
  }
}

/** fs.read as a promise of the bytes read; EAGAIN (a non-blocking pipe with nothing in it yet) waits and retries. */
function readSome(fd: number, buf: Buffer, offset: number, length: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const attempt = (): void =>
      read(fd, buf, offset, length, null, (err, n) => {
        if (err === null) resolve(n);
        else if (err.code === 'EAGAIN') setTimeout(attempt, 5);
        else reject(err);
      });
    attempt();
  });
}

/** Whether fd is a file or a pipe, which fs.read reads as they come (a TTY or socket is left to the stream). */
function readableByFs(fd: number): boolean {
  try {
    const st = fstatSync(fd);
    return st.isFile() || st.isFIFO();
  } catch {
    return false;
  }
}

/** The characters this module compares, by code (a const enum: the compiler writes the numbers in). */
const enum Ch {
  BraceOpen = 0x7b, // '{'
}

/** Read lines from `input`, write one JSON line per input line to `output`. Resolves with the counts. */
export async function runDropsParse(opts: DropsParseOptions): Promise<{ parsed: number; skipped: number }> {
  const parserOpts: KernelLogParserOptions = { prefixes: opts.prefixes, keepRaw: opts.keepRaw === true };
  if (opts.bootTime !== undefined) parserOpts.bootTime = opts.bootTime;
  if (opts.metrics !== undefined) parserOpts.metrics = opts.metrics;
  const parser = new KernelLogParser(parserOpts);
  // Log text (interface names, prefixes, --keep-raw lines) with what a terminal would act on escaped.
  const out = new JsonOut(undefined, (json) => escapeForTerminal(json, { json: true }));
  const drops = new DropJsonWriter(out, { before: '{"drop":', after: '}\n' });
  let parsed = 0;
  let skipped = 0;

  /** Hands the output written so far to the stream; its bytes are reused once written. */
  let full = false;
  const flush = (): void => {
    const chunk = out.take();
    if (!opts.output.write(chunk, () => out.written(chunk))) full = true;
  };
  /** Between chunks: waits while the stream is full (once() rejects on 'error'). */
  const drained = async (): Promise<void> => {
    if (!full) return;
    full = false;
    await once(opts.output, 'drain');
  };

  const handle = (buf: Buffer, start: number, end: number): void => {
    // a journalctl -o json entry is JSON text; a log line is read from its bytes
    const skip = end > start && buf[start] === Ch.BraceOpen ? parser.readJournalEntry(buf.toString('utf8', start, end)) : parser.readBytes(buf, start, end);
    if (skip === undefined) {
      parsed++;
      drops.drop(parser);
    } else {
      skipped++;
      out.ascii('{"skipped":"');
      out.ascii(skip);
      out.ascii('","line":');
      drops.line(parser.last);
      out.ascii('}\n');
    }
    if (out.pending >= FLUSH_AT) flush();
  };
  const lines = new LineBuffer(handle);
  if (opts.inputFd !== undefined && readableByFs(opts.inputFd)) {
    for (;;) {
      const space = lines.space();
      const n = await readSome(opts.inputFd, space.buf, space.offset, space.length);
      if (n === 0) break;
      lines.added(n);
      await drained();
    }
  } else {
    const input = typeof opts.input === 'function' ? opts.input() : opts.input;
    for await (const chunk of input as AsyncIterable<Buffer | string>) {
      lines.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
      await drained();
    }
  }
  lines.end();
  if (out.pending > 0) flush();
  await drained();
  return { parsed, skipped };
}
