/**
 * Health checks over HTTP/2: an HTTP check of an h2c:// backend, and the
 * gRPC health check (grpc.health.v1.Health/Check) of any HTTP/2 backend.
 * Each check is one request on a session of its own, closed after it:
 * checks run every few seconds, and a session of their own never queues
 * behind traffic nor shares its fate.
 */
import http2, { type IncomingHttpHeaders } from 'node:http2';
import type { ConnectionOptions } from 'node:tls';

export interface H2ProbeRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer | null;
}

export interface H2ProbeResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly trailers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** MAX_BODY: a check's answer is read up to this many bytes. */
const MAX_BODY = 64 * 1024;

/** h2Probe sends one request over a new HTTP/2 session (h2c when tls is null) and reads the answer. */
export function h2Probe(url: URL, tls: ConnectionOptions | null, request: H2ProbeRequest, signal: AbortSignal): Promise<H2ProbeResponse> {
  return new Promise((resolve, reject) => {
    const scheme = tls === null ? 'http' : 'https';
    const port = url.port === '' ? (tls === null ? 80 : 443) : url.port;
    const session = http2.connect(`${scheme}://${url.hostname}:${port}`, tls === null ? {} : { ...tls, ALPNProtocols: ['h2'] });
    let settled = false;
    const settle = (err: Error | null, res?: H2ProbeResponse): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      session.destroy();
      if (err !== null) reject(err);
      else resolve(res!);
    };
    const onAbort = (): void => settle(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort);
    session.on('error', (err) => settle(err));
    const stream = session.request({
      ':method': request.method, ':path': request.path, ':authority': url.host, ...request.headers,
    }, { endStream: request.body === null });
    if (request.body !== null) stream.end(request.body);
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('response', (h) => { headers = h; });
    stream.on('trailers', (t) => { trailers = t; });
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
    });
    stream.on('error', (err) => settle(err));
    stream.on('end', () => settle(null, { status: Number(headers[':status'] ?? 0), headers, trailers, body: Buffer.concat(chunks) }));
    stream.on('close', () => settle(new Error(`stream closed (code ${stream.rstCode})`)));
  });
}

/** SERVING: grpc.health.v1.HealthCheckResponse.ServingStatus. */
const SERVING = 1;

/** grpcHealthRequest: a HealthCheckRequest { service } as one length-prefixed gRPC message. */
export function grpcHealthRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  // protobuf: field 1, wire type 2 (0x0a), a varint length, the bytes; nothing when empty (proto3 default).
  const message = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a]), varint(name.length), name]);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt8(0, 0); // not compressed
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

/**
 * grpcServingStatus reads a HealthCheckResponse { status = 1 } from one
 * gRPC message; -1 when the body is not one. An empty message is status 0
 * (UNKNOWN, proto3's default).
 */
export function grpcServingStatus(body: Buffer): number {
  if (body.length < 5 || body[0] !== 0) return -1;
  const length = body.readUInt32BE(1);
  if (body.length < 5 + length) return -1;
  let i = 5;
  const end = 5 + length;
  let status = 0;
  while (i < end) {
    const key = body[i++]!;
    if (key === 0x08) {
      let value = 0;
      let shift = 0;
      for (;;) {
        if (i >= end) return -1;
        const b = body[i++]!;
        value |= (b & 0x7f) << shift;
        if ((b & 0x80) === 0) break;
        shift += 7;
        if (shift > 28) return -1;
      }
      status = value;
    } else {
      return status; // no other field is defined: stop at what we do not know
    }
  }
  return status;
}

/** servingName: a ServingStatus as the log shows it. */
export function servingName(status: number): string {
  switch (status) {
    case 0: return 'UNKNOWN';
    case SERVING: return 'SERVING';
    case 2: return 'NOT_SERVING';
    case 3: return 'SERVICE_UNKNOWN';
    default: return `status ${status}`;
  }
}

export { SERVING };
