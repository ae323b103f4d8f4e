/**
 * The fast path's request-head parser (src/listen/fast-request.ts) against
 * node:http's own parser, differentially: every head parseRequestHead
 * accepts must be accepted by a real node:http server (configured as the
 * balancer configures it) with the same method, url and rawHeaders, `end`
 * must be just after the head's empty line and `close` must say whether a
 * Connection header lists "close". A head the parser returns null for is
 * node:http's to decide, so there is nothing to compare then. The corpus:
 * hand-written heads, each with the outcome intended (ordinary requests
 * accepted; every category the fast path leaves to node:http, and
 * smuggling-style inputs, null), and a few hundred seeded random one- and
 * two-byte mutants of valid heads. Also: the `start` offset, pipelined
 * heads, partial heads, the maxHeadSize boundary, and FastRequest#headers
 * against IncomingMessage#headers for repeated fields.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { FastRequest, parseRequestHead, type RequestHead } from '../../src/listen/fast-request.js';
import { mutants, show } from '../helpers/mutants.js';

const MAX_HEAD = 16384;

/** NodeOutcome is what node:http made of one raw head: the request it parsed, or the status it answered. */
interface NodeOutcome {
  /** status: 200 when the request reached the handler; 400/431/... when node:http (or clientError) refused it; 0 for no answer. */
  status: number;
  /** error: the clientError code, when there was one. */
  error: string;
  method?: string;
  url?: string;
  rawHeaders?: string[];
  headers?: Record<string, string | string[]>;
}

let server: http.Server;
let port = 0;

/** sendRaw writes the exact bytes of raw (latin1) on a fresh connection, ends it, and reads node:http's first answer. */
function sendRaw(raw: string): Promise<NodeOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    // A guard, so a connection node:http neither answers nor closes cannot hang the suite.
    const timer = setTimeout(() => socket.destroy(), 2000);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(readAnswer(Buffer.concat(chunks)));
    });
    socket.end(Buffer.from(raw, 'latin1'));
  });
}

/**
 * readAnswer reads the first final response on the wire (skipping a 100
 * Continue): its status, the clientError code in its body, and for 200 the
 * handler's report in X-Parsed (a header, so HEAD requests carry it too).
 */
function readAnswer(bytes: Buffer): NodeOutcome {
  let text = bytes.toString('latin1');
  for (;;) {
    const headEnd = text.indexOf('\r\n\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(text);
    if (headEnd < 0 || m === null) return { status: 0, error: '' };
    const status = Number(m[1]);
    if (status >= 100 && status < 200) {
      text = text.slice(headEnd + 4);
      continue;
    }
    const head = text.slice(0, headEnd + 2);
    if (status !== 200) {
      const length = /\r\ncontent-length: *(\d+)\r\n/i.exec(head);
      return { status, error: length === null ? '' : text.slice(headEnd + 4, headEnd + 4 + Number(length[1])) };
    }
    const parsed = /\r\nx-parsed: *([A-Za-z0-9+/=]+)\r\n/i.exec(head);
    try {
      return { status, error: '', ...(JSON.parse(Buffer.from(parsed![1]!, 'base64').toString('utf8')) as Omit<NodeOutcome, 'status' | 'error'>) };
    } catch {
      return { status: -1, error: `unreadable answer ${show(head)}` };
    }
  }
}

/** mapLimit runs fn over items with at most `limit` in flight, keeping their order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const k = next++;
      out[k] = await fn(items[k]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}


/** connectionClose: whether some Connection field of rawHeaders lists the token "close" (the expected `close`). */
function connectionClose(rawHeaders: string[]): boolean {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'connection') continue;
    if (rawHeaders[i + 1]!.split(',').some((t) => t.trim().toLowerCase() === 'close')) return true;
  }
  return false;
}

/**
 * differ compares parseRequestHead's verdict on raw with node:http's; it
 * returns the discrepancy found, or '' (also when the parser returned null:
 * node:http decides those).
 */
