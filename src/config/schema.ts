/**
 * The one configuration schema. Every value is validated once, at load, and
 * normalized: durations become milliseconds, sizes become bytes, shorthand
 * forms (a bare port, a backend given as a URL string) become full objects.
 * Features contribute their own parts (see the `*Schema` constants below).
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseDuration, parseSize } from './duration.js';
import { parseSentinelUrl } from './redis-url.js';

const DURATION_HINT = 'a duration such as "10s", "500ms", "1m" or a number of seconds';
const SIZE_HINT = 'a size such as 1048576, "64kb", "10mb" or "1gb"';
const STATUS_HINT = 'status codes such as 200, "200-299", "200,204" or [200, "300-399"]';

/**
 * expecting words a union's own issue, the one reported when no branch
 * takes the input's type (zod's `message` option reaches only type issues).
 * A mistake inside a branch is reported at its key path instead (load.ts).
 */
const expecting = (message: string) => ({ errorMap: () => ({ message }) });

/**
 * Some keys are parsed by a transform over `unknown` (so that their
 * errors keep the path the user wrote), which says nothing about what they
 * accept. inputForms records, for those, a schema of the forms a user may
 * write, read only by the JSON Schema export (json-schema.ts).
 */
const inputForms = new WeakMap<z.ZodTypeDef, z.ZodTypeAny>();

/** inputFormOf is the schema of what a user may write for a transform over `unknown`, if one was recorded. */
export function inputFormOf(def: z.ZodTypeDef): z.ZodTypeAny | undefined {
  return inputForms.get(def);
}

function writtenAs<T extends z.ZodTypeAny>(schema: T, forms: z.ZodTypeAny): T {
  inputForms.set(schema._def as z.ZodTypeDef, forms);
  return schema;
}

/** duration accepts "10s" | "500ms" | "1m" | seconds and yields milliseconds. */
export const duration = z.union([z.number(), z.string()], expecting(`expected ${DURATION_HINT}`))
  .transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected ${DURATION_HINT}, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return ms;
  });

/** size accepts bytes | "64kb" | "10mb" | "1gb" and yields bytes. */
export const size = z.union([z.number(), z.string()], expecting(`expected ${SIZE_HINT}`))
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
const statusRanges = z.union([z.number(), z.string(), z.array(z.union([z.number(), z.string()], expecting(`expected ${STATUS_HINT}`)))], expecting(`expected ${STATUS_HINT}`))
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

/**
 * urlOf builds a URL schema that takes the given protocols: backends may be
 * h2c:// (cleartext HTTP/2), while the other URLs (OTLP, ACME) are http(s).
 */
function urlOf(h2c: boolean) {
  const expected = h2c ? 'an http://, https:// or h2c:// URL' : 'an http:// or https:// URL';
  return z.string({ message: 'expected a URL such as "http://127.0.0.1:8081"' }).transform((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected a URL such as "http://127.0.0.1:8081", got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:' && !(h2c && url.protocol === 'h2c:')) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected ${expected}, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    if (url.protocol === 'h2c:' && (url.hostname === '' || url.pathname.length > 1 || url.search !== '')) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected an h2c:// URL with a host and port only, such as "h2c://127.0.0.1:50051", got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return value;
  });
}

const httpUrl = urlOf(false);
const backendUrl = urlOf(true);

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

/** sendProxyProtocol: write a PROXY protocol header of this version on each new backend connection. */
export const sendProxyProtocolSchema = z.enum(['v1', 'v2'], { message: 'expected "v1" or "v2"' });

const backendObject = z.object({
  id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected an id of letters, digits, ".", "_" or "-"').optional(),
  url: backendUrl,
  weight: z.number({ message: 'expected a non-negative number' }).min(0).default(1),
  /** healthy is the initial state; the seed format's `healthy: false` starts the backend out of rotation. */
  healthy: z.boolean().default(true),
  maxConnections: z.number().int().min(0).optional(),
  timeouts: timeoutsSchema.partial().optional(),
  tls: tlsClientSchema.partial().optional(),
  /** sendProxyProtocol: this backend's own setting, over the top-level one. */
  sendProxyProtocol: sendProxyProtocolSchema.optional(),
  /** backup: gets traffic only while no other (primary) backend of its service is healthy. */
  backup: z.boolean({ message: 'expected true or false' }).optional(),
}).strict();

/** A backend may be written as a URL string or as an object. */
export const backendSchema = z.union([z.string(), backendObject], expecting('expected a URL string or an object with a "url"'))
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
  /** mode: `http` (a request to `path`, over HTTP/2 for h2c:// backends) or `grpc` (grpc.health.v1.Health/Check). */
  mode: z.enum(['http', 'grpc'], { message: 'expected "http" or "grpc"' }).default('http'),
  /** grpcService: the service name the gRPC check asks about; "" asks about the whole server. */
  grpcService: z.string().default(''),
}).strict();

const RETRY_ON_HINT = '"connect-failure", "reset", "timeout", a status code such as 503, or a class such as "5xx"';

/**
 * retryCondition: one entry of `retries.on`. A status is kept as an
 * inclusive range ("5xx" is [500, 599]); the error conditions as their names.
 */
export type RetryCondition = 'connect-failure' | 'reset' | 'timeout' | StatusRange;

const retryCondition = z.union([z.number(), z.string()], expecting(`expected ${RETRY_ON_HINT}`))
  .transform((value, ctx): RetryCondition => {
    if (value === 'connect-failure' || value === 'reset' || value === 'timeout') return value;
    const text = String(value).trim().toLowerCase();
    const cls = /^([1-5])xx$/.exec(text);
    if (cls !== null) return [Number(cls[1]) * 100, Number(cls[1]) * 100 + 99];
    const m = /^(\d{3})(?:\s*-\s*(\d{3}))?$/.exec(text);
    const lo = m === null ? NaN : Number(m[1]);
    const hi = m === null || m[2] === undefined ? lo : Number(m[2]);
    if (m === null || lo < 100 || hi > 599 || hi < lo || (typeof value === 'number' && !Number.isInteger(value))) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected ${RETRY_ON_HINT}, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return [lo, hi];
  });

