/**
 * Every alternative form in the config schema (each z.union, and each
 * discriminated union) reports a mistake inside the form the user meant at
 * its innermost key path, with that form's expectation: checked through the
 * load API (one document per case) and through `fulcrum validate` (all cases
 * in one file). The schema is walked, so that a union added later without a
 * case here fails the first test.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { z } from 'zod';
import { configSchema } from '../../src/config/schema.js';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/config-error.js';
import { CLI } from '../helpers/cli.js';

type Doc = Record<string, unknown>;

/**
 * unionPaths walks a schema and returns the key path of every union in it:
 * "a.b" for keys, "[]" for array items, "{}" for record values.
 */
function unionPaths(schema: z.ZodTypeAny, path = '', out = new Set<string>()): Set<string> {
  const def = schema._def as { typeName: string } & Record<string, unknown>;
  const inner = (s: unknown, p = path): void => { unionPaths(s as z.ZodTypeAny, p, out); };
  switch (def.typeName) {
    case 'ZodObject': {
      const shape = (def.shape as () => Record<string, z.ZodTypeAny>)();
      for (const [key, value] of Object.entries(shape)) inner(value, path === '' ? key : `${path}.${key}`);
      break;
    }
    case 'ZodUnion':
    case 'ZodDiscriminatedUnion':
      out.add(path);
      for (const option of def.options as z.ZodTypeAny[]) inner(option);
      break;
    case 'ZodArray': inner(def.type, `${path}[]`); break;
    case 'ZodRecord': inner(def.valueType, `${path}{}`); break;
    case 'ZodOptional': case 'ZodNullable': case 'ZodDefault': case 'ZodCatch': case 'ZodReadonly': case 'ZodBranded':
      inner(def.innerType ?? def.type); break;
    case 'ZodEffects': inner(def.schema); break;
    case 'ZodPipeline': inner(def.in); inner(def.out); break;
    case 'ZodLazy': inner((def.getter as () => z.ZodTypeAny)()); break;
    case 'ZodIntersection': inner(def.left); inner(def.right); break;
    case 'ZodTuple': (def.items as z.ZodTypeAny[]).forEach((item, i) => inner(item, `${path}[${i}]`)); break;
    default: break;
  }
  return out;
}

const DURATION = 'expected a duration such as "10s", "500ms", "1m" or a number of seconds';
const SIZE = 'expected a size such as 1048576, "64kb", "10mb" or "1gb"';
const RETRY_ON = 'expected "connect-failure", "reset", "timeout", a status code such as 503, or a class such as "5xx"';
const STATUS = 'expected status codes such as 200, "200-299", "200,204" or [200, "300-399"]';

interface Case {
  /** union: the schema path of the union this case covers (as unionPaths spells it). */
  readonly union: string;
  /** at: where the value goes in the document (array indices concrete). */
  readonly at: string;
  readonly value: unknown;
  /** base: siblings the value needs to be judged alone (e.g. a backend's url). */
  readonly base?: Doc;
  /** problem: the exact "path: message" expected. */
  readonly problem: string;
  /** alone: the case needs a document of its own form (named services), so it is left out of the one-file check. */
  readonly alone?: boolean;
}

const url = 'http://127.0.0.1:8081';
const duration = (union: string, base?: Doc, at = union.replace(/\[\]/g, '[0]')): Case =>
  ({ union, at, value: true, ...(base === undefined ? {} : { base }), problem: `${at}: ${DURATION}, got true` });
const backendBase = (i: number): Doc => ({ backends: Array.from({ length: i + 1 }, (_, k) => ({ url: `http://127.0.0.1:${9000 + k}` })) });

