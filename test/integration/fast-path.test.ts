/**
 * The fast path (src/listen/fast-path.ts) seen from the wire: raw sockets to
 * the balancer, exact bytes checked. Plain bodiless requests are served by
 * the fast path; at the first request that is not, the connection is handed
 * to node:http with its unread bytes put back. Either way the client must
 * see what node:http would have sent.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { startRawServer, urlOf } from '../helpers/backends.js';
import { makeCerts, opensslAvailable, type TestCerts } from '../helpers/certs.js';
import { startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import type { FulcrumConfigInput } from '../../src/index.js';

// ---------------------------------------------------------------------------
// A raw HTTP/1.1 client: writes bytes, parses responses exactly as framed.

interface RawResponse {
  status: number;
  reason: string;
  /** headers in wire order, names as sent. */
  headers: [string, string][];
  body: Buffer;
  trailers: [string, string][];
  /** chunks: the chunk sizes of a chunked body (the final 0 excluded). */
  chunks: number[];
}

const header = (res: RawResponse, name: string): string | undefined => res.headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
const headerCount = (res: RawResponse, name: string): number => res.headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).length;
const bodyText = (res: RawResponse): string => res.body.toString('utf8');

/** need: parseResponse found that the response needs at least this many bytes in all (0: unknown). */
let need = 0;

/** parseResponse parses one response at the start of buf, or returns null when more bytes are needed. */
function parseResponse(buf: Buffer, isHead: boolean, eof: boolean): { res: RawResponse; length: number } | null {
  need = 0;
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const lines = buf.toString('latin1', 0, headEnd).split('\r\n');
  const m = /^HTTP\/1\.1 (\d{3}) (.*)$/.exec(lines[0]!);
  if (m === null) throw new Error(`bad status line ${JSON.stringify(lines[0])}`);
  const status = Number(m[1]);
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`bad header line ${JSON.stringify(line)}`);
    headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  const res: RawResponse = { status, reason: m[2]!, headers, body: Buffer.alloc(0), trailers: [], chunks: [] };
  let at = headEnd + 4;
  if (isHead || status < 200 || status === 204 || status === 304) return { res, length: at };
  const te = header(res, 'transfer-encoding');
  const cl = header(res, 'content-length');
  if (te !== undefined) {
    assert.equal(te.toLowerCase(), 'chunked', 'only chunked framing is expected');
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', at);
      if (lineEnd < 0) return null;
      const size = parseInt(buf.toString('latin1', at, lineEnd).split(';')[0]!, 16);
      if (Number.isNaN(size)) throw new Error(`bad chunk size line ${JSON.stringify(buf.toString('latin1', at, lineEnd))}`);
      at = lineEnd + 2;
      if (size === 0) break;
      if (buf.length < at + size + 2) { need = at + size + 2; return null; }
      parts.push(buf.subarray(at, at + size));
      res.chunks.push(size);
      if (buf.toString('latin1', at + size, at + size + 2) !== '\r\n') throw new Error('chunk not followed by CRLF');
      at += size + 2;
    }
    // Trailer section: fields, then an empty line.
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', at);
      if (lineEnd < 0) return null;
      const line = buf.toString('latin1', at, lineEnd);
      at = lineEnd + 2;
      if (line === '') break;
      const colon = line.indexOf(':');
      res.trailers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
    }
    res.body = Buffer.concat(parts);
    return { res, length: at };
  }
  if (cl !== undefined) {
    const n = Number(cl);
    if (buf.length < at + n) { need = at + n; return null; }
    res.body = Buffer.from(buf.subarray(at, at + n));
    return { res, length: at + n };
  }
  // Neither: the body runs until the connection closes.
  if (!eof) return null;
  res.body = Buffer.from(buf.subarray(at));
  return { res, length: buf.length };
}

