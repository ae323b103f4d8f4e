/**
 * clientError: the answer to a request that cannot be served, written
 * straight to the socket before it is closed. node:http's 'clientError'
 * uses it, and the fast path for a connection that sent nothing in time.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';

/** VERSIONED_LINE: a request line of a method token, a target and a well-formed HTTP version (RFC 9112 2.3, 3). */
const VERSIONED_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [^ \r\n]+ HTTP\/\d\.\d\r?\n/;

/**
 * clientError answers malformed requests with 400, oversized heads with 431
 * and slow clients with 408, then closes the connection. Node's parser has
 * already refused the request: nothing of it reaches a backend.
 */
export function onClientError(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  let status = 400;
  let reason = 'malformed request';
  let code = '';
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW': status = 431; reason = 'request header fields too large'; break;
    case 'ERR_HTTP_REQUEST_TIMEOUT': status = 408; reason = 'request timeout'; break;
    case 'HPE_UNEXPECTED_CONTENT_LENGTH': reason = 'both Content-Length and Transfer-Encoding'; break;
    case 'HPE_INVALID_TRANSFER_ENCODING': reason = 'invalid Transfer-Encoding'; break;
    case 'HPE_INVALID_CONTENT_LENGTH': reason = 'invalid Content-Length'; break;
    case 'HPE_INVALID_VERSION':
      // A well-formed version node:http does not parse (HTTP/1.2, HTTP/3.0): 505, as the proxy answers
      // HTTP/2.0 (pipeline.ts). A malformed one ("HTTP/1.x", text after it) stays a 400.
      if (err.rawPacket !== undefined && VERSIONED_LINE.test(err.rawPacket.toString('latin1', 0, Math.min(err.rawPacket.length, 8192)))) {
        status = 505;
        reason = 'HTTP version not supported';
        code = 'X-Fulcrum-Error: FULCRUM_ERR_HTTP_VERSION\r\n';
      } else {
        reason = 'invalid HTTP version';
      }
      break;
    case 'HPE_INVALID_HEADER_TOKEN': reason = 'invalid character in header'; break;
    default: break;
  }
  const text = `${status} ${http.STATUS_CODES[status]}: ${reason}\n`;
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\n${code}Connection: close\r\n\r\n${text}`);
}

