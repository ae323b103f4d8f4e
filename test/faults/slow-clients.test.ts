/**
 * Slow clients and HTTP/2 resource exhaustion: the headers, request and
 * client idle timeouts on every listener kind (fast path, node:http, h2c,
 * TLS with HTTP/2), 100 slow connections beside a normal client, and
 * HTTP/2 clients that disconnect with a zero window or reset their streams
 * at once (each must free its streams and backend connections promptly).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { get, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { makeCerts } from '../helpers/certs.js';

const openFds = (): number => readdirSync('/proc/self/fd').length;

interface Probe { ms: number; text: string }

/** probe opens a raw connection, lets `drive` write to it, and resolves when the proxy closes it. */
function probe(connect: () => net.Socket, drive: (s: net.Socket) => NodeJS.Timeout | void, limitMs = 8000): Promise<Probe> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = connect();
    let text = '';
    let iv: NodeJS.Timeout | void;
    s.setEncoding('latin1');
    s.on('data', (d: string) => { text += d; });
    s.on('error', () => undefined);
    const give = setTimeout(() => s.destroy(), limitMs);
    s.on('close', () => { clearTimeout(give); if (iv) clearInterval(iv); resolve({ ms: Date.now() - t0, text }); });
    iv = drive(s);
  });
}

