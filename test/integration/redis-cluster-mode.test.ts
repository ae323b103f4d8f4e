/**
 * The Redis store and the rate limiter on a 3-master Redis Cluster: the key
 * layout agrees with the cluster's own CLUSTER KEYSLOT, pub/sub is sharded
 * (on Redis 7+), /status shows the topology, and moving slots (the shared
 * state's and a rate-limit bucket's) while two instances serve steady load
 * fails no request and loses no count. (The StateStore contract and the
 * rate-limit tests also run on a cluster: state-contract.test.ts,
 * ratelimit-redis.test.ts.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { command, keySlot, startCluster, type TestCluster } from '../helpers/redis-topologies.js';
import { stateKeys } from '../../src/state/redis-keys.js';
import { clusterConfig, startCheckedBackend, startLoad, status, uniquePrefix, type CheckedBackend, type Status } from './redis-helpers.js';

let cluster: TestCluster;
let backend: CheckedBackend;
const running = new Set<TestBalancer>();

before(async () => {
  cluster = await startCluster(3);
  backend = await startCheckedBackend();
});

after(async () => {
  await Promise.all([...running].map((b) => b.close()));
  await backend.close();
  await cluster.close();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const ports = (): number[] => cluster.nodes.map((n) => n.port);

async function startInstance(keyPrefix: string, checker: string, rateLimit = false): Promise<TestBalancer> {
  const base = clusterConfig({ redisUrl: 'redis://unused', keyPrefix, checker, backends: [backend.url] });
  const lb = await startBalancer({
    ...base,
    state: { ...base.state, redis: { ...cluster.config, keyPrefix } },
    // deny: a decision that fails (a slot being moved) would show as a failed request.
    ...(rateLimit ? { rateLimit: { store: 'redis' as const, rate: 100_000, per: '1s', onStoreError: 'deny' as const, timeout: '1s' } } : {}),
  });
  running.add(lb);
  return lb;
}

const every = async (lbs: TestBalancer[], check: (s: Status) => boolean): Promise<boolean> =>
  (await Promise.all(lbs.map((lb) => status(lb.url)))).every(check);

/** keysOf lists the keys matching a pattern on every master. */
async function keysOf(pattern: string): Promise<string[]> {
  return (await Promise.all(ports().map((p) => command(p, 'KEYS', pattern) as Promise<string[]>))).flat();
}

test('the key layout agrees with CLUSTER KEYSLOT; every state key of a prefix is in one slot', async () => {
  const keys = stateKeys('fulcrum:', 'web-1-42-abcdef', 'cluster');
  const names = [keys.counters, keys.flushed, keys.instances, keys.lease('health'), keys.health, keys.backends, keys.events, keys.value('acme:cert:a.com'), 'fulcrum:ratelimit:{*:tb:10:1000:10:ip:10.0.0.7}', '123456789'];
  for (const name of names) assert.equal(Number(await command(ports()[0]!, 'CLUSTER', 'KEYSLOT', name)), keySlot(name), name);
  assert.equal(new Set(names.slice(0, 8).map(keySlot)).size, 1);
});

test('two instances: /status shows the cluster, counters add up, pub/sub is sharded', async () => {
  const prefix = uniquePrefix('cl');
  const lbs = [await startInstance(prefix, 'C1'), await startInstance(prefix, 'C2')];
  await waitFor(() => every(lbs, (s) => s.store.connected && s.cluster.instances.length === 2), 10_000);
  for (const s of await Promise.all(lbs.map((lb) => status(lb.url)))) {
    assert.deepEqual({ ...s.store, unflushedRequests: 0 }, { type: 'redis', mode: 'cluster', nodes: 3, connected: true, degradedSince: null, unflushedRequests: 0 });
  }
  const events = stateKeys(prefix, '', 'cluster').events;
  const owner = await cluster.nodeOf(keySlot(events));
  await waitFor(async () => ((await command(owner, 'PUBSUB', 'SHARDNUMSUB', events)) as [string, number])[1] === 2, 5000);
  assert.deepEqual(await command(owner, 'PUBSUB', 'NUMSUB', events), [events, 0], 'no classic subscription');
  // Every key the instances wrote is in the prefix's slot, on its owner.
  const written = await keysOf(`{${prefix}}*`);
  assert.ok(written.length >= 3, written.join(', '));
  assert.ok(written.every((k) => keySlot(k) === keySlot(events)));
  assert.equal(((await command(owner, 'KEYS', `{${prefix}}*`)) as string[]).length, written.length, 'all on the owner of the slot');
  for (const lb of lbs) await lb.close();
  lbs.forEach((lb) => running.delete(lb));
});

test('slots moved during load (the shared state and a rate-limit bucket): no failed request, exact counters', async (t) => {
  const prefix = uniquePrefix('reshard');
  const lbs = [await startInstance(prefix, 'R1', true), await startInstance(prefix, 'R2', true)];
  await waitFor(() => every(lbs, (s) => s.store.connected && s.cluster.instances.length === 2), 10_000);
  const loads = lbs.map((lb) => startLoad(`${lb.url}/`, 3));
  await sleep(800);
  const bucket = (await keysOf(`${prefix}ratelimit:*`))[0];
  assert.ok(bucket !== undefined, 'the limiter wrote its bucket');
  const stateSlot = keySlot(stateKeys(prefix, '', 'cluster').counters);
  const moves: string[] = [];
  for (const slot of [stateSlot, keySlot(bucket)]) {
    const from = await cluster.nodeOf(slot);
    // A pause between keys keeps the slot half-moved (MIGRATING/IMPORTING: ASK redirections) for a while.
    const to = await cluster.moveSlot(slot, 150);
    assert.equal(await cluster.nodeOf(slot), to);
    moves.push(`slot ${slot}: ${from} -> ${to}`);
    await sleep(500);
  }
  await sleep(800);
  await Promise.all(loads.map((l) => l.stop()));
  const sent = loads.reduce((n, l) => n + l.sent, 0);
  for (const l of loads) assert.deepEqual(l.failed, [], 'no client request failed');
  let totals: number[] = [];
  await waitFor(async () => {
    const all = await Promise.all(lbs.map((lb) => status(lb.url)));
    totals = all.map((s) => s.instance.totalRequests);
    return all.every((s) => s.store.connected && s.store.unflushedRequests === 0 && s.cluster.totalRequests === totals[0]! + totals[1]!);
  }, 10_000);
  const errors = lbs.map((lb) => (lb.balancer.status().rateLimit as { storeErrors: number }).storeErrors);
  assert.deepEqual(errors, [0, 0], 'every rate-limit decision was made');
  t.diagnostic(`${sent} requests; ${moves.join('; ')}; cluster total ${totals.join(' + ')}`);
});
