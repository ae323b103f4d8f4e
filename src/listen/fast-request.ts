/**
 * The fast path's request side: a parser for the request heads it serves
 * itself, and the request object the pipeline sees for them.
 *
 * The parser accepts a deliberately narrow, strict subset of HTTP/1.1: a
 * whole head in the bytes at hand, `GET`, `HEAD`, `DELETE` or `OPTIONS` of
 * an origin-form target, `HTTP/1.1`, exactly one Host, no body, no upgrade,
 * no Expect, no obsolete folding, CRLF line ends, and a `Connection` of
 * nothing but `close` / `keep-alive`. Anything else (a partial head, a body,
 * a malformed byte) is not refused here: it returns null and the connection
 * is handed to node:http, whose parser then decides, exactly as it would
 * have without the fast path. So every head this parser accepts, node:http
 * would have accepted with the same method, target and raw headers (the
 * differential test in test/unit/fast-request.test.ts checks this), and
 * nothing unusual is ever interpreted two ways.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { SECTION_END, isField, matchLower, nextToken, tokenEnd, trimEnd, trimStart } from '../http1/chars.js';

/** More fields than this go to node:http, whose maxHeadersCount then applies. */
const MAX_FIELDS = 500;

/** RequestHead is one parsed request head. */
export interface RequestHead {
  method: string;
  url: string;
  rawHeaders: string[];
  /** close: the client asked to close the connection after the response. */
  close: boolean;
  /** end: the index in the buffer just after the head. */
  end: number;
}

/**
 * SERVED_HEAD matches the heads the fast path may serve, as far as their
 * characters go: a request line with one of its methods, an origin-form
 * target of visible ASCII and `HTTP/1.1`, then fields of a token name, a
 * colon at once and a value of visible characters, SP and HTAB, each line
 * ending with CRLF (the empty line is not part of the text it is given).
 * One test, which V8 compiles to native code, replaces a loop over every
 * character; its classes exclude CR and LF, so it runs in linear time.
 */
const SERVED_HEAD = /^(?:GET|HEAD|DELETE|OPTIONS) \/[\x21-\x7e]* HTTP\/1\.1\r\n(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*$/;

/** methodOf names the method a head SERVED_HEAD matched starts with, as a constant string (its hash is computed once, for the Set look-ups). */
function methodOf(t: string): string {
  switch (t.charCodeAt(0)) {
    case 0x47: return 'GET';
    case 0x48: return 'HEAD';
    case 0x44: return 'DELETE';
    default: return 'OPTIONS';
  }
}

/**
 * parseRequestHead parses the request head at buf[start..], or returns null
 * when the fast path does not serve it (see the module comment): the caller
 * then hands the connection, these bytes included, to node:http.
 */
export function parseRequestHead(buf: Buffer, start: number, maxHeadSize: number): RequestHead | null {
  const at = buf.indexOf(SECTION_END, start);
  // A head at or over the limit is node:http's to refuse (431), with its own counting.
  if (at < 0 || at + 4 - start >= maxHeadSize) return null;
  const t = buf.toString('latin1', start, at + 2); // the fields' last CRLF included, the empty line not
  if (!SERVED_HEAD.test(t)) return null;
  const method = methodOf(t);
  const methodEnd = method.length;
  const urlEnd = t.indexOf(' ', methodEnd + 1);
  const url = t.slice(methodEnd + 1, urlEnd);

  const rawHeaders: string[] = [];
  let hosts = 0;
  let lengths = 0;
  let close = false;
  const end = t.length;
  // Each field: its name up to the colon, its value trimmed of SP and HTAB, up to the CR of its CRLF.
  for (let s = urlEnd + 11; s < end;) {
    const lineEnd = t.indexOf('\r', s);
    const nameEnd = t.indexOf(':', s);
    const valueStart = trimStart(t, nameEnd + 1, lineEnd);
    const valueEnd = trimEnd(t, valueStart, lineEnd);
    const name = t.slice(s, nameEnd);
    // Fields that decide framing or the connection's fate: the fast path serves only their plain forms.
    switch (name.length) {
      case 4:
        if (isField(name, 'host', 'Host')) hosts++;
        break;
      case 6:
        if (isField(name, 'expect', 'Expect')) return null;
        break;
      case 7:
        if (isField(name, 'upgrade', 'Upgrade')) return null;
        break;
      case 10:
        if (isField(name, 'connection', 'Connection')) {
          for (let ts = nextToken(t, valueStart, valueEnd); ts >= 0; ts = nextToken(t, tokenEnd, valueEnd)) {
            const length = tokenEnd - ts;
            if (length === 5 && matchLower(t, ts, 'close')) close = true;
            else if (length !== 10 || !matchLower(t, ts, 'keep-alive')) return null;
          }
        }
        break;
      case 14:
        // "Content-Length: 0" announces no body; any other value (or a second one) is node:http's.
        // (Exactly "0": node:http refuses some trailing whitespace after the digits, so none is taken here.)
        if (isField(name, 'content-length', 'Content-Length') && (++lengths > 1 || valueEnd - valueStart !== 1 || t.charCodeAt(valueStart) !== 0x30 || valueEnd !== lineEnd)) return null;
        break;
      case 17:
        if (isField(name, 'transfer-encoding', 'Transfer-Encoding')) return null;
        break;
      default:
        break;
    }
    rawHeaders.push(name, t.slice(valueStart, valueEnd));
    if (rawHeaders.length > 2 * MAX_FIELDS) return null;
    s = lineEnd + 2;
  }
  // HTTP/1.1 requires exactly one Host (RFC 9112 3.2); node:http answers the others.
  if (hosts !== 1) return null;
  return { method, url, rawHeaders, close, end: at + 4 };
}

/**
 * Headers that node:http keeps once when repeated (the first wins), as
 * IncomingMessage#headers does; the others are joined with ", ", Cookie with "; ",
 * and Set-Cookie is an array.
 */
const SINGLE = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after',
  'server', 'user-agent',
]);

/**
 * FastRequest is what the pipeline reads of a request served on the fast
 * path: the same fields as node:http's IncomingMessage, for a request that
 * has no body (so it is always complete).
 */
export class FastRequest {
  #headers: IncomingHttpHeaders | null = null;

  constructor(
    readonly method: string,
    public url: string,
    readonly rawHeaders: string[],
    readonly socket: Socket,
    /** peer: the client's address, read once per connection (socket.remoteAddress asks the kernel the first time and goes through several getters after). */
    readonly peer: string,
  ) {}

  get httpVersionMajor(): number { return 1; }
  get httpVersionMinor(): number { return 1; }
  get httpVersion(): string { return '1.1'; }
  get complete(): boolean { return true; }

  /** headers: built on first use only, as node:http does, with its rules for repeated fields. */
  get headers(): IncomingHttpHeaders {
    if (this.#headers !== null) return this.#headers;
    const headers: Record<string, string | string[]> = {};
    const raw = this.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      const value = raw[i + 1]!;
      // Own properties only: a field named like an Object.prototype member ("constructor") is a field.
      const seen = Object.hasOwn(headers, name) ? headers[name] : undefined;
      if (name === 'set-cookie') {
        if (seen === undefined) headers[name] = [value];
        else (seen as string[]).push(value);
      } else if (seen === undefined) {
        headers[name] = value;
      } else if (!SINGLE.has(name)) {
        headers[name] = `${seen as string}${name === 'cookie' ? '; ' : ', '}${value}`;
      }
    }
    this.#headers = headers;
    return headers;
  }
}
