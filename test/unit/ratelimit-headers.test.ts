import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { clientKeyFn } from '../../src/ratelimit/client-key.js';
import { policyHeader, quotedName, rateLimitHeader, retryAfter } from '../../src/ratelimit/headers.js';
import { Decision } from '../../src/ratelimit/types.js';

const decision = (fields: Partial<Decision>): Decision => Object.assign(new Decision(), fields);

describe('rate-limit headers', () => {
  test('RateLimit-Policy: a token bucket advertises its burst over its fill time', () => {
    assert.equal(policyHeader('default', { algorithm: 'token-bucket', rate: 100, per: 1000, burst: 200 }), '"default";q=200;w=2');
    assert.equal(policyHeader('default', { algorithm: 'token-bucket', rate: 3, per: 1000, burst: 200 }), '"default";q=200;w=67');
  });

  test('RateLimit-Policy: a sliding window advertises its rate over its window, in whole seconds', () => {
    assert.equal(policyHeader('/api', { algorithm: 'sliding-window', rate: 10, per: 60_000, burst: 10 }), '"/api";q=10;w=60');
    assert.equal(policyHeader('default', { algorithm: 'sliding-window', rate: 5, per: 500, burst: 5 }), '"default";q=5;w=1');
  });

  test('RateLimit: remaining and seconds to full, rounded up', () => {
    assert.equal(rateLimitHeader('"default"', decision({ remaining: 3, resetMs: 1001 })), '"default";r=3;t=2');
    assert.equal(rateLimitHeader('"default"', decision({ remaining: 0, resetMs: 0 })), '"default";r=0;t=0');
  });

  test('Retry-After: whole seconds rounded up, never 0', () => {
    assert.equal(retryAfter(decision({ retryAfterMs: 1 })), '1');
    assert.equal(retryAfter(decision({ retryAfterMs: 1000 })), '1');
    assert.equal(retryAfter(decision({ retryAfterMs: 1001 })), '2');
    assert.equal(retryAfter(decision({ retryAfterMs: 0 })), '1');
  });

  test('policy names are structured-field strings', () => {
    assert.equal(quotedName('a"b\\c'), '"a\\"b\\\\c"');
  });
});

describe('client keys', () => {
  const req = (rawHeaders: string[]): IncomingMessage => ({ rawHeaders }) as unknown as IncomingMessage;

  test('ip uses the address the pipeline resolved; global is one key', () => {
    assert.equal(clientKeyFn('ip')(req(['X-Forwarded-For', '1.2.3.4']), '10.0.0.9'), '10.0.0.9');
    assert.equal(clientKeyFn('global')(req([]), '10.0.0.9'), clientKeyFn('global')(req([]), '10.0.0.8'));
  });

  test('header keys match the name in any case and fall back to the address', () => {
    const key = clientKeyFn('header:X-Api-Key');
    assert.equal(key(req(['x-API-key', ' abc ']), '10.0.0.9'), 'h:abc');
    assert.equal(key(req(['Other', 'abc']), '10.0.0.9'), 'ip:10.0.0.9');
    assert.equal(key(req(['X-Api-Key', '']), '10.0.0.9'), 'ip:10.0.0.9');
    // A header value cannot pose as another client's address.
    assert.notEqual(key(req(['X-Api-Key', 'ip:10.0.0.9']), '10.0.0.1'), 'ip:10.0.0.9');
  });

  test('long header values are hashed to a bounded key', () => {
    const key = clientKeyFn('header:x-api-key');
    const a = key(req(['x-api-key', 'a'.repeat(10_000)]), '');
    const b = key(req(['x-api-key', `${'a'.repeat(9_999)}b`]), '');
    assert.ok(a.length < 64);
    assert.notEqual(a, b);
  });
});
