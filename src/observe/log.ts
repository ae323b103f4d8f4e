/**
 * Structured logging with pino. The process log goes to stdout; the access
 * log is a child logger so that it can be silenced on its own.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export interface LogOptions {
  level: string;
  /** destination: a file descriptor or path; defaults to stdout. */
  destination?: number | string;
}

export function createLogger(options: LogOptions): Logger {
  const destination = pino.destination({ dest: options.destination ?? 1, sync: false, minLength: 4096 });
  return pino({ level: options.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/** silentLogger is for library use and tests that do not want output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
