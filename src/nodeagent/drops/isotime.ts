// toISOString() for the times of consecutive log lines, which mostly share their minute and often
// their millisecond: the "YYYY-MM-DDTHH:MM:" part is made once per minute, the whole once per ms.
// As text (text(), for PacketDrop) or as ASCII bytes written in place (bytes(), for JSON writers).

/** The first ms of year 10000: toISOString() writes it and later (or negative) times with a sign and six digits. */
const FIRST_SIX_DIGIT_YEAR_MS = 253402300800000;

/** "YYYY-MM-DDTHH:MM:" */
const MINUTE_PREFIX_LENGTH = 17;
/** "YYYY-MM-DDTHH:MM:SS.mmmZ" */
const ISO_LENGTH = 24;
const DIGIT_0 = 0x30; // '0'

export class IsoTimes {
  private lastMs = NaN;
  private last = '';
  private minute = NaN;
  private minutePrefix = '';
  private bytesMs = NaN;
  private bytesMinute = NaN;
  private readonly isoBytes = Buffer.alloc(ISO_LENGTH, '0000-00-00T00:00:00.000Z', 'latin1');
  private view: Uint8Array = this.isoBytes;

  /** new Date(ms).toISOString(). */
  text(ms: number): string {
    if (ms === this.lastMs) return this.last;
    this.lastMs = ms;
    this.last = this.format(ms);
    return this.last;
  }

  /** The ASCII bytes of new Date(ms).toISOString(): valid until the next call (rewritten in place when ms changes). */
  bytes(ms: number): Uint8Array {
    if (ms === this.bytesMs) return this.view;
    this.bytesMs = ms;
    if (!(ms >= 0 && ms < FIRST_SIX_DIGIT_YEAR_MS) || !Number.isInteger(ms)) {
      this.bytesMinute = NaN;
      this.view = Buffer.from(new Date(ms).toISOString(), 'latin1');
      return this.view;
    }
    const b = this.isoBytes;
    const minute = Math.floor(ms / 60_000);
    if (minute !== this.bytesMinute) {
      this.bytesMinute = minute;
      b.write(new Date(minute * 60_000).toISOString().slice(0, MINUTE_PREFIX_LENGTH), 0, 'latin1');
    }
    const rest = ms - minute * 60_000;
    const sec = Math.floor(rest / 1000);
    const milli = rest - sec * 1000;
    b[17] = DIGIT_0 + Math.floor(sec / 10);
    b[18] = DIGIT_0 + (sec % 10);
    b[20] = DIGIT_0 + Math.floor(milli / 100);
    b[21] = DIGIT_0 + (Math.floor(milli / 10) % 10);
    b[22] = DIGIT_0 + (milli % 10);
    this.view = b;
    return b;
  }

  private format(ms: number): string {
    if (!(ms >= 0 && ms < FIRST_SIX_DIGIT_YEAR_MS) || !Number.isInteger(ms)) return new Date(ms).toISOString();
    const minute = Math.floor(ms / 60_000);
    if (minute !== this.minute) {
      this.minute = minute;
      this.minutePrefix = new Date(minute * 60_000).toISOString().slice(0, MINUTE_PREFIX_LENGTH);
    }
    const rest = ms - minute * 60_000;
    const sec = Math.floor(rest / 1000);
    const milli = rest - sec * 1000;
    return `${this.minutePrefix}${sec < 10 ? '0' : ''}${sec}.${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
  }
}
