/**
 * gRPC on the request path. A gRPC call (an HTTP/2 request whose
 * content-type is application/grpc*) passes through like any request; what
 * differs is only what Fulcrum itself says about it:
 *   - its own refusals and failures are answered as gRPC clients expect:
 *     HTTP 200 with grpc-status and grpc-message in a trailers-only
 *     response (core/errors.ts grpcStatusOf decides the status);
 *   - grpc-timeout caps the time Fulcrum waits for the response head;
 *   - the grpc-status of an answer feeds passive health (UNAVAILABLE and
 *     RESOURCE_EXHAUSTED count as failures) and the access log and metrics.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { DownstreamRequest, DownstreamResponse } from '../core/downstream.js';
import { GRPC_STATUS, grpcStatusOf, type FulcrumError } from '../core/errors.js';
import type { RawHeaders } from '../upstream/dispatch.js';

export interface GrpcCall {
  /** timeoutMs: the call's grpc-timeout in ms, -1 when it has none. */
  readonly timeoutMs: number;
}

/** Units of grpc-timeout (gRPC over HTTP/2, "Timeout"), in ms. */
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };

/** parseGrpcTimeout: a grpc-timeout value ("100m", "5S": up to 8 digits and a unit) in ms, -1 when absent or malformed. */
export function parseGrpcTimeout(value: string | undefined): number {
  if (value === undefined) return -1;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (m === null) return -1;
  return Math.ceil(Number(m[1]) * UNIT_MS[m[2]!]!);
}

/** grpcCall: the gRPC facts of an HTTP/2 request, or null when it is not a gRPC call. */
export function grpcCall(req: DownstreamRequest): GrpcCall | null {
  const headers = req.headers;
  const type = headers['content-type'];
  if (type === undefined || !type.toLowerCase().startsWith('application/grpc')) return null;
  const timeout = headers['grpc-timeout'];
  return { timeoutMs: parseGrpcTimeout(Array.isArray(timeout) ? timeout[0] : timeout) };
}

/** grpcStatusIn: the grpc-status among raw headers or trailers, -1 when there is none. */
export function grpcStatusIn(raw: RawHeaders): number {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 11 && name.toString().toLowerCase() === 'grpc-status') {
      const n = Number(raw[i + 1]!.toString());
      return Number.isInteger(n) && n >= 0 ? n : -1;
    }
  }
  return -1;
}

/** isGrpcFailure: a status that says the backend could not serve (it counts against it, as a 5xx does). */
export function isGrpcFailure(status: number): boolean {
  return status === GRPC_STATUS.UNAVAILABLE || status === GRPC_STATUS.RESOURCE_EXHAUSTED;
}

/** encodeGrpcMessage: percent-encodes what grpc-message may not carry as is (gRPC over HTTP/2, "Status-Message"). */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * grpcAnswer answers a gRPC call that Fulcrum refuses or fails: HTTP 200,
 * a trailers-only response (one HEADERS frame that ends the stream) with
 * grpc-status and grpc-message, and X-Fulcrum-Error for humans. A response
 * already started is reset instead. Returns the gRPC status sent.
 */
export function grpcAnswer(res: DownstreamResponse, error: FulcrumError, extra: Readonly<Record<string, string>> | undefined, clientGone: boolean): number {
  const status = grpcStatusOf(error.code);
  if (clientGone) return status;
  if (res.headersSent) {
    res.destroy(error);
    return status;
  }
  const headers: OutgoingHttpHeaders = {
    ...extra,
    'content-type': 'application/grpc',
    'grpc-status': String(status),
    'grpc-message': encodeGrpcMessage(error.message),
    'x-fulcrum-error': error.code,
  };
  const stream = res.stream;
  if (stream !== undefined) {
    // One HEADERS frame that ends the stream: the compatibility response would send an empty DATA frame to end it.
    stream.respond({ ':status': 200, ...headers }, { endStream: true });
  } else {
    res.writeHead(200, headers);
    res.end();
  }
  return status;
}