/** CASES: one (or more) per union in the schema; the object forms check that the innermost path wins. */
const CASES: readonly Case[] = [
  // A backend: a URL string or an object.
  { union: 'backends[]', at: 'backends[0]', value: { url, weight: 'heavy' }, problem: 'backends[0].weight: expected a non-negative number, got "heavy"' },
  { union: 'backends[]', at: 'backends[1]', value: { url: 'http://127.0.0.1:8082', weight: -1 }, problem: 'backends[1].weight: expected at least 0, got -1' },
  { union: 'backends[]', at: 'backends[2]', value: 'ftp://127.0.0.1:21', problem: 'backends[2]: expected an http://, https:// or h2c:// URL, got "ftp://127.0.0.1:21"' },
  { union: 'backends[]', at: 'backends[3]', value: true, problem: 'backends[3]: expected a URL string or an object with a "url", got true' },
  { union: 'backends[]', at: 'backends[4]', value: { url: 'http://127.0.0.1:8084', tls: { insecureSkipVerify: 'yes' } }, problem: 'backends[4].tls.insecureSkipVerify: expected boolean, got string' },
  duration('backends[].timeouts.connect', backendBase(5), 'backends[5].timeouts.connect'),
  duration('backends[].timeouts.response', backendBase(6), 'backends[6].timeouts.response'),
  duration('backends[].timeouts.idle', backendBase(7), 'backends[7].timeouts.idle'),
  duration('backends[].timeouts.total', backendBase(8), 'backends[8].timeouts.total'),
  // Durations and sizes: a number or a string.
  duration('sticky.ttl'),
  { union: 'sticky.ttl', at: 'sticky.ttl', value: 'soon', problem: `sticky.ttl: ${DURATION}, got "soon"` },
  duration('slowStart'),
  duration('healthCheck.interval'),
  duration('healthCheck.timeout'),
  duration('timeouts.connect'),
  duration('timeouts.response'),
  duration('timeouts.idle'),
  duration('timeouts.total'),
  duration('outlierDetection.baseEjectionTime'),
  duration('outlierDetection.maxEjectionTime'),
  duration('limits.queueTimeout'),
  duration('limits.headersTimeout'),
  duration('limits.requestTimeout'),
  duration('limits.keepAliveTimeout'),
  duration('drainTimeout'),
  duration('state.flushInterval'),
  duration('discovery.dns.interval', { discovery: { dns: { name: 'api.internal', port: 80 } } }),
  duration('rateLimit.per', { rateLimit: { rate: 10 } }),
  duration('rateLimit.timeout', { rateLimit: { rate: 10 } }),
  duration('rateLimit.overrides[].per', { rateLimit: { rate: 10, overrides: [{ pathPrefix: '/a' }] } }),
  { union: 'retries.maxBodySize', at: 'retries.maxBodySize', value: {}, problem: `retries.maxBodySize: ${SIZE}, got {}` },
  { union: 'limits.maxHeaderSize', at: 'limits.maxHeaderSize', value: true, problem: `limits.maxHeaderSize: ${SIZE}, got true` },
  { union: 'limits.maxBodySize', at: 'limits.maxBodySize', value: '10 parsecs', problem: `limits.maxBodySize: ${SIZE}, got "10 parsecs"` },
  // Retries and the circuit breaker (issue 18): durations, and retry conditions (a status number or a name).
  duration('retries.backoff.base'),
  duration('retries.backoff.max'),
  duration('retries.perTryTimeout'),
  duration('circuitBreaker.window'),
  duration('circuitBreaker.latencyP99'),
  duration('circuitBreaker.openFor'),
  { union: 'retries.on[]', at: 'retries.on', value: ['reset', true], problem: `retries.on[1]: ${RETRY_ON}, got true` },
  { union: 'retries.on[]', at: 'retries.on', value: ['5xx', 'sometimes'], problem: `retries.on[1]: ${RETRY_ON}, got "sometimes"` },
  { union: 'retries.on[]', at: 'retries.on', value: [700], problem: `retries.on[0]: ${RETRY_ON}, got 700` },
  // Status codes: a number, a string, or a list of either.
  { union: 'healthCheck.expectStatus', at: 'healthCheck.expectStatus', value: true, problem: `healthCheck.expectStatus: ${STATUS}, got true` },
  { union: 'healthCheck.expectStatus[]', at: 'healthCheck.expectStatus', value: [200, {}], problem: `healthCheck.expectStatus[1]: ${STATUS}, got {}` },
  // A Kubernetes port: a number or a name.
  { union: 'discovery.kubernetes.port', at: 'discovery.kubernetes.port', value: 0, base: { discovery: { kubernetes: { service: 'api' } } }, problem: 'discovery.kubernetes.port: expected at least 1, got 0' },
  { union: 'discovery.kubernetes.port', at: 'discovery.kubernetes.port', value: true, base: { discovery: { kubernetes: { service: 'api' } } }, problem: 'discovery.kubernetes.port: expected a port number or a port name, got true' },
  // Workers: a number or "auto".
  { union: 'workers', at: 'workers', value: 0, problem: 'workers: expected at least 1, got 0' },
  { union: 'workers', at: 'workers', value: false, problem: 'workers: expected a number of workers (1 or more) or "auto", got false' },
  // The listeners (a port, an object or a list: validated as a list, not a union) report inside too.
  { union: 'listen', at: 'listen', value: { port: 8080, tls: { cert: 'c.pem' } }, problem: 'listen.tls.key: required with cert' },
  { union: 'listen', at: 'listen', value: [{ port: 8080 }, { port: 'x' }], problem: 'listen[1].port: expected a port number, got "x"' },
  { union: 'listen', at: 'listen', value: [{ port: 8443, tls: { acme: { email: 'a@b.c', domains: 'all' } } }], problem: 'listen[0].tls.acme.domains: expected a list of domains such as [example.com, www.example.com], or "auto" (a certificate for each exact host of the routes), got "all"' },
  { union: 'listen', at: 'listen', value: [{ port: 8443, tls: { acme: { email: 'a@b.c', domains: ['ok.example.com', 'bad_name'] } } }], problem: 'listen[0].tls.acme.domains[1]: expected a DNS name such as "example.com" (no wildcards: they need DNS-01, which is not supported), got "bad_name"' },
];

