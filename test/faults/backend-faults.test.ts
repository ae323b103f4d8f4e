/**
 * Fault injection with real sockets: backends that die, hang, reset; clients
 * that abort. Each case checks the status the client sees, that the process
 * keeps serving, and that in-flight counts return to 0.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startBackends, startRawServer, urlOf } from '../helpers/backends.js';
import { startBalancer, get, waitFor, type TestBalancer } from '../helpers/balancer.js';
import type { DemoBackend } from '../../src/demo/backend.js';

/** runLoad sends `total` GETs with `concurrency` keep-alive connections; returns the statuses (0 = network error). */
async function runLoad(url: string, total: number, concurrency: number, onProgress?: (done: number) => void): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const statuses: number[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      next++;
      const status = await new Promise<number>((resolve) => {
        const req = http.get(url, { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', () => resolve(0));
        });
        req.on('error', () => resolve(0));
      });
      statuses.push(status);
      onProgress?.(statuses.length);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return statuses;
}

function kill(backend: DemoBackend): void {
  // A crash, not a graceful stop: every open connection is reset.
  backend.server.close();
  backend.server.closeAllConnections();
}

describe('a backend killed during steady load', () => {
  for (const retries of [true, false]) {
    test(retries ? 'with retries: zero failed requests' : 'without retries: only in-flight requests fail, with 502', async () => {
      const backends = await startBackends(2);
      const lb = await startBalancer({
        backends: backends.map(urlOf),
        healthCheck: { interval: '200ms', unhealthyThreshold: 1 },
        retries: { attempts: retries ? 2 : 0, minPerSecond: 1000 },
      });
      try {
        let killed = false;
        let inflightAtKill = 0;
        const statuses = await runLoad(`${lb.url}/delay?ms=5`, 400, 8, (done) => {
          if (!killed && done >= 100) {
            killed = true;
            inflightAtKill = lb.balancer.pool.snapshot[1]!.state.inflight;
            kill(backends[1]!);
          }
        });
        const failed = statuses.filter((s) => s !== 200);
        if (retries) {
          assert.deepEqual(failed, [], 'no client request fails');
          assert.ok(lb.balancer.metrics.retries > 0 || inflightAtKill === 0, 'the in-flight requests were retried');
        } else {
          assert.ok(failed.every((s) => s === 502), `failures are 502: ${failed.join(',')}`);
          assert.ok(failed.length <= 8, `only in-flight requests (and those racing the health check) fail: ${failed.length}`);
        }
        await waitFor(() => lb.balancer.pool.snapshot.every((b) => b.state.inflight === 0));
      } finally {
        await lb.close();
        await Promise.all(backends.map((b) => b.close()));
      }
    });
  }
});

describe('a backend that accepts and never answers', () => {
  test('gives 504 within the response timeout, and is ejected passively', async () => {
    const hung = await startRawServer(() => { /* read, never answer */ });
    const lb = await startBalancer({
      backends: [urlOf(hung)],
      healthCheck: { enabled: false },
      timeouts: { response: '300ms' },
      retries: { attempts: 0 },
      outlierDetection: { consecutiveFailures: 2, baseEjectionTime: '30s' },
    });
    try {
      for (let i = 0; i < 2; i++) {
        const started = Date.now();
        const res = await get(`${lb.url}/`);
        const elapsed = Date.now() - started;
        assert.equal(res.status, 504);
        assert.match(res.body, /did not send response headers in time/);
        assert.ok(elapsed >= 280 && elapsed < 300 + 1500, `answered after ${elapsed}ms`);
      }
      const status = JSON.parse((await get(`${lb.url}/status`)).body);
      assert.deepEqual(status.backends[0].reasons, ['ejected']);
      assert.equal((await get(`${lb.url}/`)).status, 503, 'an ejected backend gets no traffic');
      assert.equal(lb.balancer.pool.snapshot[0]!.state.inflight, 0);
    } finally {
      await lb.close();
      await hung.close();
    }
  });

  test('a per-backend timeout overrides the global one; a total deadline answers 504', async () => {
    const hung = await startRawServer(() => undefined);
    const lb = await startBalancer({
      backends: [{ url: urlOf(hung), timeouts: { response: '200ms' } }],
      healthCheck: { enabled: false },
      timeouts: { response: '30s' },
      retries: { attempts: 0 },
      outlierDetection: { enabled: false },
    });
    const lb2 = await startBalancer({ backends: [urlOf(hung)], healthCheck: { enabled: false }, timeouts: { total: '250ms' }, retries: { attempts: 0 } });
    try {
      const res = await get(`${lb.url}/`);
      assert.equal(res.status, 504);
      assert.equal(res.headers['x-fulcrum-error'], 'FULCRUM_ERR_RESPONSE_TIMEOUT');
      const res2 = await get(`${lb2.url}/`);
      assert.equal(res2.status, 504);
      assert.equal(res2.headers['x-fulcrum-error'], 'FULCRUM_ERR_TOTAL_TIMEOUT');
    } finally {
      await lb.close();
      await lb2.close();
      await hung.close();
    }
  });
});

