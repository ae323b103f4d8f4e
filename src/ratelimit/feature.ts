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
import type { FulcrumConfig, RateLimitConfig, RouteConfig } from '../config/schema.js';
import { routeName } from '../config/services.js';
import type { BalancerHost, PreparedChange } from '../app/host.js';
import type { Logger } from '../observe/log.js';
import { RateLimitFilter } from './filter.js';
import { RedisStore } from './redis-store.js';
import { redisTarget } from '../state/redis-client.js';
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
  /** #routes: the limiters of routes with their own `rateLimit`, by route name, in force. */
  #routes = new Map<string, ActiveLimiter>();
  /** #candidates: limiters built for a route table not yet in force (a reload being prepared). */
  #candidates = new Map<string, ActiveLimiter>();

  constructor(balancer: BalancerHost) {
    this.#balancer = balancer;
    this.#log = balancer.log.child({ component: 'ratelimit' });
    this.#health = new StoreHealth(this.#log, 'allow');
  }

  /**
   * install puts the limiter `config` asks for in force at once (at start,
   * so that a balancer has its filter before it serves a request).
   */
  install(config: FulcrumConfig): void {
    const built = this.#buildFor(config);
    if (built !== undefined) this.#put(built);
  }

  /**
   * prepare builds the limiter for a reload's `config`, unless that part is
   * unchanged; nothing is in force until commit, and abort releases it.
   */
  prepare(config: FulcrumConfig): PreparedChange {
    const built = this.#buildFor(config);
    return {
      commit: async () => {
        const replaced = built === undefined ? null : this.#put(built);
        if (replaced !== null) await this.#release(replaced);
        await this.promote(config);
      },
      abort: () => {
        if (built !== undefined && built !== null) void this.#release(built);
        this.#dropCandidates();
      },
    };
  }

  /** filter is the balancer-wide limiter's filter in force, if any. */
  filter(): RateLimitFilter | null {
    return this.#active?.filter ?? null;
  }

  /** buildFor: the limiter for `config`, null for none, undefined when that part of the config is unchanged. */
  #buildFor(config: FulcrumConfig): ActiveLimiter | null | undefined {
    const next = config.rateLimit;
    const fingerprint = next === undefined ? '' : JSON.stringify([next, next.store === 'redis' ? config.state.redis : null]);
    if ((this.#active?.fingerprint ?? '') === fingerprint) return undefined;
    return next === undefined ? null : this.#build(next, config, fingerprint);
  }

  /** put makes `active` the limiter in force and returns the one it replaces. */
  #put(active: ActiveLimiter | null): ActiveLimiter | null {
    const previous = this.#active;
    this.#active = active;
    if (active === null) {
      this.#log.info('rate limiting off');
    } else {
      this.#health.onStoreError = active.config.onStoreError;
      if (active.config.store === 'memory') this.#health.reset();
      const { algorithm, rate, per, store } = active.config;
      this.#log.info({ algorithm, rate, per, store, rules: active.rules.length }, 'rate limiting on');
    }
    return previous;
  }

  #dropCandidates(): void {
    for (const pending of this.#candidates.values()) void this.#release(pending);
    this.#candidates.clear();
  }

  /**
   * routeFilter is the filter of a route's own `rateLimit` (the routeFilter
   * hook), asked whenever the route table is compiled: the route's limiter
   * in force when its settings did not change (its counts carry on), else a
   * new one, which takes over when the table does (promote()).
   */
  routeFilter(route: RouteConfig, name: string, config: FulcrumConfig): RateLimitFilter | null {
    const limit = route.rateLimit;
    if (limit === undefined) return null;
    const fingerprint = JSON.stringify([limit, limit.store === 'redis' ? config.state.redis : null]);
    const current = this.#routes.get(name);
    if (current !== undefined && current.fingerprint === fingerprint) return current.filter;
    const pending = this.#candidates.get(name);
    if (pending !== undefined && pending.fingerprint === fingerprint) return pending.filter;
    if (pending !== undefined) void this.#release(pending);
    const built = this.#build(limit, config, fingerprint, `route:${name}:`);
    this.#candidates.set(name, built);
    return built.filter;
  }

  /** promote puts the route limiters of `config`'s table in force and releases those it no longer uses. */
  async promote(config: FulcrumConfig): Promise<void> {
    const next = new Map<string, ActiveLimiter>();
    config.routes.forEach((route, i) => {
      if (route.rateLimit === undefined) return;
      const name = routeName(route, i);
      const limiter = this.#candidates.get(name) ?? this.#routes.get(name);
      if (limiter !== undefined) next.set(name, limiter);
    });
    const kept = new Set(next.values());
    const released = [...this.#routes.values(), ...this.#candidates.values()].filter((l) => !kept.has(l));
    this.#routes = next;
    this.#candidates = new Map();
    await Promise.all(released.map((l) => this.#release(l)));
  }

  #build(config: RateLimitConfig, full: FulcrumConfig, fingerprint: string, scopePrefix = ''): ActiveLimiter {
    // A cluster worker's memory store is the primary's, so that the limit holds across workers.
    const inPrimary = config.store === 'memory' && isFulcrumWorker();
    const rules = compileRules(config, config.store === 'memory' && !inPrimary, scopePrefix);
    let redis: RedisStore | IpcLimitStore | null = null;
    if (config.store === 'redis') {
      redis = new RedisStore({ target: redisTarget(full.state.redis), keyPrefix: full.state.redis.keyPrefix, timeout: config.timeout, health: this.#health });
    } else if (inPrimary) {
      redis = new IpcLimitStore({ timeout: config.timeout, maxKeys: config.maxKeys });
    } else {
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
    const routes = [...this.#routes.values(), ...this.#candidates.values()];
    this.#routes.clear();
    this.#candidates.clear();
    await Promise.all([...(active === null ? [] : [active]), ...routes].map((l) => this.#release(l)));
  }

  /** trackedKeys: the clients the memory stores hold now. */
  trackedKeys(): number {
    let n = 0;
    for (const rule of this.#allRules()) n += rule.memory?.size ?? 0;
    return n;
  }

  #evictedKeys(): number {
    let n = 0;
    for (const rule of this.#allRules()) n += rule.memory?.evicted ?? 0;
    return n;
  }

  #allRules(): RateLimitRule[] {
    return [...(this.#active?.rules ?? []), ...[...this.#routes.values()].flatMap((l) => l.rules)];
  }

  status(): Record<string, unknown> | null {
    const active = this.#active;
    const routes = Object.fromEntries([...this.#routes].map(([name, l]) => [name, {
      algorithm: l.config.algorithm, rate: l.config.rate, per: l.config.per, burst: l.config.burst ?? l.config.rate, key: l.config.key, store: l.config.store,
    }]));
    if (active === null) return this.#routes.size === 0 ? null : { routes, rejected: this.#balancer.metrics.rateLimited, trackedKeys: this.trackedKeys() };
    const c = active.config;
    return {
      ...(this.#routes.size === 0 ? {} : { routes }),
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
  feature.install(balancer.config);
  feature.registerMetrics();
  balancer.addComponent({
    name: 'rateLimit',
    filter: () => feature.filter(),
    // Routes with their own rateLimit get a filter of their own, in front of the balancer-wide one.
    routeFilter: (route, name, config) => feature.routeFilter(route, name, config),
    prepare: (next) => feature.prepare(next),
    close: () => feature.close(),
    status: (status) => {
      const s = feature.status();
      if (s !== null) status.rateLimit = s;
    },
  });
  void feature.promote(balancer.config);
  balancer.metrics.extraJson.push(() => feature.metricsJson());
  return feature;
}
