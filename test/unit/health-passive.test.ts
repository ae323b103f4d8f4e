import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../../src/backends/backend.js';
import { BackendPool } from '../../src/backends/pool.js';
import { Reason } from '../../src/backends/reasons.js';
import { validateConfig } from '../../src/config/load.js';
import { ActiveHealthChecker } from '../../src/health/active.js';
import { OutlierDetector, type OutlierConfig } from '../../src/health/passive.js';
import { FakeClock } from '../helpers/fake-clock.js';

const START = 1_700_000_000_000;
const BASE = 10_000;
const MAX = 25_000;

/** outlierConfig: 3 failures eject, for 10s, 20s, then 25s (the cap); at most 50% ejected. */
function outlierConfig(overrides: Record<string, unknown> = {}): OutlierConfig {
  return validateConfig({ outlierDetection: { consecutiveFailures: 3, baseEjectionTime: `${BASE}ms`, maxEjectionTime: `${MAX}ms`, maxEjectionPercent: 50, ...overrides } }).outlierDetection;
}

interface Setup {
  clock: FakeClock;
  pool: BackendPool;
  outlier: OutlierDetector;
  flips: { id: string; healthy: boolean; detail: string }[];
  backends: Backend[];
}

function setup(options: { config?: OutlierConfig; count?: number } = {}): Setup {
  const clock = new FakeClock(START);
  const pool = new BackendPool();
  const count = options.count ?? 4;
  pool.replaceAll(validateConfig({ backends: Array.from({ length: count }, (_, i) => ({ id: `b${i + 1}`, url: `http://10.0.0.${i + 1}:8080` })) }).backends);
  const flips: Setup['flips'] = [];
  const outlier = new OutlierDetector(options.config ?? outlierConfig(), pool, (b, detail) => flips.push({ id: b.id, healthy: b.healthy, detail }), clock);
  return { clock, pool, outlier, flips, backends: [...pool.snapshot] };
}

function fail(outlier: OutlierDetector, backend: Backend, times: number, detail = 'status 502'): void {
  for (let i = 0; i < times; i++) outlier.failure(backend, detail);
}

const ejected = (b: Backend): boolean => (b.state.reasons & Reason.EJECTED) !== 0;

describe('outlier detection: ejection', () => {
  test('consecutiveFailures failures in a row eject, not one fewer', () => {
    const { clock, outlier, flips, backends: [b1] } = setup();
    fail(outlier, b1!, 2);
    assert.equal(ejected(b1!), false);
    assert.equal(b1!.state.failureStreak, 2);
    assert.equal(clock.pending, 0);
    fail(outlier, b1!, 1, 'ECONNREFUSED');
    assert.equal(ejected(b1!), true);
    assert.equal(b1!.healthy, false);
    assert.equal(b1!.state.ejections, 1);
    assert.equal(b1!.state.failureStreak, 0, 'the streak starts over after an ejection');
    assert.equal(b1!.state.ejectedUntil, START + BASE, 'the injected clock\'s time');
    assert.deepEqual(flips, [{ id: 'b1', healthy: false, detail: 'ejected for 10000ms after 3 consecutive failures (last: ECONNREFUSED)' }]);
    assert.deepEqual(clock.dueIn(), [BASE]);
    fail(outlier, b1!, 5);
    assert.equal(b1!.state.ejections, 1, 'failures while ejected do not eject again');
    assert.equal(flips.length, 1);
    outlier.close();
  });

  test('a success resets the count', () => {
    const { outlier, backends: [b1] } = setup();
    fail(outlier, b1!, 2);
    outlier.success(b1!);
    assert.equal(b1!.state.failureStreak, 0);
    fail(outlier, b1!, 2);
    assert.equal(ejected(b1!), false, 'two, a success, two: never three in a row');
    fail(outlier, b1!, 1);
    assert.equal(ejected(b1!), true);
    outlier.close();
  });

  test('an ejected backend returns when its time is up', async () => {
    const { clock, outlier, flips, backends: [b1] } = setup();
    fail(outlier, b1!, 3);
    await clock.advance(BASE - 1);
    assert.equal(ejected(b1!), true);
    await clock.advance(1);
    assert.equal(ejected(b1!), false);
    assert.equal(b1!.healthy, true);
    assert.equal(b1!.state.ejectedUntil, 0);
    assert.deepEqual(flips[1], { id: 'b1', healthy: true, detail: 'ejection time elapsed' });
    assert.equal(clock.pending, 0);
  });

  test('each ejection lasts base times its number, up to maxEjectionTime', async () => {
    const { clock, outlier, flips, backends: [b1] } = setup();
    const lengths: number[] = [];
    for (let n = 1; n <= 4; n++) {
      fail(outlier, b1!, 3);
      assert.equal(b1!.state.ejections, n);
      const length = b1!.state.ejectedUntil - clock.now();
      lengths.push(length);
      await clock.advance(length - 1);
      assert.equal(ejected(b1!), true, `ejection ${n} still on 1ms before its end`);
      await clock.advance(1);
      assert.equal(ejected(b1!), false, `ejection ${n} over after ${length}ms`);
    }
    assert.deepEqual(lengths, [BASE, 2 * BASE, MAX, MAX]);
    assert.deepEqual(flips.filter((f) => !f.healthy).map((f) => f.detail.split(' after')[0]), ['ejected for 10000ms', 'ejected for 20000ms', 'ejected for 25000ms', 'ejected for 25000ms']);
  });

  test('disabled: failures are counted but nothing is ejected', () => {
    const { clock, outlier, backends: [b1] } = setup({ config: outlierConfig({ enabled: false }) });
    fail(outlier, b1!, 10);
    assert.equal(ejected(b1!), false);
    assert.equal(b1!.state.failureStreak, 10);
    assert.equal(clock.pending, 0);
  });
});

