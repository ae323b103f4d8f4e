/**
 * A request-smuggling corpus, generated from mutation families in the
 * manner of the public desync tools (aws/http-desync-guardian's test
 * cases, defparam/smuggler's mutations), written here from their families,
 * not copied: every request carries one mutation and is followed, on the
 * same connection, by a request to /smuggled, which a proxy that framed
 * the first request differently from the strict reading would pass on.
 *
 * allowed: how many requests of the connection may legitimately reach the
 * backend: 0 for a request that must be refused, 1 for an Upgrade request
 * (forwarded; its non-101 answer must end the connection) and for a valid
 * head whose chunked body goes wrong (a streaming proxy has sent the head
 * on; the backend sees that request cut short, never a second one).
 */

export interface SmugglingCase {
  readonly family: string;
  readonly name: string;
  readonly bytes: string;
  readonly allowed: 0 | 1;
}

/** The request behind each mutated one. */
export const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';

/** Transfer-Encoding spellings that are not exactly "chunked" as the last coding (the TE obfuscations). */
const TE_VARIANTS: readonly [string, string][] = [
  ['xchunked', 'Transfer-Encoding: xchunked'],
  ['chunked-x', 'Transfer-Encoding: chunked-x'],
  ['chunk', 'Transfer-Encoding: chunk'],
  ['quoted', 'Transfer-Encoding: "chunked"'],
  ['chunked, identity', 'Transfer-Encoding: chunked, identity'],
  ['identity', 'Transfer-Encoding: identity'],
  ['empty', 'Transfer-Encoding:'],
  ['comma only', 'Transfer-Encoding: ,'],
  ['space before colon', 'Transfer-Encoding : chunked'],
  ['tab before colon', 'Transfer-Encoding\t: chunked'],
  ['vertical tab', 'Transfer-Encoding:\x0bchunked'],
  ['form feed', 'Transfer-Encoding:\x0cchunked'],
  ['NUL after', 'Transfer-Encoding: chunked\x00'],
  ['CR inside', 'Transfer-Encoding: chun\rked'],
  ['obs-fold', 'Transfer-Encoding:\r\n chunked'],
  ['bare LF fold', 'Transfer-Encoding:\n chunked'],
  ['name with underscore', 'Transfer_Encoding: chunked'],
  ['leading space on the line', ' Transfer-Encoding: chunked'],
  ['non-ASCII', 'Transfer-Encoding: chunk\xe9d'],
];

/** Content-Length spellings that are not one plain decimal number. */
const CL_VARIANTS: readonly [string, string][] = [
  ['plus sign', 'Content-Length: +5'],
  ['negative', 'Content-Length: -5'],
  ['hex', 'Content-Length: 0x5'],
  ['trailing letter', 'Content-Length: 5a'],
  ['space inside', 'Content-Length: 5 5'],
  ['list of two values', 'Content-Length: 5, 6'],
  ['empty', 'Content-Length:'],
  ['overflow', 'Content-Length: 184467440737095516160'],
  ['space before colon', 'Content-Length : 5'],
  ['NUL after', 'Content-Length: 5\x00'],
  ['obs-fold', 'Content-Length:\r\n 5'],
];

const head = (lines: readonly string[], method = 'POST', target = '/'): string => `${method} ${target} HTTP/1.1\r\nHost: x\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`;

