/**
 * /livez and /readyz, the probes an orchestrator uses: liveness does not
 * depend on backends (an outage must not restart every balancer), readiness
 * is 503 before the first state sync with Redis and while draining, so that
 * the endpoints are removed before the drain ends. /healthz keeps its meaning.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startBalancer, get, waitFor } from '../helpers/balancer.js';
import { freePort } from '../helpers/backends.js';
import { startRedis } from '../helpers/redis.js';

describe('probes', () => {
  test('every backend down: /healthz 503, /livez and /readyz 200', async () => {
    const dead = await freePort();
    const lb = await startBalancer({ backends: [`http://127.0.0.1:${dead}`], healthCheck: { interval: '50ms', unhealthyThreshold: 1 } });
    try {
      await waitFor(async () => (await get(`${lb.url}/healthz`)).status === 503, 3000);
      const live = await get(`${lb.url}/livez`);
      assert.equal(live.status, 200);
      assert.deepEqual(JSON.parse(live.body), { status: 'ok' });
      assert.equal((await get(`${lb.url}/readyz`)).status, 200);
    } finally {
      await lb.close();
    }
  });

  test('/readyz is 503 once draining has begun, /livez stays 200', async () => {
    const lb = await startBalancer({ backends: ['http://127.0.0.1:1'], healthCheck: { enabled: false } });
    try {
      assert.equal((await get(`${lb.url}/readyz`)).status, 200);
      // close() raises this flag before it closes the listeners; a probe asked in between sees it.
      lb.balancer.proxy.draining = true;
      const ready = await get(`${lb.url}/readyz`);
      assert.equal(ready.status, 503);
      assert.deepEqual(JSON.parse(ready.body), { status: 'unavailable', reasons: ['draining'] });
      assert.equal((await get(`${lb.url}/livez`)).status, 200);
    } finally {
      await lb.close();
    }
  });

  test('with redis, /readyz is 503 until the first state sync, then 200', async () => {
    const redis = await startRedis();
    if (redis.external) { await redis.close(); return; }
    await redis.stop();
    const lb = await startBalancer({ backends: ['http://127.0.0.1:1'], healthCheck: { enabled: false }, state: { store: 'redis', redis: { url: redis.url }, flushInterval: '100ms' } });
    try {
      const before = await get(`${lb.url}/readyz`);
      assert.equal(before.status, 503);
      assert.match(before.body, /first state sync with redis/);
      assert.equal((await get(`${lb.url}/livez`)).status, 200);
      await redis.start();
      await waitFor(async () => (await get(`${lb.url}/readyz`)).status === 200, 10_000, 100);
    } finally {
      await lb.close();
      await redis.close();
    }
  });
});
