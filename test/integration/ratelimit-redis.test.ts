/**
 * The Redis rate limiter, on a single server and on a 3-master Redis
 * Cluster (the same tests, parameterized by deployment): identical decisions
 * to the memory store, one global limit across instances, outages, a slow
 * server, and a server unreachable at start.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createMemoryStore } from '../../src/ratelimit/algorithm.js';
import { RedisStore } from '../../src/ratelimit/redis-store.js';
import { StoreHealth } from '../../src/ratelimit/store-health.js';
import { Decision, type RateLimitPolicy } from '../../src/ratelimit/types.js';
import { freePort, startBackends, urlOf, type DemoBackend } from '../helpers/backends.js';
import { get, silentLogger, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startCluster, type TestCluster } from '../helpers/redis-topologies.js';
import { newRedisClient, redisTarget } from '../../src/state/redis-client.js';
import { redisSchema } from '../../src/config/schema.js';
import type { Logger } from '../../src/observe/log.js';

/** lcg is a seeded generator, so that "random" sequences are the same on every run. */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

/** capturedLogger returns a logger and the messages it wrote. */
function capturedLogger(): { logger: Logger; messages: string[] } {
  const messages: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') messages.push((JSON.parse(line) as { msg: string }).msg);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink) as Logger, messages };
}

const count = (messages: string[], prefix: string): number => messages.filter((m) => m.startsWith(prefix)).length;

/** Deployment: a Redis of either mode the suite runs against, with its server ports (to block them). */
type Deployment = (TestRedis | TestCluster) & { readonly ports: number[] };

const deployments: [string, () => Promise<Deployment>][] = [
  ['a single server', async () => { const r = await startRedis(); return Object.assign(r, { ports: [r.port] }); }],
  ['a 3-master Redis Cluster', async () => { const c = await startCluster(3); return Object.assign(c, { ports: c.nodes.map((n) => n.port) }); }],
];

