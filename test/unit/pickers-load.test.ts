import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Backend } from '../../src/backends/backend.js';
import { Reason } from '../../src/backends/reasons.js';
import { LeastConnectionsPicker } from '../../src/balancer/least-connections.js';
import { P2CPicker } from '../../src/balancer/p2c.js';
import type { PickContext, Picker } from '../../src/balancer/picker.js';
import { seededRandom } from '../../src/balancer/prng.js';
import { RandomPicker } from '../../src/balancer/random.js';

const ctx = (tried?: Set<Backend>): PickContext => ({ clientAddress: '192.0.2.1', hashKey: undefined, tried });

function makeBackends(weights: readonly number[]): Backend[] {
  return weights.map((weight, i) => new Backend({ id: `b${i}`, config: { url: `http://10.0.0.${i + 1}:8080`, weight, healthy: true } }));
}

function counts(picker: Picker, n: number): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const id = picker.pick(ctx())?.id ?? '-';
    out.set(id, (out.get(id) ?? 0) + 1);
  }
  return out;
}

describe('least-connections', () => {
  test('picks the backend with the fewest requests in flight', () => {
    const backends = makeBackends([1, 1, 1]);
    const picker = new LeastConnectionsPicker(backends, 0);
    backends[0]!.state.inflight = 4;
    backends[1]!.state.inflight = 1;
    backends[2]!.state.inflight = 3;
    assert.equal(picker.pick(ctx())?.id, 'b1');
    backends[1]!.state.inflight = 5;
    assert.equal(picker.pick(ctx())?.id, 'b2');
  });

  test('follows the in-flight counts as requests start and finish', () => {
    const backends = makeBackends([1, 1, 1]);
    const picker = new LeastConnectionsPicker(backends, 0);
    // Start 30 requests that never finish: each pick adds one to the chosen backend.
    for (let i = 0; i < 30; i++) picker.pick(ctx())!.state.inflight++;
    assert.deepEqual(backends.map((b) => b.state.inflight), [10, 10, 10]);
    // b1's requests finish: the next ten all go to b1.
    backends[1]!.state.inflight = 0;
    for (let i = 0; i < 10; i++) {
      const b = picker.pick(ctx())!;
      assert.equal(b.id, 'b1');
      b.state.inflight++;
    }
  });

  test('weighs the counts: a backend of weight 2 holds twice the requests', () => {
    const backends = makeBackends([2, 1]);
    const picker = new LeastConnectionsPicker(backends, 0);
    for (let i = 0; i < 30; i++) picker.pick(ctx())!.state.inflight++;
    assert.deepEqual(backends.map((b) => b.state.inflight), [20, 10]);
  });

  test('ties are broken in turn, by weight, not always in favour of the same backend', () => {
    const even = new LeastConnectionsPicker(makeBackends([1, 1, 1]), 0);
    let seq = '';
    for (let i = 0; i < 6; i++) seq += even.pick(ctx())!.id.slice(1);
    assert.equal(seq, '012012');
    // All idle: the weights 3:1 still hold (smooth weighted round-robin among the tied).
    const seen = counts(new LeastConnectionsPicker(makeBackends([3, 1]), 0), 400);
    assert.deepEqual([seen.get('b0'), seen.get('b1')], [300, 100]);
  });

  test('an unhealthy or tried backend is never picked, even when idle', () => {
    const backends = makeBackends([1, 1, 1]);
    const picker = new LeastConnectionsPicker(backends, 0);
    backends[0]!.setReason(Reason.EJECTED, true);
    backends[1]!.state.inflight = 50;
    backends[2]!.state.inflight = 100;
    for (let i = 0; i < 10; i++) assert.equal(picker.pick(ctx())?.id, 'b1');
    assert.equal(picker.pick(ctx(new Set([backends[1]!])))?.id, 'b2');
    assert.equal(picker.pick(ctx(new Set([backends[1]!, backends[2]!]))), undefined);
  });

  test('weight 0 takes no new requests', () => {
    const backends = makeBackends([0, 1]);
    backends[1]!.state.inflight = 1000;
    assert.equal(new LeastConnectionsPicker(backends, 0).pick(ctx())?.id, 'b1');
  });
});

