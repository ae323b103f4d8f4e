/**
 * Request and response framing (issue 19 defects 9 and 11), on both HTTP/1
 * paths: a raw recording backend shows exactly which requests reached it.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { answerEachHead, startRawServer, type RawServer } from '../helpers/backends.js';
import { startBalancer, get, type TestBalancer } from '../helpers/balancer.js';
import { plain, rawExchange } from '../helpers/raw-http.js';

/** requestLines: the request lines the backend received, in order. */
const requestLines = (backend: RawServer): string[] =>
  Buffer.concat(backend.received).toString('latin1').match(/^[A-Z]+ \S+ HTTP\/1\.[01]$/gm) ?? [];

describe('request framing', () => {
  let backend: RawServer;
  let fast: TestBalancer;
  let nodeHttp: TestBalancer;

  before(async () => {
    // Answers every request head it sees with a 200 whose Content-Length is sent twice (identical).
    backend = await startRawServer(answerEachHead('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok'));
    const config = (listen: object) => ({ backends: [`http://127.0.0.1:${backend.port}`], healthCheck: { enabled: false }, listen: { host: '127.0.0.1', port: 0, ...listen } });
    fast = await startBalancer(config({}));
    nodeHttp = await startBalancer(config({ fastPath: false }));
  });

  after(async () => {
    await Promise.all([fast, nodeHttp].filter(Boolean).map((lb) => lb.close()));
    await backend.close();
  });

  const paths = (): [string, TestBalancer][] => [['fast path', fast], ['node:http', nodeHttp]];

  test('an empty Transfer-Encoding is refused with 400 and a close; the hidden request never reaches the backend', async () => {
    for (const [label, lb] of paths()) {
      backend.received.length = 0;
      // TE.CL: framed by Content-Length here, by the (empty) Transfer-Encoding elsewhere.
      const hidden = 'GET /hidden HTTP/1.1\r\nHost: x\r\n\r\n';
      const body = `0\r\n\r\n${hidden}`;
      const answer = await rawExchange(plain(lb.port), `POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\nContent-Length: ${body.length}\r\n\r\n${body}`, 3000, 200);
      assert.equal(answer.status, 400, `${label}: ${answer.text}`);
      assert.match(answer.text, /empty Transfer-Encoding/);
      assert.ok(answer.closed, `${label}: the connection is closed`);
      assert.deepEqual(requestLines(backend), [], label);
    }
  });

  test('HTTP/1.0 with chunked Transfer-Encoding: 400 and a close, the pipelined request behind it is not served', async () => {
    for (const [label, lb] of paths()) {
      backend.received.length = 0;
      const answer = await rawExchange(plain(lb.port),
        'POST /old HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /behind HTTP/1.1\r\nHost: x\r\n\r\n', 3000, 200);
      assert.equal(answer.status, 400, `${label}: ${answer.text}`);
      assert.equal(answer.text.match(/HTTP\/1\.[01] \d{3}/g)?.length, 1, `${label}: one answer only`);
      assert.ok(answer.closed);
      assert.deepEqual(requestLines(backend), [], label);
    }
  });

  test('an Upgrade request with a body: 400 at once, nothing forwarded (no 504 a minute later)', async () => {
    for (const [label, lb] of paths()) {
      backend.received.length = 0;
      const started = Date.now();
      const answer = await rawExchange(plain(lb.port),
        'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello', 3000, 100);
      assert.equal(answer.status, 400, `${label}: ${answer.text}`);
      assert.match(answer.text, /an Upgrade request cannot have a body/);
      assert.ok(Date.now() - started < 2500);
      assert.deepEqual(requestLines(backend), [], label);
    }
  });

  test('a backend\'s repeated identical Content-Length reaches the client once', async () => {
    for (const [label, lb] of paths()) {
      const answer = await rawExchange(plain(lb.port), 'GET /dup HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.equal(answer.status, 200, label);
      assert.equal(answer.text.match(/\r\ncontent-length:/gi)?.length, 1, `${label}: ${answer.text}`);
      assert.ok(answer.text.endsWith('\r\n\r\nok'));
    }
    assert.equal((await get(`${fast.url}/again`)).body, 'ok');
  });
});
