/**
 * Fulcrum's HTTP/1.1 upstream client: a keep-alive pool of raw `net`
 * connections to one backend, speaking the dispatch contract of dispatch.ts
 * (undici's low-level handler interface), so that it and undici's Pool are
 * interchangeable (config `upstream.client`).
 *
 * It exists for speed: it does per request only what a proxy needs (one
 * latin1 string for the request head and one for the response head, parsed
 * by http1/response-parser.ts,
 * timers re-armed rather than re-created) and nothing of undici's
 * generality. It covers what a backend may send (chunked and close-delimited
 * bodies, 1xx, HEAD, 204/304, trailers, `Connection: close`, `Keep-Alive:
 * timeout=`, malformed and oversized heads); https:// backends stay on undici.
 *
 * One request per connection at a time (no pipelining); idle connections
 * are reused last-in first-out and closed after their keep-alive timeout.
 * Errors carry undici's codes (h1-errors.ts), so errors.ts classifies them
 * alike.
 *
 * A kept-alive connection may have been closed by the backend just as it is
 * reused. Such a failure (the connection closes before any byte of the
 * response) is retried once on a new connection when the request may be
 * sent twice: an idempotent method with no body or a buffered one. Other
 * requests wait one turn of the event loop before reusing an idle connection,
 * so that a close already on its way is seen first (as undici does for all).
 */
import net, { type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { UpstreamDispatcher, UpstreamHandler, UpstreamRequest } from './dispatch.js';
import { H1Error } from '../http1/errors.js';
import { DONE, FAILED, NEED_MORE, ResponseParser, type ExecuteResult, type ResponseSink } from '../http1/response-parser.js';
import { BodyStreamer, encodeHead, type EncodedHead } from './h1-request.js';
import { encodeProxyHeader, type ProxyProtocolVersion } from './proxy-protocol.js';

export { H1Error };

export interface H1PoolOptions {
  /** connectTimeout: ms to establish a connection; 0 for none. */
  connectTimeout: number;
  /** headersTimeout: ms from the request being sent to the response head; 0 for none. */
  headersTimeout: number;
  /** bodyTimeout: ms of silence allowed within the response body; 0 for none. */
  bodyTimeout: number;
  /** keepAliveTimeout: how long an idle connection is kept when the backend gives no hint (undici's default: 4s). */
  keepAliveTimeout?: number;
  /** keepAliveMaxTimeout: the most a backend's `Keep-Alive: timeout=` hint may keep an idle connection. */
  keepAliveMaxTimeout?: number;
  /** keepAliveTimeoutThreshold: taken off a backend's hint, so that we close first. */
  keepAliveTimeoutThreshold?: number;
  /** maxHeaderSize: the largest response head (and trailer section), in bytes. */
  maxHeaderSize?: number;
  /**
   * proxyProtocol: write a PROXY header for the request's client on each new
   * connection. A connection then only carries requests whose header is the
   * same (the same client connection), like HAProxy's send-proxy.
   */
  proxyProtocol?: ProxyProtocolVersion | null;
}

/** Methods that may be sent twice (RFC 9110 9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * READ_BUFFER: every backend connection reads into this one buffer (net's
 * `onread`), rather than into a new 64 KiB allocation per read, as a
 * socket's 'data' events do. A read is handled before the next one, and
 * what must outlive it (body chunks, bytes kept while paused) is copied out.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** copyOf: a chunk of READ_BUFFER as a Buffer of its own (small ones come from Node's pool). */
function copyOf(chunk: Buffer): Buffer {
  const copy = Buffer.allocUnsafe(chunk.length);
  copy.set(chunk);
  return copy;
}

/** What a connection's request timer is timing. */
const PHASE_NONE = 0;
const PHASE_CONNECT = 1;
const PHASE_HEADERS = 2;
const PHASE_BODY = 3;

/** H1Request is one dispatched request, from dispatch to its one onComplete or onError, across a stale-connection retry. */
class H1Request {
  conn: H1Connection | null = null;
  done = false;
  /** written: the head was given to a socket, so the backend may have acted on it. */
  written = false;
  retried = false;
  streamer: BodyStreamer | null = null;
  /** proxyHeader: the PROXY header a connection for this request starts with (null without proxyProtocol). */
  proxyHeader: Buffer | null = null;
  readonly body: Buffer | Readable | null;
  readonly replayable: boolean;
  readonly abort: (err?: Error) => void;
  readonly resume: () => void;

  constructor(
    readonly opts: UpstreamRequest,
    readonly handler: UpstreamHandler,
    readonly encoded: EncodedHead,
    readonly headersTimeout: number,
    readonly bodyTimeout: number,
  ) {
    const body = opts.body ?? null;
    this.body = body;
    this.replayable = IDEMPOTENT.has(opts.method) && (body === null || Buffer.isBuffer(body));
    this.abort = (err) => {
      if (this.done) return;
      const conn = this.conn;
      this.conn = null;
      conn?.drop(this);
      this.fail(err ?? new H1Error('UND_ERR_ABORTED', 'request aborted'));
    };
    this.resume = () => this.conn?.resume(this);
    if (body !== null && !Buffer.isBuffer(body)) {
      // Listen for the body's errors at once: it may fail before a connection is ready.
      this.streamer = new BodyStreamer(body, encoded.streamLength, (err) => { if (err !== null) this.abort(err); }, opts.trailers);
    }
  }

  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.conn = null;
    this.stopBody();
    this.handler.onError(err);
  }

  stopBody(): void {
    const streamer = this.streamer;
    this.streamer = null;
    streamer?.stop();
  }
}

