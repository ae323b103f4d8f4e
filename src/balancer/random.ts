/**
 * random: a backend drawn at random in proportion to its (effective) weight.
 * It keeps no state shared between picks, which makes it the policy of
 * choice when many balancer instances each see a slice of the traffic.
 *
 * A draw is a binary search over cumulative weights built once; a drawn
 * backend that is unavailable (or, during slow start, loses a coin toss
 * weighted by its ramp) is redrawn. That rejection sampling gives exactly
 * the distribution over the available backends without building a list per
 * pick; after a few misses (most backends down) an exact scan takes over.
 */
import type { Backend } from '../backends/backend.js';
import { available, type PickContext, type Picker, type PickerFactory, type PickerOptions } from './picker.js';
import type { RandomSource } from './prng.js';
import { effectiveWeight, slowStartFactor } from './slow-start.js';

/** MAX_DRAWS is how many rejected draws are tolerated before the exact scan. */
const MAX_DRAWS = 4;

export class RandomPicker implements Picker {
  /** #cumulative[i] is the sum of the configured weights of backends 0..i. */
  readonly #cumulative: Float64Array;
  readonly #total: number;
  /** #uniform: all weights are equal and positive, so a draw needs no search. */
  readonly #uniform: boolean;

  constructor(private readonly backends: readonly Backend[], private readonly slowStart: number, private readonly random: RandomSource = Math.random) {
    this.#cumulative = new Float64Array(backends.length);
    let total = 0;
    for (let i = 0; i < backends.length; i++) {
      total += Math.max(0, backends[i]!.weight);
      this.#cumulative[i] = total;
    }
    this.#total = total;
    const first = backends[0]?.weight ?? 0;
    this.#uniform = first > 0 && backends.every((b) => b.weight === first);
  }

  pick(ctx: PickContext): Backend | undefined {
    if (this.#total <= 0) return undefined;
    const list = this.backends;
    const window = this.slowStart;
    const now = window > 0 ? Date.now() : 0;
    for (let draw = 0; draw < MAX_DRAWS; draw++) {
      const b = list[this.#draw()]!;
      if (!available(b, ctx.tried)) continue;
      if (window > 0 && this.random() >= slowStartFactor(b.state.healthySince, window, now)) continue;
      return b;
    }
    return this.#scan(ctx, window, now);
  }

  #draw(): number {
    const n = this.backends.length;
    if (this.#uniform) return Math.min(n - 1, Math.floor(this.random() * n));
    const target = this.random() * this.#total;
    const cumulative = this.#cumulative;
    let lo = 0;
    let hi = n - 1;
    // The first index whose cumulative weight exceeds the target: weight-0 backends are never chosen.
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid]! > target) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** #scan draws exactly over the available backends' effective weights (two passes, no list). */
  #scan(ctx: PickContext, window: number, now: number): Backend | undefined {
    const list = this.backends;
    let total = 0;
    for (const b of list) if (available(b, ctx.tried)) total += effectiveWeight(b, window, now);
    if (!(total > 0)) return undefined;
    let target = this.random() * total;
    let last: Backend | undefined;
    for (const b of list) {
      if (!available(b, ctx.tried)) continue;
      const w = effectiveWeight(b, window, now);
      if (!(w > 0)) continue;
      last = b;
      target -= w;
      if (target < 0) return b;
    }
    return last; // rounding left a sliver of the target: the last candidate takes it.
  }
}

export const random: PickerFactory = {
  name: 'random',
  needsHashKey: false,
  build: (backends, options: PickerOptions) => new RandomPicker(backends, options.slowStart),
};
