/**
 * The fast path's response: the members of node:http's ServerResponse the
 * pipeline uses (downstream.ts), writing to the socket directly. The head is
 * built as one string when writeHead is called and goes out together with
 * the first body bytes, in one write: a small proxied response costs one
 * socket write, where node:http's streams add their per-response objects,
 * callbacks and events.
 *
 * Framing and connection headers follow node:http's rules, so a client sees
 * the same response either way: Content-Length as given, otherwise chunked
 * (never for HEAD, 1xx, 204 and 304); `Connection: keep-alive` with the
 * `Keep-Alive` timeout, or `Connection: close` on the last response of a
 * connection; a Date unless `sendDate` is off; names and values checked as
 * node:http checks them, throwing before anything is written.
 */
import { STATUS_CODES, type OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { DownstreamResponse, HeaderInput } from '../core/downstream.js';
import { HT, SP, TOKEN, VISIBLE, isField } from '../http1/chars.js';

/** Bodies up to this size are copied behind the head into one buffer; larger ones are written beside it (corked). */
const COPY_LIMIT = 16 * 1024;

/** FastResponseOwner is the connection a response belongs to. */
export interface FastResponseOwner {
  readonly socket: Socket;
  /** keepAliveHeader: the connection headers of a kept-alive response (`Connection: keep-alive` and its `Keep-Alive`). */
  readonly keepAliveHeader: string;
  /** finished: the response is complete; keepAlive false ends the connection after it. */
  finished(res: FastResponse, keepAlive: boolean): void;
}

function invalidHeader(what: string, value: string): TypeError & { code: string } {
  return Object.assign(new TypeError(`Invalid character in ${what} ${JSON.stringify(value)}`), { code: 'ERR_INVALID_CHAR' });
}

/** checkName throws unless name is a token (node:http's validateHeaderName). */
function checkName(name: string): void {
  if (name.length === 0) throw Object.assign(new TypeError('Header name must be a valid HTTP token [""]'), { code: 'ERR_INVALID_HTTP_TOKEN' });
  for (let i = 0; i < name.length; i++) {
    if (TOKEN[name.charCodeAt(i)] !== 1) throw Object.assign(new TypeError(`Header name must be a valid HTTP token [${JSON.stringify(name)}]`), { code: 'ERR_INVALID_HTTP_TOKEN' });
  }
}

/** checkValue throws when value holds a character node:http refuses (controls other than HTAB, DEL, and beyond latin1). */
function checkValue(what: string, value: string): void {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (VISIBLE[c] !== 1 && c !== SP && c !== HT) throw invalidHeader(what, value);
  }
}

/**
 * FIELD_LINE is one header line as HeadState writes it, with the name and
 * value node:http accepts: a token, and visible characters, SP and HTAB
 * (no CR or LF, so nothing can start a line of its own). One test, which
 * V8 runs as native code, checks both; the loops above run only when it
 * fails, to name what is wrong.
 */
const FIELD_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+: [\t\x20-\x7e\x80-\xff]*\r\n$/;

let dateSecond = -1;
let dateText = '';

/** httpDate is the current time as an IMF-fixdate, computed once a second. */
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

/** HeadState is what the fields of a head say about framing and the connection. */
class HeadState {
  text = '';
  contentLength = false;
  transferEncoding = false;
  chunked = false;
  connection = false;
  close = false;
  date = false;
  trailer = false;

  add(name: string, value: string | number | readonly string[]): void {
    if (typeof value === 'object') {
      for (const v of value) this.add(name, v);
      return;
    }
    const text = typeof value === 'number' ? String(value) : value;
    const line = `${name}: ${text}\r\n`;
    if (!FIELD_LINE.test(line)) {
      checkName(name);
      checkValue('header content', text);
    }
    switch (name.length) {
      case 4: if (isField(name, 'date', 'Date')) this.date = true; break;
      case 7: if (isField(name, 'trailer', 'Trailer')) this.trailer = true; break;
      case 10:
        if (isField(name, 'connection', 'Connection')) {
          this.connection = true;
          if (/(?:^|[\s,])close(?:$|[\s,])/i.test(text)) this.close = true;
        }
        break;
      case 14: if (isField(name, 'content-length', 'Content-Length')) this.contentLength = true; break;
      case 17:
        if (isField(name, 'transfer-encoding', 'Transfer-Encoding')) {
          this.transferEncoding = true;
          if (/(?:^|[\s,])chunked\s*$/i.test(text)) this.chunked = true;
        }
        break;
      default: break;
    }
    this.text += line;
  }
}