export const retriesSchema = z.object({
  attempts: z.number().int().min(0).max(10).default(2),
  methods: z.array(z.string().transform((m) => m.toUpperCase())).default(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']),
  /** maxBodySize: a request body up to this size is kept in memory so the request can be retried. */
  maxBodySize: size.default('64kb'),
  /** budget: retries may add at most this fraction to the requests of the last 10 seconds. */
  budget: z.number().min(0).max(1).default(0.2),
  /** minPerSecond: the floor of the budget, so that a quiet balancer can still retry. */
  minPerSecond: z.number().min(0).default(3),
  /** on: the conditions a failed attempt is retried on (docs/configuration.md, "Retries"); the default is today's. */
  on: z.array(retryCondition, { message: `expected a list of ${RETRY_ON_HINT}` }).default(['connect-failure', 'reset', 'timeout']),
  /** idempotencyKey: a request carrying an Idempotency-Key header may be retried whatever its method. */
  idempotencyKey: z.boolean({ message: 'expected true or false' }).default(false),
  /** backoff: a random wait before each retry, up to min(max, base * 2^(retry - 1)) (full jitter); none when absent. */
  backoff: z.object({ base: duration.default('25ms'), max: duration.default('250ms') }).strict()
    .refine((b) => b.max >= b.base, { message: 'expected max at least as long as base', path: ['max'] }).optional(),
  /** perTryTimeout: the longest one attempt may take to its response head, connecting included; none when absent. */
  perTryTimeout: duration.refine((ms) => ms > 0, 'expected a duration above 0').optional(),
}).strict();

/** circuitBreakerSchema: a service's circuit breaker (docs/configuration.md, "Circuit breaking"). */
export const circuitBreakerSchema = z.object({
  /** errorRatio: the share of failed requests (5xx, connection errors) over the window that opens the circuit. */
  errorRatio: z.number({ message: 'expected a number between 0 and 1' }).gt(0).max(1).default(0.5),
  /** minRequests: no decision on fewer requests than this in the window. */
  minRequests: z.number().int().min(1).default(20),
  window: duration.default('10s').refine((ms) => ms >= 100, 'expected at least 100ms'),
  /** latencyP99: the circuit also opens when the p99 response-head latency over the window exceeds this. */
  latencyP99: duration.refine((ms) => ms > 0, 'expected a duration above 0').optional(),
  /** openFor: how long an open circuit refuses requests before trying again. */
  openFor: duration.default('10s').refine((ms) => ms > 0, 'expected a duration above 0'),
  /** halfOpenRequests: the trial requests let through after openFor; all must succeed to close. */
  halfOpenRequests: z.number().int().min(1).default(5),
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
  /** maxHeaderCount: header fields a request may have (431 above), as HAProxy's tune.http.maxhdr. */
  maxHeaderCount: z.number().int().min(1).max(10_000).default(100),
  /** maxBodySize: 0 means no limit (bodies are streamed). */
  maxBodySize: size.default(0),
  headersTimeout: duration.default('60s'),
  requestTimeout: duration.default('300s'),
  keepAliveTimeout: duration.default('5s'),
  /** clientIdleTimeout: a request in progress whose client moves no byte (a stalled upload or a response it does not read) for this long is cut; 0 turns it off. */
  clientIdleTimeout: duration.default('60s'),
  maxRequestsPerSocket: z.number().int().min(0).default(0),
}).strict();

/** upstreamSchema: the client that talks to http:// backends (https:// ones always use undici). */
export const upstreamSchema = z.object({
  /** client: `fulcrum`, the hand-tuned HTTP/1.1 client (src/upstream/h1-client.ts), or `undici`; see docs/performance.md. */
  client: z.enum(['fulcrum', 'undici']).default('fulcrum'),
  /** http2: https:// backends are offered HTTP/2 through ALPN (h2 preferred, HTTP/1.1 if that is all they speak). */
  http2: z.boolean().default(false),
}).strict();

/** An HTTP field name (RFC 9110 5.1: a token). */
const headerName = z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'expected a header name (letters, digits and !#$%&\'*+-.^_`|~)');

/** Fields the request id may not be carried in: Fulcrum sets, drops or reads them itself. */
const RESERVED_FIELDS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer',
  'proxy-connection', 'cookie', 'set-cookie', 'forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'traceparent', 'tracestate', 'x-fulcrum-error']);

/** requestIdSchema: `requestId:`, one id per request (see docs/observability.md, Request IDs); absent means none. */
export const requestIdSchema = z.object({
  header: headerName.refine((name) => !RESERVED_FIELDS.has(name.toLowerCase()), { message: 'expected a header Fulcrum does not manage itself (not Host, Cookie, Forwarded, traceparent...)' }).default('X-Request-Id'),
  /** generate: make an id when the request has no usable one; false leaves such requests without. */
  generate: z.boolean().default(true),
  /** trustIncoming: keep a well-formed id the client sent; false always replaces it. */
  trustIncoming: z.boolean().default(true),
}).strict();

/** tracingSchema: `tracing:`, OpenTelemetry spans exported over OTLP/HTTP (see docs/observability.md, Tracing). */
export const tracingSchema = z.object({
  enabled: z.boolean().default(false),
  /** sampleRatio: the share of new traces recorded; a client's sampled flag is always followed (parent-based). */
  sampleRatio: z.number({ message: 'expected a number from 0 to 1' }).min(0).max(1).default(1),
  serviceName: z.string().min(1, 'expected a service name').default('fulcrum'),
  resourceAttributes: z.record(z.string(), z.string({ message: 'expected a string value' })).default({}),
  otlp: z.object({
    /** endpoint: the full URL of the traces endpoint (nothing is appended to it). */
    endpoint: httpUrl.default('http://127.0.0.1:4318/v1/traces'),
    headers: z.record(z.string(), z.string({ message: 'expected a string value' })).default({}),
    /** timeout: how long one export may take before its spans count as dropped. */
    timeout: duration.default('10s'),
  }).strict().default({}),
  batch: z.object({
    /** delay: the longest a finished span waits before it is exported. */
    delay: duration.default('5s'),
    /** maxQueueSize: spans waiting for export; beyond it new ones are dropped (and counted). */
    maxQueueSize: z.number().int().min(1).default(2048),
    /** maxSize: spans per export request. */
    maxSize: z.number().int().min(1).default(512),
  }).strict().default({}),
}).strict();