class RawClient {
  /** #parts: bytes received and not yet parsed (joined only when a response may be whole: no quadratic copying). */
  #parts: Buffer[] = [];
  #size = 0;
  #need = 0;
  /** ended: the balancer ended or closed the connection. */
  ended = false;
  closed = false;
  #waiters: (() => void)[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.#parts.push(d);
      this.#size += d.length;
      if (this.#size >= this.#need) this.#notify();
    });
    socket.on('end', () => { this.ended = true; this.#notify(); });
    socket.on('close', () => { this.ended = true; this.closed = true; this.#notify(); });
    socket.on('error', () => undefined);
  }

  /** connectTls: the same over TLS (the fast path serves HTTP/1.1 TLS listeners too). */
  static connectTls(port: number, ca: Buffer): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ port, host: '127.0.0.1', servername: 'a.test', ca, ALPNProtocols: ['http/1.1'] });
      socket.once('secureConnect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  get #buf(): Buffer {
    if (this.#parts.length > 1) this.#parts = [Buffer.concat(this.#parts)];
    return this.#parts[0] ?? Buffer.alloc(0);
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== wake);
        reject(new Error(`timed out; have ${JSON.stringify(this.#buf.toString('latin1').slice(0, 300))}`));
      }, Math.max(1, ms));
      const wake = (): void => { clearTimeout(timer); resolve(); };
      this.#waiters.push(wake);
    });
  }

  write(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** read returns the next whole response (isHead: it answers a HEAD request). */
  async read(isHead = false, timeoutMs = 5000): Promise<RawResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.#size >= this.#need || this.ended) {
        const buf = this.#buf;
        const parsed = parseResponse(buf, isHead, this.ended);
        if (parsed !== null) {
          const rest = buf.subarray(parsed.length);
          this.#parts = rest.length > 0 ? [rest] : [];
          this.#size = rest.length;
          this.#need = 0;
          return parsed.res;
        }
        this.#need = need;
      }
      if (this.ended) throw new Error(`connection closed before a whole response; have ${JSON.stringify(this.#buf.toString('latin1').slice(0, 300))}`);
      await this.#wait(deadline - Date.now());
    }
  }

  /** request writes a request and reads its response. */
  async request(text: string, isHead = false): Promise<RawResponse> {
    this.write(text);
    return this.read(isHead);
  }

  /** waitEnd waits for the balancer to end the connection; false when it has not within timeoutMs. */
  async waitEnd(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() >= deadline) return false;
      try { await this.#wait(deadline - Date.now()); } catch { return this.ended; }
    }
    return true;
  }

  /** leftover: bytes received and not part of a parsed response. */
  get leftover(): string {
    return this.#buf.toString('latin1');
  }

  destroy(): void {
    this.socket.destroy();
  }
}

const GET = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
const HEAD = (path: string, extra = ''): string => `HEAD ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;

// ---------------------------------------------------------------------------
// The backend: a node:http server with the shapes of response the cases need.

const BIG_PIECE = Buffer.alloc(64 * 1024);
for (let i = 0; i < BIG_PIECE.length; i++) BIG_PIECE[i] = (i * 7 + 3) % 251;

interface TestBackend {
  readonly port: number;
  readonly url: string;
  /** seen: the requests received, in order. */
  readonly seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[];
  /** bigWritten: bytes of /big the backend's socket has accepted so far. */
  bigWritten: number;
  bigDone: boolean;
  close(): Promise<void>;
}

async function startTestBackend(): Promise<TestBackend> {
  const state = { seen: [] as TestBackend['seen'], bigWritten: 0, bigDone: false };
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      state.seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      const url = new URL(req.url!, 'http://backend');
      const text = (status: number, s: string): void => {
        res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(s) });
        res.end(s);
      };
      switch (url.pathname) {
        case '/echo': {
          const s = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body });
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
          res.end(s);
          return;
        }
        case '/chunked':
          // No Content-Length: node:http frames it chunked, a chunk per write.
          res.writeHead(200, { 'content-type': 'text/plain', 'x-shape': 'chunked' });
          res.write('part1-');
          setTimeout(() => {
            res.write('part2-');
            setTimeout(() => res.end('part3'), 20);
          }, 20);
          return;
        case '/trailer':
          res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
          res.write('abc');
          setTimeout(() => {
            res.addTrailers({ 'x-checksum': 'sha-123' });
            res.end('def');
          }, 10);
          return;
        case '/204':
          res.writeHead(204, { 'x-shape': 'no-content' });
          res.end();
          return;
        case '/304':
          res.writeHead(304, { etag: '"v1"' });
          res.end();
          return;
        case '/slow': {
          const timer = setTimeout(() => text(200, 'slow done'), Number(url.searchParams.get('ms') ?? '500'));
          res.on('close', () => clearTimeout(timer));
          return;
        }
        case '/big': {
          const size = Number(url.searchParams.get('n'));
          state.bigWritten = 0;
          state.bigDone = false;
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
          const pump = (): void => {
            while (state.bigWritten < size) {
              const piece = BIG_PIECE.subarray(0, Math.min(BIG_PIECE.length, size - state.bigWritten));
              state.bigWritten += piece.length;
              if (!res.write(piece)) { res.once('drain', pump); return; }
            }
            state.bigDone = true;
            res.end();
          };
          pump();
          return;
        }
        default:
          text(200, `hello ${url.pathname}`);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const backend: TestBackend = {
    port,
    url: `http://127.0.0.1:${port}`,
    seen: state.seen,
    get bigWritten() { return state.bigWritten; },
    get bigDone() { return state.bigDone; },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  } as TestBackend;
  return backend;
}

