/**
 * UpgradeResponse answers an upgrade request on the client's raw socket:
 * node:http hands upgrade requests over without a ServerResponse, and this
 * gives them one, so that they pass the same phases as every request (a
 * filter's 429 with its headers, the one error answer, a backend's refusal
 * relayed) and, when the backend agrees, switch to a tunnel. Every answer
 * that is not a 101 closes the connection: the client asked to leave HTTP.
 */
import { STATUS_CODES, type OutgoingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import type { DownstreamResponse, DownstreamTunnel, HeaderInput } from '../core/downstream.js';

export class UpgradeResponse implements DownstreamResponse, DownstreamTunnel {
  shouldKeepAlive = false;
  sendDate = false;
  headersSent = false;
  readonly chunkedEncoding = false;
  /** #stored: the headers set with setHeader before the head (e.g. RateLimit), by lower-case name. */
  readonly #stored = new Map<string, [string, string | number | readonly string[]]>();

  constructor(readonly socket: Duplex, readonly protocol: string, readonly head: Buffer) {}

  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  setHeader(name: string, value: string | number | readonly string[]): this {
    this.#stored.set(name.toLowerCase(), [name, value]);
    return this;
  }

  getHeaderNames(): string[] {
    return [...this.#stored.keys()];
  }

  removeHeader(name: string): void {
    this.#stored.delete(name.toLowerCase());
  }

  writeHead(statusCode: number, reasonOrHeaders?: string | HeaderInput, maybeHeaders?: HeaderInput): this {
    const reason = typeof reasonOrHeaders === 'string' ? reasonOrHeaders : undefined;
    const headers = typeof reasonOrHeaders === 'string' || reasonOrHeaders === undefined ? maybeHeaders : reasonOrHeaders;
    this.#writeHead(statusCode, reason, headers, 'Connection: close\r\n');
    return this;
  }

  switchProtocols(statusText: string, headers: readonly string[]): Duplex {
    this.#writeHead(101, statusText || 'Switching Protocols', headers as string[], '');
    return this.socket;
  }

  write(chunk: Buffer): boolean {
    return this.socket.write(chunk);
  }

  end(chunk?: string): this {
    if (this.socket.writable) this.socket.end(chunk);
    else this.socket.destroy();
    return this;
  }

  /** addTrailers: an answer on this connection is never chunked, so there is nowhere to put trailers. */
  addTrailers(): void { /* see above */ }

  destroy(): this {
    this.socket.destroy();
    return this;
  }

  on(_event: 'close', listener: () => void): this {
    this.socket.on('close', () => listener.call(this));
    return this;
  }

  once(_event: 'drain', listener: () => void): this {
    this.socket.once('drain', listener);
    return this;
  }

  #writeHead(statusCode: number, reason: string | undefined, headers: HeaderInput | undefined, extra: string): void {
    if (this.headersSent) return;
    this.headersSent = true;
    let head = `HTTP/1.1 ${statusCode} ${reason ?? STATUS_CODES[statusCode] ?? ''}\r\n`;
    for (const [, [name, value]] of this.#stored) head += field(name, value);
    if (Array.isArray(headers)) for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    else if (headers !== undefined) for (const [name, value] of Object.entries(headers as OutgoingHttpHeaders)) if (value !== undefined) head += field(name, value);
    if (this.socket.writable) this.socket.write(`${head}${extra}\r\n`, 'latin1');
  }
}

function field(name: string, value: string | number | readonly string[]): string {
  if (!Array.isArray(value)) return `${name}: ${String(value)}\r\n`;
  let out = '';
  for (const v of value as readonly string[]) out += `${name}: ${v}\r\n`;
  return out;
}
