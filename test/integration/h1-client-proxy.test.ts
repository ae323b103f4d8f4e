/**
 * The balancer with Fulcrum's HTTP/1.1 upstream client (`upstream.client:
 * fulcrum`): the proxy's behaviours end to end (rotation, forwarded headers,
 * bodies both ways, trailers, retries, timeouts, malformed responses), with
 * a check that the requests really went through that client.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { freePort, startBackends, startRawServer, urlOf, type DemoBackend, type RawServer } from '../helpers/backends.js';
import { get, request, startBalancer, type TestBalancer } from '../helpers/balancer.js';
import { H1Pool } from '../../src/upstream/h1-client.js';

describe('proxying through the fulcrum upstream client', { timeout: 60_000 }, () => {
  let backends: DemoBackend[];
  let lb: TestBalancer;
  before(async () => {
    backends = await startBackends(2);
    lb = await startBalancer({ backends: backends.map(urlOf), healthCheck: { enabled: false }, upstream: { client: 'fulcrum' } });
  });
  after(async () => {
    await lb.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  test('round-robin, over H1Pool connections that are kept alive', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push((await get(`${lb.url}/`)).body);
    assert.deepEqual(seen, ['Hello from Backend 1', 'Hello from Backend 2', 'Hello from Backend 1', 'Hello from Backend 2', 'Hello from Backend 1', 'Hello from Backend 2']);
    for (const backend of lb.balancer.pool.snapshot) {
      const pool = lb.balancer.upstream.get(backend);
      assert.ok(pool instanceof H1Pool, 'the fulcrum client carries http:// backends');
      assert.equal(pool.connections, 1, 'sequential requests share one connection');
    }
  });

  test('/echo: hop-by-hop headers removed, forwarded headers added, Host preserved', async () => {
    const res = await get(`${lb.url}/echo?q=1`, {
      headers: { host: 'shop.example', connection: 'keep-alive, x-secret', 'x-secret': 'drop me', te: 'trailers', 'x-keep': 'yes' },
    });
    assert.equal(res.status, 200);
    const echo = JSON.parse(res.body);
    assert.equal(echo.url, '/echo?q=1');
    assert.equal(echo.headers.host, 'shop.example');
    assert.equal(echo.headers['x-keep'], 'yes');
    assert.equal(echo.headers['x-secret'], undefined);
    assert.equal(echo.headers.te, undefined);
    assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(echo.headers['x-forwarded-proto'], 'http');
    assert.equal(echo.headers.connection, 'keep-alive');
    assert.ok(res.headers['x-backend'] !== undefined, 'response headers come back');
  });

  test('POST bodies: buffered, streamed with a length, streamed chunked', async () => {
    const small = JSON.parse((await request(`${lb.url}/echo`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello body' })).body);
    assert.equal(small.method, 'POST');
    assert.equal(small.body, 'hello body');
    assert.equal(small.headers['content-length'], '10');

    const big = Buffer.alloc(3 * 1024 * 1024, 'y');
    const sha256 = createHash('sha256').update(big).digest('hex');
    const sized = JSON.parse((await request(`${lb.url}/upload`, { method: 'POST', body: big })).body);
    assert.deepEqual([sized.size, sized.sha256], [big.length, sha256]);

    const chunked = await new Promise<{ size: number; sha256: string }>((resolve, reject) => {
      const req = http.request(`${lb.url}/upload`, { method: 'POST', agent: false }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => { text += d.toString(); });
        res.on('end', () => resolve(JSON.parse(text)));
      });
      req.on('error', reject);
      for (let i = 0; i < 3; i++) req.write(big.subarray(i * 1024 * 1024, (i + 1) * 1024 * 1024));
      req.end();
    });
    assert.deepEqual([chunked.size, chunked.sha256], [big.length, sha256]);
  });

  test('HEAD, 204 and 304 answers have no body', async () => {
    const head = await request(`${lb.url}/`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal((await get(`${lb.url}/status/204`)).status, 204);
    assert.equal((await get(`${lb.url}/status/304`)).status, 304);
    assert.equal((await get(`${lb.url}/`)).status, 200, 'the connections are still in step');
  });

  test('a reload that changes upstream.client moves the backends to the other client', async () => {
    const config = (client: 'fulcrum' | 'undici') => ({
      listen: { host: '127.0.0.1', port: lb.port }, backends: backends.map(urlOf), healthCheck: { enabled: false },
      logLevel: 'silent' as const, accessLog: false, upstream: { client },
    });
    const backend = lb.balancer.pool.snapshot[0]!;
    assert.ok((await lb.balancer.reload(config('undici'))).ok);
    assert.equal((await get(`${lb.url}/`)).status, 200);
    assert.ok(!(lb.balancer.upstream.get(backend) instanceof H1Pool), 'undici now');
    assert.ok((await lb.balancer.reload(config('fulcrum'))).ok);
    assert.equal((await get(`${lb.url}/`)).status, 200);
    assert.ok(lb.balancer.upstream.get(backend) instanceof H1Pool, 'fulcrum again');
  });
});

describe('fulcrum upstream client: failures and unusual responses through the balancer', { timeout: 60_000 }, () => {
  let raw: RawServer;
  before(async () => {
    raw = await startRawServer((socket) => {
      socket.on('data', (d: Buffer) => {
        const path = d.toString('latin1').split(' ')[1];
        if (path === '/trailers') {
          socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n');
        } else if (path === '/malformed') {
          socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n');
        }
        // Anything else: accepted, never answered.
      });
    });
  });
  after(() => raw.close());

  test('retries after a refused connection land on the live backend', async () => {
    const [live] = await startBackends(1) as [DemoBackend];
    const lb = await startBalancer({
      backends: [`http://127.0.0.1:${await freePort()}`, urlOf(live)],
      healthCheck: { enabled: false },
      outlierDetection: { enabled: false },
      retries: { attempts: 2, minPerSecond: 100 },
      upstream: { client: 'fulcrum' },
    });
    try {
      for (let i = 0; i < 4; i++) {
        const res = await get(`${lb.url}/`);
        assert.equal(res.status, 200);
        assert.equal(res.body, 'Hello from Backend 1');
      }
      assert.ok(lb.balancer.metrics.retries >= 1, `retried: ${lb.balancer.metrics.retries}`);
    } finally {
      await lb.close();
      await live.close();
    }
  });

  test('504 from a backend that never answers', async () => {
    const lb = await startBalancer({
      backends: [urlOf(raw)],
      healthCheck: { enabled: false },
      timeouts: { response: '300ms' },
      retries: { attempts: 0 },
      upstream: { client: 'fulcrum' },
    });
    try {
      const res = await get(`${lb.url}/hang`);
      assert.equal(res.status, 504);
      assert.equal(res.headers['x-fulcrum-error'], 'FULCRUM_ERR_RESPONSE_TIMEOUT');
      assert.equal(lb.balancer.pool.snapshot[0]!.state.inflight, 0);
    } finally {
      await lb.close();
    }
  });

  test('502 for a malformed response, classified as a protocol error', async () => {
    const lb = await startBalancer({ backends: [urlOf(raw)], healthCheck: { enabled: false }, upstream: { client: 'fulcrum' } });
    try {
      const res = await get(`${lb.url}/malformed`);
      assert.equal(res.status, 502);
      assert.equal(res.headers['x-fulcrum-error'], 'FULCRUM_ERR_UPSTREAM_PROTOCOL');
    } finally {
      await lb.close();
    }
  });

  test('a chunked response\'s trailers reach the client', async () => {
    const lb = await startBalancer({ backends: [urlOf(raw)], healthCheck: { enabled: false }, upstream: { client: 'fulcrum' } });
    try {
      const { body, trailers } = await new Promise<{ body: string; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
        http.get(`${lb.url}/trailers`, { agent: false }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => { text += d.toString(); });
          res.on('end', () => resolve({ body: text, trailers: res.trailers }));
        }).on('error', reject);
      });
      assert.equal(body, 'hello');
      assert.equal(trailers['x-checksum'], 'abc');
    } finally {
      await lb.close();
    }
  });
});
