/**
 * Sliding window, the two-window weighted approximation: time is cut into
 * fixed windows of `per` ms (aligned on the epoch, so every instance agrees
 * on the boundaries); the count of the previous window is weighted by the
 * share of it still inside the sliding window that ends now:
 *
 *   estimate = previous * (per - elapsed) / per + current
 *
 * and a request is allowed when estimate + 1 <= rate. It assumes the
 * previous window's requests were spread evenly; it needs two counters per
 * key (an exact log would need one timestamp per request).
 *
 * Exact integer arithmetic: the estimate is compared multiplied by `per`,
 * so every value is a whole number and the Lua script in redis-scripts.ts
 * computes the very same values.
 */
import type { Decision, LimitAlgorithm, RateLimitPolicy } from './types.js';

export class SlidingWindowState {
  /** start: the start of the current window (ms, a multiple of `per`). */
  start: number;
  previous: number;
  current: number;

  constructor(start: number) {
    this.start = start;
    this.previous = 0;
    this.current = 0;
  }
}

export class SlidingWindow implements LimitAlgorithm<SlidingWindowState> {
  readonly policy: RateLimitPolicy;
  /** idleAfterMs: two windows after its start, a state's counts weigh nothing. */
  readonly idleAfterMs: number;
  readonly #per: number;
  readonly #limit: number;

  constructor(policy: RateLimitPolicy) {
    this.policy = policy;
    this.#per = policy.per;
    this.#limit = policy.rate;
    this.idleAfterMs = 2 * policy.per;
  }

  #windowStart(now: number): number {
    return Math.floor(now / this.#per) * this.#per;
  }

  fresh(now: number): SlidingWindowState {
    return new SlidingWindowState(this.#windowStart(now));
  }

  decide(state: SlidingWindowState, now: number, out: Decision): void {
    const per = this.#per;
    const limit = this.#limit;
    const windowStart = this.#windowStart(now);
    if (windowStart > state.start) {
      state.previous = windowStart - state.start === per ? state.current : 0;
      state.current = 0;
      state.start = windowStart;
    } else if (windowStart < state.start) {
      // A clock that steps back into an older window counts as the start of the current one.
      now = state.start;
    }
    const elapsed = now - state.start;
    const capacity = limit * per;
    const used = state.previous * (per - elapsed) + state.current * per;
    if (used + per <= capacity) {
      state.current += 1;
      out.allowed = true;
      out.retryAfterMs = 0;
    } else {
      out.allowed = false;
      out.retryAfterMs = this.#retryAfter(state, elapsed, used + per - capacity);
    }
    const usedAfter = state.previous * (per - elapsed) + state.current * per;
    out.remaining = Math.max(0, Math.floor((capacity - usedAfter) / per));
    out.resetMs = state.current > 0 ? per - elapsed + per : state.previous > 0 ? per - elapsed : 0;
  }

  /**
   * #retryAfter: the wait until `used + per <= capacity` holds again. Within
   * this window the previous count's weight drops by `previous` per ms;
   * when the current count alone is at the limit, the wait runs into the
   * next window, where the current count becomes the weighted one.
   */
  #retryAfter(state: SlidingWindowState, elapsed: number, excess: number): number {
    const per = this.#per;
    if (state.current + 1 <= this.#limit) return Math.ceil(excess / state.previous);
    const toNextWindow = per - elapsed;
    const intoNext = Math.ceil((state.current * per - this.#limit * per + per) / state.current);
    return toNextWindow + Math.max(0, intoNext);
  }

  idle(state: SlidingWindowState, now: number): boolean {
    return now - state.start >= 2 * this.#per;
  }
}
