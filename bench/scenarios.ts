/**
 * Benchmark scenarios: each is a config for the balancer under test. The
 * "default" scenario is Fulcrum with every default feature on (health
 * checks, metrics, forwarded headers, access log, retries).
 */
export interface ScenarioContext {
  port: number;
  targets: string[];
  [key: string]: unknown;
}

export interface Scenario {
  title: string;
  config(ctx: ScenarioContext): Record<string, unknown>;
  url?(port: number): string;
  /** cpus: the CPUs the balancer may use (a taskset list); CPU 0 alone by default. A cluster needs more than one. */
  cpus?: string;
  env?(ctx: Record<string, unknown>): NodeJS.ProcessEnv;
  setup?(dir: string): Promise<Record<string, unknown>>;
  teardown?(ctx: Record<string, unknown>): Promise<void>;
  /**
   * load: how to drive it; `close` opens a new connection per request
   * (handshake cost); `h2` uses h2load over TLS; `h2c` h2load in cleartext,
   * to a config whose backends are `ctx.h2Targets` (h2c:// backends);
   * `grpc` the same with unary gRPC calls to GRPC_PATH.
   */
  load?: 'keep-alive' | 'close' | 'h2' | 'h2c' | 'grpc';
}

import { startBenchRedis, makeCertificate } from './fixtures.js';

/** pool: the base scenario's backends and health checks, as one service. */
const pool = (ctx: ScenarioContext): Record<string, unknown> => {
  const b = base(ctx);
  return { backends: b.backends, ...(b.healthCheck === undefined ? {} : { healthCheck: b.healthCheck }) };
};
const withoutPool = (config: Record<string, unknown>): Record<string, unknown> => {
  const { backends: _b, healthCheck: _h, ...rest } = config;
  return rest;
};

/** hundredRoutes: host and prefix routes the benchmark's request does not match, then its route, then a catch-all. */
function hundredRoutes(): Record<string, unknown>[] {
  const routes: Record<string, unknown>[] = [];
  for (let i = 0; i < 50; i++) routes.push({ name: `host-${i}`, match: { hosts: [`h${i}.example.com`] }, service: 'app' });
  for (let i = 0; i < 49; i++) routes.push({ name: `prefix-${i}`, match: { path: { prefix: `/p${i}` } }, service: 'app' });
  routes.push({ name: 'app', match: { path: { prefix: '/app' } }, service: 'app' });
  routes.push({ name: 'rest', service: 'app' });
  return routes;
}

const base = (ctx: ScenarioContext): Record<string, unknown> => ({
  listen: { host: '127.0.0.1', port: ctx.port },
  backends: ctx.targets,
  logLevel: 'warn',
});

/**
 * tracingTo: tracing on at `ratio`, exporting to the first backend as the
 * collector (the benchmark backend answers any POST with a 200, which the
 * exporter takes as accepted): the export's own work is counted too.
 */
const tracingTo = (ctx: ScenarioContext, ratio: number): Record<string, unknown> => ({
  enabled: true, sampleRatio: ratio, otlp: { endpoint: `${ctx.targets[0]}/v1/traces` },
});

/** GRPC_PATH: the method the gRPC load calls (the benchmark's HTTP/2 backend answers any gRPC call). */
export const GRPC_PATH = '/bench.Echo/Unary';

/** h2cToH2c: an h2c listener in front of the HTTP/2 (h2c://) benchmark backends, access log off. */
const h2cToH2c = (ctx: ScenarioContext): Record<string, unknown> => ({
  ...withoutPool(base(ctx)), accessLog: false, healthCheck: { enabled: false },
  listen: { host: '127.0.0.1', port: ctx.port, http2: true }, backends: ctx.h2Targets,
});

