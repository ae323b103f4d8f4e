/**
 * Fulcrum's HTTP/1.1 upstream client (src/upstream/h1-client.ts) against a
 * corpus of backend responses served as raw bytes: framing (Content-Length,
 * chunked with extensions and trailers, close-delimited, HEAD, 204, 304,
 * 1xx), connection reuse, malformed and oversized heads, timeouts, early
 * closes, and large bodies in both directions with back-pressure. Every
 * request also checks the handler contract: onConnect first, then at most
 * one final onHeaders, onData only after it, and exactly one of onComplete
 * or onError, nothing after. The well-formed cases are also sent through
 * undici's Pool, which must see the same response.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type net from 'node:net';
import { Readable } from 'node:stream';
import { Pool } from 'undici';
import { freePort, startBackends, startRawServer, type DemoBackend, type RawServer } from '../helpers/backends.js';
import { waitFor } from '../helpers/balancer.js';
import { H1Pool, type H1PoolOptions } from '../../src/upstream/h1-client.js';
import type { UpstreamDispatcher, UpstreamHandler, UpstreamRequest } from '../../src/upstream/dispatch.js';
import { fromUpstreamError } from '../../src/core/errors.js';

interface Outcome {
  status: number;
  statusText: string;
  /** headers as latin1 strings, [name, value...] */
  headers: string[];
  body: Buffer;
  /** trailers as latin1 strings; null and [] both mean none */
  trailers: string[] | null;
  error: (Error & { code?: string }) | null;
  /** informational: 1xx statuses passed to onHeaders (undici reports them; Fulcrum's client skips them) */
  informational: number[];
  /** pauses: how many times onData returned false */
  pauses: number;
  /** violations of the handler contract */
  violations: string[];
}

interface SendOptions {
  /** pauseEvery: return false from every Nth onData, resuming after pauseMs. */
  pauseEvery?: number;
  pauseMs?: number;
  /** pauseHead: return false from onHeaders, resuming after pauseMs (body bytes read with the head wait meanwhile). */
  pauseHead?: boolean;
  /** onConnect: gets the request's abort function. */
  onConnect?: (abort: (err?: Error) => void) => void;
  onFirstData?: () => void;
}

/** send dispatches one request and records what the handler saw, checking the callback contract. */
function send(pool: UpstreamDispatcher, request: Partial<UpstreamRequest> & { path: string }, options: SendOptions = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { status: 0, statusText: '', headers: [], body: Buffer.alloc(0), trailers: null, error: null, informational: [], pauses: 0, violations: [] };
    const chunks: Buffer[] = [];
    let stage: 'dispatched' | 'connected' | 'headers' | 'ended' = 'dispatched';
    let paused = false;
    let dataCalls = 0;
    let resume: () => void = () => undefined;
    const settle = (): void => {
      out.body = Buffer.concat(chunks);
      // Late callbacks would show up as violations before the test reads them.
      setTimeout(() => resolve(out), 20);
    };
    const handler: UpstreamHandler = {
      onConnect(abort) {
        if (stage !== 'dispatched') out.violations.push(`onConnect in stage ${stage}`);
        stage = 'connected';
        options.onConnect?.(abort);
      },
      onHeaders(statusCode, rawHeaders, resumeFn, statusText) {
        if (stage !== 'connected') out.violations.push(`onHeaders in stage ${stage}`);
        if (statusCode < 200) {
          out.informational.push(statusCode);
          return true;
        }
        stage = 'headers';
        out.status = statusCode;
        out.statusText = statusText;
        out.headers = rawHeaders.map((b) => b.toString('latin1'));
        resume = resumeFn;
        if (options.pauseHead === true) {
          out.pauses++;
          paused = true;
          setTimeout(() => { paused = false; resume(); }, options.pauseMs ?? 1);
          return false;
        }
        return true;
      },
      onData(chunk) {
        if (stage !== 'headers') out.violations.push(`onData in stage ${stage}`);
        if (paused) out.violations.push('onData while paused');
        if (dataCalls++ === 0) options.onFirstData?.();
        chunks.push(chunk);
        if (options.pauseEvery !== undefined && dataCalls % options.pauseEvery === 0) {
          out.pauses++;
          paused = true;
          setTimeout(() => { paused = false; resume(); }, options.pauseMs ?? 1);
          return false;
        }
        return true;
      },
      onComplete(trailers) {
        if (stage !== 'headers') out.violations.push(`onComplete in stage ${stage}`);
        stage = 'ended';
        out.trailers = trailers === null ? null : (trailers as unknown as Buffer[]).map((b) => b.toString('latin1'));
        settle();
      },
      onError(err) {
        // (onError without onConnect is allowed: a request refused before it starts, as undici does.)
        if (stage === 'ended') out.violations.push(`onError in stage ${stage}`);
        stage = 'ended';
        out.error = err;
        settle();
      },
    };
    pool.dispatch({ method: 'GET', headers: ['host', 'backend.test'], body: null, ...request }, handler);
  });
}

