/**
 * The dispatch contract between the proxy (forward.ts, Exchange) and an
 * upstream client: undici's low-level handler interface, which both undici's
 * Pool and Fulcrum's own HTTP/1.1 client (h1-client.ts) implement. One
 * request, one handler object; every callback is called at most once per
 * request, except onData, and a request ends with exactly one of onComplete
 * or onError.
 */
import type { Readable } from 'node:stream';
import type { ClientConnection } from './proxy-protocol.js';

/** UpstreamRequest is what the proxy asks a backend. */
export interface UpstreamRequest {
  path: string;
  method: string;
  /** headers: flat [name, value, name, value...], hop-by-hop-free, with Host and the forwarded headers. */
  headers: string[];
  /** body: none, buffered (replayable), or streamed (with a Content-Length header, or chunked without one). */
  body: Buffer | Readable | null;
  /** headersTimeout: ms from the request being sent to the response head; overrides the pool's. */
  headersTimeout?: number;
  /** bodyTimeout: ms of silence allowed between two pieces of the response body; overrides the pool's. */
  bodyTimeout?: number;
  /** client: the client's connection, which a pool sending the PROXY protocol describes to the backend. */
  client?: ClientConnection;
  /**
   * trailers: where the client's request trailers will be, flat, once the
   * body has been read (the client's request itself: node:http and HTTP/2
   * fill `rawTrailers` then). Set only when the body may carry them; the
   * HTTP/2 client and Fulcrum's HTTP/1.1 client (after a chunked body)
   * forward them, undici does not.
   */
  trailers?: TrailerSource;
}

/** TrailerSource holds a request's trailer fields once its body has ended (empty: none). */
export interface TrailerSource {
  readonly rawTrailers?: readonly string[] | undefined;
}

/** RawHeaders: [name, value...] as received; undici gives Buffers, Fulcrum's own client latin1 strings. */
export type RawHeaders = readonly (Buffer | string)[];

/** UpstreamHandler receives one request's events. */
export interface UpstreamHandler {
  /** onConnect hands over the function that cancels the request (it then ends with onError). */
  onConnect(abort: (err?: Error) => void): void;
  /** onHeaders: the response head; returning false pauses the body until resume() is called. */
  onHeaders(statusCode: number, rawHeaders: RawHeaders, resume: () => void, statusText: string): boolean;
  /** onData: a piece of the (decoded) body; returning false pauses until resume() is called. */
  onData(chunk: Buffer): boolean;
  /** onComplete: the whole response arrived; rawTrailers are [name, value...] of a chunked body's trailers. */
  onComplete(rawTrailers: RawHeaders | null): void;
  onError(err: Error): void;
}

/** UpstreamDispatcher is one backend's client: a pool of connections. */
export interface UpstreamDispatcher {
  /** dispatch starts a request; the return value is for back-pressure and may be ignored. */
  dispatch(request: UpstreamRequest, handler: UpstreamHandler): boolean;
  /**
   * idleConnections: kept-alive connections waiting for a request, when the
   * client can tell (Fulcrum's own can; undici's Pool cannot). Read only
   * for traced requests, to say whether an attempt reuses a connection.
   */
  readonly idleConnections?: number;
  /** protocol: the HTTP version spoken to the backend ("1.1" when absent). */
  readonly protocol?: '1.1' | '2';
  /** close lets in-flight requests finish, then closes every connection. */
  close(): Promise<void>;
  /** destroy closes every connection now; in-flight requests fail. */
  destroy(): Promise<void>;
}
