/**
 * Several balancer instances sharing one Redis act as one: cluster totals
 * add up, one instance runs the health checks and hands over when it goes,
 * and a backend change on one reaches the others. The default memory store
 * gives the same /status shape with no Redis at all.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OpEvent } from '../../src/backends/ops.js';
import { get, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { CLI } from '../helpers/cli.js';
import { clusterConfig, metricsJson, startCheckedBackend, status, uniquePrefix, type CheckedBackend } from './redis-helpers.js';

let redis: TestRedis;
let backends: CheckedBackend[];
const running = new Set<TestBalancer>();

before(async () => {
  redis = await startRedis();
  backends = [await startCheckedBackend(), await startCheckedBackend(), await startCheckedBackend()];
});

after(async () => {
  await Promise.all([...running].map((b) => b.close()));
  await Promise.all(backends.map((b) => b.close()));
  await redis.close();
});

async function startInstance(keyPrefix: string, checker: string, urls = [backends[0]!.url, backends[1]!.url]): Promise<TestBalancer> {
  const lb = await startBalancer(clusterConfig({ redisUrl: redis.url, keyPrefix, checker, backends: urls }));
  running.add(lb);
  return lb;
}

async function stopInstance(lb: TestBalancer): Promise<void> {
  await lb.close();
  running.delete(lb);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function send(lb: TestBalancer, n: number, path = '/'): Promise<void> {
  for (let i = 0; i < n; i++) await get(`${lb.url}${path}`);
}

describe('memory store (the default)', () => {
  test('/status and /metrics show the instance, the cluster (itself) and the store', async () => {
    const lb = await startBalancer({ backends: [backends[0]!.url], healthCheck: { enabled: false }, state: { flushInterval: '100ms' } });
    running.add(lb);
    await send(lb, 3);
    await waitFor(async () => (await status(lb.url)).cluster.totalRequests === 3, 5000);
    const s = await status(lb.url);
    assert.deepEqual(s.store, { type: 'memory', connected: true, degradedSince: null, unflushedRequests: 0 });
    assert.equal(s.instance.totalRequests, 3);
    assert.deepEqual(s.cluster.instances.map((i) => i.id), [s.instance.id]);
    assert.equal(s.backends[0]!.clusterRequests, 3);
    assert.equal(s.backends[0]!.clusterResponses['2xx'], 3);
    const m = await metricsJson(lb.url);
    assert.equal(m.total_requests, 3);
    assert.equal(m.cluster_total_requests, 3);
    await stopInstance(lb);
  });
});

describe('three instances on one Redis', () => {
  test('cluster totals add up exactly, per backend and status class', async () => {
    const prefix = uniquePrefix('totals');
    const lbs = [await startInstance(prefix, 'A'), await startInstance(prefix, 'B'), await startInstance(prefix, 'C')];
    await waitFor(async () => (await Promise.all(lbs.map((lb) => status(lb.url)))).every((s) => s.cluster.instances.length === 3 && s.store.connected), 10_000);
    await send(lbs[0]!, 12);
    await send(lbs[0]!, 2, '/status/503');
    await send(lbs[1]!, 8);
    await send(lbs[2]!, 5, '/status/404');
    const expected = 27;
    await waitFor(async () => (await Promise.all(lbs.map((lb) => status(lb.url)))).every((s) => s.cluster.totalRequests === expected), 10_000);
    const all = await Promise.all(lbs.map((lb) => status(lb.url)));
    assert.deepEqual(all.map((s) => s.instance.totalRequests), [14, 8, 5]);
    for (const s of all) {
      assert.equal(s.store.type, 'redis');
      assert.equal(s.store.unflushedRequests, 0);
      assert.deepEqual(new Set(s.cluster.instances.map((i) => i.id)), new Set(all.map((x) => x.instance.id)));
      assert.equal(s.backends.reduce((n, b) => n + b.clusterRequests, 0), expected);
      // Each backend's cluster count is the sum of the instances' own counts for it.
      for (const b of s.backends) {
        const own = all.reduce((n, x) => n + x.backends.find((y) => y.url === b.url)!.requests, 0);
        assert.equal(b.clusterRequests, own);
      }
      const classes = s.backends.reduce((acc, b) => {
        for (const [k, v] of Object.entries(b.clusterResponses)) acc[k] = (acc[k] ?? 0) + v;
        return acc;
      }, {} as Record<string, number>);
      assert.deepEqual(classes, { '1xx': 0, '2xx': 20, '3xx': 0, '4xx': 5, '5xx': 2 });
    }
    for (const lb of lbs) assert.equal((await metricsJson(lb.url)).cluster_total_requests, expected);
    assert.equal((await metricsJson(lbs[1]!.url)).total_requests, 8);
    for (const lb of lbs) await stopInstance(lb);
  });

  test('only the lease holder runs health checks; closing it hands over and health keeps being updated', async () => {
    const prefix = uniquePrefix('lease');
    const [b1, b2] = [backends[0]!, backends[1]!];
    const checkers = ['A2', 'B2', 'C2'];
    const lbs = new Map<string, TestBalancer>();
    for (const c of checkers) lbs.set(c, await startInstance(prefix, c));
    const hits = (c: string): number => (b1.checks.get(c) ?? 0) + (b2.checks.get(c) ?? 0);
    await waitFor(() => checkers.some((c) => hits(c) > 0), 10_000);
    const holder = checkers.find((c) => hits(c) > 0)!;
    const others = checkers.filter((c) => c !== holder);
    const before = hits(holder);
    await sleep(1200); // six check intervals
    assert.ok(hits(holder) > before, 'the holder keeps checking');
    for (const c of others) assert.equal(hits(c), 0, `instance ${c} ran no health check`);

    // A failure seen by the holder reaches every instance.
    b2.fail(true);
    await waitFor(async () => {
      const all = await Promise.all([...lbs.values()].map((lb) => status(lb.url)));
      return all.every((s) => s.backends.find((b) => b.url === b2.url)!.reasons.includes('active-check-failed'));
    }, 10_000);
    const follower = lbs.get(others[0]!)!;
    assert.ok(follower.balancer.events.some((e) => e.url === b2.url && !e.healthy && /active checks run by instance/.test(e.detail ?? '')),
      'a follower records the flip it applied');

    // The holder leaves: another instance takes the lease and goes on checking.
    await stopInstance(lbs.get(holder)!);
    lbs.delete(holder);
    const counts = new Map(others.map((c) => [c, hits(c)]));
    await waitFor(() => others.some((c) => hits(c) > counts.get(c)!), 10_000);
    b2.fail(false);
    await waitFor(async () => {
      const all = await Promise.all([...lbs.values()].map((lb) => status(lb.url)));
      return all.every((s) => s.backends.every((b) => b.healthy) && s.cluster.instances.length === 2);
    }, 10_000);
    const newHolder = others.find((c) => hits(c) > counts.get(c)!)!;
    const idle = others.find((c) => c !== newHolder)!;
    const idleHits = hits(idle);
    await sleep(1000);
    assert.equal(hits(idle), idleHits, 'still one checker after the handover');
    for (const lb of lbs.values()) await stopInstance(lb);
  });

  test('a backend change made on one instance shows up on the others, and is not echoed back', async () => {
    const prefix = uniquePrefix('ops');
    const [a, b, c] = [await startInstance(prefix, 'A3'), await startInstance(prefix, 'B3'), await startInstance(prefix, 'C3')];
    await waitFor(async () => (await Promise.all([a, b, c].map((lb) => status(lb.url)))).every((s) => s.store.connected && s.cluster.instances.length === 3), 10_000);
    const remoteAtA: OpEvent[] = [];
    a.balancer.ops.on('op', (e) => { if (e.origin === 'remote') remoteAtA.push(e); });
    const u1 = backends[0]!.url;
    const u3 = backends[2]!.url;
    const find = (lb: TestBalancer, url: string) => lb.balancer.pool.findByUrl(url);
    const everywhere = (check: (lb: TestBalancer) => boolean) => waitFor(() => [b, c].every(check), 5000);

    a.balancer.ops.setWeight(find(a, u1)!.id, 5, 'admin', 'test');
    await everywhere((lb) => find(lb, u1)?.weight === 5);

    a.balancer.ops.add({ url: u3, weight: 2, timeouts: { response: '7s' } }, 'admin', 'test');
    await everywhere((lb) => find(lb, u3)?.weight === 2);
    assert.equal(find(b, u3)!.config.timeouts?.response, 7000, 'durations survive the trip');
    assert.equal(find(b, u3)!.id, find(a, u3)!.id, 'the added backend keeps its id');

    a.balancer.ops.setState(find(a, u3)!.id, 'draining', 'admin', 'test');
    await everywhere((lb) => (stateOn(lb, u3)) === 'draining');

    a.balancer.ops.remove(find(a, u3)!.id, false, 'admin', 'test');
    await everywhere((lb) => find(lb, u3) === undefined);

    // The other way round, and discovery-made changes stay local.
    c.balancer.ops.setWeight(find(c, u1)!.id, 3, 'admin', 'test');
    await waitFor(() => find(a, u1)?.weight === 3 && find(b, u1)?.weight === 3, 5000);
    b.balancer.ops.setWeight(find(b, u1)!.id, 9, 'discovery', 'test');
    await sleep(600);
    assert.equal(find(a, u1)!.weight, 3, 'a discovery change is not shared');

    assert.equal(remoteAtA.length, 1, 'A applied only the change made elsewhere, not its own');
    assert.equal(remoteAtA[0]!.actor.startsWith('instance '), true);
    for (const lb of [a, b, c]) await stopInstance(lb);
  });

  test('when the lease holder dies without a goodbye, another instance takes over', async () => {
    const prefix = uniquePrefix('crash');
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-crash-'));
    const file = join(dir, 'fulcrum.json');
    writeFileSync(file, JSON.stringify({
      ...clusterConfig({ redisUrl: redis.url, keyPrefix: prefix, checker: 'DOOMED', backends: [backends[0]!.url] }),
      listen: { host: '127.0.0.1', port: 0 }, logLevel: 'warn', accessLog: false,
    }));
    let child: ChildProcess | null = spawn(process.execPath, [CLI, '-c', file], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, REDIS_URL: '' } });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    try {
      const b1 = backends[0]!;
      await waitFor(() => (b1.checks.get('DOOMED') ?? 0) > 0, 15_000).catch((err: Error) => { throw new Error(`${err.message}; child stderr: ${stderr}`); });
      const survivor = await startInstance(prefix, 'SURVIVOR', [b1.url]);
      await waitFor(async () => (await status(survivor.url)).cluster.instances.length === 2, 10_000);
      await sleep(600);
      assert.equal(b1.checks.get('SURVIVOR') ?? 0, 0, 'the survivor does not check while the lease is held');
      const pid = child.pid!;
      await new Promise<void>((resolve) => { child!.once('exit', () => resolve()); process.kill(pid, 'SIGKILL'); });
      child = null;
      // The lease expires (3s) and the survivor takes it at its next round.
      await waitFor(() => (b1.checks.get('SURVIVOR') ?? 0) > 0, 10_000);
      await waitFor(async () => (await status(survivor.url)).cluster.instances.length === 1, 10_000);
      await stopInstance(survivor);
    } finally {
      if (child !== null && child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function stateOn(lb: TestBalancer, url: string): string | undefined {
  const backend = lb.balancer.pool.findByUrl(url);
  return backend === undefined ? undefined : String(lb.balancer.backendStatus(backend).state);
}
