/**
 * Metrics reads the backends through a narrow source (observe/metrics.ts
 * BackendSource), at each read: no BackendPool is needed, and a backend
 * that joins or leaves shows at the next scrape.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics, type MeteredBackend } from '../../src/observe/metrics.js';

function backend(id: string, state: MeteredBackend['state']): MeteredBackend {
  return { id, url: new URL(`http://${id}.test:80/`), state };
}

test('Metrics reads the backends from its source at each scrape', async () => {
  let backends: MeteredBackend[] = [backend('a', { reasons: 0, inflight: 2, failures: 1 })];
  const metrics = new Metrics(() => backends, { processMetrics: false });
  metrics.record('a', 200, 0.004);

  const json = metrics.json() as { total_requests: number; backends: Record<string, unknown>[] };
  assert.equal(json.total_requests, 1);
  assert.deepEqual(json.backends.map((b) => [b.id, b.url, b.requests, b.failures, b.activeConnections, b.healthy]), [['a', 'http://a.test/', 1, 1, 2, true]]);

  backends = [...backends, backend('b', { reasons: 1, inflight: 0, failures: 3 })];
  const { body } = await metrics.prometheus();
  assert.match(body, /^fulcrum_backend_up\{backend="a"\} 1$/m);
  assert.match(body, /^fulcrum_backend_up\{backend="b"\} 0$/m);
  assert.match(body, /^fulcrum_backend_active_connections\{backend="a"\} 2$/m);
  assert.match(body, /^fulcrum_backend_failures_total\{backend="b"\} 3$/m);
});
