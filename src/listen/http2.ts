/**
 * HTTP/2 listeners, on node:http2's compatibility API (the same request
 * handler serves HTTP/1 and HTTP/2):
 *   - TLS: ALPN offers "h2" and "http/1.1" on the same port; HTTP/1.1
 *     clients get Node's HTTP/1 server with the usual limits.
 *   - plain (h2c): the first bytes of a connection decide: the HTTP/2
 *     connection preface goes to the HTTP/2 server, anything else to the
 *     HTTP/1 server. (Upgrading an HTTP/1.1 request to h2c is not supported.)
 *
 * HTTP/2 sessions are bounded (concurrent streams, header list size), idle
 * ones are closed after `limits.keepAliveTimeout`, and draining sends GOAWAY
 * so that streams in flight finish while no new ones start. Rapid resets
 * (CVE-2023-44487) are limited by nghttp2 itself (a GOAWAY after a burst of
 * 1000 resets, then 33 per second); each reset stream cancels its upstream
 * request through the response's 'close' event, as an HTTP/1 abort does.
 */
import type { LimitsSource } from './limits.js';
import http from 'node:http';
import http2, { type Http2SecureServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { onClientError } from './client-error.js';
import { ClientWatch } from './client-watch.js';
import { createWatchedHttpServer, handedFieldCount, http1Options, tlsHandshakeTimeout, type ListenerFactoryParts, type ListenerServer } from './server.js';
import { register, unregister, type Swept } from './sweep.js';
import type { TlsTermination } from './tls.js';

/** MAX_CONCURRENT_STREAMS per session: enough for browsers (which open ~100), bounded for abusers. */
export const MAX_CONCURRENT_STREAMS = 250;

/** The client connection preface every HTTP/2 connection starts with (RFC 9113 3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

type Http2Handler = (req: Http2ServerRequest, res: Http2ServerResponse) => void;

/**
 * http2Options: node's HTTP/2 resets (ENHANCE_YOUR_CALM) a stream with more
 * header fields than maxHeaderListPairs (default 128, pseudo-header fields
 * included) before JS sees it. It also enforces maxHeaderListSize, where
 * each field counts 32 octets besides its name and value (RFC 9113 6.5.2),
 * so no head within that size has more than maxHeaderSize / 32 fields: with
 * that many pairs allowed (and the five pseudo-header fields), every excess
 * over `limits.maxHeaderCount` reaches the pipeline, which answers 431.
 */
function http2Options(rt: LimitsSource): { settings: http2.Settings; maxHeaderListPairs: number } {
  const pairs = Math.max(handedFieldCount(rt.limits), Math.ceil(rt.limits.maxHeaderSize / 32));
  return { settings: http2Settings(rt), maxHeaderListPairs: pairs + 5 };
}

function http2Settings(rt: LimitsSource): http2.Settings {
  return {
    maxConcurrentStreams: MAX_CONCURRENT_STREAMS,
    maxHeaderListSize: rt.limits.maxHeaderSize,
    enablePush: false,
  };
}

/** SessionWatch is what the sweep knows of one session. */
interface SessionWatch {
  readonly startedAt: number;
  /** settled: the client's SETTINGS came (the preface is complete). */
  settled: boolean;
  /** idleSince: when the last open stream closed (or the session opened); 0 while streams are open. */
  idleSince: number;
  /** readWhenIdle: the socket's bytes read when it went idle, -1 once more came (a stream's head under way). */
  readWhenIdle: number;
  /** headSince: when bytes first came while idle (a head under way), 0 if none. */
  headSince: number;
  readonly streams: Map<ServerHttp2Stream, StreamWatch>;
}

/** StreamWatch is what the sweep knows of one open stream. */
interface StreamWatch {
  readonly startedAt: number;
  /** pending, movedAt: the stream's unsent output, and when it last changed. */
  pending: number;
  movedAt: number;
}

const timedOut = (what: string): Error => Object.assign(new Error(what), { code: 'ERR_HTTP2_TIMEOUT' });

/**
 * SessionTracker holds the open HTTP/2 sessions of a listener and, on the
 * listeners' shared sweep (sweep.ts), bounds them as the HTTP/1 limits
 * bound a connection:
 *   - a session that does not complete its preface (the client's SETTINGS)
 *     within `limits.headersTimeout` is destroyed;
 *   - an idle session (no open stream) is closed (GOAWAY) after
 *     `limits.keepAliveTimeout`; bytes arriving while idle are a stream's
 *     head under way (HEADERS and CONTINUATION frames, which nothing may
 *     interleave), which must complete within `limits.headersTimeout`;
 *   - a stream whose request (body included) is not complete within
 *     `limits.requestTimeout` is answered 408, or reset once its response
 *     started;
 *   - a stream whose response the client does not take (a zero or closed
 *     flow-control window) for `limits.clientIdleTimeout` is reset.
 * Closing a stream fires its response's 'close', which aborts its backend
 * request (exchange.ts). The client's end of the connection (FIN) destroys
 * the session at once: HTTP/2 has no half-closed connection, and a session
 * left waiting on its flow-control windows would hold its streams and their
 * backend connections.
 */
class SessionTracker implements Swept {
  readonly #sessions = new Map<ServerHttp2Session, SessionWatch>();
  #draining = false;
  #registered = false;

  constructor(private readonly rt: LimitsSource) {}

  /** track follows the sessions of an HTTP/2 server; `startOf` gives a session's start (its connection's, for h2c). */
  track(server: Http2Server | Http2SecureServer, startOf: (session: ServerHttp2Session) => number = () => Date.now()): void {
    server.on('session', (session: ServerHttp2Session) => {
      if (this.#draining) { session.close(); return; }
      const w: SessionWatch = { startedAt: startOf(session), settled: false, idleSince: Date.now(), readWhenIdle: 0, headSince: 0, streams: new Map() };
      this.#sessions.set(session, w);
      if (!this.#registered) {
        this.#registered = true;
        register(this);
      }
      const socket = session.socket;
      session.once('close', () => this.#sessions.delete(session));
      session.once('remoteSettings', () => { w.settled = true; });
      socket.once('end', () => session.destroy());
      session.on('stream', (stream: ServerHttp2Stream) => {
        w.idleSince = 0;
        w.headSince = 0;
        w.streams.set(stream, { startedAt: Date.now(), pending: 0, movedAt: Date.now() });
        stream.once('close', () => {
          w.streams.delete(stream);
          if (w.streams.size === 0 && !session.destroyed) {
            w.idleSince = Date.now();
            w.readWhenIdle = socket.bytesRead;
          }
        });
      });
    });
  }

  sweep(now: number): void {
    const { headersTimeout, keepAliveTimeout, requestTimeout, clientIdleTimeout } = this.rt.limits;
    for (const [session, w] of this.#sessions) {
      if (session.destroyed) { this.#sessions.delete(session); continue; }
      if (!w.settled) {
        if (headersTimeout > 0 && now - w.startedAt >= headersTimeout) session.destroy(timedOut('no HTTP/2 preface within the headers timeout'));
        continue;
      }
      if (w.idleSince > 0) {
        if (w.headSince === 0 && session.socket.bytesRead !== w.readWhenIdle) w.headSince = now;
        if (keepAliveTimeout > 0 && now - w.idleSince >= keepAliveTimeout && !session.closed) session.close();
        else if (w.headSince > 0 && headersTimeout > 0 && now - w.headSince >= headersTimeout) session.destroy();
        continue;
      }
      for (const [stream, s] of w.streams) this.#sweepStream(stream, s, now, requestTimeout, clientIdleTimeout);
    }
  }

  #sweepStream(stream: ServerHttp2Stream, s: StreamWatch, now: number, requestTimeout: number, clientIdleTimeout: number): void {
    if (requestTimeout > 0 && now - s.startedAt >= requestTimeout && !stream.endAfterHeaders && stream.state.remoteClose !== 1) {
      if (stream.headersSent) stream.close(http2.constants.NGHTTP2_CANCEL);
      else {
        const body = '408 Request Timeout: request timeout\n';
        stream.respond({ ':status': 408, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
        stream.end(body);
        // The rest of the upload is not wanted.
        stream.close(http2.constants.NGHTTP2_NO_ERROR);
      }
      return;
    }
    if (clientIdleTimeout <= 0) return;
    const pending = stream.writableLength;
    if (pending !== s.pending) {
      s.pending = pending;
      s.movedAt = now;
    } else if (pending > 0 && now - s.movedAt >= clientIdleTimeout) {
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }
  }

  /** closeIdle sends GOAWAY to every session: streams in flight finish, no new ones are accepted. */
  closeIdle(): void {
    this.#draining = true;
    for (const s of this.#sessions.keys()) if (!s.closed) s.close();
  }

  closeAll(): void {
    for (const s of this.#sessions.keys()) s.destroy();
    this.#sessions.clear();
    this.#stop();
  }

  #stop(): void {
    if (this.#registered) unregister(this);
    this.#registered = false;
  }

  /** stop ends the watch (the listener closed). */
  stop(): void {
    this.#stop();
  }
}

/**
 * createHttp2SecureServer is a TLS listener that speaks HTTP/2 (ALPN "h2")
 * and HTTP/1.1 on the same port.
 */
export function createHttp2SecureServer(rt: LimitsSource, parts: ListenerFactoryParts, tls: TlsTermination): ListenerServer {
  const limits = rt.limits;
  const h1 = http1Options(limits);
  const server = http2.createSecureServer({
    ...tls.serverOptions(),
    ...tlsHandshakeTimeout(limits),
    allowHTTP1: true,
    ...http2Options(rt),
    noDelay: true,
  }, parts.handler as unknown as Http2Handler);
  // HTTP/1.1 clients are served by Node's HTTP/1 machinery, which reads these properties from the server.
  Object.assign(server, {
    maxHeaderSize: h1.maxHeaderSize,
    headersTimeout: h1.headersTimeout,
    requestTimeout: h1.requestTimeout,
    keepAliveTimeout: h1.keepAliveTimeout,
    connectionsCheckingInterval: h1.connectionsCheckingInterval,
    requireHostHeader: true,
    maxHeadersCount: handedFieldCount(limits),
    ...(limits.maxRequestsPerSocket > 0 ? { maxRequestsPerSocket: limits.maxRequestsPerSocket } : {}),
  });
  server.on('clientError', onClientError);
  if (parts.upgrade !== null) server.on('upgrade', parts.upgrade);
  tls.attach(server);
  const sessions = new SessionTracker(rt);
  sessions.track(server);
  // The HTTP/1.1 fallback connections are tracked by Node's HTTP/1 code on this server object, which
  // does not check their timeouts (no connections list on an HTTP/2 server): the watch does.
  const asHttp1 = server as unknown as http.Server;
  const watch = ClientWatch.attach(asHttp1, rt);
  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol !== 'h2') watch.expectHead(socket, Date.now() + rt.limits.headersTimeout);
  });
  server.on('close', () => sessions.stop());
  return Object.assign(server, {
    closeIdleConnections: () => { http.Server.prototype.closeIdleConnections.call(asHttp1); sessions.closeIdle(); },
    closeAllConnections: () => { http.Server.prototype.closeAllConnections.call(asHttp1); sessions.closeAll(); },
  });
}

/**
 * createH2cServer is a plain listener that speaks HTTP/1.1 and, to clients
 * that know it in advance, HTTP/2 (h2c). The HTTP/1 server is the one bound;
 * its connection handler is wrapped to hand HTTP/2 connections over.
 */
export function createH2cServer(rt: LimitsSource, parts: ListenerFactoryParts): ListenerServer {
  const { server, watch } = createWatchedHttpServer(rt, parts);
  const h2 = http2.createServer(http2Options(rt), parts.handler as unknown as Http2Handler);
  const sessions = new SessionTracker(rt);
  // When the connection being handed over was accepted (node:http2 makes its session at once, in
  // emit('connection')): its preface deadline counts from there, not from the sniff.
  let handingOver = 0;
  sessions.track(h2, () => handingOver || Date.now());
  server.on('close', () => sessions.stop());
  const http1Connection = server.listeners('connection')[0] as (socket: Socket) => void;
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    // Until the first bytes arrive the connection belongs to neither server: the head deadline
    // (the shared sweep's, kept for an HTTP/1 connection until its head is complete) bounds the wait.
    const accepted = Date.now();
    watch.expectHead(socket, accepted + rt.limits.headersTimeout);
    socket.on('error', onSniffError);
    let seen: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, PREFACE.length);
      const h2c = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (h2c && n < PREFACE.length) return; // a prefix of the preface: wait for more
      socket.removeListener('data', onData);
      socket.removeListener('error', onSniffError);
      // Put the bytes back. The HTTP/2 session reads what the socket has buffered when it starts;
      // the HTTP/1 parser gets it as a 'data' event once the socket flows again.
      socket.pause();
      socket.unshift(seen);
      if (h2c) {
        watch.forget(socket);
        handingOver = accepted;
        h2.emit('connection', socket);
        handingOver = 0;
      } else {
        http1Connection.call(server, socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
  });
  const closeIdleHttp1 = server.closeIdleConnections.bind(server);
  const closeAllHttp1 = server.closeAllConnections.bind(server);
  return Object.assign(server, {
    closeIdleConnections: () => { closeIdleHttp1(); sessions.closeIdle(); },
    closeAllConnections: () => { closeAllHttp1(); sessions.closeAll(); },
  });
}

function onSniffError(this: Socket): void {
  this.destroy();
}
