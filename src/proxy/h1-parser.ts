/**
 * An incremental HTTP/1.1 response parser, written for the proxy's hot path:
 * it reads the socket's Buffers in place (header names and values, and body
 * pieces, are subarrays of them), copies only a line split across two reads,
 * and hands the pieces to a sink as it finds them.
 *
 * It is strict where leniency lets a response be read two ways (request
 * smuggling's reverse, response splitting): CRLF line endings only, no
 * obsolete line folding, no whitespace before a header's colon, no control
 * characters in values, no Content-Length together with Transfer-Encoding,
 * no Content-Length values that disagree, and a Transfer-Encoding must end
 * with `chunked`. Errors carry llhttp's HPE_* codes.
 *
 * Body framing (RFC 9112 6.3): none for a HEAD request, 1xx, 204 and 304;
 * chunked; Content-Length; otherwise the body runs until the connection
 * closes. Interim 1xx responses (100, 102, 103...) are skipped; 101 is an
 * error, since the proxy never asks for an upgrade on this path.
 */
import { H1Error, type H1ErrorCode } from './h1-errors.js';

const LF = 10;
const CR = 13;
const SP = 32;
const HT = 9;
const COMMA = 44;
const COLON = 58;
const SEMICOLON = 59;
const EQUALS = 61;

/** TOKEN[c] is 1 for the characters allowed in a header name (RFC 9110 tchar). */
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TOKEN[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TOKEN[c] = 1;

/** VISIBLE[c] is 1 for the visible characters of a header value or reason phrase (VCHAR and obs-text); SP and HTAB are checked apart. */
const VISIBLE = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) VISIBLE[c] = 1;
for (let c = 0x80; c <= 0xff; c++) VISIBLE[c] = 1;

/** HEX[c] is the value of a hexadecimal digit, or 255. */
const HEX = new Uint8Array(256).fill(255);
for (let c = 0; c <= 9; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) { HEX[0x41 + c] = 10 + c; HEX[0x61 + c] = 10 + c; }

const lower = (s: string): Uint8Array => Uint8Array.from(s, (ch) => ch.charCodeAt(0));
const CONTENT_LENGTH = lower('content-length');
const TRANSFER_ENCODING = lower('transfer-encoding');
const CONNECTION = lower('connection');
const KEEP_ALIVE = lower('keep-alive');
const CHUNKED = lower('chunked');
const CLOSE = lower('close');
const TIMEOUT = lower('timeout');

/** matchLower compares b[s..] with a lower-case literal of letters and "-", ignoring the case of b. */
function matchLower(b: Buffer, s: number, literal: Uint8Array): boolean {
  for (let k = 0; k < literal.length; k++) if ((b[s + k]! | 0x20) !== literal[k]) return false;
  return true;
}

/** A chunk-size line (size and extensions) longer than this is refused: extensions must not make a backend's body unbounded work. */
const MAX_CHUNK_LINE = 16 * 1024;
/** Chunk sizes of more than 13 hex digits exceed Number.MAX_SAFE_INTEGER's range. */
const MAX_CHUNK_DIGITS = 13;
/** Content-Length of more than 15 digits exceed Number.MAX_SAFE_INTEGER's range. */
const MAX_LENGTH_DIGITS = 15;

/** What execute() returns. */
export const NEED_MORE = 0;
export const PAUSED = 1;
export const DONE = 2;
export const FAILED = 3;
export type ExecuteResult = typeof NEED_MORE | typeof PAUSED | typeof DONE | typeof FAILED;

/** Line parsers return the index after the line, or one of these. */
const INCOMPLETE = -1;
const ERROR = -2;

const S_HEAD = 0;
const S_BODY_LENGTH = 1;
const S_CHUNK_SIZE = 2;
const S_CHUNK_DATA = 3;
const S_CHUNK_END = 4;
const S_TRAILERS = 5;
const S_BODY_EOF = 6;
const S_DONE = 7;
const S_FAILED = 8;

/** ResponseSink receives a final response's head and body; returning false pauses the parser. */
export interface ResponseSink {
  onHead(statusCode: number, statusText: string, rawHeaders: Buffer[], hasBody: boolean): boolean;
  onBody(chunk: Buffer): boolean;
}

export class ResponseParser {
  /** offset: after PAUSED or DONE, the index of the first byte execute() did not consume. */
  offset = 0;
  error: H1Error | null = null;
  /** keepAlive: after the head, whether the connection may carry another request. */
  keepAlive = false;
  /** keepAliveHint: the backend's `Keep-Alive: timeout=` in ms, or -1. */
  keepAliveHint = -1;
  /** trailers: a chunked body's trailer fields, [name, value...], or null. */
  trailers: Buffer[] | null = null;