function differ(raw: string, head: RequestHead | null, node: NodeOutcome | undefined): string {
  if (head === null) return '';
  if (node === undefined) return `${show(raw)}: no node:http outcome recorded`;
  if (node.status !== 200) return `${show(raw)}: parser accepted it, node:http answered ${node.status} ${node.error}`;
  const problems: string[] = [];
  if (head.method !== node.method) problems.push(`method ${JSON.stringify(head.method)} vs node ${JSON.stringify(node.method)}`);
  if (head.url !== node.url) problems.push(`url ${show(head.url)} vs node ${show(node.url ?? '')}`);
  try {
    assert.deepStrictEqual(head.rawHeaders, node.rawHeaders);
  } catch {
    problems.push(`rawHeaders ${show(JSON.stringify(head.rawHeaders))} vs node ${show(JSON.stringify(node.rawHeaders))}`);
  }
  const end = raw.indexOf('\r\n\r\n') + 4;
  if (head.end !== end) problems.push(`end ${head.end} vs ${end}`);
  const close = connectionClose(node.rawHeaders ?? []);
  if (head.close !== close) problems.push(`close ${head.close} vs ${close}`);
  return problems.length === 0 ? '' : `${show(raw)}: ${problems.join('; ')}`;
}

// ---------------------------------------------------------------------------
// The hand-written corpus.

type Expect = 'accept' | 'null';
interface Case {
  name: string;
  raw: string;
  expect: Expect;
}

const H = 'Host: example.com\r\n';
const get = (fields: string, target = '/'): string => `GET ${target} HTTP/1.1\r\n${fields}\r\n`;
let printable = '';
for (let c = 0x21; c < 0x7f; c++) printable += String.fromCharCode(c);
const manyFields = Array.from({ length: 100 }, (_, k) => `X-Field-${k}: value ${k}\r\n`).join('');
const tooManyFields = Array.from({ length: 500 }, (_, k) => `X-F${k}: v\r\n`).join('');

