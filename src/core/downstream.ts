/**
 * What the pipeline and the exchange need of a client's request and
 * response, whichever server produced them: node:http (and node:http2's
 * compatibility layer, which the listeners present as node:http objects) or
 * the fast path (fast-path.ts). Naming these few members keeps the fast
 * path's objects honest: the compiler checks they offer what is used.
 */
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { FastRequest } from '../listen/fast-request.js';

export type DownstreamRequest = IncomingMessage | FastRequest;

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
}
