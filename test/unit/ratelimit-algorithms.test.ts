import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SlidingWindow } from '../../src/ratelimit/sliding-window.js';
import { TokenBucket } from '../../src/ratelimit/token-bucket.js';
import { Decision, type LimitAlgorithm, type RateLimitPolicy } from '../../src/ratelimit/types.js';

/** Limiter runs one key's state through an algorithm with an explicit clock. */
class Limiter<S> {
  readonly d = new Decision();
  state: S | undefined;
  constructor(readonly algorithm: LimitAlgorithm<S>) {}
  at(now: number): Decision {
    this.state ??= this.algorithm.fresh(now);
    this.algorithm.decide(this.state, now, this.d);
    return { ...this.d };
  }
  /** count sends n requests at `now` and returns how many were allowed. */
  count(now: number, n: number): number {
    let allowed = 0;
    for (let i = 0; i < n; i++) if (this.at(now).allowed) allowed++;
    return allowed;
  }
}

const tb = (rate: number, per: number, burst: number): Limiter<unknown> =>
  new Limiter(new TokenBucket({ algorithm: 'token-bucket', rate, per, burst }) as LimitAlgorithm<unknown>);
const sw = (rate: number, per: number): Limiter<unknown> =>
  new Limiter(new SlidingWindow({ algorithm: 'sliding-window', rate, per, burst: rate }) as LimitAlgorithm<unknown>);

describe('token bucket', () => {
  test('a full bucket allows the burst, then rejects with the exact wait', () => {
    const l = tb(10, 1000, 5);
    const seen = [0, 1, 2, 3, 4].map(() => l.at(0));
    assert.deepEqual(seen.map((d) => d.allowed), [true, true, true, true, true]);
    assert.deepEqual(seen.map((d) => d.remaining), [4, 3, 2, 1, 0]);
    // 10 tokens a second: each token takes 100ms to come back.
    assert.deepEqual(seen.map((d) => d.resetMs), [100, 200, 300, 400, 500]);
    assert.deepEqual(l.at(0), { allowed: false, remaining: 0, retryAfterMs: 100, resetMs: 500 });
  });

  test('refills continuously, to the millisecond', () => {
    const l = tb(10, 1000, 5);
    assert.equal(l.count(0, 10), 5);
    assert.deepEqual(l.at(99), { allowed: false, remaining: 0, retryAfterMs: 1, resetMs: 401 });
    assert.equal(l.at(100).allowed, true);
    // 150ms later: one and a half tokens; one is taken, half a token is left.
    assert.equal(l.at(250).allowed, true);
    assert.deepEqual(l.at(250), { allowed: false, remaining: 0, retryAfterMs: 50, resetMs: 450 });
    // Long idle: the bucket is full again, never more than the burst.
    assert.equal(l.count(100_000, 10), 5);
  });

  test('sustained traffic gets exactly burst + rate × time', () => {
    const l = tb(10, 1000, 5);
    let allowed = 0;
    for (let t = 0; t < 10_000; t++) if (l.at(t).allowed) allowed++;
    // 5 tokens at the start plus 10 a second for 9.999 s: floor(5 + 99.99).
    assert.equal(allowed, 104);
  });

  test('rates that do not divide the window stay exact', () => {
    const l = tb(3, 1000, 1);
    assert.equal(l.at(0).allowed, true);
    // 333ms refill 999/1000 of a token: one millisecond short.
    assert.deepEqual(l.at(333), { allowed: false, remaining: 0, retryAfterMs: 1, resetMs: 1 });
    assert.equal(l.at(334).allowed, true);
    let allowed = 2;
    for (let t = 335; t < 10_000; t++) if (l.at(t).allowed) allowed++;
    assert.equal(allowed, 30); // floor(1 + 3 × 9.999)
  });

  test('a clock that steps back refills nothing', () => {
    const l = tb(10, 1000, 1);
    assert.equal(l.at(1000).allowed, true);
    assert.equal(l.at(900).allowed, false);
    assert.equal(l.at(1099).allowed, false);
    assert.equal(l.at(1100).allowed, true);
  });

  test('idle exactly when the bucket is full again', () => {
    const a = new TokenBucket({ algorithm: 'token-bucket', rate: 10, per: 1000, burst: 5 });
    const s = a.fresh(0);
    a.decide(s, 0, new Decision());
    assert.equal(a.idleAfterMs, 500);
    assert.equal(a.idle(s, 499), false);
    assert.equal(a.idle(s, 500), true);
  });
});

