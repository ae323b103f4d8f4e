/**
 * Fulcrum's HTTP/2 upstream client: the sessions to one backend, speaking
 * the dispatch contract of dispatch.ts, so that the Exchange (retries,
 * limits, queue, outlier detection, EWMA, slow start) works per stream as it
 * does per HTTP/1.1 request.
 *
 * - `h2c://` backends get cleartext HTTP/2 with prior knowledge; `https://`
 *   backends of a service with `upstream.http2` offer ALPN "h2" and
 *   "http/1.1". A backend that picks HTTP/1.1 gets the `fallback` pool from
 *   then on (the requests waiting for that first connection go there too).
 * - One session carries many streams; a new one opens when every open
 *   session is at the backend's SETTINGS_MAX_CONCURRENT_STREAMS.
 * - A PING every `pingInterval` checks that a session is alive; one
 *   unanswered within `pingTimeout` destroys it (its streams fail).
 * - GOAWAY: the session takes no new streams (they go to a new session);
 *   those in flight finish. Streams above the GOAWAY's last stream id, and
 *   streams the backend resets with REFUSED_STREAM, never reached it: they
 *   fail with H2_REFUSED_STREAM, which the proxy retries on any method.
 * - Flow control both ways: a paused response (the client reads slowly)
 *   pauses the stream, so nghttp2 stops granting window to the backend; the
 *   request body is written with back-pressure.
 * - Errors carry the codes the HTTP/1.1 client's do (connect refused or
 *   timed out, headers and body timeouts, reset before or after the
 *   response head), so core/errors.ts maps them to the same answers.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import net, { type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import tls, { type ConnectionOptions } from 'node:tls';
import { forwardableTrailers } from './request-trailers.js';
import { H1Error } from '../http1/errors.js';
import type { RawHeaders, TrailerSource, UpstreamDispatcher, UpstreamHandler, UpstreamRequest } from './dispatch.js';

const {
  NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_FLAG_END_STREAM,
} = http2.constants;

/** The streams a session is assumed to allow until the backend's SETTINGS say. */
const DEFAULT_MAX_STREAMS = 100;

export interface H2PoolOptions {
  /** connectTimeout: ms to establish the connection (and TLS); 0 for none. */
  connectTimeout: number;
  /** headersTimeout: ms from the stream opening to the response head; 0 for none. */
  headersTimeout: number;
  /** bodyTimeout: ms of silence allowed within the response body (not counted while the client holds it back); 0 for none. */
  bodyTimeout: number;
  /** tls: the TLS options of an https backend (ALPN is set here); null for h2c. */
  tls: ConnectionOptions | null;
  /** fallback: makes the HTTP/1.1 pool for an https backend that does not offer h2 (null: such a backend is an error). */
  fallback: (() => UpstreamDispatcher) | null;
  /** pingInterval: ms between liveness PINGs on a session; 0 for none. */
  pingInterval?: number;
  /** pingTimeout: ms a PING may go unanswered before the session is taken for dead. */
  pingTimeout?: number;
  /** idleTimeout: a session with no stream for this long is closed. */
  idleTimeout?: number;
}

/** H2ErrorCode: the codes this client adds to the HTTP/1.1 client's (core/errors.ts maps them). */
export type H2ErrorCode = 'H2_REFUSED_STREAM' | 'H2_NO_H2';

export class H2Error extends Error {
  constructor(readonly code: H2ErrorCode, message: string) {
    super(message);
    this.name = 'H2Error';
  }
}

/** isGrpc: the request is a gRPC call (its content type), which needs `te: trailers` on the way. */
function isGrpcContentType(value: string): boolean {
  return value.length >= 16 && value.slice(0, 16).toLowerCase() === 'application/grpc';
}

/**
 * requestHeaders turns the proxy's flat header list (Host first: see
 * proxy/headers.ts) into an HTTP/2 header object: Host becomes
 * `:authority`; repeated names become arrays (sent as separate fields).
 * Connection-specific fields were removed by the header pass already.
 */
