/**
 * The Redis key layout in cluster mode: every Lua script and every round
 * of the sync loop touches keys of one hash slot (a cluster refuses a
 * script whose keys are in different slots), the rate-limit buckets spread
 * over the slots, and standalone keeps its key names. Slots are computed
 * here (CRC16 of the hash tag); redis-cluster-mode.test.ts checks them
 * against CLUSTER KEYSLOT of a real cluster.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rateLimitKey, stateKeys } from '../../src/state/redis-keys.js';
import { keySlot } from '../helpers/redis-topologies.js';

test('keySlot matches the Redis Cluster specification (CRC16-XMODEM, hash tags)', () => {
  assert.equal(keySlot('123456789'), 0x31c3 % 16384, 'the CRC16 check value');
  assert.equal(keySlot('{user1000}.following'), keySlot('{user1000}.followers'));
  assert.notEqual(keySlot('foo{}{bar}'), keySlot('bar'), 'an empty tag: the whole key is hashed');
  assert.equal(keySlot('foo{{bar}}zap'), keySlot('{bar'), 'the tag ends at the first "}"');
});

test('cluster mode: each script and each sync round touches one slot per key prefix', () => {
  for (const prefix of ['fulcrum:', 'prod-eu:', 'x']) {
    const a = stateKeys(prefix, 'web-1-42-abcdef', 'cluster');
    const b = stateKeys(prefix, 'web-2-77-012345', 'cluster');
    // Scripts: flush (counters + the instance's sequence number), heartbeat, acquire/release.
    const flush = [a.counters, a.flushed];
    assert.equal(new Set(flush.map(keySlot)).size, 1, `flush script keys ${flush.join(', ')}`);
    // Everything of the prefix, for every instance: one slot, so a round is one round trip to one node.
    const all = [a.counters, a.flushed, b.flushed, a.instances, a.lease('health'), a.lease('acme'), a.health, a.backends, a.events, a.value('acme:cert:a.com'), a.value('acme:challenge:t')];
    assert.equal(new Set(all.map(keySlot)).size, 1, all.join(', '));
    assert.equal(keySlot(a.counters), keySlot(prefix), 'the tag is the prefix');
  }
  assert.notEqual(keySlot(stateKeys('prod-eu:', 'i', 'cluster').counters), keySlot(stateKeys('prod-us:', 'i', 'cluster').counters), 'prefixes spread too');
});

test('cluster mode: rate-limit buckets spread over the slots, one key per script', () => {
  const slots = new Set<number>();
  for (let i = 0; i < 1000; i++) slots.add(keySlot(rateLimitKey('fulcrum:', 'cluster', '*:tb:10:1000:10:ip', `10.0.${i >> 8}.${i & 255}`)));
  // 1000 keys over 16384 slots: about 970 distinct slots expected; a shared tag would give 1.
  assert.ok(slots.size > 900, `${slots.size} slots for 1000 clients`);
  const thirds = [0, 0, 0];
  for (const s of slots) thirds[Math.floor((s * 3) / 16384)]!++;
  assert.ok(thirds.every((n) => n > 250), `over the three masters of a 3-node cluster: ${thirds.join(', ')}`);
});

test('standalone and Sentinel keep the plain key names', () => {
  for (const mode of ['standalone', 'sentinel'] as const) {
    const k = stateKeys('fulcrum:', 'id', mode);
    assert.deepEqual([k.counters, k.flushed, k.instances, k.lease('health'), k.health, k.backends, k.events, k.value('v')],
      ['fulcrum:counters', 'fulcrum:flushed:id', 'fulcrum:instances', 'fulcrum:lease:health', 'fulcrum:health', 'fulcrum:backends', 'fulcrum:events', 'fulcrum:value:v']);
    assert.equal(rateLimitKey('fulcrum:', mode, 's', '10.0.0.1'), 'fulcrum:ratelimit:s:10.0.0.1');
  }
  assert.equal(stateKeys('fulcrum:', 'id', 'cluster').counters, '{fulcrum:}counters');
  assert.equal(rateLimitKey('fulcrum:', 'cluster', 's', '10.0.0.1'), 'fulcrum:ratelimit:{s:10.0.0.1}');
});
