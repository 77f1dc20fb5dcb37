// Splits a byte stream into lines with a bound on the line length: a longer line is skipped up to
// its newline and reported once, so one runaway writer cannot grow the agent's memory.
import { StringDecoder } from 'node:string_decoder';

export class BoundedLineSplitter {
  private decoder = new StringDecoder('utf8');
  private partial = '';
  private skipping = false;

  constructor(
    private readonly maxLineChars: number,
    private readonly onLine: (line: string) => void,
    private readonly onOversize: () => void,
  ) {}

  push(chunk: Buffer): void {
    let text = this.decoder.write(chunk);
    for (;;) {
      const nl = text.indexOf('\n');
      if (nl < 0) break;
      const piece = text.slice(0, nl);
      text = text.slice(nl + 1);
      if (this.skipping) {
        this.skipping = false;
        continue;
      }
      const line = this.partial.length > 0 ? this.partial + piece : piece;
      this.partial = '';
      if (line.length > this.maxLineChars) this.onOversize();
      else this.onLine(line);
    }
    if (this.skipping) return;
    this.partial += text;
    if (this.partial.length > this.maxLineChars) {
      this.partial = '';
      this.skipping = true;
      this.onOversize();
    }
  }

  /** The stream ended: a held partial line is passed on (it may be cut). */
  end(): void {
    const rest = this.partial + this.decoder.end();
    this.partial = '';
    if (!this.skipping && rest.length > 0) this.onLine(rest);
    this.skipping = false;
  }
}