describe('sliding window', () => {
  test('allows the rate in a window; the wait runs into the next window', () => {
    const l = sw(10, 1000);
    const seen = Array.from({ length: 10 }, () => l.at(0));
    assert.ok(seen.every((d) => d.allowed));
    assert.deepEqual(seen.map((d) => d.remaining), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    assert.equal(seen[0]!.resetMs, 2000);
    // At 1100ms the previous window's 10 weigh 9: one more fits.
    assert.deepEqual(l.at(0), { allowed: false, remaining: 0, retryAfterMs: 1100, resetMs: 2000 });
    assert.deepEqual(l.at(1099), { allowed: false, remaining: 0, retryAfterMs: 1, resetMs: 901 });
    assert.deepEqual(l.at(1100), { allowed: true, remaining: 0, retryAfterMs: 0, resetMs: 1900 });
  });

  test('the previous window weighs by its share still inside the sliding window', () => {
    const l = sw(10, 1000);
    assert.equal(l.count(500, 10), 10);
    // At 1000ms all 10 still weigh; each 100ms frees one.
    assert.equal(l.count(1000, 5), 0);
    assert.equal(l.count(1100, 5), 1);
    assert.equal(l.count(1300, 5), 2);
    // At 1999ms the previous 10 weigh 0.01, plus the 3 taken here: 6.99 free, 6 whole.
    assert.equal(l.count(1999, 20), 6);
  });

  test('a gap of more than one window forgets everything', () => {
    const l = sw(10, 1000);
    assert.equal(l.count(0, 20), 10);
    assert.equal(l.count(2500, 20), 10);
  });

  test('never more than the rate in one aligned window, under saturation', () => {
    const l = sw(7, 1000);
    const perWindow = new Map<number, number>();
    for (let t = 0; t < 10_000; t += 3) {
      if (l.at(t).allowed) perWindow.set(Math.floor(t / 1000), (perWindow.get(Math.floor(t / 1000)) ?? 0) + 1);
    }
    for (const [, n] of perWindow) assert.ok(n <= 7);
    // The first window takes all 7; after it, the previous window's weight keeps the
    // long-run count a little under the rate for evenly spaced saturating traffic.
    assert.equal(perWindow.get(0), 7);
    const total = [...perWindow.values()].reduce((a, b) => a + b, 0);
    assert.ok(total >= 56 && total <= 70, `total ${total}`);
  });

  test('idle two windows after its start', () => {
    const a = new SlidingWindow({ algorithm: 'sliding-window', rate: 10, per: 1000, burst: 10 });
    const s = a.fresh(1500);
    a.decide(s, 1500, new Decision());
    assert.equal(a.idle(s, 2999), false);
    assert.equal(a.idle(s, 3000), true);
  });
});

describe('policies are plain data', () => {
  test('the same policy object drives both algorithms without sharing state', () => {
    const policy: RateLimitPolicy = { algorithm: 'token-bucket', rate: 1, per: 1000, burst: 1 };
    const a = new TokenBucket(policy);
    const s1 = a.fresh(0);
    const s2 = a.fresh(0);
    const d = new Decision();
    a.decide(s1, 0, d);
    assert.equal(d.allowed, true);
    a.decide(s2, 0, d);
    assert.equal(d.allowed, true);
    a.decide(s1, 0, d);
    assert.equal(d.allowed, false);
  });
});
