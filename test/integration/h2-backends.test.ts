/**
 * HTTP/2 backends with plain HTTP: h2c:// (prior knowledge) and https://
 * with ALPN (upstream.http2), HTTP/1.1 <-> HTTP/2 translation both ways,
 * trailers, flow control towards a slow client, and the error answers.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { makeCerts, type TestCerts } from '../helpers/certs.js';

const NO_CHECKS = { healthCheck: { enabled: false } };

interface Seen { version: string; authority: string | undefined; host: string | undefined; headers: http2.IncomingHttpHeaders | http.IncomingHttpHeaders; body: string; trailers: NodeJS.Dict<string | string[]> }

/** echoHandler answers with what it saw, and trailers when asked (`x-want-trailers`). */
function echoHandler(seen: Seen[]) {
  return (req: http2.Http2ServerRequest | http.IncomingMessage, res: http2.Http2ServerResponse | http.ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s: Seen = { version: req.httpVersion, authority: (req as http2.Http2ServerRequest).authority, host: req.headers.host, headers: req.headers, body: Buffer.concat(chunks).toString(), trailers: Object.fromEntries(Object.entries(req.trailers)) };
      seen.push(s);
      const wantTrailers = req.headers['x-want-trailers'] !== undefined;
      (res as http.ServerResponse).writeHead(200, { 'content-type': 'text/plain', 'x-version': req.httpVersion, 'set-cookie': ['a=1', 'b=2'], ...(wantTrailers ? { trailer: 'x-checksum' } : {}) });
      (res as http.ServerResponse).write(`v${req.httpVersion} `);
      if (wantTrailers) res.addTrailers({ 'x-checksum': 'abc123' });
      res.end(s.body);
    });
  };
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

const close = (server: net.Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

/** h2Request makes one HTTP/2 request with node:http2 and reads the answer, trailers included. */
function h2Request(port: number, headers: http2.OutgoingHttpHeaders, body?: string): Promise<{ status: number; headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'GET', ':path': '/', ...headers }, { endStream: body === undefined });
    if (body !== undefined) stream.end(body);
    let h: http2.IncomingHttpHeaders = {};
    let t: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (x) => { h = x; });
    stream.on('trailers', (x) => { t = x; });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => { session.close(); resolve({ status: Number(h[':status']), headers: h, trailers: t, body: Buffer.concat(chunks).toString() }); });
    stream.on('error', reject);
  });
}

/** h2WithTrailers POSTs "part1,part2" over HTTP/2, ending with trailers (x-checksum, x-parts); resolves to the status. */
function h2WithTrailers(port: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': '/up', 'content-type': 'application/octet-stream' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'h2-sum', 'x-parts': '2' }));
    stream.write('part1,');
    stream.end('part2');
    stream.on('response', (h) => resolve(Number(h[':status'])));
    stream.resume();
    stream.on('end', () => session.close());
    stream.on('error', reject);
  });
}

/** h1ChunkedWithTrailer POSTs "hello" chunked with an X-Checksum trailer on a raw connection; resolves to what came back. */
function h1ChunkedWithTrailer(port: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write('POST /up HTTP/1.1\r\nHost: site.example\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: h1-sum\r\n\r\n');
    });
    let text = '';
    socket.on('data', (d: Buffer) => { text += d.toString('latin1'); });
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}

/** requestTrailersArrive: an HTTP/2 client's and an HTTP/1.1 chunked client's request trailers reach the backend behind `port`. */
async function requestTrailersArrive(port: number, seen: Seen[]): Promise<void> {
  assert.equal(await h2WithTrailers(port), 200);
  await waitFor(() => seen.at(-1)?.body === 'part1,part2');
  assert.deepEqual(seen.at(-1)!.trailers, { 'x-checksum': 'h2-sum', 'x-parts': '2' });
  assert.match(await h1ChunkedWithTrailer(port), /^HTTP\/1\.1 200 /);
  assert.equal(seen.at(-1)!.body, 'hello');
  assert.deepEqual(seen.at(-1)!.trailers, { 'x-checksum': 'h1-sum' });
}