/** Named services and routes: the same unions inside services.<name> and routes[i], in documents of that form. */
const named: Doc = { services: { a: {} }, routes: [{ service: 'a' }] };
const inService = (key: string): Case => ({ ...duration(`services{}.${key}`, named, `services.a.${key}`), alone: true });
const inRoute = (key: string): Case => ({ ...duration(`routes[].${key}`, named, `routes[0].${key}`), alone: true });
const SERVICE_CASES: readonly Case[] = [
  { union: 'services{}.backends[]', at: 'services.a.backends[0]', base: named, value: { url, weight: 'heavy' }, problem: 'services.a.backends[0].weight: expected a non-negative number, got "heavy"', alone: true },
  ...['backends[0].timeouts.connect', 'backends[0].timeouts.response', 'backends[0].timeouts.idle', 'backends[0].timeouts.total'].map((k) =>
    ({ ...duration(`services{}.${k.replace('[0]', '[]')}`, { services: { a: { backends: [{ url }] } }, routes: [{ service: 'a' }] }, `services.a.${k}`), alone: true })),
  ...['sticky.ttl', 'slowStart', 'healthCheck.interval', 'healthCheck.timeout', 'timeouts.connect', 'timeouts.response', 'timeouts.idle', 'timeouts.total',
    'outlierDetection.baseEjectionTime', 'outlierDetection.maxEjectionTime', 'queueTimeout',
    'retries.backoff.base', 'retries.backoff.max', 'retries.perTryTimeout', 'circuitBreaker.window', 'circuitBreaker.latencyP99', 'circuitBreaker.openFor'].map(inService),
  { union: 'services{}.retries.on[]', at: 'services.a.retries.on', base: named, value: [503, 'often'], problem: `services.a.retries.on[1]: ${RETRY_ON}, got "often"`, alone: true },
  { union: 'services{}.healthCheck.expectStatus', at: 'services.a.healthCheck.expectStatus', base: named, value: true, problem: `services.a.healthCheck.expectStatus: ${STATUS}, got true`, alone: true },
  { union: 'services{}.healthCheck.expectStatus[]', at: 'services.a.healthCheck.expectStatus', base: named, value: [200, {}], problem: `services.a.healthCheck.expectStatus[1]: ${STATUS}, got {}`, alone: true },
  { union: 'services{}.retries.maxBodySize', at: 'services.a.retries.maxBodySize', base: named, value: {}, problem: `services.a.retries.maxBodySize: ${SIZE}, got {}`, alone: true },
  { union: 'routes[].match.headers{}', at: 'routes[0].match.headers.x-a', base: named, value: { regex: '(' }, problem: 'routes[0].match.headers.x-a.regex: invalid regular expression: Invalid regular expression: /(/: Unterminated group, got "("', alone: true },
  { union: 'routes[].match.query{}', at: 'routes[0].match.query.v', base: named, value: 3, problem: 'routes[0].match.query.v: expected a value or {regex: ...}, got 3', alone: true },
  { union: 'routes[].requestHeaders.add{}', at: 'routes[0].requestHeaders.add.X-A', base: named, value: ['ok', 'bad\n'], problem: 'routes[0].requestHeaders.add.X-A[1]: expected a header value without CR, LF or NUL, got "bad\\n"', alone: true },
  { union: 'routes[].responseHeaders.add{}', at: 'routes[0].responseHeaders.add.X-A', base: named, value: 7, problem: 'routes[0].responseHeaders.add.X-A: expected a header value or a list of them, got 7', alone: true },
  ...['timeouts.response', 'timeouts.idle', 'timeouts.total', 'retries.backoff.base', 'retries.backoff.max', 'retries.perTryTimeout'].map(inRoute),
  { union: 'routes[].retries.on[]', at: 'routes[0].retries.on', base: named, value: [{}], problem: `routes[0].retries.on[0]: ${RETRY_ON}, got {}`, alone: true },
  { union: 'routes[].retries.maxBodySize', at: 'routes[0].retries.maxBodySize', base: named, value: {}, problem: `routes[0].retries.maxBodySize: ${SIZE}, got {}`, alone: true },
  { ...duration('routes[].rateLimit.per', { ...named, routes: [{ service: 'a', rateLimit: { rate: 1 } }] }, 'routes[0].rateLimit.per'), alone: true },
  { ...duration('routes[].rateLimit.timeout', { ...named, routes: [{ service: 'a', rateLimit: { rate: 1 } }] }, 'routes[0].rateLimit.timeout'), alone: true },
  { ...duration('routes[].rateLimit.overrides[].per', { ...named, routes: [{ service: 'a', rateLimit: { rate: 1, overrides: [{ pathPrefix: '/x' }] } }] }, 'routes[0].rateLimit.overrides[0].per'), alone: true },
  // Traffic management: a split's sticky (true or an object), a mirror's body size, failover conditions (a word or a status).
  { union: 'routes[].sticky', at: 'routes[0].sticky', base: { services: { a: {} }, routes: [{ split: [{ service: 'a', weight: 1 }] }] }, value: 'yes', problem: 'routes[0].sticky: expected true, false or {cookie, ttl, secret}, got "yes"', alone: true },
  { ...duration('routes[].sticky.ttl', { services: { a: {} }, routes: [{ split: [{ service: 'a', weight: 1 }], sticky: {} }] }, 'routes[0].sticky.ttl'), alone: true },
  { union: 'routes[].mirror.maxBodySize', at: 'routes[0].mirror.maxBodySize', base: { ...named, routes: [{ service: 'a', mirror: { service: 'a' } }] }, value: {}, problem: `routes[0].mirror.maxBodySize: ${SIZE}, got {}`, alone: true },
  { union: 'routes[].failover.on[]', at: 'routes[0].failover.on', base: { services: { a: {}, b: {} }, routes: [{ service: 'a', failover: { service: 'b' } }] }, value: ['sometimes'], problem: 'routes[0].failover.on[0]: expected one of "no-healthy-backend", "circuit-open", got "sometimes"', alone: true },
  { union: 'services{}.failover.on[]', at: 'services.a.failover.on', base: { services: { a: { failover: { service: 'b' } }, b: {} }, routes: [{ service: 'a' }] }, value: [200], problem: 'services.a.failover.on[0]: expected at least 400, got 200', alone: true },
  duration('limits.clientIdleTimeout'),
  duration('acme.renewBefore'),
  duration('acme.checkInterval'),
  duration('acme.retryDelay'),
  duration('tracing.otlp.timeout'),
  duration('tracing.batch.delay'),
];

