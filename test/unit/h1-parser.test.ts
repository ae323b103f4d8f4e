/**
 * The upstream response parser's two ways of reading a head
 * (src/http1/response-parser.ts), differentially: the fast path (the whole head
 * matched against VALID_HEAD, then split with indexOf) against the
 * character loops alone (`new ResponseParser(sink, max, false)`), which are
 * the reference since they name every error. For each raw input (a head,
 * possibly followed by body bytes or a further response) both parsers must
 * show exactly the same behaviour: every execute() result and offset, the
 * error's code and message, every onHead call (status, reason, rawHeaders,
 * hasBody) and onBody chunk in order, the trailers, and afterwards
 * keepAlive, keepAliveHint and bodyUntilEof; also with isHead=true, with a
 * sink that pauses after the head, and with the input split across two
 * reads at every position. The corpus: hand-written heads, each with the
 * outcome intended (ordinary, framing and keep-alive cases; interim 1xx;
 * every malformation the loops name), and several hundred seeded random
 * one- and two-byte mutants of valid responses plus systematic SP/HTAB
 * insertions around ':', ',', whitespace and CR. The test checks it is not
 * vacuous: VALID_HEAD matches the valid bases and many accepted corpus
 * heads, only the fast parser tests it (so the fast path really runs), and
 * the mutants include many accepted and many refused inputs.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { DONE, FAILED, NEED_MORE, PAUSED, ResponseParser, VALID_HEAD, type ResponseSink } from '../../src/http1/response-parser.js';
import { mutants, show } from '../helpers/mutants.js';

const MAX_HEAD = 65536;

/** Event is one sink call, in order. */
type Event =
  | { head: { statusCode: number; statusText: string; rawHeaders: string[]; hasBody: boolean } }
  | { body: string };

/** Observed is everything a parser's user can see of one run. */
interface Observed {
  /** steps: each execute() result, with the offset after PAUSED or DONE. */
  steps: Array<{ result: number; offset?: number }>;
  error: { code: string; message: string } | null;
  events: Event[];
  trailers: string[] | null;
  keepAlive: boolean;
  keepAliveHint: number;
  bodyUntilEof: boolean;
}

interface RunOptions {
  fast: boolean;
  isHead?: boolean;
  maxHeadSize?: number;
  /** pauseHead: onHead returns false, so execute() returns PAUSED after a head with a body; the run resumes at offset. */
  pauseHead?: boolean;
}

/** run feeds the pieces (latin1 strings), each as a new Buffer from 0, to a fresh parser, and records what it saw. */
function run(pieces: readonly string[], opts: RunOptions): Observed {
  const events: Event[] = [];
  const sink: ResponseSink = {
    onHead(statusCode, statusText, rawHeaders, hasBody) {
      events.push({ head: { statusCode, statusText, rawHeaders: [...rawHeaders], hasBody } });
      return opts.pauseHead !== true;
    },
    onBody(chunk) {
      events.push({ body: chunk.toString('latin1') });
      return true;
    },
  };
  const parser = new ResponseParser(sink, opts.maxHeadSize ?? MAX_HEAD, opts.fast);
  parser.reset(opts.isHead ?? false);
  const steps: Observed['steps'] = [];
  feed: for (const piece of pieces) {
    const buf = Buffer.from(piece, 'latin1');
    let start = 0;
    for (let guard = 0; guard < 100; guard++) {
      const result = parser.execute(buf, start);
      if (result === PAUSED || result === DONE) steps.push({ result, offset: parser.offset });
      else steps.push({ result });
      if (result === PAUSED) {
        start = parser.offset;
        continue;
      }
      if (result === NEED_MORE) continue feed;
      break feed; // DONE or FAILED: the rest is not this response's
    }
    throw new Error(`execute() paused 100 times on ${show(piece)}`);
  }
  return {
    steps,
    error: parser.error === null ? null : { code: parser.error.code, message: parser.error.message },
    events,
    trailers: parser.trailers === null ? null : [...parser.trailers],
    keepAlive: parser.keepAlive,
    keepAliveHint: parser.keepAliveHint,
    bodyUntilEof: parser.bodyUntilEof,
  };
}


/** differ runs pieces on both paths and returns the disagreement, or ''. */
function differ(pieces: readonly string[], opts: Omit<RunOptions, 'fast'> = {}): string {
  const fast = run(pieces, { ...opts, fast: true });
  const loops = run(pieces, { ...opts, fast: false });
  try {
    assert.deepEqual(fast, loops);
    return '';
  } catch {
    return `${pieces.map(show).join(' + ')} ${JSON.stringify(opts)}:\n  fast path:  ${show(JSON.stringify(fast))}\n  char loops: ${show(JSON.stringify(loops))}`;
  }
}

/** outcome: 'ok' when a final head was read without error, 'fail' on an error, 'more' when neither yet. */
function outcome(o: Observed): 'ok' | 'fail' | 'more' {
  if (o.error !== null) return 'fail';
  return o.events.some((e) => 'head' in e) ? 'ok' : 'more';
}

