// toISOString() for the times of consecutive log lines, which mostly share their minute and often
// their millisecond: the "YYYY-MM-DDTHH:MM:" part is made once per minute, the whole once per ms.

/** The first ms of year 10000: toISOString() writes it and later (or negative) times with a sign and six digits. */
const FIRST_SIX_DIGIT_YEAR_MS = 253402300800000;

export class IsoTimes {
  private lastMs = NaN;
  private last = '';
  private minute = NaN;
  private minutePrefix = '';

  /** new Date(ms).toISOString(). */
  text(ms: number): string {
    if (ms === this.lastMs) return this.last;
    this.lastMs = ms;
    this.last = this.format(ms);
    return this.last;
  }

  private format(ms: number): string {
    if (!(ms >= 0 && ms < FIRST_SIX_DIGIT_YEAR_MS) || !Number.isInteger(ms)) return new Date(ms).toISOString();
    const minute = Math.floor(ms / 60_000);
    if (minute !== this.minute) {
      this.minute = minute;
      this.minutePrefix = new Date(minute * 60_000).toISOString().slice(0, 17);
    }
    const rest = ms - minute * 60_000;
    const sec = Math.floor(rest / 1000);
    const milli = rest - sec * 1000;
    return `${this.minutePrefix}${sec < 10 ? '0' : ''}${sec}.${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
  }
}