for (const [where, deploy] of deployments) describe(`rate limiting with the Redis store, on ${where}`, () => {
  let redis: Deployment;
  let backend: DemoBackend;
  const balancers: TestBalancer[] = [];
  const start = async (rateLimit: Record<string, unknown>, keyPrefix: string, logger = silentLogger()): Promise<TestBalancer> => {
    const lb = await startBalancer({
      backends: [urlOf(backend)], healthCheck: { enabled: false },
      state: { redis: { ...redis.config, keyPrefix } },
      rateLimit: { store: 'redis', ...rateLimit } as never,
    }, { logger });
    balancers.push(lb);
    return lb;
  };
  /** connected waits until the balancer's limiter has its Redis connection. */
  const connected = (lb: TestBalancer): Promise<void> =>
    waitFor(() => (lb.balancer.status().rateLimit as { storeConnected: boolean }).storeConnected, 10_000);

  before(async () => {
    redis = await deploy();
    [backend] = await startBackends(1);
  });
  after(async () => {
    for (const lb of balancers) await lb.close();
    await backend.close();
    await redis.close();
  });

  const policies: RateLimitPolicy[] = [
    { algorithm: 'token-bucket', rate: 10, per: 1000, burst: 5 },
    { algorithm: 'token-bucket', rate: 3, per: 1000, burst: 2 },
    { algorithm: 'sliding-window', rate: 4, per: 500, burst: 4 },
    { algorithm: 'sliding-window', rate: 7, per: 1000, burst: 7 },
  ];
  for (const policy of policies) {
    test(`memory and Redis make identical decisions (${policy.algorithm} ${policy.rate}/${policy.per}ms)`, async () => {
      let now = 1_700_000_000_123;
      const health = new StoreHealth(silentLogger(), 'allow');
      const shared = new RedisStore({ target: redisTarget(redisSchema.parse(redis.config)), keyPrefix: `cmp${policy.algorithm}${policy.rate}:`, timeout: 2000, health, clock: () => now });
      const memory = createMemoryStore(policy, 1000);
      const local = new Decision();
      const rand = lcg(policy.rate * 31 + policy.per);
      let allowed = 0;
      try {
        for (let i = 0; i < 400; i++) {
          // Bursts a few ms apart, and now and then a pause longer than a window.
          now += rand() < 0.04 ? 300 + Math.floor(rand() * 1500) : Math.floor(rand() * 40);
          const key = `client${Math.floor(rand() * 3)}`;
          memory.decide(key, now, local);
          const remote = await shared.decide(policy, shared.keyOf('s', key));
          assert.deepEqual({ ...remote }, { ...local }, `decision ${i} (key ${key}, t=${now})`);
          if (local.allowed) allowed++;
        }
        assert.ok(allowed > 40 && allowed < 360, `allowed ${allowed} of 400: the sequence must exercise both outcomes`);
        // Keys carry a TTL.
        const probe = newRedisClient(redisTarget(redisSchema.parse(redis.config)), {});
        const ttl = await probe.pttl(shared.keyOf('s', 'client0'));
        await probe.quit();
        assert.ok(ttl > 0, `pttl ${ttl}`);
        assert.equal(health.errors, 0);
      } finally {
        memory.close();
        await shared.close();
      }
    });
  }

  test('two instances sharing Redis enforce one global limit', async (t) => {
    const rate = 20;
    const burst = 10;
    // A generous timeout: this test is about counting, not about a slow Redis.
    const config = { rate, per: '1s', burst, timeout: '2s' };
    const a = await start(config, 'global:');
    const b = await start(config, 'global:');
    await connected(a);
    await connected(b);
    const byInstance = [{ allowed: 0, rejected: 0 }, { allowed: 0, rejected: 0 }];
    const durationMs = 2000;
    const startedAt = Date.now();
    // Every decision falls between the first request's start and the last one's end,
    // and at least between the first one's end and the last one's start.
    let firstEnd = 0;
    let lastStart = 0;
    let lastEnd = 0;
    const worker = async (w: number): Promise<void> => {
      for (let i = w; Date.now() - startedAt < durationMs; i++) {
        const which = i % 2;
        lastStart = Date.now();
        const res = await get(`${[a, b][which]!.url}/`);
        lastEnd = Date.now();
        if (firstEnd === 0) firstEnd = lastEnd;
        if (res.status === 200) byInstance[which]!.allowed++;
        else if (res.status === 429) byInstance[which]!.rejected++;
        else assert.fail(`unexpected status ${res.status}`);
      }
    };
    await Promise.all([0, 1, 2, 3].map(worker));
    const allowed = byInstance[0]!.allowed + byInstance[1]!.allowed;
    const most = burst + (rate * (lastEnd - startedAt)) / 1000;
    const least = burst + (rate * (lastStart - firstEnd)) / 1000;
    const expected = `R*T + burst between ${least.toFixed(1)} and ${most.toFixed(1)}`;
    assert.ok(allowed <= most + 1 && allowed >= least - 3, `allowed ${allowed}, ${expected}`);
    for (const s of byInstance) assert.ok(s.allowed > 0 && s.rejected > 0, JSON.stringify(byInstance));
    t.diagnostic(`allowed ${allowed} (${expected}) of ${allowed + byInstance[0]!.rejected + byInstance[1]!.rejected}: ${JSON.stringify(byInstance)}`);
  });

  test('Redis down: allow keeps serving, deny answers 503; both recover and the outage is logged once', async () => {
    const allowLog = capturedLogger();
    const denyLog = capturedLogger();
    const config = { rate: 1, per: '1m', burst: 1, timeout: '200ms' };
    const allow = await start({ ...config, onStoreError: 'allow' }, 'outage-allow:', allowLog.logger);
    const deny = await start({ ...config, onStoreError: 'deny' }, 'outage-deny:', denyLog.logger);
    await connected(allow);
    await connected(deny);
    for (const lb of [allow, deny]) {
      assert.equal((await get(`${lb.url}/`)).status, 200);
      assert.equal((await get(`${lb.url}/`)).status, 429);
    }

    await redis.stop();
    for (let i = 0; i < 6; i++) {
      const ok = await get(`${allow.url}/`);
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.ratelimit, undefined);
      const no = await get(`${deny.url}/`);
      assert.equal(no.status, 503);
      assert.equal(no.headers['retry-after'], '1');
      assert.equal(no.headers['x-fulcrum-error'], 'FULCRUM_ERR_RATE_LIMIT_UNAVAILABLE');
      assert.equal(no.body, '503 Service Unavailable: rate limit store unavailable\n');
    }
    for (const [lb, log] of [[allow, allowLog], [deny, denyLog]] as const) {
      assert.equal(count(log.messages, 'rate limit store unavailable'), 1, log.messages.join('\n'));
      const json = JSON.parse((await get(`${lb.url}/metrics?format=json`)).body) as Record<string, number>;
      assert.ok(json.ratelimit_store_errors_total! >= 6, JSON.stringify(json));
      assert.equal(json.ratelimit_store_outages_total, 1);
      assert.match((await get(`${lb.url}/metrics?format=prometheus`)).body, /^fulcrum_ratelimit_store_outages_total 1$/m);
    }
    assert.equal(count(allowLog.messages, 'rate limit store unavailable: requests are allowed'), 1);
    assert.equal(count(denyLog.messages, 'rate limit store unavailable: requests are denied (503)'), 1);

    await redis.start();
    // Back: the (empty) Redis counts again. One request is allowed, then the limit holds.
    for (const lb of [allow, deny]) {
      await waitFor(async () => (await get(`${lb.url}/`)).status === 429, 15_000, 100);
      const again = await get(`${lb.url}/`);
      assert.equal(again.status, 429);
      assert.equal(again.headers.ratelimit, '"default";r=0;t=60');
    }
    assert.equal(count(allowLog.messages, 'rate limit store recovered'), 1);
    assert.equal(count(denyLog.messages, 'rate limit store recovered'), 1);
  });

  test('a Redis slower than the timeout: onStoreError applies, then decisions resume', async () => {
    const lb = await start({ rate: 100, per: '1s', timeout: '50ms', onStoreError: 'deny' }, 'slow:');
    await connected(lb);
    assert.equal((await get(`${lb.url}/`)).status, 200);
    // A script that keeps each (single-threaded) server busy for 600ms.
    const blockers = redis.ports.map((port) => new Redis({ port, host: '127.0.0.1' }));
    const busy = blockers.map((blocker) => blocker.eval(`
      local s = redis.call('TIME')
      while true do
        local n = redis.call('TIME')
        if (n[1] - s[1]) * 1000000 + (n[2] - s[2]) > 600000 then break end
      end
      return 1`, 0));
    await new Promise((r) => setTimeout(r, 50));
    const during = await get(`${lb.url}/`);
    assert.equal(during.status, 503);
    await Promise.all(busy);
    await Promise.all(blockers.map((b) => b.quit()));
    await waitFor(async () => (await get(`${lb.url}/`)).status === 200, 10_000, 100);
    const status = lb.balancer.status().rateLimit as { storeErrors: number; storeAvailable: boolean };
    assert.ok(status.storeErrors >= 1);
    assert.equal(status.storeAvailable, true);
  });

  test('Redis unreachable at start: requests get the onStoreError answer without waiting', async () => {
    const port = await freePort();
    const nowhere = redis.mode === 'cluster' ? { cluster: [{ host: '127.0.0.1', port }] } : { url: `redis://127.0.0.1:${port}` };
    const log = capturedLogger();
    const lb = await startBalancer({
      backends: [urlOf(backend)], healthCheck: { enabled: false },
      state: { redis: { ...nowhere, keyPrefix: 'nowhere:' } },
      // A long timeout: were requests to queue for the connection, this test would take minutes.
      rateLimit: { store: 'redis', rate: 1, per: '1m', onStoreError: 'deny', timeout: '60s' },
    }, { logger: log.logger });
    balancers.push(lb);
    await waitFor(() => count(log.messages, 'rate limit store unavailable') === 1, 10_000);
    for (let i = 0; i < 3; i++) assert.equal((await get(`${lb.url}/`)).status, 503);
    assert.equal(count(log.messages, 'rate limit store unavailable'), 1);
    assert.equal(lb.balancer.metrics.rateLimited, 3);
  });
});
