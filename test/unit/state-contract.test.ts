/**
 * The StateStore contract, run against both implementations: the memory
 * store (several clients of one MemoryStateServer) and the Redis store
 * (several clients of one real Redis, each test under its own key prefix:
 * a single server, a 3-master Redis Cluster, and a master with a replica
 * behind three Sentinels). Each client plays one balancer instance.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MemoryStateServer, MemoryStore } from '../../src/state/memory.js';
import { RedisStore } from '../../src/state/redis.js';
import { emptyBackendCounters, emptyCounters, type BackendOverride, type CounterDelta, type SharedHealth, type StateStore } from '../../src/state/store.js';
import { Reason } from '../../src/backends/reasons.js';
import { startRedis } from '../helpers/redis.js';
import { startCluster, startSentinel } from '../helpers/redis-topologies.js';
import { redisTarget } from '../../src/state/redis-client.js';
import { redisSchema } from '../../src/config/schema.js';

type RedisConfigInput = Record<string, unknown>;
import { waitFor } from '../helpers/balancer.js';

interface Harness {
  /** cluster returns a function making clients ("instances") that share one store. */
  cluster(): (id: string) => Promise<StateStore>;
  close(): Promise<void>;
}

const PROBE = 'http://probe.invalid/';

const U1 = 'http://127.0.0.1:8081/';
const U2 = 'http://127.0.0.1:8082/';

