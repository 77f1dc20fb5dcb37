// dropsSeen survives agent restarts: it used to be read back from the node's status entry, which
// no longer exists (agents report to the controller), so the agent keeps it in the DropTail's
// state directory, saved whenever a report is built (at most every few seconds; a crash loses
// only the drops since then from the count, never a drop).
import { readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage, loggerFor } from '../../util/log.js';

const FILE = 'drops-seen.json';

export class DropsSeenFile {
  private saved: number;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly dir: string) {
    this.saved = DropsSeenFile.read(dir);
  }

  /** The count saved by the last run (0 when none, or unreadable). */
  get initial(): number {
    return this.saved;
  }

  static read(dir: string): number {
    try {
      const n = (JSON.parse(readFileSync(path.join(dir, FILE), 'utf8')) as { dropsSeen?: unknown }).dropsSeen;
      return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : 0;
    } catch {
      return 0;
    }
  }

  /** Saves `n` when it changed (writes are serialised; the last one wins). */
  save(n: number): Promise<void> {
    if (n === this.saved) return this.writing;
    this.saved = n;
    this.writing = this.writing.then(async () => {
      try {
        await mkdir(this.dir, { recursive: true, mode: 0o700 });
        const tmp = path.join(this.dir, `${FILE}.tmp`);
        await writeFile(tmp, JSON.stringify({ dropsSeen: n }));
        await rename(tmp, path.join(this.dir, FILE));
      } catch (err) {
        loggerFor('droptail-agent').warn('saving dropsSeen failed', { dir: this.dir, error: errorMessage(err) });
      }
    });
    return this.writing;
  }
}
