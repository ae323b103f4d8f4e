/**
 * An incremental HTTP/1.1 response parser, written for the proxy's hot path.
 * A head (or trailer section) is found whole in the socket's Buffer (its
 * bytes are copied only when it spans reads), turned into one latin1 string
 * with one native call, and parsed in that string: header names and values
 * are slices of it, not a Buffer and a string each. Body pieces are
 * subarrays of the socket's Buffers.
 *
 * It is strict where leniency lets a response be read two ways (request
 * smuggling's reverse, response splitting): CRLF line endings only, no
 * obsolete line folding, no whitespace before a header's colon, no control
 * characters in values, no Content-Length together with Transfer-Encoding,
 * no Content-Length values that disagree, and a Transfer-Encoding must end
 * with `chunked`. Errors carry llhttp's HPE_* codes.
 *
 * A head is first checked whole against one regular expression (V8 runs
 * it as native code, a few instructions per character, where a loop over
 * a string's characters costs ~40); a head that passes is split with
 * indexOf. One that does not (malformed, or merely unusual in a way the
 * expression does not cover) is parsed by the character loops, which name
 * the error. Both paths accept the same heads (test/unit/h1-parser.test.ts).
 *
 * Body framing (RFC 9112 6.3): none for a HEAD request, 1xx, 204 and 304;
 * chunked; Content-Length; otherwise the body runs until the connection
 * closes. Interim 1xx responses (100, 102, 103...) are skipped; 101 is an
 * error, since the proxy never asks for an upgrade on this path.
 */
import { COLON, CR, HT, LF, SECTION_END, SP, TOKEN, VISIBLE, isField, matchLower, nextToken, tokenEnd, trimEnd, trimStart } from './chars.js';
import { H1Error, type H1ErrorCode } from './errors.js';

const SEMICOLON = 59;

/** A Content-Length value: digits only, no more than Number.MAX_SAFE_INTEGER's 15 (then Number() reads it exactly). */
const DIGITS = /^[0-9]{1,15}$/;
/** The usual Keep-Alive value, "timeout=N" alone: read without the token loop. */
const PLAIN_TIMEOUT = /^timeout=[0-9]{1,9}$/;

/**
 * VALID_HEAD matches a whole response head the character loops accept: a
 * status line (HTTP/1.0 or 1.1, a 3-digit status, an optional reason
 * phrase of visible characters, SP and HTAB), fields of a token name, a
 * colon at once and a value of visible characters, SP and HTAB, each line
 * ending with CRLF, then the empty line. Its classes exclude CR and LF, so
 * it runs in linear time.
 */