describe('outlier detection: maxEjectionPercent', () => {
  test('at most maxEjectionPercent of the pool is ejected at once; a return makes room', async () => {
    const { clock, outlier, backends: [b1, b2, b3] } = setup({ count: 4 });
    fail(outlier, b1!, 3);
    await clock.advance(1000);
    fail(outlier, b2!, 3);
    assert.equal(ejected(b1!) && ejected(b2!), true, '2 of 4: 50%');
    fail(outlier, b3!, 3);
    assert.equal(ejected(b3!), false, 'a third would be 75%');
    assert.equal(b3!.state.ejections, 0);
    assert.equal(b3!.state.failureStreak, 3, 'the streak stays: the next failure tries again');
    await clock.advance(BASE - 1000);
    assert.equal(ejected(b1!), false, 'b1 is back');
    fail(outlier, b3!, 1);
    assert.equal(ejected(b3!), true, 'now there is room');
    outlier.close();
  });

  test('the cap rounds down but one backend may always be ejected', () => {
    for (const [count, percent, cap] of [[4, 10, 1], [3, 0, 1], [1, 50, 1], [5, 40, 2], [5, 50, 2], [10, 100, 10]] as const) {
      const { outlier, backends } = setup({ count, config: outlierConfig({ maxEjectionPercent: percent }) });
      for (const b of backends) fail(outlier, b, 3);
      assert.equal(backends.filter(ejected).length, cap, `${count} backends at ${percent}%`);
      outlier.close();
    }
  });

  test('an empty pool ejects nothing', () => {
    const { outlier, pool, backends: [b1] } = setup({ count: 1 });
    pool.remove('b1');
    fail(outlier, b1!, 3);
    assert.equal(ejected(b1!), false);
  });
});