const partialHead = (s: net.Socket): void => { s.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: '); };
const trickleHead = (s: net.Socket): NodeJS.Timeout => { s.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: '); return setInterval(() => s.write('a'), 300); };
const slowBody = (s: net.Socket): NodeJS.Timeout => { s.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n'); return setInterval(() => s.write('a'), 100); };

describe('slow clients', () => {
  let backend: http.Server;
  let backendConnections = 0;
  let backendOpen = 0;
  /** bigAborted: backend connections that carried a large response and were closed. */
  let bigAborted = 0;
  let lb: TestBalancer;
  const ports: Record<string, number> = {};
  const big = Buffer.alloc(32 * 1024 * 1024, 'x');

  before(async () => {
    const certs = makeCerts();
    backend = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end(req.url === '/big' ? big : 'ok'));
      if (req.url === '/big') req.socket.once('close', () => { bigAborted++; });
    });
    backend.on('connection', (s) => { backendConnections++; backendOpen++; s.on('close', () => backendOpen--); });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    lb = await startBalancer({
      listen: [
        { host: '127.0.0.1', port: 0 },
        { host: '127.0.0.1', port: 0, fastPath: false },
        { host: '127.0.0.1', port: 0, http2: true },
        { host: '127.0.0.1', port: 0, tls: { cert: certs.a.cert, key: certs.a.key }, http2: true },
      ],
      backends: [`http://127.0.0.1:${(backend.address() as net.AddressInfo).port}`],
      healthCheck: { enabled: false },
      limits: { headersTimeout: '1s', requestTimeout: '2s', keepAliveTimeout: '1s', clientIdleTimeout: '1s' },
    });
    const l = lb.balancer.listeners;
    ports.fast = l[0]!.port; ports.node = l[1]!.port; ports.h2c = l[2]!.port; ports.tls = l[3]!.port;
  });
  after(async () => {
    await lb.close();
    backend.closeAllConnections();
    await new Promise((r) => backend.close(r));
  });

  const plain = (kind: string) => () => net.connect(ports[kind]!, '127.0.0.1');
  const overTls = () => tls.connect({ port: ports.tls!, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });

  for (const kind of ['fast', 'node', 'h2c', 'tls']) {
    const connect = kind === 'tls' ? overTls : plain(kind);
    test(`${kind}: headers timeout (silent, partial, trickled head) answers 408 within 500 ms of 1 s`, async () => {
      const results = await Promise.all([probe(connect, () => undefined), probe(connect, partialHead), probe(connect, trickleHead)]);
      for (const r of results) {
        assert.match(r.text, /^HTTP\/1\.1 408 /, kind);
        assert.ok(r.ms >= 900 && r.ms <= 1500 + (kind === 'tls' ? 300 : 0), `${kind}: closed after ${r.ms} ms`);
      }
    });
    test(`${kind}: request timeout bounds a slow body (408 by 2 s + 500 ms)`, async () => {
      const r = await probe(connect, slowBody);
      assert.match(r.text, /^HTTP\/1\.1 408 /);
      assert.ok(r.ms >= 1900 && r.ms <= 2800, `${kind}: closed after ${r.ms} ms`);
    });
  }

  test('fast path and node:http: the keep-alive idle timeout (1 s) closes at most 500 ms late, having announced less', async () => {
    for (const kind of ['fast', 'node']) {
      const r = await probe(plain(kind), (s) => { s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'); });
      assert.match(r.text, /^HTTP\/1\.1 200 /);
      assert.match(r.text, /\r\nKeep-Alive: timeout=0\r\n/i, `${kind}: announces a second less`);
      assert.ok(r.ms <= 1500, `${kind}: closed after ${r.ms} ms`);
    }
  });

  test('a client that does not read a large response is cut after clientIdleTimeout, and its backend connection closed', async () => {
    for (const kind of ['fast', 'node']) {
      const before = bigAborted;
      const s = net.connect(ports[kind]!, '127.0.0.1');
      s.on('error', () => undefined);
      s.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
      s.pause(); // a paused socket sees no EOF either: the backend side tells what the proxy did
      const t0 = Date.now();
      await waitFor(() => bigAborted > before, 3000);
      assert.ok(Date.now() - t0 <= 3000);
      let got = 0;
      s.on('data', (c: Buffer) => { got += c.length; });
      s.resume();
      await new Promise((r) => s.once('close', r));
      assert.ok(got < big.length, `${kind}: the whole response came (${got} bytes)`);
    }
  });

  test('HTTP/2: a session without a preface is closed by the headers timeout; a zero-window stream by clientIdleTimeout', async () => {
    const silent = await probe(plain('h2c'), (s) => { s.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'); });
    assert.ok(silent.ms <= 1500, `closed after ${silent.ms} ms`);
    const session = http2.connect(`http://127.0.0.1:${ports.h2c}`, { settings: { initialWindowSize: 0 } });
    session.on('error', () => undefined);
    const t0 = Date.now();
    const code = await new Promise<number>((resolve) => {
      const s = session.request({ ':path': '/big' });
      s.on('error', () => undefined);
      s.on('close', () => resolve(s.rstCode));
    });
    assert.equal(code, http2.constants.NGHTTP2_CANCEL);
    assert.ok(Date.now() - t0 <= 2500);
    session.destroy();
  });

  test('HTTP/2: zero-window clients that disconnect free their streams and backend connections at once', async () => {
    const fds = openFds();
    for (let c = 0; c < 5; c++) {
      const session = http2.connect(`http://127.0.0.1:${ports.h2c}`, { settings: { initialWindowSize: 0 } });
      session.on('error', () => undefined);
      await new Promise((r) => session.once('remoteSettings', r));
      for (let i = 0; i < 20; i++) session.request({ ':path': '/big' }).on('error', () => undefined);
      await waitFor(() => backendOpen >= 20 * (c + 1) || backendOpen >= 20, 2000);
      session.destroy();
    }
    await waitFor(() => backendOpen <= 1 && openFds() <= fds + 2, 500);
  });

  test('HTTP/2: rapid reset does not cost a backend connection per stream', async () => {
    const start = backendConnections;
    const session = http2.connect(`http://127.0.0.1:${ports.h2c}`);
    session.on('error', () => undefined);
    await new Promise((r) => session.once('remoteSettings', r));
    for (let i = 0; i < 500; i++) {
      const s = session.request({ ':path': '/' });
      s.on('error', () => undefined);
      s.close(http2.constants.NGHTTP2_CANCEL);
      if (i % 50 === 49) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 300));
    session.destroy();
    const opened = backendConnections - start;
    assert.ok(opened <= 20, `${opened} backend connections for 500 reset streams`);
  });

  test('100 slow connections: a normal client is served within 1 s; descriptors and RSS come back', async () => {
    const fds = openFds();
    const rss = process.memoryUsage().rss;
    const slow = Array.from({ length: 100 }, (_, i) => probe(plain(i % 2 === 0 ? 'fast' : 'node'), i % 3 === 0 ? slowBody : trickleHead));
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    const res = await get(`http://127.0.0.1:${ports.fast}/`);
    assert.equal(res.status, 200);
    assert.ok(Date.now() - t0 < 1000);
    await Promise.all(slow);
    await waitFor(() => openFds() <= fds + 5, 2000);
    assert.ok(process.memoryUsage().rss < rss + 64 * 1024 * 1024);
  });
});