export const VALID_HEAD = /^HTTP\/1\.[01] [1-9][0-9][0-9](?: [\t\x20-\x7e\x80-\xff]*)?\r\n(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*\r\n$/;
const EQUALS = 61;

/** HEX[c] is the value of a hexadecimal digit, or 255. */
const HEX = new Uint8Array(256).fill(255);
for (let c = 0; c <= 9; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) { HEX[0x41 + c] = 10 + c; HEX[0x61 + c] = 10 + c; }

/** A chunk-size line (size and extensions) longer than this is refused: extensions must not make a backend's body unbounded work. */
const MAX_CHUNK_LINE = 16 * 1024;
/** Chunk sizes of more than 13 hex digits exceed Number.MAX_SAFE_INTEGER's range. */
const MAX_CHUNK_DIGITS = 13;

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
  /** onHead: rawHeaders are [name, value...] as received (latin1 strings). */
  onHead(statusCode: number, statusText: string, rawHeaders: string[], hasBody: boolean): boolean;
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
  trailers: string[] | null = null;

  #state = S_DONE;
  #isHead = false;
  #pause = false;
  #status = 0;
  #statusText = '';
  #minor = 1;
  #headers: string[] = [];
  #contentLength = -1;
  #te = false;
  #teChunked = false;
  #teInvalid = false;
  #connClose = false;
  #connKeepAlive = false;
  #remaining = 0;
  #crlf = 0;
  /** #line holds a chunk-size line split across reads, until its end arrives. */
  #line: Buffer | null = null;
  #lineLength = 0;
  /** #section holds the start of a head or trailer section split across reads, until its end arrives. */
  #section: Buffer | null = null;
  #sectionLength = 0;

  /** checkWholeHead: try VALID_HEAD first (off only to test the character loops alone). */
  constructor(private readonly sink: ResponseSink, private readonly maxHeadSize: number, private readonly checkWholeHead = true) {}

  /** reset prepares for the response to a new request; a HEAD request's response has no body. */
  reset(isHead: boolean): void {
    this.#isHead = isHead;
    this.#beginHead();
    this.#state = S_HEAD;
    this.#pause = false;
    this.#line = null;
    this.#lineLength = 0;
    this.#section = null;
    this.#sectionLength = 0;
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
        case S_TRAILERS: {
          if (pos >= end) return NEED_MORE;
          const next = this.#sectionAt(buf, pos, end);
          if (next === INCOMPLETE) return NEED_MORE;
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
        case S_CHUNK_SIZE: {
          if (pos >= end) return NEED_MORE;
          let next: number;
          if (this.#line === null) {
            next = this.#parseChunkSize(buf, pos);
            if (next === INCOMPLETE) return this.#keep(buf, pos, end) ? NEED_MORE : FAILED;
          } else {
            const lf = buf.indexOf(LF, pos);
            if (lf === -1) return this.#keep(buf, pos, end) ? NEED_MORE : FAILED;
            if (!this.#keep(buf, pos, lf + 1)) return FAILED;
            const line = this.#line.subarray(0, this.#lineLength);
            this.#line = null;
            this.#lineLength = 0;
            next = this.#parseChunkSize(line, 0);
            if (next === INCOMPLETE) next = this.#fail('HPE_CR_EXPECTED', 'line without CRLF');
            if (next >= 0) next = lf + 1;
          }
          if (next === ERROR) return FAILED;
          pos = next;
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

  /** #keep copies the start of a chunk-size line split across reads, within its size limit. */
  #keep(buf: Buffer, s: number, e: number): boolean {
    const length = this.#lineLength + e - s;
    if (length > MAX_CHUNK_LINE) {
      this.#fail('HPE_CHUNK_EXTENSIONS_OVERFLOW', 'chunk size line too long');
      return false;
    }
    this.#line = grow(this.#line, this.#lineLength, length);
    buf.copy(this.#line, this.#lineLength, s, e);
    this.#lineLength = length;
    return true;
  }

  /**
   * #sectionAt parses the head or trailer section starting at buf[pos] when
   * it is complete, in this read or with the bytes kept from earlier ones.
   * It returns the index in buf after the section, INCOMPLETE (the bytes are
   * kept) or ERROR.
   */
  #sectionAt(buf: Buffer, pos: number, end: number): number {
    // A section is at most maxHeadSize bytes and its empty line.
    const limit = this.maxHeadSize + 4;
    let text: string;
    let next: number;
    if (this.#section === null) {
      const e = this.#sectionEnd(buf, pos, end);
      if (e < 0) {
        const n = Math.min(end - pos, limit);
        this.#section = grow(null, 0, n);
        buf.copy(this.#section, 0, pos, pos + n);
        this.#sectionLength = n;
        return n === limit ? this.#overflow() : INCOMPLETE;
      }
      if (e - pos > limit) return this.#overflow();
      text = buf.toString('latin1', pos, e);
      next = e;
    } else {
      const kept = this.#sectionLength;
      const n = Math.min(end - pos, limit - kept);
      const section = this.#section = grow(this.#section, kept, kept + n);
      buf.copy(section, kept, pos, pos + n);
      this.#sectionLength = kept + n;
      // The end may straddle the two reads: search from just before the new bytes.
      const e = this.#sectionEnd(section, Math.max(0, kept - 3), kept + n, 0);
      if (e < 0) return kept + n === limit ? this.#overflow() : INCOMPLETE;
      this.#section = null;
      this.#sectionLength = 0;
      text = section.toString('latin1', 0, e);
      next = pos + e - kept;
    }
    return this.#parseSection(text) ? next : ERROR;
  }

  /**
   * #sectionEnd returns the index after a section's empty line in b[from..end)
   * (the section itself starts at `start`), or -1. A bare LF ends the search
   * too: parsing then stops at it with an error, rather than waiting for more.
   */
  #sectionEnd(b: Buffer, from: number, end: number, start = from): number {
    if (this.#state === S_TRAILERS && end - start >= 2 && b[start] === CR && b[start + 1] === LF) return start + 2; // no trailers
    const i = b.indexOf(SECTION_END, from);
    if (i >= 0 && i + 4 <= end) return i + 4;
    for (let lf = b.indexOf(LF, from); lf >= 0 && lf < end; lf = b.indexOf(LF, lf + 1)) {
      if (lf === start || b[lf - 1] !== CR) return lf + 1;
    }
    return -1;
  }

  #overflow(): typeof ERROR {
    return this.#fail('HPE_HEADER_OVERFLOW', `response ${this.#state === S_TRAILERS ? 'trailers' : 'head'} larger than ${this.maxHeadSize} bytes`);
  }

  /** #parseSection parses a whole head (status line, fields) or trailer section, ending with its empty line. */
  #parseSection(t: string): boolean {
    const trailer = this.#state === S_TRAILERS;
    if (!trailer && this.checkWholeHead && VALID_HEAD.test(t)) return this.#parseValidHead(t);
    let i = trailer ? 0 : this.#parseStatusLine(t);
    while (i >= 0) {
      if (t.charCodeAt(i) === CR && t.charCodeAt(i + 1) === LF) {
        // The empty line: bytes past it were never part of this section.
        if (trailer) this.#state = S_DONE;
        else this.#headComplete();
        return true;
      }
      i = this.#parseField(t, i, trailer);
    }
    return false;
  }

  /** #parseValidHead splits a head VALID_HEAD matched: only framing fields can still be refused. */
  #parseValidHead(t: string): boolean {
    const lf = t.indexOf('\n');
    this.#minor = t.charCodeAt(7) - 0x30;
    this.#status = (t.charCodeAt(9) - 0x30) * 100 + (t.charCodeAt(10) - 0x30) * 10 + t.charCodeAt(11) - 0x30;
    this.#statusText = lf > 13 ? t.slice(13, lf - 1) : '';
    const headers = this.#headers;
    let s = lf + 1;
    for (let e = t.indexOf('\r', s); e !== s; e = t.indexOf('\r', s)) {
      const colon = t.indexOf(':', s);
      const vs = trimStart(t, colon + 1, e);
      const ve = trimEnd(t, vs, e);
      const name = t.slice(s, colon);
      const value = t.slice(vs, ve);
      headers.push(name, value);
      if (!this.#framingField(name, value)) return false;
      s = e + 2;
    }
    this.#headComplete(); // as below: a framing error leaves the parser FAILED
    return true;
  }

  #parseStatusLine(t: string): number {
    const lf = t.indexOf('\n');
    if (lf <= 0 || t.charCodeAt(lf - 1) !== CR) return this.#fail('HPE_CR_EXPECTED', 'status line without CRLF');
    const e = lf - 1;
    if (e < 5 || !t.startsWith('HTTP/')) return this.#fail('HPE_INVALID_CONSTANT', 'expected "HTTP/"');
    const minor = t.charCodeAt(7) - 0x30;
    if (e < 9 || t.charCodeAt(5) !== 0x31 || t.charCodeAt(6) !== 0x2e || (minor !== 0 && minor !== 1) || t.charCodeAt(8) !== SP) {
      return this.#fail('HPE_INVALID_VERSION', 'expected HTTP/1.1 or HTTP/1.0');
    }
    const d0 = t.charCodeAt(9) - 0x30;
    const d1 = t.charCodeAt(10) - 0x30;
    const d2 = t.charCodeAt(11) - 0x30;
    if (e < 12 || d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return this.#fail('HPE_INVALID_STATUS', 'invalid status code');
    let statusText = '';
    if (e > 12) {
      if (t.charCodeAt(12) !== SP) return this.#fail('HPE_INVALID_STATUS', 'invalid status code');
      for (let i = 13; i < e; i++) {
        const c = t.charCodeAt(i);
        if (VISIBLE[c] !== 1 && c !== SP && c !== HT) return this.#fail('HPE_INVALID_STATUS', 'invalid character in the reason phrase');
      }
      statusText = t.slice(13, e);
    }
    this.#status = d0 * 100 + d1 * 10 + d2;
    this.#statusText = statusText;
    this.#minor = minor;
    return lf + 1;
  }

  /** #parseField parses one header (or trailer) line of t at s, and returns the index after it. */
  #parseField(t: string, s: number, trailer: boolean): number {
    const end = t.length;
    const first = t.charCodeAt(s);
    if (first === CR) return this.#fail('HPE_LF_EXPECTED', 'expected LF after CR');
    if (first === SP || first === HT) return this.#fail('HPE_INVALID_HEADER_TOKEN', 'obsolete line folding');
    let i = s;
    while (i < end && TOKEN[t.charCodeAt(i)] === 1) i++;
    const stop = t.charCodeAt(i);
    if (stop !== COLON || i === s) {
      return this.#fail(stop === LF ? 'HPE_CR_EXPECTED' : 'HPE_INVALID_HEADER_TOKEN', 'invalid character in a header name');
    }
    const nameEnd = i++;
    while (i < end && (t.charCodeAt(i) === SP || t.charCodeAt(i) === HT)) i++;
    const valueStart = i;
    let valueEnd = i;
    for (; i < end; i++) {
      const c = t.charCodeAt(i);
      if (VISIBLE[c] === 1) valueEnd = i + 1;
      else if (c !== SP && c !== HT) break;
    }
    const c = t.charCodeAt(i);
    if (c !== CR) return this.#fail(c === LF || i === end ? 'HPE_CR_EXPECTED' : 'HPE_INVALID_HEADER_TOKEN', 'invalid character in a header value');
    if (t.charCodeAt(i + 1) !== LF) return this.#fail('HPE_LF_EXPECTED', 'expected LF after CR');
    const name = t.slice(s, nameEnd);
    const value = t.slice(valueStart, valueEnd);
    if (trailer) {
      (this.trailers ??= []).push(name, value);
      return i + 2;
    }
    this.#headers.push(name, value);
    return this.#framingField(name, value) ? i + 2 : ERROR;
  }

  /**
   * #framingField records the headers that decide the body's framing and
   * the connection's reuse. The usual spellings and values are recognised
   * by whole-string comparisons and regular expressions, which V8 runs
   * natively; the token loops handle the rest.
   */
  #framingField(name: string, value: string): boolean {
    switch (name.length) {
      case 14:
        return isField(name, 'content-length', 'Content-Length') ? this.#parseContentLength(value) : true;
      case 17:
        if (isField(name, 'transfer-encoding', 'Transfer-Encoding')) {
          this.#te = true;
          for (let ts = nextToken(value, 0, value.length); ts >= 0; ts = nextToken(value, tokenEnd, value.length)) {
            // Anything after "chunked" (including a second "chunked") makes the framing ambiguous.
            if (this.#teChunked) this.#teInvalid = true;
            this.#teChunked = tokenEnd - ts === 7 && matchLower(value, ts, 'chunked');
          }
        }
        return true;
      case 10: {
        // isField lower-cases at most one of the two (their first letters differ).
        if (isField(name, 'connection', 'Connection')) {
          if (value === 'keep-alive') this.#connKeepAlive = true;
          else if (value === 'close') this.#connClose = true;
          else {
            for (let ts = nextToken(value, 0, value.length); ts >= 0; ts = nextToken(value, tokenEnd, value.length)) {
              const length = tokenEnd - ts;
              if (length === 5 && matchLower(value, ts, 'close')) this.#connClose = true;
              else if (length === 10 && matchLower(value, ts, 'keep-alive')) this.#connKeepAlive = true;
            }
          }
        } else if (isField(name, 'keep-alive', 'Keep-Alive')) {
          if (PLAIN_TIMEOUT.test(value)) {
            this.keepAliveHint = Number(value.slice(8)) * 1000;
          } else {
            for (let ts = nextToken(value, 0, value.length); ts >= 0; ts = nextToken(value, tokenEnd, value.length)) {
              const seconds = timeoutParam(value, ts, tokenEnd);
              if (seconds >= 0) this.keepAliveHint = seconds * 1000;
            }
          }
        }
        return true;
      }
      default:
        return true;
    }
  }

  #parseContentLength(value: string): boolean {
    const n = DIGITS.test(value) ? Number(value) : -1;
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
  #headComplete(): boolean {
    const status = this.#status;
    if (status < 200) {
      if (status === 101) return this.#failedHead('HPE_INVALID_STATUS', 'unexpected 101 Switching Protocols: no upgrade was asked for');
      // An interim response (100 Continue, 102, 103 Early Hints): the final one follows.
      this.#beginHead();
      return true;
    }
    if (this.#te) {
      if (this.#contentLength >= 0) return this.#failedHead('HPE_UNEXPECTED_CONTENT_LENGTH', 'both Content-Length and Transfer-Encoding');
      if (this.#teInvalid || !this.#teChunked) return this.#failedHead('HPE_INVALID_TRANSFER_ENCODING', 'Transfer-Encoding must end with chunked, applied once');
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
    return true;
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
    } else {
      this.#remaining = size;
      this.#state = S_CHUNK_DATA;
    }
    return lf + 1;
  }

  #beginHead(): void {
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

  #failedHead(code: H1ErrorCode, message: string): false {
    this.#fail(code, message);
    return false;
  }

  #failed(code: H1ErrorCode, message: string): typeof FAILED {
    this.#fail(code, message);
    return FAILED;
  }
}

/** timeoutParam reads "timeout=N" (case-insensitive name, optional spaces around "=") from t[s..e); -1 if it is something else. */
function timeoutParam(t: string, s: number, e: number): number {
  if (e - s < 9 || !matchLower(t, s, 'timeout')) return -1;
  let i = s + 7;
  while (i < e && (t.charCodeAt(i) === SP || t.charCodeAt(i) === HT)) i++;
  if (t.charCodeAt(i) !== EQUALS) return -1;
  i++;
  while (i < e && (t.charCodeAt(i) === SP || t.charCodeAt(i) === HT)) i++;
  if (i === e || e - i > 9) return -1;
  let n = 0;
  for (; i < e; i++) {
    const d = t.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** grow returns a Buffer of at least `length` bytes holding the first `kept` bytes of `b`. */
function grow(b: Buffer | null, kept: number, length: number): Buffer {
  if (b !== null && b.length >= length) return b;
  const grown = Buffer.allocUnsafe(Math.max(256, length * 2));
  if (b !== null) b.copy(grown, 0, 0, kept);
  return grown;
}
