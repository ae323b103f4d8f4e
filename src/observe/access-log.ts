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

/**
 * LogIds name a request beyond its line: its request id and trace (each ''
 * when there is none). Passed only when request ids or tracing are on; the
 * line then ends with `requestId`, `traceId` and `spanId` (those not empty).
 */
export interface LogIds {
  readonly requestId: string;
  readonly traceId: string;
  readonly spanId: string;
}

/**
 * AccessEntry is one request's line. The pipeline fills one such object per
 * listener again for every request (write reads it at once and keeps
 * nothing), so that logging allocates nothing but the line itself.
 */
export interface AccessEntry {
  readonly method: string;
  readonly url: string;
  readonly status: number;
  readonly route: string;
  readonly service: string;
  readonly backend: string;
  readonly client: string;
  /** ms: the request's duration (a tunnel's whole life), at most three decimals. */
  readonly ms: number;
  readonly attempts: number;
  readonly error?: string | undefined;
  /** retryReasons: why each retry was made, in order; null (left out) when there was none. */
  readonly retryReasons?: readonly string[] | null;
  readonly ids?: LogIds | null;
  /** proto and upstreamProto: the HTTP versions spoken with the client and the backend ("1.1", "2"; "" when no backend was tried). */
  readonly proto?: string | undefined;
  readonly upstreamProto?: string | undefined;
  /** grpcStatus: a gRPC call's status; -1 (left out) when the request is not a call. */
  readonly grpcStatus?: number;
}

export interface AccessLog {
  /** write is one request's line. */
  write(entry: AccessEntry): void;
  /**
   * writeTunnel is the line of an upgraded connection, written when it
   * closes: `entry.ms` is its whole life, bytesIn what the client sent
   * through it and bytesOut what it received (after the heads).
   */
  writeTunnel(entry: AccessEntry, bytesIn: number, bytesOut: number): void;
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

  write(e: AccessEntry): void {
    const { method, url, status, route, service, backend, client, ms, attempts, error, proto, upstreamProto } = e;
    const grpcStatus = e.grpcStatus === undefined || e.grpcStatus < 0 ? undefined : e.grpcStatus;
    const retryReasons = e.retryReasons ?? null;
    this.#log.info(retryReasons === null
      ? { method, url, status, route, service, backend, client, ms, attempts, error, proto, upstreamProto, grpcStatus, ...idFields(e.ids ?? null) }
      : { method, url, status, route, service, backend, client, ms, attempts, retryReasons, error, proto, upstreamProto, grpcStatus, ...idFields(e.ids ?? null) });
  }

  writeTunnel(e: AccessEntry, bytesIn: number, bytesOut: number): void {
    const { method, url, status, route, service, backend, client, ms, attempts } = e;
    this.#log.info({ method, url, status, route, service, backend, client, ms, attempts, bytesIn, bytesOut, ...idFields(e.ids ?? null) });
  }

  close(): void { /* pino writes each line as it comes */ }
}

/** idFields: the ids of a line as fields (only those it has). */
function idFields(ids: LogIds | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (ids === null) return out;
  if (ids.requestId !== '') out.requestId = ids.requestId;
  if (ids.traceId !== '') out.traceId = ids.traceId;
  if (ids.spanId !== '') out.spanId = ids.spanId;
  return out;
}

/** idJson: the ids of a line as its last JSON fields (a leading comma each), '' for none. */
function idJson(ids: LogIds | null): string {
  if (ids === null) return '';
  let out = '';
  if (ids.requestId !== '') out += `,"requestId":${jsonString(ids.requestId)}`;
  if (ids.traceId !== '') out += `,"traceId":"${ids.traceId}","spanId":"${ids.spanId}"`;
  return out;
}

/** BATCH_BYTES: lines are handed over in chunks about this big (one write system call each). */
const BATCH_BYTES = 16 * 1024;
/** FLUSH_DELAY_MS: how long a line may wait in the batch when traffic is light. */
const FLUSH_DELAY_MS = 200;