export const adminSchema = z.object({
  port: port.optional(),
  host: z.string().default('127.0.0.1'),
  token: z.string().min(16, 'expected a token of at least 16 characters').optional(),
}).strict();

const redisUrl = z.string().refine((value) => {
  if (value.startsWith('redis+sentinel:')) return parseSentinelUrl(value) !== null;
  try {
    return ['redis:', 'rediss:'].includes(new URL(value).protocol);
  } catch {
    return false;
  }
}, { message: 'expected a redis:// or rediss:// URL such as "redis://127.0.0.1:6379", or "redis+sentinel://host1:26379,host2:26379/mymaster"' });

/** redisNode: one address of a Sentinel or of a cluster node. */
const redisNode = z.object({ host: z.string().min(1, 'expected a host name or address'), port: port.refine((p) => p > 0, 'expected a port number') }).strict();

/**
 * redisSchema: how to reach Redis, in one of three modes (src/state/redis-target.ts):
 * standalone (`url`), Sentinel (`sentinels` + `name`, or a redis+sentinel:// url)
 * or Cluster (`cluster`). The credentials, TLS and database apply to every mode
 * (no database in cluster mode: a cluster has only database 0).
 */
export const redisSchema = z.object({
  url: redisUrl.optional(),
  sentinels: z.array(redisNode).min(1).optional(),
  /** name: the Sentinel master group (`sentinel monitor <name> ...`). */
  name: z.string().min(1).optional(),
  sentinelUsername: z.string().optional(),
  sentinelPassword: z.string().optional(),
  cluster: z.array(redisNode).min(1).optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  db: z.number().int().min(0).max(15).optional(),
  /** tls: file paths of PEM files; `tls: {}` turns TLS on with the system's CAs. */
  tls: z.object({ ca: z.string().optional(), cert: z.string().optional(), key: z.string().optional(), servername: z.string().optional() }).strict().optional(),
  keyPrefix: z.string().default('fulcrum:'),
}).strict().superRefine((r, ctx) => {
  const issue = (path: string, message: string): void => { ctx.addIssue({ code: z.ZodIssueCode.custom, path: [path], message }); };
  const modes = (['url', 'sentinels', 'cluster'] as const).filter((k) => r[k] !== undefined);
  if (modes.length > 1) issue(modes[1]!, `set one of url, sentinels or cluster, not ${modes.join(' and ')}`);
  if (r.sentinels !== undefined && r.name === undefined) issue('name', 'required with sentinels: the name of the Sentinel master group');
  if (r.name !== undefined && r.sentinels === undefined) issue('name', 'only with sentinels (a redis+sentinel:// url names the group itself)');
  if (r.cluster !== undefined) {
    if (r.db !== undefined && r.db !== 0) issue('db', 'a Redis Cluster has only database 0: remove db in cluster mode');
    // Fulcrum adds its own hash tags ({...}) in cluster mode; one in the prefix would override them.
    if (/[{}]/.test(r.keyPrefix)) issue('keyPrefix', 'must not contain "{" or "}" in cluster mode (Fulcrum adds its own hash tags)');
  }
  if (r.tls !== undefined && (r.tls.cert === undefined) !== (r.tls.key === undefined)) issue('tls', 'set both cert and key, or neither');
});

export const stateSchema = z.object({
  store: z.enum(['memory', 'redis']).default('memory'),
  redis: redisSchema.default({}),
  /** flushInterval: how often counters are flushed, the heartbeat beaten and the health-check lease renewed. */
  flushInterval: duration.default('1s').refine((ms) => ms >= 50 && ms <= 60_000, 'expected between 50ms and 60s'),
}).strict();

/** dnsServer accepts "10.0.0.2", "10.0.0.2:5353", "::1" or "[::1]:5353" (what node:dns setServers takes). */
const dnsServer = z.string().refine((value) => {
  const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(value) ?? /^([^:]+)(?::(\d{1,5}))?$/.exec(value);
  if (m === null) return isIP(value) === 6;
  return isIP(m[1]!) !== 0 && (m[2] === undefined || (Number(m[2]) >= 1 && Number(m[2]) <= 65535));
}, { message: 'expected a DNS server address such as "10.0.0.2", "127.0.0.1:5353" or "[::1]:5353"' });

const backendPort = z.number({ message: 'expected a port number' }).int().min(1).max(65535);

export const dnsDiscoverySchema = z.object({
  /** name: the DNS name to resolve, e.g. "api.internal" or "_http._tcp.api.internal" for SRV. */
  name: z.string().min(1, 'expected a DNS name'),
  type: z.enum(['A', 'AAAA', 'SRV']).default('A'),
  /** port: the backends' port; required for A and AAAA, overrides the records' port for SRV. */
  port: backendPort.optional(),
  /** interval: the longest wait between two resolutions; a shorter record TTL resolves sooner. */
  interval: duration.default('10s').refine((ms) => ms >= 100, 'expected at least 100ms'),
  /** servers: DNS servers to ask instead of the system resolver's. */
  servers: z.array(dnsServer).min(1).optional(),
}).strict().superRefine((value, ctx) => {
  if (value.type !== 'SRV' && value.port === undefined) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['port'], message: `required for ${value.type} records: the port the backends listen on` });
  }
});

const kubernetesName = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'expected a Kubernetes name (lower-case letters, digits and "-")');

export const kubernetesDiscoverySchema = z.object({
  /** namespace: the Service's namespace; by default the pod's own (in-cluster) or the kubeconfig context's. */
  namespace: kubernetesName.optional(),
  service: kubernetesName,
  /** port: the EndpointSlice port, by name or number; may be left out when the Service has one port. */
  port: z.union([backendPort, z.string().min(1)], expecting('expected a port number or a port name')).optional(),
  /** kubeconfig: a kubeconfig file; by default KUBECONFIG, ~/.kube/config, then the in-cluster service account. */
  kubeconfig: z.string().min(1).optional(),
}).strict();

export const discoverySchema = z.object({
  dns: dnsDiscoverySchema.optional(),
  kubernetes: kubernetesDiscoverySchema.optional(),
}).strict().refine((value) => value.dns !== undefined || value.kubernetes !== undefined, 'expected "dns" or "kubernetes" (or both)');

