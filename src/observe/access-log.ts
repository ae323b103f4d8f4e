/**
 * The access log: one JSON line per request, the same line pino would write
 * for `logger.child({ type: 'access' }).info(fields)`.
 *
 * With a logger that createLogger made (the CLI's), lines are formatted here
 * and handed to pino's destination in batches: pino's serializer, and
 * sonic-boom measuring its buffer on every write, cost ~6 µs per line,
 * this ~1.2 with the write (`npm run bench:access-log`). Any other logger (an embedding
 * application's, with its own formatters, redaction or transport) gets its
 * lines through pino itself, so that its settings apply.
 */
import { ownSink, type LineSink, type Logger } from './log.js';

export interface AccessLog {
  write(method: string, url: string, status: number, backend: string, client: string, ms: number, attempts: number, error: string | undefined): void;
  /** close hands the lines still batched to the destination (when the balancer stops). */
  close(): void;
}

export function createAccessLog(logger: Logger): AccessLog {
  const own = ownSink(logger);
  return own === null ? new PinoAccessLog(logger) : new BatchedAccessLog(own.sink, own.bindings);
}

class PinoAccessLog implements AccessLog {
  readonly #log: Logger;

  constructor(logger: Logger) {
    // The access log has its own switch (accessLog), independent of the process log level.
    this.#log = logger.child({ type: 'access' }, { level: 'info' });
  }

  write(method: string, url: string, status: number, backend: string, client: string, ms: number, attempts: number, error: string | undefined): void {
    this.#log.info({ method, url, status, backend, client, ms, attempts, error });
  }

  close(): void { /* pino writes each line as it comes */ }
}

/** BATCH_BYTES: lines are handed over in chunks about this big (one write system call each). */
const BATCH_BYTES = 16 * 1024;
/** FLUSH_DELAY_MS: how long a line may wait in the batch when traffic is light. */
const FLUSH_DELAY_MS = 200;

/** Characters JSON needs escaped, and any non-ASCII, which we leave to JSON.stringify. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/;

/** MILLIS[n] is n as three digits, for the milliseconds of a timestamp. */
const MILLIS = Array.from({ length: 1000 }, (_, n) => String(n).padStart(3, '0'));

const jsonString = (s: string): string => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`);

class BatchedAccessLog implements AccessLog {
  readonly #sink: LineSink;
  /** #bindings: the logger's own fields (`,"pid":1,"worker":2`) and the line's type. */
  readonly #bindings: string;
  #batch = '';
  #timer: NodeJS.Timeout | null = null;
  #timeMs = 0;
  #timeIso = '';
  /** #second: the second #secondIso is the ISO time of, up to its "." (Date's formatting, in C++, costs a few µs: once a second). */
  #second = -1;
  #secondIso = '';

  constructor(sink: LineSink, bindings: string) {
    this.#sink = sink;
    this.#bindings = `${bindings},"type":"access"`;
    track(this);
  }

  write(method: string, url: string, status: number, backend: string, client: string, ms: number, attempts: number, error: string | undefined): void {
    const now = Date.now();
    if (now !== this.#timeMs) {
      this.#timeMs = now;
      const ms = now % 1000;
      if (now - ms !== this.#second) {
        this.#second = now - ms;
        this.#secondIso = new Date(now - ms).toISOString().slice(0, -4); // "2026-11-22T00:40:00."
      }
      this.#timeIso = `${this.#secondIso}${MILLIS[ms]!}Z`;
    }
    this.#batch += `{"level":30,"time":"${this.#timeIso}"${this.#bindings},"method":${jsonString(method)},"url":${jsonString(url)},"status":${status},"backend":${jsonString(backend)},"client":${jsonString(client)},"ms":${ms},"attempts":${attempts}${error === undefined ? '' : `,"error":${jsonString(error)}`}}\n`;
    if (this.#batch.length >= BATCH_BYTES) this.#handOver();
    else if (this.#timer === null) this.#timer = setTimeout(this.#onTimer, FLUSH_DELAY_MS).unref();
  }

  close(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#handOver();
    open.delete(this);
  }

  /** atExit: the process is exiting without a close (a second signal): write what is left, synchronously. */
  atExit(): void {
    this.#handOver();
    this.#sink.flushSync();
  }

  #onTimer = (): void => {
    this.#timer = null;
    this.#handOver();
  };

  #handOver(): void {
    if (this.#batch.length === 0) return;
    const chunk = this.#batch;
    this.#batch = '';
    try {
      this.#sink.write(chunk);
    } catch { /* the destination was closed with its logger: nothing left to write to */ }
  }
}

/** The batched logs not closed yet, written out at process exit (one listener for them all). */
const open = new Set<BatchedAccessLog>();
let exitHook = false;

function track(log: BatchedAccessLog): void {
  open.add(log);
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const l of open) {
      try { l.atExit(); } catch { /* nothing more can be done at exit */ }
    }
  });
}
