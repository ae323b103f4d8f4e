/**
 * Tracing end to end: a real OTLP/HTTP receiver (test/helpers/otlp.ts) gets
 * what the official exporter sends, and a real backend shows the
 * traceparent it was given. Batches are sent every 50 ms so the tests stay
 * short.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import { once } from 'node:events';
import diagnostics from 'node:diagnostics_channel';
import WebSocket from 'ws';
import { startBackends, urlOf, freePort } from '../helpers/backends.js';
import { startBalancer, get, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { captureLogger } from '../helpers/logs.js';
import { startHeaderBackend, startOtlpReceiver, type HeaderBackend, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp.js';
import type { FulcrumConfigInput } from '../../src/config/schema.js';
import type { SpanEvent } from '../../src/core/events.js';

const SERVER = 2;
const CLIENT = 3;
const PARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

function tracing(receiver: { url: string }, extra: Record<string, unknown> = {}): FulcrumConfigInput['tracing'] {
  return { enabled: true, serviceName: 'edge', resourceAttributes: { 'deployment.environment': 'test' }, otlp: { endpoint: receiver.url, timeout: '1s' }, batch: { delay: '50ms' }, ...extra };
}

/** parentOf reads the parent span id (and trace id, sampled flag) of a traceparent the backend got. */
function parsed(value: string | string[] | undefined): { traceId: string; parentId: string; flags: string } {
  assert.equal(typeof value, 'string', 'the backend gets one traceparent');
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(value as string);
  assert.ok(m, `a version-00 traceparent, got ${String(value)}`);
  return { traceId: m[1]!, parentId: m[2]!, flags: m[3]! };
}

const ofTrace = (spans: ReceivedSpan[], traceId: string): ReceivedSpan[] => spans.filter((s) => s.traceId === traceId);