/** headOf is the first head of raw, through its empty line (what VALID_HEAD is tested against). */
function headOf(raw: string): string {
  const e = raw.indexOf('\r\n\r\n');
  return e < 0 ? raw : raw.slice(0, e + 4);
}

// ---------------------------------------------------------------------------
// The hand-written corpus.

interface Case {
  name: string;
  raw: string;
  /** expect: the outcome with isHead=false; code: the error's code when it fails. */
  expect: 'ok' | 'fail' | 'more';
  code?: string;
  maxHeadSize?: number;
}

const OK = 'HTTP/1.1 200 OK\r\n';
const r = (fields: string, body = '', statusLine = OK): string => `${statusLine}${fields}\r\n${body}`;
const CL0 = 'Content-Length: 0\r\n';
const CHUNKED = '5\r\nhello\r\n0\r\n\r\n';
/** big: a head of exactly `size` bytes through its empty line. */
const big = (size: number): string => {
  const bare = r('X-Pad: \r\n');
  return r(`X-Pad: ${'p'.repeat(size - bare.length)}\r\n`);
};

const CASES: Case[] = [
  // Ordinary responses.
  { name: '200 with Content-Length', expect: 'ok', raw: r('Content-Type: text/plain\r\nContent-Length: 5\r\n', 'hello') },
  { name: '200 with Content-Length, then the next response', expect: 'ok', raw: r('Content-Length: 2\r\n', `hi${OK}${CL0}\r\n`) },
  { name: '200 with Content-Length, body incomplete', expect: 'ok', raw: r('Content-Length: 10\r\n', 'hel') },
  { name: 'Content-Length: 0', expect: 'ok', raw: r(CL0) },
  { name: 'chunked', expect: 'ok', raw: r('Transfer-Encoding: chunked\r\n', CHUNKED) },
  { name: 'chunked with an extension and trailers', expect: 'ok', raw: r('Transfer-Encoding: chunked\r\nTrailer: X-T\r\n', '5;ext="a b"\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\nX-U:  u \r\n\r\n') },
  { name: 'chunked, body incomplete', expect: 'ok', raw: r('Transfer-Encoding: chunked\r\n', '5\r\nhel') },
  { name: 'close-delimited (no length)', expect: 'ok', raw: r('Content-Type: text/html\r\n', '<html>body until EOF') },
  { name: 'close-delimited, no fields at all', expect: 'ok', raw: r('') },
  { name: 'HTTP/1.0 with Content-Length', expect: 'ok', raw: r('Content-Length: 2\r\n', 'ok', 'HTTP/1.0 200 OK\r\n') },
  { name: 'HTTP/1.0 with Connection: keep-alive', expect: 'ok', raw: r('Connection: keep-alive\r\nContent-Length: 2\r\n', 'ok', 'HTTP/1.0 200 OK\r\n') },
  { name: 'HTTP/1.0 keep-alive, close-delimited', expect: 'ok', raw: r('Connection: Keep-Alive\r\n', 'data', 'HTTP/1.0 200 OK\r\n') },
  { name: '204 without Content-Length', expect: 'ok', raw: r('Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n', '', 'HTTP/1.1 204 No Content\r\n') },
  { name: '204 with Content-Length (ignored), bytes after', expect: 'ok', raw: r('Content-Length: 5\r\n', 'hello', 'HTTP/1.1 204 No Content\r\n') },
  { name: '304 with Content-Length', expect: 'ok', raw: r('ETag: "x"\r\nContent-Length: 100\r\n', '', 'HTTP/1.1 304 Not Modified\r\n') },
  { name: '304 without Content-Length', expect: 'ok', raw: r('ETag: W/"x"\r\n', '', 'HTTP/1.1 304 Not Modified\r\n') },
  { name: '304 with Transfer-Encoding: chunked', expect: 'ok', raw: r('Transfer-Encoding: chunked\r\n', '', 'HTTP/1.1 304 Not Modified\r\n') },
  { name: '100 Continue, then 200', expect: 'ok', raw: `HTTP/1.1 100 Continue\r\n\r\n${r('Content-Length: 2\r\n', 'ok')}` },
  { name: '103 Early Hints with Keep-Alive, then 200 without', expect: 'ok', raw: `HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nKeep-Alive: timeout=9\r\n\r\n${r('Content-Length: 2\r\n', 'ok')}` },
  { name: 'two interim responses, then 200', expect: 'ok', raw: `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: 1\r\n\r\n${r('Transfer-Encoding: chunked\r\n', CHUNKED)}` },
  { name: '199 interim', expect: 'ok', raw: `HTTP/1.1 199 Odd\r\n\r\n${r(CL0)}` },
  { name: '100 Continue alone', expect: 'more', raw: 'HTTP/1.1 100 Continue\r\n\r\n' },
  { name: '101 Switching Protocols', expect: 'fail', code: 'HPE_INVALID_STATUS', raw: r('Upgrade: websocket\r\nConnection: Upgrade\r\n', '', 'HTTP/1.1 101 Switching Protocols\r\n') },
  { name: '100 with an invalid Content-Length', expect: 'fail', code: 'HPE_INVALID_CONTENT_LENGTH', raw: `HTTP/1.1 100 Continue\r\nContent-Length: x\r\n\r\n${r(CL0)}` },
  { name: '100, then a malformed final head', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: `HTTP/1.1 100 Continue\r\n\r\n${r('X: a\x00\r\n')}` },
  { name: 'status 999', expect: 'ok', raw: r(CL0, '', 'HTTP/1.1 999 Whatever\r\n') },
  { name: '404 with a body', expect: 'ok', raw: r('Content-Length: 9\r\n', 'not found', 'HTTP/1.1 404 Not Found\r\n') },
  // Reason phrases.
  { name: 'empty reason phrase, no space', expect: 'ok', raw: r(CL0, '', 'HTTP/1.1 200\r\n') },
  { name: 'empty reason phrase after a space', expect: 'ok', raw: r(CL0, '', 'HTTP/1.1 200 \r\n') },
  { name: 'reason of spaces', expect: 'ok', raw: r(CL0, '', 'HTTP/1.1 200   \r\n') },
  { name: 'reason with tabs and obs-text', expect: 'ok', raw: r(CL0, '', 'HTTP/1.1 200 O\tK \xe9\x80\xff\t\r\n') },
  { name: 'reason with every visible character', expect: 'ok', raw: r(CL0, '', `HTTP/1.1 200 ${Array.from({ length: 94 }, (_, k) => String.fromCharCode(0x21 + k)).join('')}\r\n`) },
  // Values.
  { name: 'latin1 bytes in values', expect: 'ok', raw: r(`X-Latin: caf\xe9\r\nX-High: \x80\x81\xfe\xff\r\nX-Mix: a \xa0 b\r\n${CL0}`) },
  { name: 'leading and trailing SP/HTAB in values', expect: 'ok', raw: r(`X-A: \t value \t \r\nX-B:\tb\t\r\nX-C:c \r\n${CL0}`) },
  { name: 'inner whitespace kept', expect: 'ok', raw: r(`X-A: a  b\tc \t d\r\n${CL0}`) },
  { name: 'empty values', expect: 'ok', raw: r(`X-Empty:\r\nX-Space: \r\nX-Tabs:\t\t\r\nX-Mixed: \t \r\n${CL0}`) },
  { name: 'every tchar in a name', expect: 'ok', raw: r(`!#$%&'*+-.^_\`|~09azAZ: x\r\n${CL0}`) },
  { name: 'colons and commas in a value', expect: 'ok', raw: r(`X-A: a:b:c, d,,e\r\nLocation: http://h:80/p?q=1\r\n${CL0}`) },
  { name: 'repeated Set-Cookie', expect: 'ok', raw: r(`Set-Cookie: a=1; Path=/\r\nSet-Cookie: b=2\r\nset-cookie: c=3\r\n${CL0}`) },
  { name: 'look-alike framing names', expect: 'ok', raw: r(`Content-Lengths: 5\r\nTransfer-Encodings: chunked\r\nConnections: close\r\nKeep-Alives: timeout=1\r\nX-Content-Length: x\r\n${CL0}`) },
  // Connection.
  { name: 'Connection: close', expect: 'ok', raw: r(`Connection: close\r\n${CL0}`) },
  { name: 'Connection: keep-alive', expect: 'ok', raw: r(`Connection: keep-alive\r\n${CL0}`) },
  { name: 'connection: Keep-Alive, CLOSE', expect: 'ok', raw: r(`connection: Keep-Alive, CLOSE\r\n${CL0}`) },
  { name: 'Connection: ,close, , (empty elements)', expect: 'ok', raw: r(`Connection: ,close, ,\r\n${CL0}`) },
  { name: 'Connection: closed (not close)', expect: 'ok', raw: r(`Connection: closed\r\n${CL0}`) },
  { name: 'Connection: close x (one element)', expect: 'ok', raw: r(`Connection: close x\r\n${CL0}`) },
  { name: 'two Connection fields', expect: 'ok', raw: r(`Connection: keep-alive\r\nConnection:\tClose\t\r\n${CL0}`) },
  { name: 'HTTP/1.0 Connection: keep-alive, close', expect: 'ok', raw: r(`Connection: keep-alive, close\r\n${CL0}`, '', 'HTTP/1.0 200 OK\r\n') },
  // Keep-Alive.
  { name: 'Keep-Alive: timeout=5', expect: 'ok', raw: r(`Keep-Alive: timeout=5\r\n${CL0}`) },
  { name: 'Keep-Alive: timeout = 5', expect: 'ok', raw: r(`Keep-Alive: timeout = 5\r\n${CL0}`) },
  { name: 'Keep-Alive: max=100, timeout=7', expect: 'ok', raw: r(`Keep-Alive: max=100, timeout=7\r\n${CL0}`) },
  { name: 'keep-alive: TIMEOUT=3,max=2', expect: 'ok', raw: r(`keep-alive: TIMEOUT=3,max=2\r\n${CL0}`) },
  { name: 'Keep-Alive: timeout=abc', expect: 'ok', raw: r(`Keep-Alive: timeout=abc\r\n${CL0}`) },
  { name: 'Keep-Alive: timeout=5s', expect: 'ok', raw: r(`Keep-Alive: timeout=5s\r\n${CL0}`) },
  { name: 'Keep-Alive: timeout= (empty)', expect: 'ok', raw: r(`Keep-Alive: timeout=\r\n${CL0}`) },
  { name: 'Keep-Alive: timeout of 10 digits', expect: 'ok', raw: r(`Keep-Alive: timeout=1234567890\r\n${CL0}`) },
  { name: 'Keep-Alive: timeout of 9 digits', expect: 'ok', raw: r(`Keep-Alive: timeout=123456789\r\n${CL0}`) },
  { name: 'two Keep-Alive fields, the later timeout wins', expect: 'ok', raw: r(`Keep-Alive: timeout=2\r\nKeep-Alive: timeout=4, timeout=x\r\n${CL0}`) },
  // Content-Length.
  { name: 'duplicate equal Content-Length', expect: 'ok', raw: r('Content-Length: 3\r\ncontent-length: 3\r\n', 'abc') },
  { name: 'Content-Length with leading zeros and padding', expect: 'ok', raw: r('Content-Length: \t003 \t\r\n', 'abc') },
  { name: 'conflicting Content-Length', expect: 'fail', code: 'HPE_UNEXPECTED_CONTENT_LENGTH', raw: r('Content-Length: 3\r\nContent-Length: 4\r\n', 'abcd') },
  { name: 'Content-Length: abc', expect: 'fail', code: 'HPE_INVALID_CONTENT_LENGTH', raw: r('Content-Length: abc\r\n') },
  { name: 'Content-Length empty', expect: 'fail', code: 'HPE_INVALID_CONTENT_LENGTH', raw: r('Content-Length:\r\n') },
  { name: 'Content-Length of 16 digits', expect: 'fail', code: 'HPE_INVALID_CONTENT_LENGTH', raw: r('Content-Length: 1234567890123456\r\n') },
  { name: 'Content-Length of 15 digits', expect: 'ok', raw: r('Content-Length: 123456789012345\r\n', 'a') },
  { name: 'Content-Length: +5', expect: 'fail', code: 'HPE_INVALID_CONTENT_LENGTH', raw: r('Content-Length: +5\r\n', 'hello') },
  { name: 'Content-Length: -1', expect: 'fail', code: 'HPE_INVALID_CONTENT_LENGTH', raw: r('Content-Length: -1\r\n') },
  { name: 'Content-Length: 1 2', expect: 'fail', code: 'HPE_INVALID_CONTENT_LENGTH', raw: r('Content-Length: 1 2\r\n', 'ab') },
  { name: 'Content-Length: 3, 3', expect: 'fail', code: 'HPE_INVALID_CONTENT_LENGTH', raw: r('Content-Length: 3, 3\r\n', 'abc') },
  { name: 'Content-Length then Transfer-Encoding', expect: 'fail', code: 'HPE_UNEXPECTED_CONTENT_LENGTH', raw: r('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', CHUNKED) },
  { name: 'Transfer-Encoding then Content-Length', expect: 'fail', code: 'HPE_UNEXPECTED_CONTENT_LENGTH', raw: r('Transfer-Encoding: chunked\r\nContent-Length: 5\r\n', CHUNKED) },
  // Transfer-Encoding.
  { name: 'Transfer-Encoding: gzip, chunked', expect: 'ok', raw: r('Transfer-Encoding: gzip, chunked\r\n', CHUNKED) },
  { name: 'Transfer-Encoding: gzip then chunked, two fields', expect: 'ok', raw: r('Transfer-Encoding: gzip\r\nTransfer-Encoding: Chunked\r\n', CHUNKED) },
  { name: 'transfer-encoding: CHUNKED with padding', expect: 'ok', raw: r('transfer-encoding: \t CHUNKED \t\r\n', CHUNKED) },
  { name: 'Transfer-Encoding: chunked, gzip', expect: 'fail', code: 'HPE_INVALID_TRANSFER_ENCODING', raw: r('Transfer-Encoding: chunked, gzip\r\n', CHUNKED) },
  { name: 'Transfer-Encoding: chunked, chunked', expect: 'fail', code: 'HPE_INVALID_TRANSFER_ENCODING', raw: r('Transfer-Encoding: chunked, chunked\r\n', CHUNKED) },
  { name: 'Transfer-Encoding: chunked twice, two fields', expect: 'fail', code: 'HPE_INVALID_TRANSFER_ENCODING', raw: r('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', CHUNKED) },
  { name: 'Transfer-Encoding: identity', expect: 'fail', code: 'HPE_INVALID_TRANSFER_ENCODING', raw: r('Transfer-Encoding: identity\r\n', 'abc') },
  { name: 'Transfer-Encoding empty', expect: 'fail', code: 'HPE_INVALID_TRANSFER_ENCODING', raw: r('Transfer-Encoding:\r\n', 'abc') },
  { name: 'Transfer-Encoding: chunked; q=1', expect: 'fail', code: 'HPE_INVALID_TRANSFER_ENCODING', raw: r('Transfer-Encoding: chunked; q=1\r\n', CHUNKED) },
  { name: 'chunked with a bad chunk size', expect: 'fail', code: 'HPE_INVALID_CHUNK_SIZE', raw: r('Transfer-Encoding: chunked\r\n', 'zz\r\nhello\r\n') },

  // Malformed: line ends.
  { name: 'bare LF line ends', expect: 'fail', code: 'HPE_CR_EXPECTED', raw: 'HTTP/1.1 200 OK\nContent-Length: 0\n\n' },
  { name: 'bare LF between fields', expect: 'fail', code: 'HPE_CR_EXPECTED', raw: r(`X-A: a\nX-B: b\r\n${CL0}`) },
  { name: 'bare LF ending the last field', expect: 'fail', code: 'HPE_CR_EXPECTED', raw: `${OK}X-A: a\n\r\n` },
  { name: 'bare LF as the empty line', expect: 'fail', code: 'HPE_CR_EXPECTED', raw: `${OK}${CL0}\n` },
  { name: 'bare CR in a value', expect: 'fail', code: 'HPE_LF_EXPECTED', raw: r(`X-A: a\rb\r\n${CL0}`) },
  { name: 'CR CR LF after a value', expect: 'fail', code: 'HPE_LF_EXPECTED', raw: r(`X-A: a\r\r\n${CL0}`) },
  { name: 'bare CR in the reason phrase', expect: 'fail', code: 'HPE_INVALID_STATUS', raw: r(CL0, '', 'HTTP/1.1 200 O\rK\r\n') },
  { name: 'CR then not LF at the empty line', expect: 'fail', code: 'HPE_LF_EXPECTED', raw: `${OK}\rX: 1\r\n\r\n` },
  { name: 'leading empty line', expect: 'fail', code: 'HPE_INVALID_CONSTANT', raw: `\r\n${r(CL0)}` },
  // Malformed: fields.
  { name: 'obs-fold with SP', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(`X-A: a\r\n b\r\n${CL0}`) },
  { name: 'obs-fold with HT', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(`X-A: a\r\n\tb\r\n${CL0}`) },
  { name: 'first field line starts with SP', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(` ${CL0}`) },
  { name: 'space before colon', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(`X-A : a\r\n${CL0}`) },
  { name: 'tab before colon', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(`Content-Length\t: 0\r\n`) },
  { name: 'empty header name', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(`:x\r\n${CL0}`) },
  { name: 'field without colon', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(`X-A a\r\n${CL0}`) },
  { name: 'field name alone', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(`X-A\r\n${CL0}`) },
  { name: 'NUL in a value', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(`X-A: a\x00b\r\n${CL0}`) },
  { name: 'DEL in a value', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(`X-A: a\x7f\r\n${CL0}`) },
  { name: '\\x01 in a value', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(`X-A: \x01\r\n${CL0}`) },
  { name: 'VT and FF in a value', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(`X-A: a\x0b\x0cb\r\n${CL0}`) },
  { name: 'ESC in a value', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(`X-A: \x1b[31m\r\n${CL0}`) },
  { name: 'NUL in a name', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(`X\x00Y: a\r\n${CL0}`) },
  { name: 'DEL in a name', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(`X\x7fY: a\r\n${CL0}`) },
  { name: 'obs-text in a name', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(`X-caf\xe9: a\r\n${CL0}`) },
  { name: '"@" and "(" in names', expect: 'fail', code: 'HPE_INVALID_HEADER_TOKEN', raw: r(`X@(a): b\r\n${CL0}`) },
  // Malformed: status line.
  { name: 'NUL in the reason phrase', expect: 'fail', code: 'HPE_INVALID_STATUS', raw: r(CL0, '', 'HTTP/1.1 200 O\x00K\r\n') },
  { name: 'DEL in the reason phrase', expect: 'fail', code: 'HPE_INVALID_STATUS', raw: r(CL0, '', 'HTTP/1.1 200 OK\x7f\r\n') },
  { name: '\\x1f in the reason phrase', expect: 'fail', code: 'HPE_INVALID_STATUS', raw: r(CL0, '', 'HTTP/1.1 200 \x1f\r\n') },
  { name: 'status 20', expect: 'fail', code: 'HPE_INVALID_STATUS', raw: r(CL0, '', 'HTTP/1.1 20 OK\r\n') },
  { name: 'status 099', expect: 'fail', code: 'HPE_INVALID_STATUS', raw: r(CL0, '', 'HTTP/1.1 099 X\r\n') },
  { name: 'status 2000', expect: 'fail', code: 'HPE_INVALID_STATUS', raw: r(CL0, '', 'HTTP/1.1 2000 OK\r\n') },
  { name: 'status 2x0', expect: 'fail', code: 'HPE_INVALID_STATUS', raw: r(CL0, '', 'HTTP/1.1 2x0 OK\r\n') },
  { name: 'status in letters', expect: 'fail', code: 'HPE_INVALID_STATUS', raw: r(CL0, '', 'HTTP/1.1 OK 200\r\n') },
  { name: 'two spaces before the status', expect: 'fail', code: 'HPE_INVALID_STATUS', raw: r(CL0, '', 'HTTP/1.1  200 OK\r\n') },
  { name: 'no space after the status', expect: 'fail', code: 'HPE_INVALID_STATUS', raw: r(CL0, '', 'HTTP/1.1 200OK\r\n') },
  { name: 'tab after the status', expect: 'fail', code: 'HPE_INVALID_STATUS', raw: r(CL0, '', 'HTTP/1.1 200\tOK\r\n') },
  { name: 'version then a space only', expect: 'fail', code: 'HPE_INVALID_STATUS', raw: r(CL0, '', 'HTTP/1.1 \r\n') },
  { name: 'HTTP/2.0', expect: 'fail', code: 'HPE_INVALID_VERSION', raw: r(CL0, '', 'HTTP/2.0 200 OK\r\n') },
  { name: 'HTTP/1.2', expect: 'fail', code: 'HPE_INVALID_VERSION', raw: r(CL0, '', 'HTTP/1.2 200 OK\r\n') },
  { name: 'HTTP/1.1 with no status', expect: 'fail', code: 'HPE_INVALID_VERSION', raw: r(CL0, '', 'HTTP/1.1\r\n') },
  { name: 'HTTP/1.1 then a tab', expect: 'fail', code: 'HPE_INVALID_VERSION', raw: r(CL0, '', 'HTTP/1.1\t200 OK\r\n') },
  { name: 'lower-case http/1.1', expect: 'fail', code: 'HPE_INVALID_CONSTANT', raw: r(CL0, '', 'http/1.1 200 OK\r\n') },
  { name: 'non-HTTP garbage', expect: 'fail', code: 'HPE_INVALID_CONSTANT', raw: 'SSH-2.0-OpenSSH_9.6\r\n\r\n' },
  { name: 'binary garbage', expect: 'fail', code: 'HPE_INVALID_CONSTANT', raw: '\x16\x03\x01\x00\xa5\x01\x00\x00\r\n\r\n' },
  { name: 'a request, not a response', expect: 'fail', code: 'HPE_INVALID_CONSTANT', raw: 'GET / HTTP/1.1\r\nHost: a\r\n\r\n' },
  // Incomplete and oversized heads.
  { name: 'head without its empty line', expect: 'more', raw: `${OK}${CL0}` },
  { name: 'head with the CR of its empty line only', expect: 'more', raw: `${OK}${CL0}\r` },
  { name: 'status line only, unterminated', expect: 'more', raw: 'HTTP/1.1 200 O' },
  { name: 'head larger than maxHeadSize (1024)', expect: 'fail', code: 'HPE_HEADER_OVERFLOW', maxHeadSize: 1024, raw: r(`X-Big: ${'a'.repeat(2000)}\r\n${CL0}`) },
  { name: 'head of maxHeadSize + 4 bytes (1024)', expect: 'ok', maxHeadSize: 1024, raw: big(1028) },
  { name: 'head of maxHeadSize + 5 bytes (1024)', expect: 'fail', code: 'HPE_HEADER_OVERFLOW', maxHeadSize: 1024, raw: big(1029) },
  { name: 'unterminated head over maxHeadSize (1024)', expect: 'fail', code: 'HPE_HEADER_OVERFLOW', maxHeadSize: 1024, raw: `${OK}X-Big: ${'a'.repeat(1100)}` },
];

