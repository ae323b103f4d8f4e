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
import type { BalancerHost } from '../app/host.js';
import type { Logger } from '../observe/log.js';
import { RateLimitFilter } from './filter.js';
import { RedisStore } from './redis-store.js';
import { IpcLimitStore } from './ipc-store.js';
import { isFulcrumWorker } from '../core/cluster-env.js';
import { compileRules, type RateLimitRule } from './rules.js';
import { StoreHealth } from './store-health.js';
import type { Clock } from './types.js';

/** ActiveLimiter is what one version of the config built. */
export interface ActiveLimiter {
  readonly config: RateLimitConfig;
  readonly fingerprint: string;
  readonly rules: readonly RateLimitRule[];
  /** redis: the shared store: Redis, or in a cluster worker with the memory store, the primary. */
  readonly redis: RedisStore | IpcLimitStore | null;
  readonly filter: RateLimitFilter;
}

export class RateLimitFeature {
  readonly #balancer: BalancerHost;
  readonly #log: Logger;
  /** #clock: the memory stores' time source. */
  readonly #clock: Clock = Date.now;
  /** #health outlives reloads, so that the counts and the outage state carry on. */
  #health: StoreHealth;
  #active: ActiveLimiter | null = null;

  constructor(balancer: BalancerHost) {
    this.#balancer = balancer;
    this.#log = balancer.log.child({ component: 'ratelimit' });
    this.#health = new StoreHealth(this.#log, 'allow');
  }

  /** apply installs the limiter for `config` (or removes it) and releases the one it replaces. */
  async apply(config: FulcrumConfig): Promise<void> {
    const replaced = this.swap(config);
    if (replaced !== null) await this.#release(replaced);
  }

  /**
   * swap builds and installs the limiter for `config`, unless that part of
   * the config is unchanged; it returns the limiter replaced, for the caller
   * to release. Synchronous, so that a balancer has its filter before it
   * serves a request.
   */
  swap(config: FulcrumConfig): ActiveLimiter | null {
    const next = config.rateLimit;
    const fingerprint = next === undefined ? '' : JSON.stringify([next, next.store === 'redis' ? config.state.redis : null]);
    const previous = this.#active;
    if ((previous?.fingerprint ?? '') === fingerprint) return null;
    const active = next === undefined ? null : this.#build(next, config, fingerprint);
    this.#active = active;
    const filters = this.#balancer.filters;
    const at = previous === null ? -1 : filters.indexOf(previous.filter);
    if (active === null) {
      if (at >= 0) filters.splice(at, 1);
      this.#log.info('rate limiting off');
    } else {
      if (at >= 0) filters[at] = active.filter;
      else filters.push(active.filter);
      const { algorithm, rate, per, store } = active.config;
      this.#log.info({ algorithm, rate, per, store, rules: active.rules.length }, 'rate limiting on');
    }
    return previous;
  }

  #build(config: RateLimitConfig, full: FulcrumConfig, fingerprint: string): ActiveLimiter {
    this.#health.onStoreError = config.onStoreError;
    // A cluster worker's memory store is the primary's, so that the limit holds across workers.
    const inPrimary = config.store === 'memory' && isFulcrumWorker();
    const rules = compileRules(config, config.store === 'memory' && !inPrimary);
    let redis: RedisStore | IpcLimitStore | null = null;
    if (config.store === 'redis') {
      redis = new RedisStore({ url: full.state.redis.url, keyPrefix: full.state.redis.keyPrefix, timeout: config.timeout, health: this.#health });
    } else if (inPrimary) {
      this.#health.reset();
      redis = new IpcLimitStore({ timeout: config.timeout, maxKeys: config.maxKeys });
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
export function installRateLimit(balancer: BalancerHost): RateLimitFeature {
  const feature = new RateLimitFeature(balancer);
  feature.swap(balancer.config);
  feature.registerMetrics();
  balancer.addHook('reload', (next) => feature.apply(next));
  balancer.addHook('close', () => feature.close());
  balancer.addHook('status', (status) => {
    const s = feature.status();
    if (s !== null) status.rateLimit = s;
  });
  balancer.metrics.extraJson.push(() => feature.metricsJson());
  return feature;
}