/** A DNS name ACME can order a certificate for: letters, digits and "-" in dot-separated labels, no wildcard. */
const acmeDomain = z.string().transform((v) => v.toLowerCase()).pipe(z.string().regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/, 'expected a DNS name such as "example.com" (no wildcards: they need DNS-01, which is not supported)'));

const AUTO_DOMAINS = { message: 'expected a list of domains such as [example.com, www.example.com], or "auto" (a certificate for each exact host of the routes)' };

/** acmeListenerSchema: the certificate a TLS listener obtains by ACME (see acmeSchema for the CA and storage). */
export const acmeListenerSchema = z.object({
  /** email: the ACME account's contact (the CA writes to it about expiring certificates and incidents). */
  email: z.string().regex(/^[^@\s]+@[^@\s]+$/, 'expected an e-mail address such as "ops@example.com"'),
  /** domains: the names of one certificate, or "auto": one certificate per exact host of the routes (routes[].match.hosts). */
  domains: writtenAs(z.union([
    z.array(acmeDomain).min(1, 'expected at least one domain'),
    // A string other than "auto" gets the whole expectation, not just 'expected "auto"'.
    z.string().refine((v): v is 'auto' => v === 'auto', AUTO_DOMAINS),
  ], expecting(AUTO_DOMAINS.message)), z.union([z.literal('auto'), z.array(z.string())])),
}).strict();

export const tlsListenerSchema = z.object({
  cert: z.string().optional(),
  key: z.string().optional(),
  certificates: z.array(z.object({ cert: z.string(), key: z.string() }).strict()).default([]),
  minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  ciphers: z.string().optional(),
  /** acme: obtain and renew a certificate for these domains (docs/configuration.md, "Automatic certificates"). */
  acme: acmeListenerSchema.optional(),
}).strict().superRefine((t, ctx) => {
  if (t.cert !== undefined && t.key === undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['key'], message: 'required with cert' });
  if (t.key !== undefined && t.cert === undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['cert'], message: 'required with key' });
  if (t.cert === undefined && t.key === undefined && t.acme === undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['cert'], message: 'required (or acme, to obtain certificates automatically)' });
});

/** storageKey: 32 bytes, as 64 hex digits or base64 (44 characters). */
const storageKey = z.string().refine((v) => /^[0-9a-fA-F]{64}$/.test(v) || (/^[A-Za-z0-9+/]{43}=$/.test(v) && Buffer.from(v, 'base64').length === 32), 'expected a 32-byte key as 64 hex digits or base64 (openssl rand -hex 32)');

/** acmeSchema: how certificates are obtained for the listeners with `tls.acme`. */
export const acmeSchema = z.object({
  directory: httpUrl.default('https://acme-v02.api.letsencrypt.org/directory'),
  challenge: z.enum(['http-01', 'tls-alpn-01']).default('http-01'),
  /** storage: file (storageDir, one instance) or redis (state.redis, shared by every instance). */
  storage: z.enum(['file', 'redis']).default('file'),
  storageDir: z.string().min(1).default('./acme'),
  /** storageKey: encrypts the private keys at rest (AES-256-GCM) when set. */
  storageKey: storageKey.optional(),
  renewBefore: duration.default('30d'),
  /** caBundle: PEM file of the CA's TLS certificate, for private or test CAs (trusted besides the system's). */
  caBundle: z.string().min(1).optional(),
  /** checkInterval: how often an instance looks for due renewals and for certificates another instance stored. */
  checkInterval: duration.default('5s').refine((ms) => ms >= 50, 'expected at least 50ms'),
  /** retryDelay: the first back-off after a failed order, doubled per failure up to an hour. */
  retryDelay: duration.default('1m').refine((ms) => ms >= 10, 'expected at least 10ms'),
}).strict();

const RATE_LIMIT_ALGORITHMS = ['token-bucket', 'sliding-window'] as const;

/** rateLimitRate: whole requests per window, so that both stores can count in integers (exactly). */
const rateLimitRate = z.number({ message: 'expected a whole number of requests' })
  .int('expected a whole number of requests (for half a request a second, write rate: 1 and per: 2s)')
  .min(1, 'expected at least 1 request').max(1_000_000, 'expected at most 1000000 requests');

/** rateLimitWindow: a whole number of milliseconds, from 1ms to 24h (keeps the integer arithmetic below 2^53). */
const rateLimitWindow = duration.pipe(z.number().refine((ms) => Number.isInteger(ms) && ms >= 1 && ms <= 86_400_000, 'expected a whole number of milliseconds between 1ms and 24h'));

const rateLimitBurst = z.number({ message: 'expected a whole number of requests' }).int('expected a whole number of requests')
  .min(1, 'expected at least 1 request').max(1_000_000, 'expected at most 1000000 requests');

const rateLimitKey = z.string().regex(/^(ip|global|header:[!#$%&'*+\-.^_`|~0-9A-Za-z]+)$/, 'expected ip, global or header:<name>');

/** rateLimitOverrideSchema: a different limit (or none) for the paths starting with `pathPrefix`. */
export const rateLimitOverrideSchema = z.object({
  pathPrefix: z.string().startsWith('/', 'expected a path prefix starting with "/"'),
  /** enabled: false exempts the prefix from rate limiting. */
  enabled: z.boolean({ message: 'expected true or false' }).default(true),
  algorithm: z.enum(RATE_LIMIT_ALGORITHMS).optional(),
  rate: rateLimitRate.optional(),
  per: rateLimitWindow.optional(),
  burst: rateLimitBurst.optional(),
  key: rateLimitKey.optional(),
}).strict();

export const rateLimitSchema = z.object({
  algorithm: z.enum(RATE_LIMIT_ALGORITHMS).default('token-bucket'),
  /** rate: requests allowed per `per` (the long-run rate). */
  rate: rateLimitRate,
  per: rateLimitWindow.default('1s'),
  /** burst: the token bucket's capacity; defaults to `rate`. Token bucket only. */
  burst: rateLimitBurst.optional(),
  key: rateLimitKey.default('ip'),
  store: z.enum(['memory', 'redis']).default('memory'),
  /** onStoreError: what to do with a request when the Redis store fails or is slower than `timeout`. */
  onStoreError: z.enum(['allow', 'deny']).default('allow'),
  /** headers: send the RateLimit and RateLimit-Policy headers on allowed responses too (429s always have them). */
  headers: z.boolean({ message: 'expected true or false' }).default(true),
  timeout: duration.pipe(z.number().min(1, 'expected at least 1ms')).default('50ms'),
  /** maxKeys: the most clients the memory store tracks per limit; beyond it the oldest are forgotten. */
  maxKeys: z.number().int().min(1).default(100_000),
  overrides: z.array(rateLimitOverrideSchema).default([]),
}).strict().superRefine((value, ctx) => {
  if (value.algorithm === 'sliding-window' && value.burst !== undefined) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['burst'], message: 'burst applies to token-bucket only: a sliding window allows `rate` requests in any `per`' });
  }
  const prefixes = new Set<string>();
  value.overrides.forEach((o, i) => {
    if (prefixes.has(o.pathPrefix)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['overrides', i, 'pathPrefix'], message: `duplicate path prefix "${o.pathPrefix}"` });
    prefixes.add(o.pathPrefix);
    if ((o.algorithm ?? value.algorithm) === 'sliding-window' && o.burst !== undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['overrides', i, 'burst'], message: 'burst applies to token-bucket only: a sliding window allows `rate` requests in any `per`' });
    }
  });
});

