/** TrafficSplit as a unit: exact shares, health, weight 0 and sticky tokens; and failoverCycle's answers. */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../src/config/load.js';
import { failoverCycle } from '../../src/config/services.js';
import { Reason } from '../../src/backends/reasons.js';
import { silentLogger } from '../../src/observe/log.js';
import { Metrics } from '../../src/observe/metrics.js';
import { Service } from '../../src/service/service.js';
import { TrafficSplit } from '../../src/service/split.js';

const made: Service[] = [];
after(async () => { await Promise.all(made.map((s) => s.close(false))); });

function service(name: string, port: number): Service {
  const config = validateConfig({ backends: [`http://127.0.0.1:${port}`], healthCheck: { enabled: false } }).services.default!;
  const s = new Service({ name, config, log: silentLogger(), metrics: new Metrics(() => [], { processMetrics: false }), stickySecret: Buffer.alloc(32, 1), onFlip: () => undefined });
  made.push(s);
  return s;
}

const counts = (split: TrafficSplit, n: number, cookie?: string): Record<string, number> => {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const name = split.choose(cookie).service.name;
    out[name] = (out[name] ?? 0) + 1;
  }
  return out;
};

describe('TrafficSplit', () => {
  const a = service('a', 9301);
  const b = service('b', 9302);
  const c = service('c', 9303);

  test('every run of sum-of-weights requests gives each side exactly its share', () => {
    const split = new TrafficSplit('r', [{ service: a, weight: 99 }, { service: b, weight: 1 }], null);
    assert.deepEqual(counts(split, 100), { a: 99, b: 1 });
    const three = new TrafficSplit('r', [{ service: a, weight: 5 }, { service: b, weight: 3 }, { service: c, weight: 2 }], null);
    assert.deepEqual(counts(three, 1000), { a: 500, b: 300, c: 200 });
  });

  test('a side without a healthy backend gets nothing; with none healthy the weights decide', () => {
    const split = new TrafficSplit('r', [{ service: a, weight: 50 }, { service: b, weight: 50 }], null);
    b.pool.snapshot[0]!.state.reasons |= Reason.DISABLED;
    try {
      assert.deepEqual(counts(split, 100), { a: 100 });
      a.pool.snapshot[0]!.state.reasons |= Reason.DISABLED;
      assert.deepEqual(counts(split, 100), { a: 50, b: 50 });
    } finally {
      a.pool.snapshot[0]!.state.reasons &= ~Reason.DISABLED;
      b.pool.snapshot[0]!.state.reasons &= ~Reason.DISABLED;
    }
  });

  test('a sticky client keeps its side until the side has weight 0; tokens differ by route and name no service', () => {
    const split = new TrafficSplit('shop', [{ service: a, weight: 1 }, { service: b, weight: 1 }], { name: 'fs', ttl: 0, secret: 'k' });
    const side = split.choose(undefined);
    const set = split.setCookie(side.service, undefined)!;
    assert.match(set, /^fs=[A-Za-z0-9_-]{22}; Path=\/; HttpOnly; SameSite=Lax$/);
    assert.ok(!set.includes(side.service.name + ';'));
    const cookie = set.split(';')[0]!;
    assert.deepEqual(counts(split, 20, cookie), { [side.service.name]: 20 });
    assert.equal(split.setCookie(side.service, cookie), null);
    const other = side.service === a ? b : a;
    split.setWeights([{ service: side.service, weight: 0 }, { service: other, weight: 1 }]);
    assert.deepEqual(counts(split, 5, cookie), { [other.name]: 5 });
    const elsewhere = new TrafficSplit('cart', [{ service: a, weight: 1 }], { name: 'fs', ttl: 0, secret: 'k' });
    assert.notEqual(elsewhere.setCookie(a, undefined), split.setCookie(a, undefined));
  });

  test('setWeights keeps the served counts of the services that stay', () => {
    const split = new TrafficSplit('r', [{ service: a, weight: 1 }, { service: b, weight: 1 }], null);
    counts(split, 10);
    split.setWeights([{ service: b, weight: 1 }, { service: c, weight: 1 }]);
    assert.deepEqual(split.sides.map((s) => [s.service.name, s.served]), [['b', 5], ['c', 0]]);
  });
});

describe('failoverCycle', () => {
  // failoverCycle reads only each service's failover.service.
  const cfg = (links: Record<string, string | undefined>): Parameters<typeof failoverCycle>[0] =>
    Object.fromEntries(Object.entries(links).map(([name, to]) => [name, to === undefined ? {} : { failover: { service: to, on: ['no-healthy-backend'] } }])) as unknown as Parameters<typeof failoverCycle>[0];

  test('names the services of a cycle from where it starts', () => {
    assert.deepEqual(failoverCycle(cfg({ a: 'b', b: 'c', c: 'a' }), 'b', ['a']), ['a', 'b', 'c', 'a']);
    assert.deepEqual(failoverCycle(cfg({ a: 'a' }), 'a', ['a']), ['a', 'a']);
  });

  test('a chain that ends, or a cycle further down that does not come back, is not this origin\'s cycle', () => {
    assert.equal(failoverCycle(cfg({ a: 'b', b: 'c', c: undefined }), 'b', ['a']), null);
    assert.equal(failoverCycle(cfg({ a: 'b', b: 'c', c: 'b' }), 'b', ['a']), null);
  });
});

test('examples/canary.yaml loads: a sticky split, a mirror and a failover', async () => {
  const { loadConfig } = await import('../../src/config/load.js');
  const { config } = loadConfig({ file: 'examples/canary.yaml', env: {} });
  const shop = config.routes.find((r) => r.name === 'shop')!;
  assert.deepEqual(shop.split, [{ service: 'shop-v1', weight: 99 }, { service: 'shop-v2', weight: 1 }]);
  assert.equal(shop.sticky, true);
  assert.equal(config.routes.find((r) => r.name === 'api')!.mirror!.percent, 10);
  assert.deepEqual(config.services.api!.failover, { service: 'api-dr', on: ['no-healthy-backend', 'circuit-open', 503] });
});
