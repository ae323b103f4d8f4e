/** A pino logger that keeps its lines in memory, for tests that check what was logged. */
import { pino } from 'pino';
import type { Logger } from '../../src/observe/log.js';

export interface CapturedLog {
  readonly logger: Logger;
  readonly lines: Record<string, unknown>[];
  /** find returns the lines whose msg is `msg`. */
  find(msg: string): Record<string, unknown>[];
}

export function captureLogger(level = 'info'): CapturedLog {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } });
  return { logger, lines, find: (msg) => lines.filter((l) => l.msg === msg) };
}