/** H1Connection is one socket to the backend and the parser of its responses. */
class H1Connection implements ResponseSink {
  readonly socket: Socket;
  readonly parser: ResponseParser;
  request: H1Request | null = null;
  idle = false;
  /** proxyKey: the PROXY header this connection started with, as text ('' without one): who it may serve. */
  readonly proxyKey: string;
  /** used: the connection has carried a request before (a kept-alive connection, which may be stale). */
  used = false;
  #connected = false;
  #closed = false;
  #paused = false;
  #pending: Buffer | null = null;
  #executing = false;
  #resumeAsked = false;
  #eof = false;
  #received = 0;
  #phase = PHASE_NONE;
  #timer: NodeJS.Timeout | null = null;
  #timerMs = 0;
  #idleTimer: NodeJS.Timeout | null = null;
  #idleMs = 0;

  constructor(private readonly pool: H1Pool, host: string, port: number, connectTimeout: number, maxHeaderSize: number, proxyHeader: Buffer | null) {
    this.parser = new ResponseParser(this, maxHeaderSize);
    this.socket = net.connect({
      host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000,
      onread: { buffer: READ_BUFFER, callback: this.#onRead },
    });
    // Written while connecting, it is queued ahead of the request: the connection's first bytes.
    if (proxyHeader !== null) this.socket.write(proxyHeader);
    this.proxyKey = proxyHeader === null ? '' : proxyHeader.toString('latin1');
    this.socket
      .on('connect', this.#onConnect)
      .on('end', this.#onEnd)
      .on('error', this.#onError)
      .on('close', this.#onClose);
    this.#arm(PHASE_CONNECT, connectTimeout);
  }

  /** start sends a request on this connection (once connected). */
  start(req: H1Request): void {
    this.request = req;
    req.conn = this;
    this.#received = 0;
    this.#eof = false;
    this.#paused = false;
    this.#pending = null;
    this.parser.reset(req.opts.method === 'HEAD');
    if (this.idle) {
      this.idle = false;
      this.socket.ref();
    }
    if (!this.#connected) return; // #onConnect writes it
    if (this.used && !req.replayable) setImmediate(this.#writeAfterTurn, req);
    else this.#write(req);
  }

  #writeAfterTurn = (req: H1Request): void => {
    if (this.request === req) this.#write(req);
  };

  #write(req: H1Request): void {
    req.written = true;
    this.#arm(PHASE_HEADERS, req.headersTimeout);
    const socket = this.socket;
    const body = req.body;
    if (body === null) {
      socket.write(req.encoded.head, 'latin1');
    } else if (Buffer.isBuffer(body)) {
      socket.cork();
      socket.write(req.encoded.head, 'latin1');
      socket.write(body);
      socket.uncork();
    } else {
      req.streamer!.start(socket, req.encoded.head);
    }
  }

  // --- response (ResponseSink) -----------------------------------------

  onHead(statusCode: number, statusText: string, rawHeaders: string[], hasBody: boolean): boolean {
    const req = this.request;
    if (req === null) return false;
    if (hasBody) this.#arm(PHASE_BODY, req.bodyTimeout);
    else this.#phase = PHASE_NONE;
    return req.handler.onHeaders(statusCode, rawHeaders, req.resume, statusText);
  }

  onBody(chunk: Buffer): boolean {
    const req = this.request;
    // The handler may keep the chunk (a write that waits for the socket): it gets its own copy.
    return req !== null && req.handler.onData(copyOf(chunk));
  }

  /** #onRead: nread bytes were read into READ_BUFFER (the socket keeps reading: true). */
  #onRead = (nread: number): boolean => {
    this.#onData(READ_BUFFER.subarray(0, nread));
    return true;
  };

  /** #onData handles bytes read into READ_BUFFER: it copies any it keeps. */
  #onData(chunk: Buffer): void {
    const req = this.request;
    if (req === null) {
      // Bytes nobody asked for (on an idle connection, or after a response ended early): the stream is out of step.
      this.#destroy();
      return;
    }
    this.#received += chunk.length;
    if (this.#paused) {
      this.#pending = this.#pending === null ? copyOf(chunk) : Buffer.concat([this.#pending, chunk]);
      return;
    }
    if (this.#phase === PHASE_BODY) this.#timer!.refresh();
    this.#execute(req, chunk);
  }

  #execute(req: H1Request, buf: Buffer): void {
    const parser = this.parser;
    for (;;) {
      let result: ExecuteResult;
      this.#executing = true;
      this.#resumeAsked = false;
      try {
        result = parser.execute(buf, 0);
      } catch (err) {
        // A handler threw: the request cannot go on, and the connection is out of step.
        this.#executing = false;
        this.#fail(err as Error, false);
        return;
      } finally {
        this.#executing = false;
      }
      if (this.request !== req) return; // aborted from a callback
      if (result === NEED_MORE) {
        if (this.#eof) this.#ended(req);
        return;
      }
      if (result === DONE) {
        this.#complete(req, parser.offset < buf.length);
        return;
      }
      if (result === FAILED) {
        this.#fail(parser.error!, false);
        return;
      }
      // PAUSED: keep the rest until resume(), unless the handler already asked for it.
      // Copied: buf may be READ_BUFFER, which the next read overwrites.
      const rest = parser.offset < buf.length ? copyOf(buf.subarray(parser.offset)) : null;
      if (!this.#resumeAsked) {
        this.#paused = true;
        this.#pending = rest;
        this.socket.pause();
        return;
      }
      if (rest === null) return;
      buf = rest;
    }
  }

  /** resume continues a response paused by its handler. */
  resume(req: H1Request): void {
    if (this.request !== req) return;
    if (this.#executing) {
      this.#resumeAsked = true;
      return;
    }
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#phase === PHASE_BODY) this.#timer!.refresh();
    this.socket.resume();
    const pending = this.#pending;
    this.#pending = null;
    if (pending !== null) this.#execute(req, pending);
    else if (this.#eof) this.#ended(req);
  }

  #complete(req: H1Request, extraBytes: boolean): void {
    this.request = null;
    req.conn = null;
    req.done = true;
    this.#phase = PHASE_NONE;
    this.used = true;
    const parser = this.parser;
    let reusable = parser.keepAlive && req.encoded.reusable && !extraBytes && !this.#eof;
    if (req.streamer !== null && !req.streamer.complete) {
      // The response came before the whole request body was sent: the connection is mid-request.
      req.stopBody();
      reusable = false;
    }
    const idleMs = reusable ? this.pool.idleTimeoutFor(parser.keepAliveHint) : 0;
    if (idleMs > 0) this.pool.release(this, idleMs);
    else this.#destroy();
    try {
      req.handler.onComplete(parser.trailers);
    } catch (err) {
      // The request is over: there is no one left to tell but the process (undici drops it silently).
      process.emitWarning(err as Error);
    }
  }

  // --- socket events ---------------------------------------------------

  #onConnect = (): void => {
    this.#connected = true;
    this.#phase = PHASE_NONE;
    const req = this.request;
    if (req !== null) this.#write(req);
    // Its request was aborted while it connected: a clean connection, kept for the next one.
    else this.pool.release(this, this.pool.idleTimeoutFor(-1));
  };

  #onEnd = (): void => {
    const req = this.request;
    if (req === null) {
      this.#destroy();
      return;
    }
    this.#eof = true;
    if (!this.#paused) this.#ended(req);
  };

  /** #ended: the backend closed its side; that ends a close-delimited body, and fails anything else. */
  #ended(req: H1Request): void {
    if (this.parser.finishAtEof()) this.#complete(req, false);
    else this.#fail(new H1Error('UND_ERR_SOCKET', 'other side closed'), true);
  }

  #onError = (err: Error): void => {
    this.#fail(err, true);
  };

  #onClose = (): void => {
    this.#closed = true;
    if (this.request !== null) this.#fail(new H1Error('UND_ERR_SOCKET', 'closed'), true);
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.pool.forget(this);
  };