/** EXTRA_FORMS: cases for forms that are not zod unions (checked above all the same). */
const EXTRA_FORMS = new Set(['listen']);

function set(doc: Doc, path: string, value: unknown): void {
  const keys = path.replace(/\[(\d+)\]/g, '.$1').split('.');
  let node: Record<string, unknown> = doc;
  keys.forEach((key, i) => {
    if (i === keys.length - 1) { node[key] = value; return; }
    const nextIsIndex = /^\d+$/.test(keys[i + 1]!);
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = nextIsIndex ? [] : {};
    node = node[key] as Record<string, unknown>;
  });
}

/** merge deep-merges `from` into `into`, arrays by index. */
function merge(into: Doc, from: Doc): Doc {
  for (const [key, value] of Object.entries(from)) {
    const current = into[key];
    if (typeof value === 'object' && value !== null && typeof current === 'object' && current !== null) merge(current as Doc, value as Doc);
    else into[key] = structuredClone(value);
  }
  return into;
}

function docOf(c: Case): Doc {
  const doc = merge({}, c.base ?? {});
  set(doc, c.at, structuredClone(c.value));
  // A case at backends[3] alone: the items before it are valid backends.
  const backends = doc.backends;
  if (Array.isArray(backends)) for (let k = 0; k < backends.length; k++) if (!(k in backends)) backends[k] = `http://127.0.0.1:${9100 + k}`;
  return doc;
}

