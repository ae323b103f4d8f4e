/** Service as a unit: picking, connection slots and the wait queue, reload's prepare/commit, the retry budget. */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/config-error.js';
import type { FulcrumConfigInput, ServiceConfig } from '../../src/config/schema.js';
import { silentLogger } from '../../src/observe/log.js';
import { Metrics } from '../../src/observe/metrics.js';
import { RetryBudget } from '../../src/service/retry.js';
import { Service } from '../../src/service/service.js';
import { WaitQueue, type Waiter } from '../../src/service/wait-queue.js';

const services: Service[] = [];

/** serviceConfig: the one service a configuration without `services` describes. */
const serviceConfig = (input: FulcrumConfigInput): ServiceConfig => validateConfig(input).services.default!;
after(async () => { await Promise.all(services.map((s) => s.close(false))); });

function makeService(input: FulcrumConfigInput): Service {
  const config = serviceConfig(input);
  let service: Service | null = null;
  const metrics = new Metrics(() => (service === null ? [] : [{ service: service.name, backends: service.pool.snapshot }]), { processMetrics: false });
  service = new Service({ name: 'default', config, log: silentLogger(), metrics, stickySecret: Buffer.alloc(32, 7), onFlip: () => undefined });
  services.push(service);
  return service;
}

const urls = (n: number): string[] => Array.from({ length: n }, (_, i) => `http://127.0.0.1:${9101 + i}`);
const ctx = () => ({ clientAddress: '192.0.2.1', hashKey: undefined, tried: undefined });

class TestWaiter implements Waiter {
  done = false;
  woken = 0;
  constructor(readonly name: string, private readonly log: string[]) {}
  leaveQueue(): void {
    this.woken++;
    this.log.push(this.name);
  }
}

describe('WaitQueue', () => {
  test('wakes waiters oldest first, skips those already answered, and grows past its first capacity', () => {
    const woken: string[] = [];
    const queue = new WaitQueue<TestWaiter>();
    const waiters = Array.from({ length: 40 }, (_, i) => new TestWaiter(`w${i}`, woken));
    for (const w of waiters.slice(0, 10)) queue.push(w);
    assert.equal(queue.wakeOne(), true);
    assert.equal(queue.wakeOne(), true);
    // Wrap around, then grow: order must survive both.
    for (const w of waiters.slice(10)) queue.push(w);
    waiters[2]!.done = true;
    waiters[3]!.done = true;
    while (queue.wakeOne());
    assert.deepEqual(woken, waiters.filter((w) => w.name !== 'w2' && w.name !== 'w3').map((w) => w.name));
    assert.equal(queue.length, 0);
    assert.equal(queue.shift(), undefined);
    assert.ok(waiters.every((w) => w.woken <= 1), 'nobody is woken twice');
  });
});

describe('Service', () => {
  test('picks with its policy, in turn, skipping unhealthy backends', () => {
    const service = makeService({ backends: urls(3), algorithm: 'round-robin' });
    const picked = Array.from({ length: 6 }, () => service.pick(ctx())!.url.port);
    assert.deepEqual(picked, ['9101', '9102', '9103', '9101', '9102', '9103']);
    service.ops.setState(service.pool.snapshot[1]!.id, 'disabled', 'admin', 'test');
    const after = new Set(Array.from({ length: 6 }, () => service.pick(ctx())!.url.port));
    assert.deepEqual([...after].sort(), ['9101', '9103']);
  });

  test('acquire fills a backend to its limit; release gives the slot to the longest waiter, once', async () => {
    const service = makeService({ backends: urls(1), limits: { maxConnectionsPerBackend: 2 } });
    const backend = service.pool.snapshot[0]!;
    service.acquire(backend);
    assert.equal(service.isFull(backend), false);
    service.acquire(backend);
    assert.equal(service.isFull(backend), true);
    const woken: string[] = [];
    const first = new TestWaiter('first', woken);
    const second = new TestWaiter('second', woken);
    service.queue.push(first);
    service.queue.push(second);
    service.release(backend);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(woken, ['first']);
    assert.equal(service.queue.length, 1);
    assert.equal(backend.state.inflight, 1);
  });

  test('a backend removed with drain leaves the pool when its last slot is released', () => {
    const service = makeService({ backends: urls(2) });
    const backend = service.pool.snapshot[0]!;
    service.acquire(backend);
    service.ops.remove(backend.id, true, 'admin', 'test');
    assert.equal(service.pool.get(backend.id), backend, 'still there while in flight');
    assert.notEqual(service.pick(ctx()), backend, 'but no longer picked');
    service.release(backend);
    assert.equal(service.pool.get(backend.id), undefined);
  });

  test('prepare rejects an unknown policy without changing anything; commit keeps the backends that stay', () => {
    const service = makeService({ backends: urls(2), algorithm: 'round-robin' });
    const [kept] = service.pool.snapshot;
    const bad = { ...serviceConfig({ backends: urls(2) }), algorithm: 'no-such-policy' };
    assert.throws(() => service.prepare(bad), (err: unknown) => err instanceof ConfigError && /unknown algorithm/.test(err.message));
    assert.equal(service.config.algorithm, 'round-robin');

    const next = serviceConfig({ backends: [urls(1)[0]!, 'http://127.0.0.1:9200'], algorithm: 'least-connections' });
    const change = service.commit(service.prepare(next));
    assert.deepEqual(change.added.map((b) => b.url.port), ['9200']);
    assert.deepEqual(change.removed.map((b) => b.url.port), ['9102']);
    assert.equal(service.pool.snapshot[0], kept, 'the same Backend object, with its state');
    assert.equal(service.status().algorithm, 'least-connections');
    const seen = new Set(Array.from({ length: 4 }, () => service.pick(ctx())!.url.port));
    assert.ok(seen.has('9200'), 'the rebuilt picker knows the added backend');
  });

  test('the hash key exists only for policies that read it, and sticky sessions pin by cookie', () => {
    const plain = makeService({ backends: urls(2), algorithm: 'round-robin' });
    assert.equal(plain.hashKey, null);
    const hashed = makeService({ backends: urls(2), algorithm: 'consistent-hash', hashKey: 'header:X-User' });
    assert.equal(hashed.hashKey?.({ method: 'GET', url: '/', rawHeaders: ['X-User', 'ann'], clientAddress: '', cookie: undefined }), 'ann');

    const sticky = makeService({ backends: urls(3), sticky: {} });
    const target = sticky.pool.snapshot[2]!;
    const headers: string[] = [];
    sticky.onResponseHead({ backend: target, cookie: undefined }, headers);
    const cookie = headers[1]!.split(';')[0]!;
    for (let i = 0; i < 5; i++) assert.equal(sticky.pick({ ...ctx(), cookie }), target);
  });
});

describe('RetryBudget', () => {
  test('allows retries up to its fraction of the last ten seconds of requests, with a floor, and forgets old seconds', () => {
    let now = 1_000_000;
    const budget = new RetryBudget(0.2, 1, () => now);
    // The floor: 1 per second over the 10 s window = 10 retries with no requests at all.
    let granted = 0;
    while (budget.tryAcquire()) granted++;
    assert.equal(granted, 10);
    now += 11_000; // the window has passed: a fresh start
    for (let i = 0; i < 100; i++) budget.recordRequest();
    granted = 0;
    while (budget.tryAcquire()) granted++;
    assert.equal(granted, 20, '20% of 100 requests');
  });
});
