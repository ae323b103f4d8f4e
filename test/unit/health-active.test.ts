import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../../src/backends/backend.js';
import { BackendPool } from '../../src/backends/pool.js';
import { Reason } from '../../src/backends/reasons.js';
import { validateConfig } from '../../src/config/load.js';
import type { HealthCheckConfig } from '../../src/config/schema.js';
import { ActiveHealthChecker, type CheckResult, type HealthCheck } from '../../src/health/active.js';
import { FakeClock, settle } from '../helpers/fake-clock.js';

const START = 1_700_000_000_000;
const INTERVAL = 1000;
const TIMEOUT = 200;

/** healthConfig: interval 1s, timeout 200ms, 2 passes to come back, 3 failures to go out (distinct on purpose). */
function healthConfig(overrides: Record<string, unknown> = {}): HealthCheckConfig {
  return validateConfig({ healthCheck: { interval: `${INTERVAL}ms`, timeout: `${TIMEOUT}ms`, healthyThreshold: 2, unhealthyThreshold: 3, ...overrides } }).healthCheck;
}

/** Outcome of one scripted check: pass, fail, never settle until aborted, or throw. */
type Outcome = 'ok' | 'fail' | 'hang' | 'throw';

/** ScriptedCheck answers each backend from its script, in order, then with its default; it records every call. */
class ScriptedCheck implements HealthCheck {
  readonly calls: { id: string; at: number }[] = [];
  readonly #scripts = new Map<string, Outcome[]>();

  constructor(private readonly clock: FakeClock, private readonly fallback: Outcome = 'ok') {}

  script(id: string, ...outcomes: Outcome[]): this {
    this.#scripts.set(id, [...(this.#scripts.get(id) ?? []), ...outcomes]);
    return this;
  }

  callsFor(id: string): number[] {
    return this.calls.filter((c) => c.id === id).map((c) => c.at - START);
  }

  check(backend: Backend, signal: AbortSignal): Promise<CheckResult> {
    this.calls.push({ id: backend.id, at: this.clock.now() });
    const outcome = this.#scripts.get(backend.id)?.shift() ?? this.fallback;
    switch (outcome) {
      case 'ok': return Promise.resolve({ ok: true, detail: 'status 200' });
      case 'fail': return Promise.resolve({ ok: false, detail: 'status 503' });
      case 'throw': return Promise.reject(new Error('probe exploded'));
      case 'hang': return new Promise((resolve) => {
        signal.addEventListener('abort', () => resolve({ ok: false, detail: `aborted: ${(signal.reason as Error).message}` }), { once: true });
      });
    }
  }
}

interface Setup {
  clock: FakeClock;
  pool: BackendPool;
  check: ScriptedCheck;
  checker: ActiveHealthChecker;
  flips: { id: string; healthy: boolean; detail: string }[];
  passes: string[];
  b1: Backend;
  b2: Backend;
}

function setup(options: { config?: HealthCheckConfig; gate?: () => boolean; fallback?: Outcome; b2Healthy?: boolean } = {}): Setup {
  const clock = new FakeClock(START);
  const pool = new BackendPool();
  const configured = validateConfig({ backends: [{ id: 'b1', url: 'http://10.0.0.1:8080' }, { id: 'b2', url: 'http://10.0.0.2:8080', healthy: options.b2Healthy ?? true }] });
  pool.replaceAll(configured.backends);
  const check = new ScriptedCheck(clock, options.fallback);
  const flips: Setup['flips'] = [];
  const passes: string[] = [];
  const checker = new ActiveHealthChecker({
    config: options.config ?? healthConfig(),
    backends: () => pool.snapshot,
    check,
    onFlip: (b, detail) => flips.push({ id: b.id, healthy: b.healthy, detail }),
    onPass: (b) => passes.push(b.id),
    clock,
    ...(options.gate !== undefined ? { gate: options.gate } : {}),
  });
  return { clock, pool, check, checker, flips, passes, b1: pool.get('b1')!, b2: pool.get('b2')! };
}

