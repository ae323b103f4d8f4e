import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Backend } from '../../src/backends/backend.js';
import { Reason } from '../../src/backends/reasons.js';
import { ConsistentHashPicker } from '../../src/balancer/consistent-hash.js';
import { cookieValue } from '../../src/balancer/cookie.js';
import { hashKeyFunction } from '../../src/balancer/hash-key.js';
import { IpHashPicker } from '../../src/balancer/ip-hash.js';
import type { PickContext, Picker } from '../../src/balancer/picker.js';
import type { RequestView } from '../../src/core/request-view.js';

const KEYS = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);
/** TOLERANCE: a backend's share of the ring deviates by a few % of the keys; the bounds below allow 3 points. */
const TOLERANCE = 0.03;

function backend(i: number, weight = 1): Backend {
  return new Backend({ id: `b${i}`, config: { url: `http://10.0.${Math.floor(i / 250)}.${(i % 250) + 1}:8080`, weight, healthy: true } });
}
const range = (n: number, from = 0): Backend[] => Array.from({ length: n }, (_, i) => backend(from + i));
const keyCtx = (hashKey: string, tried?: Set<Backend>): PickContext => ({ clientAddress: '192.0.2.1', hashKey, tried });

function assignment(picker: Picker, keys = KEYS): string[] {
  return keys.map((k) => picker.pick(keyCtx(k))?.url.href ?? '-');
}
function moved(before: readonly string[], after: readonly string[]): number[] {
  const out: number[] = [];
  before.forEach((b, i) => { if (after[i] !== b) out.push(i); });
  return out;
}

describe('consistent-hash', () => {
  test('a key maps to the same backend on every call and in every instance', () => {
    const a = new ConsistentHashPicker(range(10));
    const b = new ConsistentHashPicker(range(10).reverse()); // another instance, other order and ids
    assert.deepEqual(assignment(a), assignment(a));
    assert.deepEqual(assignment(a), assignment(b));
  });

  test('keys spread evenly: every backend gets 1/N of 10,000 keys within 30%', () => {
    const map = assignment(new ConsistentHashPicker(range(10)));
    const perBackend = new Map<string, number>();
    for (const url of map) perBackend.set(url, (perBackend.get(url) ?? 0) + 1);
    assert.equal(perBackend.size, 10);
    for (const [url, n] of perBackend) assert.ok(n > 700 && n < 1300, `${url}: ${n}`);
  });

  test('adding one backend to 10 moves about 1/11 of the keys, all of them to the new backend', () => {
    const before = assignment(new ConsistentHashPicker(range(10)));
    const after = assignment(new ConsistentHashPicker([...range(10), backend(10)]));
    const changed = moved(before, after);
    const newcomer = backend(10).url.href;
    assert.ok(changed.length <= KEYS.length * (1 / 11 + TOLERANCE), `${changed.length} keys moved`);
    assert.ok(changed.length >= KEYS.length * (1 / 11 - TOLERANCE), `${changed.length} keys moved`);
    for (const i of changed) assert.equal(after[i], newcomer);
  });

  test('removing one of 10 backends moves its keys only, about 1/10', () => {
    const all = range(10);
    const before = assignment(new ConsistentHashPicker(all));
    const gone = all[4]!.url.href;
    const after = assignment(new ConsistentHashPicker(all.filter((_, i) => i !== 4)));
    const changed = moved(before, after);
    assert.deepEqual(changed, before.flatMap((url, i) => (url === gone ? [i] : [])));
    assert.ok(changed.length <= KEYS.length * (1 / 10 + TOLERANCE), `${changed.length} keys moved`);
  });

  test("an unhealthy backend's keys go to other backends and come back on recovery", () => {
    const all = range(10);
    const picker = new ConsistentHashPicker(all);
    const before = assignment(picker);
    all[3]!.setReason(Reason.ACTIVE_CHECK_FAILED, true);
    const during = assignment(picker);
    const down = all[3]!.url.href;
    const changed = moved(before, during);
    assert.deepEqual(changed, before.flatMap((url, i) => (url === down ? [i] : [])));
    assert.ok(!during.includes(down));
    assert.ok(new Set(changed.map((i) => during[i])).size >= 3, 'the keys of the down backend spread over several others');
    all[3]!.setReason(Reason.ACTIVE_CHECK_FAILED, false);
    assert.deepEqual(assignment(picker), before);
  });

  test('a retry skips the tried backend; nothing available means undefined', () => {
    const all = range(3);
    const picker = new ConsistentHashPicker(all);
    const first = picker.pick(keyCtx('k'))!;
    const second = picker.pick(keyCtx('k', new Set([first])))!;
    assert.notEqual(second, first);
    for (const b of all) b.setReason(Reason.DISABLED, true);
    assert.equal(picker.pick(keyCtx('k')), undefined);
    assert.equal(new ConsistentHashPicker([]).pick(keyCtx('k')), undefined);
  });

  test('weights set the share of keys; weight 0 gets none', () => {
    const backends = [backend(0, 2), backend(1, 1), backend(2, 1), backend(3, 0)];
    const map = assignment(new ConsistentHashPicker(backends));
    const share = (b: Backend): number => map.filter((u) => u === b.url.href).length / KEYS.length;
    assert.equal(share(backends[3]!), 0);
    assert.ok(Math.abs(share(backends[0]!) - 0.5) < 0.06, `weight 2 share ${share(backends[0]!)}`);
  });

  test('without a key, the client address is hashed', () => {
    const picker = new ConsistentHashPicker(range(10));
    const byAddress = picker.pick({ clientAddress: '198.51.100.7', hashKey: undefined, tried: undefined });
    assert.equal(byAddress, picker.pick(keyCtx('198.51.100.7')));
  });
});

