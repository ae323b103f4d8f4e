/** W3C Trace Context parsing, request ids and the tracing/requestId config, on their own. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { formatTraceparent, parseTraceparent, remoteParent, validTracestate } from '../../src/trace/context.js';
import { randomSpanId, randomTraceId } from '../../src/trace/ids.js';
import { RequestIds, dropField, setField, wellFormedId } from '../../src/trace/request-id.js';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/config-error.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('traceparent', () => {
  test('a valid version-00 value gives its ids and sampled flag', () => {
    assert.deepEqual(parseTraceparent(`00-${TRACE}-${SPAN}-01`), { traceId: TRACE, spanId: SPAN, sampled: true });
    assert.deepEqual(parseTraceparent(`00-${TRACE}-${SPAN}-00`), { traceId: TRACE, spanId: SPAN, sampled: false });
    assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-03`)?.sampled, true, 'other flag bits do not hide the sampled bit');
    assert.deepEqual(parseTraceparent(` 00-${TRACE}-${SPAN}-01 `)?.traceId, TRACE, 'surrounding spaces are optional whitespace');
  });

  test('malformed values are refused', () => {
    const bad = [
      '',
      `00-${TRACE}-${SPAN}`, // no flags
      `00-${TRACE.toUpperCase()}-${SPAN}-01`, // upper-case hex
      `00-${'0'.repeat(32)}-${SPAN}-01`, // all-zero trace id
      `00-${TRACE}-${'0'.repeat(16)}-01`, // all-zero span id
      `ff-${TRACE}-${SPAN}-01`, // version ff is invalid
      `00-${TRACE}-${SPAN}-01-extra`, // version 00 has exactly four fields
      `0g-${TRACE}-${SPAN}-01`,
      `00-${TRACE.slice(1)}-${SPAN}-01`,
      `00_${TRACE}_${SPAN}_01`,
      `00-${TRACE}-${SPAN}-0x`,
    ];
    for (const value of bad) assert.equal(parseTraceparent(value), null, value);
  });

  test('a later version is read by its version-00 fields (the spec\'s forward compatibility)', () => {
    assert.equal(parseTraceparent(`01-${TRACE}-${SPAN}-01-future`)?.traceId, TRACE);
    assert.equal(parseTraceparent(`01-${TRACE}-${SPAN}-01`)?.spanId, SPAN);
    assert.equal(parseTraceparent(`01-${TRACE}-${SPAN}-01x`), null);
  });

  test('formatTraceparent writes version 00', () => {
    assert.equal(formatTraceparent(TRACE, SPAN, true), `00-${TRACE}-${SPAN}-01`);
    assert.equal(formatTraceparent(TRACE, SPAN, false), `00-${TRACE}-${SPAN}-00`);
  });
});

describe('tracestate', () => {
  test('valid lists are kept, with optional whitespace and empty members removed', () => {
    assert.equal(validTracestate('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE'), 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
    assert.equal(validTracestate(' a=1 ,, b=2 '), 'a=1,b=2');
    assert.equal(validTracestate('tenant@system=v'), 'tenant@system=v');
    assert.equal(validTracestate('a-b_c*d/e=x y'), 'a-b_c*d/e=x y', 'a value may hold spaces inside');
    assert.equal(validTracestate(''), '');
  });

  test('a list that breaks the grammar, repeats a key or has more than 32 members is dropped', () => {
    for (const bad of ['Upper=1', 'a', '=1', 'a=', 'a=1,a=2', 'a=b=c', 'a=1 ,b', '1abc=x', `a=${'v'.repeat(257)}`, 'a=\u00e9']) {
      assert.equal(validTracestate(bad), null, bad);
    }
    const many = Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',');
    assert.equal(validTracestate(many), null);
    assert.equal(validTracestate(many.split(',').slice(0, 32).join(',')), many.split(',').slice(0, 32).join(','));
  });

  test('remoteParent: the context of raw headers, case-insensitive; tracestate fields combine; a repeated traceparent is invalid', () => {
    const tp = `00-${TRACE}-${SPAN}-01`;
    assert.deepEqual(remoteParent(['Traceparent', tp, 'TraceState', 'a=1', 'tracestate', 'b=2']), { traceId: TRACE, spanId: SPAN, sampled: true, traceState: 'a=1,b=2' });
    assert.equal(remoteParent(['traceparent', tp, 'traceparent', tp]), null);
    assert.equal(remoteParent(['tracestate', 'a=1']), null, 'tracestate alone is not a context');
    assert.equal(remoteParent(['traceparent', tp, 'tracestate', 'BAD'])?.traceState, '', 'an invalid tracestate is dropped, the traceparent kept');
    assert.equal(remoteParent(['traceparent', 'garbage', 'tracestate', 'a=1']), null);
  });
});

describe('request ids', () => {
  const config = { header: 'X-Request-Id', generate: true, trustIncoming: true };

  test('well formed: 1 to 128 visible ASCII characters', () => {
    assert.equal(wellFormedId('a'), true);
    assert.equal(wellFormedId('x'.repeat(128)), true);
    assert.equal(wellFormedId('x'.repeat(129)), false);
    assert.equal(wellFormedId(''), false);
    assert.equal(wellFormedId('a b'), false);
    assert.equal(wellFormedId('a\tb'), false);
    assert.equal(wellFormedId('\u00e9'), false);
  });

  test('an incoming id is kept when trusted and alone; otherwise one is made, once per request', () => {
    const ids = new RequestIds(config);
    assert.equal(ids.of({ rawHeaders: ['x-request-id', ' abc '] }), 'abc');
    const twice = { rawHeaders: ['X-Request-Id', 'a', 'x-request-id', 'b'] };
    const made = ids.of(twice);
    assert.match(made, /^[0-9a-f]{16}-[0-9a-z]+$/, 'two ids: neither is trusted');
    assert.equal(ids.of(twice), made, 'the same request keeps its id');
    assert.notEqual(ids.of({ rawHeaders: [] }), ids.of({ rawHeaders: [] }));
    const untrusting = new RequestIds({ ...config, trustIncoming: false });
    assert.notEqual(untrusting.of({ rawHeaders: ['x-request-id', 'abc'] }), 'abc');
    const passive = new RequestIds({ ...config, generate: false });
    assert.equal(passive.of({ rawHeaders: [] }), '');
    assert.equal(passive.of({ rawHeaders: ['x-request-id', 'bad id'] }), '');
  });

  test('setField and dropField keep the fields before `from` and one field of the name', () => {
    const headers = ['host', 'h', 'X-Request-Id', 'old', 'accept', '*/*', 'x-request-id', 'old2'];
    const at = setField(headers, 'x-request-id', 'X-Request-Id', 'new', 2);
    assert.deepEqual(headers, ['host', 'h', 'accept', '*/*', 'X-Request-Id', 'new']);
    assert.equal(headers[at], 'new');
    dropField(headers, 'accept', 2);
    assert.deepEqual(headers, ['host', 'h', 'X-Request-Id', 'new']);
    const protectedHost = ['x-request-id', '', 'x-request-id', 'v'];
    dropField(protectedHost, 'x-request-id', 2);
    assert.deepEqual(protectedHost, ['x-request-id', ''], 'nothing before `from` is touched');
  });
});

