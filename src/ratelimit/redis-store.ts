/**
 * RedisStore makes decisions in a shared Redis, so that every balancer
 * instance using it enforces one limit. Each decision is one atomic Lua
 * script (EVALSHA, falling back to EVAL once per script load: ioredis'
 * defineCommand), timed by the Redis server's clock unless a clock is
 * injected (tests).
 *
 * The store never holds a request longer than `timeout`: a decision that
 * fails or takes longer rejects, and the filter applies `onStoreError`.
 * Once the first connection attempt is over, requests made while the
 * connection is down fail at once instead of queueing.
 *
 * On a Redis Cluster each client's bucket is its own hash tag
 * (state/redis-keys.ts), so that decisions spread over every master; a
 * MOVED or ASK redirection (a slot being moved) is followed by ioredis
 * within the same decision.
 */
import { newRedisClient, type RedisConnection, type RedisMode, type RedisTarget } from '../state/redis-client.js';
import { rateLimitKey } from '../state/redis-keys.js';
import { SLIDING_WINDOW_LUA, TOKEN_BUCKET_LUA } from './redis-scripts.js';
import type { StoreHealth } from './store-health.js';
import { Decision, type Clock, type RateLimitPolicy } from './types.js';

type Reply = [number, number, number, number];

interface LimiterCommands {
  fulcrumTokenBucket(key: string, now: number, rate: number, per: number, burst: number): Promise<Reply>;
  fulcrumSlidingWindow(key: string, now: number, rate: number, per: number): Promise<Reply>;
}

export interface RedisStoreOptions {
  target: RedisTarget;
  /** keyPrefix: prepended to every key (the state store's prefix). */
  keyPrefix: string;
  /** timeout: the longest a decision may take (ms). */
  timeout: number;
  health: StoreHealth;
  /** clock: pass the time in (tests); by default the Redis server's clock. */
  clock?: Clock;
}

export class StoreUnavailableError extends Error {
  readonly code = 'FULCRUM_ERR_RATE_LIMIT_STORE';
}

export class RedisStore {
  readonly #redis: RedisConnection & LimiterCommands;
  readonly #prefix: string;
  readonly #mode: RedisMode;
  readonly #clock: Clock | null;
  #wasReady = false;
  /** #firstAttempt: until the first connection attempt ends, decisions queue for it (within the timeout). */
  #firstAttempt = true;
  #closing = false;

  constructor(options: RedisStoreOptions) {
    this.#prefix = options.keyPrefix;
    this.#mode = options.target.mode;
    this.#clock = options.clock ?? null;
    const redis = newRedisClient(options.target, {
      commandTimeout: options.timeout,
      // Decisions made during the first connection attempt wait for it (within the
      // timeout); after that, decide() answers at once while the connection is down.
      enableOfflineQueue: true,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: (times) => Math.min(times * 100, 1000),
      connectTimeout: 2000,
    });
    redis.defineCommand('fulcrumTokenBucket', { numberOfKeys: 1, lua: TOKEN_BUCKET_LUA });
    redis.defineCommand('fulcrumSlidingWindow', { numberOfKeys: 1, lua: SLIDING_WINDOW_LUA });
    const health = options.health;
    redis.on('ready', () => { this.#wasReady = true; this.#firstAttempt = false; health.up(); });
    redis.on('error', (err: Error) => { this.#firstAttempt = false; if (!this.#closing) health.down(err); });
    redis.on('close', () => {
      this.#firstAttempt = false;
      if (this.#wasReady && !this.#closing) health.down(new Error('connection to Redis closed'));
    });
    this.#redis = redis as RedisConnection & LimiterCommands;
  }

  get connected(): boolean {
    return this.#redis.status === 'ready';
  }

  /** keyOf names a client's key: the policy's scope (path prefix and parameters) and the client. */
  keyOf(scope: string, client: string): string {
    return rateLimitKey(this.#prefix, this.#mode, scope, client);
  }

  /** decide runs one decision for a full key (from keyOf). */
  async decide(policy: RateLimitPolicy, key: string): Promise<Decision> {
    if (!this.#firstAttempt && this.#redis.status !== 'ready') throw new StoreUnavailableError(`Redis connection is ${this.#redis.status}`);
    const now = this.#clock === null ? -1 : this.#clock();
    const reply = policy.algorithm === 'token-bucket'
      ? await this.#redis.fulcrumTokenBucket(key, now, policy.rate, policy.per, policy.burst)
      : await this.#redis.fulcrumSlidingWindow(key, now, policy.rate, policy.per);
    const d = new Decision();
    d.allowed = reply[0] === 1;
    d.remaining = reply[1];
    d.retryAfterMs = reply[2];
    d.resetMs = reply[3];
    return d;
  }

  async close(): Promise<void> {
    const redis = this.#redis;
    this.#closing = true;
    if (redis.status === 'ready') {
      try { await redis.quit(); return; } catch { /* fall through to disconnect */ }
    }
    redis.disconnect();
  }
}
