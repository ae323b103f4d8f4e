/**
 * An exception while handling one request ends that request (500, logged
 * with its stack), never the process (issue 19, defect 5): a request filter
 * that throws is driven through every entry (the fast path, node:http,
 * HTTP/2, an upgrade), with process-wide uncaughtException detection.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { startBackends, urlOf, type DemoBackend } from '../helpers/backends.js';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';
import { captureLogger, type CapturedLog } from '../helpers/logs.js';
import { plain, rawExchange } from '../helpers/raw-http.js';
import type { RequestFilter } from '../../src/core/request-filter.js';

const boom: RequestFilter = {
  filter(req) {
    if (req.url!.startsWith('/boom')) throw new Error(`boom at ${req.url}`);
    throw new Error('unreachable');
  },
};

describe('a throwing request handler', () => {
  let backends: DemoBackend[];
  let log: CapturedLog;
  let fast: TestBalancer;
  let nodeHttp: TestBalancer;
  let h2c: TestBalancer;
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown): void => { uncaught.push(err); };

  before(async () => {
    process.on('uncaughtException', onUncaught);
    backends = await startBackends(1);
    log = captureLogger();
    const config = (listen: object) => ({ backends: [{ url: urlOf(backends[0]!) }], healthCheck: { enabled: false }, listen: { host: '127.0.0.1', port: 0, ...listen } });
    fast = await startBalancer(config({}), { logger: log.logger });
    nodeHttp = await startBalancer(config({ fastPath: false }), { logger: log.logger });
    h2c = await startBalancer(config({ http2: true }), { logger: log.logger });
    for (const lb of [fast, nodeHttp, h2c]) lb.balancer.addComponent({ name: 'boom', filter: () => boom });
  });

  after(async () => {
    await Promise.all([fast, nodeHttp, h2c].filter(Boolean).map((lb) => lb.close()));
    await Promise.all((backends ?? []).map((b) => b.close()));
    process.removeListener('uncaughtException', onUncaught);
  });

  const assert500 = (text: string): void => {
    assert.match(text, /^HTTP\/1\.1 500 Internal Server Error\r\n/, text);
    assert.match(text, /\r\nx-fulcrum-error: FULCRUM_ERR_INTERNAL\r\n/i, text);
  };

  test('the fast path and node:http answer 500 and log the stack', async () => {
    for (const lb of [fast, nodeHttp]) {
      const answer = await rawExchange(plain(lb.port), 'GET /boom-h1 HTTP/1.1\r\nHost: x\r\n\r\n');
      assert500(answer.text);
    }
    const lines = log.find('request handling failed');
    assert.deepEqual(lines.map((l) => l.where), ['fast path', 'http1']);
    assert.match(String((lines[0]!.err as { stack: string }).stack), /boom at \/boom-h1\n\s+at /);
    assert.deepEqual(uncaught, []);
  });

  test('an upgrade gets a 500 and a closed connection', async () => {
    const before = log.find('request handling failed').length;
    const answer = await rawExchange(plain(nodeHttp.port), 'GET /boom-ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', 3000, 200);
    assert500(answer.text);
    assert.ok(answer.closed);
    assert.equal(log.find('request handling failed').length, before + 1);
    assert.deepEqual(uncaught, []);
  });

  test('an HTTP/2 stream gets a 500; the session goes on', async () => {
    const session = http2.connect(`http://127.0.0.1:${h2c.port}`);
    try {
      const status = (path: string): Promise<number> => new Promise((resolve, reject) => {
        const req = session.request({ ':path': path });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.resume();
        req.end();
      });
      assert.equal(await status('/boom-h2'), 500);
      assert.equal(await status('/boom-h2-again'), 500);
    } finally {
      session.close();
    }
    assert.ok(log.find('request handling failed').some((l) => l.where === 'http2'));
    assert.deepEqual(uncaught, []);
  });
});