  // --- failure and teardown -------------------------------------------

  /**
   * #fail ends the connection and its request. A socket-level failure of a
   * kept-alive connection before any response byte is the stale-connection
   * race: the request goes to a new connection once, when it may.
   */
  #fail(err: Error, socketLevel: boolean): void {
    const req = this.request;
    this.request = null;
    this.#phase = PHASE_NONE;
    this.#destroy();
    if (req === null || req.done) return;
    req.conn = null;
    const stale = socketLevel && this.used && this.#received === 0 && !req.retried && (req.replayable || !req.written);
    if (stale && this.pool.retryFresh(req)) return;
    req.fail(err);
  }

  /**
   * drop detaches an aborted request. A connection that carried none of its
   * bytes is clean and goes back to the pool (once connected, if it is still
   * connecting): a client that resets its requests at once (HTTP/2 rapid
   * reset) must not cost a backend connection each. Otherwise it is
   * mid-request and is closed.
   */
  drop(req: H1Request): void {
    if (this.request !== req) return;
    this.request = null;
    this.#phase = PHASE_NONE;
    if (req.written || this.#closed) {
      this.#destroy();
      return;
    }
    req.stopBody();
    if (this.#connected) this.pool.release(this, this.pool.idleTimeoutFor(-1));
  }

  /** failWith fails the request in flight, if any, and closes the connection. */
  failWith(err: Error): void {
    this.#fail(err, false);
  }

  #destroy(): void {
    if (this.idle) {
      this.idle = false;
      this.pool.removeIdle(this);
    }
    if (this.#closed) return;
    this.#closed = true;
    this.socket.destroy();
  }

  // --- timers ----------------------------------------------------------

  /**
   * #arm starts timing a phase. One timer per connection is re-armed with
   * refresh() rather than re-created; when it fires, the phase in force
   * says what timed out (a stale firing finds PHASE_NONE and does nothing).
   */
  #arm(phase: number, ms: number): void {
    if (ms <= 0) {
      this.#phase = PHASE_NONE;
      return;
    }
    this.#phase = phase;
    if (this.#timer !== null && this.#timerMs === ms) {
      this.#timer.refresh();
      return;
    }
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#onTimer, ms).unref();
    this.#timerMs = ms;
  }

  #onTimer = (): void => {
    switch (this.#phase) {
      case PHASE_CONNECT:
        this.#fail(new H1Error('UND_ERR_CONNECT_TIMEOUT', `connect timeout (${this.#timerMs}ms)`), false);
        return;
      case PHASE_HEADERS:
        // While the client is still slowly sending the body, the backend cannot be blamed for waiting.
        if (this.request?.streamer?.waitingForBody === true) this.#timer!.refresh();
        else this.#fail(new H1Error('UND_ERR_HEADERS_TIMEOUT', `no response headers within ${this.#timerMs}ms`), false);
        return;
      case PHASE_BODY:
        // Paused by the client's back-pressure: not the backend's silence. resume() re-arms it.
        if (!this.#paused) this.#fail(new H1Error('UND_ERR_BODY_TIMEOUT', `response body stalled for ${this.#timerMs}ms`), false);
        return;
      default:
    }
  };

  /** park makes the connection idle for at most ms. */
  park(ms: number): void {
    this.idle = true;
    this.socket.unref();
    if (this.#idleTimer !== null && this.#idleMs === ms) {
      this.#idleTimer.refresh();
      return;
    }
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(this.#onIdleTimer, ms).unref();
    this.#idleMs = ms;
  }

  #onIdleTimer = (): void => {
    if (this.idle) this.#destroy();
  };
}

