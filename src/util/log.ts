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
