/**
 * The Redis key layout (docs/redis.md, "Keys"). Standalone and Sentinel
 * use the plain layout: every key starts with the prefix. A Redis Cluster
 * spreads keys over 16384 hash slots by a CRC16 of the key, or of its hash
 * tag (the part between the first "{" and the next "}") when it has one,
 * and a Lua script or a multi-key command may only touch keys of one slot.
 * So in cluster mode:
 *
 * - the balancer's shared state of one prefix is one hash tag, `{<prefix>}`:
 *   the flush script (counters and the instance's sequence number) touches
 *   two keys atomically, and keeping the whole prefix in one slot keeps a
 *   sync round one round trip to one node (a few commands per instance per
 *   flush interval: no need to spread it);
 * - each rate-limit bucket is its own hash tag, `{<scope>:<client>}`, so that
 *   the per-request decisions, the load that matters, spread over every
 *   slot, hence every master.
 *
 * The schema forbids braces in the prefix in cluster mode, so that these
 * tags are the first in every key.
 */
import type { RedisMode } from './redis-client.js';

/** stateKeys names every key of the state store under the prefix. */
export function stateKeys(prefix: string, instanceId: string, mode: RedisMode) {
  const p = mode === 'cluster' ? `{${prefix}}` : prefix;
  return {
    counters: `${p}counters`,
    flushed: `${p}flushed:${instanceId}`,
    instances: `${p}instances`,
    lease: (name: string) => `${p}lease:${name}`,
    health: `${p}health`,
    backends: `${p}backends`,
    events: `${p}events`,
    value: (key: string) => `${p}value:${key}`,
  };
}

/** rateLimitKey names a client's bucket: the policy's scope (path prefix and parameters) and the client. */
export function rateLimitKey(prefix: string, mode: RedisMode, scope: string, client: string): string {
  return mode === 'cluster' ? `${prefix}ratelimit:{${scope}:${client}}` : `${prefix}ratelimit:${scope}:${client}`;
}