// ---------------------------------------------------------------------------
// Seeded random mutants of valid responses.


const BASES = [
  r('Content-Type: text/html; charset=utf-8\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5, max=100\r\n', 'hello'),
  r('Transfer-Encoding: gzip, chunked\r\nVary: Accept-Encoding\r\n', '3\r\nabc\r\n0\r\nX-T: t\r\n\r\n'),
  'HTTP/1.0 200 OK\r\nServer: x\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok',
  'HTTP/1.1 204 No Content\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 404 Not Found\r\nX-Latin: caf\xe9\r\nContent-Length: 3\r\nConnection: close\r\n\r\nnop',
  'HTTP/1.1 301 Moved\tPermanently\r\nLocation: /b\r\nSet-Cookie: a=1; Path=/\r\nX-E:\r\n\r\nbody',
];
const INTERESTING = [0x20, 0x09, 0x0d, 0x0a, 0x00, 0x3a, 0x2c, 0x7f, 0x80, 0xff, 0x61, 0x2f, 0x30, 0x0b, 0x0c, 0x41, 0x3b, 0x3d, 0x22, 0x2d];


const RANDOM_MUTANTS = 800;
const MUTANTS = mutants(BASES, { seed: 0xc0ffee_11, count: RANDOM_MUTANTS, tries: 4 * RANDOM_MUTANTS, twiceEvery: 3, bytes: INTERESTING });


