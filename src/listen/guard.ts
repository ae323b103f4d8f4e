/**
 * The last line of defence on the request path: an exception thrown while a
 * listener hands a request to the proxy ends that request, never the
 * process. Each entry (node:http's request and upgrade listeners, the fast
 * path's dispatch, HTTP/2 streams) calls the proxy inside a try/catch (free
 * in V8 until something throws) and, when something does, comes here: the
 * failure is logged with its stack, and the client gets a 500 if nothing of
 * the response has been sent yet, or a closed connection if it has (a
 * half-sent response can only be signalled by its abort).
 */
import type { Duplex } from 'node:stream';
import type { DownstreamResponse } from '../core/downstream.js';
import { ERRORS } from '../core/errors.js';
import type { Logger } from '../observe/log.js';

const CODE = 'FULCRUM_ERR_INTERNAL';
const BODY = `500 Internal Server Error: ${ERRORS[CODE].reason}\n`;

/** GuardLog is where failures go: the balancer's logger, or stderr when a listener was built without one. */
export type GuardLog = Pick<Logger, 'error'> | null;

function report(log: GuardLog, err: unknown, where: string, method: string | undefined, url: string | undefined): void {
  // pino's err serializer writes the stack.
  if (log !== null) log.error({ err, where, method, url }, 'request handling failed');
  else process.stderr.write(`fulcrum: request handling failed (${where} ${method ?? ''} ${url ?? ''}): ${err instanceof Error ? err.stack : String(err)}\n`);
}

/** requestFailed ends a request whose handling threw: a 500 if its head is not sent, else the connection. */
export function requestFailed(log: GuardLog, err: unknown, where: string, req: { method?: string | undefined; url?: string | undefined }, res: DownstreamResponse): void {
  report(log, err, where, req.method, req.url);
  try {
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    // The state of the connection is unknown after a failure: do not reuse it.
    res.shouldKeepAlive = false;
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    res.writeHead(500, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(Buffer.byteLength(BODY)),
      'x-fulcrum-error': CODE,
    });
    res.end(BODY);
  } catch {
    res.destroy();
  }
}

/**
 * upgradeFailed ends an upgrade request whose handling threw. `writtenBefore`
 * is the socket's byte count when the request arrived: if it has grown, a
 * head (a 101 or an answer) went out and only closing is left.
 */
export function upgradeFailed(log: GuardLog, err: unknown, req: { method?: string | undefined; url?: string | undefined }, socket: Duplex, writtenBefore: number): void {
  report(log, err, 'upgrade', req.method, req.url);
  const written = (socket as { bytesWritten?: number }).bytesWritten ?? 0;
  if (socket.destroyed || !socket.writable || written !== writtenBefore) {
    socket.destroy();
    return;
  }
  socket.end(`HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(BODY)}\r\nX-Fulcrum-Error: ${CODE}\r\nConnection: close\r\n\r\n${BODY}`);
}