export function requestHeaders(request: UpstreamRequest, scheme: string): OutgoingHttpHeaders {
  const list = request.headers;
  const out: OutgoingHttpHeaders = { ':method': request.method, ':path': request.path, ':scheme': scheme, ':authority': list[1] ?? '' };
  for (let i = 2; i < list.length; i += 2) {
    const name = list[i]!.toLowerCase();
    const value = list[i + 1]!;
    if (name === 'host') continue;
    if (name === 'content-type' && isGrpcContentType(value)) out.te = 'trailers';
    const seen = out[name];
    if (seen === undefined) out[name] = value;
    else if (Array.isArray(seen)) seen.push(value);
    else out[name] = [String(seen), value];
  }
  // CONNECT has neither :scheme nor :path (RFC 9113 8.5); it is not proxied here, but keep Node from refusing it.
  if (request.method === 'CONNECT') { delete out[':scheme']; delete out[':path']; }
  return out;
}

/**
 * sendRequestTrailers ends a request stream with the client's trailers
 * (none: an empty end of stream). A field node:http2 refuses is dropped
 * with the rest rather than failing the request.
 */
function sendRequestTrailers(stream: ClientHttp2Stream, source: TrailerSource): void {
  if (stream.destroyed) return;
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of forwardableTrailers(source)) {
    const seen = out[name];
    out[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [String(seen), value];
  }
  try {
    stream.sendTrailers(out);
  } catch {
    try { stream.sendTrailers({}); } catch { /* the stream is gone: its 'close' reports it */ }
  }
}

/** flatHeaders: an HTTP/2 header object as [name, value...], without pseudo-headers. */
export function flatHeaders(headers: IncomingHttpHeaders): string[] {
  const out: string[] = [];
  for (const name of Object.keys(headers)) {
    if (name.charCodeAt(0) === 58 /* ":" */) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, String(value));
  }
  return out;
}

/** H2Stream is one dispatched request, from dispatch to its one onComplete or onError. */
class H2Stream {
  session: H2Session | null = null;
  stream: ClientHttp2Stream | null = null;
  done = false;
  responded = false;
  paused = false;
  trailers: string[] | null = null;
  /** error: the stream's 'error', reported when it closes. */
  error: Error | null = null;
  #timer: NodeJS.Timeout | null = null;
  #body: Readable | null = null;
  readonly abort: (err?: Error) => void;
  readonly resume: () => void;

