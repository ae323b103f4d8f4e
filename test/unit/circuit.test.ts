/**
 * The circuit breaker's sliding window and state machine, with time driven
 * by hand (FakeClock): when it opens, what it refuses, when it half-opens,
 * how trials close or reopen it, and that stale outcomes are ignored.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { CircuitBreaker, OutcomeWindow, REFUSED, type CircuitState } from '../../src/service/circuit.js';
import { circuitBreakerSchema } from '../../src/config/schema.js';
import { FakeClock } from '../helpers/fake-clock.js';

const config = (over: Record<string, unknown> = {}) => circuitBreakerSchema.parse({ errorRatio: 0.5, minRequests: 4, window: '10s', openFor: '5s', halfOpenRequests: 2, ...over });

function breaker(over: Record<string, unknown> = {}) {
  const clock = new FakeClock();
  const changes: [CircuitState, CircuitState, string][] = [];
  const cb = new CircuitBreaker(config(over), (from, to, why) => changes.push([from, to, why]), clock);
  /** run admits one request and settles it at once. */
  const run = (failed: boolean, latencyMs = 5): number => {
    const ticket = cb.admit();
    if (ticket !== REFUSED) cb.settle(ticket, failed, latencyMs);
    return ticket;
  };
  return { clock, cb, changes, run };
}

describe('OutcomeWindow', () => {
  test('counts outcomes over the window and forgets them slot by slot as time passes', async () => {
    const clock = new FakeClock();
    const w = new OutcomeWindow(1000, 200, clock);
    w.record(true, 10);
    w.record(false, 300);
    assert.deepEqual(w.totals(), { requests: 2, failures: 1, slow: 1 });
    await clock.advance(500);
    w.record(true, 10);
    assert.deepEqual(w.totals(), { requests: 3, failures: 2, slow: 1 });
    await clock.advance(550); // the first two are now more than a window old
    assert.deepEqual(w.totals(), { requests: 1, failures: 1, slow: 0 });
    await clock.advance(60_000); // a long gap clears everything
    assert.deepEqual(w.totals(), { requests: 0, failures: 0, slow: 0 });
  });

  test('without a latency threshold nothing is slow', () => {
    const w = new OutcomeWindow(1000, 0, new FakeClock());
    w.record(false, 1e6);
    assert.equal(w.totals().slow, 0);
  });
});

describe('CircuitBreaker', () => {
  test('stays closed below minRequests, then opens at the error ratio', () => {
    const { cb, changes, run } = breaker();
    run(true);
    run(true);
    run(true);
    assert.equal(cb.state, 'closed', 'three failures are fewer than minRequests');
    run(false);
    assert.equal(cb.state, 'open', '3 of 4 failed: over errorRatio 0.5');
    assert.equal(changes.length, 1);
    assert.deepEqual(changes[0]!.slice(0, 2), ['closed', 'open']);
    assert.match(changes[0]![2], /3 of 4 requests failed/);
  });

  test('a healthy mix keeps it closed', () => {
    const { cb, run } = breaker();
    for (let i = 0; i < 40; i++) run(i % 3 === 1); // a third fail, never half of any prefix
    assert.equal(cb.state, 'closed');
  });

  test('old failures leave the window: the ratio is over the window only', async () => {
    const { cb, clock, run } = breaker();
    run(true);
    run(true);
    await clock.advance(11_000);
    run(true);
    run(false);
    run(false);
    run(false);
    assert.equal(cb.state, 'closed', '1 of 4 in the window');
  });

  test('p99 latency above latencyP99 opens it', () => {
    const { cb, changes, run } = breaker({ latencyP99: '100ms', minRequests: 10 });
    for (let i = 0; i < 9; i++) run(false, 20);
    run(false, 250); // 1 of 10 slow: the p99 is above 100 ms
    assert.equal(cb.state, 'open');
    assert.match(changes[0]![2], /p99 latency above 100ms/);
  });

  test('open refuses at once; after openFor it half-opens with halfOpenRequests trials', async () => {
    const { cb, clock, changes, run } = breaker();
    for (let i = 0; i < 4; i++) run(true);
    assert.equal(cb.admit(), REFUSED);
    assert.equal(cb.wouldAdmit(), false);
    await clock.advance(4_999);
    assert.equal(cb.admit(), REFUSED, 'still open just before openFor');
    await clock.advance(1);
    assert.equal(cb.state, 'half-open');
    assert.equal(cb.wouldAdmit(), true);
    const t1 = cb.admit();
    const t2 = cb.admit();
    assert.notEqual(t1, REFUSED);
    assert.notEqual(t2, REFUSED);
    assert.equal(cb.admit(), REFUSED, 'only halfOpenRequests trials at a time');
    assert.equal(cb.wouldAdmit(), false);
    cb.settle(t1, false, 5);
    assert.equal(cb.state, 'half-open', 'one success of two');
    cb.settle(t2, false, 5);
    assert.equal(cb.state, 'closed');
    assert.deepEqual(changes.map((c) => c[1]), ['open', 'half-open', 'closed']);
    // Closed with an empty window: it takes minRequests new failures to open again.
    run(true);
    run(true);
    run(true);
    assert.equal(cb.state, 'closed');
  });

  test('a failed trial opens it again for another openFor', async () => {
    const { cb, clock, run } = breaker();
    for (let i = 0; i < 4; i++) run(true);
    await clock.advance(5_000);
    const t = cb.admit();
    cb.settle(t, true, 5);
    assert.equal(cb.state, 'open');
    assert.equal(cb.opens, 2);
    await clock.advance(4_000);
    assert.equal(cb.state, 'open');
    await clock.advance(1_000);
    assert.equal(cb.state, 'half-open');
  });

  test('a released trial (client gone, no backend) frees its place; stale outcomes are ignored', async () => {
    const { cb, clock, run } = breaker({ halfOpenRequests: 1 });
    const early = cb.admit(); // admitted while closed, settled much later
    for (let i = 0; i < 4; i++) run(true);
    assert.equal(cb.state, 'open');
    await clock.advance(5_000);
    const trial = cb.admit();
    assert.equal(cb.admit(), REFUSED);
    cb.release(trial);
    const again = cb.admit();
    assert.notEqual(again, REFUSED, 'the released place goes to the next request');
    cb.settle(early, true, 5); // from the closed period: not a trial's outcome
    assert.equal(cb.state, 'half-open');
    cb.settle(again, false, 5);
    assert.equal(cb.state, 'closed');
  });

  test('status reports the state, the window and the trials', async () => {
    const { cb, clock, run } = breaker();
    for (let i = 0; i < 4; i++) run(true);
    const open = cb.status();
    assert.equal(open.state, 'open');
    assert.equal(typeof open.openUntil, 'string');
    await clock.advance(5_000);
    cb.admit();
    assert.deepEqual(cb.status().trials, { inFlight: 1, passed: 0, needed: 2 });
  });
});

describe('circuitBreaker config', () => {
  test('defaults, and errors that name the key', () => {
    assert.deepEqual(circuitBreakerSchema.parse({}), { errorRatio: 0.5, minRequests: 20, window: 10_000, openFor: 10_000, halfOpenRequests: 5 });
    assert.equal(circuitBreakerSchema.safeParse({ errorRatio: 0 }).success, false);
    assert.equal(circuitBreakerSchema.safeParse({ halfOpenRequests: 0 }).success, false);
    assert.equal(circuitBreakerSchema.safeParse({ window: '10ms' }).success, false);
    assert.equal(circuitBreakerSchema.safeParse({ trips: 3 }).success, false, 'unknown keys are refused');
  });
});