export const scenarios: Record<string, Scenario> = {
  default: {
    title: 'defaults (health checks, metrics, forwarded headers, access log)',
    config: (ctx) => ({ ...base(ctx), logLevel: 'info' }),
  },
  'tracing-1pct': {
    title: 'defaults, tracing on at sampleRatio 0.01 (OTLP/HTTP to a local sink)',
    config: (ctx) => ({ ...base(ctx), logLevel: 'info', tracing: tracingTo(ctx, 0.01) }),
  },
  'tracing-all': {
    title: 'defaults, tracing on at sampleRatio 1 (OTLP/HTTP to a local sink)',
    config: (ctx) => ({ ...base(ctx), logLevel: 'info', tracing: tracingTo(ctx, 1) }),
  },
  'request-id': {
    title: 'defaults, requestId on (generated ids)',
    config: (ctx) => ({ ...base(ctx), logLevel: 'info', requestId: {} }),
  },
  'no-access-log': {
    title: 'defaults, access log off',
    config: (ctx) => ({ ...base(ctx), accessLog: false }),
  },
  'node-http': {
    title: 'defaults, fast path off (node:http serves every request)',
    config: (ctx) => ({ ...base(ctx), logLevel: 'info', listen: { host: '127.0.0.1', port: ctx.port, fastPath: false } }),
  },
  'undici-client': {
    title: 'defaults, access log off, undici as the upstream client',
    config: (ctx) => ({ ...base(ctx), accessLog: false, upstream: { client: 'undici' } }),
  },
  // workers-1 and workers-2 give the balancer both CPUs (which it shares with the load generator and
  // backends on CPU 1), so that the only difference between them is the number of workers.
  'workers-1': {
    title: 'access log off, workers: 1, balancer on CPUs 0-1',
    config: (ctx) => ({ ...base(ctx), accessLog: false, workers: 1 }),
    cpus: '0,1',
  },
  'workers-2': {
    title: 'access log off, workers: 2, balancer on CPUs 0-1',
    config: (ctx) => ({ ...base(ctx), accessLog: false, workers: 2 }),
    cpus: '0,1',
  },
  // A limit never reached: what the round trip to the primary per decision costs.
  'workers-2-ratelimit': {
    title: 'access log off, workers: 2, rate limit (memory store, decided in the primary)',
    config: (ctx) => ({ ...base(ctx), accessLog: false, workers: 2, rateLimit: { rate: 1_000_000, per: '1s' } }),
    cpus: '0,1',
  },
  'routes-1': {
    title: 'access log off, one service and one catch-all route (named services form)',
    config: (ctx) => ({ ...withoutPool(base(ctx)), accessLog: false, services: { app: pool(ctx) }, routes: [{ name: 'all', service: 'app' }] }),
    url: (port) => `http://127.0.0.1:${port}/app/items`,
  },
  'routes-100': {
    title: 'access log off, 100 routes (50 host routes, 49 prefix routes; the match is the 100th of 101)',
    config: (ctx) => ({ ...withoutPool(base(ctx)), accessLog: false, services: { app: pool(ctx) }, routes: hundredRoutes() }),
    url: (port) => `http://127.0.0.1:${port}/app/items`,
  },
  // Traffic management: each against routes-1 (one service, one catch-all route), the same request.
  'split-2': {
    title: 'access log off, a 90/10 split between two services (the same backends)',
    config: (ctx) => ({
      ...withoutPool(base(ctx)), accessLog: false, services: { v1: pool(ctx), v2: pool(ctx) },
      routes: [{ name: 'all', split: [{ service: 'v1', weight: 90 }, { service: 'v2', weight: 10 }] }],
    }),
    url: (port) => `http://127.0.0.1:${port}/app/items`,
  },
  'split-sticky': {
    title: 'access log off, a sticky 90/10 split (every response sets the cookie: the load sends none)',
    config: (ctx) => ({
      ...withoutPool(base(ctx)), accessLog: false, services: { v1: pool(ctx), v2: pool(ctx) },
      routes: [{ name: 'all', split: [{ service: 'v1', weight: 90 }, { service: 'v2', weight: 10 }], sticky: true }],
    }),
    url: (port) => `http://127.0.0.1:${port}/app/items`,
  },
  'mirror-100': {
    title: 'access log off, every request mirrored to a second service (the same backends)',
    config: (ctx) => ({
      ...withoutPool(base(ctx)), accessLog: false, services: { app: pool(ctx), shadow: pool(ctx) },
      routes: [{ name: 'all', service: 'app', mirror: { service: 'shadow', percent: 100, maxInFlight: 1000 } }],
    }),
    url: (port) => `http://127.0.0.1:${port}/app/items`,
  },
  'mirror-10': {
    title: 'access log off, 10% of requests mirrored to a second service',
    config: (ctx) => ({
      ...withoutPool(base(ctx)), accessLog: false, services: { app: pool(ctx), shadow: pool(ctx) },
      routes: [{ name: 'all', service: 'app', mirror: { service: 'shadow', percent: 10 } }],
    }),
    url: (port) => `http://127.0.0.1:${port}/app/items`,
  },
  failover: {
    title: 'access log off, a failover service configured (never used: the primary is healthy)',
    config: (ctx) => ({
      ...withoutPool(base(ctx)), accessLog: false,
      services: { app: { ...pool(ctx), failover: { service: 'fallback', on: ['no-healthy-backend', 503] } }, fallback: pool(ctx) },
      routes: [{ name: 'all', service: 'app' }],
    }),
    url: (port) => `http://127.0.0.1:${port}/app/items`,
  },
  'no-retries': {
    title: 'access log off, retries off',
    config: (ctx) => ({ ...base(ctx), accessLog: false, retries: { attempts: 0 } }),
  },
  // Issue 18's resilience features, each alone, against no-access-log (their cost while nothing fails).
  'retries-on-status': {
    title: 'access log off, retries on 5xx too (retries.on with a status class)',
    config: (ctx) => ({ ...base(ctx), accessLog: false, retries: { on: ['connect-failure', 'reset', 'timeout', '5xx'] } }),
  },
  'per-try-timeout': {
    title: 'access log off, retries.perTryTimeout: 5s (a timer per attempt)',
    config: (ctx) => ({ ...base(ctx), accessLog: false, retries: { perTryTimeout: '5s' } }),
  },
  'backup-backends': {
    title: 'access log off, a backup backend beside the two primaries (never used)',
    config: (ctx) => ({ ...base(ctx), accessLog: false, backends: [...ctx.targets, { url: ctx.targets[0]!.replace('127.0.0.1', 'localhost'), backup: true }] }),
  },
  'circuit-breaker': {
    title: 'access log off, a circuit breaker on the service (closed)',
    config: (ctx) => ({ ...base(ctx), accessLog: false, circuitBreaker: {} }),
  },
  'least-connections': {
    title: 'least-connections, access log off',
    config: (ctx) => ({ ...base(ctx), accessLog: false, algorithm: 'least-connections' }),
  },
  'redis-state': {
    title: 'access log off, state.store: redis',
    config: (ctx) => ({ ...base(ctx), accessLog: false, state: { store: 'redis', redis: { url: ctx.redisUrl, keyPrefix: 'bench:' } } }),
    setup: async (dir) => startBenchRedis(dir),
    teardown: async (ctx) => (ctx.stop as () => Promise<void>)(),
  },
  'ratelimit-memory': {
    title: 'access log off, rate limit (memory store, never reached)',
    config: (ctx) => ({ ...base(ctx), accessLog: false, rateLimit: { rate: 1_000_000, per: '1s', burst: 1_000_000, key: 'ip' } }),
  },
  'ratelimit-redis': {
    title: 'access log off, rate limit (redis store, never reached)',
    config: (ctx) => ({
      ...base(ctx), accessLog: false,
      state: { redis: { url: ctx.redisUrl, keyPrefix: 'bench:' } },
      rateLimit: { rate: 1_000_000, per: '1s', burst: 1_000_000, key: 'ip', store: 'redis' },
    }),
    setup: async (dir) => startBenchRedis(dir),
    teardown: async (ctx) => (ctx.stop as () => Promise<void>)(),
  },
  tls: {
    title: 'access log off, TLS (HTTP/1.1, keep-alive)',
    config: (ctx) => ({ ...base(ctx), accessLog: false, listen: { host: '127.0.0.1', port: ctx.port, tls: { cert: ctx.cert, key: ctx.key } } }),
    url: (port) => `https://127.0.0.1:${port}/`,
    setup: async (dir) => makeCertificate(dir),
  },
  'plain-handshake': {
    title: 'access log off, a new connection per request (plain)',
    config: (ctx) => ({ ...base(ctx), accessLog: false }),
    load: 'close',
  },
  'tls-handshake': {
    title: 'access log off, a new TLS connection per request',
    config: (ctx) => ({ ...base(ctx), accessLog: false, listen: { host: '127.0.0.1', port: ctx.port, tls: { cert: ctx.cert, key: ctx.key } } }),
    url: (port) => `https://127.0.0.1:${port}/`,
    setup: async (dir) => makeCertificate(dir),
    load: 'close',
  },
  'h2c-to-h2c': {
    title: 'h2c client to h2c backends (h2load, 8 streams per connection), access log off',
    config: h2cToH2c,
    load: 'h2c',
  },
  'grpc-unary': {
    title: 'unary gRPC calls, h2c both ways (h2load, 8 streams per connection), access log off',
    config: h2cToH2c,
    url: (port) => `http://127.0.0.1:${port}${GRPC_PATH}`,
    load: 'grpc',
  },
  h2: {
    title: 'access log off, HTTP/2 over TLS (h2load, 1 stream per connection)',
    config: (ctx) => ({ ...base(ctx), accessLog: false, listen: { host: '127.0.0.1', port: ctx.port, tls: { cert: ctx.cert, key: ctx.key }, http2: true } }),
    url: (port) => `https://127.0.0.1:${port}/`,
    setup: async (dir) => makeCertificate(dir),
    load: 'h2',
  },
};
