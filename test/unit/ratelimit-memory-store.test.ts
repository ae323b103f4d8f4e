import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createMemoryStore } from '../../src/ratelimit/algorithm.js';
import { MemoryStore } from '../../src/ratelimit/memory-store.js';
import { TokenBucket } from '../../src/ratelimit/token-bucket.js';
import { Decision, type RateLimitPolicy } from '../../src/ratelimit/types.js';

const TOKEN_BUCKET: RateLimitPolicy = { algorithm: 'token-bucket', rate: 10, per: 1000, burst: 5 };
const SLIDING_WINDOW: RateLimitPolicy = { algorithm: 'sliding-window', rate: 4, per: 500, burst: 4 };

/** lcg is a seeded generator, so that "random" sequences are the same on every run. */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

describe('memory store', () => {
  test('keys are independent', () => {
    const store = createMemoryStore(TOKEN_BUCKET, 100);
    const d = new Decision();
    for (let i = 0; i < 5; i++) store.decide('a', 0, d);
    store.decide('a', 0, d);
    assert.equal(d.allowed, false);
    store.decide('b', 0, d);
    assert.equal(d.allowed, true);
    assert.equal(store.size, 2);
  });

  for (const policy of [TOKEN_BUCKET, SLIDING_WINDOW]) {
    test(`sweeping idle keys changes no decision (${policy.algorithm})`, () => {
      // One store swept before every request, one never swept: same answers throughout.
      const swept = createMemoryStore(policy, 1_000_000);
      const kept = createMemoryStore(policy, 1_000_000);
      const rand = lcg(7);
      const a = new Decision();
      const b = new Decision();
      let now = 1_700_000_000_000;
      let dropped = 0;
      let rejected = 0;
      for (let i = 0; i < 5000; i++) {
        // Mostly bursts (a few ms apart), now and then a pause long enough to go idle.
        now += rand() < 0.03 ? 400 + Math.floor(rand() * 1200) : Math.floor(rand() * 6);
        const key = `k${Math.floor(rand() * 4)}`;
        dropped += swept.sweep(now);
        swept.decide(key, now, a);
        kept.decide(key, now, b);
        assert.deepEqual({ ...a }, { ...b }, `request ${i}`);
        if (!a.allowed) rejected++;
      }
      // The sequence must exercise both sides for the comparison to mean something.
      assert.ok(dropped > 100, `dropped ${dropped}`);
      assert.ok(rejected > 100, `rejected ${rejected}`);
    });
  }

  test('the sweep keeps a key until its allowance is full again', () => {
    const store = createMemoryStore(TOKEN_BUCKET, 100);
    const d = new Decision();
    store.decide('a', 0, d);
    store.decide('b', 300, d);
    assert.equal(store.sweep(499), 0);
    assert.equal(store.sweep(500), 1); // 'a' was last used at 0; idle after the fill time (500ms)
    assert.equal(store.size, 1);
    assert.equal(store.sweep(800), 1);
    assert.equal(store.size, 0);
  });

  test('a flood of distinct clients never grows past maxKeys', () => {
    const maxKeys = 1000;
    const store = new MemoryStore(new TokenBucket(TOKEN_BUCKET), maxKeys);
    const d = new Decision();
    // A well-behaved client, active throughout the flood.
    store.decide('10.0.0.1', 0, d);
    let largest = 0;
    for (let i = 0; i < 50_000; i++) {
      // All within the fill time: nothing is idle, the cap alone bounds memory.
      store.decide(`198.51.${i >> 8}.${i & 255}`, i % 400, d);
      largest = Math.max(largest, store.size);
    }
    assert.ok(largest <= maxKeys, `largest ${largest}`);
    assert.ok(store.evicted >= 49_000, `evicted ${store.evicted}`);
    // Idle keys go first: once the flood's keys are idle, a new client at the cap
    // makes room by sweeping them, and no active key is forgotten.
    const before = store.evicted;
    const flood = store.size;
    let added = 0;
    while (store.size < maxKeys) store.decide(`203.0.113.${added++}`, 10_000, d);
    store.decide('203.0.114.1', 10_000, d);
    assert.equal(store.evicted, before);
    assert.equal(store.size, added + 1);
    assert.ok(flood > maxKeys / 2);
  });
});
