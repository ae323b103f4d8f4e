import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { startBackends, startRawServer, urlOf, freePort, type DemoBackend } from '../helpers/backends.js';
import { startBalancer, get, request, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { startDemoBackend } from '../../src/demo/backend.js';

describe('round-robin over healthy backends', () => {
  let backends: DemoBackend[];
  let lb: TestBalancer;
  before(async () => {
    backends = await startBackends(3);
    lb = await startBalancer({ backends: backends.map(urlOf), healthCheck: { enabled: false } });
  });
  after(async () => {
    await lb.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  test('answers in rotation and splits evenly', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 30; i++) seen.push((await get(`${lb.url}/`)).body);
    assert.deepEqual(seen.slice(0, 3), ['Hello from Backend 1', 'Hello from Backend 2', 'Hello from Backend 3']);
    for (const b of backends) assert.equal(seen.filter((s) => s === `Hello from ${b.name}`).length, 10);
  });

  test('/status, /metrics and /healthz', async () => {
    const status = JSON.parse((await get(`${lb.url}/status`)).body);
    assert.equal(status.algorithm, 'round-robin');
    assert.equal(typeof status.totalRequests, 'number');
    assert.equal(status.backends.length, 3);
    const b = status.backends[0];
    for (const key of ['id', 'url', 'healthy', 'reasons', 'requests', 'failures', 'activeConnections', 'weight']) assert.ok(key in b, `status backend has ${key}`);
    assert.equal(b.id, 'b1');
    assert.deepEqual(b.reasons, []);

    const before = JSON.parse((await get(`${lb.url}/metrics`)).body).total_requests;
    await get(`${lb.url}/`);
    await get(`${lb.url}/status`);
    const metrics = JSON.parse((await get(`${lb.url}/metrics`)).body);
    assert.equal(metrics.total_requests, before + 1, 'only proxied requests are counted');
    assert.equal(metrics.backends.length, 3);

    for (const opts of [{ path: '/metrics?format=prometheus' }, { path: '/metrics', headers: { accept: 'text/plain' } }, { path: '/metrics', headers: { accept: 'application/openmetrics-text' } }]) {
      const prom = await get(`${lb.url}${opts.path}`, 'headers' in opts ? { headers: opts.headers } : {});
      assert.match(String(prom.headers['content-type']), /^text\/plain/);
      assert.match(prom.body, /^fulcrum_requests_total\{route="default",service="default",backend="b1",code="200"\} \d+$/m);
      assert.match(prom.body, /^fulcrum_request_duration_seconds_bucket\{route="default",service="default",backend="b1",le="\+Inf"\} \d+$/m);
      assert.match(prom.body, /^fulcrum_backend_up\{service="default",backend="b2"\} 1$/m);
      assert.match(prom.body, /^fulcrum_backend_active_connections\{service="default",backend="b3"\} 0$/m);
    }
    const healthz = await get(`${lb.url}/healthz`);
    assert.equal(healthz.status, 200);
  });

  test('headers: hop-by-hop removed, forwarded headers added, Host preserved', async () => {
    const res = await get(`${lb.url}/echo?x=1`, {
      headers: { host: 'shop.example', connection: 'keep-alive, x-secret', 'x-secret': 'drop me', 'keep-alive': 'timeout=5', 'proxy-authorization': 'Basic x', te: 'trailers', 'x-keep': 'yes' },
    });
    const echo = JSON.parse(res.body);
    assert.equal(echo.url, '/echo?x=1');
    assert.equal(echo.headers.host, 'shop.example');
    assert.equal(echo.headers['x-keep'], 'yes');
    for (const h of ['x-secret', 'keep-alive', 'proxy-authorization', 'te']) assert.equal(echo.headers[h], undefined, `${h} must not reach the backend`);
    assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(echo.headers['x-forwarded-proto'], 'http');
    assert.equal(echo.headers['x-forwarded-host'], 'shop.example');
    assert.equal(echo.headers.forwarded, 'for=127.0.0.1;proto=http;host="shop.example"');
  });

  test('methods and bodies in both directions', async () => {
    const res = await request(`${lb.url}/echo`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello body' });
    const echo = JSON.parse(res.body);
    assert.equal(echo.method, 'POST');
    assert.equal(echo.body, 'hello body');
    const del = JSON.parse((await request(`${lb.url}/echo`, { method: 'DELETE' })).body);
    assert.equal(del.method, 'DELETE');
    const head = await request(`${lb.url}/`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal((await get(`${lb.url}/status/404`)).status, 404);
    assert.equal((await get(`${lb.url}/status/204`)).status, 204);
  });
});

describe('large bodies are streamed both ways', () => {
  let backends: DemoBackend[];
  let lb: TestBalancer;
  before(async () => {
    backends = await startBackends(1);
    lb = await startBalancer({ backends: backends.map(urlOf), healthCheck: { enabled: false } });
  });
  after(async () => {
    await lb.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  test('a 48 MiB upload arrives intact (chunked and with Content-Length)', async () => {
    const size = 48 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < chunk.length; i++) chunk[i] = i % 251;
    const expected = createHash('sha256');
    for (let i = 0; i < size / chunk.length; i++) expected.update(chunk);
    const digest = expected.digest('hex');
    for (const withLength of [false, true]) {
      const body = await new Promise<string>((resolve, reject) => {
        const req = http.request(`${lb.url}/upload`, { method: 'POST', agent: false, headers: withLength ? { 'content-length': size } : {} }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => { text += d; });
          res.on('end', () => resolve(text));
        });
        req.on('error', reject);
        let sent = 0;
        const pump = (): void => {
          while (sent < size) {
            sent += chunk.length;
            if (!req.write(chunk)) { req.once('drain', pump); return; }
          }
          req.end();
        };
        pump();
      });
      const result = JSON.parse(body);
      assert.equal(result.size, size);
      assert.equal(result.sha256, digest);
    }
  });

  test('a 48 MiB download arrives intact', async () => {
    const size = 48 * 1024 * 1024;
    const received = await new Promise<number>((resolve, reject) => {
      http.get(`${lb.url}/bytes?n=${size}`, { agent: false }, (res) => {
        let n = 0;
        res.on('data', (d: Buffer) => { n += d.length; });
        res.on('end', () => resolve(n));
        res.on('error', reject);
      }).on('error', reject);
    });
    assert.equal(received, size);
  });
});

describe('failures', () => {
  test('no healthy backend gives 503 with a reason; /healthz turns 503', async () => {
    const backends = await startBackends(1);
    const lb = await startBalancer({ backends: [{ url: urlOf(backends[0]!), healthy: false }], healthCheck: { enabled: false } });
    try {
      const res = await get(`${lb.url}/`);
      assert.equal(res.status, 503);
      assert.match(res.headers['content-type'] ?? '', /^text\/plain/);
      assert.match(res.body, /no healthy backend/);
      assert.equal((await get(`${lb.url}/healthz`)).status, 503);
      const status = JSON.parse((await get(`${lb.url}/status`)).body);
      assert.deepEqual(status.backends[0].reasons, ['initially-down']);
    } finally {
      await lb.close();
      await backends[0]!.close();
    }
  });

  test('an unreachable backend gives 502 with a reason', async () => {
    const port = await freePort();
    const lb = await startBalancer({ backends: [`http://127.0.0.1:${port}`], healthCheck: { enabled: false }, retries: { attempts: 0 }, outlierDetection: { enabled: false } });
    try {
      const res = await get(`${lb.url}/`);
      assert.equal(res.status, 502);
      assert.match(res.body, /refused the connection/);
      assert.equal(res.headers['x-fulcrum-error'], 'FULCRUM_ERR_CONNECT_REFUSED');
    } finally {
      await lb.close();
    }
  });

  test('a client that disconnects mid-request frees the upstream request', async () => {
    let upstreamClosed = false;
    const raw = await startRawServer((socket) => {
      socket.once('data', () => { /* read the request, never answer */ });
      socket.on('close', () => { upstreamClosed = true; });
    });
    const lb = await startBalancer({ backends: [urlOf(raw)], healthCheck: { enabled: false } });
    try {
      const client = net.connect(lb.port, '127.0.0.1');
      client.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor(() => lb.balancer.pool.snapshot[0]!.state.inflight === 1);
      client.destroy();
      await waitFor(() => upstreamClosed && lb.balancer.pool.snapshot[0]!.state.inflight === 0);
    } finally {
      await lb.close();
      await raw.close();
    }
  });
});

describe('active health checks', () => {
  test('a stopped backend leaves the rotation and comes back when it recovers', async () => {
    const backends = await startBackends(2);
    const port = backends[1]!.port;
    const interval = 200;
    const lb = await startBalancer({
      backends: backends.map(urlOf),
      healthCheck: { interval: `${interval}ms`, timeout: '150ms', healthyThreshold: 2, unhealthyThreshold: 2 },
    });
    try {
      await backends[1]!.close();
      const stoppedAt = Date.now();
      await waitFor(() => !lb.balancer.pool.snapshot[1]!.healthy, interval * 2 + 2000);
      assert.ok(Date.now() - stoppedAt <= interval * 2 + 2000);
      const status = JSON.parse((await get(`${lb.url}/status`)).body);
      assert.deepEqual(status.backends[1].reasons, ['active-check-failed']);
      for (let i = 0; i < 6; i++) assert.equal((await get(`${lb.url}/`)).body, 'Hello from Backend 1');

      backends[1] = await startDemoBackend({ port, host: '127.0.0.1', name: 'Backend 2 again' });
      await waitFor(() => lb.balancer.pool.snapshot[1]!.healthy, interval * 2 + 3000);
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) seen.add((await get(`${lb.url}/`)).body);
      assert.ok(seen.has('Hello from Backend 2 again'));
      const events = lb.balancer.events.map((e) => `${e.backend}:${e.healthy}`);
      assert.deepEqual(events, ['b2:false', 'b2:true']);
    } finally {
      await lb.close();
      await Promise.all(backends.map((b) => b.close()));
    }
  });

  test('/health failing on demand takes a backend out', async () => {
    const backends = await startBackends(2);
    const lb = await startBalancer({ backends: backends.map(urlOf), healthCheck: { interval: '100ms', healthyThreshold: 1, unhealthyThreshold: 1 } });
    try {
      backends[0]!.failHealth(true);
      await waitFor(() => !lb.balancer.pool.snapshot[0]!.healthy);
      for (let i = 0; i < 4; i++) assert.equal((await get(`${lb.url}/`)).body, 'Hello from Backend 2');
      backends[0]!.failHealth(false);
      await waitFor(() => lb.balancer.pool.snapshot[0]!.healthy);
    } finally {
      await lb.close();
      await Promise.all(backends.map((b) => b.close()));
    }
  });
});
