/**
 * Redis behind Sentinel: two balancer instances follow the master through
 * a failover. The master is killed under steady load: no client request
 * fails, the cluster-wide counters are exact afterwards (a counter batch is
 * acknowledged only once a replica has it, and resent with its sequence
 * number otherwise), health verdicts and run-time backend changes are still
 * shared on the new master, and a global rate limit holds again once the
 * limiter is back (its onStoreError deciding only during the gap).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { get, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { startSentinel, type TestSentinel } from '../helpers/redis-topologies.js';
import { clusterConfig, startCheckedBackend, startLoad, status, uniquePrefix, type CheckedBackend, type Status } from './redis-helpers.js';

let sentinel: TestSentinel;
let backends: CheckedBackend[];
const running = new Set<TestBalancer>();

before(async () => {
  sentinel = await startSentinel(1);
  backends = [await startCheckedBackend(), await startCheckedBackend()];
});

after(async () => {
  await Promise.all([...running].map((b) => b.close()));
  await Promise.all(backends.map((b) => b.close()));
  await sentinel.close();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** LIMITED: a path with a small global limit; everything else is limited too, but far above the load. */
const LIMITED = '/limited';
const LIMIT = { rate: 5, burst: 5 };

async function startInstance(keyPrefix: string, checker: string, redis: Record<string, unknown>): Promise<TestBalancer> {
  const base = clusterConfig({ redisUrl: 'redis://unused', keyPrefix, checker, backends: backends.map((b) => b.url) });
  const lb = await startBalancer({
    ...base,
    state: { ...base.state, redis: { ...redis, keyPrefix } },
    rateLimit: {
      store: 'redis', rate: 100_000, per: '1s', onStoreError: 'allow', timeout: '500ms',
      overrides: [{ pathPrefix: LIMITED, rate: LIMIT.rate, burst: LIMIT.burst, per: '1s' }],
    },
  });
  running.add(lb);
  return lb;
}

type RateLimitStatus = { storeAvailable: boolean; storeErrors: number; storeOutages: number };
const rateLimitOf = (lb: TestBalancer): RateLimitStatus => lb.balancer.status().rateLimit as RateLimitStatus;
const both = async (lbs: TestBalancer[], check: (s: Status) => boolean): Promise<boolean> =>
  (await Promise.all(lbs.map((lb) => status(lb.url)))).every(check);