export function smugglingCorpus(): SmugglingCase[] {
  const out: SmugglingCase[] = [];
  const add = (family: string, name: string, bytes: string, allowed: 0 | 1 = 0): void => { out.push({ family, name, bytes: bytes + SMUGGLED, allowed }); };
  const chunkedEnd = '0\r\n\r\n';

  // CL.TE and TE.CL: both framings present, in either order, the TE plain or obfuscated.
  for (const [name, te] of [['chunked', 'Transfer-Encoding: chunked'] as const, ...TE_VARIANTS]) {
    const body = chunkedEnd;
    add('CL.TE', name, head([`Content-Length: ${body.length}`, te]) + body);
    add('TE.CL', name, head([te, `Content-Length: ${body.length}`]) + body);
    // The TE.CL shape where the Content-Length is short and the rest looks like a chunk.
    add('TE.CL', `${name}, short length`, head([te, 'Content-Length: 3']) + `5c\r\n${SMUGGLED}\r\n0\r\n\r\n`);
  }
  // TE.TE: a plain chunked and an obfuscated one; and an obfuscated one alone.
  for (const [name, te] of TE_VARIANTS) {
    add('TE.TE', `chunked + ${name}`, head(['Transfer-Encoding: chunked', te]) + chunkedEnd);
    add('TE.TE', `${name} + chunked`, head([te, 'Transfer-Encoding: chunked']) + chunkedEnd);
    add('TE', name, head([te]) + chunkedEnd);
  }
  add('TE.TE', 'chunked twice in one field', head(['Transfer-Encoding: chunked, chunked']) + chunkedEnd);
  add('TE', 'HTTP/1.0 with chunked', `POST / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n${chunkedEnd}`);

  // Duplicate and malformed Content-Length.
  add('CL', 'two different values', head(['Content-Length: 0', 'Content-Length: 5']) + 'abcde');
  add('CL', 'two different values, reversed', head(['Content-Length: 5', 'Content-Length: 0']) + 'abcde');
  for (const [name, cl] of CL_VARIANTS) add('CL', name, head([cl]) + 'abcde');

  // Chunk sizes and extensions.
  const chunked = (chunks: string): string => head(['Transfer-Encoding: chunked']) + chunks;
  const addChunked = (name: string, chunks: string): void => add('chunk', name, chunked(chunks), 1);
  addChunked('size not hex', 'zz\r\nabc\r\n0\r\n\r\n');
  addChunked('negative size', '-1\r\nabc\r\n0\r\n\r\n');
  addChunked('0x prefix', '0x3\r\nabc\r\n0\r\n\r\n');
  addChunked('size overflow', 'fffffffffffffffffff\r\nabc\r\n0\r\n\r\n');
  addChunked('size ends with bare LF', '3\nabc\r\n0\r\n\r\n');
  addChunked('data longer than its size', '3\r\nabcdef\r\n0\r\n\r\n');
  addChunked('data without its CRLF', '3\r\nabc0\r\n\r\n');
  addChunked('extension with CR', '3;a\rb\r\nabc\r\n0\r\n\r\n');
  addChunked('extension with bare LF', '3;a\nb\r\nabc\r\n0\r\n\r\n');
  addChunked('extension with NUL', '3;a\x00b\r\nabc\r\n0\r\n\r\n');
  addChunked('space inside the size', '3 3\r\nabc\r\n0\r\n\r\n');
  addChunked('last chunk with a bare-LF trailer', '0\r\nX: y\n\r\n');

  // Bare LF and CR, NUL/CR/LF in values, obs-fold, whitespace before the colon.
  add('line ends', 'request line ends with bare LF', 'GET / HTTP/1.1\nHost: x\r\n\r\n');
  add('line ends', 'field line ends with bare LF', 'GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n');
  add('line ends', 'bare CR ends a field line', 'GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n');
  add('line ends', 'head ends with bare LFs', 'GET / HTTP/1.1\r\nHost: x\n\n');
  add('values', 'NUL in a value', head(['X-A: a\x00b'], 'GET'));
  add('values', 'CR in a value', head(['X-A: a\rb'], 'GET'));
  add('values', 'LF in a value', head(['X-A: a\nTransfer-Encoding: chunked'], 'GET'));
  add('obs-fold', 'folded value', head(['X-A: a', ' b'], 'GET'));
  add('obs-fold', 'folded Host', 'GET / HTTP/1.1\r\nHost:\r\n x\r\n\r\n');
  add('whitespace', 'space before the colon of Host', 'GET / HTTP/1.1\r\nHost : x\r\n\r\n');
  add('whitespace', 'space in a field name', head(['X A: b'], 'GET'));

  // Targets: asterisk form, absolute form with userinfo or another scheme, authority form.
  add('target', 'asterisk form with GET', 'GET * HTTP/1.1\r\nHost: x\r\n\r\n');
  add('target', 'asterisk form with OPTIONS', 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n');
  add('target', 'absolute form with userinfo', 'GET http://evil@x/ HTTP/1.1\r\nHost: x\r\n\r\n');
  add('target', 'absolute form, another scheme', 'GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n');
  add('target', 'absolute form without a host', 'GET http:/// HTTP/1.1\r\nHost: x\r\n\r\n');
  add('target', 'authority form', 'CONNECT x:80 HTTP/1.1\r\nHost: x\r\n\r\n');
  add('target', 'space inside the target', 'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n');

  // Host.
  add('host', 'two Host fields', 'GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n');
  add('host', 'Host with userinfo', 'GET / HTTP/1.1\r\nHost: evil@x\r\n\r\n');
  add('host', 'Host with a non-numeric port', 'GET / HTTP/1.1\r\nHost: x:http\r\n\r\n');

  // Upgrade smuggling: the backend answers the Upgrade with a 200, not a 101; what follows on the
  // client's connection must not reach the backend as a request (nor as tunnel bytes).
  add('upgrade', 'websocket answered 200', 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n', 1);
  add('upgrade', 'h2c answered 200', 'GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n', 1);
  add('upgrade', 'Upgrade with a body', 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello');
  add('upgrade', 'Upgrade with a chunked body', 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
  return out;
}