describe('tracing over OTLP/HTTP', () => {
  let receiver: OtlpReceiver;
  let backend: HeaderBackend;
  let lb: TestBalancer;
  before(async () => {
    receiver = await startOtlpReceiver();
    backend = await startHeaderBackend();
    lb = await startBalancer({ backends: [backend.url], healthCheck: { enabled: false }, tracing: tracing(receiver) });
  });
  after(async () => {
    await lb.close();
    await backend.close();
    await receiver.close();
  });

  test('a server span and a client span, parented; the backend\'s traceparent names the client span; the trace id, tracestate and baggage go on', async () => {
    const res = await get(`${lb.url}/items?page=2`, { headers: { traceparent: PARENT, tracestate: 'vendor=abc, other=1', baggage: 'user=42', 'user-agent': 'probe/1' } });
    assert.equal(res.status, 200);
    const seen = backend.seen.at(-1)!;
    const tp = parsed(seen.traceparent);
    assert.equal(tp.traceId, '0af7651916cd43dd8448eb211c80319c', 'the client\'s trace id is kept');
    assert.equal(tp.flags, '01');
    assert.equal(seen.tracestate, 'vendor=abc,other=1');
    assert.equal(seen.baggage, 'user=42', 'baggage passes through untouched');
    await waitFor(() => ofTrace(receiver.spans, tp.traceId).length === 2);
    const spans = ofTrace(receiver.spans, tp.traceId);
    const server = spans.find((s) => s.kind === SERVER)!;
    const client = spans.find((s) => s.kind === CLIENT)!;
    assert.equal(server.parentSpanId, 'b7ad6b7169203331', 'the server span continues the client\'s span');
    assert.equal(client.parentSpanId, server.spanId);
    assert.equal(tp.parentId, client.spanId, 'the backend\'s parent is the attempt\'s client span');
    assert.equal(server.name, 'GET default');
    assert.equal(server.attributes['http.request.method'], 'GET');
    assert.equal(server.attributes['url.path'], '/items');
    assert.equal(server.attributes['url.query'], 'page=2');
    assert.equal(server.attributes['http.response.status_code'], 200);
    assert.equal(server.attributes['client.address'], '127.0.0.1');
    assert.equal(server.attributes['network.protocol.version'], '1.1');
    assert.equal(server.attributes['user_agent.original'], 'probe/1');
    assert.equal(server.attributes['fulcrum.route'], 'default');
    assert.equal(server.attributes['fulcrum.service'], 'default');
    assert.equal(server.attributes['fulcrum.backend.id'], 'b1');
    assert.equal(server.attributes['http.response.body.size'], 2);
    assert.equal(server.resource['service.name'], 'edge');
    assert.equal(server.resource['deployment.environment'], 'test');
    assert.equal(client.attributes['url.full'], `${backend.url}/items?page=2`);
    assert.equal(client.attributes['fulcrum.attempt'], 1);
    assert.equal(client.attributes['fulcrum.backend.id'], 'b1');
    assert.equal(client.attributes['http.response.status_code'], 200);
    assert.equal(typeof client.attributes['fulcrum.upstream.ttfb_ms'], 'number');
    assert.equal(typeof client.attributes['fulcrum.connection.reused'], 'boolean');
  });

  test('a second request on a warm pool says its connection was reused', async () => {
    await get(`${lb.url}/one`);
    await get(`${lb.url}/two`);
    const tp = parsed(backend.seen.at(-1)!.traceparent);
    await waitFor(() => ofTrace(receiver.spans, tp.traceId).length === 2);
    const client = ofTrace(receiver.spans, tp.traceId).find((s) => s.kind === CLIENT)!;
    assert.equal(client.attributes['fulcrum.connection.reused'], true);
  });

  test('an invalid traceparent is replaced, and its tracestate is not forwarded', async () => {
    const invalid = '00-00000000000000000000000000000000-b7ad6b7169203331-01';
    await get(`${lb.url}/`, { headers: { traceparent: invalid, tracestate: 'vendor=abc' } });
    const seen = backend.seen.at(-1)!;
    const tp = parsed(seen.traceparent);
    assert.notEqual(tp.traceId, '00000000000000000000000000000000');
    assert.equal(seen.tracestate, undefined);
    await waitFor(() => ofTrace(receiver.spans, tp.traceId).length === 2);
    const server = ofTrace(receiver.spans, tp.traceId).find((s) => s.kind === SERVER)!;
    assert.equal(server.parentSpanId, '', 'a new trace starts at Fulcrum');
  });

  test('the node:http path (a request with a body) is traced the same way', async () => {
    const res = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${lb.url}/upload`, { method: 'POST', agent: false, headers: { 'content-type': 'text/plain' } }, (r) => { r.resume(); r.on('end', () => resolve(r.statusCode!)); });
      req.on('error', reject);
      req.end('hello');
    });
    assert.equal(res, 200);
    const tp = parsed(backend.seen.at(-1)!.traceparent);
    await waitFor(() => ofTrace(receiver.spans, tp.traceId).length === 2);
    const server = ofTrace(receiver.spans, tp.traceId).find((s) => s.kind === SERVER)!;
    assert.equal(server.attributes['http.request.method'], 'POST');
    assert.equal(server.attributes['http.request.body.size'], 5);
  });
});

describe('tracing: retries, sampling, listeners', () => {
  let receiver: OtlpReceiver;
  before(async () => { receiver = await startOtlpReceiver(); });
  after(async () => { await receiver.close(); });

  test('a retried request has two client spans, the second with the retry reason, and a retry event', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const live = await startHeaderBackend();
    const lb = await startBalancer({ backends: [dead, live.url], algorithm: 'round-robin', healthCheck: { enabled: false }, tracing: tracing(receiver) });
    try {
      let traceId = '';
      for (let i = 0; i < 4 && traceId === ''; i++) {
        const before = live.seen.length;
        assert.equal((await get(`${lb.url}/r`)).status, 200);
        const tp = parsed(live.seen[before]!.traceparent);
        await waitFor(() => ofTrace(receiver.spans, tp.traceId).some((s) => s.kind === SERVER));
        const server = ofTrace(receiver.spans, tp.traceId).find((s) => s.kind === SERVER)!;
        if (server.attributes['fulcrum.attempts'] === 2) traceId = tp.traceId;
      }
      assert.notEqual(traceId, '', 'round-robin sent a request to the dead backend first');
      const spans = ofTrace(receiver.spans, traceId);
      const server = spans.find((s) => s.kind === SERVER)!;
      const clients = spans.filter((s) => s.kind === CLIENT).sort((a, b) => Number(a.attributes['fulcrum.attempt']) - Number(b.attributes['fulcrum.attempt']));
      assert.equal(clients.length, 2);
      assert.ok(clients.every((c) => c.parentSpanId === server.spanId));
      assert.equal(clients[0]!.attributes['fulcrum.backend.id'], 'b1');
      assert.equal(clients[0]!.status.code, 2, 'the failed attempt is an error');
      assert.match(String(clients[0]!.attributes['error.type']), /^FULCRUM_ERR_/);
      assert.equal(clients[1]!.attributes['fulcrum.backend.id'], 'b2');
      assert.equal(clients[1]!.attributes['fulcrum.retry.reason'], clients[0]!.attributes['error.type']);
      assert.equal(clients[1]!.attributes['http.request.resend_count'], 1);
      const retry = server.events.find((e) => e.name === 'fulcrum.retry');
      assert.ok(retry, 'the server span has a retry event');
      assert.equal(retry.attributes['fulcrum.backend.id'], 'b1');
      assert.equal(server.status.code, 0, 'a request that succeeded on retry is not an error');
      assert.equal(server.attributes['error.type'], undefined);
      // The backend that answered was told the second attempt's span is its parent.
      const seen = live.seen.find((h) => parsed(h.traceparent).traceId === traceId)!;
      assert.equal(parsed(seen.traceparent).parentId, clients[1]!.spanId);
    } finally {
      await lb.close();
      await live.close();
    }
  });

  test('a 502 is an error server span with its code and a refused event; the error answer names the trace', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const lb = await startBalancer({ backends: [dead], healthCheck: { enabled: false }, retries: { attempts: 0 }, tracing: tracing(receiver) });
    try {
      const res = await get(`${lb.url}/`);
      assert.equal(res.status, 502);
      const m = /trace-id=([0-9a-f]{32}) span-id=([0-9a-f]{16})/.exec(res.body);
      assert.ok(m, `the error answer names its trace: ${res.body}`);
      await waitFor(() => ofTrace(receiver.spans, m[1]!).length === 2);
      const server = ofTrace(receiver.spans, m[1]!).find((s) => s.kind === SERVER)!;
      assert.equal(server.spanId, m[2]);
      assert.equal(server.status.code, 2);
      assert.equal(server.attributes['http.response.status_code'], 502);
      assert.equal(server.attributes['error.type'], 'FULCRUM_ERR_CONNECT_REFUSED');
      assert.ok(server.events.some((e) => e.name === 'fulcrum.refused'));
    } finally {
      await lb.close();
    }
  });

  test('a rate-limit refusal shows as a refused event with its code', async () => {
    const live = await startHeaderBackend();
    const lb = await startBalancer({ backends: [live.url], healthCheck: { enabled: false }, rateLimit: { rate: 1, per: '1m' }, tracing: tracing(receiver) });
    try {
      await get(`${lb.url}/`);
      const res = await get(`${lb.url}/`);
      assert.equal(res.status, 429);
      const traceId = /trace-id=([0-9a-f]{32})/.exec(res.body)![1]!;
      await waitFor(() => ofTrace(receiver.spans, traceId).length === 1);
      const server = ofTrace(receiver.spans, traceId)[0]!;
      const refused = server.events.find((e) => e.name === 'fulcrum.refused')!;
      assert.equal(refused.attributes['fulcrum.error.code'], 'FULCRUM_ERR_RATE_LIMITED');
      assert.equal(server.attributes['error.type'], 'FULCRUM_ERR_RATE_LIMITED');
      assert.equal(server.status.code, 0, 'a 4xx is not a server error');
    } finally {
      await lb.close();
      await live.close();
    }
  });

  test('sampleRatio 0 exports nothing but still propagates; a sampled parent is followed', async () => {
    const live = await startHeaderBackend();
    const lb = await startBalancer({ backends: [live.url], healthCheck: { enabled: false }, tracing: tracing(receiver, { sampleRatio: 0 }) });
    try {
      const before = receiver.spans.length;
      for (let i = 0; i < 10; i++) await get(`${lb.url}/`);
      const ids = live.seen.slice(-10).map((h) => parsed(h.traceparent));
      assert.ok(ids.every((t) => t.flags === '00'), 'the backend is told the trace is not sampled');
      assert.equal(new Set(ids.map((t) => t.traceId)).size, 10, 'each request has a trace of its own');
      // A sampled parent is always followed (parent-based sampling).
      await get(`${lb.url}/`, { headers: { traceparent: PARENT.replace('0af7', '1af7') } });
      await waitFor(() => ofTrace(receiver.spans, '1af7651916cd43dd8448eb211c80319c').length === 2);
      await new Promise((r) => setTimeout(r, 150));
      const exported = receiver.spans.slice(before);
      assert.ok(exported.every((s) => s.traceId === '1af7651916cd43dd8448eb211c80319c'), 'only the sampled parent\'s trace is exported');
    } finally {
      await lb.close();
      await live.close();
    }
  });

  test('sampleRatio 0.5 exports about half of the traces', async () => {
    const live = await startHeaderBackend();
    const lb = await startBalancer({ backends: [live.url], healthCheck: { enabled: false }, tracing: tracing(receiver, { sampleRatio: 0.5 }) });
    try {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      await Promise.all(Array.from({ length: 200 }, () => get(`${lb.url}/`, { agent })));
      agent.destroy();
      const traces = live.seen.slice(-200).map((h) => parsed(h.traceparent));
      const sampled = traces.filter((t) => t.flags === '01');
      // Binomial(200, 0.5): 3.5 standard deviations either side.
      assert.ok(sampled.length >= 75 && sampled.length <= 125, `${sampled.length} of 200 sampled`);
      const ids = new Set(sampled.map((t) => t.traceId));
      await waitFor(() => receiver.spans.filter((s) => s.kind === SERVER && ids.has(s.traceId)).length === sampled.length);
      const unsampled = new Set(traces.filter((t) => t.flags === '00').map((t) => t.traceId));
      assert.equal(receiver.spans.filter((s) => unsampled.has(s.traceId)).length, 0, 'no span of an unsampled trace is exported');
    } finally {
      await lb.close();
      await live.close();
    }
  });

  test('node:http (fastPath: false), HTTP/2 (h2c) and WebSocket requests produce spans', async () => {
    const [ws] = await startBackends(1);
    const lb = await startBalancer({
      listen: [{ host: '127.0.0.1', port: 0, fastPath: false }, { host: '127.0.0.1', port: 0, http2: true }],
      backends: [urlOf(ws!)], healthCheck: { enabled: false }, tracing: tracing(receiver), requestId: {},
    });
    try {
      const [plain, h2c] = lb.balancer.listeners.map((l) => l.port);
      await get(`http://127.0.0.1:${plain}/node-http`, { headers: { traceparent: PARENT.replace('0af7', '2af7') } });
      let h2RequestId = '';
      const session = http2.connect(`http://127.0.0.1:${h2c}`);
      await new Promise<void>((resolve, reject) => {
        const stream = session.request({ ':path': '/over-h2', traceparent: PARENT.replace('0af7', '3af7') });
        stream.on('response', (headers) => {
          h2RequestId = String(headers['x-request-id']);
          stream.resume();
        });
        stream.on('end', resolve);
        stream.on('error', reject);
        stream.end();
      });
      session.close();
      const socket = new WebSocket(`ws://127.0.0.1:${plain}/ws`, { headers: { traceparent: PARENT.replace('0af7', '4af7') } });
      await once(socket, 'message');
      socket.send('ping');
      await once(socket, 'message');
      socket.close(1000);
      await once(socket, 'close');
      await waitFor(() => ['2af7', '3af7', '4af7'].every((p) => ofTrace(receiver.spans, `${p}651916cd43dd8448eb211c80319c`).length === 2));
      const server = (p: string): ReceivedSpan => ofTrace(receiver.spans, `${p}651916cd43dd8448eb211c80319c`).find((s) => s.kind === SERVER)!;
      assert.equal(server('2af7').attributes['url.path'], '/node-http');
      assert.equal(server('3af7').attributes['url.path'], '/over-h2');
      assert.equal(server('3af7').attributes['network.protocol.version'], '2');
      assert.match(h2RequestId, /^[0-9a-f]{16}-/, 'an HTTP/2 response carries the request id');
      const tunnel = server('4af7');
      assert.equal(tunnel.attributes['http.response.status_code'], 101);
      assert.ok(Number(tunnel.attributes['fulcrum.tunnel.bytes_in']) > 0, 'the tunnel span ends at close, with the bytes that went through');
      assert.ok(Number(tunnel.attributes['fulcrum.tunnel.bytes_out']) > 0);
      const client = ofTrace(receiver.spans, '4af7651916cd43dd8448eb211c80319c').find((s) => s.kind === CLIENT)!;
      assert.equal(client.attributes['fulcrum.connection.reused'], false, 'a tunnel has a connection of its own');
    } finally {
      await lb.close();
      await ws!.close();
    }
  });

  test('a reload turns tracing on, and another changes where spans go', async () => {
    const live = await startHeaderBackend();
    const other = await startOtlpReceiver();
    const config = { backends: [live.url], healthCheck: { enabled: false }, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' as const, accessLog: false };
    const lb = await startBalancer(config);
    try {
      await get(`${lb.url}/`, { headers: { traceparent: PARENT } });
      assert.equal(live.seen.at(-1)!.traceparent, PARENT, 'tracing off: the client\'s traceparent passes through unchanged');
      assert.equal((await lb.balancer.reload({ ...config, tracing: tracing(receiver) })).ok, true);
      await get(`${lb.url}/`, { headers: { traceparent: PARENT.replace('0af7', '5af7') } });
      await waitFor(() => ofTrace(receiver.spans, '5af7651916cd43dd8448eb211c80319c').length === 2);
      assert.equal((await lb.balancer.reload({ ...config, tracing: tracing(other) })).ok, true);
      await get(`${lb.url}/`, { headers: { traceparent: PARENT.replace('0af7', '6af7') } });
      await waitFor(() => ofTrace(other.spans, '6af7651916cd43dd8448eb211c80319c').length === 2);
      assert.equal(ofTrace(receiver.spans, '6af7651916cd43dd8448eb211c80319c').length, 0);
    } finally {
      await lb.close();
      await live.close();
      await other.close();
    }
  });
});

