/**
 * HTTP/2 for clients: ALPN h2 and HTTP/1.1 fallback on one TLS port, h2c on
 * a plain port, header translation to HTTP/1.1 backends, bodies without
 * Content-Length, limits, timeouts, stream resets (one and many), graceful
 * drain with GOAWAY, and curl when it is installed.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import https from 'node:https';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { startBackends, urlOf, type DemoBackend } from '../helpers/backends.js';
import { get, request, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { makeCerts, type TestCerts } from '../helpers/certs.js';

const { HTTP2_HEADER_PATH: PATH, HTTP2_HEADER_METHOD: METHOD, HTTP2_HEADER_STATUS: STATUS, NGHTTP2_CANCEL } = http2.constants;

interface H2Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function h2request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: Buffer | Buffer[]): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let response: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => { response = h; });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve({ status: Number(response[STATUS]), headers: response, body: Buffer.concat(chunks).toString('utf8') }));
    stream.on('error', reject);
    if (body !== undefined) {
      for (const part of Array.isArray(body) ? body : [body]) stream.write(part);
      stream.end();
    }
  });
}

function connect(url: string, options: http2.SecureClientSessionOptions = {}): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, options);
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

interface Echo {
  headers: Record<string, string>;
  rawHeaders: string[];
  body: string;
}

describe('HTTP/2', () => {
  let certs: TestCerts;
  let backends: DemoBackend[];
  let lb: TestBalancer;
  let tlsPort: number;
  let h2cPort: number;
  let ca: Buffer;

  before(async () => {
    certs = makeCerts();
    ca = certs.read(certs.ca);
    backends = await startBackends(1, 'H2');
    lb = await startBalancer({
      listen: [
        { host: '127.0.0.1', port: 0, tls: { cert: certs.a.cert, key: certs.a.key }, http2: true },
        { host: '127.0.0.1', port: 0, http2: true },
      ],
      backends: [urlOf(backends[0]!)],
      healthCheck: { enabled: false },
      limits: { maxBodySize: '256kb' },
    });
    tlsPort = lb.balancer.listeners[0]!.port;
    h2cPort = lb.balancer.listeners[1]!.port;
  });

  after(async () => {
    await lb.close();
    for (const b of backends) await b.close();
    certs.remove();
  });

  test('ALPN negotiates h2; the backend gets HTTP/1.1 with Host from :authority and no pseudo- or connection headers', async () => {
    const session = await connect(`https://127.0.0.1:${tlsPort}`, { ca, servername: 'a.test' });
    try {
      assert.equal(session.alpnProtocol, 'h2');
      const res = await h2request(session, { [PATH]: '/echo?x=1', ':authority': `a.test:${tlsPort}`, cookie: ['a=1', 'b=2'], 'x-custom': 'yes' });
      assert.equal(res.status, 200);
      assert.equal(session.remoteSettings.maxConcurrentStreams, 250);
      assert.equal(res.headers['x-backend'], 'H2 1');
      assert.equal(res.headers.connection, undefined);
      assert.equal(res.headers['keep-alive'], undefined);
      const echo = JSON.parse(res.body) as Echo;
      const names = echo.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      assert.deepEqual(names.filter((n) => n.startsWith(':')), [], 'no pseudo-headers upstream');
      assert.equal(names.filter((n) => n === 'host').length, 1);
      assert.equal(echo.headers.host, `a.test:${tlsPort}`);
      assert.equal(echo.headers['x-forwarded-proto'], 'https');
      assert.equal(echo.headers['x-forwarded-host'], `a.test:${tlsPort}`);
      assert.equal(echo.headers['x-custom'], 'yes');
      assert.equal(names.filter((n) => n === 'cookie').length, 1, 'split cookies are joined into one header');
      assert.equal(echo.headers.cookie, 'a=1; b=2');
      const url = (JSON.parse(res.body) as { url: string }).url;
      assert.equal(url, '/echo?x=1');
    } finally {
      session.close();
    }
  });

  test('HTTP/1.1 clients are served on the same TLS port', async () => {
    const res = await new Promise<{ version: string; alpn: string | false; body: string }>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: tlsPort, path: '/', ca, servername: 'a.test', agent: false, ALPNProtocols: ['http/1.1'] } as https.RequestOptions, (r) => {
        const alpn = (r.socket as import('node:tls').TLSSocket).alpnProtocol ?? false;
        let body = '';
        r.on('data', (c: Buffer) => { body += c.toString(); });
        r.on('end', () => resolve({ version: r.httpVersion, alpn, body }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(res.alpn, 'http/1.1');
    assert.equal(res.version, '1.1');
    assert.equal(res.body, 'Hello from H2 1');
  });

  test('WebSockets work on the HTTP/2 TLS port (as HTTP/1.1 upgrades)', async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${tlsPort}/ws`, { ca, servername: 'a.test' } as WebSocket.ClientOptions);
    try {
      const messages: string[] = [];
      ws.on('message', (d: Buffer) => messages.push(d.toString()));
      await new Promise<void>((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
      await waitFor(() => messages.length === 1);
      assert.equal((JSON.parse(messages[0]!) as { hello: string }).hello, 'H2 1');
      ws.send('ping over tls');
      await waitFor(() => messages.length === 2);
      assert.equal(messages[1], 'ping over tls');
    } finally {
      ws.terminate();
    }
  });

  test('h2c on a plain listener with http2: true, and HTTP/1.1 on the same port', async () => {
    const session = await connect(`http://127.0.0.1:${h2cPort}`);
    try {
      const res = await h2request(session, { [PATH]: '/echo' });
      assert.equal(res.status, 200);
      const echo = JSON.parse(res.body) as Echo;
      assert.equal(echo.headers['x-forwarded-proto'], 'http');
      assert.equal(echo.headers.host, `127.0.0.1:${h2cPort}`);
    } finally {
      session.close();
    }
    const plain = await get(`http://127.0.0.1:${h2cPort}/`);
    assert.equal(plain.status, 200);
    assert.equal(plain.body, 'Hello from H2 1');
    const body = randomBytes(200_000);
    const upload = await request(`http://127.0.0.1:${h2cPort}/upload`, { method: 'POST', body, headers: { 'content-length': String(body.length) } });
    assert.equal((JSON.parse(upload.body) as { sha256: string }).sha256, createHash('sha256').update(body).digest('hex'), 'an HTTP/1.1 body arrives whole');
  });

  test('a request body without Content-Length is streamed to the backend; limits apply', async () => {
    const session = await connect(`https://127.0.0.1:${tlsPort}`, { ca, servername: 'a.test' });
    try {
      const parts = [randomBytes(40_000), randomBytes(30_000), randomBytes(50_000)];
      const res = await h2request(session, { [METHOD]: 'POST', [PATH]: '/upload' }, parts);
      assert.equal(res.status, 200);
      const got = JSON.parse(res.body) as { size: number; sha256: string };
      assert.equal(got.size, 120_000);
      assert.equal(got.sha256, createHash('sha256').update(Buffer.concat(parts)).digest('hex'));

      const big = randomBytes(300 * 1024);
      const tooLarge = await h2request(session, { [METHOD]: 'POST', [PATH]: '/upload', 'content-length': String(big.length) }, big).catch((err: Error) => err);
      assert.ok(!(tooLarge instanceof Error), String(tooLarge));
      assert.equal(tooLarge.status, 413);
      assert.equal(tooLarge.headers['x-fulcrum-error'], 'FULCRUM_ERR_BODY_TOO_LARGE');
    } finally {
      session.close();
    }
  });

  test('streams reset by the client cancel their upstream requests; a reset storm is cut off and leaves the balancer serving', async () => {
    const backend = lb.balancer.pool.snapshot[0]!;
    const session = await connect(`https://127.0.0.1:${tlsPort}`, { ca, servername: 'a.test' });
    try {
      // A batch of slow requests in flight upstream, then reset by the client.
      const streams = Array.from({ length: 60 }, () => {
        const s = session.request({ [PATH]: '/delay?ms=60000' });
        s.on('error', () => undefined);
        return s;
      });
      await waitFor(() => backend.state.inflight === 60, 10_000);
      for (const s of streams) s.close(NGHTTP2_CANCEL);
      await waitFor(() => backend.state.inflight === 0 && lb.balancer.activeRequests === 0, 10_000);

      // Rapid resets (CVE-2023-44487): streams opened and reset at once, in rounds, until
      // the server closes the connection (nghttp2 allows a burst of 1000).
      let goaway = false;
      session.on('goaway', () => { goaway = true; });
      session.on('error', () => undefined);
      for (let round = 0; round < 20 && !session.closed && !session.destroyed; round++) {
        for (let i = 0; i < 100 && !session.closed && !session.destroyed; i++) {
          const s = session.request({ [PATH]: '/delay?ms=60000' });
          s.on('error', () => undefined);
          s.close(NGHTTP2_CANCEL);
        }
        await new Promise((r) => setImmediate(r));
      }
      await waitFor(() => goaway, 10_000);
      await waitFor(() => backend.state.inflight === 0 && lb.balancer.activeRequests === 0, 10_000);
    } finally {
      session.destroy();
    }
    const fresh = await connect(`https://127.0.0.1:${tlsPort}`, { ca, servername: 'a.test' });
    try {
      const res = await h2request(fresh, { [PATH]: '/' });
      assert.equal(res.status, 200);
      assert.equal(res.body, 'Hello from H2 1');
    } finally {
      fresh.close();
    }
    assert.equal(backend.state.inflight, 0);
  });

  test('curl speaks HTTP/2 and HTTP/1.1 to the TLS port', { skip: spawnSync('curl', ['--version']).status !== 0 && 'curl is not installed' }, async () => {
    const run = promisify(execFile);
    const common = ['-s', '--cacert', certs.ca, '--resolve', `a.test:${tlsPort}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `https://a.test:${tlsPort}/`];
    assert.equal((await run('curl', ['--http2', ...common])).stdout, '2 200');
    assert.equal((await run('curl', ['--http1.1', ...common])).stdout, '1.1 200');
    const h2c = await run('curl', ['-s', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `http://127.0.0.1:${h2cPort}/`]);
    assert.equal(h2c.stdout, '2 200');
  });
});

describe('HTTP/2 timeouts and drain', () => {
  let certs: TestCerts;
  let backends: DemoBackend[];
  let lb: TestBalancer;
  let ca: Buffer;

  before(async () => {
    certs = makeCerts();
    ca = certs.read(certs.ca);
    backends = await startBackends(1, 'H2T');
    lb = await startBalancer({
      listen: { host: '127.0.0.1', port: 0, tls: { cert: certs.a.cert, key: certs.a.key }, http2: true },
      backends: [urlOf(backends[0]!)],
      healthCheck: { enabled: false },
      timeouts: { response: '2s' },
      retries: { attempts: 0 },
      limits: { keepAliveTimeout: '400ms' },
    });
  });

  after(async () => {
    await lb.close();
    for (const b of backends) await b.close();
    certs.remove();
  });

  test('a slow backend answers 504 over HTTP/2', async () => {
    const session = await connect(`https://127.0.0.1:${lb.port}`, { ca, servername: 'a.test' });
    try {
      const res = await h2request(session, { [PATH]: '/delay?ms=5000' });
      assert.equal(res.status, 504);
      assert.equal(res.headers['x-fulcrum-error'], 'FULCRUM_ERR_RESPONSE_TIMEOUT');
    } finally {
      session.close();
    }
  });

  test('a session is closed once idle for keepAliveTimeout, but not while a slow stream is open', async () => {
    const session = await connect(`https://127.0.0.1:${lb.port}`, { ca, servername: 'a.test' });
    let closed = false;
    session.on('close', () => { closed = true; });
    try {
      const slow = await h2request(session, { [PATH]: '/delay?ms=1000' });
      assert.equal(slow.status, 200, 'a stream longer than the idle timeout is not cut');
      assert.equal(closed, false);
      await waitFor(() => closed, 10_000);
    } finally {
      session.destroy();
    }
  });

  test('on close, sessions get GOAWAY and streams in flight finish', async () => {
    const session = await connect(`https://127.0.0.1:${lb.port}`, { ca, servername: 'a.test' });
    let goaway = false;
    session.on('goaway', () => { goaway = true; });
    const pending = h2request(session, { [PATH]: '/delay?ms=200' });
    await waitFor(() => lb.balancer.activeRequests === 1, 5000);
    const closing = lb.close();
    const res = await pending;
    assert.equal(res.status, 200);
    assert.equal(res.body, 'Hello from H2T 1 after 200ms');
    await closing;
    assert.equal(goaway, true);
    session.destroy();
  });
});
