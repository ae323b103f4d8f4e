/**
 * ClientWatch bounds slow HTTP/1 clients on one node:http server (plain,
 * TLS, or the HTTP/1 side of an HTTP/2 listener), on the shared sweep
 * (sweep.ts), where node:http's own checks do not reach or are too coarse:
 *
 *   - a head deadline for connections node:http got late (a hand-off from
 *     the fast path or the h2c sniffer, which had already waited for the
 *     first bytes: node:http's clock would start again from zero) or not
 *     at all (the HTTP/1.1 fallback of a TLS HTTP/2 listener, which node
 *     does not check): 408 when no complete head came within
 *     `limits.headersTimeout` of the connection's start;
 *   - the request deadline (`limits.requestTimeout`, body included) on the
 *     same footing: 408 if no response started, else the connection is cut;
 *   - `limits.clientIdleTimeout`: a request in progress whose client moves
 *     no byte while the proxy waits on it (an upload that stalls, or a
 *     response it does not read) for that long has its connection
 *     destroyed, which aborts the backend request (exchange.ts).
 *
 * Only connections in one of these states are in the watch's map, so the
 * sweep visits what may be late, not every open connection.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { onClientError } from './client-error.js';
import type { LimitsSource } from './limits.js';
import { register, unregister, type Swept } from './sweep.js';

/** Watched is what the sweep knows of one connection. */
interface Watched {
  /** headBy: the time by which a complete head must have come; 0 once it did. */
  headBy: number;
  req: IncomingMessage | null;
  res: ServerResponse | null;
  /** startedAt: when the current request's head was complete. */
  startedAt: number;
  /** moved: bytes read plus bytes handed to the kernel, at the last sweep that saw them change. */
  moved: number;
  movedAt: number;
}

const timeoutError = (): NodeJS.ErrnoException => Object.assign(new Error('request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' });

/** moved counts a socket's bytes in both directions that actually reached or left the kernel. */
function movedBytes(socket: Socket): number {
  return socket.bytesRead + socket.bytesWritten - socket.writableLength;
}

export class ClientWatch implements Swept {
  readonly #watched = new Map<Socket, Watched>();
  #registered = false;

  constructor(private readonly rt: LimitsSource) {}

  /** attach follows the server's HTTP/1 requests; the server's close ends the watch. */
  static attach(server: Server, rt: LimitsSource): ClientWatch {
    const watch = new ClientWatch(rt);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => watch.#request(req, res));
    server.on('close', () => watch.stop());
    return watch;
  }

  /** expectHead gives a connection until `by` (a Date.now() time) to send a complete head. */
  expectHead(socket: Socket, by: number): void {
    if (this.rt.limits.headersTimeout <= 0) return;
    const w = this.#entry(socket);
    w.headBy = by;
  }

  /** forget stops watching a connection (it left HTTP/1, e.g. for HTTP/2). */
  forget(socket: Socket): void {
    this.#watched.delete(socket);
  }

  #entry(socket: Socket): Watched {
    let w = this.#watched.get(socket);
    if (w === undefined) {
      w = { headBy: 0, req: null, res: null, startedAt: 0, moved: 0, movedAt: 0 };
      this.#watched.set(socket, w);
      socket.once('close', () => this.#watched.delete(socket));
      if (!this.#registered) {
        this.#registered = true;
        register(this);
      }
    }
    return w;
  }

  #request(req: IncomingMessage, res: ServerResponse): void {
    if (req.httpVersionMajor === 2) return; // HTTP/2 streams: http2.ts watches sessions and streams
    const limits = this.rt.limits;
    const socket = req.socket;
    if (limits.requestTimeout <= 0 && limits.clientIdleTimeout <= 0) {
      this.#watched.delete(socket);
      return;
    }
    const w = this.#entry(socket);
    const now = Date.now();
    w.headBy = 0;
    w.req = req;
    w.res = res;
    w.startedAt = now;
    w.moved = movedBytes(socket);
    w.movedAt = now;
    res.once('finish', () => {
      if (w.res !== res) return;
      // Done with this request: the next one is node:http's (keep-alive, headers timeout) until it comes.
      this.#watched.delete(socket);
    });
  }

  sweep(now: number): void {
    const { headersTimeout, requestTimeout, clientIdleTimeout } = this.rt.limits;
    for (const [socket, w] of this.#watched) {
      if (w.req === null) {
        if (w.headBy > 0 && headersTimeout > 0 && now >= w.headBy) this.#timedOut(socket, null);
        continue;
      }
      const req = w.req;
      const res = w.res!;
      if (requestTimeout > 0 && !req.complete && now - w.startedAt >= requestTimeout) {
        this.#timedOut(socket, res);
        continue;
      }
      if (clientIdleTimeout <= 0) continue;
      const moved = movedBytes(socket);
      if (moved !== w.moved) {
        w.moved = moved;
        w.movedAt = now;
        continue;
      }
      // Waiting on the client: output it does not take, or a body it does not send (unread input is ours).
      const waiting = socket.writableLength > 0 || (!req.complete && req.readableLength === 0);
      if (waiting && now - w.movedAt >= clientIdleTimeout) {
        this.#watched.delete(socket);
        socket.destroy();
      }
    }
  }

  /** #timedOut answers 408 while no response has started; otherwise it can only cut the connection. */
  #timedOut(socket: Socket, res: ServerResponse | null): void {
    this.#watched.delete(socket);
    if (res !== null && res.headersSent) {
      socket.destroy();
      return;
    }
    onClientError(timeoutError(), socket);
    // The client may not read the answer either: it gets a moment, not a connection.
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  stop(): void {
    this.#watched.clear();
    if (this.#registered) unregister(this);
    this.#registered = false;
  }
}