/** Characters JSON needs escaped, and any non-ASCII, which we leave to JSON.stringify. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/;

/** MILLIS[n] is n as three digits, for the milliseconds of a timestamp. */
const MILLIS = Array.from({ length: 1000 }, (_, n) => String(n).padStart(3, '0'));
/** FRACTIONS[n] is n thousandths as the decimals String() writes for them: "" for 0, ".12" for 120, ".005" for 5. */
const FRACTIONS = MILLIS.map((digits) => `.${digits}`.replace(/\.?0+$/, ''));

const jsonString = (s: string): string => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`);

/**
 * decimalMs writes a duration in ms with at most three decimals (as the
 * pipeline rounds it) the way String() does, from integers: converting a
 * fractional double to its shortest decimal costs far more.
 */
function decimalMs(ms: number): string {
  const thousandths = Math.round(ms * 1000);
  if (!Number.isSafeInteger(thousandths) || thousandths < 0) return String(ms);
  const whole = Math.floor(thousandths / 1000);
  return `${whole}${FRACTIONS[thousandths - whole * 1000]!}`;
}

/** JsonMemo keeps the JSON of the last string it was given: consecutive lines mostly share their method, backend and client. */
class JsonMemo {
  #last = '';
  #json = '""';

  of(s: string): string {
    if (s !== this.#last) {
      this.#last = s;
      this.#json = jsonString(s);
    }
    return this.#json;
  }
}

class BatchedAccessLog implements AccessLog {
  readonly #sink: LineSink;
  /** #bindings: the logger's own fields (`,"pid":1,"worker":2`) and the line's type. */
  readonly #bindings: string;
  #batch = '';
  #timer: NodeJS.Timeout | null = null;
  #timeMs = 0;
  /** #second: the second #secondIso is the ISO time of, up to its "." (Date's formatting costs thousands of instructions: once a second). */
  #second = -1;
  #secondIso = '';
  /** #start: the line's start up to its method, for the current millisecond. */
  #start = '';
  readonly #method = new JsonMemo();
  readonly #route = new JsonMemo();
  readonly #service = new JsonMemo();
  readonly #backend = new JsonMemo();
  readonly #client = new JsonMemo();

  constructor(sink: LineSink, bindings: string) {
    this.#sink = sink;
    this.#bindings = `${bindings},"type":"access"`;
    track(this);
  }

  write(e: AccessEntry): void {
    const retryReasons = e.retryReasons ?? null;
    const reasons = retryReasons === null ? '' : `,"retryReasons":${JSON.stringify(retryReasons)}`;
    const error = e.error;
    // The protocols are short constant strings ("1.1", "2"): written as they are.
    const protos = e.proto === undefined ? '' : `,"proto":"${e.proto}","upstreamProto":"${e.upstreamProto ?? ''}"`;
    const grpc = e.grpcStatus === undefined || e.grpcStatus < 0 ? '' : `,"grpcStatus":${e.grpcStatus}`;
    const ids = e.ids ?? null;
    this.#batch += `${this.#lineStart(e)}${reasons}${error === undefined ? '' : `,"error":${jsonString(error)}`}${protos}${grpc}${ids === null ? '' : idJson(ids)}}\n`;
    this.#added();
  }

  writeTunnel(e: AccessEntry, bytesIn: number, bytesOut: number): void {
    this.#batch += `${this.#lineStart(e)},"bytesIn":${bytesIn},"bytesOut":${bytesOut}${idJson(e.ids ?? null)}}\n`;
    this.#added();
  }

  /** #lineStart is a line up to its attempts field, with the time of now. */
  #lineStart(e: AccessEntry): string {
    const now = Date.now();
    if (now !== this.#timeMs) {
      this.#timeMs = now;
      const milli = now % 1000;
      if (now - milli !== this.#second) {
        this.#second = now - milli;
        this.#secondIso = new Date(now - milli).toISOString().slice(0, -4); // "2026-11-22T00:40:00."
      }
      this.#start = `{"level":30,"time":"${this.#secondIso}${MILLIS[milli]!}Z"${this.#bindings},"method":`;
    }
    return `${this.#start}${this.#method.of(e.method)},"url":${jsonString(e.url)},"status":${e.status},"route":${this.#route.of(e.route)},"service":${this.#service.of(e.service)},"backend":${this.#backend.of(e.backend)},"client":${this.#client.of(e.client)},"ms":${decimalMs(e.ms)},"attempts":${e.attempts}`;
  }

  #added(): void {
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
