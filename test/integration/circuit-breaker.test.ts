/**
 * A service's circuit breaker through real listeners and a backend: 500s
 * open it after minRequests; while open, requests fail fast with 503
 * FULCRUM_ERR_CIRCUIT_OPEN and the backend sees none; after openFor it
 * half-opens and lets halfOpenRequests trials through; they succeed and it
 * closes. Each change is logged, and shows in /status, the dashboard's
 * snapshot and fulcrum_circuit_state. A service without one is unaffected.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { get, startBalancer, type TestBalancer } from '../helpers/balancer.js';
import { captureLogger, type CapturedLog } from '../helpers/logs.js';
import { startScripted, type ScriptedBackend } from '../helpers/scripted-backend.js';
import { buildSnapshot } from '../../src/admin/dashboard/snapshot.js';
import { Sampler } from '../../src/admin/dashboard/sampler.js';

/** OPEN_FOR_MS: long enough that the checks made while open finish inside it on a loaded machine. */
const OPEN_FOR_MS = 2000;

describe('circuit breaker', { timeout: 60_000 }, () => {
  let api: ScriptedBackend;
  let web: ScriptedBackend;
  let tb: TestBalancer;
  let log: CapturedLog;
  before(async () => {
    api = await startScripted('api', { status: 500 });
    web = await startScripted('web', { status: 500 });
    log = captureLogger();
    tb = await startBalancer({
      services: {
        api: {
          backends: [api.url],
          healthCheck: { enabled: false },
          // Outlier detection would eject the backend and answer "no backend" instead: the circuit is under test here.
          outlierDetection: { enabled: false },
          circuitBreaker: { errorRatio: 0.5, minRequests: 5, window: '10s', openFor: `${OPEN_FOR_MS}ms`, halfOpenRequests: 2 },
        },
        web: { backends: [web.url], healthCheck: { enabled: false }, outlierDetection: { enabled: false } },
      },
      routes: [{ match: { path: { prefix: '/web' } }, service: 'web' }, { service: 'api' }],
    }, { logger: log.logger });
  });
  after(async () => {
    await tb.close();
    await api.close();
    await web.close();
  });

  const circuitOf = async (): Promise<{ state: string; opens: number }> =>
    (JSON.parse((await get(`${tb.url}/status`)).body) as { services: Record<string, { circuit?: { state: string; opens: number } }> }).services.api!.circuit!;
  const gauge = async (): Promise<string | undefined> =>
    /fulcrum_circuit_state\{service="api"\} (\d)/.exec((await get(`${tb.url}/metrics?format=prometheus`)).body)?.[1];

  test('opens after minRequests of 500s, fails fast without backend hits, half-opens after openFor, closes when the trials succeed', async () => {
    assert.equal((await circuitOf()).state, 'closed');
    assert.equal(await gauge(), '0');
    for (let i = 0; i < 5; i++) assert.equal((await get(`${tb.url}/`)).status, 500, 'the backend\'s own 500s, while closed');
    assert.equal(api.hits, 5);

    const refused = [];
    for (let i = 0; i < 10; i++) refused.push(await get(`${tb.url}/`));
    for (const r of refused) {
      assert.equal(r.status, 503);
      assert.equal(r.headers['x-fulcrum-error'], 'FULCRUM_ERR_CIRCUIT_OPEN');
    }
    assert.equal(api.hits, 5, 'no request reached the backend while open');
    const open = await circuitOf();
    assert.deepEqual([open.state, open.opens], ['open', 1]);
    assert.equal(await gauge(), '1');
    const opened = log.find('circuit opened: requests are refused');
    assert.equal(opened.length, 1);
    assert.equal(opened[0]!.service, 'api');
    assert.match(String(opened[0]!.why), /5 of 5 requests failed/);

    // Another service, without a breaker, is not affected by this one's circuit.
    for (let i = 0; i < 6; i++) assert.equal((await get(`${tb.url}/web`)).status, 500);
    assert.equal(web.hits, 6);

    const snapshot = buildSnapshot(tb.balancer, new Sampler(tb.balancer.metrics));
    assert.deepEqual(snapshot.circuits.map((c) => [c.service, c.state]), [['api', 'open']], 'the dashboard shows the circuit of each service that has one');

    // The backend recovers (slowly enough that the trials overlap); openFor passes.
    api.answer = { status: 200, delayMs: 1000 };
    await sleep(OPEN_FOR_MS + 100);
    assert.equal((await circuitOf()).state, 'half-open');
    assert.equal(await gauge(), '2');
    const trials = await Promise.all([get(`${tb.url}/`), get(`${tb.url}/`), get(`${tb.url}/`)]);
    const statuses = trials.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 503], 'two trials go through, a third request is refused meanwhile');
    assert.equal(trials.find((r) => r.status === 503)!.headers['x-fulcrum-error'], 'FULCRUM_ERR_CIRCUIT_OPEN');
    assert.equal(api.hits, 7);

    assert.equal((await circuitOf()).state, 'closed');
    assert.equal(await gauge(), '0');
    assert.deepEqual(log.lines.filter((l) => l.circuit !== undefined).map((l) => l.circuit), ['open', 'half-open', 'closed']);
    api.answer = { status: 200 };
    assert.equal((await get(`${tb.url}/`)).status, 200);
  });

  test('a failing trial opens it again', async () => {
    api.answer = { status: 500 };
    for (let i = 0; i < 5; i++) await get(`${tb.url}/`);
    assert.equal((await circuitOf()).state, 'open');
    await sleep(OPEN_FOR_MS + 100);
    const hits = api.hits;
    assert.equal((await get(`${tb.url}/`)).status, 500, 'the trial reaches the backend');
    assert.equal(api.hits, hits + 1);
    const after = await circuitOf();
    assert.equal(after.state, 'open');
    assert.equal((await get(`${tb.url}/`)).headers['x-fulcrum-error'], 'FULCRUM_ERR_CIRCUIT_OPEN');
    assert.equal(api.hits, hits + 1);
  });
});