function assertContract(out: Outcome): void {
  assert.deepEqual(out.violations, [], 'the handler contract holds');
}

function assertOk(out: Outcome, status: number, body: string): void {
  assertContract(out);
  assert.equal(out.error, null, `no error: ${out.error?.message}`);
  assert.equal(out.status, status);
  assert.equal(out.body.toString('latin1'), body);
}

function assertFails(out: Outcome, code: string, fulcrumCode: string): void {
  assertContract(out);
  assert.ok(out.error !== null, 'the request failed');
  assert.equal(out.error.code, code, `error ${out.error.code}: ${out.error.message}`);
  assert.equal(fromUpstreamError(out.error, out.status !== 0).code, fulcrumCode);
}

const OPTIONS: H1PoolOptions = { connectTimeout: 2000, headersTimeout: 2000, bodyTimeout: 2000 };

// --- the corpus ------------------------------------------------------------

interface Canned {
  /** bytes: the response, written as latin1. */
  bytes: string;
  /** end: close the connection after writing it. */
  end?: boolean;
  /** trickle: write one byte per TCP segment. */
  trickle?: boolean;
}

const CHUNKED_WITH_TRAILERS = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n'
  + '5;name=value;flag\r\nhello\r\n7\r\n, world\r\nA;x="quoted"\r\n0123456789\r\n0\r\nX-Checksum: abc123\r\nX-Other: 2\r\n\r\n';