describe('config: tracing and requestId', () => {
  const problems = (input: unknown): string[] => {
    try {
      validateConfig(input, 'inline');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.problems.map((p) => `${p.path}: ${p.message}`);
    }
    return [];
  };

  test('defaults: tracing off, ratio 1, the local collector; requestId absent', () => {
    const c = validateConfig({});
    assert.equal(c.tracing.enabled, false);
    assert.equal(c.tracing.sampleRatio, 1);
    assert.equal(c.tracing.otlp.endpoint, 'http://127.0.0.1:4318/v1/traces');
    assert.equal(c.tracing.otlp.timeout, 10_000);
    assert.equal(c.requestId, undefined);
    assert.deepEqual(validateConfig({ requestId: {} }).requestId, { header: 'X-Request-Id', generate: true, trustIncoming: true });
  });

  test('mistakes name their key path', () => {
    assert.deepEqual(problems({ tracing: { sampleRatio: 2 } }), ['tracing.sampleRatio: expected at most 1, got 2']);
    assert.match(problems({ tracing: { otlp: { endpoint: 'collector:4318' } } })[0]!, /^tracing\.otlp\.endpoint: expected an http:\/\/ or https:\/\/ URL/);
    assert.match(problems({ tracing: { resourceAttributes: { 'team': 7 } } })[0]!, /^tracing\.resourceAttributes\.team: expected a string value/);
    assert.match(problems({ tracing: { exporter: 'jaeger' } })[0]!, /^tracing: .*exporter/);
    assert.match(problems({ requestId: { header: 'X Request' } })[0]!, /^requestId\.header: expected a header name/);
    assert.match(problems({ requestId: { header: 'Traceparent' } })[0]!, /^requestId\.header: expected a header Fulcrum does not manage/);
  });
});

describe('start-up cost', () => {
  test('a Tracing that is off loads no OpenTelemetry package; the first traced request does', async () => {
    const { createRequire } = await import('node:module');
    const cache = createRequire(import.meta.url).cache;
    // The SDK, its resources and the exporter (prom-client loads @opentelemetry/api itself, for exemplars).
    const loaded = (): boolean => Object.keys(cache).some((path) => /@opentelemetry\/(sdk-trace|exporter-trace|resources)/.test(path));
    const { Tracing } = await import('../../src/trace/tracer.js');
    const config = validateConfig({}).tracing;
    const tracing = new Tracing(config, '0.0.0', () => undefined, { warn: () => undefined });
    assert.equal(tracing.active, false);
    assert.equal(loaded(), false, 'importing trace/ and building Tracing loads none of the SDK');
    const trace = tracing.start({ method: 'GET', target: '/', rawHeaders: [], scheme: 'http', protocol: '1.1', clientAddress: '127.0.0.1' });
    assert.equal(loaded(), true);
    assert.match(trace.traceId, /^[0-9a-f]{32}$/);
    await tracing.close();
  });
});

describe('ids of requests that are not sampled', () => {
  test('trace and span ids are lower-case hex of the W3C lengths, never all zeros, and do not repeat', () => {
    const traces = new Set<string>();
    const spans = new Set<string>();
    // More than one 4 KiB pool's worth, so that the refill is crossed too.
    for (let i = 0; i < 1000; i++) {
      const t = randomTraceId();
      const s = randomSpanId();
      assert.match(t, /^[0-9a-f]{32}$/);
      assert.match(s, /^[0-9a-f]{16}$/);
      assert.notEqual(t, '0'.repeat(32));
      assert.notEqual(s, '0'.repeat(16));
      traces.add(t);
      spans.add(s);
    }
    assert.equal(traces.size, 1000);
    assert.equal(spans.size, 1000);
  });
});