describe('active health checker: scheduling', () => {
  test('a round at start, then one at each interval and never before', async () => {
    const { clock, check, checker } = setup();
    assert.equal(clock.pending, 0, 'nothing scheduled before start()');
    checker.start();
    await clock.advance(0);
    assert.deepEqual(check.callsFor('b1'), [0]);
    assert.deepEqual(check.callsFor('b2'), [0]);
    await clock.advance(INTERVAL - 1);
    assert.equal(check.calls.length, 2, 'no check before the interval is up');
    await clock.advance(1);
    assert.deepEqual(check.callsFor('b1'), [0, 1000]);
    await clock.advance(3 * INTERVAL);
    assert.deepEqual(check.callsFor('b1'), [0, 1000, 2000, 3000, 4000]);
    assert.deepEqual(check.callsFor('b2'), [0, 1000, 2000, 3000, 4000]);
    assert.deepEqual(clock.dueIn(), [INTERVAL], 'one timer: the next round');
    checker.start();
    await clock.advance(0);
    assert.equal(check.calls.length, 10, 'a second start() schedules nothing more');
    checker.stop();
  });

  test('a disabled config schedules nothing', async () => {
    const { clock, check, checker } = setup({ config: healthConfig({ enabled: false }) });
    checker.start();
    await clock.advance(10 * INTERVAL);
    assert.equal(check.calls.length, 0);
    assert.equal(clock.pending, 0);
  });

  test('lastCheck is the injected clock\'s time of the result', async () => {
    const { clock, b1, checker } = setup();
    checker.start();
    await clock.advance(2500);
    assert.equal(b1.state.lastCheck, START + 2000);
    assert.equal(b1.state.lastCheckOk, true);
    checker.stop();
  });

  test('stop() leaves no timer: the next round and the timeouts of checks in flight are cleared', async () => {
    const { clock, check, checker, b1 } = setup({ fallback: 'hang' });
    checker.start();
    await clock.advance(0);
    assert.equal(clock.pending, 3, 'the next round and one timeout per check in flight');
    checker.stop();
    await settle();
    assert.equal(clock.pending, 0);
    assert.equal(b1.state.lastCheck, undefined, 'the aborted checks\' results are dropped');
    await clock.advance(10 * INTERVAL);
    assert.equal(check.calls.length, 2, 'no round after stop()');
    await checker.checkBackend(b1);
    assert.equal(check.calls.length, 2, 'a stopped checker checks nothing, even when asked');
    checker.start();
    await clock.advance(10 * INTERVAL);
    assert.equal(check.calls.length, 2, 'stop() is final: start() does not restart it');
  });
});