describe('resets and aborts', () => {
  test('a backend that resets mid-body: the client sees an aborted response, and the balancer keeps serving', async () => {
    const resetting = await startRawServer((socket) => {
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n');
        socket.write(Buffer.alloc(1000, 'a'));
        setTimeout(() => socket.resetAndDestroy(), 20);
      });
    });
    const lb = await startBalancer({ backends: [urlOf(resetting)], healthCheck: { enabled: false }, outlierDetection: { enabled: false } });
    try {
      const outcome = await new Promise<string>((resolve) => {
        http.get(`${lb.url}/`, { agent: false }, (res) => {
          assert.equal(res.statusCode, 200);
          res.on('data', () => undefined);
          res.on('end', () => resolve('complete'));
          res.on('aborted', () => resolve('aborted'));
          res.on('error', () => resolve('aborted'));
        }).on('error', () => resolve('aborted'));
      });
      assert.equal(outcome, 'aborted');
      await waitFor(() => lb.balancer.pool.snapshot[0]!.state.inflight === 0);
      assert.equal((await get(`${lb.url}/status`)).status, 200);
    } finally {
      await lb.close();
      await resetting.close();
    }
  });

  test('a client that aborts mid-upload or mid-download cancels the upstream request', async () => {
    const backends = await startBackends(1);
    const lb = await startBalancer({ backends: backends.map(urlOf), healthCheck: { enabled: false } });
    const backend = lb.balancer.pool.snapshot[0]!;
    try {
      // Mid-upload: announce 10 MB, send 1 MB, vanish.
      const upload = net.connect(lb.port, '127.0.0.1');
      upload.on('error', () => undefined);
      upload.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`);
      upload.write(Buffer.alloc(1024 * 1024));
      await waitFor(() => backend.state.inflight === 1);
      upload.destroy();
      await waitFor(() => backend.state.inflight === 0);

      // Mid-download: ask for 200 MB, read a little, vanish.
      await new Promise<void>((resolve) => {
        const req = http.get(`${lb.url}/bytes?n=${200 * 1024 * 1024}`, { agent: false }, (res) => {
          let got = 0;
          res.on('data', (d: Buffer) => {
            got += d.length;
            if (got > 1024 * 1024) { req.destroy(); resolve(); }
          });
        });
        req.on('error', () => undefined);
      });
      await waitFor(() => backend.state.inflight === 0);
      assert.equal(lb.balancer.activeRequests, 0);
      assert.equal((await get(`${lb.url}/`)).status, 200);
    } finally {
      await lb.close();
      await Promise.all(backends.map((b) => b.close()));
    }
  });
});

describe('limits', () => {
  let backends: DemoBackend[];
  let lb: TestBalancer;

  test('maxConnectionsPerBackend queues the excess, then answers 503 after queueTimeout', async () => {
    backends = await startBackends(1);
    lb = await startBalancer({
      backends: backends.map(urlOf),
      healthCheck: { enabled: false },
      limits: { maxConnectionsPerBackend: 2, queueTimeout: '300ms' },
    });
    try {
      const slow = [get(`${lb.url}/delay?ms=1500`), get(`${lb.url}/delay?ms=1500`)];
      await waitFor(() => lb.balancer.pool.snapshot[0]!.state.inflight === 2);
      const queuedThenServed = get(`${lb.url}/delay?ms=1`);
      const rejected = await get(`${lb.url}/`);
      assert.equal(rejected.status, 503);
      assert.equal(rejected.headers['x-fulcrum-error'], 'FULCRUM_ERR_QUEUE_TIMEOUT');
      assert.equal(lb.balancer.pool.snapshot[0]!.state.inflight, 2, 'never more than the limit in flight');
      for (const r of await Promise.all(slow)) assert.equal(r.status, 200);
      // The request queued behind the slow ones either got a slot or timed out; it never exceeded the limit.
      assert.ok([200, 503].includes((await queuedThenServed).status));
    } finally {
      await lb.close();
      await Promise.all(backends.map((b) => b.close()));
    }
  });

  test('a queued request gets the slot freed by a finishing one', async () => {
    backends = await startBackends(1);
    lb = await startBalancer({ backends: backends.map(urlOf), healthCheck: { enabled: false }, limits: { maxConnectionsPerBackend: 1, queueTimeout: '5s' } });
    try {
      const first = get(`${lb.url}/delay?ms=300`);
      await waitFor(() => lb.balancer.pool.snapshot[0]!.state.inflight === 1);
      const second = await get(`${lb.url}/`);
      assert.equal(second.status, 200);
      assert.equal((await first).status, 200);
    } finally {
      await lb.close();
      await Promise.all(backends.map((b) => b.close()));
    }
  });

  test('request body limit: 413 by Content-Length and for chunked bodies', async () => {
    backends = await startBackends(1);
    lb = await startBalancer({ backends: backends.map(urlOf), healthCheck: { enabled: false }, limits: { maxBodySize: '1kb' } });
    try {
      const big = await new Promise<number>((resolve) => {
        const req = http.request(`${lb.url}/upload`, { method: 'POST', agent: false, headers: { 'content-length': 5000 } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
        req.on('error', () => resolve(0));
        req.end(Buffer.alloc(5000));
      });
      assert.equal(big, 413);
      const chunked = await new Promise<{ status: number; connection: string | undefined }>((resolve) => {
        const req = http.request(`${lb.url}/upload`, { method: 'POST', agent: false }, (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0, connection: res.headers.connection });
        });
        req.on('error', () => resolve({ status: 0, connection: undefined }));
        req.write(Buffer.alloc(800));
        req.write(Buffer.alloc(800));
        req.end();
      });
      assert.equal(chunked.status, 413);
      // The rest of the body is never read, so the connection must not be kept alive (it would stall).
      assert.equal(chunked.connection, 'close');
      assert.equal((backends[0]!.requests.get('/upload') ?? 0) <= 1, true, 'the Content-Length case never reached the backend');
      const small = await new Promise<number>((resolve) => {
        const req = http.request(`${lb.url}/upload`, { method: 'POST', agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
        req.end(Buffer.alloc(500));
      });
      assert.equal(small, 200);
    } finally {
      await lb.close();
      await Promise.all(backends.map((b) => b.close()));
    }
  });
});