/** H1Pool is the keep-alive pool of connections to one http:// backend. */
export class H1Pool implements UpstreamDispatcher {
  readonly #host: string;
  readonly #port: number;
  readonly #options: Required<H1PoolOptions>;
  /** #idle is a stack: the most recently used connection is reused first (it is the least likely to be stale). */
  readonly #idle: H1Connection[] = [];
  /** #proxy: the PROXY protocol version written on new connections, or null. */
  readonly #proxy: ProxyProtocolVersion | null;
  /** #idleByClient: with #proxy, the idle connections per PROXY header (stacks too), as only those may be reused. */
  readonly #idleByClient = new Map<string, H1Connection[]>();
  readonly #connections = new Set<H1Connection>();
  #closing = false;
  #destroyed = false;
  #closed: (() => void)[] = [];

  constructor(origin: string | URL, options: H1PoolOptions) {
    const url = typeof origin === 'string' ? new URL(origin) : origin;
    if (url.protocol !== 'http:') throw new H1Error('UND_ERR_INVALID_ARG', `H1Pool speaks plain http, not ${url.protocol}`);
    this.#host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    this.#port = url.port === '' ? 80 : Number(url.port);
    this.#options = {
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000,
      keepAliveTimeoutThreshold: 2_000,
      maxHeaderSize: 64 * 1024,
      proxyProtocol: null,
      ...options,
    };
    this.#proxy = this.#options.proxyProtocol;
  }

  /** connections counts the open connections, busy and idle. */
  get connections(): number {
    return this.#connections.size;
  }

  /** idleConnections counts the connections waiting for a request. */
  get idleConnections(): number {
    return this.#idle.length;
  }

  dispatch(opts: UpstreamRequest, handler: UpstreamHandler): boolean {
    if (this.#closing) {
      const err = this.#destroyed ? new H1Error('UND_ERR_DESTROYED', 'the pool was destroyed') : new H1Error('UND_ERR_CLOSED', 'the pool is closed');
      queueMicrotask(() => handler.onError(err));
      return false;
    }
    const options = this.#options;
    const encoded = encodeHead(opts);
    const req = new H1Request(
      opts,
      handler,
      encoded instanceof H1Error ? INVALID : encoded,
      opts.headersTimeout ?? options.headersTimeout,
      opts.bodyTimeout ?? options.bodyTimeout,
    );
    handler.onConnect(req.abort);
    if (req.done) return true; // aborted at once
    if (encoded instanceof H1Error) {
      req.fail(encoded);
      return true;
    }
    if (this.#proxy !== null) {
      this.#dispatchProxied(req, opts);
      return true;
    }
    const conn = this.#idle.pop();
    if (conn !== undefined) conn.start(req);
    else this.#open(null).start(req);
    return true;
  }

  /** #dispatchProxied reuses only a connection opened for the same client connection (the same PROXY header). */
  #dispatchProxied(req: H1Request, opts: UpstreamRequest): void {
    const header = encodeProxyHeader(this.#proxy!, opts.client);
    req.proxyHeader = header;
    const conn = this.#idleByClient.get(header.toString('latin1'))?.at(-1);
    if (conn === undefined) {
      this.#open(header).start(req);
      return;
    }
    this.removeIdle(conn);
    conn.start(req);
  }

  close(): Promise<void> {
    this.#closing = true;
    for (const conn of this.#idle.splice(0)) conn.failWith(new H1Error('UND_ERR_CLOSED', 'the pool is closed'));
    return this.#whenEmpty();
  }

  destroy(): Promise<void> {
    this.#closing = true;
    this.#destroyed = true;
    for (const conn of [...this.#connections]) conn.failWith(new H1Error('UND_ERR_DESTROYED', 'the pool was destroyed'));
    return this.#whenEmpty();
  }

  #whenEmpty(): Promise<void> {
    if (this.#connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#closed.push(resolve));
  }

  #open(proxyHeader: Buffer | null): H1Connection {
    const conn = new H1Connection(this, this.#host, this.#port, this.#options.connectTimeout, this.#options.maxHeaderSize, proxyHeader);
    this.#connections.add(conn);
    return conn;
  }

  // --- called by connections ------------------------------------------

  /** idleTimeoutFor: how long to keep a connection idle given the backend's Keep-Alive hint (ms, or -1); 0 means close it. */
  idleTimeoutFor(hint: number): number {
    const o = this.#options;
    if (hint < 0) return o.keepAliveTimeout;
    return Math.max(0, Math.min(hint - o.keepAliveTimeoutThreshold, o.keepAliveMaxTimeout));
  }

  release(conn: H1Connection, idleMs: number): void {
    if (this.#closing) {
      conn.failWith(new H1Error('UND_ERR_CLOSED', 'the pool is closed'));
      return;
    }
    conn.park(idleMs);
    this.#idle.push(conn);
    if (this.#proxy !== null) {
      const list = this.#idleByClient.get(conn.proxyKey);
      if (list === undefined) this.#idleByClient.set(conn.proxyKey, [conn]);
      else list.push(conn);
    }
  }

  /** retryFresh sends a request again on a new connection after a stale one failed; false when the pool is closing. */
  retryFresh(req: H1Request): boolean {
    if (this.#closing) return false;
    req.retried = true;
    this.#open(req.proxyHeader).start(req);
    return true;
  }

  removeIdle(conn: H1Connection): void {
    const i = this.#idle.lastIndexOf(conn);
    if (i >= 0) this.#idle.splice(i, 1);
    if (this.#proxy === null) return;
    const list = this.#idleByClient.get(conn.proxyKey);
    if (list === undefined) return;
    const j = list.lastIndexOf(conn);
    if (j >= 0) list.splice(j, 1);
    if (list.length === 0) this.#idleByClient.delete(conn.proxyKey);
  }

  forget(conn: H1Connection): void {
    if (!this.#connections.delete(conn)) return;
    if (conn.idle) this.removeIdle(conn);
    if (this.#closing && this.#connections.size === 0) for (const resolve of this.#closed.splice(0)) resolve();
  }
}

/** INVALID stands in for the head of a request that failed to encode (it is never sent). */
const INVALID: EncodedHead = { head: '', streamLength: 0, reusable: false };
