// Durable checkpoints for log followers.
//
// File format (JSON): { "version": 1, "savedAt": "<ISO time>", "checkpoint": <T> }.
// save() is atomic and durable: write a temp file in the same directory, fsync it, rename it over
// the target, fsync the directory. load() never throws for a missing, unreadable, corrupt or
// wrong-version file: it returns { checkpoint: null, error } and logs a warning, so callers treat
// the checkpoint as absent.

import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, loggerFor, type Logger } from '../../util/log.js';
import type { FileIdentity } from './identity.js';
import type { RotationPlace, TailCheckpoint } from './types.js';

export type { TailCheckpoint } from './types.js';

export const CHECKPOINT_VERSION = 1;

export interface CheckpointLoadResult<T> {
  checkpoint: T | null;
  /** Set when a checkpoint file existed but could not be used. */
  error?: string;
}

/** A non-negative safe integer (offsets, lengths, counters). */
export function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

export function isFileIdentity(v: unknown): v is FileIdentity {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    typeof o.inode === 'string' &&
    /^\d+$/.test(o.inode) &&
    typeof o.device === 'string' &&
    /^\d+$/.test(o.device) &&
    typeof o.fingerprint === 'string' &&
    /^[0-9a-f]{32}$/.test(o.fingerprint) &&
    isNonNegInt(o.fingerprintLength)
  );
}

export function isTailCheckpoint(v: unknown): v is TailCheckpoint {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return isFileIdentity(o.identity) && isNonNegInt(o.offset) && (o.place === undefined || isRotationPlace(o.place));
}

function isRotationPlace(v: unknown): v is RotationPlace {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (o.name === undefined || typeof o.name === 'string') && (o.after === undefined || typeof o.after === 'string');
}

export interface CheckpointStoreOptions<T> {
  /** Validates the stored checkpoint payload; defaults to isTailCheckpoint. */
  validate?: (v: unknown) => v is T;
}

/** One checkpoint, stored as `<dir>/<name>.json`. */
export class CheckpointStore<T = TailCheckpoint> {
  readonly file: string;
  private readonly validate: (v: unknown) => v is T;
  private readonly log: Logger;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    readonly dir: string,
    readonly name: string,
    opts: CheckpointStoreOptions<T> = {},
  ) {
    if (!/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith('.')) throw new Error(`invalid checkpoint name ${JSON.stringify(name)}`);
    this.file = join(dir, `${name}.json`);
    this.validate = opts.validate ?? (isTailCheckpoint as unknown as (v: unknown) => v is T);
    this.log = loggerFor('tail-checkpoint', this.file);
  }

  /** Loads the checkpoint; absent or unusable → checkpoint null (with `error` when unusable). */
  async load(): Promise<CheckpointLoadResult<T>> {
    await this.chain; // never race our own in-flight save (its temp file)
    await this.removeStaleTemps();
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { checkpoint: null };
      return this.corrupt(`cannot read: ${errorMessage(err)}`);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      return this.corrupt(`invalid JSON: ${errorMessage(err)}`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return this.corrupt('not a JSON object');
    const o = doc as Record<string, unknown>;
    if (o.version !== CHECKPOINT_VERSION) return this.corrupt(`unsupported version ${JSON.stringify(o.version)}`);
    if (!this.validate(o.checkpoint)) return this.corrupt('invalid checkpoint payload');
    return { checkpoint: o.checkpoint };
  }

  /** Atomically replaces the stored checkpoint. Concurrent saves are serialised (last wins). */
  save(checkpoint: T): Promise<void> {
    const run = this.chain.then(() => this.write(checkpoint));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async write(checkpoint: T): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const body = JSON.stringify({ version: CHECKPOINT_VERSION, savedAt: new Date().toISOString(), checkpoint }) + '\n';
    const tmp = join(this.dir, `.${this.name}.json.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(body, 'utf8');
      await fh.sync();
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await fh.close();
    try {
      await rename(tmp, this.file);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    const dh = await open(this.dir, 'r');
    try {
      await dh.sync();
    } catch {
      // some filesystems refuse fsync on directories; the rename is still atomic
    } finally {
      await dh.close();
    }
  }

  private corrupt(error: string): CheckpointLoadResult<T> {
    this.log.warn('ignoring unusable checkpoint', { error });
    return { checkpoint: null, error };
  }

  private async removeStaleTemps(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    const prefix = `.${this.name}.json.tmp-`;
    for (const n of names) if (n.startsWith(prefix)) await unlink(join(this.dir, n)).catch(() => undefined);
  }
}
