/**
 * Redis failures never take traffic down. Unreachable at start: the
 * balancer serves, checks health itself, and joins once Redis is there.
 * Killed under steady load: no failed request, one logged loss per
 * instance, and every request counted during the outage reaches the shared
 * counters once Redis is back.
 *
 * The test redis-server keeps nothing on disk, so a restarted server
 * starts empty: the documented behaviour asserted here is that each
 * instance re-flushes everything Redis had not acknowledged before it died
 * (so the restarted server holds exactly the requests counted since the
 * last acknowledged flush before the kill).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { get, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { clusterConfig, memoryLogger, startCheckedBackend, startLoad, status, uniquePrefix, WARN, type CheckedBackend, type MemoryLog } from './redis-helpers.js';

let redis: TestRedis;
let backend: CheckedBackend;
const running = new Set<TestBalancer>();

before(async () => {
  redis = await startRedis();
  backend = await startCheckedBackend();
});

after(async () => {
  await Promise.all([...running].map((b) => b.close()));
  await backend.close();
  await redis.close();
});

async function startInstance(keyPrefix: string, checker: string, log: MemoryLog): Promise<TestBalancer> {
  const lb = await startBalancer(clusterConfig({ redisUrl: redis.url, keyPrefix, checker, backends: [backend.url] }), { logger: log.logger });
  running.add(lb);
  return lb;
}

/** stateWarnings: the lines the state store logged at warn level or above. */
const stateWarnings = (log: MemoryLog) => log.lines.filter((l) => l.component === 'state' && Number(l.level) >= WARN);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const prometheus = async (url: string): Promise<string> => (await get(`${url}/metrics`, { headers: { accept: 'text/plain' } })).body;

test('Redis unreachable at start: the balancer serves, checks health itself, logs once, and joins when Redis comes', async (t) => {
  if (redis.external) { t.skip('REDIS_URL: cannot stop a server the suite did not start'); return; }
  await redis.stop();
  const log = memoryLogger();
  const lb = await startInstance(uniquePrefix('start'), 'LONER', log);
  for (let i = 0; i < 5; i++) assert.equal((await get(lb.url)).status, 200);
  await waitFor(async () => (await status(lb.url)).store.degradedSince !== null, 5000);
  const s = await status(lb.url);
  assert.equal(s.store.connected, false);
  assert.equal(s.store.unflushedRequests, 5);
  assert.match(await prometheus(lb.url), /^fulcrum_state_store_degraded\{store="redis"\} 1$/m, 'the alert\'s gauge shows the outage');
  // Without the store there is no lease to wait for: the instance checks for itself.
  await waitFor(() => (backend.checks.get('LONER') ?? 0) > 0, 5000);
  await sleep(2500); // a few reconnection attempts
  assert.equal(stateWarnings(log).length, 1, 'the loss is logged once, not per attempt');

  await redis.start();
  await waitFor(async () => {
    const now = await status(lb.url);
    return now.store.connected && now.cluster.totalRequests === 5 && now.store.unflushedRequests === 0;
  }, 10_000);
  assert.equal((await status(lb.url)).store.degradedSince, null);
  assert.match(await prometheus(lb.url), /^fulcrum_state_store_degraded\{store="redis"\} 0$/m);
  assert.equal(stateWarnings(log).length, 1);
  await lb.close();
  running.delete(lb);
});

test('Redis killed under steady load: no failed request, one logged loss, the outage counted once it is back', async (t) => {
  if (redis.external) { t.skip('REDIS_URL: cannot kill a server the suite did not start'); return; }
  const prefix = uniquePrefix('outage');
  const logs = [memoryLogger(), memoryLogger()];
  const lbs = [await startInstance(prefix, 'X', logs[0]!), await startInstance(prefix, 'Y', logs[1]!)];
  await waitFor(async () => (await Promise.all(lbs.map((lb) => status(lb.url)))).every((s) => s.store.connected && s.cluster.instances.length === 2), 10_000);
  const loads = lbs.map((lb) => startLoad(`${lb.url}/`, 2));
  await sleep(600);

  await redis.stop();
  const sentAtKill = loads.reduce((n, l) => n + l.sent, 0);
  await waitFor(async () => (await Promise.all(lbs.map((lb) => status(lb.url)))).every((s) => s.store.degradedSince !== null), 10_000);
  // Acknowledged before the kill: those counts died with the server (it keeps nothing on disk).
  const outageStatus = await Promise.all(lbs.map((lb) => status(lb.url)));
  const acknowledged = outageStatus.map((s) => s.instance.totalRequests - s.store.unflushedRequests);
  await sleep(1000);
  const sentInOutage = loads.reduce((n, l) => n + l.sent, 0) - sentAtKill;

  await redis.start();
  await sleep(800);
  await Promise.all(loads.map((l) => l.stop()));
  for (const l of loads) assert.deepEqual(l.failed, [], 'no client request failed');
  assert.ok(sentInOutage > 0, 'traffic went on during the outage');

  const totals = (await Promise.all(lbs.map((lb) => status(lb.url)))).map((s) => s.instance.totalRequests);
  const expected = totals[0]! - acknowledged[0]! + totals[1]! - acknowledged[1]!;
  assert.ok(expected >= sentInOutage);
  t.diagnostic(`requests: ${totals.join(' + ')}; acknowledged before the kill: ${acknowledged.join(' + ')}; sent during the outage: ${sentInOutage}; expected after it: ${expected}`);
  await waitFor(async () => {
    const all = await Promise.all(lbs.map((lb) => status(lb.url)));
    return all.every((s) => s.store.connected && s.store.unflushedRequests === 0 && s.cluster.totalRequests === expected);
  }, 10_000);
  for (const log of logs) {
    const warnings = stateWarnings(log);
    assert.equal(warnings.length, 1, 'one logged loss per instance');
    assert.match(String(warnings[0]!.msg), /state store unavailable/);
    assert.equal(log.lines.filter((l) => l.component === 'state' && /available again/.test(String(l.msg))).length, 1);
  }
  for (const lb of lbs) {
    await lb.close();
    running.delete(lb);
  }
});
