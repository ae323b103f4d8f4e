/** StaticSource names each backend as the balancer does (the DiscoverySource contract itself is in test/integration/discovery-contract.test.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createBalancer } from '../../src/index.js';
import { validateConfig } from '../../src/config/load.js';
import { StaticSource } from '../../src/discovery/static.js';
import type { BackendSpec } from '../../src/discovery/source.js';
import { silentLogger } from '../../src/observe/log.js';

test('StaticSource reports the configured backends with the ids, URLs and weights the balancer gives them', async () => {
  const config = validateConfig({
    backends: ['http://127.0.0.1:18001', { id: 'api', url: 'http://127.0.0.1:18002', weight: 3 }, { url: 'http://127.0.0.1:18003', weight: 0, healthy: false }, { id: 'b1', url: 'http://[::1]:18004' }],
    healthCheck: { enabled: false },
  });
  const balancer = createBalancer(config, { logger: silentLogger() });
  try {
    const source = new StaticSource(config.backends);
    assert.equal(source.name, 'static');
    assert.equal(source.target, '4 backends');
    let reported: readonly BackendSpec[] = [];
    const controller = new AbortController();
    const done = source.start((specs) => { reported = specs; }, controller.signal);
    controller.abort();
    await done;
    assert.deepEqual(
      reported.map((s) => [s.id, new URL(s.url).href, s.weight, s.state]),
      balancer.pool.snapshot.map((b) => [b.id, b.url.href, b.weight, 'ready']),
    );
    assert.equal(new StaticSource([]).target, '0 backends');
  } finally {
    await balancer.close();
  }
});
