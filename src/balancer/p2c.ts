/**
 * p2c ("power of two choices", the least-request policy of Envoy, Linkerd
 * and Traefik): draw two different backends at random and send the request
 * to the less loaded one. It follows load almost as well as a full
 * least-connections scan, costs the same for 3 or 300 backends, and does
 * not stampede onto one idle backend when several balancers share a pool.
 *
 * Load is `(inflight + 1) / weight` (effective weight, during slow start).
 * With `p2c: { ewma: true }` it is multiplied by the backend's moving
 * average of response-header latency, so a slower backend gets less; while
 * either of the two has no latency sample yet, in-flight counts decide.
 */
import type { Backend } from '../backends/backend.js';
import { available, type PickContext, type Picker, type PickerFactory, type PickerOptions } from './picker.js';
import type { RandomSource } from './prng.js';
import { effectiveWeight } from './slow-start.js';

/** MAX_DRAWS is how many draws may hit unavailable backends before falling back to a full scan. */
const MAX_DRAWS = 4;

export interface P2COptions {
  readonly slowStart: number;
  readonly ewma: boolean;
}

export class P2CPicker implements Picker {
  readonly #window: number;
  readonly #ewma: boolean;
  #now = 0;

  constructor(private readonly backends: readonly Backend[], options: P2COptions, private readonly random: RandomSource = Math.random) {
    this.#window = options.slowStart;
    this.#ewma = options.ewma;
  }

  pick(ctx: PickContext): Backend | undefined {
    const list = this.backends;
    const n = list.length;
    if (n === 0) return undefined;
    this.#now = this.#window > 0 ? Date.now() : 0;
    const first = this.#sample(ctx, -1);
    if (first < 0) return this.#scan(ctx);
    const second = this.#sample(ctx, first);
    if (second < 0) return list[first];
    const a = list[first]!;
    const b = list[second]!;
    return this.#load(b, a) < 0 ? b : a;
  }

  #usable(b: Backend, ctx: PickContext): boolean {
    return available(b, ctx.tried) && this.#weight(b) > 0;
  }

  #weight(b: Backend): number {
    return this.#window > 0 ? effectiveWeight(b, this.#window, this.#now) : b.weight;
  }

  /** #sample draws the index of a usable backend other than `except`, or -1 after MAX_DRAWS misses. */
  #sample(ctx: PickContext, except: number): number {
    const n = this.backends.length;
    if (except >= 0 && n === 1) return -1;
    for (let draw = 0; draw < MAX_DRAWS; draw++) {
      // Uniform over the other backends: draw among n-1 and step over `except`.
      const i = except < 0
        ? Math.min(n - 1, Math.floor(this.random() * n))
        : (except + 1 + Math.min(n - 2, Math.floor(this.random() * (n - 1)))) % n;
      if (this.#usable(this.backends[i]!, ctx)) return i;
    }
    return -1;
  }

  /** #load compares two backends: negative when `x` is less loaded than `y`. */
  #load(x: Backend, y: Backend): number {
    let lx = (x.state.inflight + 1) / this.#weight(x);
    let ly = (y.state.inflight + 1) / this.#weight(y);
    if (this.#ewma && x.state.latencyEwma > 0 && y.state.latencyEwma > 0) {
      lx *= x.state.latencyEwma;
      ly *= y.state.latencyEwma;
    }
    return lx - ly;
  }

  /** #scan is the fallback when most backends are out: the least loaded usable one, from a random start. */
  #scan(ctx: PickContext): Backend | undefined {
    const list = this.backends;
    const n = list.length;
    const start = Math.min(n - 1, Math.floor(this.random() * n));
    let best: Backend | undefined;
    for (let k = 0; k < n; k++) {
      const b = list[(start + k) % n]!;
      if (!this.#usable(b, ctx)) continue;
      if (best === undefined || this.#load(b, best) < 0) best = b;
    }
    return best;
  }
}

export const p2c: PickerFactory = {
  name: 'p2c',
  needsHashKey: false,
  build: (backends, options: PickerOptions) => new P2CPicker(backends, { slowStart: options.slowStart, ewma: options.p2c.ewma }),
};
