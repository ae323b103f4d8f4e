/**
 * Metrics reads the backends through a narrow source (observe/metrics.ts
 * BackendSource), at each read: no BackendPool is needed, and a backend
 * that joins or leaves shows at the next scrape. Series carry the route
 * and the service; backends of two services with the same id stay apart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics, type MeteredBackend } from '../../src/observe/metrics.js';

function backend(id: string, state: MeteredBackend['state']): MeteredBackend {
  return { id, url: new URL(`http://${id}.test:80/`), state };
}

test('Metrics reads the backends from its source at each scrape', async () => {
  let backends: MeteredBackend[] = [backend('a', { reasons: 0, inflight: 2, failures: 1, ejections: 0 })];
  const metrics = new Metrics(() => [{ service: 'default', backends }], { processMetrics: false });
  metrics.record('default', 'default', 'a', 200, 0.004);

  const json = metrics.json() as { total_requests: number; backends: Record<string, unknown>[] };
  assert.equal(json.total_requests, 1);
  assert.deepEqual(json.backends.map((b) => [b.id, b.service, b.url, b.requests, b.failures, b.activeConnections, b.healthy]), [['a', 'default', 'http://a.test/', 1, 1, 2, true]]);

  backends = [...backends, backend('b', { reasons: 1, inflight: 0, failures: 3, ejections: 2 })];
  const { body } = await metrics.prometheus();
  assert.match(body, /^fulcrum_backend_up\{service="default",backend="a"\} 1$/m);
  assert.match(body, /^fulcrum_backend_up\{service="default",backend="b"\} 0$/m);
  assert.match(body, /^fulcrum_backend_active_connections\{service="default",backend="a"\} 2$/m);
  assert.match(body, /^fulcrum_backend_failures_total\{service="default",backend="b"\} 3$/m);
  assert.match(body, /^fulcrum_backend_ejections_total\{service="default",backend="b"\} 2$/m);
  assert.match(body, /^fulcrum_requests_total\{route="default",service="default",backend="a",code="200"\} 1$/m);
});

test('series are kept per route and per service; the same backend id in two services is two series', async () => {
  const web = [backend('b0', { reasons: 0, inflight: 0, failures: 0, ejections: 0 })];
  const api = [backend('b0', { reasons: 1, inflight: 0, failures: 0, ejections: 0 })];
  const metrics = new Metrics(() => [{ service: 'web', backends: web }, { service: 'api', backends: api }], { processMetrics: false });
  metrics.defaultService = 'web';
  metrics.record('site', 'web', 'b0', 200, 0.002);
  metrics.record('site', 'web', 'b0', 200, 0.002);
  metrics.record('v1', 'api', 'b0', 502, 0.010);
  metrics.record('none', 'none', 'none', 404, 0.0001);

  const { body } = await metrics.prometheus();
  assert.match(body, /^fulcrum_requests_total\{route="site",service="web",backend="b0",code="200"\} 2$/m);
  assert.match(body, /^fulcrum_requests_total\{route="v1",service="api",backend="b0",code="502"\} 1$/m);
  assert.match(body, /^fulcrum_request_duration_seconds_count\{route="v1",service="api",backend="b0"\} 1$/m);
  assert.match(body, /^fulcrum_backend_up\{service="api",backend="b0"\} 0$/m);
  assert.match(body, /^fulcrum_backend_up\{service="web",backend="b0"\} 1$/m);
  assert.match(body, /^fulcrum_route_requests_total\{route="site"\} 2$/m);

  const json = metrics.json() as { services: Record<string, { requests: number }>; routes: Record<string, { requests: number; errors: number }>; unrouted_requests: number };
  assert.equal(json.services.web!.requests, 2);
  assert.equal(json.services.api!.requests, 1);
  assert.deepEqual([json.routes.site!.requests, json.routes.site!.errors, json.routes.v1!.errors], [2, 0, 1]);
  assert.equal(json.unrouted_requests, 1);
  assert.equal(metrics.byBackend.get('b0')!.requests, 2, 'byBackend is the default service');

  metrics.forget('api', 'b0');
  assert.equal(metrics.byService.get('api')!.has('b0'), false);
  assert.equal(metrics.byService.get('web')!.get('b0')!.requests, 2);
  metrics.forgetRoutes(new Set(['site']));
  assert.deepEqual([...metrics.byRoute.keys()].sort(), ['none', 'site']);
});
