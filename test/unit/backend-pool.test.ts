/** BackendPool ids: an automatic id (b1, b2, ...) never repeats an id the config names. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackendPool } from '../../src/backends/pool.js';
import { validateConfig } from '../../src/config/load.js';
import type { BackendConfig } from '../../src/config/schema.js';

const backends = (list: unknown[]): BackendConfig[] => validateConfig({ backends: list }).backends;
const ids = (pool: BackendPool): string[] => pool.snapshot.map((b) => b.id);

test('an automatic id skips the ids named further down the list', () => {
  const pool = new BackendPool();
  pool.replaceAll(backends(['http://127.0.0.1:1', 'http://127.0.0.1:2', { id: 'b2', url: 'http://127.0.0.1:3' }, { id: 'b1', url: 'http://127.0.0.1:4' }]));
  assert.deepEqual(ids(pool), ['b3', 'b4', 'b2', 'b1']);
  assert.equal(pool.get('b1')!.url.href, 'http://127.0.0.1:4/');
  assert.equal(pool.get('b3')!.url.href, 'http://127.0.0.1:1/');
});

test('on reload, an unnamed backend whose automatic id the list now names gets a new id; the others keep theirs', () => {
  const pool = new BackendPool();
  pool.replaceAll(backends(['http://127.0.0.1:1', 'http://127.0.0.1:2']));
  const second = pool.get('b2')!;
  pool.replaceAll(backends(['http://127.0.0.1:1', 'http://127.0.0.1:2', { id: 'b1', url: 'http://127.0.0.1:3' }]));
  const list = ids(pool);
  assert.equal(new Set(list).size, list.length, `ids repeat: ${list.join(', ')}`);
  assert.equal(pool.get('b1')!.url.href, 'http://127.0.0.1:3/');
  assert.equal(pool.get('b2'), second, 'an unnamed backend whose id nobody claims keeps it, state and all');
  assert.equal(pool.findByUrl('http://127.0.0.1:1')!.id, 'b3');
});
