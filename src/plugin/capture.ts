// `kubectl netwarden capture download|delete|summary`: the user's side of PacketCapture files.
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, type Writable } from 'node:stream';
import { deleteFilesPath, downloadPath, EXPECTED_BYTES_HEADER, MISSING_NODES_HEADER } from '../apis/capturefiles.js';
import { writeSummary } from '../pcap/summary.js';
import { escapeForTerminal } from '../util/terminal.js';
import { PluginError, request, responseMessage, type Connection } from './client.js';
import { progressFor } from './progress.js';
import { listZip, openZipEntry, safeEntryPath } from './zip.js';

export interface DownloadResult {
  zipPath: string;
  bytes: number;
  missingNodes: string[];
  /** Set when the zip was also unpacked. */
  extractedTo?: string | undefined;
}

/** Downloads the capture's zip into dir (written under a temporary name, renamed when complete). */
export async function downloadCapture(conn: Connection, name: string, dir: string, opts: { progress?: boolean; merge?: boolean } = {}): Promise<DownloadResult> {
  const res = await request(conn, 'GET', downloadPath(conn.namespace, name, { merge: opts.merge === true }));
  const expectedHeader = res.headers[EXPECTED_BYTES_HEADER];
  const expected = typeof expectedHeader === 'string' && /^\d+$/.test(expectedHeader) ? Number(expectedHeader) : undefined;
  const missingHeader = res.headers[MISSING_NODES_HEADER];
  const missingNodes = typeof missingHeader === 'string' && missingHeader ? missingHeader.split(',') : [];
  await mkdir(dir, { recursive: true });
  const zipPath = path.resolve(dir, `${conn.namespace}-${name}.zip`);
  const partial = `${zipPath}.partial`;
  const progress = opts.progress === false ? undefined : progressFor(`${conn.namespace}/${name}`, expected);
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      progress?.update(bytes);
      done(null, chunk);
    },
  });
  try {
    // The controller cuts the connection if an agent fails mid-file: that must not look like success.
    res.once('aborted', () => res.destroy(new Error('the controller ended the download early (an agent failed mid-file?)')));
    await pipeline(res, counter, createWriteStream(partial));
    if (!res.complete) throw new Error('the download ended early');
    await listZip(partial); // a complete zip has its central directory at the end
  } catch (err) {
    progress?.stop();
    await rm(partial, { force: true });
    throw new PluginError(`download of ${conn.namespace}/${name} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  progress?.stop();
  await rename(partial, zipPath);
  return { zipPath, bytes, missingNodes };
}

/** Unpacks the zip into dir/<node>/<file>; returns the pcap files written. */
export async function extractZip(zipPath: string, dir: string): Promise<string[]> {
  const written: string[] = [];
  for (const entry of await listZip(zipPath)) {
    if (entry.name.endsWith('/')) continue;
    const target = path.join(dir, ...safeEntryPath(entry.name));
    await mkdir(path.dirname(target), { recursive: true });
    await pipeline(await openZipEntry(zipPath, entry), createWriteStream(target));
    written.push(target);
  }
  return written.sort();
}

export async function deleteCaptureFiles(conn: Connection, name: string): Promise<string> {
  return responseMessage(await request(conn, 'DELETE', deleteFilesPath(conn.namespace, name)));
}

/** Downloads to a temporary directory and prints each pcap file's packets, tcpdump-like (a pcapng
 * capture's lines carry each packet's pod). */
export async function summarizeCapture(conn: Connection, name: string, out: Writable, opts: { merge?: boolean } = {}): Promise<number> {
  const dir = await mkdtemp(path.join(tmpdir(), 'netwarden-capture-'));
  try {
    const { zipPath, missingNodes } = await downloadCapture(conn, name, dir, { merge: opts.merge === true });
    // Each pcap is read straight out of the zip, in <node>/<file> order: nothing is unpacked to disk.
    const entries = (await listZip(zipPath)).filter((e) => /\.pcap(ng)?$/.test(e.name)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    let packets = 0;
    for (const entry of entries) {
      out.write(`==> ${escapeForTerminal(entry.name)} <==\n`);
      packets += (await writeSummary(await openZipEntry(zipPath, entry), out)).packets;
    }
    if (missingNodes.length) process.stderr.write(`warning: node(s) ${escapeForTerminal(missingNodes.join(', '))} could not be reached; their files are missing\n`);
    return packets;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
