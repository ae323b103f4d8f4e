/**
 * retries.on, idempotencyKey and backoff as the retry policy reads them:
 * which errors and statuses are retried, which requests may be, and the
 * full-jitter back-off's bounds.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { retriesSchema } from '../../src/config/schema.js';
import { RetryPolicy } from '../../src/service/retry.js';

const policy = (over: Record<string, unknown> = {}) => new RetryPolicy(retriesSchema.parse(over));

describe('retries.on', () => {
  test('the default is today\'s: connect failures, resets and response timeouts, no status', () => {
    const p = policy();
    assert.equal(p.errorReason('FULCRUM_ERR_CONNECT_REFUSED'), 'connect-failure');
    assert.equal(p.errorReason('FULCRUM_ERR_CONNECT_TIMEOUT'), 'connect-failure');
    assert.equal(p.errorReason('FULCRUM_ERR_UPSTREAM_TLS'), 'connect-failure');
    assert.equal(p.errorReason('FULCRUM_ERR_UPSTREAM_RESET'), 'reset');
    assert.equal(p.errorReason('FULCRUM_ERR_RESPONSE_TIMEOUT'), 'timeout');
    assert.equal(p.errorReason('FULCRUM_ERR_IDLE_TIMEOUT'), null, 'a stalled body is never retried');
    assert.equal(p.errorReason('FULCRUM_ERR_UPSTREAM_PROTOCOL'), null);
    assert.equal(p.retriesStatus, false);
    assert.equal(p.statusReason(503), null);
  });

  test('status codes, ranges and classes; only the listed error conditions', () => {
    const p = policy({ on: [502, '504', '520-522', '4xx', 'reset'] });
    assert.equal(p.retriesStatus, true);
    assert.deepEqual([502, 503, 504, 521, 429, 400, 200].map((s) => p.statusReason(s)), ['502', null, '504', '521', '429', '400', null]);
    assert.equal(p.errorReason('FULCRUM_ERR_UPSTREAM_RESET'), 'reset');
    assert.equal(p.errorReason('FULCRUM_ERR_CONNECT_REFUSED'), null, 'connect-failure is not listed');
    assert.equal(p.errorReason('FULCRUM_ERR_RESPONSE_TIMEOUT'), null, 'timeout is not listed');
    assert.equal(policy({ on: ['5xx'] }).statusReason(599), '599');
  });

  test('bad conditions are refused with what is expected', () => {
    for (const bad of [['sometimes'], [99], [600], ['503-500'], [502.5], 'reset']) {
      const r = retriesSchema.safeParse({ on: bad });
      assert.equal(r.success, false, JSON.stringify(bad));
      assert.match(r.error!.issues[0]!.message, /expected/);
    }
  });
});

describe('which requests may be retried', () => {
  const key = ['Host', 'x', 'Idempotency-Key', 'abc-1'];
  test('methods, and Idempotency-Key only when idempotencyKey is on', () => {
    assert.equal(policy().requestAllows('GET', []), true);
    assert.equal(policy().requestAllows('POST', key), false, 'off by default');
    assert.equal(policy({ idempotencyKey: true }).requestAllows('POST', key), true);
    assert.equal(policy({ idempotencyKey: true }).requestAllows('POST', ['idempotency-key', '  ']), false, 'an empty key is no key');
    assert.equal(policy({ idempotencyKey: true }).requestAllows('POST', ['host', 'x']), false);
    assert.equal(policy({ idempotencyKey: true, attempts: 0 }).requestAllows('GET', key), false, 'attempts: 0 turns retries off');
  });
});

describe('backoff', () => {
  test('full jitter: uniform from 0 to min(max, base * 2^(retry - 1))', () => {
    const p = policy({ backoff: { base: '25ms', max: '250ms' } });
    assert.equal(p.backoffDelay(1, () => 0.999), 24);
    assert.equal(p.backoffDelay(2, () => 0.999), 49);
    assert.equal(p.backoffDelay(3, () => 0.5), 50);
    assert.equal(p.backoffDelay(10, () => 0.999), 249, 'capped at max');
    assert.equal(p.backoffDelay(4, () => 0), 0);
  });

  test('none without backoff; max must not be below base', () => {
    assert.equal(policy().backoffDelay(3, () => 0.9), 0);
    const r = retriesSchema.safeParse({ backoff: { base: '1s', max: '10ms' } });
    assert.equal(r.success, false);
    assert.deepEqual(r.error!.issues[0]!.path, ['backoff', 'max']);
  });

  test('perTryTimeout is read in ms, absent means none', () => {
    assert.equal(policy({ perTryTimeout: '150ms' }).perTryTimeout, 150);
    assert.equal(policy().perTryTimeout, 0);
  });
});