const CORPUS: Record<string, Canned> = {
  'content-length': { bytes: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello' },
  'chunked': { bytes: CHUNKED_WITH_TRAILERS },
  'chunked-trickle': { bytes: CHUNKED_WITH_TRAILERS, trickle: true },
  'length-trickle': { bytes: 'HTTP/1.1 201 Created\r\nX-A: 1\r\nContent-Length: 11\r\n\r\nhello world', trickle: true },
  'close-delimited': { bytes: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nread until the connection closes', end: true },
  'http10': { bytes: 'HTTP/1.0 200 OK\r\n\r\nold style', end: true },
  'head': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n' },
  'no-content': { bytes: 'HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n' },
  'not-modified': { bytes: 'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 5000\r\n\r\n' },
  'continue': { bytes: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok' },
  'early-hints': { bytes: 'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok' },
  'connection-close': { bytes: 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok' },
  'keep-alive-1s': { bytes: 'HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok' },
  'latin1': { bytes: 'HTTP/1.1 200 Très Bien\r\nX-Name: caf\xe9\r\nX-Spaces:   padded \t \r\nContent-Length: 0\r\n\r\n' },
  'extra-bytes': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokGARBAGE' },
  // Malformed and hostile.
  'bad-status': { bytes: 'HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok' },
  'bad-protocol': { bytes: 'HTTX/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok' },
  'bad-version': { bytes: 'HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok' },
  'cl-and-te': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n' },
  'cl-conflict': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok' },
  'cl-invalid': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok' },
  'te-not-chunked': { bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok', end: true },
  'te-chunked-then-gzip': { bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nok', end: true },
  'bad-chunk-size': { bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n' },
  'chunk-without-crlf': { bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n' },
  'bare-lf': { bytes: 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok' },
  'obs-fold': { bytes: 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok' },
  'space-before-colon': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok' },
  'nul-in-value': { bytes: 'HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok' },
  'cr-in-value': { bytes: 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok' },
  'switching-protocols': { bytes: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n' },
  'head-too-large': { bytes: `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\nContent-Length: 2\r\n\r\nok` },
  'head-near-limit': { bytes: `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(60 * 1024)}\r\nContent-Length: 2\r\n\r\nok` },
  'premature-eof': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part of it', end: true },
  'premature-eof-chunked': { bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly part', end: true },
  'eof-in-head': { bytes: 'HTTP/1.1 200 OK\r\nContent-Le', end: true },
  'hang': { bytes: '' },
  'stall': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome of it' },
};

/** write sends a canned response, all at once or one byte per segment. */
function write(socket: net.Socket, canned: Canned): void {
  if (!canned.trickle) {
    if (canned.bytes !== '') socket.write(canned.bytes, 'latin1');
    if (canned.end) socket.end();
    return;
  }
  socket.setNoDelay(true);
  const bytes = Buffer.from(canned.bytes, 'latin1');
  let i = 0;
  const next = (): void => {
    if (socket.destroyed) return;
    if (i < bytes.length) {
      socket.write(bytes.subarray(i, ++i));
      setTimeout(next, 0);
    } else if (canned.end) socket.end();
  };
  next();
}

/** onRequests calls fn with the head of each request read on a connection (the corpus requests have no bodies). */
function onRequests(socket: net.Socket, fn: (path: string, head: string, index: number) => void): void {
  let pending = '';
  let index = 0;
  socket.on('data', (d: Buffer) => {
    pending += d.toString('latin1');
    for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
      const head = pending.slice(0, end);
      pending = pending.slice(end + 4);
      fn(head.split(' ')[1] ?? '', head, index++);
    }
  });
}

describe('HTTP/1.1 upstream client: the response corpus', { timeout: 60_000 }, () => {
  let server: RawServer;
  let connections = 0;
  let pool: H1Pool;
  let undici: Pool;
  const timeouts = { connectTimeout: 2000, headersTimeout: 300, bodyTimeout: 300 };

  before(async () => {
    server = await startRawServer((socket) => {
      connections++;
      onRequests(socket, (path) => {
        const canned = CORPUS[path.slice(1)];
        if (canned === undefined) socket.destroy();
        else write(socket, canned);
      });
    });
    pool = new H1Pool(`http://127.0.0.1:${server.port}`, timeouts);
    undici = new Pool(`http://127.0.0.1:${server.port}`, {
      pipelining: 1, headersTimeout: 300, bodyTimeout: 300, maxHeaderSize: 64 * 1024, strictContentLength: true,
    });
  });
  after(async () => {
    await pool.destroy();
    await undici.destroy();
    await server.close();
  });

  /** sameAsUndici sends the request through undici too and compares what both handlers saw. */
  async function sameAsUndici(out: Outcome, request: Partial<UpstreamRequest> & { path: string }): Promise<void> {
    const theirs = await send(undici as unknown as UpstreamDispatcher, request);
    assert.equal(theirs.error, null, `undici: ${theirs.error?.message}`);
    assert.deepEqual(
      { status: out.status, statusText: out.statusText, headers: out.headers, body: out.body.toString('latin1'), trailers: out.trailers ?? [] },
      { status: theirs.status, statusText: theirs.statusText, headers: theirs.headers, body: theirs.body.toString('latin1'), trailers: theirs.trailers ?? [] },
    );
  }

  test('Content-Length body', async () => {
    const out = await send(pool, { path: '/content-length' });
    assertOk(out, 200, 'hello');
    assert.equal(out.statusText, 'OK');
    assert.deepEqual(out.headers, ['Content-Type', 'text/plain', 'Content-Length', '5']);
    await sameAsUndici(out, { path: '/content-length' });
  });

  test('chunked body with chunk extensions and trailers: decoded, trailers passed on', async () => {
    const out = await send(pool, { path: '/chunked' });
    assertOk(out, 200, 'hello, world0123456789');
    assert.deepEqual(out.trailers, ['X-Checksum', 'abc123', 'X-Other', '2']);
    await sameAsUndici(out, { path: '/chunked' });
  });

  test('responses split into one-byte TCP segments parse the same', async () => {
    const chunked = await send(pool, { path: '/chunked-trickle' });
    assertOk(chunked, 200, 'hello, world0123456789');
    assert.deepEqual(chunked.trailers, ['X-Checksum', 'abc123', 'X-Other', '2']);
    const sized = await send(pool, { path: '/length-trickle' });
    assertOk(sized, 201, 'hello world');
    // (undici 7 loses the reason phrase of a status line split this way.)
    assert.equal(sized.statusText, 'Created');
    assert.deepEqual(sized.headers, ['X-A', '1', 'Content-Length', '11']);
  });

  test('close-delimited bodies (HTTP/1.1 without length, and HTTP/1.0) end at EOF, and the connection is not reused', async () => {
    const out = await send(pool, { path: '/close-delimited' });
    assertOk(out, 200, 'read until the connection closes');
    await sameAsUndici(out, { path: '/close-delimited' });
    const old = await send(pool, { path: '/http10' });
    assertOk(old, 200, 'old style');
    await waitFor(() => pool.connections === 0);
  });

  test('HEAD: no body is read despite Content-Length', async () => {
    const out = await send(pool, { path: '/head', method: 'HEAD' });
    assertOk(out, 200, '');
    assert.deepEqual(out.headers, ['Content-Length', '1234']);
    await sameAsUndici(out, { path: '/head', method: 'HEAD' });
  });

  test('204 and 304 have no body (a 304 may carry the Content-Length of the full representation)', async () => {
    const own = new H1Pool(`http://127.0.0.1:${server.port}`, timeouts);
    const before = connections;
    const noContent = await send(own, { path: '/no-content' });
    assertOk(noContent, 204, '');
    const notModified = await send(own, { path: '/not-modified' });
    assertOk(notModified, 304, '');
    assert.deepEqual(notModified.headers, ['ETag', '"v1"', 'Content-Length', '5000']);
    // The connection stayed in step: the next response on it is read right.
    assertOk(await send(own, { path: '/content-length' }), 200, 'hello');
    assert.equal(connections - before, 1, 'one connection carried all three');
    await own.close();
    await sameAsUndici(noContent, { path: '/no-content' });
    // (undici 7 fails a 304 that carries a Content-Length, which RFC 9110 8.6 allows.)
  });

  test('interim responses (100 Continue, 103 Early Hints) are skipped for the final one', async () => {
    assertOk(await send(pool, { path: '/continue' }), 200, 'ok');
    const hints = await send(pool, { path: '/early-hints' });
    assertOk(hints, 200, 'ok');
    assert.deepEqual(hints.headers, ['Content-Length', '2']);
    assert.deepEqual(hints.informational, [], 'no onHeaders for a 1xx');
  });

  test('latin1 header bytes and reason phrases pass through unchanged; value padding is trimmed', async () => {
    const out = await send(pool, { path: '/latin1' });
    assertOk(out, 200, '');
    assert.equal(out.statusText, 'Très Bien');
    assert.deepEqual(out.headers, ['X-Name', 'caf\xe9', 'X-Spaces', 'padded', 'Content-Length', '0']);
  });

  test('bytes after the end of a response complete it, but the connection is not reused', async () => {
    const own = new H1Pool(`http://127.0.0.1:${server.port}`, timeouts);
    const before = connections;
    assertOk(await send(own, { path: '/extra-bytes' }), 200, 'ok');
    assertOk(await send(own, { path: '/content-length' }), 200, 'hello');
    assert.equal(connections - before, 2);
    await own.close();
  });

  const MALFORMED: [string, string][] = [
    ['bad-status', 'HPE_INVALID_STATUS'],
    ['bad-protocol', 'HPE_INVALID_CONSTANT'],
    ['bad-version', 'HPE_INVALID_VERSION'],
    ['cl-and-te', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    ['cl-conflict', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    ['cl-invalid', 'HPE_INVALID_CONTENT_LENGTH'],
    ['te-not-chunked', 'HPE_INVALID_TRANSFER_ENCODING'],
    ['te-chunked-then-gzip', 'HPE_INVALID_TRANSFER_ENCODING'],
    ['bare-lf', 'HPE_CR_EXPECTED'],
    ['obs-fold', 'HPE_INVALID_HEADER_TOKEN'],
    ['space-before-colon', 'HPE_INVALID_HEADER_TOKEN'],
    ['nul-in-value', 'HPE_INVALID_HEADER_TOKEN'],
    ['cr-in-value', 'HPE_LF_EXPECTED'],
    ['switching-protocols', 'HPE_INVALID_STATUS'],
    ['head-too-large', 'HPE_HEADER_OVERFLOW'],
  ];
  for (const [name, code] of MALFORMED) {
    test(`malformed head (${name}): ${code}, a protocol error, before any onHeaders`, async () => {
      const out = await send(pool, { path: `/${name}` });
      assertFails(out, code, 'FULCRUM_ERR_UPSTREAM_PROTOCOL');
      assert.equal(out.status, 0);
    });
  }

  test('a head just under the 64 KiB limit is accepted', async () => {
    const out = await send(pool, { path: '/head-near-limit' });
    assertOk(out, 200, 'ok');
    assert.equal(out.headers[1]!.length, 60 * 1024);
  });

  test('malformed chunked framing fails the response after its head', async () => {
    const size = await send(pool, { path: '/bad-chunk-size' });
    assertFails(size, 'HPE_INVALID_CHUNK_SIZE', 'FULCRUM_ERR_UPSTREAM_PROTOCOL');
    assert.equal(size.status, 200);
    const crlf = await send(pool, { path: '/chunk-without-crlf' });
    assertFails(crlf, 'HPE_STRICT', 'FULCRUM_ERR_UPSTREAM_PROTOCOL');
  });

  test('EOF mid-body is an error, not a truncated success', async () => {
    const sized = await send(pool, { path: '/premature-eof' });
    assertFails(sized, 'UND_ERR_SOCKET', 'FULCRUM_ERR_UPSTREAM_RESET');
    assert.equal(sized.body.toString(), 'only part of it');
    const chunked = await send(pool, { path: '/premature-eof-chunked' });
    assertFails(chunked, 'UND_ERR_SOCKET', 'FULCRUM_ERR_UPSTREAM_RESET');
    const head = await send(pool, { path: '/eof-in-head' });
    assertFails(head, 'UND_ERR_SOCKET', 'FULCRUM_ERR_UPSTREAM_RESET');
    assert.equal(head.status, 0);
  });

  test('a backend that never answers: headers timeout', async () => {
    const started = Date.now();
    const out = await send(pool, { path: '/hang' });
    assertFails(out, 'UND_ERR_HEADERS_TIMEOUT', 'FULCRUM_ERR_RESPONSE_TIMEOUT');
    assert.ok(Date.now() - started >= 250, 'not before the timeout');
  });

  test('a body that stalls: body timeout, after the head', async () => {
    const out = await send(pool, { path: '/stall' });
    assertFails(out, 'UND_ERR_BODY_TIMEOUT', 'FULCRUM_ERR_IDLE_TIMEOUT');
    assert.equal(out.status, 200);
    assert.equal(out.body.toString(), 'some of it');
  });

  test('a per-request headersTimeout overrides the pool\'s', async () => {
    const patient = new H1Pool(`http://127.0.0.1:${server.port}`, { ...timeouts, headersTimeout: 600_000 });
    const hung = new Promise<'hung'>((resolve) => setTimeout(resolve, 10_000, 'hung').unref());
    const out = await Promise.race([send(patient, { path: '/hang', headersTimeout: 50 }), hung]);
    assert.notEqual(out, 'hung', 'the request\'s own timeout applied');
    assertFails(out as Outcome, 'UND_ERR_HEADERS_TIMEOUT', 'FULCRUM_ERR_RESPONSE_TIMEOUT');
    await patient.destroy();
  });
});

describe('HTTP/1.1 upstream client: connections', { timeout: 60_000 }, () => {
  let server: RawServer;
  let connections = 0;
  const requestsPerConnection: number[] = [];

  before(async () => {
    server = await startRawServer((socket) => {
      const id = connections++;
      requestsPerConnection[id] = 0;
      onRequests(socket, (path, _head, index) => {
        requestsPerConnection[id]!++;
        if (path === '/stale' && index > 0) {
          // The backend closed this kept-alive connection just as the request arrived.
          socket.destroy();
          return;
        }
        const canned = CORPUS[path.slice(1)] ?? CORPUS['content-length']!;
        write(socket, canned);
        if (path === '/then-close') setTimeout(() => socket.end(), 20);
      });
    });
  });
  after(() => server.close());

  test('keep-alive: one TCP connection carries N sequential requests', async () => {
    const pool = new H1Pool(`http://127.0.0.1:${server.port}`, OPTIONS);
    const before = connections;
    for (let i = 0; i < 20; i++) assertOk(await send(pool, { path: '/content-length' }), 200, 'hello');
    assert.equal(connections - before, 1);
    assert.equal(requestsPerConnection[before], 20);
    assert.equal(pool.connections, 1);
    assert.equal(pool.idleConnections, 1);
    await pool.close();
    assert.equal(pool.connections, 0);
  });

  test('concurrent requests each get a connection, then share them', async () => {
    const pool = new H1Pool(`http://127.0.0.1:${server.port}`, OPTIONS);
    const before = connections;
    const first = await Promise.all(Array.from({ length: 5 }, () => send(pool, { path: '/content-length' })));
    for (const out of first) assertOk(out, 200, 'hello');
    const second = await Promise.all(Array.from({ length: 5 }, () => send(pool, { path: '/content-length' })));
    for (const out of second) assertOk(out, 200, 'hello');
    assert.equal(connections - before, 5);
    await pool.close();
  });

  test('Connection: close and a too-short Keep-Alive timeout: no reuse', async () => {
    const pool = new H1Pool(`http://127.0.0.1:${server.port}`, OPTIONS);
    const before = connections;
    for (let i = 0; i < 3; i++) assertOk(await send(pool, { path: '/connection-close' }), 200, 'ok');
    assert.equal(connections - before, 3);
    // "Keep-Alive: timeout=1" leaves no margin (the client keeps 2 s in hand): close at once.
    for (let i = 0; i < 2; i++) assertOk(await send(pool, { path: '/keep-alive-1s' }), 200, 'ok');
    assert.equal(connections - before, 5);
    await waitFor(() => pool.connections === 0);
    await pool.close();
  });

  test('a backend that closes an idle kept-alive connection: the next request still succeeds', async () => {
    const pool = new H1Pool(`http://127.0.0.1:${server.port}`, OPTIONS);
    assertOk(await send(pool, { path: '/then-close' }), 200, 'hello');
    await waitFor(() => pool.connections === 0);
    assertOk(await send(pool, { path: '/content-length' }), 200, 'hello');
    await pool.close();
  });

  test('the stale-connection race: an idempotent request is sent again on a new connection', async () => {
    const pool = new H1Pool(`http://127.0.0.1:${server.port}`, OPTIONS);
    const before = connections;
    assertOk(await send(pool, { path: '/stale' }), 200, 'hello');
    const out = await send(pool, { path: '/stale' });
    assertOk(out, 200, 'hello');
    assert.equal(connections - before, 2, 'the retry used a new connection');
    await pool.close();
  });

  test('the stale-connection race: a streamed POST is not sent twice', async () => {
    const pool = new H1Pool(`http://127.0.0.1:${server.port}`, OPTIONS);
    assertOk(await send(pool, { path: '/stale' }), 200, 'hello');
    const out = await send(pool, { path: '/stale', method: 'POST', headers: ['host', 'x', 'content-length', '2'], body: Readable.from([Buffer.from('hi')]) });
    assertFails(out, 'UND_ERR_SOCKET', 'FULCRUM_ERR_UPSTREAM_RESET');
    await pool.close();
  });

  test('connect refused', async () => {
    const pool = new H1Pool(`http://127.0.0.1:${await freePort()}`, OPTIONS);
    const out = await send(pool, { path: '/' });
    assertFails(out, 'ECONNREFUSED', 'FULCRUM_ERR_CONNECT_REFUSED');
    await pool.close();
  });

  test('abort: onError once with the reason, the connection is closed', async () => {
    const pool = new H1Pool(`http://127.0.0.1:${server.port}`, OPTIONS);
    let abort: (err?: Error) => void = () => undefined;
    const reason = new Error('client went away');
    const out = await send(pool, { path: '/hang' }, { onConnect: (a) => { abort = a; setTimeout(() => abort(reason), 50); } });
    assertContract(out);
    assert.equal(out.error, reason);
    abort(new Error('twice')); // a second abort is a no-op
    await waitFor(() => pool.connections === 0);
    await pool.close();
  });

  test('close() lets the request in flight finish; later dispatches fail with UND_ERR_CLOSED', async () => {
    const slow = await startRawServer((socket) => onRequests(socket, () => setTimeout(() => write(socket, CORPUS['content-length']!), 150)));
    const pool = new H1Pool(`http://127.0.0.1:${slow.port}`, OPTIONS);
    try {
      const inFlight = send(pool, { path: '/' });
      await waitFor(() => slow.received.length > 0);
      const closed = pool.close();
      assertOk(await inFlight, 200, 'hello');
      await closed;
      assert.equal(pool.connections, 0);
      assertFails(await send(pool, { path: '/' }), 'UND_ERR_CLOSED', 'FULCRUM_ERR_UPSTREAM_RESET');
    } finally {
      await slow.close();
    }
  });
});

/** onWholeRequests calls fn with each whole request (head and body, framed by Content-Length or chunked) read on a connection. */
function onWholeRequests(socket: net.Socket, fn: (raw: string) => void): void {
  let pending = '';
  socket.on('data', (d: Buffer) => {
    pending += d.toString('latin1');
    for (;;) {
      const headEnd = pending.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const head = pending.slice(0, headEnd);
      let total = headEnd + 4;
      const length = /\r\ncontent-length: (\d+)/i.exec(head);
      if (length !== null) total += Number(length[1]);
      else if (/\r\ntransfer-encoding: chunked/i.test(head)) {
        const last = pending.indexOf('0\r\n\r\n', total);
        if (last < 0) return;
        total = last + 5;
      }
      if (pending.length < total) return;
      fn(pending.slice(0, total));
      pending = pending.slice(total);
    }
  });
}

describe('HTTP/1.1 upstream client: requests as the backend sees them', { timeout: 60_000 }, () => {
  let server: RawServer;
  let pool: H1Pool;
  const requests: string[] = [];
  before(async () => {
    server = await startRawServer((socket) => onWholeRequests(socket, (raw) => {
      requests.push(raw);
      write(socket, CORPUS['content-length']!);
    }));
    pool = new H1Pool(`http://127.0.0.1:${server.port}`, OPTIONS);
  });
  after(async () => {
    await pool.destroy();
    await server.close();
  });

  async function requestBytes(request: Partial<UpstreamRequest> & { path: string }): Promise<string> {
    const before = requests.length;
    assertOk(await send(pool, request), 200, 'hello');
    assert.equal(requests.length, before + 1);
    return requests[before]!;
  }

  test('GET: one head, headers in order, keep-alive', async () => {
    const bytes = await requestBytes({ path: '/a?b=c', headers: ['host', 'example.test', 'x-forwarded-for', '10.0.0.1', 'x-latin', 'caf\xe9'] });
    assert.equal(bytes, 'GET /a?b=c HTTP/1.1\r\nhost: example.test\r\nx-forwarded-for: 10.0.0.1\r\nx-latin: caf\xe9\r\nconnection: keep-alive\r\n\r\n');
  });

  test('POST without a body gets content-length: 0; a buffered body its length', async () => {
    assert.equal(await requestBytes({ path: '/', method: 'POST' }), 'POST / HTTP/1.1\r\nhost: backend.test\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n');
    const bytes = await requestBytes({ path: '/', method: 'PUT', headers: ['host', 'h', 'Content-Length', '4'], body: Buffer.from('done') });
    assert.equal(bytes, 'PUT / HTTP/1.1\r\nhost: h\r\nconnection: keep-alive\r\ncontent-length: 4\r\n\r\ndone');
  });

  test('a stream without Content-Length is sent chunked', async () => {
    const body = Readable.from([Buffer.from('hello '), Buffer.from('world')]);
    const bytes = await requestBytes({ path: '/', method: 'POST', body });
    assert.equal(bytes, 'POST / HTTP/1.1\r\nhost: backend.test\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n');
  });

  test('a body whose length differs from its Content-Length fails the request', async () => {
    const short = await send(pool, { path: '/', method: 'POST', headers: ['host', 'h', 'content-length', '20'], body: Readable.from([Buffer.from('ten bytes!')]) });
    assertFails(short, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'FULCRUM_ERR_CLIENT_BODY');
    const buffered = await send(pool, { path: '/', method: 'POST', headers: ['host', 'h', 'content-length', '3'], body: Buffer.from('four') });
    assertFails(buffered, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'FULCRUM_ERR_CLIENT_BODY');
  });

  test('an invalid request target is refused before anything is sent', async () => {
    const before = server.received.length;
    const out = await send(pool, { path: '/a b\r\nx: y' });
    assertFails(out, 'UND_ERR_INVALID_ARG', 'FULCRUM_ERR_UPSTREAM_RESET');
    assert.equal(server.received.length, before);
  });
});

describe('HTTP/1.1 upstream client: large bodies with back-pressure', { timeout: 60_000 }, () => {
  const SIZE = 50 * 1024 * 1024;
  let backend: DemoBackend;
  let pool: H1Pool;
  before(async () => {
    [backend] = await startBackends(1) as [DemoBackend];
    pool = new H1Pool(`http://127.0.0.1:${backend.port}`, { ...OPTIONS, bodyTimeout: 300 });
  });
  after(async () => {
    await pool.destroy();
    await backend.close();
  });

  test('a 50 MB response, paused and resumed by the handler, arrives whole', async () => {
    const out = await send(pool, { path: `/bytes?n=${SIZE}` }, { pauseEvery: 20 });
    assertContract(out);
    assert.equal(out.error, null);
    assert.equal(out.body.length, SIZE);
    assert.equal(out.body.indexOf(0), -1);
    assert.ok(out.pauses > 10, `the handler paused the body (${out.pauses} times)`);
  });

  test('a pause longer than the body timeout is not a backend stall', async () => {
    const out = await send(pool, { path: `/bytes?n=${256 * 1024}` }, { pauseEvery: 2, pauseMs: 400 });
    assertContract(out);
    assert.equal(out.error, null, out.error?.message);
    assert.equal(out.body.length, 256 * 1024);
    assert.ok(out.pauses > 0);
  });

  /** pattern is a 50 MB request body produced on demand, counting how often the client paused it. */
  function pattern(): { body: Readable; sha256: string; pauses: () => number } {
    const block = Buffer.alloc(64 * 1024);
    for (let i = 0; i < block.length; i++) block[i] = (i * 31) & 0xff;
    const hash = createHash('sha256');
    for (let sent = 0; sent < SIZE; sent += block.length) hash.update(block);
    let sent = 0;
    let pauses = 0;
    const body = new Readable({
      read() {
        if (sent >= SIZE) { this.push(null); return; }
        sent += block.length;
        this.push(block);
      },
    });
    body.on('pause', () => pauses++);
    return { body, sha256: hash.digest('hex'), pauses: () => pauses };
  }

  for (const framing of ['chunked', 'content-length'] as const) {
    test(`a 50 MB streamed request body (${framing}) reaches the backend whole, with back-pressure`, async () => {
      const { body, sha256, pauses } = pattern();
      const headers = ['host', 'backend.test', ...(framing === 'content-length' ? ['content-length', String(SIZE)] : [])];
      const out = await send(pool, { path: '/upload', method: 'POST', headers, body });
      assertOk(out, 200, out.body.toString());
      const answer = JSON.parse(out.body.toString()) as { size: number; sha256: string };
      assert.equal(answer.size, SIZE);
      assert.equal(answer.sha256, sha256);
      assert.ok(pauses() > 0, 'the body was paused while the socket was full');
    });
  }
});

describe('HTTP/1.1 upstream client: body chunks outlive the read', { timeout: 60_000 }, () => {
  // The client reads every backend connection into one shared buffer (net's onread): each chunk it
  // hands on must be its own, since the handler may keep it (send() keeps them all until the end).
  const SIZE = 256 * 1024;
  /** pattern: SIZE bytes that differ from one seed to the next at every position. */
  const pattern = (seed: number): Buffer => {
    const b = Buffer.allocUnsafe(SIZE);
    for (let i = 0; i < SIZE; i++) b[i] = (i * 31 + seed * 97 + (i >> 8)) & 0xff;
    return b;
  };
  let server: RawServer;
  let pool: H1Pool;
  before(async () => {
    server = await startRawServer((socket) => {
      onRequests(socket, (path) => {
        const body = pattern(Number(path.slice(1)));
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${SIZE}\r\n\r\n`, 'latin1');
        // Pieces of uneven sizes across turns of the event loop, so that reads of different connections interleave.
        let at = 0;
        const next = (): void => {
          if (socket.destroyed || at >= SIZE) return;
          const n = Math.min(SIZE - at, 1000 + ((at * 7) % 9000));
          socket.write(body.subarray(at, at + n));
          at += n;
          setImmediate(next);
        };
        next();
      });
    });
    pool = new H1Pool(`http://127.0.0.1:${server.port}`, OPTIONS);
  });
  after(async () => {
    await pool.destroy();
    await server.close();
  });

  test('8 concurrent responses with different bodies, chunks kept uncopied by the handler, some paused at the head or in the body: every body byte for byte', async () => {
    const outs = await Promise.all(Array.from({ length: 8 }, (_, seed) => send(pool, { path: `/${seed}` }, seed % 3 === 0 ? { pauseEvery: 7 } : seed % 3 === 1 ? { pauseHead: true, pauseMs: 5 } : {})));
    outs.forEach((out, seed) => {
      assertContract(out);
      assert.equal(out.error, null);
      assert.equal(out.body.length, SIZE);
      assert.ok(out.body.equals(pattern(seed)), `body ${seed} differs from what the backend sent`);
    });
    assert.ok(outs.some((out) => out.pauses > 0), 'some handlers paused their bodies');
  });
});
