/**
 * Structured logging with pino. The process log goes to stdout; the access
 * log (./access-log.ts) writes its lines into the same destination.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export interface LogOptions {
  level: string;
  /** destination: a file descriptor or path; defaults to stdout. */
  destination?: number | string;
}

/** LineSink is where whole log lines can be written: pino's own destination (sonic-boom). */
export interface LineSink {
  write(line: string): unknown;
  /** flushSync writes everything buffered before returning (at process exit). */
  flushSync(): void;
}

/**
 * The destinations createLogger made. Their line format is known (numeric
 * level, ISO time, no formatters), so the access log may write its lines
 * into them directly instead of going through pino's serializer.
 */
const ownDestinations = new WeakSet<object>();

export function createLogger(options: LogOptions): Logger {
  // No minLength: the access log batches its own lines, and process-log lines should go out at once.
  // (With a minLength, sonic-boom can leave a tail shorter than it unwritten until the next line.)
  const destination = pino.destination({ dest: options.destination ?? 1, sync: false });
  ownDestinations.add(destination);
  return pino({ level: options.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/**
 * ownSink returns the destination of a logger that createLogger made (or a
 * child of one), with the logger's bound fields as pino writes them
 * (`,"pid":1,"worker":2`), else null.
 */
export function ownSink(logger: Logger): { sink: LineSink; bindings: string } | null {
  const fields = logger as unknown as Record<symbol, unknown>;
  const stream = fields[pino.symbols.streamSym];
  const bindings = fields[pino.symbols.chindingsSym];
  if (typeof stream !== 'object' || stream === null || !ownDestinations.has(stream) || typeof bindings !== 'string') return null;
  return { sink: stream as LineSink, bindings };
}

/** silentLogger is for library use and tests that do not want output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
