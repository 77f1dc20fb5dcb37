// Wakes a follower when its directory changes (fs.watch, that is inotify), with a poll-interval
// fallback where watching is not possible. Listeners hear every relevant change, also while no one
// waits: the rotation watcher discovers new files with it while the consumer is busy.
import { watch, type FSWatcher } from 'node:fs';

const REWATCH_AFTER_MS = 10_000;

/** names: a file was created, renamed or deleted; write: a file's content changed. */
export type DirectoryChange = 'names' | 'write';

export class Waker {
  private watcher: FSWatcher | null = null;
  private lastWatchAttempt = 0;
  private pending = false;
  private wake: (() => void) | null = null;
  private closed = false;
  private readonly listeners = new Set<(change: DirectoryChange) => void>();

  constructor(
    private readonly dir: string,
    private readonly relevant: (name: string | null) => boolean,
    private readonly enabled: boolean,
  ) {
    this.ensureWatch();
  }

  /** Calls `listener` on every relevant change until close(). */
  onChange(listener: (change: DirectoryChange) => void): void {
    this.listeners.add(listener);
  }

  private ensureWatch(): void {
    if (!this.enabled || this.closed || this.watcher !== null) return;
    const now = Date.now();
    if (now - this.lastWatchAttempt < REWATCH_AFTER_MS) return;
    this.lastWatchAttempt = now;
    try {
      const w = watch(this.dir, { persistent: false }, (ev, name) => {
        if (this.relevant(typeof name === 'string' ? name : null)) this.notify(ev === 'change' ? 'write' : 'names');
      });
      w.on('error', () => {
        w.close();
        if (this.watcher === w) this.watcher = null;
        this.notify('names');
      });
      this.watcher = w;
    } catch {
      this.watcher = null; // no inotify (or no dir yet): poll only, retry later
    }
  }

  notify(change: DirectoryChange = 'names'): void {
    this.pending = true;
    const w = this.wake;
    this.wake = null;
    w?.();
    for (const l of this.listeners) l(change);
  }

  /** Resolves on the next relevant change, or after `ms`. */
  wait(ms: number): Promise<void> {
    this.ensureWatch();
    if (this.pending || this.closed) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.wake === done) this.wake = null;
        this.pending = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = null;
    this.listeners.clear();
    this.notify();
  }
}
