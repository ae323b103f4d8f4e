/**
 * Host handling (issue 19 defect 7) and the header-count limit (defect 8),
 * on every request path: the fast path, node:http, and HTTP/2 (h2c). A
 * recording backend shows what was forwarded, and that a refused request
 * was not.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';
import { plain, rawExchange } from '../helpers/raw-http.js';

interface Seen { url: string; host: string | undefined; forwardedHost: string | undefined; fields: number; body: string }

describe('Host handling and limits.maxHeaderCount', () => {
  let backend: http.Server;
  const seen: Seen[] = [];
  let fast: TestBalancer;
  let nodeHttp: TestBalancer;
  let h2c: TestBalancer;

  before(async () => {
    backend = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('latin1');
      req.on('data', (d: string) => { body += d; });
      req.on('end', () => {
        seen.push({ url: req.url!, host: req.headers.host, forwardedHost: req.headers['x-forwarded-host'] as string | undefined, fields: req.rawHeaders.length / 2, body });
        res.end('ok');
      });
    });
    backend.maxHeadersCount = 0;
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    const url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
    const config = (listen: object) => ({ backends: [url], healthCheck: { enabled: false }, preserveHost: true, listen: { host: '127.0.0.1', port: 0, ...listen } });
    fast = await startBalancer(config({}));
    nodeHttp = await startBalancer(config({ fastPath: false }));
    h2c = await startBalancer(config({ http2: true }));
  });

  after(async () => {
    await Promise.all([fast, nodeHttp, h2c].filter(Boolean).map((lb) => lb.close()));
    backend.close();
  });

  const http1 = (): [string, TestBalancer][] => [['fast path', fast], ['node:http', nodeHttp], ['h2c listener, HTTP/1', h2c]];

  /** refused: the request gets `status` and nothing reaches the backend. */
  async function refused(lb: TestBalancer, bytes: string, status: number, label: string): Promise<string> {
    const before = seen.length;
    const answer = await rawExchange(plain(lb.port), bytes);
    assert.equal(answer.status, status, `${label}: ${answer.text}`);
    assert.equal(seen.length, before, `${label}: nothing forwarded`);
    return answer.text;
  }

  test('two Host headers: 400, whether they differ or not', async () => {
    for (const [label, lb] of http1()) {
      const text = await refused(lb, 'GET /two HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n', 400, label);
      assert.match(text, /x-fulcrum-error: FULCRUM_ERR_BAD_REQUEST/i);
      assert.match(text, /more than one Host header/);
      await refused(lb, 'GET /two HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n', 400, label);
    }
  });

  test('Host with userinfo, a non-numeric port or a space: 400', async () => {
    for (const [label, lb] of http1()) {
      for (const host of ['evil@a.example', 'a.example:http', 'a.example:80x', 'a.example b', 'a.example:1:2']) {
        const text = await refused(lb, `GET /bad HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 400, `${label}, Host ${host}`);
        assert.match(text, /invalid Host/);
      }
    }
  });

  test('well-formed Host values are forwarded as they are', async () => {
    for (const [label, lb] of http1()) {
      for (const host of ['a.example', 'a.example:8080', '[::1]:8080', '127.0.0.1']) {
        seen.length = 0;
        const answer = await rawExchange(plain(lb.port), `GET /good HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
        assert.equal(answer.status, 200, `${label}, ${host}: ${answer.text}`);
        assert.equal(seen[0]?.host, host);
      }
    }
  });

  test('an absolute-form target\'s authority wins over Host (RFC 9112 3.2.2)', async () => {
    for (const [label, lb] of http1()) {
      seen.length = 0;
      const answer = await rawExchange(plain(lb.port), 'GET http://a.example/x?q=1 HTTP/1.1\r\nHost: b.example\r\n\r\n');
      assert.equal(answer.status, 200, `${label}: ${answer.text}`);
      assert.deepEqual([seen[0]?.url, seen[0]?.host, seen[0]?.forwardedHost], ['/x?q=1', 'a.example', 'a.example'], label);
      await refused(lb, 'GET http://evil@a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n', 400, `${label}, userinfo in the target`);
    }
  });

  test('HTTP/2: a host field that differs from :authority, or an :authority with userinfo, is refused', async () => {
    const session = http2.connect(`http://127.0.0.1:${h2c.port}`);
    try {
      const ask = (headers: http2.OutgoingHttpHeaders): Promise<number> => new Promise((resolve, reject) => {
        const stream = session.request(headers);
        stream.on('response', (h) => resolve(Number(h[':status'])));
        stream.on('error', reject);
        stream.resume();
        stream.end();
      });
      seen.length = 0;
      assert.equal(await ask({ ':path': '/h2', ':authority': 'a.example', host: 'b.example' }), 400);
      assert.equal(await ask({ ':path': '/h2', ':authority': 'evil@a.example' }), 400);
      assert.equal(seen.length, 0);
      assert.equal(await ask({ ':path': '/h2', ':authority': 'a.example', host: 'A.example' }), 200);
      assert.equal(seen[0]?.host, 'a.example');
    } finally {
      session.destroy();
    }
  });

  const fields = (n: number): string => Array.from({ length: n }, (_, i) => `x-f${i}: v\r\n`).join('');

  test('100 header fields pass, 101 get 431 on both HTTP/1 paths', async () => {
    for (const [label, lb] of http1()) {
      seen.length = 0;
      const ok = await rawExchange(plain(lb.port), `GET /many HTTP/1.1\r\nHost: x\r\n${fields(99)}\r\n`);
      assert.equal(ok.status, 200, `${label}: ${ok.text}`);
      const text = await refused(lb, `GET /many HTTP/1.1\r\nHost: x\r\n${fields(100)}\r\n`, 431, label);
      assert.match(text, /x-fulcrum-error: FULCRUM_ERR_TOO_MANY_HEADERS/i);
    }
  });

  test('2,500 small fields with the framing field at position 2,400: 431, the body is never forwarded without its length', async () => {
    // node:http used to keep the first 2,000 and forward the POST with content-length: 0.
    const many = Array.from({ length: 2500 }, (_, i) => (i === 2400 ? 'Content-Length: 5\r\n' : `a${i}:\r\n`)).join('');
    const big = await startBalancer({ backends: [`http://127.0.0.1:${(backend.address() as AddressInfo).port}`], healthCheck: { enabled: false }, limits: { maxHeaderSize: '64kb' }, listen: { host: '127.0.0.1', port: 0, fastPath: false } });
    try {
      await refused(big, `POST /framing HTTP/1.1\r\nHost: x\r\n${many}\r\nhello`, 431, 'node:http');
    } finally {
      await big.close();
    }
  });

  test('HTTP/2: more fields than the limit get 431 (not a silent reset by nghttp2)', async () => {
    const session = http2.connect(`http://127.0.0.1:${h2c.port}`);
    try {
      const ask = (n: number): Promise<number> => new Promise((resolve, reject) => {
        const headers: http2.OutgoingHttpHeaders = { ':path': '/h2-many' };
        for (let i = 0; i < n; i++) headers[`x-f${i}`] = 'v';
        const stream = session.request(headers);
        stream.on('response', (h) => resolve(Number(h[':status'])));
        stream.on('error', reject);
        stream.resume();
        stream.end();
      });
      assert.equal(await ask(100), 200);
      assert.equal(await ask(101), 431);
      assert.equal(await ask(200), 431);
    } finally {
      session.destroy();
    }
  });
});
