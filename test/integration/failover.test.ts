/**
 * Failover through real listeners and backends: a service without a
 * healthy backend hands its requests to its fallback, a listed status is
 * answered by the fallback for retryable requests only, chains, a route's
 * failover overriding its service's, and cycles refused at load.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { startRecordingServer, type RecordingServer } from '../helpers/recording-server.js';
import { freePort } from '../helpers/backends.js';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/config-error.js';

// Only services whose backends are dead are checked (refused at once): a live one is never taken out by a slow check.
const fast = { healthCheck: { interval: '50ms', timeout: '1s', unhealthyThreshold: 1, healthyThreshold: 1 } };
const off = { healthCheck: { enabled: false } };

describe('failover', () => {
  let fallback: RecordingServer;
  let last: RecordingServer;
  let shedding: RecordingServer;
  let dead: string;
  let tb: TestBalancer;

  before(async () => {
    fallback = await startRecordingServer('fallback');
    last = await startRecordingServer('last');
    shedding = await startRecordingServer('shedding', { status: 503 });
    dead = `http://127.0.0.1:${await freePort()}`;
    tb = await startBalancer({
      services: {
        primary: { backends: [dead], ...fast, failover: { service: 'backup' } },
        backup: { backends: [fallback.url], ...off },
        shed: { backends: [shedding.url], ...off, failover: { service: 'backup', on: [503] } },
        first: { backends: [dead], ...fast, failover: { service: 'second' } },
        second: { backends: [`http://127.0.0.1:${await freePort()}`], ...fast, failover: { service: 'third' } },
        third: { backends: [last.url], ...off },
        strict: { backends: [shedding.url], ...off },
      },
      routes: [
        { name: 'primary', match: { path: { prefix: '/primary' } }, service: 'primary' },
        { name: 'shed', match: { path: { prefix: '/shed' } }, service: 'shed' },
        { name: 'chain', match: { path: { prefix: '/chain' } }, service: 'first' },
        // The route's own failover wins over the service's (which it has none of here) and over none at all.
        { name: 'override', match: { path: { prefix: '/override' } }, service: 'strict', failover: { service: 'third', on: [503] } },
        { name: 'strict', service: 'strict' },
      ],
    });
    await waitFor(() => ['primary', 'first', 'second'].every((s) => tb.balancer.services.get(s)!.canServe() === 'no-healthy-backend'), 3000);
  });

  after(async () => {
    await tb.close();
    await fallback.close();
    await last.close();
    await shedding.close();
  });

  test('a service without a healthy backend hands its requests to its fallback', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await request(`${tb.url}/primary/${i}`);
      assert.equal(res.status, 200);
      assert.equal(res.body, 'fallback');
    }
    assert.ok(fallback.received.some((r) => r.url === '/primary/4'));
  });

  test('a 503 listed in failover.on is answered by the fallback, for a retryable request only', async () => {
    const before503 = shedding.received.length;
    const res = await request(`${tb.url}/shed/get`);
    assert.equal(res.status, 200);
    assert.equal(res.body, 'fallback');
    assert.equal(shedding.received.length, before503 + 1, 'the primary was asked first');
    // POST is not in retries.methods: the 503 is the answer.
    const post = await request(`${tb.url}/shed/post`, { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } });
    assert.equal(post.status, 503);
    assert.equal(post.body, 'shedding');
  });

  test('chains follow the fallback service\'s own failover', async () => {
    const res = await request(`${tb.url}/chain/x`);
    assert.equal(res.status, 200);
    assert.equal(res.body, 'last');
  });

  test('a route\'s failover overrides the service\'s; without one a 503 is the answer', async () => {
    const overridden = await request(`${tb.url}/override/x`);
    assert.equal(overridden.body, 'last');
    const plain = await request(`${tb.url}/other`);
    assert.equal(plain.status, 503);
    assert.equal(plain.body, 'shedding');
  });

  test('a failed-over request counts under the service that answered', async () => {
    const metrics = JSON.parse((await request(`${tb.url}/metrics`)).body) as { backends: { service: string; requests: number }[] };
    assert.ok(metrics.backends.some((b) => b.service === 'backup' && b.requests > 0));
  });
});

describe('failover: validation', () => {
  const services = (extra: Record<string, unknown>): Record<string, unknown> => ({ a: { backends: ['http://127.0.0.1:9001'] }, b: {}, c: {}, ...extra });

  test('a cycle between services is a config error that names them', () => {
    assert.throws(() => validateConfig({
      services: services({ a: { failover: { service: 'b' } }, b: { failover: { service: 'c' } }, c: { failover: { service: 'a' } } }),
      routes: [{ service: 'a' }],
    }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /services\.a\.failover\.service: failover cycle: a -> b -> c -> a/);
      // Reported once, not once per service in it.
      assert.equal(err.problems.filter((p) => p.message.includes('cycle')).length, 1);
      return true;
    });
  });

  test('a route whose failover leads back to its own service is refused', () => {
    assert.throws(() => validateConfig({
      services: services({ b: { failover: { service: 'a' } } }),
      routes: [{ service: 'a', failover: { service: 'b' } }],
    }), /routes\[0\]\.failover\.service: failover cycle: a -> b -> a/);
  });

  test('an unknown fallback service is named', () => {
    assert.throws(() => validateConfig({ services: services({ a: { failover: { service: 'nope' } } }), routes: [{ service: 'a' }] }),
      /services\.a\.failover\.service: no service "nope" \(services: a, b, c\)/);
    assert.throws(() => validateConfig({ services: services({}), routes: [{ service: 'a', failover: { service: 'zz' } }] }),
      /routes\[0\]\.failover\.service: no service "zz"/);
  });

  test('a failover to itself is a cycle too', () => {
    assert.throws(() => validateConfig({ services: services({ a: { failover: { service: 'a' } } }), routes: [{ service: 'a' }] }), /failover cycle: a -> a/);
  });
});
