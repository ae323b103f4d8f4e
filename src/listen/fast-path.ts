/**
 * The fast path: plain proxied HTTP/1.1 requests served without node:http's
 * per-request machinery. The listener is still a node:http server (it
 * accepts, and draining and hand-offs go through it); the fast path takes
 * each new connection first and serves its requests for as long as they
 * are the common kind (fast-request.ts: a whole, plain, bodiless head for
 * a proxied path). At the first request that is not (a body, an upgrade, a
 * partial or malformed head, one of the balancer's own routes) it puts the
 * unread bytes back and hands the connection to node:http, which serves it
 * from there on exactly as it would have from the start. So everything
 * unusual keeps node:http's tested behaviour, and the fast path stays small.
 *
 * A connection serves one request at a time: bytes that arrive meanwhile
 * (pipelining) wait until the response is finished, and reading pauses
 * when 64 KiB of them wait. The listeners' shared sweep (sweep.ts), rather
 * than a timer per request, closes connections idle for longer than
 * `limits.keepAliveTimeout` (announcing a second less: limits.ts), answers 408
 * to those that sent nothing within `limits.headersTimeout`, and cuts those
 * whose response the client stopped reading for `limits.clientIdleTimeout`.
 * A connection handed to node:http before its first request keeps its head
 * deadline (client-watch.ts), so a slow head cannot restart the clock.
 */
import { announcedKeepAlive, type LimitsSource } from './limits.js';
import type { ProxyEntry } from '../core/downstream.js';
import type { Server, Socket } from 'node:net';
import { onClientError } from './client-error.js';
import { requestFailed, type GuardLog } from './guard.js';
import type { ClientWatch } from './client-watch.js';
import { register, unregister, type Swept } from './sweep.js';
import { FastRequest, parseRequestHead } from './fast-request.js';
import { FastResponse, type FastResponseOwner } from './fast-response.js';

/** FastPathHandler is the proxy's side of the fast path: internal targets are left to node:http. */
export type FastPathHandler = Pick<ProxyEntry, 'isInternal' | 'proxy'>;

/** Reading stops while this much pipelined input waits for the current response. */
const MAX_WAITING = 64 * 1024;

class FastConnection implements FastResponseOwner {
  /** idleSince: when the last response finished (or the connection opened); 0 while a request is served. */
  idleSince: number;
  /** moved, movedAt: the socket's bytes moved (see #sweep) and when they last changed, while a response is written. */
  moved = 0;
  movedAt = 0;
  #current: FastResponse | null = null;
  /** #waiting: bytes received while a response was in progress, or left after a head. */
  #waiting: Buffer | null = null;
  #served = false;
  #ending = false;
  #consuming = false;
  readonly #onData = (chunk: Buffer): void => this.#data(chunk);
  readonly #onEnd = (): void => this.#end();
  readonly #onClose = (): void => this.#close();
  readonly #onDrain = (): void => { this.#current?.emitDrain(); };

  readonly #peer: string;

  constructor(readonly socket: Socket, private readonly front: FastPath) {
    this.idleSince = Date.now();
    this.#peer = socket.remoteAddress ?? '';
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onClose);
    socket.on('drain', this.#onDrain);
    socket.on('error', onSocketError);
  }

  get idle(): boolean {
    return this.#current === null;
  }

  /** servedAny: the connection has served a request (an idle one is then timed by the keep-alive timeout). */
  get servedAny(): boolean {
    return this.#served;
  }

  get keepAliveHeader(): string {
    return this.front.keepAliveHeader();
  }

  #data(chunk: Buffer): void {
    if (this.#current !== null || this.#consuming) {
      this.#waiting = this.#waiting === null ? chunk : Buffer.concat([this.#waiting, chunk]);
      if (this.#waiting.length >= MAX_WAITING) this.socket.pause();
      return;
    }
    this.#waiting = chunk;
    this.#consume();
  }