describe('random (seeded)', () => {
  const N = 60_000;
  const TOLERANCE = 0.01; // absolute share; the standard error here is about 0.002

  test('the distribution follows the weights', () => {
    const picker = new RandomPicker(makeBackends([1, 2, 3]), 0, seededRandom(42));
    const seen = counts(picker, N);
    [1 / 6, 2 / 6, 3 / 6].forEach((share, i) => {
      const got = (seen.get(`b${i}`) ?? 0) / N;
      assert.ok(Math.abs(got - share) < TOLERANCE, `b${i}: ${got} vs ${share}`);
    });
  });

  test('equal weights are uniform; unhealthy ones are never picked and the rest keep their ratio', () => {
    const backends = makeBackends([1, 1, 1, 1]);
    const picker = new RandomPicker(backends, 0, seededRandom(7));
    backends[2]!.setReason(Reason.ACTIVE_CHECK_FAILED, true);
    const seen = counts(picker, N);
    assert.equal(seen.get('b2'), undefined);
    for (const id of ['b0', 'b1', 'b3']) assert.ok(Math.abs((seen.get(id) ?? 0) / N - 1 / 3) < TOLERANCE, `${id}: ${seen.get(id)}`);
  });

  test('with most backends down, the survivors share by weight (exact scan after rejected draws)', () => {
    const backends = makeBackends([1, 1, 1, 1, 1, 1, 1, 1, 1, 3]);
    for (let i = 1; i < 9; i++) backends[i]!.setReason(Reason.DISABLED, true);
    const seen = counts(new RandomPicker(backends, 0, seededRandom(3)), N);
    assert.deepEqual([...seen.keys()].sort(), ['b0', 'b9']);
    assert.ok(Math.abs((seen.get('b9') ?? 0) / N - 0.75) < TOLERANCE, `b9: ${seen.get('b9')}`);
    for (const b of backends) b.setReason(Reason.DISABLED, true);
    assert.equal(new RandomPicker(backends, 0, seededRandom(3)).pick(ctx()), undefined);
  });

  test('weight 0 is never picked; slow start lowers a recovering backend share', () => {
    const backends = makeBackends([0, 1, 1]);
    const window = 3_600_000;
    backends[1]!.state.healthySince = Date.now() - window;
    backends[2]!.state.healthySince = Date.now(); // ~10% of its weight
    const seen = counts(new RandomPicker(backends, window, seededRandom(11)), N);
    assert.equal(seen.get('b0'), undefined);
    const share = (seen.get('b2') ?? 0) / N;
    assert.ok(Math.abs(share - 0.1 / 1.1) < TOLERANCE, `b2 share ${share}`);
  });
});

describe('p2c (seeded)', () => {
  const N = 30_000;

  test('idle equal backends share evenly', () => {
    const seen = counts(new P2CPicker(makeBackends([1, 1, 1]), { slowStart: 0, ewma: false }, seededRandom(1)), N);
    for (const id of ['b0', 'b1', 'b2']) assert.ok(Math.abs((seen.get(id) ?? 0) / N - 1 / 3) < 0.015, `${id}: ${seen.get(id)}`);
  });

  test('the most loaded backend never wins a comparison', () => {
    const backends = makeBackends([1, 1, 1]);
    backends[0]!.state.inflight = 10;
    backends[1]!.state.inflight = 2;
    const seen = counts(new P2CPicker(backends, { slowStart: 0, ewma: false }, seededRandom(2)), N);
    assert.equal(seen.get('b0'), undefined);
    // b2 (idle) wins against both others; b1 only when paired with b0 (1/3 of pairs).
    assert.ok(Math.abs((seen.get('b1') ?? 0) / N - 1 / 3) < 0.015, `b1: ${seen.get('b1')}`);
  });

  test('follows in-flight counts as requests accumulate', () => {
    const backends = makeBackends([1, 1, 1, 1]);
    const picker = new P2CPicker(backends, { slowStart: 0, ewma: false }, seededRandom(5));
    for (let i = 0; i < 400; i++) picker.pick(ctx())!.state.inflight++;
    const loads = backends.map((b) => b.state.inflight);
    assert.ok(Math.max(...loads) - Math.min(...loads) <= 3, `uneven: ${loads.join(',')}`);
  });

  test('ewma mode steers away from the slow backend; plain mode ignores latency', () => {
    const backends = makeBackends([1, 1, 1]);
    backends[0]!.state.latencyEwma = 200;
    backends[1]!.state.latencyEwma = 10;
    backends[2]!.state.latencyEwma = 12;
    const withEwma = counts(new P2CPicker(backends, { slowStart: 0, ewma: true }, seededRandom(9)), N);
    assert.equal(withEwma.get('b0'), undefined);
    const plain = counts(new P2CPicker(backends, { slowStart: 0, ewma: false }, seededRandom(9)), N);
    assert.ok(Math.abs((plain.get('b0') ?? 0) / N - 1 / 3) < 0.015, `b0: ${plain.get('b0')}`);
  });

  test('unhealthy, tried and weight-0 backends are never picked', () => {
    const backends = makeBackends([1, 1, 1, 1, 1, 1, 1, 1, 0, 1]);
    for (let i = 0; i < 7; i++) backends[i]!.setReason(Reason.ACTIVE_CHECK_FAILED, true);
    const picker = new P2CPicker(backends, { slowStart: 0, ewma: false }, seededRandom(4));
    const seen = counts(picker, 2000);
    assert.deepEqual([...seen.keys()].sort(), ['b7', 'b9']);
    for (let i = 0; i < 50; i++) assert.equal(picker.pick(ctx(new Set([backends[9]!])))?.id, 'b7');
    backends[7]!.setReason(Reason.ACTIVE_CHECK_FAILED, true);
    backends[9]!.setReason(Reason.ACTIVE_CHECK_FAILED, true);
    assert.equal(picker.pick(ctx()), undefined);
  });
});
