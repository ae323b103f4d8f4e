import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Backend } from '../../src/backends/backend.js';
import { Reason } from '../../src/backends/reasons.js';
import type { PickContext } from '../../src/balancer/picker.js';
import { RoundRobinPicker } from '../../src/balancer/round-robin.js';
import { StickySessions } from '../../src/balancer/sticky.js';
import type { ResponseHeadContext } from '../../src/balancer/sticky.js';

function makeBackends(n: number): Backend[] {
  return Array.from({ length: n }, (_, i) => new Backend({ id: `b${i}`, config: { url: `http://10.1.2.${i + 1}:9000`, weight: 1, healthy: true } }));
}
const ctx = (cookie: string | undefined, tried?: Set<Backend>): PickContext => ({ clientAddress: '192.0.2.1', hashKey: undefined, tried, cookie });
const head = (backend: Backend | null, cookie: string | undefined): ResponseHeadContext => ({ backend, cookie });

describe('sticky sessions', () => {
  const config = { cookie: 'lb', ttl: 0, secret: 'a shared secret of the fleet' };

  test('the cookie value is an opaque token: no address, stable per secret, different across secrets', () => {
    const backends = makeBackends(3);
    const sticky = new StickySessions(config, config.secret);
    const tokens = backends.map((b) => sticky.tokenOf(b));
    assert.equal(new Set(tokens).size, 3);
    for (const t of tokens) {
      assert.match(t, /^[A-Za-z0-9_-]{22}$/);
      assert.ok(!t.includes('10.1.2') && !t.includes('9000'));
    }
    // Another instance with the same secret agrees (same URL, another Backend object)...
    assert.deepEqual(makeBackends(3).map((b) => new StickySessions(config, config.secret).tokenOf(b)), tokens);
    // ...one with another secret does not.
    assert.notEqual(new StickySessions(config, 'another secret').tokenOf(backends[0]!), tokens[0]);
  });

  test('a client with a valid cookie stays on its backend; without one the policy decides', () => {
    const backends = makeBackends(3);
    const sticky = new StickySessions(config, config.secret);
    const picker = sticky.wrap(new RoundRobinPicker(backends), backends);
    const pinned = `other=1; lb=${sticky.tokenOf(backends[2]!)}`;
    for (let i = 0; i < 6; i++) assert.equal(picker.pick(ctx(pinned)), backends[2]);
    assert.deepEqual([1, 2, 3].map(() => picker.pick(ctx(undefined))?.id), ['b0', 'b1', 'b2']);
  });

  test('a forged or foreign cookie is ignored', () => {
    const backends = makeBackends(2);
    const sticky = new StickySessions(config, config.secret);
    const picker = sticky.wrap(new RoundRobinPicker(backends), backends);
    const foreign = new StickySessions(config, 'attacker guess').tokenOf(backends[1]!);
    assert.deepEqual([1, 2, 3, 4].map(() => picker.pick(ctx(`lb=${foreign}`))?.id), ['b0', 'b1', 'b0', 'b1']);
    assert.deepEqual([1, 2].map(() => picker.pick(ctx('lb=10.1.2.2:9000'))?.id), ['b0', 'b1']);
  });

  test('when the pinned backend is unavailable or tried, the policy chooses another', () => {
    const backends = makeBackends(2);
    const sticky = new StickySessions(config, config.secret);
    const picker = sticky.wrap(new RoundRobinPicker(backends), backends);
    const pinned = `lb=${sticky.tokenOf(backends[0]!)}`;
    backends[0]!.setReason(Reason.ACTIVE_CHECK_FAILED, true);
    for (let i = 0; i < 3; i++) assert.equal(picker.pick(ctx(pinned)), backends[1]);
    backends[0]!.setReason(Reason.ACTIVE_CHECK_FAILED, false);
    assert.equal(picker.pick(ctx(pinned, new Set([backends[0]!]))), backends[1]);
    assert.equal(picker.pick(ctx(pinned)), backends[0]);
  });

  test('the response pins (or re-pins) the client only when its cookie does not name the backend that answered', () => {
    const backends = makeBackends(2);
    const sticky = new StickySessions(config, config.secret);
    const token0 = sticky.tokenOf(backends[0]!);

    const fresh: string[] = ['content-type', 'text/plain'];
    sticky.onResponseHead(head(backends[0]!, undefined), fresh);
    assert.deepEqual(fresh.slice(2), ['set-cookie', `lb=${token0}; Path=/; HttpOnly; SameSite=Lax`]);

    const same: string[] = [];
    sticky.onResponseHead(head(backends[0]!, `lb=${token0}`), same);
    assert.deepEqual(same, []);

    const moved: string[] = [];
    sticky.onResponseHead(head(backends[1]!, `lb=${token0}`), moved);
    assert.deepEqual(moved, ['set-cookie', `lb=${sticky.tokenOf(backends[1]!)}; Path=/; HttpOnly; SameSite=Lax`]);

    const none: string[] = [];
    sticky.onResponseHead(head(null, undefined), none);
    assert.deepEqual(none, []);
  });

  test('ttl sets Max-Age in seconds; ttl 0 is a session cookie', () => {
    const [b] = makeBackends(1);
    const out: string[] = [];
    new StickySessions({ cookie: 'srv', ttl: 3_600_000, secret: undefined }, 'x').onResponseHead(head(b!, undefined), out);
    assert.match(out[1]!, /^srv=[A-Za-z0-9_-]{22}; Path=\/; Max-Age=3600; HttpOnly; SameSite=Lax$/);
  });
});