/**
 * proxyProtocolListenerSchema: read a PROXY protocol header (v1 or v2) from
 * the balancers in `trusted` before TLS and HTTP (src/listen/proxy-protocol.ts).
 */
export const proxyProtocolListenerSchema = z.object({
  /** trusted: addresses or CIDRs of the L4 balancers allowed to send the header (checked in load.ts). */
  trusted: z.array(z.string(), { message: 'expected a list of addresses or CIDRs such as ["10.0.0.0/8"]' })
    .min(1, 'expected at least one address or CIDR of the balancers that send the header'),
  /** required: close connections without a header, or from peers not in `trusted`; false serves them as plain connections. */
  required: z.boolean({ message: 'expected true or false' }).default(true),
  /** timeout: how long a trusted peer may take to send the whole header. */
  timeout: duration.pipe(z.number().min(1, 'expected at least 1ms')).default('5s'),
}).strict();

export const listenerSchema = z.object({
  host: z.string().default('0.0.0.0'),
  port: port.default(8080),
  tls: tlsListenerSchema.optional(),
  http2: z.boolean().default(false),
  redirectHttps: z.boolean().default(false),
  fastPath: z.boolean().default(true),
  proxyProtocol: proxyProtocolListenerSchema.optional(),
}).strict().superRefine((l, ctx) => {
  if (l.redirectHttps && l.tls !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['redirectHttps'], message: 'only for a plain listener (this one has tls and serves https itself)' });
});

type ListenerInput = z.input<typeof listenerSchema>;
const listenerList = z.array(listenerSchema, { message: 'expected a port, a listener object or a list of listeners' }).min(1);

/**
 * reissue reports the issues of a nested parse (a short form validated as a
 * one-item list) where the user wrote them: the item's index dropped for
 * the one-item form, and the key path so far put before the paths inside a
 * union's alternatives, which zod keeps relative to the nested parse (the
 * config error picks the alternative the user meant by those paths).
 */
function reissue(ctx: z.RefinementCtx, issues: readonly z.ZodIssue[], single: boolean): void {
  const at = (path: (string | number)[]): (string | number)[] => (single ? path.slice(1) : path);
  const inner = (issue: z.ZodIssue): z.ZodIssue => withAlternatives({ ...issue, path: [...ctx.path, ...at(issue.path)] } as z.ZodIssue);
  const withAlternatives = (issue: z.ZodIssue): z.ZodIssue =>
    issue.code === z.ZodIssueCode.invalid_union ? { ...issue, unionErrors: issue.unionErrors.map((e) => new z.ZodError(e.issues.map(inner))) } : issue;
  for (const issue of issues) ctx.addIssue({ ...withAlternatives(issue), path: at(issue.path) } as z.IssueData);
}

/**
 * listen accepts a port, one listener object, or a list of them. Both short
 * forms are validated as a one-item list (rather than as a union), so that a
 * mistake inside a listener is reported where it is ("listen.tls.key:
 * required"), with the path the user wrote.
 */
const listenSchema = writtenAs(z.unknown().transform((value, ctx) => {
  const single = typeof value === 'number' || (value !== null && typeof value === 'object' && !Array.isArray(value));
  const parsed = listenerList.safeParse(typeof value === 'number' ? [{ port: value }] : single ? [value] : value);
  if (parsed.success) return parsed.data;
  reissue(ctx, parsed.error.issues, single);
  return z.NEVER;
}), z.union([port, listenerSchema, listenerList])) as unknown as z.ZodType<z.output<typeof listenerList>, z.ZodTypeDef, number | ListenerInput | ListenerInput[]>;

export const stickySchema = z.object({
  cookie: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'expected a cookie name (letters, digits, "-" or "_")').default('fulcrum_sticky'),
  ttl: duration.default(0),
  secret: z.string().optional(),
}).strict();

export const p2cSchema = z.object({
  ewma: z.boolean({ message: 'expected true or false' }).default(false),
}).strict();

/**
 * oneOrMany accepts one item or a list of them and yields a list. The one
 * form is validated as a one-item list (rather than as a union) so that a
 * mistake inside it is reported at the path the user wrote.
 */
function oneOrMany<T extends z.ZodTypeAny>(item: T, message: string): z.ZodType<z.output<T>[], z.ZodTypeDef, z.input<T> | z.input<T>[]> {
  const list = z.array(item, { message });
  return writtenAs(z.unknown().transform((value, ctx) => {
    const single = !Array.isArray(value);
    const parsed = list.safeParse(single ? [value] : value);
    if (parsed.success) return parsed.data;
    reissue(ctx, parsed.error.issues, single);
    return z.NEVER;
  }), z.union([item, list])) as unknown as z.ZodType<z.output<T>[], z.ZodTypeDef, z.input<T> | z.input<T>[]>;
}

const hashKeySchema = z.string().regex(/^(ip|path|header:.+|cookie:.+|query:.+)$/, 'expected ip, path, header:<name>, cookie:<name> or query:<name>');

