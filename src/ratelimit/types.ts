/**
 * The rate limiter's shared vocabulary: a policy (what is allowed), a
 * decision (what happened to one request), and the algorithm contract that
 * both stores run. All quantities are integers (milliseconds, requests), so
 * that the memory store (JavaScript) and the Redis store (Lua) compute the
 * same results bit for bit.
 */

export type RateLimitAlgorithmName = 'token-bucket' | 'sliding-window';

/** RateLimitPolicy is one limit, normalized: `rate` requests per `per` milliseconds. */
export interface RateLimitPolicy {
  readonly algorithm: RateLimitAlgorithmName;
  /** rate: requests allowed per `per` in the long run (the sliding window's limit). */
  readonly rate: number;
  /** per: the window, in whole milliseconds. */
  readonly per: number;
  /** burst: the token bucket's capacity in requests (equal to `rate` for a sliding window). */
  readonly burst: number;
}

/**
 * Decision is the outcome of one request. The memory store reuses one
 * object for every request (no allocation on the hot path), so a reader
 * must copy what it needs before the next decision.
 */
export class Decision {
  allowed = false;
  /** remaining: whole requests allowed right now after this one. */
  remaining = 0;
  /** retryAfterMs: when rejected, the wait until one request is allowed again; 0 when allowed. */
  retryAfterMs = 0;
  /** resetMs: the wait until the full allowance is restored, if no request comes meanwhile. */
  resetMs = 0;
}

/**
 * LimitAlgorithm is the arithmetic of one policy over a per-key state `S`.
 * `decide` mutates the state; the Redis scripts in redis-scripts.ts are the
 * same steps in Lua, kept line for line in step with these.
 */
export interface LimitAlgorithm<S> {
  readonly policy: RateLimitPolicy;
  /** idleAfterMs: how long after its last use a key's state is worth nothing (its allowance is full). */
  readonly idleAfterMs: number;
  /** fresh is the state of a key never seen: a full allowance. */
  fresh(now: number): S;
  decide(state: S, now: number, out: Decision): void;
  /** idle tells whether `state` decides exactly as a fresh state would at `now`, so that it may be dropped. */
  idle(state: S, now: number): boolean;
}

/** Clock returns the time in whole milliseconds. */
export type Clock = () => number;

