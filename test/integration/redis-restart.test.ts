/**
 * Restart persistence, as documented in docs/redis.md: after every
 * instance stops and new ones start, the cluster counters (/status
 * `cluster`, per-backend `clusterRequests`, /metrics
 * `cluster_total_requests`) carry on from before while each new instance's
 * own counters start at 0; the health verdicts and the run-time backend
 * changes stored in Redis are applied again.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { get, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { clusterConfig, metricsJson, startCheckedBackend, status, uniquePrefix, type CheckedBackend } from './redis-helpers.js';

let redis: TestRedis;
let backends: CheckedBackend[];
const running = new Set<TestBalancer>();

before(async () => {
  redis = await startRedis();
  backends = [await startCheckedBackend(), await startCheckedBackend()];
});

after(async () => {
  await Promise.all([...running].map((b) => b.close()));
  await Promise.all(backends.map((b) => b.close()));
  await redis.close();
});

async function send(lb: TestBalancer, n: number): Promise<void> {
  for (let i = 0; i < n; i++) assert.equal((await get(lb.url)).status, 200);
}

test('counters, health and run-time backend changes survive restarting every instance', async () => {
  const prefix = uniquePrefix('restart');
  const [b1, b2] = [backends[0]!, backends[1]!];
  const urls = [b1.url, b2.url];
  const start = async (checker: string, health?: { interval: string; healthyThreshold: number; unhealthyThreshold: number }): Promise<TestBalancer> => {
    const lb = await startBalancer(clusterConfig({ redisUrl: redis.url, keyPrefix: prefix, checker, backends: urls, ...(health === undefined ? {} : { healthCheck: health }) }));
    running.add(lb);
    return lb;
  };
  const stop = async (lb: TestBalancer): Promise<void> => {
    await lb.close();
    running.delete(lb);
  };

  // Before: two instances, traffic, a failing backend, a weight changed at run time.
  const first = [await start('A'), await start('B')];
  await waitFor(async () => (await Promise.all(first.map((lb) => status(lb.url)))).every((s) => s.store.connected && s.cluster.instances.length === 2), 10_000);
  await send(first[0]!, 10);
  await send(first[1]!, 6);
  b2.fail(true);
  const b1Id = first[0]!.balancer.pool.findByUrl(b1.url)!.id;
  first[0]!.balancer.ops.setWeight(b1Id, 4, 'admin', 'test');
  await waitFor(async () => (await Promise.all(first.map((lb) => status(lb.url)))).every((s) =>
    s.cluster.totalRequests === 16
    && s.backends.find((b) => b.url === b2.url)!.healthy === false
    && s.backends.find((b) => b.url === b1.url)!.weight === 4), 10_000);
  const before = await status(first[1]!.url);
  const clusterByUrl = new Map(before.backends.map((b) => [b.url, b.clusterRequests]));
  for (const lb of first) await stop(lb);

  // After: new instances whose checks cannot flip anything during the test (at most two checks, threshold 3),
  // so whatever health they show comes from Redis.
  const slowChecks = { interval: '1h', healthyThreshold: 3, unhealthyThreshold: 3 };
  const second = [await start('C', slowChecks), await start('D', slowChecks)];
  await waitFor(async () => (await Promise.all(second.map((lb) => status(lb.url)))).every((s) => s.store.connected && s.cluster.totalRequests === 16), 10_000);
  for (const lb of second) {
    const s = await status(lb.url);
    assert.equal(s.instance.totalRequests, 0, "an instance's own counters start at 0");
    assert.equal(s.totalRequests, 0);
    assert.equal(s.cluster.totalRequests, 16, 'the cluster total carries on');
    for (const b of s.backends) assert.equal(b.clusterRequests, clusterByUrl.get(b.url));
    const down = s.backends.find((b) => b.url === b2.url)!;
    assert.equal(down.healthy, false, 'the stored verdict is applied');
    assert.deepEqual(down.reasons, ['active-check-failed']);
    assert.equal(down.lastCheckOk, false);
    assert.equal(down.lastCheckError, 'status 503');
    assert.equal(s.backends.find((b) => b.url === b1.url)!.healthy, true);
    assert.equal(s.backends.find((b) => b.url === b1.url)!.weight, 4, 'the run-time weight is re-applied');
    const m = await metricsJson(lb.url);
    assert.equal(m.total_requests, 0);
    assert.equal(m.cluster_total_requests, 16);
  }
  // Traffic goes to the healthy backend only, and the cluster total goes on from 16.
  await send(second[0]!, 4);
  assert.equal(second[0]!.balancer.metrics.byBackend.get(second[0]!.balancer.pool.findByUrl(b2.url)!.id)?.requests ?? 0, 0);
  await waitFor(async () => (await status(second[1]!.url)).cluster.totalRequests === 20, 10_000);
  b2.fail(false);
  for (const lb of second) await stop(lb);
});