  constructor(
    readonly request: UpstreamRequest,
    readonly handler: UpstreamHandler,
    private readonly headersTimeout: number,
    private readonly bodyTimeout: number,
  ) {
    this.abort = (err) => {
      if (this.done) return;
      this.session?.forget(this);
      const stream = this.stream;
      if (stream !== null && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
      this.fail(err ?? new H1Error('UND_ERR_ABORTED', 'request aborted'));
    };
    this.resume = () => {
      if (!this.paused || this.done) return;
      this.paused = false;
      this.#armBody();
      this.stream?.resume();
    };
  }

  /** start opens the stream on a ready session; false when the session refused it (GOAWAY came first). */
  start(session: H2Session, h2: ClientHttp2Session): boolean {
    const request = this.request;
    const body = request.body ?? null;
    let stream: ClientHttp2Stream;
    // With a body that may end with trailers, the stream waits for them ('wantTrailers') before it ends.
    const trailers = body === null ? undefined : request.trailers;
    try {
      stream = h2.request(requestHeaders(request, session.scheme), trailers === undefined ? { endStream: body === null } : { endStream: false, waitForTrailers: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ERR_HTTP2_GOAWAY_SESSION' || code === 'ERR_HTTP2_INVALID_SESSION' || code === 'ERR_HTTP2_OUT_OF_STREAMS') return false;
      this.fail(new H1Error('UND_ERR_INVALID_ARG', (err as Error).message));
      return true;
    }
    this.session = session;
    this.stream = stream;
    stream.on('response', this.#onResponse);
    stream.on('data', this.#onData);
    stream.on('trailers', this.#onTrailers);
    stream.on('end', this.#onEnd);
    stream.on('error', this.#onError);
    stream.on('close', this.#onClose);
    if (trailers !== undefined) stream.once('wantTrailers', () => sendRequestTrailers(stream, trailers));
    this.#arm(this.headersTimeout, 'UND_ERR_HEADERS_TIMEOUT', `no response headers within ${this.headersTimeout}ms`);
    if (body !== null) {
      if (Buffer.isBuffer(body)) stream.end(body);
      else this.#sendBody(body, stream);
    }
    return true;
  }

  /** #sendBody copies a streamed body with back-pressure both ways. */
  #sendBody(body: Readable, stream: ClientHttp2Stream): void {
    this.#body = body;
    const onData = (chunk: Buffer): void => { if (!stream.write(chunk)) body.pause(); };
    const onDrain = (): void => { body.resume(); };
    const onEnd = (): void => { cleanup(); stream.end(); };
    const onError = (err: Error): void => { cleanup(); this.abort(err); };
    const onClose = (): void => { if (!body.readableEnded) onError(new H1Error('UND_ERR_ABORTED', 'the request body ended before it was complete')); };
    const cleanup = (): void => {
      body.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      stream.off('drain', onDrain);
    };
    this.#stopBody = () => { cleanup(); body.on('error', noop); body.resume(); };
    body.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
    stream.on('drain', onDrain);
    if (body.readableEnded) onEnd();
    else body.resume();
  }

  #stopBody: (() => void) | null = null;

  #onResponse = (headers: IncomingHttpHeaders, flags: number): void => {
    if (this.done) return;
    const status = Number(headers[':status']);
    if (status < 200) return; // 1xx: nothing to forward (as the HTTP/1.1 client)
    this.responded = true;
    this.#clearTimer();
    const goOn = this.handler.onHeaders(status, flatHeaders(headers), this.resume, '');
    if (this.done) return;
    if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) return; // 'end' completes it
    if (goOn === false) {
      this.paused = true;
      this.stream!.pause();
    } else {
      this.#armBody();
    }
  };

  #onData = (chunk: Buffer): void => {
    if (this.done) return;
    if (!this.paused) this.#armBody();
    if (this.handler.onData(chunk) === false && !this.done) {
      this.paused = true;
      this.#clearTimer();
      this.stream!.pause();
    }
  };

  #onTrailers = (trailers: IncomingHttpHeaders): void => {
    this.trailers = flatHeaders(trailers);
  };

  #onEnd = (): void => {
    if (this.done) return;
    if (!this.responded) return; // ended without a response head: 'close' reports it
    // node:http2 ends the readable side of a stream that is reset or whose session dies, too: only
    // a stream still without a reset code ended with END_STREAM ('close' reports the others).
    const rstCode = this.stream!.rstCode;
    if (rstCode !== undefined && rstCode !== NGHTTP2_NO_ERROR) return;
    this.done = true;
    this.#clearTimer();
    this.#finishBody();
    this.session?.forget(this);
    try {
      this.handler.onComplete(this.trailers as RawHeaders | null);
    } catch (err) {
      process.emitWarning(err as Error);
    }
  };

  #onError = (err: Error): void => {
    this.error ??= err;
  };

  #onClose = (): void => {
    this.session?.forget(this);
    if (this.done) return;
    const stream = this.stream!;
    if (stream.rstCode === NGHTTP2_REFUSED_STREAM && !this.responded) {
      this.fail(new H2Error('H2_REFUSED_STREAM', 'the backend refused the stream (it never acted on it)'));
      return;
    }
    const cause = this.error;
    const code = (cause as NodeJS.ErrnoException | null)?.code;
    // A socket-level error of the session (ECONNRESET...) keeps its code; a stream reset is a reset.
    if (code !== undefined && code !== 'ERR_HTTP2_STREAM_ERROR' && code !== 'ERR_HTTP2_SESSION_ERROR') this.fail(cause!);
    else this.fail(new H1Error('UND_ERR_SOCKET', `stream closed (code ${stream.rstCode})${this.responded ? ' mid-response' : ''}`));
  };

  /** #finishBody: the response is over; a request body still being sent is not wanted any more. */
  #finishBody(): void {
    const stop = this.#stopBody;
    this.#stopBody = null;
    if (stop !== null && this.#body !== null && !this.#body.readableEnded) stop();
  }

  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.#clearTimer();
    this.#finishBody();
    const stream = this.stream;
    if (stream !== null && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
    this.handler.onError(err);
  }

  #armBody(): void {
    this.#arm(this.bodyTimeout, 'UND_ERR_BODY_TIMEOUT', `response body stalled for ${this.bodyTimeout}ms`);
  }