describe('tracing: an unreachable or hanging collector', () => {
  /** p99 of the latencies of n sequential requests on one keep-alive connection. */
  async function p99(url: string, n: number): Promise<number> {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const times: number[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        const res = await get(url, { agent });
        assert.equal(res.status, 200, 'no request fails because of the collector');
        times.push(performance.now() - t);
      }
    } finally {
      agent.destroy();
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(n * 0.99)]!;
  }

  for (const mode of ['down', 'hang'] as const) {
    test(`collector ${mode}: requests neither fail nor slow down; spans are dropped, counted and logged once`, async () => {
      const live = await startHeaderBackend();
      const receiver = await startOtlpReceiver();
      if (mode === 'hang') receiver.mode = 'hang';
      const endpoint = mode === 'down' ? `http://127.0.0.1:${await freePort()}/v1/traces` : receiver.url;
      const log = captureLogger('warn');
      const lb = await startBalancer({
        backends: [live.url], healthCheck: { enabled: false },
        tracing: { enabled: true, otlp: { endpoint, timeout: '200ms' }, batch: { delay: '20ms', maxQueueSize: 50, maxSize: 10 } },
      }, { logger: log.logger });
      const plain = await startBalancer({ backends: [live.url], healthCheck: { enabled: false } });
      try {
        const baseline = await p99(`${plain.url}/`, 150);
        const traced = await p99(`${lb.url}/`, 150);
        // Generous: the export must not put the request path behind the collector's timeout (200 ms).
        assert.ok(traced < Math.max(baseline * 5, baseline + 100), `p99 with a ${mode} collector ${traced.toFixed(1)} ms, without tracing ${baseline.toFixed(1)} ms`);
        const dropped = async (): Promise<number> => {
          const text = (await lb.balancer.metrics.prometheus()).body;
          return Number(/^fulcrum_tracing_dropped_spans_total (\d+)/m.exec(text)?.[1] ?? 0);
        };
        await waitFor(async () => (await dropped()) >= 100, 5000);
        const warnings = log.lines.filter((l) => String(l.msg).startsWith('tracing: spans dropped'));
        assert.equal(warnings.length, 1, 'the outage is logged once');
        if (mode === 'hang') assert.ok(receiver.requests > 0, 'the exporter did reach the hanging collector');
      } finally {
        await plain.close();
        await lb.close();
        await receiver.close();
        await live.close();
      }
    });
  }
});

