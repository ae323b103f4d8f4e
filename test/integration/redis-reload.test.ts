/** With the Redis store, a config reload keeps the run-time backend changes (they are re-applied over the file). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis } from '../helpers/redis.js';
import { startBalancer, waitFor } from '../helpers/balancer.js';
import { startCheckedBackend, uniquePrefix, clusterConfig } from './redis-helpers.js';

test('a reload re-applies run-time backend changes over the config file', async () => {
  const redis = await startRedis();
  const a = await startCheckedBackend();
  const b = await startCheckedBackend();
  const config = clusterConfig({ redisUrl: redis.url, keyPrefix: uniquePrefix('reload'), checker: 'one', backends: [a.url] });
  const lb = await startBalancer(config);
  try {
    await waitFor(() => lb.balancer.status().store !== undefined && (lb.balancer.status().store as { connected: boolean }).connected, 10_000);
    lb.balancer.ops.add({ url: b.url, weight: 3, healthy: true }, 'admin', 'test');
    lb.balancer.ops.setWeight(lb.balancer.pool.snapshot[0]!.id, 2, 'admin', 'test');
    const result = await lb.balancer.reload(config);
    assert.equal(result.ok, true);
    const urls = lb.balancer.pool.snapshot.map((x) => x.url.href).sort();
    assert.deepEqual(urls, [a.url, b.url].sort(), 'the backend added at run time is still there');
    assert.equal(lb.balancer.pool.snapshot.find((x) => x.url.href === a.url)!.weight, 2, 'the run-time weight is still there');
    assert.equal(lb.balancer.pool.snapshot.find((x) => x.url.href === b.url)!.weight, 3);
  } finally {
    await lb.close();
    await a.close();
    await b.close();
    await redis.close();
  }
});
