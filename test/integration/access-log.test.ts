/** The access log: one structured line per proxied request, none for the balancer's own endpoints, and an off switch. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startBackends, urlOf } from '../helpers/backends.js';
import { startBalancer, get } from '../helpers/balancer.js';
import { captureLogger } from '../helpers/logs.js';

test('one access line per proxied request, with method, url, status, backend, client, time and attempts', async () => {
  const backends = await startBackends(1);
  const log = captureLogger('warn'); // the access log has its own switch, independent of the log level
  const lb = await startBalancer({ backends: backends.map(urlOf), healthCheck: { enabled: false }, accessLog: true }, { logger: log.logger });
  try {
    await get(`${lb.url}/status/404?x=1`);
    await get(`${lb.url}/status`);
    const lines = log.lines.filter((l) => l.type === 'access');
    assert.equal(lines.length, 1, 'the balancer\'s own endpoints are not access-logged');
    const line = lines[0]!;
    assert.equal(line.method, 'GET');
    assert.equal(line.url, '/status/404?x=1');
    assert.equal(line.status, 404);
    assert.equal(line.backend, 'b1');
    assert.equal(line.client, '127.0.0.1');
    assert.equal(line.attempts, 1);
    assert.equal(typeof line.ms, 'number');
  } finally {
    await lb.close();
    await Promise.all(backends.map((b) => b.close()));
  }
});

test('accessLog: false writes no access lines; a reload can turn it on', async () => {
  const backends = await startBackends(1);
  const log = captureLogger('info');
  const config = { backends: backends.map(urlOf), healthCheck: { enabled: false }, accessLog: false, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' as const };
  const lb = await startBalancer(config, { logger: log.logger });
  try {
    await get(`${lb.url}/`);
    assert.equal(log.lines.filter((l) => l.type === 'access').length, 0);
    const result = await lb.balancer.reload({ ...config, accessLog: true });
    assert.equal(result.ok, true);
    await get(`${lb.url}/`);
    assert.equal(log.lines.filter((l) => l.type === 'access').length, 1);
  } finally {
    await lb.close();
    await Promise.all(backends.map((b) => b.close()));
  }
});

test('a request refused by the rate limiter is access-logged with its status and error code', async () => {
  const backends = await startBackends(1);
  const log = captureLogger('warn');
  const lb = await startBalancer({ backends: backends.map(urlOf), healthCheck: { enabled: false }, accessLog: true, rateLimit: { rate: 1, per: '1m' } }, { logger: log.logger });
  try {
    assert.equal((await get(`${lb.url}/`)).status, 200);
    const refused = await get(`${lb.url}/`);
    assert.equal(refused.status, 429);
    assert.equal(refused.body, '429 Too Many Requests: rate limit exceeded\n');
    const lines = log.lines.filter((l) => l.type === 'access');
    assert.deepEqual(lines.map((l) => [l.status, l.backend, l.error ?? null]), [[200, 'b1', null], [429, 'none', 'FULCRUM_ERR_RATE_LIMITED']]);
  } finally {
    await lb.close();
    await Promise.all(backends.map((b) => b.close()));
  }
});
