/**
 * What the pipeline and the exchange need of a client's request and
 * response, whichever server produced them: node:http (and node:http2's
 * compatibility layer, which the listeners present as node:http objects) or
 * the fast path (fast-path.ts). Naming these few members keeps the fast
 * path's objects honest: the compiler checks they offer what is used.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Duplex, Readable } from 'node:stream';

/**
 * CLOSING marks an HTTP/1 connection whose response in progress is its last
 * (an error answered with a close). node:http hands over the requests
 * pipelined behind it as soon as it has parsed them; they must not be
 * proxied, since the client was told that nothing after the refused one
 * counts (and in a smuggling attempt they are the smuggled requests).
 */
export const CLOSING = Symbol('fulcrum.closing');

/**
 * DownstreamRequest is a client's request as the proxy phases read it. The
 * listeners hand over what only they know (the peer address, HTTP/2's
 * :authority, whether a body follows) as arguments, so nothing above the
 * listeners tests which server made the object.
 */
export interface DownstreamRequest {
  readonly method?: string | undefined;
  /** url is the request target; the pipeline rewrites an absolute-form target to origin form. */
  url?: string | undefined;
  readonly rawHeaders: string[];
  /** headers builds an object of the fields (the fast path builds it only when read). */
  readonly headers: IncomingHttpHeaders;
  /** httpVersionMajor/Minor: the version of an HTTP/1 request line (for HTTP/2 the listener says so: see ProxyEntry.proxy). */
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  /** complete: the whole request, body included, has been read. */
  readonly complete: boolean;
  /** rawTrailers: the request's trailer fields, flat, once its body has ended (node:http and HTTP/2; the fast path has none). */
  readonly rawTrailers?: string[];
  /** socket: the client's connection; its ends are read only to describe it to a backend (sendProxyProtocol). */
  readonly socket: {
    /** CLOSING: see below; set on an HTTP/1 connection only. */
    [CLOSING]?: true;
    readonly destroyed: boolean;
    readonly remoteAddress?: string | undefined;
    readonly remotePort?: number | undefined;
    readonly localAddress?: string | undefined;
    readonly localPort?: number | undefined;
  };
}

/** HeaderInput: a flat [name, value, ...] list, or an object (values may repeat as arrays). */
export type HeaderInput = string[] | OutgoingHttpHeaders;

export interface DownstreamResponse {
  /** shouldKeepAlive: false closes the connection after this response. */
  shouldKeepAlive: boolean;
  /** sendDate: add a Date header when the response has none. */
  sendDate: boolean;
  /** headersSent: the head is written (or stored, to go out with the first body bytes). */
  readonly headersSent: boolean;
  /** chunkedEncoding: the body is sent with chunked framing (so trailers can follow it). */
  readonly chunkedEncoding: boolean;
  readonly destroyed: boolean;
  writeHead(statusCode: number, headers?: HeaderInput): unknown;
  writeHead(statusCode: number, reason: string | undefined, headers?: HeaderInput): unknown;
  write(chunk: Buffer): boolean;
  end(chunk?: string): unknown;
  setHeader(name: string, value: string | number | readonly string[]): unknown;
  getHeaderNames(): string[];
  removeHeader(name: string): void;
  addTrailers(headers: OutgoingHttpHeaders | ReadonlyArray<[string, string]>): void;
  destroy(error?: Error): unknown;
  on(event: 'close', listener: () => void): unknown;
  once(event: 'drain', listener: () => void): unknown;
  /**
   * stream: an HTTP/2 response's stream (node:http2's compatibility
   * response has one), whose respond() can end the stream with the head
   * itself: a gRPC trailers-only answer. Absent for HTTP/1.
   */
  readonly stream?: { respond(headers: OutgoingHttpHeaders, options: { endStream: boolean }): void };
}

/**
 * DownstreamTunnel is the client side of an upgrade request (WebSocket):
 * the protocol asked for, the bytes that came after the head, and the
 * switch to the tunnel once the backend agreed.
 */
export interface DownstreamTunnel {
  /** protocol is the client's Upgrade header. */
  readonly protocol: string;
  /** head holds the bytes the client sent after the request head (the tunnel's first bytes). */
  readonly head: Buffer;
  /** switchProtocols writes the 101 head with `headers` (and any set with setHeader) and returns the client's socket. */
  switchProtocols(statusText: string, headers: readonly string[]): Duplex;
}

/**
 * ProxyEntry is how the listeners hand requests to the proxy: every server
 * (node:http, HTTP/2's compatibility layer, the fast path) calls these, and
 * passes what only it knows as arguments, so that the request path itself
 * never asks which server made a request.
 */
export interface ProxyEntry {
  /** isInternal: the target is one of the balancer's own endpoints (served by `internal`). */
  isInternal(url: string): boolean;
  internal(req: IncomingMessage, res: ServerResponse): void;
  /**
   * proxy sends a request to a backend. `peer` is the client's address,
   * `body` the stream a body comes on (null when none can follow: the fast
   * path's requests, an HTTP/2 stream ended with its headers), `authority`
   * HTTP/2's :authority, `http2` whether the request came on an HTTP/2
   * stream (known from the transport: an HTTP/1 request line may claim
   * any version).
   */
  proxy(req: DownstreamRequest, res: DownstreamResponse, peer: string, body: Readable | null, authority: string | undefined, http2: boolean): void;
  /** upgrade takes an upgrade request (node:http's 'upgrade' event). */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}
