/**
 * clientError: the answer to a request that cannot be served, written
 * straight to the socket before it is closed. node:http's 'clientError'
 * uses it, and the fast path for a connection that sent nothing in time.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * clientError answers malformed requests with 400, oversized heads with 431
 * and slow clients with 408, then closes the connection. Node's parser has
 * already refused the request: nothing of it reaches a backend.
 */
export function onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  let status = 400;
  let reason = 'malformed request';
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW': status = 431; reason = 'request header fields too large'; break;
    case 'ERR_HTTP_REQUEST_TIMEOUT': status = 408; reason = 'request timeout'; break;
    case 'HPE_UNEXPECTED_CONTENT_LENGTH': reason = 'both Content-Length and Transfer-Encoding'; break;
    case 'HPE_INVALID_TRANSFER_ENCODING': reason = 'invalid Transfer-Encoding'; break;
    case 'HPE_INVALID_CONTENT_LENGTH': reason = 'invalid Content-Length'; break;
    case 'HPE_INVALID_HEADER_TOKEN': reason = 'invalid character in header'; break;
    default: break;
  }
  const text = `${status} ${http.STATUS_CODES[status]}: ${reason}\n`;
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
}

