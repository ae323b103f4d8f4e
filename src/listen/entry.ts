/**
 * The listeners' side of ProxyEntry: node:http's request listener, which
 * reads what only the server knows about a request (its peer, HTTP/2's
 * :authority and end of stream) and hands it to the proxy as arguments.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { ProxyEntry } from '../core/downstream.js';

export function requestListener(entry: ProxyEntry): RequestListener {
  return function onRequest(req: IncomingMessage, res: ServerResponse): void {
    // At maxRequestsPerSocket node:http writes "Connection: close" but keeps the connection open
    // (answering the next request 503): close it, as the header says.
    if ((res as { maxRequestsOnConnectionReached?: boolean }).maxRequestsOnConnectionReached === true) res.shouldKeepAlive = false;
    if (entry.isInternal(req.url!)) {
      entry.internal(req, res);
      return;
    }
    const peer = req.socket.remoteAddress ?? '';
    if (req.httpVersionMajor !== 2) {
      entry.proxy(req, res, peer, req, undefined);
      return;
    }
    // HTTP/2 (the compatibility API presents its streams as these objects): a stream ended with
    // its headers has no body, and the authority travels as a pseudo-header.
    // Dispatched after the frames read with its HEADERS (setImmediate): a stream the client reset in
    // the same read (rapid reset) is closed by then and never reaches a backend.
    setImmediate(proxyHttp2, entry, req, res, peer);
  };
}

function proxyHttp2(entry: ProxyEntry, req: IncomingMessage, res: ServerResponse, peer: string): void {
  const h2 = req as unknown as Http2ServerRequest;
  if (h2.stream.destroyed) return;
  entry.proxy(req, res, peer, h2.stream.endAfterHeaders ? null : req, h2.authority);
}