const bigDigest = (size: number): string => {
  const h = createHash('sha256');
  for (let left = size; left > 0; left -= BIG_PIECE.length) h.update(BIG_PIECE.subarray(0, Math.min(BIG_PIECE.length, left)));
  return h.digest('hex');
};

const base = { healthCheck: { enabled: false } } as const;

/**
 * withBalancer runs a test against a fresh test backend and a balancer with
 * the base config plus `extra`; the clients from its connect() are closed,
 * then the balancer and the backend, whatever the test's outcome.
 */
async function withBalancer(
  extra: Partial<FulcrumConfigInput>,
  run: (t: { lb: TestBalancer; backend: TestBackend; connect: () => Promise<RawClient> }) => Promise<void>,
): Promise<void> {
  const backend = await startTestBackend();
  const lb = await startBalancer({ ...base, backends: [backend.url], ...extra });
  const clients: RawClient[] = [];
  const connect = async (): Promise<RawClient> => {
    const c = await RawClient.connect(lb.port);
    clients.push(c);
    return c;
  };
  try {
    await run({ lb, backend, connect });
  } finally {
    for (const c of clients) c.destroy();
    await lb.close();
    await backend.close();
  }
}

// ---------------------------------------------------------------------------

describe('fast path', () => {
  let backend: TestBackend;
  let lb: TestBalancer;
  const clients: RawClient[] = [];
  const connect = async (port = lb.port): Promise<RawClient> => {
    const c = await RawClient.connect(port);
    clients.push(c);
    return c;
  };

  before(async () => {
    backend = await startTestBackend();
    lb = await startBalancer({ ...base, backends: [backend.url] });
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await lb.close();
    await backend.close();
  });

  test('1. keep-alive: three requests on one socket, node:http\'s connection headers, forwarded headers added', async () => {
    const c = await connect();
    for (let i = 0; i < 3; i++) {
      const res = await c.request(GET(`/echo?i=${i}`));
      assert.equal(res.status, 200);
      assert.equal(res.reason, 'OK');
      const echo = JSON.parse(bodyText(res));
      assert.equal(echo.url, `/echo?i=${i}`);
      assert.equal(echo.method, 'GET');
      assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(echo.headers['x-forwarded-proto'], 'http');
      assert.equal(echo.headers.forwarded, 'for=127.0.0.1;proto=http;host="x"');
      assert.equal(header(res, 'connection'), 'keep-alive');
      assert.equal(header(res, 'keep-alive'), 'timeout=4', 'a second less than keepAliveTimeout');
      assert.equal(header(res, 'content-length'), String(res.body.length));
      assert.equal(header(res, 'transfer-encoding'), undefined);
      assert.ok(headerCount(res, 'date') <= 1, 'at most the backend\'s own Date');
      assert.equal(headerCount(res, 'connection'), 1);
    }
    // The backend saw the same headers.
    const last = backend.seen.at(-1)!;
    assert.equal(last.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(last.headers['x-forwarded-proto'], 'http');
    assert.equal(last.headers.forwarded, 'for=127.0.0.1;proto=http;host="x"');
    assert.equal(c.ended, false, 'the connection stays open');
    assert.equal(c.leftover, '');
  });

  test('2. pipelining: five requests in one write come back in order, HEAD without a body; a sixth follows', async () => {
    const c = await connect();
    const methods = ['GET', 'HEAD', 'GET', 'HEAD', 'GET'];
    c.write(methods.map((m, i) => (m === 'GET' ? GET(`/echo?p=${i}`) : HEAD(`/echo?p=${i}`))).join(''));
    for (let i = 0; i < methods.length; i++) {
      const isHead = methods[i] === 'HEAD';
      const res = await c.read(isHead);
      assert.equal(res.status, 200, `response ${i}`);
      assert.equal(header(res, 'connection'), 'keep-alive');
      if (isHead) {
        assert.ok(Number(header(res, 'content-length')) > 0, 'HEAD keeps the Content-Length');
        assert.equal(header(res, 'transfer-encoding'), undefined);
      } else {
        assert.equal(JSON.parse(bodyText(res)).url, `/echo?p=${i}`);
      }
    }
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(c.leftover, '', 'no stray bytes (a HEAD body would show here)');
    const sixth = await c.request(GET('/echo?p=5'));
    assert.equal(JSON.parse(bodyText(sixth)).url, '/echo?p=5');
  });

  test('3. hand-off mid-connection: GET, POST with a body, GET; and an internal route after a proxied GET', async () => {
    const c = await connect();
    const r1 = await c.request(GET('/echo?step=1'));
    assert.equal(JSON.parse(bodyText(r1)).url, '/echo?step=1');
    const r2 = await c.request('POST /echo?step=2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world');
    assert.equal(r2.status, 200);
    const e2 = JSON.parse(bodyText(r2));
    assert.equal(e2.method, 'POST');
    assert.equal(e2.url, '/echo?step=2');
    assert.equal(e2.body, 'hello world');
    assert.equal(header(r2, 'connection'), 'keep-alive');
    const r3 = await c.request(GET('/echo?step=3'));
    assert.equal(JSON.parse(bodyText(r3)).url, '/echo?step=3');
    assert.equal(header(r3, 'connection'), 'keep-alive');

    // The same, pipelined in one write: the POST and what follows it are put back for node:http.
    const p = await connect();
    p.write(GET('/echo?q=1') + 'POST /echo?q=2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n' + GET('/echo?q=3'));
    const q1 = JSON.parse(bodyText(await p.read()));
    const q2 = JSON.parse(bodyText(await p.read()));
    const q3 = JSON.parse(bodyText(await p.read()));
    assert.deepEqual([q1.url, q2.url, q3.url], ['/echo?q=1', '/echo?q=2', '/echo?q=3']);
    assert.deepEqual([q1.method, q2.method, q3.method], ['GET', 'POST', 'GET']);
    assert.equal(q2.body, 'hello world');

    // An internal route (the admin API is on the main listener by default) after a proxied GET.
    const s = await connect();
    const before = backend.seen.length;
    assert.equal((await s.request(GET('/echo?before-status'))).status, 200);
    const status = await s.request(GET('/status'));
    assert.equal(status.status, 200);
    assert.match(header(status, 'content-type') ?? '', /^application\/json/);
    const json = JSON.parse(bodyText(status));
    assert.equal(json.algorithm, 'round-robin');
    assert.equal(json.backends.length, 1);
    assert.equal(json.backends[0].url, `${backend.url}/`);
    assert.equal(backend.seen.length, before + 1, '/status did not reach the backend');
    const after = await s.request(GET('/echo?after-status'));
    assert.equal(JSON.parse(bodyText(after)).url, '/echo?after-status');
  });

  test('4. a head split across two TCP writes is still served', async () => {
    const c = await connect();
    const full = GET('/echo?split=1', 'X-Test: split\r\n');
    c.write(full.slice(0, 17));
    await new Promise((r) => setTimeout(r, 50));
    c.write(full.slice(17));
    const res = await c.read();
    assert.equal(res.status, 200);
    const echo = JSON.parse(bodyText(res));
    assert.equal(echo.url, '/echo?split=1');
    assert.equal(echo.headers['x-test'], 'split');
    assert.equal(header(res, 'connection'), 'keep-alive');
    const again = await c.request(GET('/echo?split=2'));
    assert.equal(JSON.parse(bodyText(again)).url, '/echo?split=2');
  });

  test('5. malformed input after a good request on the same socket gets node:http\'s 400', async () => {
    const c = await connect();
    const before = backend.seen.length;
    assert.equal((await c.request(GET('/echo?good'))).status, 200);
    const res = await c.request('GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n');
    assert.equal(res.status, 400);
    assert.equal(header(res, 'connection'), 'close');
    assert.equal(bodyText(res), '400 Bad Request: invalid character in header\n');
    assert.ok(await c.waitEnd(2000), 'the balancer closes the connection');
    assert.equal(backend.seen.length, before + 1, 'the malformed request did not reach the backend');
  });

  test('6. Connection: close from the client: the response says so and the balancer closes the socket', async () => {
    const c = await connect();
    const res = await c.request(GET('/echo?close', 'Connection: close\r\n'));
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(bodyText(res)).url, '/echo?close');
    assert.equal(header(res, 'connection'), 'close');
    assert.equal(header(res, 'keep-alive'), undefined);
    assert.ok(await c.waitEnd(2000), 'the balancer closes the connection');
    assert.equal(c.leftover, '');
  });

  test('8. framing: chunked upstream stays chunked; 204 and 304 without body or Transfer-Encoding; HEAD keeps Content-Length', async () => {
    const c = await connect();
    const chunked = await c.request(GET('/chunked'));
    assert.equal(chunked.status, 200);
    assert.equal(header(chunked, 'transfer-encoding'), 'chunked');
    assert.equal(header(chunked, 'content-length'), undefined);
    assert.equal(header(chunked, 'x-shape'), 'chunked');
    assert.equal(header(chunked, 'connection'), 'keep-alive');
    assert.equal(bodyText(chunked), 'part1-part2-part3');
    assert.ok(chunked.chunks.length >= 2, `streamed as it came (chunks ${JSON.stringify(chunked.chunks)})`);

    for (const [path, status] of [['/204', 204], ['/304', 304]] as const) {
      const res = await c.request(GET(path));
      assert.equal(res.status, status);
      assert.equal(header(res, 'transfer-encoding'), undefined, `${status} without Transfer-Encoding`);
      assert.equal(header(res, 'content-length'), undefined);
      assert.equal(header(res, 'connection'), 'keep-alive');
    }
    const head = await c.request(HEAD('/plain'), true);
    assert.equal(head.status, 200);
    assert.equal(header(head, 'content-length'), String('hello /plain'.length));
    assert.equal(header(head, 'transfer-encoding'), undefined);
    // HEAD of a chunked resource: no Transfer-Encoding invented, no body.
    const headChunked = await c.request(HEAD('/chunked'), true);
    assert.equal(headChunked.status, 200);
    assert.equal(header(headChunked, 'transfer-encoding'), undefined);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(c.leftover, '', 'no body bytes after 204, 304 or HEAD');
    const after = await c.request(GET('/echo?after-framing'));
    assert.equal(JSON.parse(bodyText(after)).url, '/echo?after-framing');
  });

  test('9. upstream trailers reach the client', async () => {
    const c = await connect();
    const res = await c.request(GET('/trailer'));
    assert.equal(res.status, 200);
    assert.equal(header(res, 'transfer-encoding'), 'chunked');
    assert.equal(bodyText(res), 'abcdef');
    assert.deepEqual(res.trailers, [['x-checksum', 'sha-123']]);
    const after = await c.request(GET('/echo?after-trailer'));
    assert.equal(JSON.parse(bodyText(after)).url, '/echo?after-trailer');
  });

  test('10. a large response to a slow reader arrives intact (backpressure)', async () => {
    const size = 32 * 1024 * 1024;
    const c = await connect();
    c.socket.pause();
    c.write(GET(`/big?n=${size}`));
    await new Promise((r) => setTimeout(r, 300));
    const writtenWhilePaused = backend.bigWritten;
    assert.ok(backend.bigWritten > 0, 'the backend started');
    assert.equal(backend.bigDone, false, `the balancer stops reading the backend while the client does not read (${writtenWhilePaused} of ${size} written)`);
    c.socket.resume();
    const res = await c.read(false, 10_000);
    assert.equal(res.status, 200);
    assert.equal(header(res, 'content-length'), String(size));
    assert.equal(res.body.length, size);
    assert.equal(createHash('sha256').update(res.body).digest('hex'), bigDigest(size));
    const after = await c.request(GET('/echo?after-big'));
    assert.equal(JSON.parse(bodyText(after)).url, '/echo?after-big');
  });
});

