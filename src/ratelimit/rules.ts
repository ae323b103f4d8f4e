/**
 * A RateLimitRule is one compiled limit: the default one, or an override
 * for a path prefix. Compiling resolves the overrides' inherited values,
 * builds the algorithm, the memory store (memory mode) and the header
 * values once, so that the request path only looks things up.
 *
 * Inheritance: an override's unset fields take the top-level values,
 * except `burst`, which defaults to the override's own `rate` when it sets
 * one (a stricter rate should not inherit a looser burst).
 */
import type { RateLimitConfig, RateLimitOverrideConfig } from '../config/schema.js';
import { createMemoryStore, type AnyMemoryStore } from './algorithm.js';
import { clientKeyFn, type ClientKeyFn } from './client-key.js';
import { policyHeader, quotedName } from './headers.js';
import type { RateLimitPolicy } from './types.js';

export const DEFAULT_RULE_NAME = 'default';

export interface RateLimitRule {
  /** name: "default", or the override's path prefix; shown in the headers. */
  readonly name: string;
  /** pathPrefix: '' for the default rule. */
  readonly pathPrefix: string;
  /** enabled: false exempts the prefix. */
  readonly enabled: boolean;
  readonly policy: RateLimitPolicy;
  readonly key: string;
  readonly keyOf: ClientKeyFn;
  /** scope: the rule's part of a Redis key, so that rules (and parameter changes) never share counts. */
  readonly scope: string;
  readonly quotedName: string;
  readonly policyHeader: string;
  /** memory: the rule's store in memory mode; null in Redis mode. */
  readonly memory: AnyMemoryStore | null;
}

function policyOf(config: RateLimitConfig, o: RateLimitOverrideConfig | null): RateLimitPolicy {
  const algorithm = o?.algorithm ?? config.algorithm;
  const rate = o?.rate ?? config.rate;
  const per = o?.per ?? config.per;
  const burst = o?.burst ?? (o?.rate !== undefined ? o.rate : config.burst ?? config.rate);
  return { algorithm, rate, per, burst: algorithm === 'token-bucket' ? burst : rate };
}

function compileRule(config: RateLimitConfig, o: RateLimitOverrideConfig | null, memory: boolean, scopePrefix: string): RateLimitRule {
  const policy = policyOf(config, o);
  const name = o === null ? DEFAULT_RULE_NAME : o.pathPrefix;
  const key = o?.key ?? config.key;
  const short = policy.algorithm === 'token-bucket' ? 'tb' : 'sw';
  return {
    name,
    pathPrefix: o === null ? '' : o.pathPrefix,
    enabled: o === null ? true : o.enabled,
    policy,
    key,
    keyOf: clientKeyFn(key),
    scope: `${scopePrefix}${o === null ? '*' : o.pathPrefix}:${short}:${policy.rate}:${policy.per}:${policy.burst}:${key}`,
    quotedName: quotedName(name),
    policyHeader: policyHeader(name, policy),
    memory: memory && (o === null || o.enabled) ? createMemoryStore(policy, config.maxKeys) : null,
  };
}

/**
 * compileRules returns the overrides, longest prefix first, then the default
 * rule; `memory` false leaves the decisions to a shared store (a cluster
 * worker's memory mode is decided in its primary). `scopePrefix` keeps a
 * route's own limit apart from the balancer's and other routes' in Redis.
 */
export function compileRules(config: RateLimitConfig, memory = config.store === 'memory', scopePrefix = ''): RateLimitRule[] {
  const overrides = [...config.overrides].sort((a, b) => b.pathPrefix.length - a.pathPrefix.length);
  return [...overrides.map((o) => compileRule(config, o, memory, scopePrefix)), compileRule(config, null, memory, scopePrefix)];
}