const CASES: Case[] = [
  // Ordinary requests: accepted, and identical to node:http's reading.
  { name: 'minimal GET', expect: 'accept', raw: get(H) },
  { name: 'HEAD', expect: 'accept', raw: `HEAD /index.html HTTP/1.1\r\n${H}\r\n` },
  { name: 'DELETE', expect: 'accept', raw: `DELETE /items/42 HTTP/1.1\r\n${H}\r\n` },
  { name: 'OPTIONS of a path', expect: 'accept', raw: `OPTIONS /api HTTP/1.1\r\n${H}Origin: https://a.example\r\nAccess-Control-Request-Method: PUT\r\n\r\n` },
  {
    name: 'browser-like GET', expect: 'accept',
    raw: get(`${H}User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0\r\nAccept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\nUpgrade-Insecure-Requests: 1\r\nSec-Fetch-Dest: document\r\n`, '/docs/page?x=1'),
  },
  { name: 'Host not first', expect: 'accept', raw: get(`Accept: */*\r\nHost: a.example:8080\r\nX-B: 2\r\n`) },
  { name: 'host lower case', expect: 'accept', raw: get('host: a\r\n') },
  { name: 'HOST upper case', expect: 'accept', raw: get('HOST: a\r\n') },
  { name: 'Host with an empty value', expect: 'accept', raw: get('Host:\r\n') },
  { name: 'repeated X-Custom', expect: 'accept', raw: get(`${H}X-Custom: a\r\nX-Custom: b\r\nx-custom: c\r\n`) },
  { name: 'repeated Set-Cookie', expect: 'accept', raw: get(`${H}Set-Cookie: a=1; Path=/\r\nSet-Cookie: b=2\r\nset-cookie: c=3\r\n`) },
  { name: 'Cookie, twice', expect: 'accept', raw: get(`${H}Cookie: a=1; b=2\r\nCookie: c="3"\r\n`) },
  { name: 'empty values', expect: 'accept', raw: get(`${H}X-Empty:\r\nX-Space: \r\nX-Tabs:\t\t\r\n`) },
  { name: 'inner spaces and tabs kept', expect: 'accept', raw: get(`${H}X-A: a  b\tc \t d\r\n`) },
  { name: 'leading and trailing whitespace trimmed', expect: 'accept', raw: get(`${H}X-A: \t value \t \r\nX-B:\tb\t\r\n`) },
  { name: 'obs-text in values', expect: 'accept', raw: get(`${H}X-Latin: caf\xe9\r\nX-High: \x80\x81\xfe\xff\r\nX-Mix: a \xa0 b\r\n`) },
  { name: 'every printable ASCII char in the target', expect: 'accept', raw: get(H, `/${printable}`) },
  { name: 'target with " { } | ^ ` \\ < > [ ]', expect: 'accept', raw: get(H, '/a"b{c}d|e^f`g\\h<i>j[k]l') },
  { name: 'target with fragment and #, ?, % repeats', expect: 'accept', raw: get(H, '/p%20q/r?s=t&u=%zz?v#w#x?y') },
  { name: 'query string', expect: 'accept', raw: get(H, '/search?q=a+b&lang=en&page=2&f[]=1&f[]=2') },
  { name: 'long URL', expect: 'accept', raw: get(H, `/${'segment/'.repeat(300)}?${'k=v&'.repeat(200)}`) },
  { name: 'target "/" with "?" only', expect: 'accept', raw: get(H, '/?') },
  { name: 'target starting "//"', expect: 'accept', raw: get(H, '//a/../b/./c') },
  { name: 'every tchar in a name', expect: 'accept', raw: get(`${H}!#$%&'*+-.^_\`|~09azAZ: x\r\n`) },
  { name: 'colons and commas in a value', expect: 'accept', raw: get(`${H}X-A: a:b:c, d,,e\r\nAuthorization: Basic dXNlcjpwYXNz==\r\n`) },
  { name: '100 fields', expect: 'accept', raw: get(`${H}${manyFields}`) },
  { name: 'Connection: keep-alive', expect: 'accept', raw: get(`${H}Connection: keep-alive\r\n`) },
  { name: 'Connection: close', expect: 'accept', raw: get(`${H}Connection: close\r\n`) },
  { name: 'Connection: CLOSE', expect: 'accept', raw: get(`${H}Connection: CLOSE\r\n`) },
  { name: 'Connection: close, keep-alive', expect: 'accept', raw: get(`${H}Connection: close, keep-alive\r\n`) },
  { name: 'connection: keep-alive , close', expect: 'accept', raw: get(`${H}connection: keep-alive , close\r\n`) },
  { name: 'Connection: ,close, , (empty elements)', expect: 'accept', raw: get(`${H}Connection: ,close, ,\r\n`) },
  { name: 'Connection: empty', expect: 'accept', raw: get(`${H}Connection:\r\n`) },
  { name: 'two Connection fields', expect: 'accept', raw: get(`${H}Connection: keep-alive\r\nConnection: Close\r\n`) },
  { name: 'Content-Length: 0', expect: 'accept', raw: `DELETE /x HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n` },
  // Leading whitespace is taken; trailing whitespace after the 0 goes to node:http (which refuses some of it).
  { name: 'Content-Length: HT SP 0 (leading whitespace)', expect: 'accept', raw: get(`${H}content-length:\t 0\r\n`) },
  { name: 'Content-Length:  0 (padded with spaces)', expect: 'null', raw: get(`${H}content-length:  0  \r\n`) },
  { name: 'Content-Length: HT 0 SP', expect: 'null', raw: get(`${H}Content-Length:\t0 \r\n`) },
  { name: 'Connection: close HT (trailing tab)', expect: 'accept', raw: get(`${H}Connection: close\t\r\n`) },
  { name: 'Connection: keep-alive, HT close', expect: 'accept', raw: get(`${H}Connection: keep-alive,\tclose\r\n`) },
  { name: 'Connection: keep-alive HT ,close', expect: 'accept', raw: get(`${H}Connection: keep-alive\t,close\r\n`) },
  { name: 'look-alike names (Transfer-Encodings, Content-Lengths, Expect-CT, X-Upgrade)', expect: 'accept', raw: get(`${H}Transfer-Encodings: chunked\r\nContent-Lengths: 5\r\nExpect-CT: max-age=0\r\nX-Upgrade: websocket\r\nKeep-Alive: timeout=5\r\nProxy-Connection: Upgrade\r\n`) },
  { name: 'names like Object.prototype members', expect: 'accept', raw: get(`${H}constructor: x\r\ntoString: y\r\n__proto__: z\r\nhasOwnProperty: w\r\n`) },

  // Partial heads.
  { name: 'partial: no empty line', expect: 'null', raw: `GET / HTTP/1.1\r\n${H}` },
  { name: 'partial: CR of the empty line only', expect: 'null', raw: `GET / HTTP/1.1\r\n${H}\r` },
  { name: 'partial: request line only', expect: 'null', raw: 'GET / HTTP/1.1\r\n' },
  // Methods.
  { name: 'POST', expect: 'null', raw: `POST / HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n` },
  { name: 'PUT', expect: 'null', raw: `PUT / HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n` },
  { name: 'PATCH', expect: 'null', raw: `PATCH / HTTP/1.1\r\n${H}\r\n` },
  { name: 'TRACE', expect: 'null', raw: `TRACE / HTTP/1.1\r\n${H}\r\n` },
  { name: 'CONNECT', expect: 'null', raw: `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n` },
  { name: 'lower-case get', expect: 'null', raw: `get / HTTP/1.1\r\n${H}\r\n` },
  { name: 'GETX', expect: 'null', raw: `GETX / HTTP/1.1\r\n${H}\r\n` },
  { name: 'GET/ (no space)', expect: 'null', raw: `GET/ HTTP/1.1\r\n${H}\r\n` },
  { name: 'leading empty line', expect: 'null', raw: `\r\nGET / HTTP/1.1\r\n${H}\r\n` },
  // Targets.
  { name: 'absolute-form', expect: 'null', raw: get(H, 'http://example.com/') },
  { name: 'OPTIONS *', expect: 'null', raw: `OPTIONS * HTTP/1.1\r\n${H}\r\n` },
  { name: 'target not starting with /', expect: 'null', raw: get(H, '?a=1') },
  { name: 'no target', expect: 'null', raw: `GET HTTP/1.1\r\n${H}\r\n` },
  { name: 'target with a space', expect: 'null', raw: get(H, '/a b') },
  { name: 'GET /\\x00', expect: 'null', raw: get(H, '/\x00') },
  { name: 'target with \\x01', expect: 'null', raw: get(H, '/a\x01') },
  { name: 'target with DEL', expect: 'null', raw: get(H, '/a\x7f') },
  { name: 'target with \\x80', expect: 'null', raw: get(H, '/caf\x80') },
  { name: 'target with \\xff', expect: 'null', raw: get(H, '/\xff') },
  { name: 'target with a tab', expect: 'null', raw: get(H, '/a\tb') },
  // Request line shape and version.
  { name: 'HTTP/1.0', expect: 'null', raw: `GET / HTTP/1.0\r\n${H}\r\n` },
  { name: 'HTTP/1.2', expect: 'null', raw: `GET / HTTP/1.2\r\n${H}\r\n` },
  { name: 'HTTP/2.0', expect: 'null', raw: `GET / HTTP/2.0\r\n${H}\r\n` },
  { name: 'lower-case http/1.1', expect: 'null', raw: `GET / http/1.1\r\n${H}\r\n` },
  { name: 'HTTP/0.9 style (no version)', expect: 'null', raw: `GET /\r\n${H}\r\n` },
  { name: 'double space after method', expect: 'null', raw: `GET  / HTTP/1.1\r\n${H}\r\n` },
  { name: 'double space before version', expect: 'null', raw: `GET /  HTTP/1.1\r\n${H}\r\n` },
  { name: 'trailing space after version', expect: 'null', raw: `GET / HTTP/1.1 \r\n${H}\r\n` },
  { name: 'tab after method', expect: 'null', raw: `GET\t/ HTTP/1.1\r\n${H}\r\n` },
  { name: 'tab before version', expect: 'null', raw: `GET /\tHTTP/1.1\r\n${H}\r\n` },
  { name: 'request line ends in bare LF', expect: 'null', raw: `GET / HTTP/1.1\n${H}\r\n` },
  // Host.
  { name: 'no Host (GET / HTTP/1.1 CRLF CRLF)', expect: 'null', raw: 'GET / HTTP/1.1\r\n\r\n' },
  { name: 'no Host, other fields', expect: 'null', raw: get('Accept: */*\r\n') },
  { name: 'two Host fields', expect: 'null', raw: get(`${H}Host: evil.example\r\n`) },
  { name: 'Host and host', expect: 'null', raw: get(`Host: a\r\nhost: a\r\n`) },
  // Framing and connection fields.
  { name: 'Transfer-Encoding: chunked', expect: 'null', raw: get(`${H}Transfer-Encoding: chunked\r\n`) },
  { name: 'Transfer-Encoding: identity', expect: 'null', raw: get(`${H}Transfer-Encoding: identity\r\n`) },
  { name: 'Transfer-Encoding empty', expect: 'null', raw: get(`${H}Transfer-Encoding:\r\n`) },
  { name: 'TE:  chunked with spaces', expect: 'null', raw: get(`${H}transfer-encoding:   chunked  \r\n`) },
  { name: 'CL 0 + TE chunked', expect: 'null', raw: get(`${H}Content-Length: 0\r\nTransfer-Encoding: chunked\r\n`) },
  { name: 'TE chunked + CL 0', expect: 'null', raw: get(`${H}Transfer-Encoding: chunked\r\nContent-Length: 0\r\n`) },
  { name: '"Transfer-Encoding : chunked"', expect: 'null', raw: get(`${H}Transfer-Encoding : chunked\r\n`) },
  { name: 'Content-Length: 5', expect: 'null', raw: get(`${H}Content-Length: 5\r\n`) + 'hello' },
  { name: 'Content-Length: 0, 0', expect: 'null', raw: get(`${H}Content-Length: 0, 0\r\n`) },
  { name: 'Content-Length: +0', expect: 'null', raw: get(`${H}Content-Length: +0\r\n`) },
  { name: 'Content-Length: -0', expect: 'null', raw: get(`${H}Content-Length: -0\r\n`) },
  { name: 'Content-Length: 00', expect: 'null', raw: get(`${H}Content-Length: 00\r\n`) },
  { name: 'Content-Length: 0x0', expect: 'null', raw: get(`${H}Content-Length: 0x0\r\n`) },
  { name: 'Content-Length: 0 0', expect: 'null', raw: get(`${H}Content-Length: 0 0\r\n`) },
  // node:http (llhttp) refuses whitespace other than SP after Content-Length's digits (HPE_INVALID_CONTENT_LENGTH).
  { name: 'Content-Length: 0 HT (trailing tab)', expect: 'null', raw: get(`${H}Content-Length: 0\t\r\n`) },
  { name: 'Content-Length: 0 SP HT', expect: 'null', raw: `DELETE /x HTTP/1.1\r\n${H}content-length:  0 \t\r\n\r\n` },
  { name: 'Content-Length empty', expect: 'null', raw: get(`${H}Content-Length:\r\n`) },
  { name: 'duplicate Content-Length: 0', expect: 'null', raw: get(`${H}Content-Length: 0\r\nContent-Length: 0\r\n`) },
  { name: 'Content-Length : 0', expect: 'null', raw: get(`${H}Content-Length : 0\r\n`) },
  { name: 'Upgrade: websocket', expect: 'null', raw: get(`${H}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n`) },
  { name: 'Upgrade alone', expect: 'null', raw: get(`${H}Upgrade: h2c\r\n`) },
  { name: 'Connection: Upgrade alone', expect: 'null', raw: get(`${H}Connection: Upgrade\r\n`) },
  { name: 'Connection: keep-alive, Upgrade', expect: 'null', raw: get(`${H}Connection: keep-alive, Upgrade\r\n`) },
  { name: 'Connection: TE', expect: 'null', raw: get(`${H}Connection: TE\r\nTE: trailers\r\n`) },
  { name: 'Connection: close x (inner space)', expect: 'null', raw: get(`${H}Connection: close x\r\n`) },
  { name: 'Connection: closed', expect: 'null', raw: get(`${H}Connection: closed\r\n`) },
  { name: 'Expect: 100-continue', expect: 'null', raw: get(`${H}Expect: 100-continue\r\n`) },
  { name: 'expect empty', expect: 'null', raw: get(`${H}expect:\r\n`) },
  // Field syntax.
  { name: 'obs-fold with SP', expect: 'null', raw: get(`${H}X-A: a\r\n b\r\n`) },
  { name: 'obs-fold with HT', expect: 'null', raw: get(`${H}X-A: a\r\n\tb\r\n`) },
  { name: 'first field line starts with SP', expect: 'null', raw: get(` ${H}`) },
  { name: 'folded Host', expect: 'null', raw: get('Host:\r\n example.com\r\n') },
  { name: 'whitespace before colon (Host : a)', expect: 'null', raw: get('Host : a\r\n') },
  { name: 'tab before colon', expect: 'null', raw: get(`${H}X-A\t: a\r\n`) },
  { name: 'empty field name', expect: 'null', raw: get(`${H}: a\r\n`) },
  { name: 'field without colon', expect: 'null', raw: get(`${H}X-A a\r\n`) },
  { name: 'header name with NUL', expect: 'null', raw: get(`${H}X\x00Y: a\r\n`) },
  { name: 'header name with ( )', expect: 'null', raw: get(`${H}X(a): b\r\n`) },
  { name: 'header name with @', expect: 'null', raw: get(`${H}X@: b\r\n`) },
  { name: 'header name with \\xe9', expect: 'null', raw: get(`${H}X-caf\xe9: b\r\n`) },
  { name: 'LF-only line endings', expect: 'null', raw: `GET / HTTP/1.1\n${H.replace('\r', '')}\n` },
  { name: 'bare LF between fields', expect: 'null', raw: get(`${H}X-A: a\nX-B: b\r\n`) },
  { name: 'CR without LF in a value', expect: 'null', raw: get(`${H}X-A: a\rb\r\n`) },
  { name: 'CR CR LF', expect: 'null', raw: get(`${H}X-A: a\r\r\n`) },
  { name: 'NUL in a value', expect: 'null', raw: get(`${H}X-A: a\x00b\r\n`) },
  { name: '\\x01 in a value', expect: 'null', raw: get(`${H}X-A: \x01\r\n`) },
  { name: 'VT in a value', expect: 'null', raw: get(`${H}X-A: a\x0bb\r\n`) },
  { name: 'FF in a value', expect: 'null', raw: get(`${H}X-A: a\x0cb\r\n`) },
  { name: 'ESC in a value', expect: 'null', raw: get(`${H}X-A: \x1b[31m\r\n`) },
  { name: 'DEL in a value', expect: 'null', raw: get(`${H}X-A: a\x7f\r\n`) },
  { name: 'NUL in Host', expect: 'null', raw: get('Host: a\x00.example\r\n') },
  { name: '501 fields', expect: 'null', raw: get(`${H}${tooManyFields}`) },
  { name: 'head over maxHeadSize', expect: 'null', raw: get(`${H}X-Big: ${'a'.repeat(MAX_HEAD)}\r\n`) },
];