/** h1Request is an HTTP/1.1 request that also reads the response's trailers. */
function h1Request(url: string, headers: http.OutgoingHttpHeaders = {}, body?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; trailers: NodeJS.Dict<string>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, method: body === undefined ? 'GET' : 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, trailers: res.trailers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('h2c:// backends', () => {
  const seen: Seen[] = [];
  let backend: http2.Http2Server;
  let port: number;
  let lb: TestBalancer;

  before(async () => {
    backend = http2.createServer(echoHandler(seen));
    port = await listen(backend);
    lb = await startBalancer({ listen: { host: '127.0.0.1', port: 0, http2: true }, backends: [`h2c://127.0.0.1:${port}`], ...NO_CHECKS });
  });
  after(async () => {
    await lb.close();
    await close(backend);
  });

  it('HTTP/1.1 client -> HTTP/2 backend: :authority from Host, no connection headers, a streamed body, the response translated back', async () => {
    const res = await h1Request(`${lb.url}/`, { host: 'site.example', connection: 'keep-alive, x-hop', 'x-hop': 'drop me', 'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked' }, 'hello body');
    assert.equal(res.status, 200);
    assert.equal(res.body, 'v2.0 hello body');
    assert.deepEqual(res.headers['set-cookie'], ['a=1', 'b=2']);
    const s = seen.at(-1)!;
    assert.equal(s.version, '2.0');
    assert.equal(s.authority, 'site.example'); // the client's Host (preserveHost is on by default) as :authority
    assert.equal(s.headers.host, undefined); // and no Host field besides it
    assert.equal(s.headers['x-hop'], undefined);
    assert.equal(s.headers['keep-alive'], undefined);
    assert.equal(s.headers['x-forwarded-host'], 'site.example');
  });

  it('without preserveHost, :authority is the backend\'s own host:port', async () => {
    const other = await startBalancer({ backends: [`h2c://127.0.0.1:${port}`], preserveHost: false, ...NO_CHECKS });
    try {
      await h1Request(`${other.url}/`, { host: 'site.example' });
      assert.equal(seen.at(-1)!.authority, `127.0.0.1:${port}`);
    } finally {
      await other.close();
    }
  });

  it('HTTP/2 client -> HTTP/2 backend: split cookies arrive joined (RFC 9113 8.2.3), trailers pass through', async () => {
    const res = await h2Request(lb.port, { cookie: ['a=1', 'b=2'], 'x-want-trailers': '1' });
    assert.equal(res.status, 200);
    assert.equal(res.trailers['x-checksum'], 'abc123');
    assert.equal(seen.at(-1)!.headers.cookie, 'a=1; b=2');
  });

  it('request trailers reach the HTTP/2 backend, from an HTTP/2 client and from an HTTP/1.1 chunked body', async () => {
    await requestTrailersArrive(lb.port, seen);
    // A body without trailers ends as before (an empty end of stream): nothing invented.
    const plain = await h1Request(`${lb.url}/`, {}, 'no trailers');
    assert.equal(plain.status, 200);
    assert.deepEqual(seen.at(-1)!.trailers, {});
  });

  it('HTTP/2 backend trailers reach an HTTP/1.1 client in a chunked body', async () => {
    const res = await h1Request(`${lb.url}/`, { 'x-want-trailers': '1' });
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(res.trailers['x-checksum'], 'abc123');
  });

  it('many concurrent requests share one HTTP/2 session', async () => {
    const sessions = new Set<http2.Http2Session>();
    const onSession = (s: http2.ServerHttp2Session): void => { sessions.add(s); };
    backend.on('session', onSession);
    try {
      const results = await Promise.all(Array.from({ length: 20 }, () => request(`${lb.url}/`)));
      assert.ok(results.every((r) => r.status === 200));
      assert.ok(sessions.size <= 1, `${sessions.size} sessions`);
    } finally {
      backend.off('session', onSession);
    }
  });
});

describe('HTTP/1.1 backends keep their trailers for HTTP/2 clients', () => {
  it('chunked trailers of an HTTP/1.1 backend reach an HTTP/2 client, and its request trailers the backend', async () => {
    const seen: Seen[] = [];
    const backend = http.createServer(echoHandler(seen));
    const port = await listen(backend);
    const lb = await startBalancer({ listen: { host: '127.0.0.1', port: 0, http2: true }, backends: [`http://127.0.0.1:${port}`], ...NO_CHECKS });
    try {
      const res = await h2Request(lb.port, { 'x-want-trailers': '1' });
      assert.equal(res.body, 'v1.1 ');
      assert.equal(res.trailers['x-checksum'], 'abc123');
      // And the other way: request trailers end the chunked body the backend reads, from either client.
      await requestTrailersArrive(lb.port, seen);
    } finally {
      await lb.close();
      await close(backend);
    }
  });
});

describe('https:// backends with upstream.http2 (ALPN)', () => {
  let certs: TestCerts;
  before(() => { certs = makeCerts(); });
  after(() => certs.remove());

  it('speaks HTTP/2 to a backend that offers h2, with the backend TLS settings', async () => {
    const seen: Seen[] = [];
    const backend = http2.createSecureServer({ cert: certs.read(certs.a.cert), key: certs.read(certs.a.key) }, echoHandler(seen));
    const port = await listen(backend);
    const lb = await startBalancer({ backends: [`https://127.0.0.1:${port}`], upstream: { http2: true }, backendTls: { ca: certs.ca }, ...NO_CHECKS });
    try {
      const res = await request(`${lb.url}/`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-version'], '2.0');
    } finally {
      await lb.close();
      await close(backend);
    }
  });

  it('falls back to HTTP/1.1 for a backend that offers only that', async () => {
    const seen: Seen[] = [];
    const backend = https.createServer({ cert: certs.read(certs.a.cert), key: certs.read(certs.a.key) }, echoHandler(seen));
    const port = await listen(backend);
    const lb = await startBalancer({ backends: [`https://127.0.0.1:${port}`], upstream: { http2: true }, backendTls: { ca: certs.ca }, ...NO_CHECKS });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await request(`${lb.url}/`);
        assert.equal(res.status, 200);
        assert.equal(res.headers['x-version'], '1.1');
      }
    } finally {
      await lb.close();
      await close(backend);
    }
  });

  it('an untrusted backend certificate fails as a TLS error (502)', async () => {
    const backend = http2.createSecureServer({ cert: certs.read(certs.a.cert), key: certs.read(certs.a.key) }, echoHandler([]));
    const port = await listen(backend);
    const lb = await startBalancer({ backends: [`https://127.0.0.1:${port}`], upstream: { http2: true }, retries: { attempts: 0 }, ...NO_CHECKS });
    try {
      const res = await request(`${lb.url}/`);
      assert.equal(res.status, 502);
      assert.equal(res.headers['x-fulcrum-error'], 'FULCRUM_ERR_UPSTREAM_TLS');
    } finally {
      await lb.close();
      await close(backend);
    }
  });
});

