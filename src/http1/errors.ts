/**
 * Errors of Fulcrum's HTTP/1.1 upstream client. They carry the codes undici
 * uses for the same failures (UND_ERR_*, and llhttp's HPE_* for malformed
 * responses), so that errors.ts classifies both clients' errors alike.
 */

export type H1ErrorCode =
  | 'UND_ERR_CONNECT_TIMEOUT'
  | 'UND_ERR_HEADERS_TIMEOUT'
  | 'UND_ERR_BODY_TIMEOUT'
  /** the connection closed before the response was complete */
  | 'UND_ERR_SOCKET'
  /** dispatch on a pool that is closing */
  | 'UND_ERR_CLOSED'
  /** the pool was destroyed with the request in flight */
  | 'UND_ERR_DESTROYED'
  | 'UND_ERR_ABORTED'
  | 'UND_ERR_INVALID_ARG'
  /** the request body's length differs from its Content-Length */
  | 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH'
  | `HPE_${string}`;

export class H1Error extends Error {
  readonly code: H1ErrorCode;

  constructor(code: H1ErrorCode, message: string) {
    super(message);
    this.name = 'H1Error';
    this.code = code;
  }
}