function delta(total: number, perBackend: Record<string, { requests: number; failures?: number; ok?: number; errors?: number }>): CounterDelta {
  const d = emptyCounters();
  d.total = total;
  for (const [url, c] of Object.entries(perBackend)) {
    const b = emptyBackendCounters();
    b.requests = c.requests;
    b.failures = c.failures ?? 0;
    b.responses['2xx'] = c.ok ?? 0;
    b.responses['5xx'] = c.errors ?? 0;
    d.backends.set(url, b);
  }
  return d;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function contract(name: string, start: () => Promise<Harness>): void {
  describe(`StateStore contract: ${name}`, () => {
    const open: StateStore[] = [];
    let harness: Harness;
    before(async () => { harness = await start(); });
    const make = async (): Promise<(id: string) => Promise<StateStore>> => {
      const connect = harness.cluster();
      return async (id) => {
        const store = await connect(id);
        open.push(store);
        return store;
      };
    };
    /** overrideListener: two instances, b recording the backend overrides it hears, subscriptions in place. */
    const overrideListener = async (): Promise<{ a: StateStore; b: StateStore; atB: BackendOverride[] }> => {
      const connect = await make();
      const a = await connect('a');
      const b = await connect('b');
      const atB: BackendOverride[] = [];
      b.onBackend((o) => atB.push(o));
      await waitForSubscriptions(a, b);
      return { a, b, atB };
    };
    after(async () => {
      await Promise.all(open.map((s) => s.close()));
      await harness?.close();
    });

    test('counters flushed by several instances add up, per backend and status class', async () => {
      const connect = await make();
      const a = await connect('a');
      const b = await connect('b');
      await a.flushCounters(1, delta(10, { [U1]: { requests: 7, ok: 6, errors: 1, failures: 2 }, [U2]: { requests: 3, ok: 3 } }));
      const after = await b.flushCounters(1, delta(5, { [U1]: { requests: 5, ok: 5 } }));
      assert.equal(after.total, 15);
      assert.equal(after.backends.get(U1)?.requests, 12);
      assert.equal(after.backends.get(U1)?.failures, 2);
      assert.equal(after.backends.get(U1)?.responses['2xx'], 11);
      assert.equal(after.backends.get(U1)?.responses['5xx'], 1);
      assert.equal(after.backends.get(U2)?.requests, 3);
      const read = await a.readCounters();
      assert.equal(read.total, 15);
      assert.deepEqual(read.backends.get(U2)?.responses, { '1xx': 0, '2xx': 3, '3xx': 0, '4xx': 0, '5xx': 0 });
    });

    test('a batch resent with the same sequence number is applied once', async () => {
      const connect = await make();
      const a = await connect('a');
      await a.flushCounters(1, delta(4, { [U1]: { requests: 4 } }));
      const again = await a.flushCounters(1, delta(4, { [U1]: { requests: 4 } }));
      assert.equal(again.total, 4, 'the resent batch added nothing');
      const next = await a.flushCounters(2, delta(1, {}));
      assert.equal(next.total, 5);
      assert.equal(next.backends.get(U1)?.requests, 4);
      // Another instance's sequence numbers are its own.
      const b = await connect('b');
      assert.equal((await b.flushCounters(1, delta(2, {}))).total, 7);
    });

    test('an empty flush reads the counters without changing them', async () => {
      const connect = await make();
      const a = await connect('a');
      assert.equal((await a.readCounters()).total, 0);
      await a.flushCounters(1, delta(3, {}));
      const b = await connect('b');
      assert.equal((await b.flushCounters(1, emptyCounters())).total, 3);
    });

    test('heartbeats list the live instances; leaving or missing the TTL drops one', async () => {
      const connect = await make();
      const a = await connect('a');
      const b = await connect('b');
      await a.heartbeat(5000);
      const live = await b.heartbeat(5000);
      assert.deepEqual(live.map((i) => i.id).sort(), ['a', 'b']);
      assert.ok(live.every((i) => Math.abs(i.lastSeen - Date.now()) < 60_000), 'lastSeen is a current epoch-ms time');
      await b.leave();
      assert.deepEqual((await a.heartbeat(5000)).map((i) => i.id), ['a']);
      await b.heartbeat(5000);
      await sleep(250);
      // a's last beat is 250ms old: with a 200ms TTL it is gone.
      assert.deepEqual((await b.heartbeat(200)).map((i) => i.id), ['b']);
    });

    test('one lease holder at a time; renewal, release and expiry', async () => {
      const connect = await make();
      const a = await connect('a');
      const b = await connect('b');
      assert.equal(await a.acquireLease('health', 5000), true);
      assert.equal(await b.acquireLease('health', 5000), false);
      assert.equal(await a.acquireLease('health', 5000), true, 'the holder renews');
      assert.equal(await b.acquireLease('other', 5000), true, 'leases are independent by name');
      await b.releaseLease('health'); // not the holder: no effect
      assert.equal(await b.acquireLease('health', 5000), false);
      await a.releaseLease('health');
      assert.equal(await b.acquireLease('health', 300), true, 'released: another takes it');
      assert.equal(await a.acquireLease('health', 300), false);
      await sleep(450);
      assert.equal(await a.acquireLease('health', 5000), true, 'expired: another takes it');
    });

    test('keyed values: what one instance sets every instance reads; delete and expiry', async () => {
      const connect = await make();
      const a = await connect('a');
      const b = await connect('b');
      assert.equal(await b.getValue('acme:cert:x'), null);
      await a.setValue('acme:cert:x', '{"pem":"..."}');
      assert.equal(await b.getValue('acme:cert:x'), '{"pem":"..."}');
      await b.setValue('acme:cert:x', 'second');
      assert.equal(await a.getValue('acme:cert:x'), 'second', 'the last write wins');
      await a.deleteValue('acme:cert:x');
      assert.equal(await b.getValue('acme:cert:x'), null);
      await a.setValue('acme:challenge:t', 'key-authorization', 200);
      assert.equal(await b.getValue('acme:challenge:t'), 'key-authorization');
      await sleep(350);
      assert.equal(await b.getValue('acme:challenge:t'), null, 'expired');
    });

    test('health is delivered to the other instances (not back to the publisher) and stored', async () => {
      const connect = await make();
      const a = await connect('a');
      const b = await connect('b');
      const c = await connect('c');
      const atB: SharedHealth[] = [];
      const atA: SharedHealth[] = [];
      const atC: SharedHealth[] = [];
      const real = (list: SharedHealth[]) => (h: SharedHealth): void => { if (h.url !== PROBE) list.push(h); };
      b.onHealth(real(atB));
      a.onHealth(real(atA));
      const offC = c.onHealth(real(atC));
      offC();
      await waitForSubscriptions(a, b);
      const h: SharedHealth = { service: 'default', url: U1, reasons: Reason.ACTIVE_CHECK_FAILED, lastCheck: 1_700_000_000_000, lastCheckOk: false, lastCheckError: 'status 503', since: 1_699_999_999_000, by: 'a' };
      await a.publishHealth(h);
      await waitFor(() => atB.length === 1, 5000);
      assert.deepEqual(atB[0], h);
      await sleep(50);
      assert.equal(atA.length, 0, 'the publisher does not hear itself');
      assert.equal(atC.length, 0, 'an unsubscribed listener hears nothing');
      await a.publishHealth({ ...h, url: U2, reasons: 0, lastCheckOk: true, lastCheckError: null });
      const stored = (await c.readHealth()).filter((x) => x.url !== PROBE);
      assert.deepEqual(stored.sort((x, y) => x.url.localeCompare(y.url)), [h, { ...h, url: U2, reasons: 0, lastCheckOk: true, lastCheckError: null }]);
    });

    test('backend overrides are delivered and stored, the last write per URL kept', async () => {
      const { a, b, atB } = await overrideListener();
      const o: BackendOverride = { service: 'default', url: U2, present: true, config: { url: U2, weight: 3, timeouts: { connect: '250ms' } }, weight: null, state: 'draining', drain: false, at: 1, by: 'a' };
      await a.publishBackend(o);
      await a.publishBackend({ ...o, weight: 7, at: 2 });
      await waitFor(() => atB.length === 2, 5000);
      assert.deepEqual(atB, [o, { ...o, weight: 7, at: 2 }]);
      assert.deepEqual(await b.readBackends(), [{ ...o, weight: 7, at: 2 }]);
    });

    test('one URL in two services is two entries: health and overrides are kept per service', async () => {
      const { a, b, atB } = await overrideListener();
      const web: SharedHealth = { service: 'web', url: U1, reasons: 0, lastCheck: 1, lastCheckOk: true, lastCheckError: null, since: 1, by: 'a' };
      const api: SharedHealth = { ...web, service: 'api', reasons: Reason.ACTIVE_CHECK_FAILED, lastCheckOk: false, lastCheckError: 'status 503' };
      const dflt: SharedHealth = { ...web, service: 'default' };
      await a.publishHealth(web);
      await a.publishHealth(api);
      await a.publishHealth(dflt);
      const bySvc = (x: { service: string }, y: { service: string }): number => x.service.localeCompare(y.service);
      assert.deepEqual((await b.readHealth()).filter((x) => x.url !== PROBE).sort(bySvc), [api, dflt, web]);
      const o: BackendOverride = { service: 'api', url: U1, present: true, config: null, weight: 4, state: null, drain: false, at: 1, by: 'a' };
      await a.publishBackend(o);
      await a.publishBackend({ ...o, service: 'web', weight: 9 });
      await waitFor(() => atB.length === 2, 5000);
      assert.deepEqual(atB, [o, { ...o, service: 'web', weight: 9 }]);
      assert.deepEqual((await b.readBackends()).sort(bySvc), [o, { ...o, service: 'web', weight: 9 }]);
    });
  });
}

/**
 * waitForSubscriptions: a Redis subscriber connects asynchronously, so the
 * test probes with health messages on a throw-away URL until one arrives.
 */
async function waitForSubscriptions(publisher: StateStore, subscriber: StateStore): Promise<void> {
  let heard = false;
  const off = subscriber.onHealth((h) => { if (h.url === PROBE) heard = true; });
  const probe: SharedHealth = { service: 'default', url: PROBE, reasons: 0, lastCheck: null, lastCheckOk: null, lastCheckError: null, since: 0, by: publisher.instanceId };
  await waitFor(async () => {
    await publisher.publishHealth(probe);
    await sleep(20);
    return heard;
  }, 5000);
  off();
}

contract('memory', async () => ({
  cluster: () => {
    const server = new MemoryStateServer();
    return async (id) => new MemoryStore(id, server);
  },
  close: async () => undefined,
}));

/** redisContract runs the contract on a Redis deployment of any mode (each test under its own key prefix). */
function redisContract(name: string, deploy: () => Promise<{ config: RedisConfigInput; close(): Promise<void> }>): void {
  contract(name, async () => {
    const redis = await deploy();
    return {
      cluster: () => {
        const keyPrefix = `contract-${randomBytes(4).toString('hex')}:`;
        const target = redisTarget(redisSchema.parse({ ...redis.config, keyPrefix }));
        return async (id) => {
          const store = new RedisStore({ target, keyPrefix, instanceId: id });
          await waitFor(() => store.state === 'ready', 5000);
          return store;
        };
      },
      close: () => redis.close(),
    };
  });
}

redisContract('redis', startRedis);
redisContract('redis cluster (3 masters, sharded pub/sub)', () => startCluster(3));
redisContract('redis sentinel (master, replica, 3 sentinels)', () => startSentinel(1));
