/**
 * RateLimitFilter is the request filter the pipeline runs before a backend
 * is chosen. It finds the rule for the path, the client's key, and asks the
 * store for a decision:
 * - allowed: the RateLimit headers are set on the response (Node merges
 *   them with the backend's headers) and the request goes on;
 * - over the limit: 429 with Retry-After and the RateLimit headers, answered
 *   through the pipeline's reject (one error answer, counted and access-logged
 *   like every other); the request never reaches a backend;
 * - the Redis store failed or timed out: `onStoreError` decides, allow (the
 *   request goes on without RateLimit headers) or deny (503).
 *
 * In memory mode the decision is synchronous: a Map lookup and integer
 * arithmetic, written into one reused Decision.
 */
import type { DownstreamRequest, DownstreamResponse } from '../core/downstream.js';
import type { Metrics } from '../observe/metrics.js';
import { FulcrumError } from '../core/errors.js';
import type { FilterReject, RequestFilter } from '../core/request-filter.js';
import { rateLimitHeader, retryAfter } from './headers.js';
import type { RedisStore } from './redis-store.js';
import type { RateLimitRule } from './rules.js';
import type { StoreHealth } from './store-health.js';
import { Decision, type Clock } from './types.js';

/** SharedLimitStore decides in a store shared by several processes, asynchronously. */
export type SharedLimitStore = Pick<RedisStore, 'keyOf' | 'decide'>;


export interface RateLimitFilterOptions {
  /** rules: overrides, longest prefix first, then the default rule (compileRules). */
  readonly rules: readonly RateLimitRule[];
  /** redis: the shared store (Redis, or a cluster worker's primary: ipc-store.ts), or null for memory mode. */
  readonly redis: SharedLimitStore | null;
  readonly onStoreError: 'allow' | 'deny';
  /** headers: set RateLimit headers on allowed responses. */
  readonly headers: boolean;
  readonly metrics: Metrics;
  readonly health: StoreHealth;
  /** clock: the memory store's time source (ms). */
  readonly clock: Clock;
}

export class RateLimitFilter implements RequestFilter {
  readonly #overrides: readonly RateLimitRule[];
  readonly #default: RateLimitRule;
  readonly #redis: SharedLimitStore | null;
  readonly #deny: boolean;
  readonly #headers: boolean;
  readonly #metrics: Metrics;
  readonly #health: StoreHealth;
  readonly #clock: Clock;
  readonly #decision = new Decision();

  constructor(options: RateLimitFilterOptions) {
    this.#overrides = options.rules.slice(0, -1);
    this.#default = options.rules[options.rules.length - 1]!;
    this.#redis = options.redis;
    this.#deny = options.onStoreError === 'deny';
    this.#headers = options.headers;
    this.#metrics = options.metrics;
    this.#health = options.health;
    this.#clock = options.clock;
  }

  filter(req: DownstreamRequest, res: DownstreamResponse, clientAddress: string, next: () => void, reject: FilterReject): void {
    const rule = this.#overrides.length === 0 ? this.#default : this.#ruleFor(req.url!);
    if (!rule.enabled) return next();
    const memory = rule.memory;
    if (memory !== null) {
      const d = this.#decision;
      memory.decide(rule.keyOf(req, clientAddress), this.#clock(), d);
      if (d.allowed) this.#allow(rule, d, res, next);
      else this.#reject(rule, d, reject);
      return;
    }
    this.#decideShared(rule, req, res, clientAddress, next, reject);
  }

  #ruleFor(url: string): RateLimitRule {
    const overrides = this.#overrides;
    for (let i = 0; i < overrides.length; i++) if (url.startsWith(overrides[i]!.pathPrefix)) return overrides[i]!;
    return this.#default;
  }

  #decideShared(rule: RateLimitRule, req: DownstreamRequest, res: DownstreamResponse, clientAddress: string, next: () => void, reject: FilterReject): void {
    const redis = this.#redis!;
    redis.decide(rule.policy, redis.keyOf(rule.scope, rule.keyOf(req, clientAddress))).then(
      (d) => {
        this.#health.up();
        if (clientGone(req, res)) return;
        if (d.allowed) this.#allow(rule, d, res, next);
        else this.#reject(rule, d, reject);
      },
      (err: Error) => {
        this.#health.failed(err);
        if (clientGone(req, res)) return;
        if (this.#deny) this.#unavailable(rule, reject);
        else next();
      },
    );
  }

  #allow(rule: RateLimitRule, d: Decision, res: DownstreamResponse, next: () => void): void {
    if (this.#headers) {
      res.setHeader('RateLimit-Policy', rule.policyHeader);
      res.setHeader('RateLimit', rateLimitHeader(rule.quotedName, d));
    }
    next();
  }

  #reject(rule: RateLimitRule, d: Decision, reject: FilterReject): void {
    this.#metrics.rateLimited++;
    reject(new FulcrumError('FULCRUM_ERR_RATE_LIMITED'), {
      'retry-after': retryAfter(d),
      'ratelimit-policy': rule.policyHeader,
      ratelimit: rateLimitHeader(rule.quotedName, d),
    });
  }

  #unavailable(rule: RateLimitRule, reject: FilterReject): void {
    this.#metrics.rateLimited++; // refused by the limiter too (onStoreError: deny)
    reject(new FulcrumError('FULCRUM_ERR_RATE_LIMIT_UNAVAILABLE'), { 'retry-after': '1', 'ratelimit-policy': rule.policyHeader });
  }
}

/** clientGone: the client went away while the shared store was deciding. */
function clientGone(req: DownstreamRequest, res: DownstreamResponse): boolean {
  return res.destroyed || req.socket.destroyed;
}
