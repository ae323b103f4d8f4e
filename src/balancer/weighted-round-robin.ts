/**
 * weighted-round-robin: smooth weighted round-robin, as in nginx. Every pick
 * adds each candidate's weight to its running score, takes the highest score
 * and lowers it by the total; weights 3 and 2 give `a b a b a`, spreading a
 * heavy backend's turns instead of bunching them (`a a a b b`). Weights may
 * be fractional; weight 0 means "no new traffic". Unhealthy backends simply
 * do not take part in a pick, so they skew nobody else's share. The weight
 * used is the effective one, lowered during slow start.
 */
import type { Backend } from '../backends/backend.js';
import { available, type PickContext, type Picker, type PickerFactory, type PickerOptions } from './picker.js';
import { effectiveWeight } from './slow-start.js';

export class WeightedRoundRobinPicker implements Picker {
  /** #current holds each backend's running score. */
  readonly #current: Float64Array;

  constructor(private readonly backends: readonly Backend[], private readonly slowStart: number) {
    this.#current = new Float64Array(backends.length);
  }

  pick(ctx: PickContext): Backend | undefined {
    const list = this.backends;
    const tried = ctx.tried;
    const current = this.#current;
    const window = this.slowStart;
    const now = window > 0 ? Date.now() : 0;
    let total = 0;
    let best = -1;
    for (let i = 0; i < list.length; i++) {
      const b = list[i]!;
      if (!available(b, tried)) continue;
      const w = window > 0 ? effectiveWeight(b, window, now) : b.weight;
      if (!(w > 0)) continue;
      const score = current[i]! + w;
      current[i] = score;
      total += w;
      if (best < 0 || score > current[best]!) best = i;
    }
    if (best < 0) return undefined;
    current[best] -= total;
    return list[best];
  }
}

export const weightedRoundRobin: PickerFactory = {
  name: 'weighted-round-robin',
  needsHashKey: false,
  build: (backends, options: PickerOptions) => new WeightedRoundRobinPicker(backends, options.slowStart),
};
