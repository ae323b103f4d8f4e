/**
 * Request smuggling and malformed requests, sent as raw bytes: each is
 * rejected with 400 or 431, the connection is closed, and nothing reaches
 * the backend (which records every byte it receives).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startRawServer, urlOf, type RawServer } from '../helpers/backends.js';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';

/** send writes raw bytes and collects the answer until the balancer closes the connection. */
function send(port: number, bytes: string | Buffer): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => { socket.destroy(); resolve({ text, closed: false }); }, 3000);
    socket.on('data', (d: Buffer) => { text += d.toString('latin1'); });
    socket.on('close', () => { clearTimeout(timer); resolve({ text, closed: true }); });
    socket.on('error', () => undefined);
    socket.write(bytes);
  });
}

const CASES: [string, string, number][] = [
  ['CL + TE', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG', 400],
  ['TE + CL', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nG', 400],
  ['duplicate Content-Length', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde', 400],
  ['obfuscated Transfer-Encoding (xchunked)', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n', 400],
  ['obfuscated Transfer-Encoding (chunked, identity)', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n', 400],
  ['Transfer-Encoding with a space before the colon', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n', 400],
  ['bare LF inside a header value', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\nX-B: b\r\n\r\n', 400],
  ['CR inside a header value', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n', 400],
  ['NUL in a header value', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\n\r\n', 400],
  ['invalid header name', 'GET / HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n', 400],
  ['no Host on HTTP/1.1', 'GET / HTTP/1.1\r\n\r\n', 400],
  ['invalid chunk size', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n', 400],
  ['oversized headers', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`, 431],
];

describe('malformed and hostile requests never reach a backend', () => {
  let backend: RawServer;
  let lb: TestBalancer;
  before(async () => {
    backend = await startRawServer(() => undefined);
    lb = await startBalancer({ backends: [urlOf(backend)], healthCheck: { enabled: false }, timeouts: { response: '1s' } });
  });
  after(async () => {
    await lb.close();
    await backend.close();
  });

  for (const [name, bytes, status] of CASES) {
    test(`${name} -> ${status} and the connection is closed`, async () => {
      const before = backend.received.length;
      const { text, closed } = await send(lb.port, bytes);
      assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `), `answer: ${JSON.stringify(text.slice(0, 80))}`);
      assert.ok(closed, 'the connection is closed');
      // The bad request got no further than the balancer's parser.
      assert.equal(backend.received.length, before, 'nothing reached the backend');
    });
  }

  test('the process is still serving after all of them', async () => {
    const { text } = await send(lb.port, 'GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 200 /);
  });
});