/** SERVICE_NAME: a service's or a route's name, usable in metrics labels, URLs and Redis keys. */
const serviceName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'expected a name of letters, digits, ".", "_" or "-" (at most 64)');

/** FAILOVER_CONDITIONS: when a service cannot serve, in words (status codes are the third kind). */
export const FAILOVER_CONDITIONS = ['no-healthy-backend', 'circuit-open'] as const;
export type FailoverCondition = (typeof FAILOVER_CONDITIONS)[number] | number;

const FAILOVER_ON_HINT = 'expected no-healthy-backend, circuit-open or a status code such as 503';

/**
 * failoverSchema: where requests go when a service cannot serve them (on a
 * service, or on a route, whose own wins). A status in `on` sends a
 * retryable request on to the fallback service instead of answering it.
 */
export const failoverSchema = z.object({
  service: z.string({ message: 'expected the name of the fallback service' }),
  on: z.array(z.union([
    z.enum(FAILOVER_CONDITIONS, expecting(FAILOVER_ON_HINT)),
    z.number().int('expected a whole status code').min(400, 'expected a status code from 400 to 599').max(599, 'expected a status code from 400 to 599'),
  ], expecting(FAILOVER_ON_HINT))).min(1, 'expected at least one condition').default(['no-healthy-backend', 'circuit-open']),
}).strict();

export type FailoverConfig = z.output<typeof failoverSchema>;

/**
 * serviceSchema: one named pool under `services`, with everything that sits
 * at the top level for the one pool of a configuration without `services`.
 */
export const serviceSchema = z.object({
  backends: z.array(backendSchema).default([]),
  /** discovery: one source or a list of them (several DNS names or Kubernetes services). */
  discovery: oneOrMany(discoverySchema, 'expected a discovery source or a list of them').optional(),
  algorithm: z.string().default('round-robin'),
  hashKey: hashKeySchema.default('ip'),
  sticky: stickySchema.optional(),
  slowStart: duration.default(0),
  p2c: p2cSchema.default({}),
  healthCheck: healthCheckSchema.default({}),
  timeouts: timeoutsSchema.default({}),
  retries: retriesSchema.default({}),
  outlierDetection: outlierDetectionSchema.default({}),
  /** circuitBreaker: fail fast while the service is failing; absent means no circuit. */
  circuitBreaker: circuitBreakerSchema.optional(),
  backendTls: tlsClientSchema.default({}),
  upstream: upstreamSchema.default({}),
  /** sendProxyProtocol: pass the client's address to the backends in a PROXY protocol header. */
  sendProxyProtocol: sendProxyProtocolSchema.optional(),
  /** maxConnectionsPerBackend: concurrent requests per backend; 0 means no limit. */
  maxConnectionsPerBackend: z.number().int().min(0).default(0),
  queueTimeout: duration.default('5s'),
  /** failover: the service that takes the requests this one cannot serve (wherever it is used). */
  failover: failoverSchema.optional(),
}).strict();

/** ServiceConfig is one service's validated configuration. */
export type ServiceConfig = z.output<typeof serviceSchema>;

/** POOL_KEYS are the top-level keys that describe the one pool of a configuration without `services`. */
export const POOL_KEYS = ['backends', 'discovery', 'algorithm', 'hashKey', 'sticky', 'slowStart', 'p2c', 'healthCheck', 'timeouts', 'retries', 'outlierDetection', 'circuitBreaker', 'backendTls', 'upstream', 'sendProxyProtocol'] as const;

const headerValueText = z.string().refine((v) => !/[\r\n\0]/.test(v), 'expected a header value without CR, LF or NUL');

/** A regular expression given in the config, compiled once at load (a bad one is a config error with the engine's message). */
const regexSource = z.string().superRefine((value, ctx) => {
  try {
    new RegExp(value);
  } catch (err) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `invalid regular expression: ${(err as Error).message}` });
  }
});

const headerMatchSchema = z.union([
  z.string(),
  z.object({ regex: regexSource }).strict(),
  z.object({ present: z.boolean({ message: 'expected true or false' }) }).strict(),
], expecting('expected a value, {regex: ...} or {present: true|false}'));

const queryMatchSchema = z.union([z.string(), z.object({ regex: regexSource }).strict()], expecting('expected a value or {regex: ...}'));