describe('active health checker: thresholds', () => {
  test('unhealthyThreshold failures in a row take a backend out, healthyThreshold passes bring it back, one onFlip per flip', async () => {
    const { check, checker, b1, b2, flips } = setup();
    check.script('b1', 'fail', 'fail', 'fail', 'fail', 'ok', 'ok', 'ok');
    const round = async (): Promise<void> => { await checker.runAll(); };
    await round();
    await round();
    assert.equal(b1.healthy, true, '2 failures of 3: still in');
    assert.equal(b1.state.checkStreak, -2);
    assert.equal(flips.length, 0);
    await round();
    assert.equal(b1.healthy, false, 'the 3rd failure in a row takes it out');
    assert.equal(b1.state.reasons, Reason.ACTIVE_CHECK_FAILED);
    assert.equal(b1.state.lastCheckError, 'status 503');
    assert.deepEqual(flips, [{ id: 'b1', healthy: false, detail: 'failed 3 checks in a row (status 503)' }]);
    await round();
    assert.equal(flips.length, 1, 'a 4th failure flips nothing');
    await round();
    assert.equal(b1.healthy, false, '1 pass of 2: still out');
    assert.equal(b1.state.checkStreak, 1, 'a pass ends the failure streak');
    await round();
    assert.equal(b1.healthy, true, 'the 2nd pass in a row brings it back');
    assert.equal(b1.state.lastCheckError, undefined);
    assert.deepEqual(flips[1], { id: 'b1', healthy: true, detail: 'passed 2 checks in a row (status 200)' });
    await round();
    assert.equal(flips.length, 2, 'a 3rd pass flips nothing');
    assert.equal(b2.healthy, true);
    assert.ok(flips.every((f) => f.id === 'b1'), 'b2 always passed and never flipped');
  });

  test('a pass between failures resets the count; a failure between passes does too', async () => {
    const { check, checker, b1, flips } = setup();
    check.script('b1', 'fail', 'fail', 'ok', 'fail', 'fail', 'ok', 'fail', 'fail', 'fail', 'ok', 'fail', 'ok', 'ok');
    for (let i = 0; i < 8; i++) await checker.runAll();
    assert.equal(b1.healthy, true, 'never 3 failures in a row so far');
    await checker.runAll();
    assert.equal(b1.healthy, false);
    for (let i = 0; i < 3; i++) await checker.runAll();
    assert.equal(b1.healthy, false, 'pass, fail, pass: never 2 passes in a row');
    await checker.runAll();
    assert.equal(b1.healthy, true);
    assert.deepEqual(flips.map((f) => f.healthy), [false, true]);
  });

  test('a backend configured healthy: false comes in after healthyThreshold passes', async () => {
    const { checker, b2, flips } = setup({ b2Healthy: false });
    assert.equal(b2.state.reasons, Reason.INITIALLY_DOWN);
    await checker.runAll();
    assert.equal(b2.healthy, false);
    await checker.runAll();
    assert.equal(b2.healthy, true);
    assert.deepEqual(flips, [{ id: 'b2', healthy: true, detail: 'passed 2 checks in a row (status 200)' }]);
  });

  test('thresholds count the timer\'s rounds too', async () => {
    const { clock, check, checker, b1, flips } = setup();
    check.script('b1', 'fail', 'fail', 'fail');
    checker.start();
    await clock.advance(2 * INTERVAL - 1);
    assert.equal(b1.healthy, true, 'rounds at 0s and 1s: two failures');
    await clock.advance(1);
    assert.equal(b1.healthy, false, 'the round at 2s: the third');
    assert.equal(flips.length, 1);
    checker.stop();
  });

  test('onPass is told of every pass, before the observers', async () => {
    const { check, checker, passes } = setup();
    check.script('b1', 'ok', 'fail', 'ok');
    const seen: string[] = [];
    checker.onResult((b, r) => seen.push(`${b.id}:${r.ok}:${passes.length}`));
    for (let i = 0; i < 3; i++) await checker.runAll();
    assert.deepEqual(passes, ['b1', 'b2', 'b2', 'b1', 'b2']);
    assert.deepEqual(seen, ['b1:true:1', 'b2:true:2', 'b1:false:2', 'b2:true:3', 'b1:true:4', 'b2:true:5']);
  });
});