describe('outlier detection: requireActivePass', () => {
  test('an ejected backend returns only after its time and an active pass', async () => {
    const { clock, outlier, flips, backends: [b1] } = setup();
    outlier.requireActivePass = true;
    fail(outlier, b1!, 3);
    outlier.activeCheckPassed(b1!);
    assert.equal(ejected(b1!), true, 'a pass before the time is up does not end it');
    await clock.advance(BASE);
    assert.equal(ejected(b1!), true, 'the time is up but no check passed yet');
    assert.equal(b1!.state.ejectedUntil, 0);
    assert.equal(flips.length, 1, 'no flip when the time is up');
    assert.equal(clock.pending, 0);
    outlier.activeCheckPassed(b1!);
    assert.equal(ejected(b1!), false);
    assert.equal(b1!.healthy, true);
    assert.deepEqual(flips[1], { id: 'b1', healthy: true, detail: 'ejection time elapsed and an active check passed' });
    outlier.activeCheckPassed(b1!);
    assert.equal(flips.length, 2, 'a pass on a backend not ejected does nothing');
  });

  test('wired to the active checker\'s onPass, the first passing check after the ejection brings it back', async () => {
    const { clock, pool, outlier, flips, backends: [b1] } = setup();
    outlier.requireActivePass = true;
    const checker = new ActiveHealthChecker({
      config: validateConfig({ healthCheck: { interval: '4s', timeout: '1s' } }).healthCheck,
      backends: () => pool.snapshot,
      check: { check: () => Promise.resolve({ ok: true, detail: 'status 200' }) },
      onFlip: () => undefined,
      onPass: (b) => outlier.activeCheckPassed(b),
      clock,
    });
    checker.start();
    await clock.advance(1000);
    fail(outlier, b1!, 3);
    await clock.advance(BASE);
    assert.equal(ejected(b1!), true, 'rounds at 4s, 8s: before the end (11s)');
    await clock.advance(999);
    assert.equal(ejected(b1!), true, 'the time is up (11s), the next round is at 12s');
    await clock.advance(1);
    assert.equal(ejected(b1!), false, 'the round at 12s');
    assert.equal(flips.at(-1)!.detail, 'ejection time elapsed and an active check passed');
    checker.stop();
  });
});

describe('outlier detection: reconfigure, forget, close', () => {
  test('reconfigure applies to the next failures and ejections; a running ejection keeps its end', async () => {
    const { clock, outlier, backends: [b1, b2] } = setup();
    fail(outlier, b1!, 3);
    fail(outlier, b2!, 2);
    outlier.reconfigure(outlierConfig({ consecutiveFailures: 5, baseEjectionTime: '1s' }));
    fail(outlier, b2!, 2);
    assert.equal(ejected(b2!), false, '4 failures (the streak carried over) of the new 5');
    fail(outlier, b2!, 1);
    assert.equal(ejected(b2!), true);
    assert.equal(b2!.state.ejectedUntil - clock.now(), 1000, 'the new base time');
    assert.equal(b1!.state.ejectedUntil, START + BASE, 'the running ejection is unchanged');
    await clock.advance(1000);
    assert.equal(ejected(b2!), false);
    assert.equal(ejected(b1!), true);
    outlier.reconfigure(outlierConfig({ enabled: false }));
    fail(outlier, b2!, 10);
    assert.equal(ejected(b2!), false, 'disabled');
    await clock.advance(BASE);
    assert.equal(ejected(b1!), false, 'the ejection begun before ended on time');
  });

  test('forget clears a removed backend\'s timer', async () => {
    const { clock, outlier, pool, flips, backends: [b1, b2] } = setup();
    fail(outlier, b1!, 3);
    fail(outlier, b2!, 3);
    assert.equal(clock.pending, 2);
    pool.remove('b1');
    outlier.forget('b1');
    assert.deepEqual(clock.dueIn(), [BASE]);
    outlier.forget('b9');
    await clock.advance(BASE);
    assert.equal(ejected(b1!), true, 'the forgotten backend is left as it was');
    assert.deepEqual(flips.filter((f) => f.healthy).map((f) => f.id), ['b2']);
  });

  test('close clears every timer', async () => {
    const { clock, outlier, flips, backends: [b1, b2] } = setup();
    fail(outlier, b1!, 3);
    fail(outlier, b2!, 3);
    outlier.close();
    assert.equal(clock.pending, 0);
    await clock.advance(10 * MAX);
    assert.equal(flips.length, 2, 'no return after close');
  });
});
