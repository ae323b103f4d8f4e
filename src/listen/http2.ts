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
import http2, { type Http2SecureServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import { onClientError } from './client-error.js';
import { createHttpServer, http1Options, type ListenerFactoryParts, type ListenerServer } from './server.js';
import type { TlsTermination } from './tls.js';

/** MAX_CONCURRENT_STREAMS per session: enough for browsers (which open ~100), bounded for abusers. */
export const MAX_CONCURRENT_STREAMS = 250;

/** The client connection preface every HTTP/2 connection starts with (RFC 9113 3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

type Http2Handler = (req: Http2ServerRequest, res: Http2ServerResponse) => void;

function http2Settings(rt: LimitsSource): http2.Settings {
  return {
    maxConcurrentStreams: MAX_CONCURRENT_STREAMS,
    maxHeaderListSize: rt.limits.maxHeaderSize,
    enablePush: false,
  };
}

/**
 * SessionTracker holds the open HTTP/2 sessions of a listener: it closes a
 * session idle (no open stream) for `idleMs`, and closes all of them on
 * drain, gracefully (GOAWAY) or at once.
 */
class SessionTracker {
  readonly #sessions = new Set<ServerHttp2Session>();
  #draining = false;

  constructor(private readonly idleMs: number) {}

  track(server: Http2Server | Http2SecureServer): void {
    server.on('session', (session: ServerHttp2Session) => {
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
      if (this.#draining) { session.close(); return; }
      if (this.idleMs <= 0) return;
      // One timer per session, re-armed each time the last open stream closes; it does nothing
      // if it fires while streams are open. (Http2Session#setTimeout measures frame inactivity:
      // it fires while a stream waits quietly on its backend and was not seen to re-arm after.)
      let open = 0;
      const idle = setTimeout(() => { if (open === 0) session.close(); }, this.idleMs).unref();
      const streamClosed = (): void => { if (--open === 0) idle.refresh(); };
      session.on('stream', (stream) => {
        open++;
        stream.once('close', streamClosed);
      });
      session.once('close', () => clearTimeout(idle));
    });
  }

  /** closeIdle sends GOAWAY to every session: streams in flight finish, no new ones are accepted. */
  closeIdle(): void {
    this.#draining = true;
    for (const s of this.#sessions) if (!s.closed) s.close();
  }

  closeAll(): void {
    for (const s of this.#sessions) s.destroy();
    this.#sessions.clear();
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
    allowHTTP1: true,
    settings: http2Settings(rt),
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
    ...(limits.maxRequestsPerSocket > 0 ? { maxRequestsPerSocket: limits.maxRequestsPerSocket } : {}),
  });
  server.on('clientError', onClientError);
  if (parts.upgrade !== null) server.on('upgrade', parts.upgrade);
  tls.attach(server);
  const sessions = new SessionTracker(limits.keepAliveTimeout);
  sessions.track(server);
  // The HTTP/1.1 fallback connections are tracked by Node's HTTP/1 code on this server object.
  const asHttp1 = server as unknown as http.Server;
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
  const limits = rt.limits;
  const server = createHttpServer(rt, parts);
  const h2 = http2.createServer({ settings: http2Settings(rt) }, parts.handler as unknown as Http2Handler);
  const sessions = new SessionTracker(limits.keepAliveTimeout);
  sessions.track(h2);
  const http1Connection = server.listeners('connection')[0] as (socket: Socket) => void;
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    // Until the first bytes arrive the connection belongs to neither server: bound the wait.
    socket.setTimeout(limits.headersTimeout, () => socket.destroy());
    socket.on('error', onSniffError);
    let seen: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, PREFACE.length);
      const h2c = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (h2c && n < PREFACE.length) return; // a prefix of the preface: wait for more
      socket.removeListener('data', onData);
      socket.removeListener('error', onSniffError);
      socket.setTimeout(0);
      // Put the bytes back. The HTTP/2 session reads what the socket has buffered when it starts;
      // the HTTP/1 parser gets it as a 'data' event once the socket flows again.
      socket.pause();
      socket.unshift(seen);
      if (h2c) {
        h2.emit('connection', socket);
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
