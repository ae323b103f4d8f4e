/**
 * How shared health, backend changes and counters name their service in the
 * store: entries of the version that shared only the default service have
 * no `service` and stay the service `default`'s; a `service` that is not a
 * string makes the entry invalid.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { decodeHealth, decodeMessage, decodeOverride, encodeHealth, encodeMessage, encodeOverride } from '../../src/state/redis-codec.js';
import { backendKey, counterFields, countersFromFields, emptyBackendCounters, emptyCounters, type BackendOverride, type SharedHealth } from '../../src/state/store.js';
import { Reason } from '../../src/backends/reasons.js';

const URL1 = 'http://10.0.0.5:8080/';

/** What the previous version wrote in the health hash (no service). */
const OLD_HEALTH = { url: URL1, reasons: ['active-check-failed'], lastCheck: 1700, lastCheckOk: false, lastCheckError: 'status 503', since: 1600, by: 'old-1' };
/** What the previous version wrote in the backends hash (no service). */
const OLD_OVERRIDE = { url: URL1, present: true, config: null, weight: 5, state: 'draining', drain: false, at: 10, by: 'old-1' };

describe('redis codec: the service of an entry', () => {
  test('health round-trips with its service', () => {
    const h: SharedHealth = { service: 'api', url: URL1, reasons: Reason.ACTIVE_CHECK_FAILED, lastCheck: 1, lastCheckOk: false, lastCheckError: 'status 503', since: 2, by: 'a' };
    assert.equal(encodeHealth(h).service, 'api');
    assert.deepEqual(decodeHealth(JSON.parse(JSON.stringify(encodeHealth(h)))), h);
  });

  test('an override round-trips with its service', () => {
    const o: BackendOverride = { service: 'web', url: URL1, present: false, config: { url: URL1 }, weight: null, state: null, drain: true, at: 3, by: 'b' };
    assert.deepEqual(decodeOverride(JSON.parse(JSON.stringify(encodeOverride(o)))), o);
  });

  test('an entry without service (the previous format) is the service default\'s', () => {
    assert.equal(decodeHealth(OLD_HEALTH)?.service, 'default');
    assert.equal(decodeHealth(OLD_HEALTH)?.reasons, Reason.ACTIVE_CHECK_FAILED);
    assert.deepEqual(decodeOverride(OLD_OVERRIDE), { ...OLD_OVERRIDE, service: 'default' });
    const message = decodeMessage(JSON.stringify({ kind: 'backend', from: 'old-1', override: OLD_OVERRIDE }));
    assert.equal(message?.kind === 'backend' ? message.override.service : undefined, 'default');
  });

  test('a service that is not a string makes the entry invalid', () => {
    for (const service of [7, null, true, ['api'], { name: 'api' }]) {
      assert.equal(decodeHealth({ ...OLD_HEALTH, service }), null, `health with service ${JSON.stringify(service)}`);
      assert.equal(decodeOverride({ ...OLD_OVERRIDE, service }), null, `override with service ${JSON.stringify(service)}`);
      assert.equal(decodeMessage(JSON.stringify({ kind: 'health', from: 'x', health: { ...OLD_HEALTH, service } })), null);
    }
  });

  test('a message carries the service', () => {
    const h: SharedHealth = { service: 'api', url: URL1, reasons: 0, lastCheck: null, lastCheckOk: null, lastCheckError: null, since: 0, by: 'a' };
    const m = decodeMessage(encodeMessage({ kind: 'health', from: 'a', health: h }));
    assert.deepEqual(m, { kind: 'health', from: 'a', health: h });
  });
});

describe('store keys of a service\'s backend', () => {
  test('the default service keeps the bare URL; another is "<service> <url>"', () => {
    assert.equal(backendKey('default', URL1), URL1);
    assert.equal(backendKey('api', URL1), `api ${URL1}`);
    assert.notEqual(backendKey('api', URL1), backendKey('web', URL1));
  });

  test('counter fields name the service for all but default, and read back apart', () => {
    const delta = emptyCounters();
    delta.total = 5;
    const api = emptyBackendCounters();
    api.requests = 3;
    api.responses['2xx'] = 3;
    const dflt = emptyBackendCounters();
    dflt.requests = 2;
    dflt.failures = 1;
    delta.backends.set(backendKey('api', URL1), api);
    delta.backends.set(backendKey('default', URL1), dflt);
    const fields = counterFields(delta);
    assert.deepEqual(new Map(fields), new Map<string, number>([
      ['total', 5], [`api ${URL1}|requests`, 3], [`api ${URL1}|2xx`, 3], [`${URL1}|requests`, 2], [`${URL1}|failures`, 1],
    ]));
    const back = countersFromFields(fields);
    assert.equal(back.backends.get(backendKey('api', URL1))?.requests, 3);
    assert.equal(back.backends.get(backendKey('default', URL1))?.requests, 2);
    assert.equal(back.backends.get(backendKey('default', URL1))?.failures, 1);
  });
});
