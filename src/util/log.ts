import winston from 'winston';

// One JSON logger for the whole process; components add their own fields with child().
export const logger = winston.createLogger({
  level: process.env.NETWARDEN_LOG_LEVEL ?? 'info',
  format: winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: true }), winston.format.json()),
  defaultMeta: { app: 'netwarden' },
  transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
});

export type Logger = winston.Logger;

/** A logger that stamps every line with the component and, where given, the resource key. */
export function loggerFor(component: string, key?: string): Logger {
  return key === undefined ? logger.child({ component }) : logger.child({ component, key });
}

/** Error message of an unknown thrown value, for logs and status conditions. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return typeof err === 'string' ? err : JSON.stringify(err);
}

/**
 * One log line per interval for something a flood repeats (refused connections, bad tokens): the
 * first goes through, the rest are counted and the next line says how many were held back.
 */
export class LogThrottle {
  private last = -Infinity;
  private held = 0;

  constructor(private readonly intervalMs = 10_000) {}

  /** undefined: do not log now; else how many were held back since the last line. */
  take(now = Date.now()): number | undefined {
    if (now - this.last < this.intervalMs) {
      this.held += 1;
      return undefined;
    }
    const held = this.held;
    this.last = now;
    this.held = 0;
    return held;
  }
}
