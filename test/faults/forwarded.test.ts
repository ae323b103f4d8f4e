/** Forwarded headers: trusted only from configured proxies; otherwise replaced, never appended. */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBackends, urlOf, type DemoBackend } from '../helpers/backends.js';
import { startBalancer, get, type TestBalancer } from '../helpers/balancer.js';

const SPOOF = { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example', forwarded: 'for=6.6.6.6' };

describe('forwarded headers', () => {
  let backends: DemoBackend[];
  let untrusted: TestBalancer;
  let trusted: TestBalancer;
  let rewriting: TestBalancer;
  before(async () => {
    backends = await startBackends(1);
    untrusted = await startBalancer({ backends: backends.map(urlOf), healthCheck: { enabled: false } });
    trusted = await startBalancer({ backends: backends.map(urlOf), healthCheck: { enabled: false }, trustedProxies: ['127.0.0.0/8', '::1'] });
    rewriting = await startBalancer({ backends: backends.map(urlOf), healthCheck: { enabled: false }, preserveHost: false });
  });
  after(async () => {
    await Promise.all([untrusted.close(), trusted.close(), rewriting.close()]);
    await Promise.all(backends.map((b) => b.close()));
  });

  test('from an untrusted client, spoofed values are replaced', async () => {
    const echo = JSON.parse((await get(`${untrusted.url}/echo`, { headers: { host: 'shop.example', ...SPOOF } })).body);
    assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(echo.headers['x-forwarded-proto'], 'http');
    assert.equal(echo.headers['x-forwarded-host'], 'shop.example');
    assert.equal(echo.headers.forwarded, 'for=127.0.0.1;proto=http;host="shop.example"');
  });

  test('from a trusted proxy, the chain is appended and its proto/host kept', async () => {
    const echo = JSON.parse((await get(`${trusted.url}/echo`, { headers: { host: 'shop.example', ...SPOOF } })).body);
    assert.equal(echo.headers['x-forwarded-for'], '6.6.6.6, 127.0.0.1');
    assert.equal(echo.headers['x-forwarded-proto'], 'https');
    assert.equal(echo.headers['x-forwarded-host'], 'evil.example');
    assert.equal(echo.headers.forwarded, 'for=6.6.6.6, for=127.0.0.1;proto=http;host="shop.example"');
    // The client address used for balancing and limits is the forwarded one.
    const status = await get(`${trusted.url}/status`);
    assert.equal(status.status, 200);
  });

  test('preserveHost: false sends the backend its own host', async () => {
    const echo = JSON.parse((await get(`${rewriting.url}/echo`, { headers: { host: 'shop.example' } })).body);
    assert.equal(echo.headers.host, `127.0.0.1:${backends[0]!.port}`);
    assert.equal(echo.headers['x-forwarded-host'], 'shop.example');
  });
});
