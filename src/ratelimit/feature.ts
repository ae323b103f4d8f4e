/**
 * installRateLimit attaches the rate limiter to a balancer: a request
 * filter built from `rateLimit` in the config (none when the key is
 * absent), rebuilt on reload when that part of the config changes, its
 * figures in /status and /metrics, its stores closed on shutdown.
 *
 * A reload that changes `rateLimit` starts the memory store afresh (the
 * counts were kept under the old parameters); Redis keys include the
 * parameters, so a change there starts afresh too.
 */
import { Counter, Gauge } from 'prom-client';
import type { FulcrumConfig, RateLimitConfig } from '../config/schema.js';
import type { Fulcrum } from '../fulcrum.js';
import type { Logger } from '../observe/log.js';
import { RateLimitFilter } from './filter.js';
import { RedisStore } from './redis-store.js';
import { compileRules, type RateLimitRule } from './rules.js';
import { StoreHealth } from './store-health.js';
import type { Clock } from './types.js';

export interface RateLimitFeatureOptions {
  /** clock: the memory store's time source; Date.now by default. */
  clock?: Clock;
}

/** ActiveLimiter is what one version of the config built. */
interface ActiveLimiter {
  readonly config: RateLimitConfig;
  readonly fingerprint: string;
  readonly rules: readonly RateLimitRule[];
  readonly redis: RedisStore | null;
  readonly filter: RateLimitFilter;
}

export class RateLimitFeature {
  readonly #balancer: Fulcrum;
  readonly #log: Logger;
  readonly #clock: Clock;
  /** #health outlives reloads, so that the counts and the outage state carry on. */
  #health: StoreHealth;
  #active: ActiveLimiter | null = null;

  constructor(balancer: Fulcrum, options: RateLimitFeatureOptions = {}) {
    this.#balancer = balancer;
    this.#log = balancer.log.child({ component: 'ratelimit' });
    this.#clock = options.clock ?? Date.now;
    this.#health = new StoreHealth(this.#log, 'allow');
  }

  get filter(): RateLimitFilter | null {
    return this.#active?.filter ?? null;
  }

  /** apply builds the limiter for `config` (or removes it), unless that part of the config is unchanged. */
  async apply(config: FulcrumConfig): Promise<void> {
    const next = config.rateLimit;
    const fingerprint = next === undefined ? '' : JSON.stringify([next, next.store === 'redis' ? config.state.redis : null]);
    const previous = this.#active;
    if ((previous?.fingerprint ?? '') === fingerprint) return;
    this.#active = next === undefined ? null : this.#build(next, config, fingerprint);
    const filters = this.#balancer.filters;
    const at = previous === null ? -1 : filters.indexOf(previous.filter);
    if (this.#active === null) {
      if (at >= 0) filters.splice(at, 1);
    } else if (at >= 0) {
      filters[at] = this.#active.filter;
    } else {
      filters.push(this.#active.filter);
    }
    if (previous !== null) await this.#release(previous);
    if (this.#active !== null) {
      const { algorithm, rate, per, store } = this.#active.config;
      this.#log.info({ algorithm, rate, per, store, rules: this.#active.rules.length }, 'rate limiting on');
    } else if (previous !== null) {
      this.#log.info('rate limiting off');
    }
  }

  #build(config: RateLimitConfig, full: FulcrumConfig, fingerprint: string): ActiveLimiter {
    this.#health.onStoreError = config.onStoreError;
    const rules = compileRules(config);
    let redis: RedisStore | null = null;
    if (config.store === 'redis') {
      redis = new RedisStore({ url: full.state.redis.url, keyPrefix: full.state.redis.keyPrefix, timeout: config.timeout, health: this.#health });
    } else {
      this.#health.reset();
      for (const rule of rules) rule.memory?.startSweeping(this.#clock);
    }
    const filter = new RateLimitFilter({
      rules, redis, onStoreError: config.onStoreError, headers: config.headers,
      metrics: this.#balancer.metrics, health: this.#health, clock: this.#clock,
    });
    return { config, fingerprint, rules, redis, filter };
  }

  async #release(limiter: ActiveLimiter): Promise<void> {
    for (const rule of limiter.rules) rule.memory?.close();
    if (limiter.redis !== null) await limiter.redis.close();
  }

  async close(): Promise<void> {
    const active = this.#active;
    this.#active = null;
    if (active !== null) await this.#release(active);
  }

  /** trackedKeys: the clients the memory stores hold now. */
  trackedKeys(): number {
    let n = 0;
    for (const rule of this.#active?.rules ?? []) n += rule.memory?.size ?? 0;
    return n;
  }

  #evictedKeys(): number {
    let n = 0;
    for (const rule of this.#active?.rules ?? []) n += rule.memory?.evicted ?? 0;
    return n;
  }

  status(): Record<string, unknown> | null {
    const active = this.#active;
    if (active === null) return null;
    const c = active.config;
    return {
      algorithm: c.algorithm, rate: c.rate, per: c.per, burst: c.burst ?? c.rate, key: c.key,
      store: c.store, onStoreError: c.onStoreError,
      rules: active.rules.map((r) => ({ name: r.name, enabled: r.enabled, ...r.policy, key: r.key })),
      rejected: this.#balancer.metrics.rateLimited,
      trackedKeys: this.trackedKeys(),
      evictedKeys: this.#evictedKeys(),
      storeAvailable: this.#health.available,
      storeConnected: active.redis === null ? null : active.redis.connected,
      storeErrors: this.#health.errors,
      storeOutages: this.#health.outages,
    };
  }

  metricsJson(): Record<string, unknown> {
    return { ratelimit_store_errors_total: this.#health.errors, ratelimit_store_outages_total: this.#health.outages };
  }

  registerMetrics(): void {
    const health = (): StoreHealth => this.#health;
    const registers = [this.#balancer.metrics.registry];
    new Counter({
      name: 'fulcrum_ratelimit_store_errors_total', help: 'Rate-limit decisions the shared store failed to make (errors and timeouts).', registers,
      collect() { this.reset(); this.inc(health().errors); },
    });
    new Counter({
      name: 'fulcrum_ratelimit_store_outages_total', help: 'Times the rate limiter lost its shared store.', registers,
      collect() { this.reset(); this.inc(health().outages); },
    });
    const keys = (): number => this.trackedKeys();
    new Gauge({
      name: 'fulcrum_ratelimit_tracked_keys', help: 'Clients the in-memory rate limiter holds state for.', registers,
      collect() { this.set(keys()); },
    });
  }
}

/** installRateLimit is called once per balancer by installFeatures. */
export function installRateLimit(balancer: Fulcrum, options: RateLimitFeatureOptions = {}): RateLimitFeature {
  const feature = new RateLimitFeature(balancer, options);
  void feature.apply(balancer.config);
  feature.registerMetrics();
  balancer.reloadHooks.push((next) => feature.apply(next));
  balancer.onClose(() => feature.close());
  balancer.statusExtensions.push((status) => {
    const s = feature.status();
    if (s !== null) status.rateLimit = s;
  });
  balancer.metrics.extraJson.push(() => feature.metricsJson());
  return feature;
}
