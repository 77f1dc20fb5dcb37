// File sink: NDJSON in rotating files on the node, for a sidecar shipper or for debugging.
//
// Path safety. The agent runs as root with host mounts, and anyone who may create an
// AuditForwarder names the directory, so the sink never writes outside the agent's state
// directory (in the DaemonSet /var/lib/netwarden, its one writable hostPath):
//  - `directory` must lie inside /var/lib/netwarden (the documented path of the state directory;
//    an agent run with another --state-dir maps that prefix onto its own) or inside the state
//    directory by its real path; it may be neither the state directory itself nor inside the
//    agent's own audit/ checkpoint area. `..` segments are resolved first.
//  - After creating the directory, its real path (symlinks resolved) must still be inside.
//  - Files are named audit-<UTC time>-<seq>.ndjson, created with O_EXCL|O_NOFOLLOW, and rotation
//    deletes only files with that name pattern, so no existing file is ever overwritten or removed.
import { constants } from 'node:fs';
import { mkdir, open, readdir, realpath, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { FileSink } from '../../../apis/auditforwarder.js';
import type { EncodedBatch } from '../encoder.js';
import { SinkError, type BatchInfo, type Sink } from './types.js';

/** The state directory's path in the DaemonSet, the prefix users write in `directory`. */
export const STATE_DIR_IN_DAEMONSET = '/var/lib/netwarden';
const FILE_PATTERN = /^audit-\d{8}T\d{6}\.\d{3}Z-\d{10}\.ndjson$/;

function inside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** Maps and checks `directory`; throws with the reason when it is not allowed. */
export function resolveSinkDirectory(directory: string, stateDir: string): string {
  const wanted = path.resolve('/', directory);
  let resolved: string;
  if (wanted === stateDir || inside(wanted, stateDir)) resolved = wanted;
  else if (wanted === STATE_DIR_IN_DAEMONSET || inside(wanted, STATE_DIR_IN_DAEMONSET)) resolved = path.join(stateDir, path.relative(STATE_DIR_IN_DAEMONSET, wanted));
  else throw new Error(`file sink directory ${directory} is outside the agent's state directory ${STATE_DIR_IN_DAEMONSET}`);
  if (resolved === stateDir) throw new Error(`file sink directory ${directory} is the agent's state directory itself; use a subdirectory`);
  const checkpoints = path.join(stateDir, 'audit');
  if (resolved === checkpoints || inside(resolved, checkpoints)) throw new Error(`file sink directory ${directory} is inside the agent's checkpoint area`);
  return resolved;
}

function fileStamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '');
}

export class RotatingFileSink implements Sink {
  readonly format = 'ndjson' as const;
  readonly gzip = false;
  private readonly dir: string;
  private readonly maxFileBytes: number;
  private readonly maxFiles: number;
  private current: { fh: FileHandle; size: number } | null = null;
  private checked = false;

  constructor(
    spec: FileSink,
    private readonly stateDir: string,
  ) {
    this.dir = resolveSinkDirectory(spec.directory, stateDir);
    this.maxFileBytes = spec.maxFileBytes ?? 104_857_600;
    this.maxFiles = spec.maxFiles ?? 10;
  }

  get directory(): string {
    return this.dir;
  }

  async send(batch: EncodedBatch, info: BatchInfo): Promise<void> {
    try {
      await this.ensureDirectory();
      if (!this.current || this.current.size >= this.maxFileBytes) await this.rotate(info);
      const cur = this.current!;
      for await (const chunk of batch.open() as AsyncIterable<Buffer>) {
        let done = 0;
        while (done < chunk.length) done += (await cur.fh.write(chunk, done, chunk.length - done)).bytesWritten;
      }
      await cur.fh.sync(); // acknowledged means on disk
      cur.size += batch.bodyBytes;
    } catch (err) {
      await this.current?.fh.close().catch(() => undefined);
      this.current = null;
      throw new SinkError(`file sink ${this.dir}: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    await this.current?.fh.close().catch(() => undefined);
    this.current = null;
  }

  private async ensureDirectory(): Promise<void> {
    if (this.checked) return;
    await mkdir(this.dir, { recursive: true, mode: 0o750 });
    const [real, realState] = await Promise.all([realpath(this.dir), realpath(this.stateDir)]);
    if (!inside(real, realState)) throw new Error(`${this.dir} resolves to ${real}, outside the state directory`);
    this.checked = true;
  }

  private async rotate(info: BatchInfo): Promise<void> {
    await this.current?.fh.close().catch(() => undefined);
    this.current = null;
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_APPEND;
    // Named by the time the file is opened: a re-sent batch after a failed write gets a new file.
    for (let t = Date.now(); ; t++) {
      const name = `audit-${fileStamp(new Date(t))}-${String(info.seq).padStart(10, '0')}.ndjson`;
      try {
        this.current = { fh: await open(path.join(this.dir, name), flags, 0o640), size: 0 };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw err;
      }
      await this.prune(name);
      return;
    }
  }

  /** Keeps the newest maxFiles of our own files (the names sort by time). */
  private async prune(keep: string): Promise<void> {
    const ours = (await readdir(this.dir)).filter((n) => FILE_PATTERN.test(n)).sort();
    const excess = ours.length - this.maxFiles;
    for (const n of ours.slice(0, Math.max(0, excess))) {
      if (n === keep) continue;
      const p = path.join(this.dir, n);
      if ((await stat(p)).isFile()) await unlink(p).catch(() => undefined);
    }
  }
}