describe('active health checker: timeouts and failures of the probe', () => {
  test('a check that does not settle is aborted after timeout and counts as a failure', async () => {
    const { clock, check, checker, b1, b2 } = setup();
    check.script('b1', 'hang');
    let done = false;
    const round = checker.runAll().then(() => { done = true; });
    await clock.advance(TIMEOUT - 1);
    assert.equal(done, false, 'still waiting 1ms before the timeout');
    assert.equal(b1.state.lastCheck, undefined);
    assert.equal(b2.state.lastCheckOk, true, 'the other backend was not held up');
    await clock.advance(1);
    await round;
    assert.equal(done, true);
    assert.equal(b1.state.lastCheckOk, false);
    assert.equal(b1.state.lastCheck, START + TIMEOUT);
    assert.equal(b1.state.lastCheckError, `aborted: health check timed out after ${TIMEOUT}ms`);
    assert.equal(b1.state.checkStreak, -1);
    assert.equal(clock.pending, 0, 'the timeouts of settled checks are cleared');
  });

  test('hanging checks take a backend out at unhealthyThreshold, one check at a time per backend', async () => {
    const { clock, check, checker, b1, flips } = setup({ fallback: 'hang' });
    checker.start();
    await clock.advance(0);
    void checker.checkBackend(b1);
    assert.equal(check.callsFor('b1').length, 1, 'no second check while one is in flight');
    await clock.advance(2 * INTERVAL + TIMEOUT);
    assert.deepEqual(check.callsFor('b1'), [0, 1000, 2000]);
    assert.equal(b1.healthy, false);
    assert.match(flips[0]!.detail, /^failed 3 checks in a row \(aborted: health check timed out after 200ms\)$/);
    checker.stop();
  });

  test('a check that throws counts as a failure', async () => {
    const { check, checker, b1 } = setup();
    check.script('b1', 'throw');
    await checker.runAll();
    assert.equal(b1.state.lastCheckOk, false);
    assert.equal(b1.state.lastCheckError, 'probe exploded');
    assert.equal(b1.state.checkStreak, -1);
  });

  test('the result for a backend removed meanwhile is dropped', async () => {
    const { clock, check, checker, pool, b1 } = setup();
    check.script('b1', 'hang');
    const seen: string[] = [];
    checker.onResult((b) => seen.push(b.id));
    const round = checker.runAll();
    pool.remove('b1');
    await clock.advance(TIMEOUT);
    await round;
    assert.equal(b1.state.lastCheck, undefined);
    assert.deepEqual(seen, ['b2']);
  });
});

describe('active health checker: gate', () => {
  test('no round runs while the gate is closed; checks resume at the first interval after it opens', async () => {
    let open = false;
    const { clock, check, checker } = setup({ gate: () => open });
    assert.equal(checker.shouldRun(), false);
    checker.start();
    await clock.advance(5 * INTERVAL);
    assert.equal(check.calls.length, 0);
    assert.deepEqual(clock.dueIn(), [INTERVAL], 'the timer keeps going');
    open = true;
    assert.equal(checker.shouldRun(), true);
    await clock.advance(INTERVAL - 1);
    assert.equal(check.calls.length, 0);
    await clock.advance(1);
    assert.deepEqual(check.callsFor('b1'), [6000]);
    open = false;
    await clock.advance(3 * INTERVAL);
    assert.deepEqual(check.callsFor('b1'), [6000], 'closed again: no more rounds');
    checker.stop();
  });

  test('setGate replaces the gate; direct runAll is not gated', async () => {
    const { clock, check, checker } = setup();
    checker.start();
    await clock.advance(0);
    assert.equal(check.calls.length, 2);
    checker.setGate(() => false);
    assert.equal(checker.shouldRun(), false);
    await clock.advance(3 * INTERVAL);
    assert.equal(check.calls.length, 2);
    await checker.runAll();
    assert.equal(check.calls.length, 4, 'runAll is an explicit request');
    checker.setGate(() => true);
    await clock.advance(INTERVAL);
    assert.equal(check.calls.length, 6);
    checker.stop();
  });
});

describe('active health checker: observers', () => {
  test('every observer sees every result, after the thresholds; unsubscribe stops one', async () => {
    const { check, checker, b1 } = setup();
    check.script('b1', 'fail', 'fail', 'fail');
    const a: string[] = [];
    const b: string[] = [];
    const order: string[] = [];
    const offA = checker.onResult((backend, result) => { a.push(`${backend.id}:${result.ok}`); order.push('a'); });
    checker.onResult((backend, result) => { b.push(`${backend.id}:${result.ok}:${backend.healthy}`); order.push('b'); });
    await checker.runAll();
    await checker.runAll();
    assert.deepEqual(a, ['b1:false', 'b2:true', 'b1:false', 'b2:true']);
    assert.deepEqual(order.slice(0, 2), ['a', 'b'], 'in subscription order');
    offA();
    offA();
    await checker.runAll();
    assert.equal(a.length, 4, 'unsubscribed: no more calls');
    assert.deepEqual(b.slice(4), ['b1:false:false', 'b2:true:true'], 'the 3rd failure is seen with the backend already out');
    assert.equal(b1.healthy, false);
  });

  test('the same listener subscribed twice is called twice, and each unsubscribe removes one', async () => {
    const { checker } = setup();
    let calls = 0;
    const listener = (): void => { calls++; };
    const off1 = checker.onResult(listener);
    checker.onResult(listener);
    await checker.runAll();
    assert.equal(calls, 4);
    off1();
    await checker.runAll();
    assert.equal(calls, 6);
  });
});

