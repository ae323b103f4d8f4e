/** Header handling edge cases: repeated response headers, Connection tokens, requests without Host. */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';

/** A backend that answers with repeated headers and two Connection headers, and echoes the Host it got. */
async function startHeaderBackend(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    res.setHeader('set-cookie', ['a=1; Path=/', 'b=2; Path=/']);
    res.setHeader('x-host-seen', req.headers.host ?? '(none)');
    res.setHeader('connection', ['keep-alive, x-hop-one', 'x-hop-two']);
    res.setHeader('x-hop-one', 'must not reach the client');
    res.setHeader('x-hop-two', 'must not reach the client');
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    s.on('data', (d: Buffer) => { out += d.toString('latin1'); });
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
    s.write(text);
  });
}

describe('response and request headers', () => {
  let backend: Awaited<ReturnType<typeof startHeaderBackend>>;
  let lb: TestBalancer;
  before(async () => {
    backend = await startHeaderBackend();
    // The rate limiter sets its RateLimit headers before the backend answers: the merge must keep both cookies.
    lb = await startBalancer({ backends: [`http://127.0.0.1:${backend.port}`], healthCheck: { enabled: false }, rateLimit: { rate: 1000, per: '1s' } });
  });
  after(async () => {
    await lb.close();
    await backend.close();
  });

  test('repeated Set-Cookie headers survive headers the balancer adds', async () => {
    const text = await rawRequest(lb.port, 'GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n');
    const cookies = text.split('\r\n').filter((l) => /^set-cookie:/i.test(l));
    assert.deepEqual(cookies.map((l) => l.replace(/^set-cookie: /i, '')), ['a=1; Path=/', 'b=2; Path=/']);
    assert.match(text, /^ratelimit: /im, 'the limiter\'s header is there too');
  });

  test('headers named in any of the backend\'s Connection headers are dropped', async () => {
    const text = await rawRequest(lb.port, 'GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n');
    assert.doesNotMatch(text, /x-hop-one/i);
    assert.doesNotMatch(text, /x-hop-two/i);
  });

  test('a request without Host (HTTP/1.0) reaches the backend with the backend\'s own host, never an empty one', async () => {
    const text = await rawRequest(lb.port, 'GET / HTTP/1.0\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, new RegExp(`^x-host-seen: 127\\.0\\.0\\.1:${backend.port}\\r$`, 'im'));
  });
});
