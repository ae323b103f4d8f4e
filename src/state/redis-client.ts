/**
 * How Fulcrum reaches Redis: `state.redis` resolved to one of three modes
 * (a standalone server, a master followed through Sentinel, or a Redis
 * Cluster), and the ioredis client for it. Both stores built on Redis (the
 * state store and the rate limiter) connect through here.
 *
 * ioredis is loaded on first use: a balancer without Redis never pays for
 * the library (about 20 MiB of resident memory and start-up time).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ConnectionOptions } from 'node:tls';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import type { RedisConfig } from '../config/schema.js';
import { parseSentinelUrl } from '../config/redis-url.js';

export type RedisMode = 'standalone' | 'sentinel' | 'cluster';

interface Address { readonly host: string; readonly port: number }

/** RedisTarget: where the servers are and how to log in, for one mode. */
export type RedisTarget =
  | { readonly mode: 'standalone'; readonly url: string; readonly options: RedisOptions }
  | { readonly mode: 'sentinel'; readonly options: RedisOptions & { sentinels: Address[]; name: string } }
  | { readonly mode: 'cluster'; readonly nodes: Address[]; readonly options: RedisOptions };

/** RedisConnection: a client of any mode (a Cluster routes each command to the node of its key's slot). */
export type RedisConnection = Redis | Cluster;

const DEFAULT_URL = 'redis://127.0.0.1:6379';

/** redisTarget resolves `state.redis` (validated by the schema) to a target; TLS files are read here, once. */
export function redisTarget(config: RedisConfig): RedisTarget {
  const auth: RedisOptions = {
    ...(config.username === undefined ? {} : { username: config.username }),
    ...(config.password === undefined ? {} : { password: config.password }),
    ...(config.tls === undefined ? {} : { tls: tlsOptions(config.tls) }),
  };
  if (config.cluster !== undefined) return { mode: 'cluster', nodes: config.cluster.map(({ host, port }) => ({ host, port })), options: auth };
  const fromUrl = config.url?.startsWith('redis+sentinel:') === true ? parseSentinelUrl(config.url) : null;
  if (config.sentinels !== undefined || fromUrl !== null) {
    const sentinelPassword = config.sentinelPassword ?? fromUrl?.sentinelPassword;
    const db = config.db ?? fromUrl?.db;
    return {
      mode: 'sentinel',
      options: {
        ...(fromUrl?.username === undefined ? {} : { username: fromUrl.username }),
        ...(fromUrl?.password === undefined ? {} : { password: fromUrl.password }),
        ...auth,
        sentinels: (config.sentinels ?? fromUrl?.sentinels ?? []).map(({ host, port }) => ({ host, port })),
        name: config.name ?? fromUrl?.name ?? '',
        ...(db === undefined ? {} : { db }),
        ...(sentinelPassword === undefined ? {} : { sentinelPassword }),
        ...(config.sentinelUsername === undefined ? {} : { sentinelUsername: config.sentinelUsername }),
        // TLS to the master too, not only to the Sentinels.
        ...(config.tls === undefined ? {} : { enableTLSForSentinelMode: true, sentinelTLS: auth.tls }),
        // Each reconnection asks the Sentinels for the master (ioredis' failoverDetector is not used:
        // its Sentinel connections outlive the client's disconnect()).
      },
    };
  }
  return { mode: 'standalone', url: config.url ?? DEFAULT_URL, options: { ...auth, ...(config.db === undefined ? {} : { db: config.db }) } };
}

function tlsOptions(tls: NonNullable<RedisConfig['tls']>): ConnectionOptions {
  const file = (key: string, path: string | undefined): Buffer | undefined => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`state.redis.tls.${key}: cannot read ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  const ca = file('ca', tls.ca);
  const cert = file('cert', tls.cert);
  const key = file('key', tls.key);
  return {
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    ...(tls.servername === undefined ? {} : { servername: tls.servername }),
  };
}

interface IoRedis {
  Redis: { new (url: string, options: RedisOptions): Redis; new (options: RedisOptions): Redis };
  Cluster: new (nodes: Address[], options: ClusterOptions) => Cluster;
}
let ioredis: IoRedis | null = null;

/** ClientOptions: the connection options both stores set, and the cluster-only ones. */
export interface ClientOptions extends RedisOptions {
  /** shardedSubscribers: in cluster mode, route SSUBSCRIBE to the node of each channel's slot. */
  readonly shardedSubscribers?: boolean;
}

/**
 * newRedisClient creates a client for `target`. In cluster mode the
 * per-connection options go to every node's connection, and the offline
 * queue, auto-pipelining and retry strategy are the cluster's own (a
 * MOVED or ASK redirection is followed by ioredis and never reaches the
 * caller).
 */
export function newRedisClient(target: RedisTarget, options: ClientOptions): RedisConnection {
  ioredis ??= createRequire(import.meta.url)('ioredis') as IoRedis;
  if (target.mode === 'standalone') return new ioredis.Redis(target.url, { ...target.options, ...options });
  if (target.mode === 'sentinel') return new ioredis.Redis({ ...target.options, ...options });
  const { enableOfflineQueue, enableAutoPipelining, retryStrategy, shardedSubscribers, ...perNode } = options;
  return new ioredis.Cluster(target.nodes, {
    redisOptions: { ...target.options, ...perNode },
    scaleReads: 'master',
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
    ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
    ...(typeof retryStrategy === 'function' ? { clusterRetryStrategy: (times: number) => retryStrategy(times) } : {}),
    ...(shardedSubscribers === undefined ? {} : { shardedSubscribers }),
    // A moved slot is followed at once (MOVED), and the slot map is refreshed in the background.
    retryDelayOnMoved: 0,
    retryDelayOnTryAgain: 50,
    retryDelayOnClusterDown: 100,
    slotsRefreshTimeout: 1000,
  });
}

/** isCluster tells a Cluster client from a single-server one. */
export function isCluster(client: RedisConnection): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}

/** describeTarget names the servers of a target for logs and /status, without credentials. */
export function describeTarget(target: RedisTarget): string {
  if (target.mode === 'cluster') return target.nodes.map((n) => `${n.host}:${n.port}`).join(',');
  if (target.mode === 'sentinel') return `${target.options.name} via ${target.options.sentinels.map((n) => `${n.host}:${n.port}`).join(',')}`;
  try {
    const u = new URL(target.url);
    if (u.password !== '') u.password = '***';
    return u.href;
  } catch {
    return '(invalid URL)';
  }
}

/** connectedServer: the host:port a single-server client is connected to now (the master, in Sentinel mode), or null. */
export function connectedServer(client: Redis): string | null {
  const stream = (client as unknown as { stream?: { remoteAddress?: string; remotePort?: number } }).stream;
  if (client.status !== 'ready' || stream?.remoteAddress === undefined) return null;
  return `${stream.remoteAddress}:${stream.remotePort}`;
}
