// Text that came from packets or from other people (DNS names in a capture, zip entry names, a
// server's error message, firewall log lines) ends up on someone's terminal. Control characters
// in it would be obeyed by the terminal: ESC and CSI sequences move the cursor, rewrite what was
// printed above, retitle the window or, on some terminals, answer back into the shell's input;
// bidi overrides make a line read differently from its bytes. So they are shown escaped, and what
// the terminal prints is what was received.

/** DEL, C1, bidi controls, line/paragraph separators: what JSON.stringify leaves as it is. */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
/** And in text, C0 controls (tab and newline too: a summary line is one line) and the backslash. */
const UNSAFE_IN_TEXT = new RegExp(`[\\u0000-\\u001f\\\\${UNSAFE_IN_JSON.source.slice(1, -1)}]`, 'g');

function hex(c: string, width: number): string {
  return c.charCodeAt(0).toString(16).padStart(width, '0');
}

/**
 * `text` with every character a terminal would act on written as an escape: `\x1b` for C0, DEL
 * and C1, `\u202e` for bidi controls, and `\\` for a backslash, so an escape in the output always
 * means one in the input. With `json: true`, `text` is JSON lines (from JSON.stringify, which
 * escapes C0 itself) and the rest become `\u00XX` escapes, so each line parses to the same value.
 */
export function escapeForTerminal(text: string, opts: { json?: boolean } = {}): string {
  if (opts.json) return text.replace(UNSAFE_IN_JSON, (c) => `\\u${hex(c, 4)}`);
  return text.replace(UNSAFE_IN_TEXT, (c) => {
    if (c === '\\') return '\\\\';
    const code = c.charCodeAt(0);
    return code <= 0x9f ? `\\x${hex(c, 2)}` : `\\u${hex(c, 4)}`;
  });
}
