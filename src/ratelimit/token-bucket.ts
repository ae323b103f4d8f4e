/**
 * Token bucket: a bucket holds up to `burst` tokens, refills at `rate`
 * tokens per `per`, and each request takes one token.
 *
 * Exact integer arithmetic: tokens are counted in units of 1/`per` of a
 * token, so that one request costs `per` units and one millisecond refills
 * `rate` units. Everything is then a whole number (below 2^53 within the
 * config's bounds) and the Lua script in redis-scripts.ts computes the very
 * same values.
 */
import type { Decision, LimitAlgorithm, RateLimitPolicy } from './types.js';

export class TokenBucketState {
  /** tokens: in units of 1/per of a token. */
  tokens: number;
  /** last: when `tokens` was last brought up to date (ms). */
  last: number;

  constructor(tokens: number, last: number) {
    this.tokens = tokens;
    this.last = last;
  }
}

export class TokenBucket implements LimitAlgorithm<TokenBucketState> {
  readonly policy: RateLimitPolicy;
  readonly idleAfterMs: number;
  /** capacity and cost in units; rate in units per millisecond. */
  readonly #capacity: number;
  readonly #cost: number;
  readonly #rate: number;
  /** #fillMs: the time an empty bucket takes to fill (after it, any state is a full bucket). */
  readonly #fillMs: number;

  constructor(policy: RateLimitPolicy) {
    this.policy = policy;
    this.#rate = policy.rate;
    this.#cost = policy.per;
    this.#capacity = policy.burst * policy.per;
    this.#fillMs = Math.ceil(this.#capacity / this.#rate);
    this.idleAfterMs = this.#fillMs;
  }

  fresh(now: number): TokenBucketState {
    return new TokenBucketState(this.#capacity, now);
  }

  decide(state: TokenBucketState, now: number, out: Decision): void {
    const capacity = this.#capacity;
    const cost = this.#cost;
    const rate = this.#rate;
    let tokens = state.tokens;
    const elapsed = now - state.last;
    // Checking the fill time first keeps elapsed * rate small, whatever the idle time.
    if (elapsed >= this.#fillMs) tokens = capacity;
    else if (elapsed > 0) tokens = Math.min(capacity, tokens + elapsed * rate);
    if (tokens >= cost) {
      tokens -= cost;
      out.allowed = true;
      out.retryAfterMs = 0;
    } else {
      out.allowed = false;
      out.retryAfterMs = Math.ceil((cost - tokens) / rate);
    }
    state.tokens = tokens;
    // A clock that steps back (elapsed < 0) refills nothing and keeps the later time.
    if (now > state.last) state.last = now;
    out.remaining = Math.floor(tokens / cost);
    out.resetMs = Math.ceil((capacity - tokens) / rate);
  }

  idle(state: TokenBucketState, now: number): boolean {
    return now - state.last >= this.#fillMs;
  }
}