  #arm(ms: number, code: 'UND_ERR_HEADERS_TIMEOUT' | 'UND_ERR_BODY_TIMEOUT', message: string): void {
    if (ms <= 0) {
      this.#clearTimer();
      return;
    }
    if (this.#timer !== null && this.#timerCode === code) {
      this.#timer.refresh();
      return;
    }
    this.#clearTimer();
    this.#timerCode = code;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.abort(new H1Error(code, message));
    }, ms).unref();
  }

  #timerCode = '';

  #clearTimer(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}

const noop = (): void => undefined;

/** H2Session is one connection to the backend: connecting, then an HTTP/2 session, until GOAWAY or close. */
class H2Session {
  h2: ClientHttp2Session | null = null;
  /** streams: the requests started on this session or waiting for it to be ready. */
  readonly streams = new Set<H2Stream>();
  readonly waiting: H2Stream[] = [];
  /** closing: GOAWAY (either way) or close: no new streams. */
  closing = false;
  maxStreams = DEFAULT_MAX_STREAMS;
  readonly socket: Socket;
  #connectTimer: NodeJS.Timeout | null = null;
  #pingTimer: NodeJS.Timeout | null = null;
  #idleTimer: NodeJS.Timeout | null = null;
  #ended = false;

  constructor(private readonly pool: H2Pool, readonly scheme: 'http' | 'https', host: string, port: number, private readonly options: Required<H2PoolOptions>) {
    const tlsOptions = options.tls;
    if (tlsOptions === null) {
      this.socket = net.connect({ host, port, noDelay: true });
      this.socket.once('connect', this.#onConnected);
    } else {
      this.socket = tls.connect({ ...tlsOptions, host, port, ALPNProtocols: options.fallback === null ? ['h2'] : ['h2', 'http/1.1'] });
      this.socket.setNoDelay(true);
      this.socket.once('secureConnect', this.#onConnected);
    }
    this.socket.on('error', this.#onSocketError);
    this.socket.once('close', this.#onSocketClose);
    if (options.connectTimeout > 0) {
      this.#connectTimer = setTimeout(() => this.#failConnect(new H1Error('UND_ERR_CONNECT_TIMEOUT', `connect timeout (${options.connectTimeout}ms)`)), options.connectTimeout).unref();
    }
  }

  /** load: the streams it carries or will carry (what the limit counts). */
  get load(): number {
    return this.streams.size;
  }

  get ready(): boolean {
    return this.h2 !== null;
  }

  add(s: H2Stream): void {
    if (this.closing) {
      // Retired between the pool's choice and now (a failed connect retires it at once): another session takes it.
      this.pool.assign(s);
      return;
    }
    this.streams.add(s);
    s.session = this;
    this.#idle(false);
    if (this.h2 === null) {
      this.waiting.push(s);
      return;
    }
    if (!s.start(this, this.h2)) {
      // The session went away under us: the stream goes to another one.
      this.streams.delete(s);
      this.#markClosing();
      this.pool.assign(s);
    }
  }

  forget(s: H2Stream): void {
    if (!this.streams.delete(s)) return;
    const i = this.waiting.indexOf(s);
    if (i >= 0) this.waiting.splice(i, 1);
    if (this.streams.size === 0) {
      if (this.closing) this.h2?.close();
      else this.#idle(true);
    }
  }

  #onConnected = (): void => {
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    this.#connectTimer = null;
    const socket = this.socket;
    if (this.options.tls !== null && (socket as tls.TLSSocket).alpnProtocol !== 'h2') {
      // The backend speaks HTTP/1.1 only: this connection is not used; the pool falls back.
      const waiting = this.waiting.splice(0);
      this.streams.clear();
      this.#ended = true;
      socket.destroy();
      this.pool.fallBack(this, waiting);
      return;
    }
    const h2 = http2.connect(`${this.scheme}://${this.pool.authority}`, {
      createConnection: () => socket,
      settings: { enablePush: false },
    });
    this.h2 = h2;
    h2.on('remoteSettings', (settings) => {
      const max = settings.maxConcurrentStreams;
      if (max !== undefined) this.maxStreams = Math.max(1, Math.min(max, 10_000));
    });
    h2.on('goaway', this.#markClosing);
    h2.on('error', noop); // reported to each stream through its own 'error' and 'close'
    h2.once('close', this.#onSessionClose);
    if (this.options.pingInterval > 0) this.#pingTimer = setInterval(this.#ping, this.options.pingInterval).unref();
    for (const s of this.waiting.splice(0)) {
      if (s.done) continue;
      if (!s.start(this, h2)) {
        this.streams.delete(s);
        this.#markClosing();
        this.pool.assign(s);
      }
    }
    if (this.streams.size === 0) this.#idle(true);
  };

  #ping = (): void => {
    const h2 = this.h2;
    if (h2 === null || h2.destroyed || h2.closed) return;
    const timer = setTimeout(() => h2.destroy(new H1Error('UND_ERR_SOCKET', `no PING answer within ${this.options.pingTimeout}ms`)), this.options.pingTimeout).unref();
    const sent = h2.ping((err) => {
      clearTimeout(timer);
      if (err !== null) h2.destroy(err);
    });
    if (!sent) clearTimeout(timer);
  };

  #markClosing = (): void => {
    if (this.closing) return;
    this.closing = true;
    this.pool.retire(this);
    if (this.streams.size === 0) this.h2?.close();
  };

  /** #idle: unreference an idle session (it must not keep the process up) and close it after idleTimeout. */
  #idle(idle: boolean): void {
    const h2 = this.h2;
    if (idle) {
      h2?.unref();
      if (this.options.idleTimeout > 0) {
        if (this.#idleTimer !== null) this.#idleTimer.refresh();
        else this.#idleTimer = setTimeout(() => { if (this.streams.size === 0) this.close(); }, this.options.idleTimeout).unref();
      }
      return;
    }
    h2?.ref();
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
  }

  #failConnect(err: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    // Out of the pool now, not when the socket's 'close' comes a tick later: a stream the pool assigned in
    // between (a retry dispatched from the failed stream's own onError) would wait in a session that never starts.
    this.closing = true;
    this.pool.retire(this);
    this.socket.destroy();
    this.#failWaiting(err);
  }

  #failWaiting(err: Error): void {
    for (const s of this.waiting.splice(0)) {
      this.streams.delete(s);
      s.fail(err);
    }
  }

  #onSocketError = (err: Error): void => {
    if (this.h2 === null) this.#failConnect(err);
  };