// ---------------------------------------------------------------------------

describe('ResponseParser: fast path against the character loops, hand-written heads', () => {
  for (const c of CASES) {
    test(`${c.expect}: ${c.name}`, () => {
      const opts = c.maxHeadSize === undefined ? {} : { maxHeadSize: c.maxHeadSize };
      for (const variant of [opts, { ...opts, isHead: true }, { ...opts, pauseHead: true }]) {
        const problem = differ([c.raw], variant);
        assert.equal(problem, '', problem);
      }
      const o = run([c.raw], { ...opts, fast: true });
      assert.equal(outcome(o), c.expect, `${show(c.raw)}: ${JSON.stringify(o)}`);
      assert.equal(o.error?.code, c.code, `${show(c.raw)}: ${JSON.stringify(o.error)}`);
    });
  }

  test('the corpus is broad, and the fast path really runs on it', () => {
    const ok = CASES.filter((c) => c.expect === 'ok');
    const fails = CASES.filter((c) => c.expect === 'fail');
    assert.ok(CASES.length >= 100, `${CASES.length} cases`);
    assert.ok(ok.length >= 50 && fails.length >= 40, `${ok.length} accepted, ${fails.length} refused`);
    // VALID_HEAD takes every accepted head (for the 1xx cases, their first head), and the heads refused only for their
    // framing or status.
    const matched = ok.filter((c) => VALID_HEAD.test(headOf(c.raw)));
    assert.ok(matched.length === ok.length, `VALID_HEAD matched ${matched.length} of ${ok.length} accepted heads: missed ${ok.filter((c) => !matched.includes(c)).map((c) => c.name).join(', ')}`);
    const framing = fails.filter((c) => VALID_HEAD.test(headOf(c.raw)));
    assert.ok(framing.length >= 20, `VALID_HEAD matched ${framing.length} refused heads (framing errors on the fast path)`);
    // And none of the malformed-syntax heads: those go to the character loops (the 1xx cases aside, whose first head,
    // the one tested here, is well-formed or refused for its status or framing).
    for (const c of fails) {
      if (/^HPE_(INVALID_(HEADER_TOKEN|STATUS|VERSION|CONSTANT)|CR_EXPECTED|LF_EXPECTED)$/.test(c.code!) && !/^10\d/.test(c.name)) {
        assert.equal(VALID_HEAD.test(headOf(c.raw)), false, `VALID_HEAD matched malformed ${c.name}: ${show(c.raw)}`);
      }
    }
  });

  test('the two paths are really two: only a parser with checkWholeHead tests VALID_HEAD', () => {
    // Both paths give the same results by design, so only this tells them apart: count the tests.
    const raw = r('Content-Length: 2\r\n', 'ok');
    let tests = 0;
    const original = VALID_HEAD.test;
    VALID_HEAD.test = function (this: RegExp, text: string): boolean {
      tests++;
      return original.call(this, text);
    };
    try {
      run([raw], { fast: false });
      assert.equal(tests, 0, 'the character loops alone test no whole head');
      run([raw], { fast: true });
      assert.equal(tests, 1, 'the fast path tests the head once');
    } finally {
      VALID_HEAD.test = original;
    }
  });

  test('concrete results, on both paths', () => {
    const raw = r('Content-Length: 5\r\nKeep-Alive: timeout=5\r\nX-A: \t v \t\r\nX-Latin: caf\xe9\r\n', 'helloNEXT');
    assert.ok(VALID_HEAD.test(headOf(raw)));
    for (const fast of [true, false]) {
      assert.deepEqual(run([raw], { fast }), {
        steps: [{ result: DONE, offset: raw.length - 4 }],
        error: null,
        events: [
          { head: { statusCode: 200, statusText: 'OK', rawHeaders: ['Content-Length', '5', 'Keep-Alive', 'timeout=5', 'X-A', 'v', 'X-Latin', 'caf\xe9'], hasBody: true } },
          { body: 'hello' },
        ],
        trailers: null,
        keepAlive: true,
        keepAliveHint: 5000,
        bodyUntilEof: false,
      }, `fast=${fast}`);

      const chunked = run([r('Transfer-Encoding: gzip, chunked\r\n', '5;a=b\r\nhello\r\n0\r\nX-T:  t \r\n\r\n', 'HTTP/1.0 201 \r\n')], { fast });
      assert.deepEqual(chunked.events, [
        { head: { statusCode: 201, statusText: '', rawHeaders: ['Transfer-Encoding', 'gzip, chunked'], hasBody: true } },
        { body: 'hello' },
      ]);
      assert.deepEqual(chunked.trailers, ['X-T', 't']);
      assert.equal(chunked.keepAlive, false);
      assert.equal(chunked.steps.at(-1)?.result, DONE);

      const eof = run([r('Connection: keep-alive\r\n', 'abc')], { fast });
      assert.deepEqual([eof.steps, eof.bodyUntilEof, eof.keepAlive], [[{ result: NEED_MORE }], true, false]);

      const interim = run([`HTTP/1.1 103 Early Hints\r\nKeep-Alive: timeout=9\r\n\r\n${r('Connection: close\r\nContent-Length: 0\r\n', '', 'HTTP/1.1 200 \t\xe9\r\n')}`], { fast });
      assert.deepEqual(interim.events, [{ head: { statusCode: 200, statusText: '\t\xe9', rawHeaders: ['Connection', 'close', 'Content-Length', '0'], hasBody: false } }]);
      assert.deepEqual([interim.keepAlive, interim.keepAliveHint], [false, -1]);

      const paused = run([r('Content-Length: 2\r\n', 'hi')], { fast, pauseHead: true });
      const headLength = r('Content-Length: 2\r\n').length;
      assert.deepEqual(paused.steps, [{ result: PAUSED, offset: headLength }, { result: DONE, offset: headLength + 2 }]);

      const spaced = run([r('X-A : a\r\nContent-Length: 0\r\n')], { fast });
      assert.equal(spaced.error?.code, 'HPE_INVALID_HEADER_TOKEN');
      assert.deepEqual([spaced.steps, spaced.events], [[{ result: FAILED }], []]);
      const conflict = run([r('Content-Length: 1\r\nContent-Length: 2\r\n', 'ab')], { fast });
      assert.deepEqual([conflict.error?.code, conflict.steps, conflict.events], ['HPE_UNEXPECTED_CONTENT_LENGTH', [{ result: FAILED }], []]);
    }
  });
});

