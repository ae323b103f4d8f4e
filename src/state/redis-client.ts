/**
 * newRedisClient creates an ioredis client, loading ioredis on first use:
 * a balancer without Redis never pays for the library (about 20 MiB of
 * resident memory and start-up time).
 */
import { createRequire } from 'node:module';
import type { Redis, RedisOptions } from 'ioredis';

let RedisClass: (new (url: string, options: RedisOptions) => Redis) | null = null;

export function newRedisClient(url: string, options: RedisOptions): Redis {
  RedisClass ??= (createRequire(import.meta.url)('ioredis') as { Redis: new (url: string, options: RedisOptions) => Redis }).Redis;
  return new RedisClass(url, options);
}
