import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/config-error.js';
import { compileRules } from '../../src/ratelimit/rules.js';

function problems(rateLimit: unknown): string[] {
  try {
    validateConfig({ rateLimit });
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
  return [];
}

describe('rateLimit config', () => {
  test('absent means no limiter; a bare rate gets the defaults', () => {
    assert.equal(validateConfig({}).rateLimit, undefined);
    const rl = validateConfig({ rateLimit: { rate: 100 } }).rateLimit!;
    assert.deepEqual(
      { ...rl, overrides: rl.overrides.length },
      { algorithm: 'token-bucket', rate: 100, per: 1000, key: 'ip', store: 'memory', onStoreError: 'allow', headers: true, timeout: 50, maxKeys: 100_000, overrides: 0 },
    );
  });

  test('durations normalize to milliseconds', () => {
    const rl = validateConfig({ rateLimit: { rate: 5, per: '1m', burst: 10, timeout: '200ms', key: 'header:x-api-key', store: 'redis', onStoreError: 'deny' } }).rateLimit!;
    assert.equal(rl.per, 60_000);
    assert.equal(rl.timeout, 200);
  });

  test('each mistake is reported with its path and what was expected', () => {
    assert.deepEqual(problems({}).length, 1);
    assert.match(problems({})[0]!, /^rateLimit\.rate: required/);
    assert.match(problems({ rate: 0.5 })[0]!, /^rateLimit\.rate: expected an integer/);
    assert.match(problems({ rate: 0 })[0]!, /^rateLimit\.rate: expected at least 1/);
    assert.match(problems({ rate: 1, per: '0.5ms' })[0]!, /^rateLimit\.per: expected a whole number of milliseconds between 1ms and 24h/);
    assert.deepEqual(problems({ rate: 1, per: '2w' }).length, 1);
    assert.match(problems({ rate: 1, per: '2w' })[0]!, /^rateLimit\.per: expected a duration/);
    // Days are a duration unit (acme.renewBefore: 30d), but more than a rate-limit window may be.
    assert.match(problems({ rate: 1, per: '2d' })[0]!, /^rateLimit\.per: expected a whole number of milliseconds between 1ms and 24h/);
    assert.match(problems({ rate: 1, key: 'cookie:x' })[0]!, /^rateLimit\.key: expected ip, global or header:<name>/);
    assert.match(problems({ rate: 1, algorithm: 'leaky' })[0]!, /^rateLimit\.algorithm: expected one of "token-bucket", "sliding-window"/);
    assert.match(problems({ rate: 1, store: 'etcd' })[0]!, /^rateLimit\.store: /);
    assert.match(problems({ rate: 1, onStoreError: 'maybe' })[0]!, /^rateLimit\.onStoreError: /);
    assert.match(problems({ rate: 1, timeout: 0 })[0]!, /^rateLimit\.timeout: expected at least 1/);
    assert.match(problems({ rate: 1, algorithm: 'sliding-window', burst: 5 })[0]!, /^rateLimit\.burst: burst applies to token-bucket only/);
    assert.match(problems({ rate: 1, burts: 5 })[0]!, /^rateLimit: unknown key "burts"$/);
    assert.match(problems({ rate: 1, overrides: [{ pathPrefix: 'api' }] })[0]!, /^rateLimit\.overrides\[0\]\.pathPrefix: expected a path prefix starting with "\/"/);
    assert.match(problems({ rate: 1, overrides: [{ pathPrefix: '/a' }, { pathPrefix: '/a' }] })[0]!, /^rateLimit\.overrides\[1\]\.pathPrefix: duplicate path prefix "\/a"/);
    assert.match(problems({ rate: 1, overrides: [{ pathPrefix: '/a', algorithm: 'sliding-window', burst: 2 }] })[0]!, /^rateLimit\.overrides\[0\]\.burst: /);
  });

  test('overrides inherit, longest prefix first; a new rate brings its own burst', () => {
    const rl = validateConfig({
      rateLimit: {
        rate: 100, burst: 200, key: 'header:x-api-key',
        overrides: [{ pathPrefix: '/api', per: '10s' }, { pathPrefix: '/api/login', rate: 5, per: '1m', key: 'ip' }, { pathPrefix: '/health', enabled: false }],
      },
    }).rateLimit!;
    const rules = compileRules(rl);
    assert.deepEqual(rules.map((r) => [r.name, r.enabled, r.policy.rate, r.policy.per, r.policy.burst, r.key]), [
      ['/api/login', true, 5, 60_000, 5, 'ip'],
      ['/health', false, 100, 1000, 200, 'header:x-api-key'],
      ['/api', true, 100, 10_000, 200, 'header:x-api-key'],
      ['default', true, 100, 1000, 200, 'header:x-api-key'],
    ]);
    // Distinct scopes: no two rules share counts in Redis.
    assert.equal(new Set(rules.map((r) => r.scope)).size, rules.length);
    for (const r of rules) r.memory?.close();
  });
});