describe('config errors inside alternative forms', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'fulcrum-unions-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('every union in the schema has a case', () => {
    const unions = unionPaths(configSchema as unknown as z.ZodTypeAny);
    assert.ok(unions.size >= 20, `the walk found the unions (${[...unions].join(', ')})`);
    const covered = new Set([...CASES, ...SERVICE_CASES].map((c) => c.union));
    const missing = [...unions].filter((u) => !covered.has(u));
    assert.deepEqual(missing, [], `unions without a case in CASES: ${missing.join(', ')}`);
    const stale = [...covered].filter((u) => !unions.has(u) && !EXTRA_FORMS.has(u));
    assert.deepEqual(stale, [], `cases for unions the schema no longer has: ${stale.join(', ')}`);
  });

  for (const c of [...CASES, ...SERVICE_CASES]) {
    test(`load API: ${c.problem}`, () => {
      const file = join(dir, `${c.at.replace(/\W+/g, '_')}-${[...CASES, ...SERVICE_CASES].indexOf(c)}.json`);
      writeFileSync(file, JSON.stringify(docOf(c)));
      assert.throws(() => loadConfig({ file, env: {} }), (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.deepEqual(e.problems.map((p) => `${p.path}: ${p.message}`), [c.problem]);
        return true;
      });
    });
  }

  test('fulcrum validate reports every case, each at its innermost path', () => {
    // One case per location in one file: the bases first, then the values over them.
    const seen = new Set<string>();
    const chosen = CASES.filter((c) => c.alone !== true && !seen.has(c.at) && seen.add(c.at) !== undefined);
    const doc: Doc = {};
    for (const c of chosen) merge(doc, c.base ?? {});
    for (const c of chosen) set(doc, c.at, structuredClone(c.value));
    const file = join(dir, 'all.yaml');
    writeFileSync(file, JSON.stringify(doc));
    const out = spawnSync(process.execPath, [CLI, 'validate', '-c', file], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
    assert.equal(out.status, 1, out.stdout + out.stderr);
    const expected = chosen.map((c) => `${file}: ${c.problem}`).sort();
    const lines = out.stderr.trim().split('\n');
    assert.deepEqual(lines.slice(1).sort(), expected, out.stderr);
    assert.equal(lines[0], `${expected.length} problems found:`);
    assert.deepEqual(lines.slice(1).sort(), expected);
  });
});