describe('ResponseParser: fast path against the character loops, seeded mutants', () => {
  test(`${MUTANTS.length} mutants of ${BASES.length} valid responses: both paths agree on every one`, () => {
    for (const raw of BASES) {
      assert.ok(VALID_HEAD.test(headOf(raw)), `VALID_HEAD does not match base ${show(raw)}`);
      assert.equal(outcome(run([raw], { fast: true })), 'ok', `base ${show(raw)} not accepted`);
    }
    const problems: string[] = [];
    let accepted = 0;
    let refused = 0;
    let matched = 0;
    for (const [k, raw] of [...BASES, ...MUTANTS].entries()) {
      const problem = differ([raw], k % 4 === 0 ? { isHead: true } : {});
      if (problem !== '') problems.push(problem);
      const o = run([raw], { fast: false });
      const verdict = outcome(o);
      if (verdict === 'ok') accepted++;
      else if (verdict === 'fail') refused++;
      if (VALID_HEAD.test(headOf(raw))) matched++;
    }
    assert.deepEqual(problems, [], `${problems.length} disagreements:\n${problems.slice(0, 20).join('\n')}`);
    // The mutants exercise both sides: many stay acceptable (most of them on the fast path), many are refused.
    const n = BASES.length + MUTANTS.length;
    const counts = `${accepted} accepted, ${refused} refused, VALID_HEAD matched ${matched}, of ${n}`;
    assert.ok(MUTANTS.length >= 1000, `${MUTANTS.length} mutants`);
    assert.ok(accepted > n / 3 && refused > n / 3, counts);
    assert.ok(matched > n / 3 && matched < (2 * n) / 3, counts);
  });
});

