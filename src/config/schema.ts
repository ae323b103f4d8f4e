/**
 * The one configuration schema. Every value is validated once, at load, and
 * normalized: durations become milliseconds, sizes become bytes, shorthand
 * forms (a bare port, a backend given as a URL string) become full objects.
 * Features contribute their own parts (see the `*Schema` constants below).
 */
import { z } from 'zod';
import { parseDuration, parseSize } from './duration.js';

const DURATION_HINT = 'a duration such as "10s", "500ms", "1m" or a number of seconds';
const SIZE_HINT = 'a size such as 1048576, "64kb", "10mb" or "1gb"';

/** duration accepts "10s" | "500ms" | "1m" | seconds and yields milliseconds. */
export const duration = z.union([z.number(), z.string()], { message: `expected ${DURATION_HINT}` })
  .transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected ${DURATION_HINT}, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return ms;
  });

/** size accepts bytes | "64kb" | "10mb" | "1gb" and yields bytes. */
export const size = z.union([z.number(), z.string()], { message: `expected ${SIZE_HINT}` })
  .transform((value, ctx) => {
    const bytes = parseSize(value);
    if (bytes === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected ${SIZE_HINT}, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return bytes;
  });

const port = z.number({ message: 'expected a port number' }).int().min(0).max(65535);

/** StatusRange is an inclusive range of HTTP status codes. */
export type StatusRange = readonly [number, number];

/** statusRanges accepts 200 | "200-299" | "200,204,300-399" | [200, "300-399"]. */
const statusRanges = z.union([z.number(), z.string(), z.array(z.union([z.number(), z.string()]))])
  .transform((value, ctx) => {
    const parts = Array.isArray(value) ? value.map(String) : String(value).split(',');
    const ranges: StatusRange[] = [];
    for (const raw of parts) {
      const m = /^\s*(\d{3})\s*(?:-\s*(\d{3}))?\s*$/.exec(raw);
      if (!m) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected status codes such as "200-299" or "200,204", got ${JSON.stringify(raw)}` });
        return z.NEVER;
      }
      const lo = Number(m[1]);
      const hi = m[2] === undefined ? lo : Number(m[2]);
      ranges.push([Math.min(lo, hi), Math.max(lo, hi)]);
    }
    return ranges;
  });

const httpUrl = z.string({ message: 'expected a URL such as "http://127.0.0.1:8081"' }).transform((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected a URL such as "http://127.0.0.1:8081", got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected an http:// or https:// URL, got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return value;
});

export const timeoutsSchema = z.object({
  /** connect: establishing the TCP (and TLS) connection to a backend. */
  connect: duration.default('5s'),
  /** response: from the request being sent to the response headers arriving. */
  response: duration.default('60s'),
  /** idle: between two chunks of the response body. */
  idle: duration.default('60s'),
  /** total: the whole exchange; 0 means no deadline. */
  total: duration.default(0),
}).strict();

export const tlsClientSchema = z.object({
  ca: z.string().optional(),
  cert: z.string().optional(),
  key: z.string().optional(),
  servername: z.string().optional(),
  insecureSkipVerify: z.boolean().default(false),
}).strict();

const backendObject = z.object({
  id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected an id of letters, digits, ".", "_" or "-"').optional(),
  url: httpUrl,
  weight: z.number({ message: 'expected a non-negative number' }).min(0).default(1),
  /** healthy is the initial state; the seed format's `healthy: false` starts the backend out of rotation. */
  healthy: z.boolean().default(true),
  maxConnections: z.number().int().min(0).optional(),
  timeouts: timeoutsSchema.partial().optional(),
  tls: tlsClientSchema.partial().optional(),
}).strict();

/** A backend may be written as a URL string or as an object. */
export const backendSchema = z.union([z.string(), backendObject], { message: 'expected a URL string or an object with a "url"' })
  .transform((value, ctx) => {
    if (typeof value !== 'string') return value;
    const parsed = backendObject.safeParse({ url: value });
    if (!parsed.success) {
      for (const issue of parsed.error.issues) ctx.addIssue({ ...issue, path: [] } as z.IssueData);
      return z.NEVER;
    }
    return parsed.data;
  });

export const healthCheckSchema = z.object({
  enabled: z.boolean().default(true),
  path: z.string().startsWith('/', 'expected a path starting with "/"').default('/health'),
  method: z.enum(['GET', 'HEAD']).default('GET'),
  interval: duration.default('10s'),
  timeout: duration.default('2s'),
  healthyThreshold: z.number().int().min(1).default(2),
  unhealthyThreshold: z.number().int().min(1).default(2),
  expectStatus: statusRanges.default('200-399'),
  headers: z.record(z.string()).default({}),
}).strict();

export const retriesSchema = z.object({
  attempts: z.number().int().min(0).max(10).default(2),
  methods: z.array(z.string().transform((m) => m.toUpperCase())).default(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']),
  /** maxBodySize: a request body up to this size is kept in memory so the request can be retried. */
  maxBodySize: size.default('64kb'),
  /** budget: retries may add at most this fraction to the requests of the last 10 seconds. */
  budget: z.number().min(0).max(1).default(0.2),
  /** minPerSecond: the floor of the budget, so that a quiet balancer can still retry. */
  minPerSecond: z.number().min(0).default(3),
}).strict();

export const outlierDetectionSchema = z.object({
  enabled: z.boolean().default(true),
  consecutiveFailures: z.number().int().min(1).default(5),
  baseEjectionTime: duration.default('30s'),
  maxEjectionTime: duration.default('300s'),
  maxEjectionPercent: z.number().min(0).max(100).default(50),
}).strict();

export const limitsSchema = z.object({
  /** maxConnectionsPerBackend: concurrent requests per backend; 0 means no limit. */
  maxConnectionsPerBackend: z.number().int().min(0).default(0),
  queueTimeout: duration.default('5s'),
  maxHeaderSize: size.default(16 * 1024),
  /** maxBodySize: 0 means no limit (bodies are streamed). */
  maxBodySize: size.default(0),
  headersTimeout: duration.default('60s'),
  requestTimeout: duration.default('300s'),
  keepAliveTimeout: duration.default('5s'),
  maxRequestsPerSocket: z.number().int().min(0).default(0),
}).strict();

export const adminSchema = z.object({
  port: port.optional(),
  host: z.string().default('127.0.0.1'),
  token: z.string().min(16, 'expected a token of at least 16 characters').optional(),
}).strict();

export const redisSchema = z.object({
  url: z.string().default('redis://127.0.0.1:6379'),
  keyPrefix: z.string().default('fulcrum:'),
}).strict();

export const stateSchema = z.object({
  store: z.enum(['memory', 'redis']).default('memory'),
  redis: redisSchema.default({}),
  flushInterval: duration.default('1s'),
}).strict();

export const tlsListenerSchema = z.object({
  cert: z.string(),
  key: z.string(),
  certificates: z.array(z.object({ cert: z.string(), key: z.string() }).strict()).default([]),
  minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  ciphers: z.string().optional(),
}).strict();

export const listenerSchema = z.object({
  host: z.string().default('0.0.0.0'),
  port: port.default(8080),
  tls: tlsListenerSchema.optional(),
  http2: z.boolean().default(false),
  redirectHttps: z.boolean().default(false),
}).strict();

/** listen accepts a port, one listener object, or a list of them. */
const listenSchema = z.union([port, listenerSchema, z.array(listenerSchema).min(1)])
  .transform((value) => {
    if (typeof value === 'number') return [listenerSchema.parse({ port: value })];
    return Array.isArray(value) ? value : [value];
  });

export const stickySchema = z.object({
  cookie: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'expected a cookie name (letters, digits, "-" or "_")').default('fulcrum_sticky'),
  ttl: duration.default(0),
  secret: z.string().optional(),
}).strict();

export const configSchema = z.object({
  listen: listenSchema.default(8080),
  algorithm: z.string().default('round-robin'),
  hashKey: z.string().regex(/^(ip|path|header:.+|cookie:.+|query:.+)$/, 'expected ip, path, header:<name>, cookie:<name> or query:<name>').default('ip'),
  sticky: stickySchema.optional(),
  slowStart: duration.default(0),
  backends: z.array(backendSchema).default([]),
  healthCheck: healthCheckSchema.default({}),
  timeouts: timeoutsSchema.default({}),
  retries: retriesSchema.default({}),
  outlierDetection: outlierDetectionSchema.default({}),
  limits: limitsSchema.default({}),
  trustedProxies: z.array(z.string()).default([]),
  preserveHost: z.boolean().default(true),
  drainTimeout: duration.default('30s'),
  accessLog: z.boolean().default(true),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  admin: adminSchema.default({}),
  state: stateSchema.default({}),
  backendTls: tlsClientSchema.default({}),
  workers: z.union([z.number().int().min(1), z.literal('auto')]).default(1),
  watch: z.boolean().default(false),
}).strict();

/** FulcrumConfigInput is what a user writes (file, flags or library call). */
export type FulcrumConfigInput = z.input<typeof configSchema>;
/** FulcrumConfig is the validated, normalized configuration. */
export type FulcrumConfig = z.output<typeof configSchema>;
export type BackendConfig = FulcrumConfig['backends'][number];
export type HealthCheckConfig = FulcrumConfig['healthCheck'];
export type TimeoutsConfig = FulcrumConfig['timeouts'];
export type ListenerConfig = FulcrumConfig['listen'][number];
