import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Backend } from '../../src/backends/backend.js';
import { Reason } from '../../src/backends/reasons.js';
import type { PickContext, Picker, PickerOptions } from '../../src/balancer/picker.js';
import { getPickerFactory, knownAlgorithms } from '../../src/balancer/registry.js';
import { effectiveWeight, slowStartFactor, SLOW_START_MIN_FACTOR } from '../../src/balancer/slow-start.js';
import { WeightedRoundRobinPicker } from '../../src/balancer/weighted-round-robin.js';

const ctx = (tried?: Set<Backend>): PickContext => ({ clientAddress: '192.0.2.1', hashKey: undefined, tried });
const OPTIONS: PickerOptions = { hashKey: 'ip', slowStart: 0, p2c: { ewma: false } };

function makeBackends(weights: readonly number[]): Backend[] {
  return weights.map((weight, i) => new Backend({ id: String.fromCharCode(97 + i), config: { url: `http://10.0.0.${i + 1}:8080`, weight, healthy: true } }));
}

function sequence(picker: Picker, n: number, tried?: Set<Backend>): string {
  let out = '';
  for (let i = 0; i < n; i++) out += picker.pick(ctx(tried))?.id ?? '-';
  return out;
}

function counts(picker: Picker, n: number): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const id = picker.pick(ctx())?.id ?? '-';
    out.set(id, (out.get(id) ?? 0) + 1);
  }
  return out;
}

describe('registry', () => {
  test('every policy of the issue is registered by name', () => {
    for (const name of ['round-robin', 'weighted-round-robin', 'least-connections', 'random', 'p2c', 'ip-hash', 'consistent-hash']) {
      assert.ok(knownAlgorithms().includes(name), name);
      assert.equal(getPickerFactory(name)?.name, name);
    }
    assert.equal(getPickerFactory('consistent-hash')?.needsHashKey, true);
    assert.equal(getPickerFactory('ip-hash')?.needsHashKey, false);
  });
});

describe('weighted-round-robin', () => {
  test('weights 3 and 2 interleave smoothly: a b a b a, every cycle', () => {
    const picker = getPickerFactory('weighted-round-robin')!.build(makeBackends([3, 2]), OPTIONS);
    assert.equal(sequence(picker, 15), 'ababa'.repeat(3));
  });

  test('weights 5, 1, 1 spread the heavy backend (nginx sequence)', () => {
    const picker = new WeightedRoundRobinPicker(makeBackends([5, 1, 1]), 0);
    assert.equal(sequence(picker, 14), 'aabacaa'.repeat(2));
  });

  test('fractional weights give exact shares over whole cycles', () => {
    const picker = new WeightedRoundRobinPicker(makeBackends([0.5, 1.5, 1]), 0);
    const seen = counts(picker, 3000);
    assert.equal(seen.get('a'), 500);
    assert.equal(seen.get('b'), 1500);
    assert.equal(seen.get('c'), 1000);
  });

  test('weight 0 gets no traffic; only weight-0 backends means nothing to pick', () => {
    const picker = new WeightedRoundRobinPicker(makeBackends([1, 0, 1]), 0);
    assert.equal(sequence(picker, 6), 'acacac');
    assert.equal(new WeightedRoundRobinPicker(makeBackends([0, 0]), 0).pick(ctx()), undefined);
  });

  test('an unhealthy backend is never picked and the others keep their ratio', () => {
    const backends = makeBackends([2, 1, 1]);
    const picker = new WeightedRoundRobinPicker(backends, 0);
    backends[0]!.setReason(Reason.ACTIVE_CHECK_FAILED, true);
    assert.equal(sequence(picker, 8), 'bcbcbcbc');
    backends[0]!.setReason(Reason.ACTIVE_CHECK_FAILED, false);
    const seen = counts(picker, 400);
    assert.deepEqual([seen.get('a'), seen.get('b'), seen.get('c')], [200, 100, 100]);
    for (const b of backends) b.setReason(Reason.DISABLED, true);
    assert.equal(picker.pick(ctx()), undefined);
  });

  test('backends already tried by a retrying request are skipped', () => {
    const backends = makeBackends([3, 2]);
    const picker = new WeightedRoundRobinPicker(backends, 0);
    assert.equal(sequence(picker, 4, new Set([backends[0]!])), 'bbbb');
  });
});

describe('slow start', () => {
  test('the factor ramps linearly from the minimum to 1 over the window', () => {
    assert.equal(slowStartFactor(1000, 0, 1000), 1);
    assert.equal(slowStartFactor(1000, 10_000, 1000), SLOW_START_MIN_FACTOR);
    assert.ok(Math.abs(slowStartFactor(1000, 10_000, 6000) - (SLOW_START_MIN_FACTOR + (1 - SLOW_START_MIN_FACTOR) / 2)) < 1e-9);
    assert.equal(slowStartFactor(1000, 10_000, 11_000), 1);
    assert.equal(slowStartFactor(1000, 10_000, 500_000), 1);
  });

  test('a recovered backend gets a lowered share during the window, full share after it', () => {
    const backends = makeBackends([1, 1]);
    const now = Date.now();
    const window = 3_600_000; // the ramp barely moves while the test runs
    backends[0]!.state.healthySince = now - window; // a has been healthy for longer than the window
    backends[1]!.setReason(Reason.ACTIVE_CHECK_FAILED, true);
    backends[1]!.setReason(Reason.ACTIVE_CHECK_FAILED, false); // b: healthySince = now
    assert.ok(effectiveWeight(backends[1]!, window, now) < 0.11);
    const picker = getPickerFactory('weighted-round-robin')!.build(backends, { ...OPTIONS, slowStart: window });
    const seen = counts(picker, 1100);
    // weights 1 and ~0.1: about 100 of 1100 picks, within 5.
    assert.ok(Math.abs((seen.get('b') ?? 0) - 100) <= 5, `b got ${seen.get('b')}`);
    backends[1]!.state.healthySince = now - window;
    const after = counts(picker, 1000);
    assert.ok(Math.abs((after.get('b') ?? 0) - 500) <= 5, `b got ${after.get('b')}`);
  });
});
