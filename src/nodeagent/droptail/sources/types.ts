// What every DropTail source (nflog, journal, file) offers the pipeline.
import type { DropSourceType, PacketDrop } from '../../../apis/drops.js';
import type { CommitFn } from '../queue.js';

export interface SourceEvents {
  /** One line, journal entry or packet was read (whether or not it is a drop). */
  record(): void;
  /** A drop was recognised; called synchronously before the source's position moves past it. */
  drop(drop: PacketDrop): void;
  /** The source is (or is no longer) reading; the message says what it reads or why it cannot. */
  health(healthy: boolean, message: string): void;
  /** Records were skipped (a rotated log file deleted before it was read); `what` names them. */
  skipped(what: string, bytes?: number): void;
}

export interface DropSourceRunner {
  /** Stable within a DropTail: "nflog:100", "journal", "journal:/var/log/journal", "file:/var/log/kern.log". */
  readonly id: string;
  readonly type: DropSourceType;
  /**
   * Reads until the signal aborts (then resolves) or the source fails (then rejects with the
   * reason; the pipeline retries with backoff, resuming from the position already read).
   */
  run(signal: AbortSignal, events: SourceEvents): Promise<void>;
  /** Saves the position read so far when called; undefined when there is nothing (new) to save. */
  mark(): CommitFn | undefined;
}

/** Resolves when the signal aborts. */
export function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