describe('fast path: limits', () => {
  test('7. limits.maxRequestsPerSocket: 2 -> the second response says Connection: close and the socket is closed', () =>
    withBalancer({ limits: { maxRequestsPerSocket: 2 } }, async ({ connect }) => {
      const c = await connect();
      const r1 = await c.request(GET('/echo?n=1'));
      assert.equal(header(r1, 'connection'), 'keep-alive');
      assert.equal(header(r1, 'keep-alive'), 'timeout=4, max=2');
      const r2 = await c.request(GET('/echo?n=2'));
      assert.equal(r2.status, 200);
      assert.equal(JSON.parse(bodyText(r2)).url, '/echo?n=2');
      assert.equal(header(r2, 'connection'), 'close');
      assert.equal(header(r2, 'keep-alive'), undefined);
      assert.ok(await c.waitEnd(2000), 'the balancer closes the connection');
    }));

  // With the limit set, node:http serves every request (it counts them itself, and could not count those served before a hand-off).
  test('7b. limits.maxRequestsPerSocket counts a bodiless request and then one with a body on the same connection', () =>
    withBalancer({ limits: { maxRequestsPerSocket: 2 } }, async ({ connect }) => {
      const c = await connect();
      const r1 = await c.request(GET('/echo?n=1'));
      assert.equal(header(r1, 'connection'), 'keep-alive');
      // The second request on the connection has a body; it is still the second.
      const r2 = await c.request('POST /echo?n=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi');
      assert.equal(r2.status, 200);
      assert.equal(JSON.parse(bodyText(r2)).body, 'hi');
      assert.equal(header(r2, 'connection'), 'close', 'the second request on the socket is its last');
      assert.ok(await c.waitEnd(2000), 'the balancer closes the connection');
    }));

  test('11. a client that disconnects before the backend answers: upstream aborted, nothing left in flight', async () => {
    let upstreamClosed = false;
    const raw = await startRawServer((socket) => {
      socket.on('close', () => { upstreamClosed = true; });
    });
    const lb = await startBalancer({ ...base, backends: [urlOf(raw)] });
    try {
      const c = await RawClient.connect(lb.port);
      c.write(GET('/never'));
      await waitFor(() => lb.balancer.pool.snapshot[0]!.state.inflight === 1 && lb.balancer.activeRequests === 1);
      await waitFor(() => raw.received.length > 0);
      assert.match(Buffer.concat(raw.received).toString('latin1'), /^GET \/never HTTP\/1\.1\r\n/);
      c.destroy();
      await waitFor(() => upstreamClosed, 3000);
      await waitFor(() => lb.balancer.pool.snapshot[0]!.state.inflight === 0 && lb.balancer.activeRequests === 0, 3000);
    } finally {
      await lb.close();
      await raw.close();
    }
  });

  test('12. idle timeouts: keepAliveTimeout after a response, headersTimeout before any request', () =>
    withBalancer({ limits: { keepAliveTimeout: '1s', headersTimeout: '1s' } }, async ({ connect }) => {
      const idle = await connect();
      const silent = await connect();
      const res = await idle.request(GET('/echo?idle'));
      // A second less than the timeout, in whole seconds: a client told 0 does not reuse the connection.
      assert.equal(header(res, 'keep-alive'), 'timeout=0');
      const start = Date.now();
      const [idleClosed, silentClosed] = await Promise.all([idle.waitEnd(3500), silent.waitEnd(3500)]);
      const took = Date.now() - start;
      assert.ok(idleClosed, 'the idle kept-alive connection is closed');
      assert.ok(silentClosed, 'the connection that never sent anything is closed');
      assert.ok(took >= 800, `not before the timeout (${took} ms)`);
      assert.ok(took <= 1600, `at most a sweep late (${took} ms)`);
      assert.equal(idle.leftover, '', 'nothing sent on an idle close');
      // As node:http does, a connection that sent nothing within headersTimeout gets a 408 before it is closed.
      assert.match(silent.leftover, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    }));

  test('12b. keepAliveTimeout: 0 and headersTimeout: 0 disable those timeouts, as on the node:http path', () =>
    withBalancer({ limits: { keepAliveTimeout: 0, headersTimeout: 0 } }, async ({ connect }) => {
      const idle = await connect();
      const silent = await connect();
      const res = await idle.request(GET('/echo?no-timeout'));
      assert.equal(header(res, 'connection'), 'keep-alive');
      assert.equal(header(res, 'keep-alive'), undefined, 'node:http sends no Keep-Alive header without a keep-alive timeout');
      const [idleClosed, silentClosed] = await Promise.all([idle.waitEnd(1500), silent.waitEnd(1500)]);
      assert.equal(idleClosed, false, 'an idle kept-alive connection is not closed');
      assert.equal(silentClosed, false, 'a connection with no request yet is not closed');
    }));

  test('13. errors on the fast path: 503 without a healthy backend (connection kept), 502 for an invalid backend header', async () => {
    const backend = await startTestBackend();
    const down = await startBalancer({ ...base, backends: [{ url: backend.url, healthy: false }] });
    const bad = await startRawServer((socket) => {
      socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\nX-Bad: a\u0001b\r\nContent-Length: 2\r\n\r\nok'));
    });
    const badLb = await startBalancer({ ...base, backends: [urlOf(bad)], retries: { attempts: 0 }, outlierDetection: { enabled: false } });
    try {
      const c = await RawClient.connect(down.port);
      for (let i = 0; i < 2; i++) {
        const res = await c.request(GET(`/x${i}`));
        assert.equal(res.status, 503);
        assert.equal(res.reason, 'Service Unavailable');
        assert.equal(header(res, 'x-fulcrum-error'), 'FULCRUM_ERR_NO_BACKEND');
        assert.equal(header(res, 'content-type'), 'text/plain; charset=utf-8');
        assert.equal(headerCount(res, 'date'), 1);
        assert.ok(!Number.isNaN(Date.parse(header(res, 'date')!)), 'a valid Date');
        assert.equal(header(res, 'connection'), 'keep-alive');
        assert.match(bodyText(res), /^503 Service Unavailable: /);
        assert.equal(header(res, 'content-length'), String(res.body.length));
      }
      assert.equal(c.ended, false, 'the connection stays usable');
      c.destroy();

      const b = await RawClient.connect(badLb.port);
      const res = await b.request(GET('/bad-header'));
      assert.equal(res.status, 502);
      assert.equal(header(res, 'x-fulcrum-error'), 'FULCRUM_ERR_UPSTREAM_PROTOCOL');
      assert.equal(headerCount(res, 'date'), 1);
      assert.equal(header(res, 'content-type'), 'text/plain; charset=utf-8');
      assert.doesNotMatch(bodyText(res) + res.headers.join(), /a\u0001b/, 'the bad value is not forwarded');
      b.destroy();
    } finally {
      await down.close();
      await badLb.close();
      await bad.close();
      await backend.close();
    }
  });

  test('14. fastPath: false serves the same; the response header names and order are the same either way', async () => {
    const backend = await startTestBackend();
    const fast = await startBalancer({ ...base, backends: [backend.url] });
    const slow = await startBalancer({ ...base, backends: [backend.url], listen: { host: '127.0.0.1', port: 0, fastPath: false } });
    const downFast = await startBalancer({ ...base, backends: [{ url: backend.url, healthy: false }] });
    const downSlow = await startBalancer({ ...base, backends: [{ url: backend.url, healthy: false }], listen: { host: '127.0.0.1', port: 0, fastPath: false } });
    try {
      const cases: [string, boolean][] = [[GET('/echo?cmp'), false], [GET('/chunked'), false], [GET('/204'), false], [GET('/304'), false], [HEAD('/plain'), true], [GET('/trailer'), false]];
      const names = (r: RawResponse): string[] => r.headers.map(([n]) => n.toLowerCase()).filter((n) => n !== 'date');
      const conn = (r: RawResponse): string => `${header(r, 'connection')}|${header(r, 'keep-alive')}|${header(r, 'transfer-encoding')}|${header(r, 'content-length')}`;
      const onFast = await RawClient.connect(fast.port);
      const onSlow = await RawClient.connect(slow.port);
      for (const [req, isHead] of cases) {
        const a = await onFast.request(req, isHead);
        const b = await onSlow.request(req, isHead);
        assert.equal(a.status, b.status, req);
        assert.deepEqual(names(a), names(b), `header names of ${JSON.stringify(req)}`);
        assert.equal(conn(a), conn(b), `connection headers of ${JSON.stringify(req)}`);
        assert.equal(headerCount(a, 'date'), headerCount(b, 'date'));
        assert.deepEqual(a.trailers, b.trailers);
        if (!req.includes('/echo')) assert.equal(bodyText(a), bodyText(b));
      }
      assert.equal(header(await onSlow.request(GET('/echo?slow')), 'connection'), 'keep-alive', 'node:http keeps the connection too');
      // The balancer's own error answer, and the last response of a connection.
      const e1 = await RawClient.connect(downFast.port);
      const e2 = await RawClient.connect(downSlow.port);
      const a = await e1.request(GET('/x', 'Connection: close\r\n'));
      const b = await e2.request(GET('/x', 'Connection: close\r\n'));
      assert.equal(a.status, 503);
      assert.deepEqual(names(a), names(b));
      assert.equal(conn(a), conn(b));
      assert.equal(headerCount(a, 'date'), 1);
      assert.equal(headerCount(b, 'date'), 1);
      for (const c of [onFast, onSlow, e1, e2]) c.destroy();
    } finally {
      await Promise.all([fast.close(), slow.close(), downFast.close(), downSlow.close()]);
      await backend.close();
    }
  });

  test('15. drain: the in-flight response completes with Connection: close; idle fast-path connections are closed', async () => {
    const backend = await startTestBackend();
    const lb = await startBalancer({ ...base, backends: [backend.url] });
    const busy = await RawClient.connect(lb.port);
    const idle = await RawClient.connect(lb.port);
    const fresh = await RawClient.connect(lb.port);
    try {
      assert.equal((await idle.request(GET('/echo?idle'))).status, 200);
      busy.write(GET('/slow?ms=700'));
      await waitFor(() => lb.balancer.activeRequests === 1);
      const closing = lb.balancer.close({ drainTimeout: 5000 });
      assert.ok(await idle.waitEnd(1000), 'the idle kept-alive connection is closed at once');
      assert.ok(await fresh.waitEnd(1000), 'a connection with no request yet is closed at once');
      assert.equal(idle.leftover, '');
      assert.equal(busy.ended, false, 'the busy connection is left to finish');
      const res = await busy.read(false, 3000);
      assert.equal(res.status, 200);
      assert.equal(bodyText(res), 'slow done');
      assert.equal(header(res, 'connection'), 'close', 'the response finishing during the drain announces the close');
      assert.ok(await busy.waitEnd(1000), 'and the balancer closes the connection after it');
      await closing;
    } finally {
      for (const c of [busy, idle, fresh]) c.destroy();
      await lb.close();
      await backend.close();
    }
  });

  test('16. rate limiting on the fast path: RateLimit headers on the allowed response, 429 on the next', async () => {
    const backend = await startTestBackend();
    const rateLimit = { rate: 1, per: '1m' };
    const lb = await startBalancer({ ...base, backends: [backend.url], rateLimit });
    const ref = await startBalancer({ ...base, backends: [backend.url], rateLimit, listen: { host: '127.0.0.1', port: 0, fastPath: false } });
    try {
      const c = await RawClient.connect(lb.port);
      const ok = await c.request(GET('/echo?rl=1'));
      assert.equal(ok.status, 200);
      assert.equal(JSON.parse(bodyText(ok)).url, '/echo?rl=1');
      assert.equal(header(ok, 'ratelimit-policy'), '"default";q=1;w=60');
      assert.equal(header(ok, 'ratelimit'), '"default";r=0;t=60');
      assert.equal(header(ok, 'content-type'), 'application/json', 'the backend\'s headers are kept');
      assert.equal(header(ok, 'connection'), 'keep-alive');
      const limited = await c.request(GET('/echo?rl=2'));
      assert.equal(limited.status, 429);
      assert.equal(header(limited, 'x-fulcrum-error'), 'FULCRUM_ERR_RATE_LIMITED');
      assert.equal(header(limited, 'retry-after'), '60');
      assert.equal(header(limited, 'ratelimit-policy'), '"default";q=1;w=60');
      assert.match(header(limited, 'ratelimit') ?? '', /^"default";r=0;t=\d+$/);
      assert.equal(bodyText(limited), '429 Too Many Requests: rate limit exceeded\n');
      assert.equal(header(limited, 'connection'), 'keep-alive');
      assert.equal(backend.seen.filter((s) => s.url.startsWith('/echo?rl=')).length, 1, 'the refused request did not reach the backend');

      // The same two responses from node:http carry the same header names, in the same order.
      const r = await RawClient.connect(ref.port);
      const refOk = await r.request(GET('/echo?rl=1'));
      const refLimited = await r.request(GET('/echo?rl=2'));
      const names = (x: RawResponse): string[] => x.headers.map(([n]) => n.toLowerCase()).filter((n) => n !== 'date');
      assert.deepEqual(names(ok), names(refOk));
      assert.deepEqual(names(limited), names(refLimited));
      c.destroy();
      r.destroy();
    } finally {
      await lb.close();
      await ref.close();
      await backend.close();
    }
  });
});

describe('fast path over TLS', { skip: !opensslAvailable() && 'openssl is not installed' }, () => {
  let certs: TestCerts;
  before(() => { certs = makeCerts(); });
  after(() => certs.remove());

  test('17. TLS: keep-alive on the fast path, then a hand-off (a body) and back on one TLS connection', async () => {
    const backend = await startTestBackend();
    const lb = await startBalancer({ ...base, backends: [backend.url], listen: { host: '127.0.0.1', port: 0, tls: { cert: certs.a.cert, key: certs.a.key } } });
    const c = await RawClient.connectTls(lb.port, readFileSync(certs.ca));
    try {
      const r1 = await c.request(GET('/echo?tls=1'));
      assert.equal(JSON.parse(bodyText(r1)).url, '/echo?tls=1');
      assert.equal(header(r1, 'keep-alive'), 'timeout=4');
      const r2 = await c.request('POST /echo?tls=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello');
      const e2 = JSON.parse(bodyText(r2));
      assert.deepEqual([e2.method, e2.url, e2.body], ['POST', '/echo?tls=2', 'hello']);
      // Pipelined after the hand-off: node:http serves the rest of the connection.
      c.write(GET('/echo?tls=3') + GET('/echo?tls=4'));
      const r3 = JSON.parse(bodyText(await c.read()));
      const r4 = JSON.parse(bodyText(await c.read()));
      assert.deepEqual([r3.url, r4.url], ['/echo?tls=3', '/echo?tls=4']);
      const seen = backend.seen.slice(-4);
      assert.ok(seen.every((r) => r.headers['x-forwarded-proto'] === 'https'), 'x-forwarded-proto is https on both paths');
    } finally {
      c.destroy();
      await lb.close();
      await backend.close();
    }
  });
});