const pathMatchSchema = z.object({
  exact: z.string().startsWith('/', 'expected a path starting with "/"').optional(),
  prefix: z.string().startsWith('/', 'expected a path prefix starting with "/"').optional(),
  regex: regexSource.optional(),
}).strict().superRefine((p, ctx) => {
  const given = (['exact', 'prefix', 'regex'] as const).filter((k) => p[k] !== undefined);
  if (given.length !== 1) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected exactly one of exact, prefix or regex${given.length > 1 ? `, got ${given.join(' and ')}` : ''}` });
});

const hostPattern = z.string().regex(/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?(:\d{1,5})?$/,
  'expected a host name such as "api.example.com" or "*.example.com" (a wildcard stands for one label)');

export const routeMatchSchema = z.object({
  hosts: z.array(hostPattern).min(1).optional(),
  path: pathMatchSchema.optional(),
  methods: z.array(z.string().regex(/^[A-Za-z]+$/, 'expected a method such as GET').transform((m) => m.toUpperCase())).min(1).optional(),
  headers: z.record(headerMatchSchema).optional(),
  query: z.record(queryMatchSchema).optional(),
}).strict();

const headerTransformSchema = z.object({
  /** set replaces every value of the header. */
  set: z.record(headerName, headerValueText).optional(),
  /** add appends a value (or several), keeping those present. */
  add: z.record(headerName, z.union([headerValueText, z.array(headerValueText)], expecting('expected a header value or a list of them'))).optional(),
  remove: z.array(headerName).optional(),
}).strict();

const cidr = z.string().superRefine((value, ctx) => {
  const [addr, bits, extra] = value.split('/');
  const v6 = isIP(addr ?? '') === 6;
  const okAddr = isIP(addr ?? '') !== 0;
  const okBits = bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (v6 ? 128 : 32));
  if (!okAddr || !okBits || extra !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'expected an IP address or CIDR such as "10.0.0.0/8"' });
});

const rewriteSchema = z.object({
  stripPrefix: z.string().startsWith('/', 'expected a path prefix starting with "/"').optional(),
  replacePrefix: z.object({ from: z.string().startsWith('/', 'expected a path prefix starting with "/"'), to: z.string().startsWith('/', 'expected a path starting with "/"') }).strict().optional(),
  regex: regexSource.optional(),
  replacement: z.string().optional(),
}).strict().superRefine((r, ctx) => {
  const forms = [r.stripPrefix !== undefined, r.replacePrefix !== undefined, r.regex !== undefined].filter(Boolean).length;
  if (forms !== 1) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'expected exactly one of stripPrefix, replacePrefix or regex (with replacement)' });
  if (r.regex !== undefined && r.replacement === undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['replacement'], message: 'required with regex: the new path, with $1, $2... for the groups' });
  if (r.regex === undefined && r.replacement !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['replacement'], message: 'only with regex' });
});

/** splitSideSchema: one side of a weighted split, a service and its share (weights need not add up to 100). */
export const splitSideSchema = z.object({
  service: z.string({ message: 'expected a service name' }),
  weight: z.number({ message: 'expected a weight (0 or more)' }).int('expected a whole number').min(0, 'expected a weight of 0 or more').max(1_000_000, 'expected a weight of at most 1000000'),
}).strict();

/** splitSchema: the sides of a split; at least one must carry weight, and each service appears once. */
export const splitSchema = z.array(splitSideSchema, { message: 'expected a list of {service, weight}' }).min(1, 'expected at least one side').superRefine((sides, ctx) => {
  if (sides.length > 0 && sides.every((s) => s?.weight === 0)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'expected at least one side with a weight above 0' });
  const seen = new Map<string, number>();
  sides.forEach((s, i) => {
    if (s === undefined) return;
    const earlier = seen.get(s.service);
    if (earlier !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [i, 'service'], message: `"${s.service}" appears twice (also [${earlier}])` });
    else seen.set(s.service, i);
  });
});

export type SplitSideConfig = z.output<typeof splitSideSchema>;

/** splitStickySchema: the cookie that keeps a client on the side of a split it first got. */
const splitStickySchema = z.object({
  cookie: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'expected a cookie name (letters, digits, "-" or "_")').optional(),
  ttl: duration.default(0),
  secret: z.string().optional(),
}).strict();

/** mirrorSchema: copies of sampled requests to another service, fire and forget. */
export const mirrorSchema = z.object({
  service: z.string({ message: 'expected the name of the service that gets the copies' }),
  /** percent: the share of the route's requests copied. */
  percent: z.number({ message: 'expected a percentage from 0 to 100' }).min(0, 'expected a percentage from 0 to 100').max(100, 'expected a percentage from 0 to 100').default(100),
  /** maxBodySize: a request whose body is larger is not copied (nor buffered beyond this for the copy). */
  maxBodySize: size.default('64kb'),
  /** maxInFlight: copies in flight at once; beyond it a copy is dropped (and counted), never queued. */
  maxInFlight: z.number().int('expected a whole number').min(1, 'expected at least 1').default(100),
}).strict();

export type MirrorConfig = z.output<typeof mirrorSchema>;

const REDIRECT_STATUSES = [301, 302, 303, 307, 308] as const;

export const routeSchema = z.object({
  name: serviceName.optional(),
  /** match: every condition given must hold; none matches everything. */
  match: routeMatchSchema.default({}),
  // The action: exactly one of these three.
  service: z.string().optional(),
  /** split: weighted sides (canary, blue-green) instead of one service; weights change at run time (admin API). */
  split: splitSchema.optional(),
  /** sticky: with split, a client keeps the side it first got (a signed cookie of the route's own). */
  sticky: z.union([z.boolean(), splitStickySchema], expecting('expected true, false or {cookie, ttl, secret}')).optional(),
  redirect: z.object({
    /** to: the target, with {host}, {path}, {query} and the path regex's groups {1}, {2}... */
    to: z.string().min(1),
    status: z.number().refine((n) => (REDIRECT_STATUSES as readonly number[]).includes(n), 'expected 301, 302, 303, 307 or 308').default(302),
  }).strict().optional(),
  respond: z.object({
    status: z.number().int().min(200).max(599),
    body: z.string().default(''),
    headers: z.record(headerName, headerValueText).default({}),
  }).strict().optional(),
  rewrite: rewriteSchema.optional(),
  requestHeaders: headerTransformSchema.optional(),
  responseHeaders: headerTransformSchema.optional(),
  /** timeouts: response, idle and total override the service's for this route (connect belongs to the service's connections). */
  timeouts: z.object({ response: duration.optional(), idle: duration.optional(), total: duration.optional() }).strict().optional(),
  retries: retriesSchema.partial().optional(),
  rateLimit: rateLimitSchema.optional(),
  allow: z.array(cidr).optional(),
  deny: z.array(cidr).optional(),
  preserveHost: z.boolean().optional(),
  /** mirror: copy sampled requests to another service (the client never waits for the copy). */
  mirror: mirrorSchema.optional(),
  /** failover: overrides the service's own failover for this route. */
  failover: failoverSchema.optional(),
}).strict().superRefine((r, ctx) => {
  const actions = (['service', 'split', 'redirect', 'respond'] as const).filter((k) => r[k] !== undefined);
  if (actions.length !== 1) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: actions.length === 0 ? 'expected an action: service, split, redirect or respond' : `expected one action, got ${actions.join(' and ')}` });
  }
  if (r.service === undefined && r.split === undefined) {
    for (const key of ['rewrite', 'timeouts', 'retries', 'preserveHost', 'mirror', 'failover'] as const) {
      if (r[key] !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: 'applies only to a route with a service or a split' });
    }
  }
  if (r.sticky !== undefined && r.split === undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['sticky'], message: 'applies only beside split (a service has its own sticky)' });
});

export type RouteConfig = z.output<typeof routeSchema>;
export type RouteMatchConfig = RouteConfig['match'];
export type HeaderTransformConfig = z.output<typeof headerTransformSchema>;

export const configSchema = z.object({
  listen: listenSchema.default(8080),
  algorithm: z.string().default('round-robin'),
  hashKey: hashKeySchema.default('ip'),
  sticky: stickySchema.optional(),
  slowStart: duration.default(0),
  /** p2c: options of the p2c policy; `ewma` compares latency-weighted load instead of in-flight counts alone. */
  p2c: p2cSchema.default({}),
  backends: z.array(backendSchema).default([]),
  /** sendProxyProtocol: pass the client's address to the backends in a PROXY protocol header (docs/configuration.md). */
  sendProxyProtocol: sendProxyProtocolSchema.optional(),
  /** discovery: find backends through DNS or Kubernetes; joins the static `backends` (see docs/deployment.md). */
  discovery: discoverySchema.optional(),
  healthCheck: healthCheckSchema.default({}),
  timeouts: timeoutsSchema.default({}),
  retries: retriesSchema.default({}),
  outlierDetection: outlierDetectionSchema.default({}),
  /** circuitBreaker: the one pool's circuit breaker (docs/configuration.md, "Circuit breaking"). */
  circuitBreaker: circuitBreakerSchema.optional(),
  limits: limitsSchema.default({}),
  trustedProxies: z.array(z.string()).default([]),
  preserveHost: z.boolean().default(true),
  drainTimeout: duration.default('30s'),
  accessLog: z.boolean().default(true),
  /** requestId: one id per request, to the backend, the client, the access log and error answers; absent means none. */
  requestId: requestIdSchema.optional(),
  /** tracing: OpenTelemetry spans over OTLP/HTTP; off by default (the fulcrum:span channel works without it). */
  tracing: tracingSchema.default({}),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  admin: adminSchema.default({}),
  state: stateSchema.default({}),
  /** rateLimit: per-client request rate limits; absent means no limiter (see docs/configuration.md). */
  rateLimit: rateLimitSchema.optional(),
  backendTls: tlsClientSchema.default({}),
  upstream: upstreamSchema.default({}),
  /** acme: the CA and storage of automatic certificates (listen[].tls.acme); defaults apply when absent. */
  acme: acmeSchema.optional(),
  workers: z.union([z.number().int().min(1), z.literal('auto')], expecting('expected a number of workers (1 or more) or "auto"')).default(1),
  /** services: named pools; without it the top-level pool keys describe one service, `default`. */
  services: z.record(serviceName, serviceSchema).optional(),
  /** routes: ordered, first match wins; without it every request goes to the one service. */
  routes: z.array(routeSchema).optional(),
  watch: z.boolean().default(false),
}).strict().superRefine((c, ctx) => {
  // Refinements run on a config with problems already reported (zod's "dirty" result): look only at what parsed.
  if (!Array.isArray(c.listen)) return;
  const acme = c.listen.some((l) => l?.tls?.acme !== undefined);
  if (acme && c.acme?.storage === 'redis' && c.state.store !== 'redis') ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['acme', 'storage'], message: 'redis keeps certificates in the state store: set state.store: redis (and state.redis)' });
  if (acme && c.listen.some((l) => l?.tls?.acme?.domains === 'auto') && autoDomains(c.routes ?? []).domains.length === 0) {
    const i = c.listen.findIndex((l) => l?.tls?.acme?.domains === 'auto');
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['listen', i, 'tls', 'acme', 'domains'], message: 'auto takes the exact hosts of routes[].match.hosts, and no route names one (wildcards, IP addresses and one-label names cannot be ordered): list the domains' });
  }
  if (acme && c.acme?.challenge === 'tls-alpn-01') {
    c.listen.forEach((l, i) => {
      if (l?.tls?.acme !== undefined && l.http2) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['listen', i, 'http2'], message: 'tls-alpn-01 is answered on HTTP/1.1 TLS listeners only (use challenge: http-01 with http2: true)' });
    });
  }
});

/**
 * autoDomains: the names `domains: auto` orders certificates for, the
 * exact hosts of the routes (port and trailing dot dropped, lower case),
 * and those it leaves out with the reason: a wildcard needs DNS-01, and a
 * CA issues no certificate for an IP address or a one-label name.
 */
export function autoDomains(routes: readonly { match?: { hosts?: readonly string[] | undefined } | undefined }[]): { domains: string[]; skipped: { host: string; reason: string }[] } {
  const domains = new Set<string>();
  const skipped: { host: string; reason: string }[] = [];
  for (const r of routes) {
    for (const written of r.match?.hosts ?? []) {
      const host = written.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
      if (host.startsWith('*.')) skipped.push({ host: written, reason: 'a wildcard needs the DNS-01 challenge, which is not supported' });
      else if (/^[\d.]+$/.test(host)) skipped.push({ host: written, reason: 'an IP address' });
      else if (!host.includes('.')) skipped.push({ host: written, reason: 'a one-label name, which a public CA does not certify' });
      else domains.add(host);
    }
  }
  return { domains: [...domains], skipped };
}

/** FulcrumConfigInput is what a user writes (file, flags or library call). */
export type FulcrumConfigInput = z.input<typeof configSchema>;
/**
 * FulcrumConfig is the validated, normalized configuration. `services` and
 * `routes` are always there: without them in the input, the top-level pool
 * keys become the service `default` and one catch-all route leads to it.
 */
export type FulcrumConfig = Omit<z.output<typeof configSchema>, 'services' | 'routes'> & {
  services: Record<string, ServiceConfig>;
  routes: RouteConfig[];
};
export type BackendConfig = FulcrumConfig['backends'][number];
export type HealthCheckConfig = FulcrumConfig['healthCheck'];
export type TimeoutsConfig = FulcrumConfig['timeouts'];
export type ListenerConfig = FulcrumConfig['listen'][number];
export type DiscoveryConfig = NonNullable<FulcrumConfig['discovery']>;
export type DnsDiscoveryConfig = NonNullable<DiscoveryConfig['dns']>;
export type KubernetesDiscoveryConfig = NonNullable<DiscoveryConfig['kubernetes']>;
export type RateLimitConfig = NonNullable<FulcrumConfig['rateLimit']>;
export type RateLimitOverrideConfig = RateLimitConfig['overrides'][number];
export type RetriesConfig = z.output<typeof retriesSchema>;
export type CircuitBreakerConfig = z.output<typeof circuitBreakerSchema>;
export type AcmeConfig = z.output<typeof acmeSchema>;
export type AcmeListenerConfig = z.output<typeof acmeListenerSchema>;
export type RedisConfig = FulcrumConfig['state']['redis'];
