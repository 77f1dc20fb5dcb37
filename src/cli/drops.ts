// `netwarden drops parse --prefix P [--prefix P2 ...]`: kernel firewall log lines on stdin, one JSON
// object per line on stdout: {"drop": {...}} or {"skipped": "<reason>", "line": "..."}.
// Lines may be kernel log text (syslog, RFC 3339, dmesg, /dev/kmsg) or `journalctl -o json` entries.

import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { KernelLogParser } from '../nodeagent/drops/kernellog.js';
import type { DropMetrics } from '../nodeagent/drops/metrics.js';
import type { ParseResult } from '../nodeagent/drops/types.js';
import { escapeForTerminal } from '../util/terminal.js';

export interface DropsParseOptions {
  prefixes: string[];
  input: Readable;
  output: Writable;
  bootTime?: Date;
  /** Put the input line into each drop as `raw`. */
  keepRaw?: boolean;
  /** Default: the shared registry. */
  metrics?: DropMetrics;
}

const FLUSH_AT = 64 * 1024;

/**
 * Writes s, JSON lines that carry log text (interface names, prefixes, --keep-raw lines), with the
 * characters a terminal would act on escaped; when the output's buffer is full, waits for 'drain'
 * (once() rejects on 'error').
 */
async function write(out: Writable, s: string): Promise<void> {
  if (!out.write(escapeForTerminal(s, { json: true }))) await once(out, 'drain');
}

/** Read lines from `input`, write one JSON line per input line to `output`. Resolves with the counts. */
export async function runDropsParse(opts: DropsParseOptions): Promise<{ parsed: number; skipped: number }> {
  const parserOpts: ConstructorParameters<typeof KernelLogParser>[0] = { prefixes: opts.prefixes, keepRaw: opts.keepRaw === true };
  if (opts.bootTime !== undefined) parserOpts.bootTime = opts.bootTime;
  if (opts.metrics !== undefined) parserOpts.metrics = opts.metrics;
  const parser = new KernelLogParser(parserOpts);
  let parsed = 0;
  let skipped = 0;
  let pending = '';
  let out = '';

  const handle = (line: string): void => {
    let r: ParseResult;
    // journalctl -o json: one JSON object per line
    if (line.charCodeAt(0) === 123 /* { */) r = parser.parseJournalEntry(line);
    else r = parser.parse(line);
    if (r.ok) {
      parsed++;
      out += `{"drop":${JSON.stringify(r.drop)}}\n`;
    } else {
      skipped++;
      out += `{"skipped":${JSON.stringify(r.reason)},"line":${JSON.stringify(r.line)}}\n`;
    }
  };

  const decoder = new StringDecoder('utf8');
  for await (const chunk of opts.input as AsyncIterable<Buffer | string>) {
    const text = pending + (typeof chunk === 'string' ? chunk : decoder.write(chunk));
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      handle(text.slice(start, nl));
      start = nl + 1;
      if (out.length >= FLUSH_AT) {
        const s = out;
        out = '';
        await write(opts.output, s);
      }
    }
    pending = text.slice(start);
  }
  pending += decoder.end();
  if (pending.length > 0) handle(pending);
  if (out.length > 0) await write(opts.output, out);
  return { parsed, skipped };
}
