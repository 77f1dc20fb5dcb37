// `netwarden pcap summary` and `kubectl netwarden capture summary`: one tcpdump-like line per
// packet of a pcap or pcapng file, read as a stream.
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import type { Writable } from 'node:stream';
import { summarizePacket } from './decode.js';
import { readCaptureStream } from './reader.js';
import { escapeForTerminal } from '../util/terminal.js';

export interface SummaryCounts {
  packets: number;
}

/**
 * Writes the summary of one capture, a file or a stream of its bytes (e.g. a zip entry); throws
 * CaptureFormatError on input that is not one.
 */
export async function writeSummary(input: string | AsyncIterable<Buffer>, out: Writable): Promise<SummaryCounts> {
  let packets = 0;
  for await (const packet of readCaptureStream(typeof input === 'string' ? createReadStream(input) : input)) {
    packets += 1;
    // Respect the consumer (a pager, a pipe): wait when its buffer is full.
    if (!out.write(`${summarizePacket(packet)}\n`)) await once(out, 'drain');
  }
  return { packets };
}

/** `netwarden pcap summary FILE...`: a header line per file when there are several; exit code 1 if any file could not be read. */
export async function runPcapSummary(files: readonly string[], out: Writable, err: Writable): Promise<number> {
  let status = 0;
  for (const file of files) {
    if (files.length > 1) out.write(`==> ${escapeForTerminal(file)} <==\n`);
    try {
      const { packets } = await writeSummary(file, out);
      err.write(`${escapeForTerminal(file)}: ${packets} packet(s)\n`);
    } catch (e) {
      err.write(`${escapeForTerminal(`${file}: ${e instanceof Error ? e.message : String(e)}`)}\n`);
      status = 1;
    }
  }
  return status;
}
