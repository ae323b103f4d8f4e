/**
 * retries.on through real listeners and backends: a status listed there is
 * retried on another backend (the first response read and dropped, its
 * connection kept), the last attempt's response is the client's, POST only
 * with an Idempotency-Key when enabled, the budget bounds it all,
 * perTryTimeout cuts a slow attempt, and error conditions not listed are
 * not retried. Retries show in the access log and fulcrum_retries_total.
 */
import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startRawServer, type RawServer } from '../helpers/backends.js';
import { get, request, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { captureLogger, type CapturedLog } from '../helpers/logs.js';
import { startScripted, type ScriptedBackend } from '../helpers/scripted-backend.js';
import type { FulcrumConfigInput } from '../../src/index.js';

describe('retries.on', { timeout: 60_000 }, () => {
  const started: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((s) => s.close()));
  });

  async function backends(...answers: [string, number, number?][]): Promise<ScriptedBackend[]> {
    const list = await Promise.all(answers.map(([name, status, delayMs]) => startScripted(name, delayMs === undefined ? { status } : { status, delayMs })));
    started.push(...list);
    return list;
  }

  async function balancer(targets: readonly { url: string }[], retries: FulcrumConfigInput['retries'], log?: CapturedLog): Promise<TestBalancer> {
    const lb = await startBalancer({
      backends: targets.map((b) => b.url),
      healthCheck: { enabled: false },
      // Outlier detection would eject the failing backend and hide the retries behind fewer first attempts.
      outlierDetection: { enabled: false },
      retries,
      ...(log === undefined ? {} : { accessLog: true }),
    }, log === undefined ? {} : { logger: log.logger });
    started.unshift(lb);
    return lb;
  }

  const accessLines = (log: CapturedLog) => log.lines.filter((l) => l.type === 'access');

  test('a GET answered 503 by one backend is answered by another; the dropped response leaves its connection usable', async () => {
    const [a, b] = await backends(['A', 503], ['B', 200]);
    a.answer = { status: 503, body: 'x'.repeat(4096) };
    const log = captureLogger();
    const lb = await balancer([a, b], { on: [503], backoff: { base: '5ms', max: '10ms' } }, log);
    const answers = [];
    for (let i = 0; i < 8; i++) answers.push(await get(`${lb.url}/item`));
    assert.deepEqual(answers.map((r) => [r.status, r.body]), Array(8).fill([200, '200 from B']));
    assert.ok(a.hits >= 4, `A was asked first at least half the time (${a.hits})`);
    assert.equal(a.connections, 1, 'each dropped 503 was read to its end: one connection to A served them all');

    const retried = accessLines(log).filter((l) => l.attempts === 2);
    assert.equal(retried.length, a.hits);
    for (const line of retried) assert.deepEqual(line.retryReasons, ['503']);
    const plain = accessLines(log).filter((l) => l.attempts === 1);
    for (const line of plain) assert.equal(line.retryReasons, undefined, 'no retryReasons without a retry');

    const prom = await get(`${lb.url}/metrics?format=prometheus`);
    assert.match(prom.body, new RegExp(`fulcrum_retries_total\\{service="default",reason="503"\\} ${a.hits}\\b`));
    const json = JSON.parse((await get(`${lb.url}/metrics`)).body);
    assert.equal(json.retries_total, a.hits);
    assert.deepEqual(json.retries, { default: { 503: a.hits } });
  });

  test('by default a 503 is not retried; with no other backend the 503 is the answer', async () => {
    const [a, b] = await backends(['A', 503], ['B', 200]);
    const lb = await balancer([a, b], {});
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await get(`${lb.url}/`)).status);
    assert.equal(statuses.filter((s) => s === 503).length, a.hits, 'every request that reached A got its 503');

    const [only] = await backends(['Only', 503]);
    const single = await balancer([only!], { on: ['5xx'] });
    const res = await get(`${single.url}/`);
    assert.equal(res.status, 503);
    assert.equal(res.body, '503 from Only', "the backend's own answer, not a balancer error");
    assert.equal(res.headers['x-fulcrum-error'], undefined);
    assert.equal(only!.hits, 1);
  });

  test("the last attempt's response is what the client gets", async () => {
    const list = await backends(['A', 502], ['B', 503], ['C', 504]);
    const lb = await balancer(list, { on: ['5xx'], attempts: 1 });
    const res = await get(`${lb.url}/`);
    assert.equal(list.reduce((n, b) => n + b.hits, 0), 2, 'one retry (attempts: 1)');
    assert.deepEqual([res.status, res.body], [503, '503 from B'], 'A first, then B, whose answer stands');
  });

  test('a POST is not retried, unless it carries Idempotency-Key and idempotencyKey is on; its body is sent again', async () => {
    const [a, b] = await backends(['A', 503], ['B', 200]);
    const off = await balancer([a, b], { on: [503] });
    const headers = { 'idempotency-key': 'order-1', 'content-type': 'text/plain' };
    const offStatuses = [];
    for (let i = 0; i < 4; i++) offStatuses.push((await request(`${off.url}/orders`, { method: 'POST', headers, body: 'one order' })).status);
    assert.ok(a.hits >= 1);
    assert.equal(offStatuses.filter((s) => s === 503).length, a.hits, 'not retried: idempotencyKey is off');

    const aBefore = a.hits;
    const bBefore = b.received.length;
    const on = await balancer([a, b], { on: [503], idempotencyKey: true });
    for (let i = 0; i < 4; i++) {
      const res = await request(`${on.url}/orders`, { method: 'POST', headers, body: `order ${i}` });
      assert.deepEqual([res.status, res.body], [200, '200 from B']);
    }
    assert.ok(a.hits > aBefore, 'A was tried');
    assert.deepEqual(b.received.slice(bBefore).map((r) => r.body), ['order 0', 'order 1', 'order 2', 'order 3'], 'B got every body whole');
    // Without the header, a POST is still not retried.
    const aNow = a.hits;
    const plain = [];
    for (let i = 0; i < 2; i++) plain.push((await request(`${on.url}/orders`, { method: 'POST', body: 'no key' })).status);
    assert.equal(plain.filter((s) => s === 503).length, a.hits - aNow);
  });

  test('retries stop at the budget', async () => {
    const [a, b] = await backends(['A', 503], ['B', 200]);
    // budget 0 leaves the floor: minPerSecond 0.5 allows 5 retries per 10 s window.
    const lb = await balancer([a, b], { on: [503], budget: 0, minPerSecond: 0.5 });
    const statuses = [];
    for (let i = 0; i < 16; i++) statuses.push((await get(`${lb.url}/`)).status);
    assert.equal(lb.balancer.metrics.retries, 5);
    assert.ok(a.hits > 5, `more first attempts on A (${a.hits}) than the budget`);
    assert.equal(statuses.filter((s) => s === 503).length, a.hits - 5, 'past the budget, A\'s 503 is the answer');
  });

  test('perTryTimeout cuts a slow attempt and the next backend answers', async () => {
    const [a, b] = await backends(['A', 200, 5000], ['B', 200]);
    const log = captureLogger();
    const lb = await balancer([a, b], { perTryTimeout: '200ms' }, log);
    const res = await get(`${lb.url}/slow`);
    assert.deepEqual([res.status, res.body], [200, '200 from B']);
    assert.equal(a.hits, 1, 'A was tried first');
    await waitFor(() => a.aborted === 1, 2000);
    const line = accessLines(log).find((l) => l.url === '/slow')!;
    assert.equal(line.attempts, 2);
    assert.deepEqual(line.retryReasons, ['timeout']);
  });

  test('an error condition not in retries.on is not retried', async () => {
    const reset: RawServer = await startRawServer((socket) => socket.once('data', () => socket.destroy()));
    started.push(reset);
    const [b] = await backends(['B', 200]);
    const target = { url: `http://127.0.0.1:${reset.port}` };
    const statusOnly = await balancer([target, b!], { on: [503] });
    const res = await get(`${statusOnly.url}/`);
    assert.equal(res.status, 502);
    assert.equal(res.headers['x-fulcrum-error'], 'FULCRUM_ERR_UPSTREAM_RESET');

    const byDefault = await balancer([target, b!], {});
    const retried = await get(`${byDefault.url}/`);
    assert.deepEqual([retried.status, retried.body], [200, '200 from B'], 'the default retries resets');
  });
});
