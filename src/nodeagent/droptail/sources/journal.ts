// systemd journal source: `journalctl --follow --output=json` over the system journal or a
// directory, filtered by the matches (default _TRANSPORT=kernel).
//
// Position: the __CURSOR of the last entry read. On the first start (no saved cursor) the agent
// starts at the END of the journal, like the file source: it asks journalctl for the newest
// matching entry's cursor and follows after it (an empty journal is followed from its start).
// Afterwards it resumes with --after-cursor from the checkpoint (droptail/<name>/journal-<id>.json),
// which is saved only once the drops read before it have left the send queue. A cursor journalctl
// rejects (journal files replaced) is dropped with a warning and the journal is joined at its end.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { KernelLogParser } from '../../drops/kernellog.js';
import { sharedDropMetrics } from '../../drops/metrics.js';
import { CheckpointStore } from '../../tail/checkpoint.js';
import { errorMessage, loggerFor, type Logger } from '../../../util/log.js';
import type { CommitFn } from '../queue.js';
import { BoundedLineSplitter } from './lines.js';
import type { DropSourceRunner, SourceEvents } from './types.js';

export const DEFAULT_JOURNAL_MATCHES = ['_TRANSPORT=kernel'];
/** journalctl --all prints every field whole; longer entries than this are skipped. */
const MAX_ENTRY_CHARS = 1024 * 1024;

interface JournalCheckpoint {
  cursor: string;
}

function isJournalCheckpoint(v: unknown): v is JournalCheckpoint {
  return typeof v === 'object' && v !== null && typeof (v as Record<string, unknown>).cursor === 'string' && (v as Record<string, string>).cursor.length > 0;
}

export interface JournalSourceOptions {
  directory?: string | undefined;
  matches?: readonly string[] | undefined;
  prefixes: readonly string[];
  /** Where the cursor checkpoint is kept. */
  stateDir: string;
  /** The journalctl binary. Default "journalctl". */
  journalctl?: string;
  logKey: string;
}

export class JournalSource implements DropSourceRunner {
  readonly type = 'journal' as const;
  readonly id: string;
  private readonly store: CheckpointStore<JournalCheckpoint>;
  private readonly parser: KernelLogParser;
  private readonly matches: readonly string[];
  private readonly log: Logger;
  private loaded = false;
  /** Cursor of the last entry read (handed on), and of the last one saved. */
  private readCursor: string | undefined;
  private savedCursor: string | undefined;

  constructor(private readonly opts: JournalSourceOptions) {
    this.id = opts.directory ? `journal:${opts.directory}` : 'journal';
    this.matches = opts.matches && opts.matches.length > 0 ? opts.matches : DEFAULT_JOURNAL_MATCHES;
    // The checkpoint belongs to this directory and these matches: another configuration starts fresh.
    const digest = createHash('sha256').update(JSON.stringify([opts.directory ?? '', this.matches])).digest('hex').slice(0, 12);
    this.store = new CheckpointStore<JournalCheckpoint>(opts.stateDir, `journal-${digest}`, { validate: isJournalCheckpoint });
    // journalctl already selects by the matches; a user who matches e.g. forwarded syslog entries
    // wants them even though their transport is not "kernel".
    this.parser = new KernelLogParser({ prefixes: opts.prefixes, anyTransport: true });
    this.log = loggerFor('droptail-journal', opts.logKey);
  }

  async run(signal: AbortSignal, events: SourceEvents): Promise<void> {
    if (!this.loaded) {
      const saved = await this.store.load();
      this.readCursor = this.savedCursor = saved.checkpoint?.cursor;
      this.loaded = true;
    }
    this.readCursor ??= await this.newestCursor(signal);
    if (signal.aborted) return;
    await this.follow(signal, events);
  }

  mark(): CommitFn | undefined {
    const cursor = this.readCursor;
    if (cursor === undefined || cursor === this.savedCursor) return undefined;
    return async () => {
      await this.store.save({ cursor });
      this.savedCursor = cursor;
    };
  }

  private baseArgs(): string[] {
    return ['--output=json', '--all', '--no-pager', ...(this.opts.directory ? [`--directory=${this.opts.directory}`] : [])];
  }

  /** The cursor of the newest matching entry, or undefined for an empty journal. */
  private async newestCursor(signal: AbortSignal): Promise<string | undefined> {
    const { code, stdout, stderr } = await runCollect(this.opts.journalctl ?? 'journalctl', [...this.baseArgs(), '--lines=1', ...this.matches], signal);
    if (signal.aborted) return undefined;
    if (code !== 0) throw new Error(`journalctl exited with code ${code}: ${lastLine(stderr)}`);
    const line = stdout.split('\n').find((l) => l.startsWith('{'));
    if (line === undefined) return undefined;
    const entry: unknown = JSON.parse(line);
    const cursor = (entry as Record<string, unknown>).__CURSOR;
    return typeof cursor === 'string' ? cursor : undefined;
  }

  private follow(signal: AbortSignal, events: SourceEvents): Promise<void> {
    const position = this.readCursor !== undefined ? [`--after-cursor=${this.readCursor}`] : ['--lines=all'];
    const args = ['--follow', ...this.baseArgs(), ...position, ...this.matches];
    const child = spawn(this.opts.journalctl ?? 'journalctl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const splitter = new BoundedLineSplitter(MAX_ENTRY_CHARS, (line) => this.entry(line, events), () => sharedDropMetrics().lineSkipped('too-long'));
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => splitter.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4096);
    });
    const stop = (): void => {
      child.kill('SIGTERM');
    };
    signal.addEventListener('abort', stop, { once: true });
    return new Promise((resolve, reject) => {
      child.once('spawn', () => events.health(true, `following the journal${this.opts.directory ? ` in ${this.opts.directory}` : ''} (${this.matches.join(' ')})`));
      child.once('error', (err) => {
        signal.removeEventListener('abort', stop);
        reject(new Error(`journalctl: ${errorMessage(err)}`));
      });
      child.once('close', (code, sig) => {
        signal.removeEventListener('abort', stop);
        splitter.end();
        if (signal.aborted) return resolve();
        const why = lastLine(stderr);
        if (/cursor/i.test(why) && this.readCursor !== undefined) {
          this.log.warn('journalctl rejected the saved cursor; joining the journal at its end (entries since the cursor may be missed)', { cursor: this.readCursor, error: why });
          this.readCursor = undefined;
        }
        reject(new Error(`journalctl exited with ${code !== null ? `code ${code}` : `signal ${sig}`}${why ? `: ${why}` : ''}`));
      });
    });
  }

  private entry(line: string, events: SourceEvents): void {
    events.record();
    let entry: unknown;
    try {
      entry = JSON.parse(line);
    } catch {
      this.parser.parseJournalEntry(line); // counted as bad-json
      return;
    }
    const result = this.parser.parseJournalEntry(entry);
    if (result.ok) events.drop(result.drop);
    const cursor = typeof entry === 'object' && entry !== null ? (entry as Record<string, unknown>).__CURSOR : undefined;
    if (typeof cursor === 'string') this.readCursor = cursor;
  }
}

function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  return lines[lines.length - 1] ?? '';
}

function runCollect(cmd: string, args: string[], signal: AbortSignal): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], signal });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      if (stdout.length < 4 * MAX_ENTRY_CHARS) stdout += c.toString('utf8');
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString('utf8')).slice(-4096);
    });
    child.once('error', (err) => (signal.aborted ? resolve({ code: null, stdout, stderr }) : reject(new Error(`journalctl: ${errorMessage(err)}`))));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
