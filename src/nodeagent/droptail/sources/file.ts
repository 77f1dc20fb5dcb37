// Log file source (kern.log, syslog): LineFollower follows the file through rotation (rename or
// copytruncate; a rotated file is read to its end first) and truncation.
//
// Position: the follower's checkpoint (file identity + offset after the last line read). On the
// first start (no checkpoint) it starts at the END of the file: old lines were reported by whatever
// ran before, or are too old to matter. Afterwards it resumes from the checkpoint
// (droptail/<name>/file-<id>.json), saved only once the drops read before it left the send queue;
// a checkpointed file that was rotated away meanwhile is found among its rotated siblings.
import { createHash } from 'node:crypto';
import { KernelLogParser, MAX_LINE_LENGTH } from '../../drops/kernellog.js';
import { sharedDropMetrics } from '../../drops/metrics.js';
import { CheckpointStore, type TailCheckpoint } from '../../tail/checkpoint.js';
import { describeGap, LineFollower, type TailEvent } from '../../tail/follower.js';
import type { CommitFn } from '../queue.js';
import type { DropSourceRunner, SourceEvents } from './types.js';

export interface FileSourceOptions {
  path: string;
  prefixes: readonly string[];
  stateDir: string;
  logKey: string;
  /** Fallback poll interval of the follower (fs.watch wakes it earlier). */
  pollIntervalMs?: number;
}

export class FileSource implements DropSourceRunner {
  readonly type = 'file' as const;
  readonly id: string;
  private readonly store: CheckpointStore<TailCheckpoint>;
  private readonly parser: KernelLogParser;
  private loaded = false;
  private readPosition: TailCheckpoint | null = null;
  private savedPosition: TailCheckpoint | null = null;

  constructor(private readonly opts: FileSourceOptions) {
    this.id = `file:${opts.path}`;
    const digest = createHash('sha256').update(opts.path).digest('hex').slice(0, 12);
    this.store = new CheckpointStore(opts.stateDir, `file-${digest}`);
    this.parser = new KernelLogParser({ prefixes: opts.prefixes });
  }

  async run(signal: AbortSignal, events: SourceEvents): Promise<void> {
    if (!this.loaded) {
      this.readPosition = this.savedPosition = (await this.store.load()).checkpoint;
      this.loaded = true;
    }
    const path = this.opts.path;
    const follower = new LineFollower(path, {
      start: this.readPosition ? { checkpoint: this.readPosition } : 'end',
      maxLineBytes: MAX_LINE_LENGTH + 1,
      logKey: this.opts.logKey,
      ...(this.opts.pollIntervalMs !== undefined ? { pollIntervalMs: this.opts.pollIntervalMs } : {}),
      onEvent: (ev) => this.tailEvent(ev, events),
    });
    const close = (): void => void follower.close();
    signal.addEventListener('abort', close, { once: true });
    try {
      const started = await follower.start();
      if (started.mode === 'waiting') events.health(false, `waiting for ${path} to exist`);
      else events.health(true, `following ${started.path ?? path}`);
      for (;;) {
        const rec = await follower.next();
        if (rec === null) return;
        events.record();
        if (rec.oversize) sharedDropMetrics().lineSkipped('too-long');
        else {
          const result = this.parser.parseBytes(rec.line);
          if (result.ok) events.drop(result.drop);
        }
        this.readPosition = follower.position();
      }
    } finally {
      signal.removeEventListener('abort', close);
      await follower.close();
    }
  }

  mark(): CommitFn | undefined {
    const position = this.readPosition;
    if (position === null || position === this.savedPosition) return undefined;
    return async () => {
      await this.store.save(position);
      this.savedPosition = position;
    };
  }

  private tailEvent(ev: TailEvent, events: SourceEvents): void {
    if (ev.type === 'opened') events.health(true, `following ${ev.path}`);
    else if (ev.type === 'error') events.health(false, `${ev.path}: ${ev.message}`);
    else if (ev.type === 'dataLoss') events.skipped(`${ev.reason}: ${describeGap(ev)}`, ev.bytes);
  }
}
