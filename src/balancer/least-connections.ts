/**
 * least-connections: the backend with the fewest requests in flight for its
 * weight (`inflight / weight`, so a backend of weight 2 is as loaded as one
 * of weight 1 with half its requests). It counts requests, not sockets: with
 * keep-alive pools a socket says nothing about how busy a backend is.
 * Ties (common when traffic is light) are broken by smooth weighted
 * round-robin among the tied backends, as nginx does, so no backend is
 * always favoured and the weights still hold when everyone is idle.
 */
import type { Backend } from '../backends/backend.js';
import { available, type PickContext, type Picker, type PickerFactory, type PickerOptions } from './picker.js';
import { effectiveWeight } from './slow-start.js';

export class LeastConnectionsPicker implements Picker {
  /** #current holds the running scores of the smooth weighted round-robin that breaks ties. */
  readonly #current: Float64Array;

  constructor(private readonly backends: readonly Backend[], private readonly slowStart: number) {
    this.#current = new Float64Array(backends.length);
  }

  pick(ctx: PickContext): Backend | undefined {
    const list = this.backends;
    const tried = ctx.tried;
    const window = this.slowStart;
    const now = window > 0 ? Date.now() : 0;
    let best = -1;
    let bestInflight = 0;
    let bestWeight = 0;
    let ties = 0;
    for (let i = 0; i < list.length; i++) {
      const b = list[i]!;
      if (!available(b, tried)) continue;
      const w = window > 0 ? effectiveWeight(b, window, now) : b.weight;
      if (!(w > 0)) continue;
      const inflight = b.state.inflight;
      // inflight/w < bestInflight/bestWeight, without dividing.
      const lhs = inflight * bestWeight;
      const rhs = bestInflight * w;
      if (best < 0 || lhs < rhs) {
        best = i;
        bestInflight = inflight;
        bestWeight = w;
        ties = 1;
      } else if (lhs === rhs) {
        ties++;
      }
    }
    if (ties <= 1) return best < 0 ? undefined : list[best];
    // Smooth weighted round-robin among the tied backends only (the first of them is `best`).
    const current = this.#current;
    let total = 0;
    let chosen = -1;
    for (let i = best; i < list.length; i++) {
      const b = list[i]!;
      if (!available(b, tried)) continue;
      const w = window > 0 ? effectiveWeight(b, window, now) : b.weight;
      if (!(w > 0) || b.state.inflight * bestWeight !== bestInflight * w) continue;
      const score = current[i]! + w;
      current[i] = score;
      total += w;
      if (chosen < 0 || score > current[chosen]!) chosen = i;
    }
    current[chosen] -= total;
    return list[chosen];
  }
}

export const leastConnections: PickerFactory = {
  name: 'least-connections',
  needsHashKey: false,
  build: (backends, options: PickerOptions) => new LeastConnectionsPicker(backends, options.slowStart),
};