describe('ip-hash', () => {
  const addresses = Array.from({ length: 10_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  const byClient = (picker: Picker): string[] => addresses.map((a) => picker.pick({ clientAddress: a, hashKey: 'ignored', tried: undefined })?.url.href ?? '-');

  test('a client address always maps to the same backend, whatever the hash key', () => {
    const picker = new IpHashPicker(range(5));
    const first = byClient(picker);
    assert.deepEqual(byClient(picker), first);
    assert.equal(picker.pick({ clientAddress: '10.0.0.9', hashKey: 'x', tried: undefined }), picker.pick({ clientAddress: '10.0.0.9', hashKey: 'y', tried: undefined }));
    assert.equal(new Set(first).size, 5);
  });

  test('adding a sixth backend moves about 1/6 of the clients, all to it', () => {
    const before = byClient(new IpHashPicker(range(5)));
    const after = byClient(new IpHashPicker(range(6)));
    const changed = moved(before, after);
    assert.ok(changed.length <= addresses.length * (1 / 6 + TOLERANCE), `${changed.length} clients moved`);
    for (const i of changed) assert.equal(after[i], backend(5).url.href);
  });

  test('an unhealthy backend is never picked', () => {
    const all = range(4);
    all[0]!.setReason(Reason.EJECTED, true);
    assert.ok(!byClient(new IpHashPicker(all)).includes(all[0]!.url.href));
  });
});

describe('hash keys', () => {
  /** view builds the RequestView a hash key reads: a plain object, no server needed. */
  const view = (url: string, options: { headers?: Record<string, string>; cookie?: string; client?: string } = {}): RequestView => ({
    method: 'GET',
    url,
    rawHeaders: Object.entries(options.headers ?? {}).flat(),
    clientAddress: options.client ?? '',
    cookie: options.cookie,
  });

  test('ip, path, header, cookie and query keys', () => {
    assert.equal(hashKeyFunction('ip')(view('/a', { client: '203.0.113.5' })), '203.0.113.5');
    assert.equal(hashKeyFunction('path')(view('/a/b?x=1')), '/a/b');
    assert.equal(hashKeyFunction('path')(view('/a/b')), '/a/b');
    assert.equal(hashKeyFunction('header:X-User')(view('/', { headers: { 'X-User': 'alice' } })), 'alice');
    assert.equal(hashKeyFunction('header:X-User')(view('/')), undefined);
    assert.equal(hashKeyFunction('cookie:sid')(view('/', { cookie: 'a=1; sid=s3cr3t; b=2' })), 's3cr3t');
    assert.equal(hashKeyFunction('cookie:sid')(view('/', { cookie: 'xsid=1' })), undefined);
    assert.equal(hashKeyFunction('query:tenant')(view('/p?a=1&tenant=acme%20co')), 'acme co');
    assert.equal(hashKeyFunction('query:tenant')(view('/p?a=1')), undefined);
    assert.equal(hashKeyFunction('query:tenant')(view('/p')), undefined);
  });

  test('cookieValue finds one cookie by exact name', () => {
    assert.equal(cookieValue('a=1;b=2', 'b'), '2');
    assert.equal(cookieValue('a=1; ab=3; b="q"', 'b'), 'q');
    assert.equal(cookieValue('a=1', 'b'), undefined);
    assert.equal(cookieValue(undefined, 'b'), undefined);
    assert.equal(cookieValue('b=', 'b'), '');
    assert.equal(cookieValue('b', 'b'), undefined);
  });
});