  #state = S_DONE;
  #isHead = false;
  #pause = false;
  #headBytes = 0;
  #statusLine = true;
  #status = 0;
  #statusText = '';
  #minor = 1;
  #headers: Buffer[] = [];
  #contentLength = -1;
  #te = false;
  #teChunked = false;
  #teInvalid = false;
  #connClose = false;
  #connKeepAlive = false;
  #remaining = 0;
  #crlf = 0;
  /** #line holds a line split across reads, until its end arrives. */
  #line: Buffer | null = null;
  #lineLength = 0;

  constructor(private readonly sink: ResponseSink, private readonly maxHeadSize: number) {}

  /** reset prepares for the response to a new request; a HEAD request's response has no body. */
  reset(isHead: boolean): void {
    this.#isHead = isHead;
    this.#beginHead();
    this.#state = S_HEAD;
    this.#pause = false;
    this.#line = null;
    this.#lineLength = 0;
    this.trailers = null;
    this.error = null;
  }

  /** bodyUntilEof: the response's body ends when the connection closes. */
  get bodyUntilEof(): boolean {
    return this.#state === S_BODY_EOF;
  }

  /** finishAtEof ends a body that runs until the connection closes; false if the connection closed too early. */
  finishAtEof(): boolean {
    if (this.#state !== S_BODY_EOF) return false;
    this.#state = S_DONE;
    return true;
  }

  /** execute consumes buf from start until it needs more bytes, the sink pauses it, the response ends, or an error. */
  execute(buf: Buffer, start: number): ExecuteResult {
    let pos = start;
    const end = buf.length;
    for (;;) {
      switch (this.#state) {
        case S_HEAD:
        case S_TRAILERS:
        case S_CHUNK_SIZE: {
          if (pos >= end) return NEED_MORE;
          let next: number;
          if (this.#line === null) {
            next = this.#parseLine(buf, pos);
            if (next === INCOMPLETE) return this.#keep(buf, pos, end) ? NEED_MORE : FAILED;
          } else {
            const lf = buf.indexOf(LF, pos);
            if (lf === -1) return this.#keep(buf, pos, end) ? NEED_MORE : FAILED;
            if (!this.#keep(buf, pos, lf + 1)) return FAILED;
            const line = this.#line.subarray(0, this.#lineLength);
            // The line's Buffer now belongs to the header values cut from it.
            this.#line = null;
            this.#lineLength = 0;
            next = this.#parseLine(line, 0);
            if (next === INCOMPLETE) next = this.#fail('HPE_CR_EXPECTED', 'line without CRLF');
            if (next >= 0) next = lf + 1;
          }
          if (next === ERROR) return FAILED;
          pos = next;
          if (this.#pause) {
            this.#pause = false;
            if ((this.#state as number) !== S_DONE) { // a response without a body is already complete
              this.offset = pos;
              return PAUSED;
            }
          }
          continue;
        }
        case S_BODY_LENGTH:
        case S_CHUNK_DATA: {
          if (pos >= end) return NEED_MORE;
          const n = Math.min(end - pos, this.#remaining);
          const chunk = buf.subarray(pos, pos + n);
          pos += n;
          this.#remaining -= n;
          if (this.#remaining === 0) {
            if (this.#state === S_BODY_LENGTH) this.#state = S_DONE;
            else { this.#state = S_CHUNK_END; this.#crlf = 0; }
          }
          if (!this.sink.onBody(chunk) && this.#state !== S_DONE) {
            this.offset = pos;
            return PAUSED;
          }
          continue;
        }
        case S_CHUNK_END: {
          if (pos >= end) return NEED_MORE;
          const c = buf[pos++];
          if (this.#crlf === 0) {
            if (c !== CR) return this.#failed('HPE_STRICT', 'expected CRLF after chunk data');
            this.#crlf = 1;
          } else {
            if (c !== LF) return this.#failed('HPE_LF_EXPECTED', 'expected LF after chunk data');
            this.#state = S_CHUNK_SIZE;
          }
          continue;
        }
        case S_BODY_EOF: {
          if (pos >= end) return NEED_MORE;
          const chunk = pos === 0 ? buf : buf.subarray(pos);
          pos = end;
          if (!this.sink.onBody(chunk)) {
            this.offset = pos;
            return PAUSED;
          }
          continue;
        }
        case S_DONE:
          this.offset = pos;
          return DONE;
        default:
          return FAILED;
      }
    }
  }

  #parseLine(b: Buffer, s: number): number {
    if (this.#state === S_HEAD) return this.#statusLine ? this.#parseStatusLine(b, s) : this.#parseField(b, s, false);
    if (this.#state === S_TRAILERS) return this.#parseField(b, s, true);
    return this.#parseChunkSize(b, s);
  }

  /** #keep copies the start of a line split across reads, within the size limits. */
  #keep(buf: Buffer, s: number, e: number): boolean {
    const n = e - s;
    const length = this.#lineLength + n;
    if (this.#state === S_CHUNK_SIZE ? length > MAX_CHUNK_LINE : this.#headBytes + length > this.maxHeadSize) {
      if (this.#state === S_CHUNK_SIZE) this.#fail('HPE_CHUNK_EXTENSIONS_OVERFLOW', 'chunk size line too long');
      else this.#fail('HPE_HEADER_OVERFLOW', `response head larger than ${this.maxHeadSize} bytes`);
      return false;
    }
    let line = this.#line;
    if (line === null || line.length < length) {
      const grown = Buffer.allocUnsafe(Math.max(256, length * 2));
      if (line !== null) line.copy(grown, 0, 0, this.#lineLength);
      this.#line = line = grown;
    }
    buf.copy(line, this.#lineLength, s, e);
    this.#lineLength = length;
    return true;
  }

  #parseStatusLine(b: Buffer, s: number): number {
    const lf = b.indexOf(LF, s);
    if (lf === -1) return INCOMPLETE;
    if (lf === s || b[lf - 1] !== CR) return this.#fail('HPE_CR_EXPECTED', 'status line without CRLF');
    const e = lf - 1;
    if (e - s < 5 || !(b[s] === 0x48 && b[s + 1] === 0x54 && b[s + 2] === 0x54 && b[s + 3] === 0x50 && b[s + 4] === 0x2f)) {
      return this.#fail('HPE_INVALID_CONSTANT', 'expected "HTTP/"');
    }
    const minor = b[s + 7]! - 0x30;
    if (e - s < 9 || b[s + 5] !== 0x31 || b[s + 6] !== 0x2e || (minor !== 0 && minor !== 1) || b[s + 8] !== SP) {
      return this.#fail('HPE_INVALID_VERSION', 'expected HTTP/1.1 or HTTP/1.0');
    }
    const d0 = b[s + 9]! - 0x30;
    const d1 = b[s + 10]! - 0x30;
    const d2 = b[s + 11]! - 0x30;
    if (e - s < 12 || d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return this.#fail('HPE_INVALID_STATUS', 'invalid status code');
    let statusText = '';
    if (e > s + 12) {
      if (b[s + 12] !== SP) return this.#fail('HPE_INVALID_STATUS', 'invalid status code');
      for (let i = s + 13; i < e; i++) {
        const c = b[i]!;
        if (VISIBLE[c] !== 1 && c !== SP && c !== HT) return this.#fail('HPE_INVALID_STATUS', 'invalid character in the reason phrase');
      }
      // The common phrase without a string allocation.
      statusText = e - s === 15 && b[s + 13] === 0x4f && b[s + 14] === 0x4b ? 'OK' : b.toString('latin1', s + 13, e);
    }
    this.#headBytes += lf + 1 - s;
    if (this.#headBytes > this.maxHeadSize) return this.#fail('HPE_HEADER_OVERFLOW', `response head larger than ${this.maxHeadSize} bytes`);
    this.#status = d0 * 100 + d1 * 10 + d2;
    this.#statusText = statusText;
    this.#minor = minor;
    this.#statusLine = false;
    return lf + 1;
  }

  /** #parseField parses one header (or trailer) line, or the empty line that ends the section. */
  #parseField(b: Buffer, s: number, trailer: boolean): number {
    const end = b.length;
    const first = b[s];
    if (first === CR) {
      if (s + 1 === end) return INCOMPLETE;
      if (b[s + 1] !== LF) return this.#fail('HPE_LF_EXPECTED', 'expected LF after CR');
      if (trailer) {
        this.#state = S_DONE;
        return s + 2;
      }
      return this.#headComplete(s + 2);
    }
    if (first === SP || first === HT) return this.#fail('HPE_INVALID_HEADER_TOKEN', 'obsolete line folding');
    let i = s;
    while (i < end && TOKEN[b[i]!] === 1) i++;
    if (i === end) return INCOMPLETE;
    if (b[i] !== COLON || i === s) {
      return this.#fail(b[i] === LF ? 'HPE_CR_EXPECTED' : 'HPE_INVALID_HEADER_TOKEN', 'invalid character in a header name');
    }
    const nameEnd = i++;
    while (i < end && (b[i] === SP || b[i] === HT)) i++;
    const valueStart = i;
    let valueEnd = i;
    for (; i < end; i++) {
      const c = b[i]!;
      if (VISIBLE[c] === 1) valueEnd = i + 1;
      else if (c !== SP && c !== HT) break;
    }
    if (i === end) return INCOMPLETE;
    if (b[i] !== CR) return this.#fail(b[i] === LF ? 'HPE_CR_EXPECTED' : 'HPE_INVALID_HEADER_TOKEN', 'invalid character in a header value');
    if (i + 1 === end) return INCOMPLETE;
    if (b[i + 1] !== LF) return this.#fail('HPE_LF_EXPECTED', 'expected LF after CR');
    const next = i + 2;
    this.#headBytes += next - s;
    if (this.#headBytes > this.maxHeadSize) {
      return this.#fail('HPE_HEADER_OVERFLOW', `response ${trailer ? 'trailers' : 'head'} larger than ${this.maxHeadSize} bytes`);
    }
    const name = b.subarray(s, nameEnd);
    const value = b.subarray(valueStart, valueEnd);
    if (trailer) {
      (this.trailers ??= []).push(name, value);
      return next;
    }
    this.#headers.push(name, value);
    return this.#framingField(b, s, nameEnd - s, valueStart, valueEnd) ? next : ERROR;
  }

  /** #framingField records the headers that decide the body's framing and the connection's reuse. */
  #framingField(b: Buffer, s: number, nameLength: number, vs: number, ve: number): boolean {
    if (nameLength === 14 && matchLower(b, s, CONTENT_LENGTH)) return this.#parseContentLength(b, vs, ve);
    if (nameLength === 17 && matchLower(b, s, TRANSFER_ENCODING)) {
      this.#te = true;
      for (let ts = nextToken(b, vs, ve); ts >= 0; ts = nextToken(b, tokenEnd, ve)) {
        // Anything after "chunked" (including a second "chunked") makes the framing ambiguous.
        if (this.#teChunked) this.#teInvalid = true;
        this.#teChunked = tokenEnd - ts === 7 && matchLower(b, ts, CHUNKED);
      }
    } else if (nameLength === 10) {
      if (matchLower(b, s, CONNECTION)) {
        for (let ts = nextToken(b, vs, ve); ts >= 0; ts = nextToken(b, tokenEnd, ve)) {
          const length = tokenEnd - ts;
          if (length === 5 && matchLower(b, ts, CLOSE)) this.#connClose = true;
          else if (length === 10 && matchLower(b, ts, KEEP_ALIVE)) this.#connKeepAlive = true;
        }
      } else if (matchLower(b, s, KEEP_ALIVE)) {
        for (let ts = nextToken(b, vs, ve); ts >= 0; ts = nextToken(b, tokenEnd, ve)) {
          const seconds = timeoutParam(b, ts, tokenEnd);
          if (seconds >= 0) this.keepAliveHint = seconds * 1000;
        }
      }
    }
    return true;
  }

  #parseContentLength(b: Buffer, vs: number, ve: number): boolean {
    let n = ve === vs || ve - vs > MAX_LENGTH_DIGITS ? -1 : 0;
    for (let i = vs; i < ve && n >= 0; i++) {
      const d = b[i]! - 0x30;
      n = d < 0 || d > 9 ? -1 : n * 10 + d;
    }
    if (n < 0) {
      this.#fail('HPE_INVALID_CONTENT_LENGTH', 'invalid Content-Length');
      return false;
    }
    if (this.#contentLength >= 0 && this.#contentLength !== n) {
      this.#fail('HPE_UNEXPECTED_CONTENT_LENGTH', 'Content-Length headers with different values');
      return false;
    }
    this.#contentLength = n;
    return true;
  }

  /** #headComplete decides the body's framing once the head's empty line is read. */
  #headComplete(next: number): number {
    const status = this.#status;
    if (status < 200) {
      if (status === 101) return this.#fail('HPE_INVALID_STATUS', 'unexpected 101 Switching Protocols: no upgrade was asked for');
      // An interim response (100 Continue, 102, 103 Early Hints): the final one follows.
      this.#beginHead();
      return next;
    }
    if (this.#te) {
      if (this.#contentLength >= 0) return this.#fail('HPE_UNEXPECTED_CONTENT_LENGTH', 'both Content-Length and Transfer-Encoding');
      if (this.#teInvalid || !this.#teChunked) return this.#fail('HPE_INVALID_TRANSFER_ENCODING', 'Transfer-Encoding must end with chunked, applied once');
    }
    this.keepAlive = this.#minor === 1 ? !this.#connClose : this.#connKeepAlive && !this.#connClose;
    let hasBody = true;
    if (this.#isHead || status === 204 || status === 304) {
      hasBody = false;
      this.#state = S_DONE;
    } else if (this.#te) {
      this.#state = S_CHUNK_SIZE;
    } else if (this.#contentLength >= 0) {
      this.#remaining = this.#contentLength;
      hasBody = this.#remaining > 0;
      this.#state = hasBody ? S_BODY_LENGTH : S_DONE;
    } else {
      this.#state = S_BODY_EOF;
      this.keepAlive = false;
    }
    const headers = this.#headers;
    this.#headers = [];
    if (!this.sink.onHead(status, this.#statusText, headers, hasBody)) this.#pause = true;
    return next;
  }

  #parseChunkSize(b: Buffer, s: number): number {
    const lf = b.indexOf(LF, s);
    if (lf === -1) return INCOMPLETE;
    if (lf === s || b[lf - 1] !== CR) return this.#fail('HPE_CR_EXPECTED', 'chunk size line without CRLF');
    const e = lf - 1;
    let i = s;
    let size = 0;
    for (; i < e; i++) {
      const h = HEX[b[i]!]!;
      if (h === 255) break;
      size = size * 16 + h;
    }
    if (i === s || i - s > MAX_CHUNK_DIGITS) return this.#fail('HPE_INVALID_CHUNK_SIZE', 'invalid chunk size');
    if (i < e) {
      if (b[i] !== SEMICOLON) return this.#fail('HPE_INVALID_CHUNK_SIZE', 'invalid character in chunk size');
      for (i++; i < e; i++) {
        const c = b[i]!;
        if (VISIBLE[c] !== 1 && c !== SP && c !== HT) return this.#fail('HPE_INVALID_CHUNK_SIZE', 'invalid character in a chunk extension');
      }
    }
    if (size === 0) {
      this.#state = S_TRAILERS;
      this.#headBytes = 0;
    } else {
      this.#remaining = size;
      this.#state = S_CHUNK_DATA;
    }
    return lf + 1;
  }

  #beginHead(): void {
    this.#statusLine = true;
    this.#headBytes = 0;
    this.#headers = [];
    this.#contentLength = -1;
    this.#te = false;
    this.#teChunked = false;
    this.#teInvalid = false;
    this.#connClose = false;
    this.#connKeepAlive = false;
    this.keepAliveHint = -1;
  }

  #fail(code: H1ErrorCode, message: string): typeof ERROR {
    this.error = new H1Error(code, `invalid response from backend: ${message}`);
    this.#state = S_FAILED;
    return ERROR;
  }

  #failed(code: H1ErrorCode, message: string): typeof FAILED {
    this.#fail(code, message);
    return FAILED;
  }
}

/** tokenEnd: where the element nextToken found ends (a second return value, without allocating). */
let tokenEnd = 0;

/**
 * nextToken finds the next comma-separated, whitespace-trimmed, non-empty
 * element of b[i..e): it returns its start and sets tokenEnd, or returns -1.
 * Call it again from tokenEnd for the following one.
 */
function nextToken(b: Buffer, i: number, e: number): number {
  while (i < e && (b[i] === SP || b[i] === HT || b[i] === COMMA)) i++;
  if (i >= e) return -1;
  const ts = i;
  while (i < e && b[i] !== COMMA) i++;
  while (i > ts && (b[i - 1] === SP || b[i - 1] === HT)) i--;
  tokenEnd = i;
  return ts;
}

/** timeoutParam reads "timeout=N" (case-insensitive name, optional spaces around "=") from b[s..e); -1 if it is something else. */
function timeoutParam(b: Buffer, s: number, e: number): number {
  if (e - s < 9 || !matchLower(b, s, TIMEOUT)) return -1;
  let i = s + 7;
  while (i < e && (b[i] === SP || b[i] === HT)) i++;
  if (b[i] !== EQUALS) return -1;
  i++;
  while (i < e && (b[i] === SP || b[i] === HT)) i++;
  if (i === e || e - i > 9) return -1;
  let n = 0;
  for (; i < e; i++) {
    const d = b[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}
