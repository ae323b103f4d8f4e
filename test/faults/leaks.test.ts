/**
 * After thousands of aborted and failed requests, open file descriptors and
 * the heap return to their baseline (measured with /proc/self/fd and a
 * forced GC).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { startBackends, startRawServer, urlOf, freePort } from '../helpers/backends.js';
import { startBalancer, waitFor } from '../helpers/balancer.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const openFds = (): number => readdirSync('/proc/self/fd').length;

async function settle(): Promise<number> {
  for (let i = 0; i < 5; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  return process.memoryUsage().heapUsed;
}

test('no descriptors or memory leak after thousands of aborted and failed requests', { timeout: 120_000 }, async () => {
  const backends = await startBackends(1);
  const resetting = await startRawServer((s) => s.once('data', () => s.resetAndDestroy()));
  const deadPort = await freePort();
  const lb = await startBalancer({
    backends: [urlOf(backends[0]!), urlOf(resetting), `http://127.0.0.1:${deadPort}`],
    healthCheck: { enabled: false },
    outlierDetection: { enabled: false },
    retries: { attempts: 0 },
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const one = (i: number): Promise<void> => new Promise((resolve) => {
    if (i % 3 === 0) {
      // A client that aborts mid-response.
      const req = http.get(`${lb.url}/delay?ms=50`, { agent: false }, (res) => { res.resume(); });
      req.on('error', () => resolve());
      setTimeout(() => { req.destroy(); resolve(); }, 5);
      return;
    }
    if (i % 3 === 1) {
      // A raw client that sends half a request and leaves.
      const s = net.connect(lb.port, '127.0.0.1');
      s.on('error', () => undefined);
      s.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc');
      setTimeout(() => { s.destroy(); resolve(); }, 2);
      return;
    }
    // Ordinary requests spread over the healthy, resetting and dead backends: 200, 502, 502.
    http.get(`${lb.url}/`, { agent }, (res) => { res.resume(); res.on('end', () => resolve()); }).on('error', () => resolve());
  });
  const round = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i += 20) await Promise.all(Array.from({ length: 20 }, (_, k) => one(i + k)));
    await waitFor(() => lb.balancer.activeRequests === 0 && lb.balancer.pool.snapshot.every((b) => b.state.inflight === 0), 10_000);
  };
  try {
    await round(600); // warm-up: pools, JIT, lazily created structures
    const fdBase = openFds();
    const heapBase = await settle();
    await round(3000);
    await new Promise((r) => setTimeout(r, 200));
    const fdAfter = openFds();
    const heapAfter = await settle();
    assert.ok(fdAfter <= fdBase + 20, `file descriptors: ${fdBase} before, ${fdAfter} after`);
    assert.ok(heapAfter - heapBase < 8 * 1024 * 1024, `heap grew by ${((heapAfter - heapBase) / 1024 / 1024).toFixed(1)} MiB`);
  } finally {
    agent.destroy();
    await lb.close();
    await resetting.close();
    await Promise.all(backends.map((b) => b.close()));
  }
});