describe('ResponseParser: fast path against the character loops, split reads', () => {
  const SPLIT = [
    ...BASES,
    r('X-A: \t v \t\r\nContent-Length: 3\r\n', 'abc', 'HTTP/1.1 200 \r\n'),
    `HTTP/1.1 100 Continue\r\n\r\n${r('Transfer-Encoding: chunked\r\n', CHUNKED)}`,
    r(`X-A: a\nX-B: b\r\n${CL0}`),
    r(`X-A: a\r\n b\r\n${CL0}`),
    r('Content-Length: 3\r\nContent-Length: 4\r\n', 'abcd'),
    r('Transfer-Encoding: chunked, gzip\r\n', CHUNKED),
    'HTTP/1.1 200 OK\nContent-Length: 0\n\n',
    r(CL0, '', 'HTTP/1.1 2000 OK\r\n'),
  ];

  test(`${SPLIT.length} responses split in two at every position: both paths agree, and agree with the whole read`, () => {
    const problems: string[] = [];
    let runs = 0;
    for (const raw of SPLIT) {
      const whole = run([raw], { fast: false });
      const heads = whole.events.filter((e) => 'head' in e);
      for (let i = 1; i < raw.length; i++) {
        const pieces = [raw.slice(0, i), raw.slice(i)];
        for (const opts of [{}, { isHead: true }]) {
          runs++;
          const problem = differ(pieces, opts);
          if (problem !== '') problems.push(problem);
        }
        // The split does not change what is read (only how the body is cut and when execute() returns).
        const split = run(pieces, { fast: true });
        const same = JSON.stringify([split.error?.code, split.events.filter((e) => 'head' in e), split.keepAlive, split.keepAliveHint, split.trailers]);
        const expected = JSON.stringify([whole.error?.code, heads, whole.keepAlive, whole.keepAliveHint, whole.trailers]);
        if (same !== expected) problems.push(`split ${pieces.map(show).join(' + ')}: ${show(same)} vs whole ${show(expected)}`);
      }
    }
    assert.deepEqual(problems, [], `${problems.length} disagreements:\n${problems.slice(0, 20).join('\n')}`);
    assert.ok(runs > 1000, `${runs} split runs`);
  });

  test('a head split in three, and byte by byte', () => {
    for (const raw of BASES) {
      const third = Math.floor(raw.length / 3);
      const problem3 = differ([raw.slice(0, third), raw.slice(third, 2 * third), raw.slice(2 * third)]);
      assert.equal(problem3, '', problem3);
      const bytes = [...raw];
      const problem = differ(bytes);
      assert.equal(problem, '', problem);
      assert.deepEqual(run(bytes, { fast: true }).events.filter((e) => 'head' in e), run([raw], { fast: true }).events.filter((e) => 'head' in e));
    }
  });
});