test('the master killed under load: no failed request, exact counters, shared health, changes and limits on the new master', async (t) => {
  const prefix = uniquePrefix('sentinel');
  const firstMaster = await sentinel.masterPort();
  // One instance from the environment's URL form, one from the file's sentinels + name.
  const lbs = [await startInstance(prefix, 'S1', { url: sentinel.url }), await startInstance(prefix, 'S2', sentinel.config)];
  await waitFor(() => both(lbs, (s) => s.store.connected && s.cluster.instances.length === 2), 10_000);
  for (const s of await Promise.all(lbs.map((lb) => status(lb.url)))) {
    assert.deepEqual({ ...s.store, unflushedRequests: 0 }, {
      type: 'redis', mode: 'sentinel', master: `127.0.0.1:${firstMaster}`, connected: true, degradedSince: null, unflushedRequests: 0,
    });
  }
  await waitFor(() => lbs.every((lb) => rateLimitOf(lb).storeAvailable && (lb.balancer.status().rateLimit as { storeConnected: boolean }).storeConnected), 10_000);

  const loads = lbs.map((lb) => startLoad(`${lb.url}/`, 4));
  await sleep(1500);
  const killed = await sentinel.killMaster();
  const sentAtKill = loads.reduce((n, l) => n + l.sent, 0);
  assert.equal(killed, firstMaster);

  // The gap: the limiter cannot reach Redis, so onStoreError (allow) decides: more than the limit gets through.
  await waitFor(() => !rateLimitOf(lbs[0]!).storeAvailable, 5000, 20);
  const gap = await Promise.all(Array.from({ length: LIMIT.burst * 2 }, () => get(`${lbs[0]!.url}${LIMITED}`)));
  const allowedInGap = gap.filter((r) => r.status === 200).length;
  // A backend change made in the gap reaches the other instance once Redis is back.
  const second = (lb: TestBalancer) => lb.balancer.pool.findByUrl(backends[1]!.url)!;
  lbs[0]!.balancer.ops.setWeight(second(lbs[0]!).id, 3, 'admin', 'test');
  const masterKnownDown = await sentinel.masterPort();
  assert.equal(masterKnownDown, killed, 'still in the gap: no replica promoted yet');
  assert.equal(allowedInGap, LIMIT.burst * 2, 'during the gap onStoreError: allow lets every request through');

  const newMaster = await sentinel.failedOver(killed);
  await waitFor(() => both(lbs, (s) => s.store.connected && (s.store as { master?: string }).master === `127.0.0.1:${newMaster}`), 15_000);
  const sentInGap = loads.reduce((n, l) => n + l.sent, 0) - sentAtKill;
  await waitFor(() => second(lbs[1]!).weight === 3, 5000);
  // Bounded: a few thousand requests, or 10 more seconds on a busy machine.
  const deadline = Date.now() + 10_000;
  while (loads.reduce((n, l) => n + l.sent, 0) < 2500 && Date.now() < deadline) await sleep(100);
  await Promise.all(loads.map((l) => l.stop()));
  const sent = loads.reduce((n, l) => n + l.sent, 0);
  for (const l of loads) assert.deepEqual(l.failed, [], 'no client request failed');
  assert.ok(sentInGap > 0, 'traffic went on through the failover');

  // Exact: every request of both instances counted once on the new master.
  let totals: number[] = [];
  await waitFor(async () => {
    const all = await Promise.all(lbs.map((lb) => status(lb.url)));
    totals = all.map((s) => s.instance.totalRequests);
    return all.every((s) => s.store.connected && s.store.unflushedRequests === 0 && s.cluster.totalRequests === totals[0]! + totals[1]!);
  }, 10_000).catch(async (err: unknown) => {
    const all = await Promise.all(lbs.map((lb) => status(lb.url)));
    throw new Error(`counters not exact: ${JSON.stringify(all.map((s) => ({ own: s.instance.totalRequests, cluster: s.cluster.totalRequests, store: s.store })))}`, { cause: err });
  });
  const after = await Promise.all(lbs.map((lb) => status(lb.url)));
  for (const s of after) {
    for (const b of s.backends) assert.equal(b.clusterRequests, after.reduce((n, x) => n + x.backends.find((y) => y.url === b.url)!.requests, 0));
  }
  t.diagnostic(`${sent} requests under load (${sentInGap} during the failover); master ${killed} -> ${newMaster}; cluster total ${totals[0]! + totals[1]!} = ${totals.join(' + ')}`);

  // Health verdicts: a failure seen by the lease holder reaches both instances, then the recovery.
  backends[1]!.fail(true);
  await waitFor(() => both(lbs, (s) => s.backends.find((b) => b.url === backends[1]!.url)!.reasons.includes('active-check-failed')), 10_000);
  backends[1]!.fail(false);
  await waitFor(() => both(lbs, (s) => s.backends.every((b) => b.healthy)), 10_000);

  // Run-time backend changes, both ways.
  const find = (lb: TestBalancer) => lb.balancer.pool.findByUrl(backends[0]!.url)!;
  lbs[0]!.balancer.ops.setWeight(find(lbs[0]!).id, 7, 'admin', 'test');
  await waitFor(() => find(lbs[1]!).weight === 7, 5000);
  lbs[1]!.balancer.ops.setWeight(find(lbs[1]!).id, 4, 'admin', 'test');
  await waitFor(() => find(lbs[0]!).weight === 4, 5000);

  // The global limit holds again, across both instances.
  await waitFor(() => lbs.every((lb) => rateLimitOf(lb).storeAvailable), 10_000);
  await sleep(1000); // the bucket refills
  const started = Date.now();
  let allowed = 0;
  const byInstance = [0, 0];
  for (let i = 0; i < 20; i++) {
    const res = await get(`${lbs[i % 2]!.url}${LIMITED}`);
    assert.ok(res.status === 200 || res.status === 429, `status ${res.status}`);
    if (res.status === 200) { allowed++; byInstance[i % 2]!++; }
  }
  const most = LIMIT.burst + (LIMIT.rate * (Date.now() - started)) / 1000 + 1;
  assert.ok(allowed >= LIMIT.burst && allowed <= most, `allowed ${allowed} of 20 (at most ${most.toFixed(1)})`);
  assert.ok(byInstance.every((n) => n > 0) && allowed < 20, JSON.stringify(byInstance));
  for (const lb of lbs) assert.ok(rateLimitOf(lb).storeOutages >= 1);
});