describe('active health checker: reconfigure', () => {
  test('new interval, thresholds and probe apply in place; streaks, gate and observers stay', async () => {
    const { clock, check, checker, b1, flips } = setup();
    check.script('b1', 'fail', 'fail');
    let gateCalls = 0;
    checker.setGate(() => { gateCalls++; return true; });
    const seen: string[] = [];
    checker.onResult((b, r) => seen.push(`${b.id}:${r.ok}`));
    checker.start();
    await clock.advance(INTERVAL + 500);
    assert.equal(b1.state.checkStreak, -2);
    const next = new ScriptedCheck(clock).script('b1', 'fail');
    checker.reconfigure(healthConfig({ interval: '5s', unhealthyThreshold: 2 }), next);
    assert.equal(checker.config.interval, 5000);
    await clock.advance(0);
    assert.deepEqual(next.callsFor('b1'), [1500], 'a round at once with the new probe');
    assert.equal(b1.state.checkStreak, -3, 'the streak carried over');
    assert.equal(b1.healthy, false, 'the new threshold (2) applies');
    assert.deepEqual(flips.map((f) => f.detail), ['failed 3 checks in a row (status 503)']);
    await clock.advance(4999);
    assert.deepEqual(next.callsFor('b1'), [1500], 'the new interval: nothing before 5s');
    await clock.advance(1);
    assert.deepEqual(next.callsFor('b1'), [1500, 6500]);
    assert.equal(check.calls.length, 4, 'the old probe is not called any more');
    assert.equal(seen.length, 8, 'the observer stayed subscribed');
    assert.equal(gateCalls, 4, 'the gate stayed: asked at 0, 1s, 1.5s, 6.5s');
    checker.stop();
  });

  test('checks in flight at reconfigure are aborted and their results dropped', async () => {
    const { clock, checker, b1, b2 } = setup({ fallback: 'hang' });
    const seen: string[] = [];
    checker.onResult((b, r) => seen.push(`${b.id}:${r.detail}`));
    checker.start();
    await clock.advance(0);
    const next = new ScriptedCheck(clock, 'ok');
    checker.reconfigure(healthConfig(), next);
    await clock.advance(0);
    assert.deepEqual(next.callsFor('b1'), [0], 'the new probe runs at once, not held back by the aborted check');
    assert.equal(b1.state.lastCheckOk, true);
    assert.equal(b2.state.checkStreak, 1, 'only the new probe\'s pass counted');
    assert.deepEqual(seen, ['b1:status 200', 'b2:status 200'], 'the aborted checks\' failures never reached the observers');
    assert.deepEqual(clock.dueIn(), [INTERVAL], 'only the next round is pending');
    checker.stop();
  });

  test('reconfigure before start schedules nothing; disabling stops the rounds, enabling restarts them', async () => {
    const { clock, check, checker } = setup();
    checker.reconfigure(healthConfig({ interval: '500ms' }), check);
    await clock.advance(5000);
    assert.equal(check.calls.length, 0, 'not started: reconfigure does not start it');
    checker.start();
    await clock.advance(0);
    assert.equal(check.calls.length, 2);
    checker.reconfigure(healthConfig({ enabled: false }), check);
    await clock.advance(10 * INTERVAL);
    assert.equal(check.calls.length, 2);
    assert.equal(clock.pending, 0);
    checker.reconfigure(healthConfig(), check);
    await clock.advance(0);
    assert.equal(check.calls.length, 4, 'enabled again: a round at once');
    checker.stop();
    checker.reconfigure(healthConfig(), check);
    assert.equal(clock.pending, 0, 'a stopped checker stays stopped');
  });
});
