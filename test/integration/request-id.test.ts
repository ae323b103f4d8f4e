/**
 * Request ids (`requestId:`): generated when absent, kept when trusted and
 * well formed, replaced otherwise; the backend and the client get the same
 * one, and so do the access log and Fulcrum's error answers, on the fast
 * path and through node:http alike.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../helpers/backends.js';
import { startBalancer, get, request, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { captureLogger, type CapturedLog } from '../helpers/logs.js';
import { startHeaderBackend, startOtlpReceiver, type HeaderBackend } from '../helpers/otlp.js';

const access = (log: CapturedLog): Record<string, unknown>[] => log.lines.filter((l) => l.type === 'access');

describe('requestId with the defaults (X-Request-Id, generate, trustIncoming)', () => {
  let backend: HeaderBackend;
  let lb: TestBalancer;
  let log: CapturedLog;
  before(async () => {
    backend = await startHeaderBackend((_req, res) => {
      // The backend answers with an id of its own: the client must get Fulcrum's.
      res.writeHead(200, { 'x-request-id': 'from-backend' }).end('ok');
    });
    log = captureLogger('warn');
    lb = await startBalancer({ backends: [backend.url], healthCheck: { enabled: false }, accessLog: true, requestId: {} }, { logger: log.logger });
  });
  after(async () => {
    await lb.close();
    await backend.close();
  });

  test('generated when absent: the backend, the client and the access log have the same id', async () => {
    const res = await get(`${lb.url}/a`);
    const id = res.headers['x-request-id'];
    assert.equal(typeof id, 'string');
    assert.match(id as string, /^[0-9a-f]{16}-[0-9a-z]+$/);
    assert.equal(backend.seen.at(-1)!['x-request-id'], id);
    await waitFor(() => access(log).length > 0, 2000);
    assert.equal(access(log).at(-1)!.requestId, id);
    const next = await get(`${lb.url}/a`);
    assert.notEqual(next.headers['x-request-id'], id, 'each request gets its own');
  });

  test('a well-formed incoming id is kept', async () => {
    const res = await get(`${lb.url}/b`, { headers: { 'X-Request-Id': 'client-id-42' } });
    assert.equal(res.headers['x-request-id'], 'client-id-42');
    assert.equal(backend.seen.at(-1)!['x-request-id'], 'client-id-42');
  });

  test('a malformed or too long incoming id is replaced', async () => {
    for (const bad of ['has space', 'x'.repeat(129), 'caf\u00e9']) {
      const res = await get(`${lb.url}/c`, { headers: { 'X-Request-Id': bad } });
      const id = res.headers['x-request-id'] as string;
      assert.notEqual(id, bad);
      assert.match(id, /^[0-9a-f]{16}-/);
      const seen = backend.seen.at(-1)!['x-request-id'];
      assert.equal(seen, id, 'the backend gets only the replacement');
    }
    const long = 'y'.repeat(128);
    assert.equal((await get(`${lb.url}/c`, { headers: { 'X-Request-Id': long } })).headers['x-request-id'], long, '128 characters is still well formed');
  });

  test('a request with a body (the node:http path) gets an id too', async () => {
    const res = await request(`${lb.url}/upload`, { method: 'POST', body: 'hello', headers: { 'content-type': 'text/plain' } });
    const id = res.headers['x-request-id'];
    assert.match(String(id), /^[0-9a-f]{16}-/);
    assert.equal(backend.seen.at(-1)!['x-request-id'], id);
  });
});

describe('requestId in error answers', () => {
  test('a 502 and a 404 carry the id in a header and in the body; the access log line has it', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const log = captureLogger('warn');
    const lb = await startBalancer({
      services: { app: { backends: [dead], healthCheck: { enabled: false }, retries: { attempts: 0 } } },
      routes: [{ name: 'app', match: { path: { prefix: '/app' } }, service: 'app' }],
      accessLog: true, requestId: {},
    }, { logger: log.logger });
    try {
      const bad = await get(`${lb.url}/app/x`, { headers: { 'x-request-id': 'report-me' } });
      assert.equal(bad.status, 502);
      assert.equal(bad.headers['x-request-id'], 'report-me');
      assert.equal(bad.body.split('\n')[1], 'request-id=report-me');
      const missing = await get(`${lb.url}/nowhere`);
      assert.equal(missing.status, 404);
      const id = missing.headers['x-request-id'] as string;
      assert.match(id, /^[0-9a-f]{16}-/);
      assert.ok(missing.body.endsWith(`\nrequest-id=${id}\n`));
      await waitFor(() => access(log).length === 2, 2000);
      assert.deepEqual(access(log).map((l) => [l.status, l.requestId, l.error]), [[502, 'report-me', 'FULCRUM_ERR_CONNECT_REFUSED'], [404, id, 'FULCRUM_ERR_NO_ROUTE']]);
    } finally {
      await lb.close();
    }
  });

  test('with tracing, the access log and error answers also carry the trace and span ids', async () => {
    const receiver = await startOtlpReceiver();
    const dead = `http://127.0.0.1:${await freePort()}`;
    const log = captureLogger('warn');
    const lb = await startBalancer({
      backends: [dead], healthCheck: { enabled: false }, retries: { attempts: 0 }, accessLog: true, requestId: {},
      tracing: { enabled: true, otlp: { endpoint: receiver.url }, batch: { delay: '50ms' } },
    }, { logger: log.logger });
    try {
      const res = await get(`${lb.url}/`, { headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } });
      const m = /^request-id=(\S+) trace-id=([0-9a-f]{32}) span-id=([0-9a-f]{16})$/m.exec(res.body);
      assert.ok(m, res.body);
      assert.equal(m[2], '0af7651916cd43dd8448eb211c80319c');
      await waitFor(() => access(log).length === 1, 2000);
      const line = access(log)[0]!;
      assert.deepEqual([line.requestId, line.traceId, line.spanId], [m[1], m[2], m[3]]);
      await waitFor(() => receiver.spans.some((s) => s.spanId === m[3]));
    } finally {
      await lb.close();
      await receiver.close();
    }
  });
});

describe('requestId options', () => {
  test('trustIncoming: false replaces every incoming id; a custom header is used both ways', async () => {
    const backend = await startHeaderBackend();
    const lb = await startBalancer({ backends: [backend.url], healthCheck: { enabled: false }, requestId: { header: 'X-Correlation-Id', trustIncoming: false } });
    try {
      const res = await get(`${lb.url}/`, { headers: { 'x-correlation-id': 'client-chosen' } });
      const id = res.headers['x-correlation-id'] as string;
      assert.notEqual(id, 'client-chosen');
      assert.equal(backend.seen.at(-1)!['x-correlation-id'], id);
      assert.equal(res.headers['x-request-id'], undefined);
    } finally {
      await lb.close();
      await backend.close();
    }
  });

  test('generate: false passes on a trusted id and sends none otherwise (a malformed one is dropped)', async () => {
    const backend = await startHeaderBackend();
    const lb = await startBalancer({ backends: [backend.url], healthCheck: { enabled: false }, requestId: { generate: false } });
    try {
      const kept = await get(`${lb.url}/`, { headers: { 'x-request-id': 'abc' } });
      assert.equal(kept.headers['x-request-id'], 'abc');
      const none = await get(`${lb.url}/`);
      assert.equal(none.headers['x-request-id'], undefined);
      assert.equal(backend.seen.at(-1)!['x-request-id'], undefined);
      await get(`${lb.url}/`, { headers: { 'x-request-id': 'two words' } });
      assert.equal(backend.seen.at(-1)!['x-request-id'], undefined);
    } finally {
      await lb.close();
      await backend.close();
    }
  });

  test('without requestId nothing changes: the client\'s header passes through and nothing is added', async () => {
    const backend = await startHeaderBackend();
    const lb = await startBalancer({ backends: [backend.url], healthCheck: { enabled: false } });
    try {
      const res = await get(`${lb.url}/`, { headers: { 'x-request-id': 'two words' } });
      assert.equal(res.headers['x-request-id'], undefined);
      assert.equal(backend.seen.at(-1)!['x-request-id'], 'two words');
    } finally {
      await lb.close();
      await backend.close();
    }
  });

  test('a route\'s {request_id} template is the request id', async () => {
    const backend = await startHeaderBackend();
    const lb = await startBalancer({
      services: { app: { backends: [backend.url], healthCheck: { enabled: false } } },
      routes: [{ name: 'app', service: 'app', requestHeaders: { set: { 'X-Trace-Ref': '{request_id}' } } }],
      requestId: {},
    });
    try {
      const res = await get(`${lb.url}/`);
      assert.equal(backend.seen.at(-1)!['x-trace-ref'], res.headers['x-request-id']);
    } finally {
      await lb.close();
      await backend.close();
    }
  });

  test('a reload turns request ids on', async () => {
    const backend = await startHeaderBackend();
    const config = { backends: [backend.url], healthCheck: { enabled: false }, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' as const, accessLog: false };
    const lb = await startBalancer(config);
    try {
      assert.equal((await get(`${lb.url}/`)).headers['x-request-id'], undefined);
      assert.equal((await lb.balancer.reload({ ...config, requestId: { header: 'X-Req' } })).ok, true);
      assert.match(String((await get(`${lb.url}/`)).headers['x-req']), /^[0-9a-f]{16}-/);
    } finally {
      await lb.close();
      await backend.close();
    }
  });
});