// ---------------------------------------------------------------------------
// Seeded random mutants of valid heads.


const BASES = [
  get(`${H}User-Agent: curl/8.5.0\r\nAccept: */*\r\n`),
  `HEAD /a/b?c=d HTTP/1.1\r\nHost: a:80\r\nConnection: close\r\nX-Custom: x y\r\n\r\n`,
  `DELETE /r HTTP/1.1\r\nhost: h\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n`,
  `OPTIONS /o HTTP/1.1\r\nHost: h\r\nCookie: a=1; b=2\r\nSet-Cookie: s\r\nSet-Cookie: t\r\n\r\n`,
  get(`Accept: a\r\nHost: b\r\nTransfer-Encodng: c\r\nConnection: close,keep-alive\r\n`, '/x%41?y#z'),
];
const INTERESTING = [0x20, 0x09, 0x0d, 0x0a, 0x00, 0x3a, 0x2c, 0x7f, 0x80, 0xff, 0x61, 0x2f, 0x30, 0x0b, 0x0c, 0x41, 0x3f, 0x23, 0x22, 0x2d];


const MUTANTS = mutants(BASES, { seed: 0x5eed_f00d, count: 600, tries: 800, twiceEvery: 4, bytes: INTERESTING });


// ---------------------------------------------------------------------------