  #onSocketClose = (): void => {
    if (this.h2 === null) this.#failConnect(new H1Error('UND_ERR_SOCKET', 'the connection closed before HTTP/2 started'));
    this.#end();
  };

  #onSessionClose = (): void => {
    this.#end();
  };

  #end(): void {
    this.closing = true;
    this.pool.retire(this);
    this.#failWaiting(new H1Error('UND_ERR_SOCKET', 'the connection closed before HTTP/2 started'));
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    if (this.#pingTimer !== null) clearInterval(this.#pingTimer);
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#connectTimer = this.#pingTimer = this.#idleTimer = null;
    this.pool.forget(this);
  }

  /** close: GOAWAY from our side; streams in flight finish. */
  close(): void {
    this.closing = true;
    this.pool.retire(this);
    if (this.h2 !== null) this.h2.close();
    else this.#failConnect(new H1Error('UND_ERR_CLOSED', 'the pool is closed'));
  }

  destroy(err: Error): void {
    this.closing = true;
    this.#failWaiting(err);
    if (this.h2 !== null) this.h2.destroy(err);
    else this.#failConnect(err);
    this.socket.destroy();
  }
}

/** H2Pool is the HTTP/2 client of one backend: its sessions (and, after an ALPN refusal, its HTTP/1.1 fallback). */
export class H2Pool implements UpstreamDispatcher {
  readonly authority: string;
  readonly #host: string;
  readonly #port: number;
  readonly #scheme: 'http' | 'https';
  readonly #options: Required<H2PoolOptions>;
  /** #open: the sessions that take new streams; #all: every session not yet closed. */
  readonly #open: H2Session[] = [];
  readonly #all = new Set<H2Session>();
  #fallback: UpstreamDispatcher | null = null;
  #closing: 'closed' | 'destroyed' | null = null;
  #whenEmpty: (() => void)[] = [];