describe('HTTP/2 backends: errors and flow control', () => {
  it('connect refused -> 502, no response head in time -> 504, reset before the response -> 502', async () => {
    const backend = http2.createServer();
    backend.on('stream', (stream, headers) => {
      stream.on('error', () => undefined);
      if (headers[':path'] === '/reset') stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      // '/hang': never answers
    });
    const port = await listen(backend);
    const lb = await startBalancer({ backends: [`h2c://127.0.0.1:${port}`], timeouts: { response: '200ms' }, retries: { attempts: 0 }, ...NO_CHECKS });
    const dead = await startBalancer({ backends: ['h2c://127.0.0.1:1'], retries: { attempts: 0 }, ...NO_CHECKS });
    try {
      const hang = await request(`${lb.url}/hang`);
      assert.equal(hang.status, 504);
      assert.equal(hang.headers['x-fulcrum-error'], 'FULCRUM_ERR_RESPONSE_TIMEOUT');
      const reset = await request(`${lb.url}/reset`);
      assert.equal(reset.status, 502);
      assert.equal(reset.headers['x-fulcrum-error'], 'FULCRUM_ERR_UPSTREAM_RESET');
      const refused = await request(`${dead.url}/`);
      assert.equal(refused.status, 502);
      assert.equal(refused.headers['x-fulcrum-error'], 'FULCRUM_ERR_CONNECT_REFUSED');
    } finally {
      await lb.close();
      await dead.close();
      await close(backend);
    }
  });

  it('a client that reads a large h2 response slowly holds the backend back: Fulcrum does not buffer it', async () => {
    const total = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 0x62);
    let written = 0;
    const backend = http2.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const pump = (): void => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) { res.once('drain', pump); return; }
        }
        res.end();
      };
      pump();
    });
    const port = await listen(backend);
    const lb = await startBalancer({ listen: { host: '127.0.0.1', port: 0, http2: true }, backends: [`h2c://127.0.0.1:${port}`], ...NO_CHECKS });
    const session = http2.connect(`http://127.0.0.1:${lb.port}`);
    try {
      const rssBefore = process.memoryUsage().rss;
      const stream = session.request({ ':path': '/big' });
      let received = 0;
      stream.on('data', (c: Buffer) => { received += c.length; });
      await waitFor(() => received > 0);
      stream.pause();
      await new Promise((r) => setTimeout(r, 500));
      const stalledAt = written;
      // Flow-control windows and socket buffers on the way hold a few MiB, not the 64 MiB response.
      assert.ok(stalledAt < 16 * 1024 * 1024, `the backend wrote ${stalledAt} bytes to a client that read ${received}`);
      assert.ok(process.memoryUsage().rss - rssBefore < 48 * 1024 * 1024, 'RSS grew past the bound');
      // Reading a little lets a little more come: the back-pressure is released, not lost.
      stream.resume();
      await waitFor(() => written > stalledAt);
      stream.close(http2.constants.NGHTTP2_CANCEL);
    } finally {
      session.destroy();
      await lb.close();
      await close(backend);
    }
  });
});