export class FastResponse implements DownstreamResponse {
  statusCode = 200;
  shouldKeepAlive: boolean;
  sendDate = true;
  headersSent = false;
  chunkedEncoding = false;
  destroyed = false;

  readonly #owner: FastResponseOwner;
  /** #head: the head, until it goes out with the first body bytes (then ''). */
  #head = '';
  #hasBody: boolean;
  #last = false;
  #finished = false;
  #closed = false;
  #trailers = '';
  /** #set: headers given with setHeader before writeHead, by lower-case name. */
  #set: Map<string, [string, string | number | readonly string[]]> | null = null;
  /** The two events a response has (downstream.ts), kept without an EventEmitter per response. */
  #onClose: (() => void)[] | null = null;
  #onDrain: (() => void)[] | null = null;

  /** isHead: the request was HEAD (no body); keepAlive: the connection may serve another request after this one. */
  constructor(owner: FastResponseOwner, isHead: boolean, keepAlive: boolean) {
    this.#owner = owner;
    this.shouldKeepAlive = keepAlive;
    this.#hasBody = !isHead;
  }

  writeHead(statusCode: number, reasonOrHeaders?: string | HeaderInput, maybeHeaders?: HeaderInput): this {
    if (this.headersSent) throw Object.assign(new Error('Cannot write headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' });
    let reason: string | undefined;
    let headers: HeaderInput | undefined;
    if (typeof reasonOrHeaders === 'string' || reasonOrHeaders === undefined) {
      reason = reasonOrHeaders;
      headers = maybeHeaders;
    } else {
      headers = reasonOrHeaders;
    }
    if (!Number.isInteger(statusCode) || statusCode < 100 || statusCode > 999) {
      throw Object.assign(new RangeError(`Invalid status code: ${statusCode}`), { code: 'ERR_HTTP_INVALID_STATUS_CODE' });
    }
    reason ??= STATUS_CODES[statusCode] ?? 'unknown';
    checkValue('statusMessage', reason);

    const state = new HeadState();
    if (this.#set === null) {
      if (Array.isArray(headers)) {
        if (headers.length % 2 !== 0) throw Object.assign(new TypeError('headers must be name, value pairs'), { code: 'ERR_INVALID_ARG_VALUE' });
        for (let i = 0; i < headers.length; i += 2) state.add(headers[i]!, headers[i + 1]!);
      } else if (headers !== undefined) {
        addObject(state, headers);
      }
    } else {
      // As node:http does: the fields given here replace same-named ones set before.
      const merged = new Map(this.#set);
      if (Array.isArray(headers)) for (let i = 0; i < headers.length; i += 2) merged.set(headers[i]!.toLowerCase(), [headers[i]!, headers[i + 1]!]);
      else if (headers !== undefined) for (const [name, value] of Object.entries(headers)) if (value !== undefined) merged.set(name.toLowerCase(), [name, value]);
      for (const [name, value] of merged.values()) state.add(name, value);
    }

    if (this.sendDate && !state.date) state.text += `Date: ${httpDate()}\r\n`;
    let chunked = state.chunked;
    if (statusCode === 204 || statusCode === 304 || statusCode < 200) this.#hasBody = false;
    // A chunked 204 or 304 would tempt a zero chunk no client expects: close instead (node:http's rule).
    if (chunked && (statusCode === 204 || statusCode === 304)) {
      chunked = false;
      this.shouldKeepAlive = false;
    }
    if (state.connection) {
      this.#last = state.close || !this.shouldKeepAlive;
    } else if (this.shouldKeepAlive) {
      state.text += this.#owner.keepAliveHeader;
    } else {
      this.#last = true;
      state.text += 'Connection: close\r\n';
    }
    if (!state.contentLength && !state.transferEncoding) {
      if (this.#hasBody) {
        state.text += 'Transfer-Encoding: chunked\r\n';
        chunked = true;
      }
    } else if (state.transferEncoding && !chunked) {
      // A body whose length only the connection's end tells.
      this.#last = true;
    }
    if (!chunked && state.trailer) throw Object.assign(new Error('Trailers are invalid with this transfer encoding'), { code: 'ERR_HTTP_TRAILER_INVALID' });

    this.statusCode = statusCode;
    this.chunkedEncoding = chunked;
    this.#head = `HTTP/1.1 ${statusCode} ${reason}\r\n${state.text}\r\n`;
    this.headersSent = true;
    return this;
  }

  setHeader(name: string, value: string | number | readonly string[]): this {
    if (this.headersSent) throw Object.assign(new Error('Cannot set headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' });
    checkName(name);
    for (const v of typeof value === 'object' ? value : [value]) checkValue(`header content`, String(v));
    (this.#set ??= new Map()).set(name.toLowerCase(), [name, value]);
    return this;
  }

  getHeaderNames(): string[] {
    return this.#set === null ? [] : [...this.#set.keys()];
  }

  removeHeader(name: string): void {
    this.#set?.delete(name.toLowerCase());
  }

  addTrailers(headers: OutgoingHttpHeaders | ReadonlyArray<[string, string]>): void {
    const state = new HeadState();
    if (Array.isArray(headers)) for (const [name, value] of headers as ReadonlyArray<[string, string]>) state.add(name, value);
    else addObject(state, headers as OutgoingHttpHeaders);
    this.#trailers += state.text;
  }

  write(chunk: Buffer | string): boolean {
    if (this.#finished || this.destroyed) return true;
    if (!this.headersSent) this.writeHead(this.statusCode);
    if (!this.#hasBody || chunk.length === 0) return true;
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    return this.chunkedEncoding ? this.#send(`${this.#head}${data.length.toString(16)}\r\n`, data, '\r\n') : this.#send(this.#head, data, '');
  }

  end(chunk?: string | Buffer): this {
    if (this.#finished) return this;
    if (!this.headersSent) this.writeHead(this.statusCode);
    if (!this.destroyed) {
      const data = chunk === undefined || chunk.length === 0 || !this.#hasBody ? null : typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const last = this.chunkedEncoding ? `0\r\n${this.#trailers}\r\n` : '';
      if (data === null) {
        const text = this.#head + last;
        if (text !== '') this.#owner.socket.write(text, 'latin1');
        this.#head = '';
      } else if (this.chunkedEncoding) {
        this.#send(`${this.#head}${data.length.toString(16)}\r\n`, data, `\r\n${last}`);
      } else {
        this.#send(this.#head, data, '');
      }
    }
    this.#finished = true;
    this.#owner.finished(this, this.shouldKeepAlive && !this.#last);
    return this;
  }

  /** #send writes prefix (latin1), data and suffix (latin1) as one write. */
  #send(prefix: string, data: Buffer, suffix: string): boolean {
    this.#head = '';
    const socket = this.#owner.socket;
    if (prefix.length === 0 && suffix.length === 0) return socket.write(data);
    if (data.length <= COPY_LIMIT) {
      const out = Buffer.allocUnsafe(prefix.length + data.length + suffix.length);
      out.write(prefix, 0, 'latin1');
      data.copy(out, prefix.length);
      if (suffix.length > 0) out.write(suffix, prefix.length + data.length, 'latin1');
      return socket.write(out);
    }
    socket.cork();
    if (prefix.length > 0) socket.write(prefix, 'latin1');
    let ok = socket.write(data);
    if (suffix.length > 0) ok = socket.write(suffix, 'latin1');
    socket.uncork();
    return ok;
  }

  /** destroy aborts the response by closing the connection: the client sees it cut short. */
  destroy(): this {
    if (!this.destroyed) {
      this.destroyed = true;
      this.#owner.socket.destroy();
    }
    return this;
  }

  on(_event: 'close', listener: () => void): this {
    (this.#onClose ??= []).push(listener);
    return this;
  }

  once(_event: 'drain', listener: () => void): this {
    (this.#onDrain ??= []).push(listener);
    return this;
  }

  /** emitDrain tells the listeners waiting for it that the socket has room again. */
  emitDrain(): void {
    const listeners = this.#onDrain;
    if (listeners === null) return;
    this.#onDrain = null;
    for (const listener of listeners) listener.call(this);
  }

  /** emitClose tells the listeners, once, that the response is over (finished, or the client gone). */
  emitClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#finished) this.destroyed = true;
    const listeners = this.#onClose;
    if (listeners !== null) for (const listener of listeners) listener.call(this);
  }
}

function addObject(state: HeadState, headers: OutgoingHttpHeaders): void {
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value !== undefined) state.add(name, value);
  }
}
