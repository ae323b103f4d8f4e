/**
 * Structured logging with pino. The process log goes to stdout; the access
 * log (./access-log.ts) writes its lines into the same destination. JSON
 * lines for machines; on a terminal (or asked for), lines for people, with
 * colours (pino-pretty).
 */
import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

/** loadPretty: pino-pretty (and its dependencies) is loaded only when pretty lines are asked for. */
const loadPretty = (): typeof PinoPretty => createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;

export type { Logger };

/** LogFormat: `json`, one JSON object per line; `pretty`, human-readable lines (pino-pretty). */
export type LogFormat = 'json' | 'pretty';
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];

export interface LogOptions {
  level: string;
  /** destination: a file descriptor or path; defaults to stdout. */
  destination?: number | string;
  /** format: `json` by default. */
  format?: LogFormat;
}

/**
 * logFormatFor decides the format: the one asked for (`--log-format`), else
 * pretty on a terminal and JSON otherwise (a pipe, a file, a container's log
 * collector), so that machines never get coloured text unasked.
 */
export function logFormatFor(asked: LogFormat | undefined, stdoutIsTerminal: boolean): LogFormat {
  return asked ?? (stdoutIsTerminal ? 'pretty' : 'json');
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
  if (options.format === 'pretty') return pino({ level: options.level, base: { pid: process.pid } }, prettyStream(options.destination ?? 1, false));
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

/**
 * prettyStream writes human-readable lines to `destination`: coloured when
 * it is a terminal, the time in local time. The access log's lines go
 * through pino here (ownSink does not know this stream), so they are pretty too.
 */
export function prettyStream(destination: number | string, sync: boolean): DestinationStream {
  const colorize = typeof destination === 'number' && destination <= 2 && (destination === 2 ? process.stderr : process.stdout).isTTY === true;
  return loadPretty()({ destination, sync, colorize, translateTime: 'SYS:HH:MM:ss.l', ignore: 'hostname' });
}

/** silentLogger is for library use and tests that do not want output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
