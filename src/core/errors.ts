/**
 * Errors are values with stable codes. Each says where it came from
 * (upstream, downstream, internal) and whether the request may be retried
 * on another backend; the status a client sees follows from the code.
 */

export type ErrorSource = 'upstream' | 'downstream' | 'internal';

interface ErrorKind {
  readonly status: number;
  readonly source: ErrorSource;
  readonly retryable: boolean;
  readonly reason: string;
}

/** The catalogue of error codes. `reason` is the short text a client sees. */
export const ERRORS = {
  FULCRUM_ERR_NO_BACKEND: { status: 503, source: 'internal', retryable: false, reason: 'no healthy backend available' },
  FULCRUM_ERR_QUEUE_TIMEOUT: { status: 503, source: 'internal', retryable: false, reason: 'all backends are at their connection limit' },
  FULCRUM_ERR_CIRCUIT_OPEN: { status: 503, source: 'internal', retryable: false, reason: 'service circuit is open' },
  FULCRUM_ERR_CONNECT_REFUSED: { status: 502, source: 'upstream', retryable: true, reason: 'backend refused the connection' },
  FULCRUM_ERR_CONNECT_FAILED: { status: 502, source: 'upstream', retryable: true, reason: 'could not connect to backend' },
  FULCRUM_ERR_CONNECT_TIMEOUT: { status: 504, source: 'upstream', retryable: true, reason: 'timed out connecting to backend' },
  FULCRUM_ERR_RESPONSE_TIMEOUT: { status: 504, source: 'upstream', retryable: true, reason: 'backend did not send response headers in time' },
  FULCRUM_ERR_IDLE_TIMEOUT: { status: 504, source: 'upstream', retryable: false, reason: 'backend stalled while sending the response body' },
  FULCRUM_ERR_TOTAL_TIMEOUT: { status: 504, source: 'upstream', retryable: false, reason: 'request deadline exceeded' },
  FULCRUM_ERR_UPSTREAM_RESET: { status: 502, source: 'upstream', retryable: true, reason: 'backend closed the connection before responding' },
  FULCRUM_ERR_UPSTREAM_REFUSED: { status: 502, source: 'upstream', retryable: true, reason: 'backend refused the stream before acting on it' },
  FULCRUM_ERR_UPSTREAM_PROTOCOL: { status: 502, source: 'upstream', retryable: false, reason: 'backend sent an invalid response' },
  FULCRUM_ERR_UPSTREAM_TLS: { status: 502, source: 'upstream', retryable: true, reason: 'TLS handshake with backend failed' },
  FULCRUM_ERR_CLIENT_ABORTED: { status: 499, source: 'downstream', retryable: false, reason: 'client closed the request' },
  FULCRUM_ERR_CLIENT_BODY: { status: 400, source: 'downstream', retryable: false, reason: 'error reading the request body' },
  FULCRUM_ERR_BODY_TOO_LARGE: { status: 413, source: 'downstream', retryable: false, reason: 'request body too large' },
  FULCRUM_ERR_TOO_MANY_HEADERS: { status: 431, source: 'downstream', retryable: false, reason: 'too many header fields' },
  FULCRUM_ERR_BAD_REQUEST: { status: 400, source: 'downstream', retryable: false, reason: 'bad request' },
  FULCRUM_ERR_FORBIDDEN: { status: 403, source: 'downstream', retryable: false, reason: 'client address not allowed' },
  FULCRUM_ERR_NO_ROUTE: { status: 404, source: 'downstream', retryable: false, reason: 'no route' },
  FULCRUM_ERR_HTTP_VERSION: { status: 505, source: 'downstream', retryable: false, reason: 'HTTP version not supported' },
  FULCRUM_ERR_RATE_LIMITED: { status: 429, source: 'downstream', retryable: false, reason: 'rate limit exceeded' },
  FULCRUM_ERR_RATE_LIMIT_UNAVAILABLE: { status: 503, source: 'internal', retryable: false, reason: 'rate limit store unavailable' },
  FULCRUM_ERR_SHUTTING_DOWN: { status: 503, source: 'internal', retryable: false, reason: 'balancer is shutting down' },
  FULCRUM_ERR_INTERNAL: { status: 500, source: 'internal', retryable: false, reason: 'internal error' },
} as const satisfies Record<`FULCRUM_ERR_${string}`, ErrorKind>;

export type ErrorCode = keyof typeof ERRORS;

export class FulcrumError extends Error {
  readonly code: ErrorCode;
  readonly source: ErrorSource;
  readonly retryable: boolean;
  readonly status: number;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    const kind = ERRORS[code];
    super(detail === undefined ? kind.reason : `${kind.reason}: ${detail}`, options);
    this.name = 'FulcrumError';
    this.code = code;
    this.source = kind.source;
    this.retryable = kind.retryable;
    this.status = kind.status;
  }
}

/** isTimeout tells 504-class errors apart, for outlier detection and logs. */
export function isTimeout(err: FulcrumError): boolean {
  return err.status === 504;
}

const TLS_CODES = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT|ERR_OSSL)/;

/**
 * fromUpstreamError classifies an error from the upstream client (undici or
 * a raw socket) into a FulcrumError.
 */