describe('fulcrum:span (diagnostics_channel)', () => {
  test('a subscriber alone turns span data on (tracing.enabled false); without one, nothing is done', async () => {
    const live = await startHeaderBackend();
    const lb = await startBalancer({ backends: [live.url], healthCheck: { enabled: false } });
    const got: SpanEvent[] = [];
    const listener = (message: unknown): void => { got.push(message as SpanEvent); };
    try {
      await get(`${lb.url}/before`, { headers: { traceparent: PARENT } });
      assert.equal(live.seen.at(-1)!.traceparent, PARENT, 'no subscriber, tracing off: the traceparent is not touched');
      diagnostics.subscribe('fulcrum:span', listener);
      await get(`${lb.url}/during`, { headers: { traceparent: PARENT } });
      const tp = parsed(live.seen.at(-1)!.traceparent);
      assert.notEqual(tp.parentId, 'b7ad6b7169203331', 'the backend\'s parent is Fulcrum\'s client span');
      await waitFor(() => got.length === 2);
      const server = got.find((s) => s.kind === 'server')!;
      const client = got.find((s) => s.kind === 'client')!;
      assert.equal(server.traceId, '0af7651916cd43dd8448eb211c80319c');
      assert.equal(server.parentSpanId, 'b7ad6b7169203331');
      assert.equal(client.parentSpanId, server.spanId);
      assert.equal(client.spanId, tp.parentId);
      assert.equal(server.attributes['url.path'], '/during');
      assert.ok(server.endTime >= server.startTime);
      diagnostics.unsubscribe('fulcrum:span', listener);
      await get(`${lb.url}/after`, { headers: { traceparent: PARENT } });
      assert.equal(live.seen.at(-1)!.traceparent, PARENT);
      assert.equal(got.length, 2);
    } finally {
      diagnostics.unsubscribe('fulcrum:span', listener);
      await lb.close();
      await live.close();
    }
  });
});
