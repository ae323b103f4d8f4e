/**
 * Features take part in the balancer's life as components. A reload
 * prepares every component before committing anything: one that fails to
 * prepare rejects the reload whole (the others are aborted, nothing
 * changes); reloads run one at a time; filters, upgrades and status come
 * from the components in force.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startBalancer, get, type TestBalancer } from '../helpers/balancer.js';
import { startBackends, urlOf, type DemoBackend } from '../helpers/backends.js';
import type { FulcrumConfig } from '../../src/config/schema.js';
import { FulcrumError } from '../../src/core/errors.js';

describe('components', () => {
  let backends: DemoBackend[];
  let tb: TestBalancer;
  const base = () => ({ listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' as const, accessLog: false, healthCheck: { enabled: false } });

  before(async () => {
    backends = await startBackends(2, 'C');
    tb = await startBalancer({ ...base(), backends: [urlOf(backends[0]!)] });
  });
  after(async () => {
    await tb.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  test('a component that fails to prepare rejects the reload whole: the others are aborted, nothing is committed, the old config stays', async () => {
    const log: string[] = [];
    const removeA = tb.balancer.addComponent({
      name: 'a',
      prepare: () => ({ commit: () => { log.push('a commit'); }, abort: () => { log.push('a abort'); } }),
    });
    const removeB = tb.balancer.addComponent({
      name: 'b',
      prepare: (next: FulcrumConfig) => {
        if (next.algorithm === 'random') throw new Error('b cannot serve random today');
        return { commit: () => { log.push('b commit'); } };
      },
    });
    try {
      const rejected = await tb.balancer.reload({ ...base(), algorithm: 'random', backends: [urlOf(backends[0]!), urlOf(backends[1]!)] });
      assert.equal(rejected.ok, false);
      assert.deepEqual(rejected.problems, ['b cannot serve random today']);
      assert.deepEqual(log, ['a abort']);
      assert.equal(tb.balancer.config.algorithm, 'round-robin');
      assert.equal(tb.balancer.pool.snapshot.length, 1, 'the backends did not change');

      const applied = await tb.balancer.reload({ ...base(), backends: [urlOf(backends[0]!), urlOf(backends[1]!)] });
      assert.equal(applied.ok, true);
      assert.deepEqual(log, ['a abort', 'a commit', 'b commit']);
      assert.equal(tb.balancer.pool.snapshot.length, 2);
    } finally {
      removeA();
      removeB();
    }
  });

  test('reloads run one at a time: the second prepares against what the first committed', async () => {
    const seen: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const remove = tb.balancer.addComponent({
      name: 'slow',
      prepare: async (next: FulcrumConfig, previous: FulcrumConfig) => {
        seen.push(`prepare ${previous.algorithm}->${next.algorithm}`);
        if (next.algorithm === 'random') await gate;
        return { commit: () => { seen.push(`commit ${next.algorithm}`); } };
      },
    });
    try {
      const first = tb.balancer.reload({ ...base(), algorithm: 'random', backends: [urlOf(backends[0]!)] });
      const second = tb.balancer.reload({ ...base(), algorithm: 'least-connections', backends: [urlOf(backends[0]!)] });
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(seen, ['prepare round-robin->random'], 'the second waits for the first');
      release();
      assert.equal((await first).ok, true);
      assert.equal((await second).ok, true);
      assert.deepEqual(seen, ['prepare round-robin->random', 'commit random', 'prepare random->least-connections', 'commit least-connections']);
      assert.equal(tb.balancer.config.algorithm, 'least-connections');
    } finally {
      remove();
    }
  });

  test('a component’s filter and status are read while it is in force, and leave with it', async () => {
    const remove = tb.balancer.addComponent({
      name: 'closed-for-lunch',
      filter: () => ({ filter: (_req, _res, _client, _next, reject) => reject(new FulcrumError('FULCRUM_ERR_FORBIDDEN', 'closed for lunch')) }),
      status: (doc) => { doc.lunch = true; },
    });
    const refused = await get(`${tb.url}/`);
    assert.equal(refused.status, 403);
    assert.equal(JSON.parse((await get(`${tb.url}/status`)).body).lunch, true);
    remove();
    assert.equal((await get(`${tb.url}/`)).status, 200);
    assert.equal(JSON.parse((await get(`${tb.url}/status`)).body).lunch, undefined);
  });
});
