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
import { CR, HT, LF, SECTION_END, SP, TOKEN, VISIBLE, matchLower, nextToken, tokenEnd } from './h1-chars.js';

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

/** methodAt returns the method the request line at t starts with, if the fast path serves it, or ''. */
function methodAt(t: string): string {
  switch (t.charCodeAt(0)) {
    case 0x47: return t.startsWith('GET ') ? 'GET' : '';
    case 0x48: return t.startsWith('HEAD ') ? 'HEAD' : '';
    case 0x44: return t.startsWith('DELETE ') ? 'DELETE' : '';
    case 0x4f: return t.startsWith('OPTIONS ') ? 'OPTIONS' : '';
    default: return '';
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
  const method = methodAt(t);
  if (method === '') return null;
  let i = method.length + 1;
  if (t.charCodeAt(i) !== 0x2f /* "/" */) return null;
  const urlStart = i;
  for (let c = t.charCodeAt(i); c > SP && c < 0x7f; c = t.charCodeAt(++i));
  const url = t.slice(urlStart, i);
  if (t.charCodeAt(i) !== SP || !t.startsWith('HTTP/1.1\r\n', i + 1)) return null;
  i += 11;

  const rawHeaders: string[] = [];
  let hosts = 0;
  let lengths = 0;
  let close = false;
  const end = t.length;
  while (i < end) {
    // Field name: a token, then the colon at once (no whitespace before it, no folding).
    const s = i;
    while (TOKEN[t.charCodeAt(i)] === 1) i++;
    const nameEnd = i;
    if (nameEnd === s || t.charCodeAt(i) !== 0x3a /* ":" */) return null;
    i++;
    while (t.charCodeAt(i) === SP || t.charCodeAt(i) === HT) i++;
    const valueStart = i;
    let valueEnd = i;
    for (;; i++) {
      const c = t.charCodeAt(i);
      if (VISIBLE[c] === 1) valueEnd = i + 1;
      else if (c !== SP && c !== HT) break;
    }
    if (t.charCodeAt(i) !== CR || t.charCodeAt(i + 1) !== LF) return null;
    i += 2;
    const nameLength = nameEnd - s;
    // Fields that decide framing or the connection's fate: the fast path serves only their plain forms.
    switch (nameLength) {
      case 4:
        if (matchLower(t, s, 'host')) hosts++;
        break;
      case 6:
        if (matchLower(t, s, 'expect')) return null;
        break;
      case 7:
        if (matchLower(t, s, 'upgrade')) return null;
        break;
      case 10:
        if (matchLower(t, s, 'connection')) {
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
        if (matchLower(t, s, 'content-length') && (++lengths > 1 || valueEnd - valueStart !== 1 || t.charCodeAt(valueStart) !== 0x30 || valueEnd !== i - 2)) return null;
        break;
      case 17:
        if (matchLower(t, s, 'transfer-encoding')) return null;
        break;
      default:
        break;
    }
    rawHeaders.push(t.slice(s, nameEnd), t.slice(valueStart, valueEnd));
    if (rawHeaders.length > 2 * MAX_FIELDS) return null;
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