const outcomes = new Map<string, NodeOutcome>();

before(async () => {
  server = http.createServer({ joinDuplicateHeaders: false, maxHeaderSize: MAX_HEAD }, (req, res) => {
    const parsed = JSON.stringify({ method: req.method, url: req.url, rawHeaders: req.rawHeaders, headers: req.headers });
    res.writeHead(200, { 'x-parsed': Buffer.from(parsed, 'utf8').toString('base64'), 'content-length': 0, connection: 'close' });
    res.end();
  });
  server.on('clientError', (err: Error & { code?: string }, socket: net.Socket) => {
    const code = err.code ?? 'ERR';
    if (socket.writable) socket.end(`HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: ${code.length}\r\n\r\n${code}`);
    else socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  const raws = [...new Set([...CASES.map((c) => c.raw), ...BASES, ...MUTANTS])];
  const results = await mapLimit(raws, 32, sendRaw);
  raws.forEach((raw, k) => outcomes.set(raw, results[k]!));
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const parse = (raw: string): RequestHead | null => parseRequestHead(Buffer.from(raw, 'latin1'), 0, MAX_HEAD);

describe('parseRequestHead against node:http: hand-written heads', () => {
  for (const c of CASES) {
    test(`${c.expect === 'accept' ? 'accepts' : 'null for'}: ${c.name}`, () => {
      const head = parse(c.raw);
      const problem = differ(c.raw, head, outcomes.get(c.raw));
      assert.equal(problem, '', problem);
      if (c.expect === 'accept') assert.notEqual(head, null, `parser returned null for ${show(c.raw)}`);
      else assert.equal(head, null, `parser accepted ${show(c.raw)}`);
    });
  }

  test('the corpus is broad: many accepted heads, every one node:http-accepted too', () => {
    const accepted = CASES.filter((c) => c.expect === 'accept');
    assert.ok(CASES.length >= 70, `${CASES.length} cases`);
    assert.ok(accepted.length >= 20, `${accepted.length} accepted cases`);
    for (const c of accepted) assert.equal(outcomes.get(c.raw)?.status, 200, `node:http refused ${c.name}`);
  });

  test('the ordinary cases: headers trimmed and close computed as intended', () => {
    const trimmed = parse(get(`${H}X-A: \t value \t \r\nX-B:\tb\t\r\n`));
    assert.deepEqual(trimmed?.rawHeaders, ['Host', 'example.com', 'X-A', 'value', 'X-B', 'b']);
    assert.equal(parse(get(`${H}Connection: keep-alive\r\n`))?.close, false);
    assert.equal(parse(get(`${H}Connection: CLOSE\r\n`))?.close, true);
    assert.equal(parse(get(`${H}connection: keep-alive , close\r\n`))?.close, true);
    assert.equal(parse(get(H))?.close, false);
  });
});

describe('parseRequestHead against node:http: seeded mutants', () => {
  test(`${MUTANTS.length} mutants of ${BASES.length} valid heads: whatever the parser accepts, node:http reads the same`, () => {
    for (const raw of BASES) assert.notEqual(parse(raw), null, `base ${show(raw)} not accepted`);
    const problems: string[] = [];
    let accepted = 0;
    for (const raw of [...BASES, ...MUTANTS]) {
      const head = parse(raw);
      if (head !== null) accepted++;
      const problem = differ(raw, head, outcomes.get(raw));
      if (problem !== '') problems.push(problem);
    }
    assert.deepEqual(problems, []);
    // The mutants exercise both sides: some stay acceptable, many do not.
    assert.ok(accepted > MUTANTS.length / 10 && accepted < MUTANTS.length, `${accepted} accepted of ${MUTANTS.length}`);
  });
});

describe('parseRequestHead: offsets, partial heads, size limit', () => {
  const one = get(`${H}X-A: 1\r\n`, '/one');
  const two = `HEAD /two HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n`;

  test('start: a head after other bytes in the buffer', () => {
    const prefix = 'garbage\r\n\r\nGET / HTTP/1.0\r\n\r\n';
    const buf = Buffer.from(prefix + one, 'latin1');
    const head = parseRequestHead(buf, prefix.length, MAX_HEAD);
    assert.ok(head !== null);
    assert.equal(head.url, '/one');
    assert.deepEqual(head.rawHeaders, ['Host', 'example.com', 'X-A', '1']);
    assert.equal(head.end, buf.length);
  });

  test('two pipelined heads, parsed one after the other with end', () => {
    const buf = Buffer.from(one + two, 'latin1');
    const first = parseRequestHead(buf, 0, MAX_HEAD);
    assert.ok(first !== null);
    assert.equal(first.method, 'GET');
    assert.equal(first.end, one.length);
    assert.equal(first.close, false);
    const second = parseRequestHead(buf, first.end, MAX_HEAD);
    assert.ok(second !== null);
    assert.deepEqual({ method: second.method, url: second.url, rawHeaders: second.rawHeaders, close: second.close, end: second.end },
      { method: 'HEAD', url: '/two', rawHeaders: ['Host', 'b', 'Connection', 'close'], close: true, end: buf.length });
    assert.equal(parseRequestHead(buf, second.end, MAX_HEAD), null);
  });

  test('a head followed by the start of the next: only the first is parsed', () => {
    const buf = Buffer.from(one + two.slice(0, 20), 'latin1');
    assert.equal(parseRequestHead(buf, 0, MAX_HEAD)?.end, one.length);
    assert.equal(parseRequestHead(buf, one.length, MAX_HEAD), null);
  });

  test('every proper prefix of a head is null', () => {
    for (const raw of [one, two]) {
      for (let n = 0; n < raw.length; n++) assert.equal(parse(raw.slice(0, n)), null, `prefix ${show(raw.slice(0, n))}`);
      assert.notEqual(parse(raw), null);
    }
  });

  /** sized builds a valid head of exactly `size` bytes. */
  const sized = (size: number): string => {
    const bare = get(`${H}X-Pad: \r\n`);
    const head = get(`${H}X-Pad: ${'p'.repeat(size - bare.length)}\r\n`);
    assert.equal(head.length, size);
    return head;
  };

  test('maxHeadSize: one byte under the limit accepted (node:http too), at and over it null', async () => {
    const under = sized(MAX_HEAD - 1);
    const head = parse(under);
    assert.ok(head !== null);
    assert.equal(differ(under, head, await sendRaw(under)), '');
    assert.equal(parse(sized(MAX_HEAD)), null);
    assert.equal(parse(sized(MAX_HEAD + 1)), null);
    // Counted from start, not from the buffer's beginning.
    const prefix = 'x'.repeat(100);
    const buf = Buffer.from(prefix + under, 'latin1');
    assert.equal(parseRequestHead(buf, prefix.length, MAX_HEAD)?.end, buf.length);
    assert.equal(parseRequestHead(Buffer.from(prefix + sized(MAX_HEAD), 'latin1'), prefix.length, MAX_HEAD), null);
    // And a smaller limit applies as given.
    assert.notEqual(parseRequestHead(Buffer.from(one, 'latin1'), 0, one.length + 1), null);
    assert.equal(parseRequestHead(Buffer.from(one, 'latin1'), 0, one.length), null);
  });
});

describe('FastRequest#headers against IncomingMessage#headers', () => {
  const cases: Array<{ name: string; raw: string }> = [
    { name: 'repeated host, user-agent, cookie, set-cookie, x-custom, accept', raw: get('Host: a\r\nUser-Agent: one\r\nCookie: a=1\r\nSet-Cookie: s=1\r\nX-Custom: x1\r\nAccept: text/html\r\nuser-agent: two\r\ncookie: b=2\r\nSET-COOKIE: s=2\r\nx-custom: x2\r\nACCEPT: */*\r\nCookie: c=3\r\nSet-Cookie: s=3\r\nX-CUSTOM: x3\r\n') },
    { name: 'one of each', raw: get('Host: a\r\nUser-Agent: ua\r\nCookie: a=1\r\nSet-Cookie: s\r\nX-Custom: x\r\nAccept: */*\r\n') },
    { name: 'other first-wins and joined fields', raw: get('Host: a\r\nAuthorization: one\r\nauthorization: two\r\nReferer: r1\r\nReferer: r2\r\nContent-Type: t1\r\nContent-Type: t2\r\nDate: d1\r\nDate: d2\r\nVary: v1\r\nVary: v2\r\nAccept-Encoding: gzip\r\nAccept-Encoding: br\r\nIf-Modified-Since: m1\r\nIf-Modified-Since: m2\r\nMax-Forwards: 1\r\nMax-Forwards: 2\r\nFrom: f1\r\nFrom: f2\r\n') },
    { name: 'empty values repeated', raw: get('Host: a\r\nX-Custom:\r\nX-Custom: b\r\nCookie:\r\nCookie: c=1\r\nSet-Cookie:\r\n') },
    { name: 'names like Object.prototype members', raw: get('Host: a\r\nconstructor: x\r\ntoString: y\r\ntostring: z\r\n__proto__: p\r\nhasOwnProperty: h\r\n') },
    // node:http joins only onto a string it holds (typeof === 'string'), so an inherited member is no earlier value.
    { name: 'a single Constructor field', raw: get('Host: a\r\nConstructor: x\r\n') },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const head = parse(c.raw);
      assert.ok(head !== null, `parser returned null for ${show(c.raw)}`);
      const node = await sendRaw(c.raw);
      assert.equal(node.status, 200);
      assert.deepEqual(head.rawHeaders, node.rawHeaders);
      const request = new FastRequest(head.method, head.url, head.rawHeaders, null as unknown as Socket, '127.0.0.1');
      // Compared as JSON: node's object comes back through the wire.
      assert.deepEqual(JSON.parse(JSON.stringify(request.headers)), node.headers);
      assert.equal(request.headers, request.headers, 'built once');
    });
  }
});