  /** #consume serves the waiting requests one after another, as long as each is answered at once. */
  #consume(): void {
    this.#consuming = true;
    while (this.#waiting !== null && this.#current === null && !this.#ending) {
      const buf = this.#waiting;
      const head = parseRequestHead(buf, 0, this.front.rt.limits.maxHeaderSize);
      if (head === null || this.front.handler.isInternal(head.url)) {
        this.#consuming = false;
        this.#handOff(buf);
        return;
      }
      this.#waiting = head.end < buf.length ? buf.subarray(head.end) : null;
      this.#serve(head.method, head.url, head.rawHeaders, head.close);
    }
    this.#consuming = false;
    if (this.#current === null && !this.#ending) {
      this.idleSince = Date.now();
      if (this.socket.isPaused()) this.socket.resume();
    }
  }

  #serve(method: string, url: string, rawHeaders: string[], close: boolean): void {
    this.#served = true;
    this.idleSince = 0;
    this.moved = -1;
    // Draining is the exchange's to apply (a response that starts while draining is the last).
    const res = new FastResponse(this, method === 'HEAD', !close);
    this.#current = res;
    const req = new FastRequest(method, url, rawHeaders, this.socket, this.#peer);
    try {
      this.front.handler.proxy(req, res, this.#peer, null, undefined, false);
    } catch (err) {
      requestFailed(this.front.log, err, 'fast path', req, res);
    }
  }

  /** finished is called by the response when its last bytes are written. */
  finished(res: FastResponse, keepAlive: boolean): void {
    if (this.#current !== res) return;
    this.#current = null;
    process.nextTick(emitClose, res);
    if (!keepAlive) {
      this.#finishConnection();
      return;
    }
    if (!this.#consuming) this.#consume();
  }

  /** #finishConnection ends the connection once what was written is sent. */
  #finishConnection(): void {
    this.#ending = true;
    this.#waiting = null;
    this.socket.end();
  }

  /** #end: the client closed its side. As node:http does (httpAllowHalfOpen off), the connection ends too, a response in progress with it. */
  #end(): void {
    this.#finishConnection();
  }

  #close(): void {
    this.front.forget(this);
    const res = this.#current;
    this.#current = null;
    if (res !== null) res.emitClose();
  }

  /** #handOff gives the connection, with the bytes not yet served, to node:http. */
  #handOff(unread: Buffer): void {
    const socket = this.socket;
    // node:http's headers clock starts at the hand-off: the time already waited for a first request counts.
    if (!this.#served) this.front.watch?.expectHead(socket, this.idleSince + this.front.rt.limits.headersTimeout);
    socket.removeListener('data', this.#onData);
    socket.removeListener('end', this.#onEnd);
    socket.removeListener('close', this.#onClose);
    socket.removeListener('drain', this.#onDrain);
    socket.removeListener('error', onSocketError);
    this.front.forget(this);
    this.#waiting = null;
    // As the h2c sniffer does: node:http's parser gets the bytes put back as a 'data' event once the socket flows.
    socket.pause();
    socket.unshift(unread);
    this.front.handOff(socket);
    socket.resume();
  }

  /** timedOut answers 408 to a connection that sent no request in time, and closes it. */
  timedOut(): void {
    this.front.forget(this);
    this.#ending = true;
    onClientError(Object.assign(new Error('request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), this.socket);
  }

  /** stalled: a response is in progress and the client has moved no byte since `since` (bytes wait in the socket). */
  stalled(now: number, since: number): boolean {
    if (this.#current === null) return false;
    const socket = this.socket;
    const moved = socket.bytesRead + socket.bytesWritten - socket.writableLength;
    if (moved !== this.moved) {
      this.moved = moved;
      this.movedAt = now;
      return false;
    }
    return socket.writableLength > 0 && this.movedAt <= since;
  }

  /** closeIfIdle closes the connection when no request is in progress; it returns whether it did. */
  closeIfIdle(): boolean {
    if (this.#current !== null) return false;
    this.socket.destroy();
    return true;
  }
}

function emitClose(res: FastResponse): void {
  res.emitClose();
}

function onSocketError(this: Socket): void {
  this.destroy();
}

export class FastPath implements Swept {
  readonly #connections = new Set<FastConnection>();
  #swept = false;
  #keepAliveHeader = '';
  #keepAliveFor = -1;

  constructor(
    readonly rt: LimitsSource,
    readonly handler: FastPathHandler,
    readonly handOff: (socket: Socket) => void,
    /** log: where a request whose handling threw is reported (guard.ts). */
    readonly log: GuardLog = null,
    /** watch: the server's slow-client watch, which keeps the head deadline of a connection handed off early. */
    readonly watch: ClientWatch | null = null,
  ) {}

  /** install makes the fast path the first to see the server's new connections; node:http gets them on hand-off. */
  static install(server: Server, event: 'connection' | 'secureConnection', rt: LimitsSource, handler: FastPathHandler, log: GuardLog = null, watch: ClientWatch | null = null): FastPath {
    const nodeListener = server.listeners(event)[0] as (socket: Socket) => void;
    server.removeListener(event, nodeListener);
    const fast = new FastPath(rt, handler, (socket) => nodeListener.call(server, socket), log, watch);
    server.on(event, (socket: Socket) => fast.accept(socket));
    server.on('close', () => fast.stop());
    return fast;
  }

  accept(socket: Socket): void {
    // node:http counts a connection's requests from the moment it gets it, so a count that must
    // span a later hand-off is left to node:http from the start.
    if (this.rt.limits.maxRequestsPerSocket > 0) {
      this.handOff(socket);
      return;
    }
    this.#connections.add(new FastConnection(socket, this));
    if (!this.#swept) {
      this.#swept = true;
      register(this);
    }
  }

  forget(conn: FastConnection): void {
    this.#connections.delete(conn);
  }

  /** keepAliveHeader: the connection headers of a kept-alive response, as node:http writes them. */
  keepAliveHeader(): string {
    const limits = this.rt.limits;
    if (limits.keepAliveTimeout !== this.#keepAliveFor) {
      this.#keepAliveFor = limits.keepAliveTimeout;
      // No Keep-Alive header when there is no timeout to announce (node:http's rule).
      this.#keepAliveHeader = limits.keepAliveTimeout > 0
        ? `Connection: keep-alive\r\nKeep-Alive: timeout=${announcedKeepAlive(limits.keepAliveTimeout)}\r\n`
        : 'Connection: keep-alive\r\n';
    }
    return this.#keepAliveHeader;
  }

  /**
   * sweep (the shared sweep calls it) closes connections idle for longer
   * than the keep-alive timeout, answers 408 to those that sent nothing
   * within the headers timeout, and destroys those whose client has not
   * taken a byte of its response for the client idle timeout, which aborts
   * the backend request (0 turns any of them off).
   */
  sweep(now: number): void {
    const { keepAliveTimeout, headersTimeout, clientIdleTimeout } = this.rt.limits;
    for (const conn of this.#connections) {
      if (conn.idleSince === 0) {
        if (clientIdleTimeout > 0 && conn.stalled(now, now - clientIdleTimeout)) conn.socket.destroy();
        continue;
      }
      if (conn.servedAny) {
        if (keepAliveTimeout > 0 && now - conn.idleSince >= keepAliveTimeout) conn.closeIfIdle();
      } else if (headersTimeout > 0 && now - conn.idleSince >= headersTimeout) {
        conn.timedOut();
      }
    }
  }

  closeIdle(): void {
    for (const conn of this.#connections) conn.closeIfIdle();
  }

  closeAll(): void {
    for (const conn of this.#connections) conn.socket.destroy();
  }

  stop(): void {
    if (this.#swept) unregister(this);
    this.#swept = false;
  }
}
