/**
 * `npm run bench:redis`: what the Redis store and the Redis rate limiter
 * cost, on a single redis-server against a 3-master Redis Cluster (both
 * started here on loopback, as the tests do).
 *
 * - Rate limiter: the per-request cost. `decide()` (one EVALSHA) for
 *   distinct clients, one at a time (latency) and 64 in flight (the
 *   client's CPU per decision, measured with process.cpuUsage, which a
 *   loaded machine disturbs less than wall time).
 * - State store: no per-request cost (the proxy bumps counters in memory);
 *   one sync round (flush, heartbeat, lease, health and backend reads: one
 *   pipeline) costs the same whatever the traffic. Reported per round.
 *
 * Usage: node dist/bench/redis-modes.js [--decisions 20000] [--rounds 500]
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { RedisStore as LimiterStore } from '../src/ratelimit/redis-store.js';
import { StoreHealth } from '../src/ratelimit/store-health.js';
import { RedisStore } from '../src/state/redis.js';
import { redisTarget, type RedisTarget } from '../src/state/redis-client.js';
import { redisSchema } from '../src/config/schema.js';
import { emptyBackendCounters, emptyCounters } from '../src/state/store.js';
import type { RateLimitPolicy } from '../src/ratelimit/types.js';
import { startRedis } from '../test/helpers/redis.js';
import { startCluster } from '../test/helpers/redis-topologies.js';

const { values } = parseArgs({ options: { decisions: { type: 'string', default: '20000' }, rounds: { type: 'string', default: '500' } } });
const DECISIONS = Number(values.decisions);
const ROUNDS = Number(values.rounds);
const POLICY: RateLimitPolicy = { algorithm: 'token-bucket', rate: 1_000_000, per: 1000, burst: 1_000_000 };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const cpuUs = (): number => { const u = process.cpuUsage(); return u.user + u.system; };
const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function limiter(target: RedisTarget): Promise<{ latencyUs: number; cpuUs: number; perSecond: number }> {
  const store = new LimiterStore({ target, keyPrefix: 'bench:', timeout: 5000, health: new StoreHealth(pino({ level: 'silent' }), 'allow') });
  while (!store.connected) await sleep(20);
  for (let i = 0; i < 500; i++) await store.decide(POLICY, store.keyOf('s', `warm${i}`)); // scripts loaded on every node
  const latencies: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const t = process.hrtime.bigint();
    await store.decide(POLICY, store.keyOf('s', `c${i}`));
    latencies.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  let next = 0;
  const cpu0 = cpuUs();
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < DECISIONS) await store.decide(POLICY, store.keyOf('s', `client${next++}`));
  }));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const out = { latencyUs: median(latencies), cpuUs: (cpuUs() - cpu0) / DECISIONS, perSecond: DECISIONS / seconds };
  await store.close();
  return out;
}

async function rounds(target: RedisTarget): Promise<{ latencyUs: number; cpuUs: number }> {
  const store = new RedisStore({ target, keyPrefix: 'bench:', instanceId: 'bench-1' });
  while (store.state !== 'ready') await sleep(20);
  const delta = emptyCounters();
  delta.total = 100;
  for (let b = 0; b < 10; b++) {
    const c = emptyBackendCounters();
    c.requests = 10;
    c.responses['2xx'] = 10;
    delta.backends.set(`http://10.0.0.${b}:8080/`, c);
  }
  const latencies: number[] = [];
  const cpu0 = cpuUs();
  for (let seq = 1; seq <= ROUNDS; seq++) {
    const t = process.hrtime.bigint();
    // What StateSync sends each round (sync.ts), as one pipeline.
    await Promise.all([store.flushCounters(seq, delta), store.heartbeat(3000), store.acquireLease('health', 3000), store.readHealth(), store.readBackends()]);
    latencies.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  const out = { latencyUs: median(latencies), cpuUs: (cpuUs() - cpu0) / ROUNDS };
  await store.close();
  return out;
}

async function main(): Promise<void> {
  const single = await startRedis();
  const cluster = await startCluster(3);
  try {
    const targets: [string, RedisTarget][] = [
      ['standalone', redisTarget(redisSchema.parse({ url: single.url }))],
      ['cluster (3 masters)', redisTarget(redisSchema.parse(cluster.config))],
    ];
    for (const [name, target] of targets) {
      const l = await limiter(target);
      const r = await rounds(target);
      console.log(`${name.padEnd(20)} rate limiter: ${l.latencyUs.toFixed(0)} µs median latency, ${l.cpuUs.toFixed(1)} µs CPU/decision, ${l.perSecond.toFixed(0)} decisions/s (64 in flight); ` +
        `state store: ${r.latencyUs.toFixed(0)} µs median round, ${r.cpuUs.toFixed(0)} µs CPU/round`);
    }
  } finally {
    await cluster.close();
    await single.close();
  }
}

await main();