  constructor(url: URL, options: H2PoolOptions) {
    this.#scheme = options.tls === null ? 'http' : 'https';
    this.#host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    this.#port = url.port === '' ? (this.#scheme === 'https' ? 443 : 80) : Number(url.port);
    this.authority = url.host;
    this.#options = { pingInterval: 10_000, pingTimeout: 5_000, idleTimeout: 60_000, ...options };
  }

  /** protocol: what this backend speaks: "2", or "1.1" once ALPN chose HTTP/1.1. */
  get protocol(): '1.1' | '2' {
    return this.#fallback === null ? '2' : '1.1';
  }

  /** sessions counts the open sessions (tests, status). */
  get sessions(): number {
    return this.#all.size;
  }

  dispatch(request: UpstreamRequest, handler: UpstreamHandler): boolean {
    if (this.#closing !== null) {
      const err = this.#closing === 'destroyed' ? new H1Error('UND_ERR_DESTROYED', 'the pool was destroyed') : new H1Error('UND_ERR_CLOSED', 'the pool is closed');
      queueMicrotask(() => handler.onError(err));
      return false;
    }
    if (this.#fallback !== null) return this.#fallback.dispatch(request, handler);
    const o = this.#options;
    const s = new H2Stream(request, handler, request.headersTimeout ?? o.headersTimeout, request.bodyTimeout ?? o.bodyTimeout);
    handler.onConnect(s.abort);
    if (s.done) return true;
    this.assign(s);
    return true;
  }

  /** assign puts a stream on a session with room, opening one when all are full. */
  assign(s: H2Stream): void {
    if (s.done) return;
    if (this.#closing !== null) {
      s.fail(new H1Error('UND_ERR_CLOSED', 'the pool is closed'));
      return;
    }
    if (this.#fallback !== null) {
      this.#fallback.dispatch(s.request, s.handler);
      return;
    }
    let session: H2Session | undefined;
    for (const candidate of this.#open) {
      if (candidate.load < candidate.maxStreams) { session = candidate; break; }
    }
    if (session === undefined) {
      session = new H2Session(this, this.#scheme, this.#host, this.#port, this.#options);
      this.#open.push(session);
      this.#all.add(session);
    }
    session.add(s);
  }

  // --- called by sessions ----------------------------------------------

  /** retire: the session takes no new streams (GOAWAY or close). */
  retire(session: H2Session): void {
    const i = this.#open.indexOf(session);
    if (i >= 0) this.#open.splice(i, 1);
  }

  forget(session: H2Session): void {
    this.retire(session);
    if (!this.#all.delete(session)) return;
    if (this.#closing !== null && this.#all.size === 0) for (const resolve of this.#whenEmpty.splice(0)) resolve();
  }

  /** fallBack: the backend chose HTTP/1.1 through ALPN; it and the requests that waited go to the HTTP/1.1 pool. */
  fallBack(session: H2Session, waiting: H2Stream[]): void {
    this.forget(session);
    if (this.#fallback === null) {
      const make = this.#options.fallback;
      if (make === null) {
        for (const s of waiting) s.fail(new H2Error('H2_NO_H2', 'the backend does not offer HTTP/2 (ALPN h2)'));
        return;
      }
      this.#fallback = make();
      // Sessions still connecting will find out for themselves; none take new streams.
      this.#open.length = 0;
    }
    for (const s of waiting) if (!s.done) this.#fallback.dispatch(s.request, s.handler);
  }

  close(): Promise<void> {
    this.#closing ??= 'closed';
    for (const session of [...this.#all]) session.close();
    return Promise.all([this.#empty(), this.#fallback?.close()]).then(noop);
  }

  destroy(): Promise<void> {
    this.#closing = 'destroyed';
    for (const session of [...this.#all]) session.destroy(new H1Error('UND_ERR_DESTROYED', 'the pool was destroyed'));
    return Promise.all([this.#empty(), this.#fallback?.destroy()]).then(noop);
  }

  #empty(): Promise<void> {
    if (this.#all.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#whenEmpty.push(resolve));
  }
}