export function fromUpstreamError(err: unknown, responseStarted: boolean): FulcrumError {
  if (err instanceof FulcrumError) return err;
  const e = err as NodeJS.ErrnoException & { code?: string };
  const code = e?.code ?? '';
  const msg = e?.message ?? String(err);
  switch (code) {
    case 'ECONNREFUSED': return new FulcrumError('FULCRUM_ERR_CONNECT_REFUSED', undefined, { cause: err });
    case 'UND_ERR_CONNECT_TIMEOUT': return new FulcrumError('FULCRUM_ERR_CONNECT_TIMEOUT', undefined, { cause: err });
    case 'UND_ERR_HEADERS_TIMEOUT': return new FulcrumError('FULCRUM_ERR_RESPONSE_TIMEOUT', undefined, { cause: err });
    case 'UND_ERR_BODY_TIMEOUT': return new FulcrumError('FULCRUM_ERR_IDLE_TIMEOUT', undefined, { cause: err });
    case 'EHOSTUNREACH': case 'ENETUNREACH': case 'ENOTFOUND': case 'EAI_AGAIN': case 'EADDRNOTAVAIL':
      return new FulcrumError('FULCRUM_ERR_CONNECT_FAILED', code, { cause: err });
    case 'ECONNRESET': case 'EPIPE': case 'UND_ERR_SOCKET': case 'UND_ERR_CLOSED':
      return new FulcrumError('FULCRUM_ERR_UPSTREAM_RESET', responseStarted ? 'connection reset mid-response' : undefined, { cause: err });
    case 'HPE_INVALID_CONSTANT': case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH': case 'UND_ERR_INFO': case 'UND_ERR_RESPONSE_EXCEEDED_MAX_SIZE':
      return new FulcrumError('FULCRUM_ERR_UPSTREAM_PROTOCOL', msg, { cause: err });
    case 'H2_REFUSED_STREAM':
      return new FulcrumError('FULCRUM_ERR_UPSTREAM_REFUSED', msg, { cause: err });
    case 'H2_NO_H2':
      return new FulcrumError('FULCRUM_ERR_UPSTREAM_PROTOCOL', msg, { cause: err });
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
      return new FulcrumError('FULCRUM_ERR_CLIENT_BODY', 'body shorter or longer than its Content-Length', { cause: err });
    default:
      if (TLS_CODES.test(code)) return new FulcrumError('FULCRUM_ERR_UPSTREAM_TLS', `${code}: ${msg}`, { cause: err });
      if (code.startsWith('HPE_')) return new FulcrumError('FULCRUM_ERR_UPSTREAM_PROTOCOL', msg, { cause: err });
      return new FulcrumError('FULCRUM_ERR_UPSTREAM_RESET', `${code || 'error'}: ${msg}`, { cause: err });
  }
}

/**
 * neverReached: the attempt failed before the backend could act on it (no
 * connection, or a stream it refused), so it may be sent again whatever
 * its method.
 */
export function neverReached(err: FulcrumError): boolean {
  switch (err.code) {
    case 'FULCRUM_ERR_CONNECT_REFUSED': case 'FULCRUM_ERR_CONNECT_FAILED': case 'FULCRUM_ERR_CONNECT_TIMEOUT': case 'FULCRUM_ERR_UPSTREAM_REFUSED':
      return true;
    default:
      return false;
  }
}

/** gRPC status codes Fulcrum answers with (grpc/status.h). */
export const GRPC_STATUS = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14,
} as const;

/** grpcStatusOf: the gRPC status a gRPC client gets for one of Fulcrum's own refusals or failures. */
export function grpcStatusOf(code: ErrorCode): number {
  switch (code) {
    case 'FULCRUM_ERR_RATE_LIMITED': case 'FULCRUM_ERR_BODY_TOO_LARGE': return GRPC_STATUS.RESOURCE_EXHAUSTED;
    case 'FULCRUM_ERR_NO_ROUTE': return GRPC_STATUS.UNIMPLEMENTED;
    case 'FULCRUM_ERR_CONNECT_TIMEOUT': case 'FULCRUM_ERR_RESPONSE_TIMEOUT': case 'FULCRUM_ERR_IDLE_TIMEOUT': case 'FULCRUM_ERR_TOTAL_TIMEOUT':
      return GRPC_STATUS.DEADLINE_EXCEEDED;
    case 'FULCRUM_ERR_FORBIDDEN': return GRPC_STATUS.PERMISSION_DENIED;
    case 'FULCRUM_ERR_BAD_REQUEST': case 'FULCRUM_ERR_CLIENT_BODY': return GRPC_STATUS.INVALID_ARGUMENT;
    case 'FULCRUM_ERR_CLIENT_ABORTED': return GRPC_STATUS.CANCELLED;
    case 'FULCRUM_ERR_UPSTREAM_PROTOCOL': case 'FULCRUM_ERR_INTERNAL': case 'FULCRUM_ERR_HTTP_VERSION': return GRPC_STATUS.INTERNAL;
    default: return GRPC_STATUS.UNAVAILABLE; // no backend, unreachable, reset, queue full, shutting down
  }
}
