// `netwarden drops parse --prefix P [--prefix P2 ...]`: kernel firewall log lines on stdin, one JSON
// object per line on stdout: {"drop": {...}} or {"skipped": "<reason>", "line": "..."}.
// Lines may be kernel log text (syslog, RFC 3339, dmesg, /dev/kmsg) or `journalctl -o json` entries.
//
// A stream in constant memory: each chunk read is cut into lines, each line parsed in place and
// its JSON written straight from its fields as bytes (DropJsonWriter, no PacketDrop objects), and
// the output of a chunk's lines handed to the stream once it reaches FLUSH_AT, waiting for 'drain'
// when the stream says it is full.

import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import type { DropMetrics } from '../nodeagent/drops/counting.js';
import { DropJsonWriter } from '../nodeagent/drops/dropjson.js';
import { JsonOut } from '../nodeagent/drops/jsonout.js';
import { KernelLogParser, type KernelLogParserOptions } from '../nodeagent/drops/kernellog.js';
import { escapeForTerminal } from '../util/terminal.js';

export interface DropsParseOptions {
  prefixes: string[];
  input: Readable;
  output: Writable;
  bootTime?: Date;
  /** Put the input line into each drop as `raw`. */
  keepRaw?: boolean;
  /** Default: the parsers' default (counting.ts: none in the CLI, which does not load prom-client). */
  metrics?: DropMetrics;
}

const FLUSH_AT = 64 * 1024;
const Lf = 0x0a; // '\n' as a byte

/**
 * Cuts a stream into lines for handle(), without the newline. Byte chunks (stdin) are cut at "\n"
 * bytes and each line decoded by itself: a flat string, which the parser reads faster than a slice
 * of a chunk's text, and the same text, since "\n" is never part of a multi-byte character. A line
 * that spans chunks is kept as its pieces until its end arrives. String chunks are cut as text.
 */
class LineSplitter {
  private pieces: Buffer[] = [];
  private pendingText = '';

  constructor(private readonly handle: (line: string) => void) {}

  bytes(chunk: Buffer): void {
    let start = 0;
    let nl = chunk.indexOf(Lf);
    if (nl >= 0 && this.pieces.length > 0) {
      this.pieces.push(chunk.subarray(0, nl));
      this.handle(Buffer.concat(this.pieces).toString('utf8'));
      this.pieces = [];
      start = nl + 1;
      nl = chunk.indexOf(Lf, start);
    }
    while (nl >= 0) {
      this.handle(chunk.toString('utf8', start, nl));
      start = nl + 1;
      nl = chunk.indexOf(Lf, start);
    }
    if (start < chunk.length) this.pieces.push(chunk.subarray(start));
  }

  text(chunk: string): void {
    const text = this.pendingText + chunk;
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      this.handle(text.slice(start, nl));
      start = nl + 1;
    }
    this.pendingText = text.slice(start);
  }

  /** The last line, when the input does not end with a newline. */
  end(): void {
    const last = this.pendingText + Buffer.concat(this.pieces).toString('utf8');
    if (last.length > 0) this.handle(last);
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

  const handle = (line: string): void => {
    const skip = line.charCodeAt(0) === Ch.BraceOpen /* a journalctl -o json entry */ ? parser.readJournalEntry(line) : parser.read(line);
    if (skip === undefined) {
      parsed++;
      drops.drop(parser);
    } else {
      skipped++;
      out.ascii('{"skipped":"');
      out.ascii(skip);
      out.ascii('","line":');
      out.string(parser.last.line);
      out.ascii('}\n');
    }
  };
  /** Hands the output written so far to the stream, waiting while it is full (once() rejects on 'error'); its bytes are reused once written. */
  const flush = async (): Promise<void> => {
    const chunk = out.take();
    if (!opts.output.write(chunk, () => out.written(chunk))) await once(opts.output, 'drain');
  };

  const lines = new LineSplitter(handle);
  for await (const chunk of opts.input as AsyncIterable<Buffer | string>) {
    if (typeof chunk === 'string') lines.text(chunk);
    else lines.bytes(chunk);
    if (out.pending >= FLUSH_AT) await flush();
  }
  lines.end();
  if (out.pending > 0) await flush();
  return { parsed, skipped };
}
