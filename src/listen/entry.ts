/**
 * The listeners' side of ProxyEntry: node:http's request and upgrade
 * listeners, which read what only the server knows about a request (its
 * peer, whether it came on an HTTP/2 stream, HTTP/2's :authority and end of
 * stream) and hand it to the proxy as arguments.
 *
 * HTTP/2 is recognised by the transport (the compatibility API's request
 * class), never by the version in a request line: node:http accepts
 * `GET / HTTP/2.0` from an HTTP/1 client, and such a request has no stream.
 * Each entry runs the proxy inside a try/catch (guard.ts), so that an
 * exception ends one request and never the process.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { Http2ServerRequest } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { ProxyEntry } from '../core/downstream.js';
import { requestFailed, upgradeFailed, type GuardLog } from './guard.js';
import type { UpgradeListener } from './server.js';

/** servedVersion: an HTTP/1 request of a version the proxy serves (1.0 or 1.1); the others reach the proxy, which refuses them. */
function servedVersion(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 1 && req.httpVersionMinor <= 1;
}

export function requestListener(entry: ProxyEntry, log: GuardLog = null): RequestListener {
  return function onRequest(req: IncomingMessage, res: ServerResponse): void {
    try {
      if (req instanceof Http2ServerRequest) {
        onStream(entry, req, res, log);
        return;
      }
      // At maxRequestsPerSocket node:http writes "Connection: close" but keeps the connection open
      // (answering the next request 503): close it, as the header says.
      if ((res as { maxRequestsOnConnectionReached?: boolean }).maxRequestsOnConnectionReached === true) res.shouldKeepAlive = false;
      if (servedVersion(req) && entry.isInternal(req.url!)) {
        entry.internal(req, res);
        return;
      }
      entry.proxy(req, res, req.socket.remoteAddress ?? '', req, undefined, false);
    } catch (err) {
      requestFailed(log, err, req instanceof Http2ServerRequest ? 'http2' : 'http1', req, res);
    }
  };
}

/**
 * onStream hands over an HTTP/2 stream (the compatibility API presents it
 * as these objects): a stream ended with its headers has no body, and the
 * authority travels as a pseudo-header.
 */
function onStream(entry: ProxyEntry, req: Http2ServerRequest, res: ServerResponse, log: GuardLog): void {
  const asHttp1 = req as unknown as IncomingMessage;
  if (entry.isInternal(req.url)) {
    entry.internal(asHttp1, res);
    return;
  }
  // Dispatched after the frames read with its HEADERS (setImmediate): a stream the client reset in
  // the same read (rapid reset) is closed by then and never reaches a backend.
  setImmediate(proxyStream, entry, req, res, log);
}

function proxyStream(entry: ProxyEntry, req: Http2ServerRequest, res: ServerResponse, log: GuardLog): void {
  if (req.stream.destroyed) return;
  try {
    entry.proxy(req as unknown as IncomingMessage, res, req.socket.remoteAddress ?? '', req.stream.endAfterHeaders ? null : req, req.authority, true);
  } catch (err) {
    requestFailed(log, err, 'http2', req, res);
  }
}

/** upgradeListener is node:http's 'upgrade' listener, guarded like the request listener. */
export function upgradeListener(entry: ProxyEntry, log: GuardLog = null): UpgradeListener {
  return function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const written = (socket as { bytesWritten?: number }).bytesWritten ?? 0;
    try {
      entry.upgrade(req, socket, head);
    } catch (err) {
      upgradeFailed(log, err, req, socket, written);
    }
  };
}
