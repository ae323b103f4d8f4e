import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startBackends, urlOf, type DemoBackend } from '../helpers/backends.js';
import { get, request, startBalancer, type TestBalancer } from '../helpers/balancer.js';

/** hits counts the requests the backend saw on a path. */
const hits = (b: DemoBackend, path: string): number => b.requests.get(path) ?? 0;

describe('rate limiting (memory store)', () => {
  let backend: DemoBackend;
  const balancers: TestBalancer[] = [];
  const start = async (rateLimit: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<TestBalancer> => {
    const lb = await startBalancer({ backends: [urlOf(backend)], healthCheck: { enabled: false }, rateLimit: rateLimit as never, ...extra });
    balancers.push(lb);
    return lb;
  };

  before(async () => { [backend] = await startBackends(1); });
  after(async () => {
    for (const lb of balancers) await lb.close();
    await backend.close();
  });

  test('over the limit: 429 with Retry-After and RateLimit headers; the backend never sees it', async () => {
    const lb = await start({ rate: 2, per: '1m', burst: 3 });
    const seen: Awaited<ReturnType<typeof get>>[] = [];
    for (let i = 0; i < 5; i++) seen.push(await get(`${lb.url}/echo`));
    assert.deepEqual(seen.map((r) => r.status), [200, 200, 200, 429, 429]);
    assert.equal(hits(backend, '/echo'), 3);
    // Allowed responses keep the backend's headers and gain the limiter's.
    assert.equal(seen[0]!.headers['x-backend'], 'Backend 1');
    assert.equal(seen[0]!.headers['content-type'], 'application/json');
    assert.equal(seen[0]!.headers['ratelimit-policy'], '"default";q=3;w=90');
    assert.deepEqual(seen.slice(0, 3).map((r) => r.headers.ratelimit), ['"default";r=2;t=30', '"default";r=1;t=60', '"default";r=0;t=90']);
    // One token comes back every 30 s.
    const rejected = seen[3]!;
    assert.equal(rejected.headers['retry-after'], '30');
    assert.equal(rejected.headers['ratelimit-policy'], '"default";q=3;w=90');
    assert.equal(rejected.headers.ratelimit, '"default";r=0;t=90');
    assert.equal(rejected.headers['x-fulcrum-error'], 'FULCRUM_ERR_RATE_LIMITED');
    assert.equal(rejected.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(rejected.body, '429 Too Many Requests: rate limit exceeded\n');
    // Counted, in both metric formats.
    const json = JSON.parse((await get(`${lb.url}/metrics?format=json`)).body) as Record<string, unknown>;
    assert.equal(json.ratelimited_total, 2);
    const prom = await get(`${lb.url}/metrics?format=prometheus`);
    assert.match(prom.body, /^fulcrum_ratelimited_total 2$/m);
    assert.match(prom.body, /^fulcrum_requests_total\{route="default",service="default",backend="none",code="429"\} 2$/m);
    // Nothing left in flight: the 429s ended their responses.
    assert.equal(lb.balancer.activeRequests, 0);
    const status = lb.balancer.status().rateLimit as Record<string, unknown>;
    assert.equal(status.rejected, 2);
    assert.equal(status.trackedKeys, 1);
  });

  test('a spoofed X-Forwarded-For from an untrusted client does not dodge the limit', async () => {
    const lb = await start({ rate: 1, per: '1m', burst: 2 });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await get(`${lb.url}/`, { headers: { 'x-forwarded-for': `203.0.113.${i}` } })).status);
    assert.deepEqual(statuses, [200, 200, 429, 429, 429]);
  });

  test('behind a trusted proxy, each forwarded client has its own allowance', async () => {
    const lb = await start({ rate: 1, per: '1m', burst: 1 }, { trustedProxies: ['127.0.0.1'] });
    const a1 = await get(`${lb.url}/`, { headers: { 'x-forwarded-for': '203.0.113.1' } });
    const b1 = await get(`${lb.url}/`, { headers: { 'x-forwarded-for': '203.0.113.2' } });
    const a2 = await get(`${lb.url}/`, { headers: { 'x-forwarded-for': '203.0.113.1' } });
    assert.deepEqual([a1.status, b1.status, a2.status], [200, 200, 429]);
  });

  test('header keys, global keys, path overrides and exemptions', async () => {
    const lb = await start({
      rate: 1, per: '1m', key: 'header:x-api-key',
      overrides: [{ pathPrefix: '/status/', rate: 2, key: 'global' }, { pathPrefix: '/health', enabled: false }],
    });
    const key = (k: string) => ({ headers: { 'x-api-key': k } });
    assert.equal((await get(`${lb.url}/`, key('alice'))).status, 200);
    assert.equal((await get(`${lb.url}/`, key('alice'))).status, 429);
    assert.equal((await get(`${lb.url}/`, key('bob'))).status, 200);
    // The override has its own count, shared by everyone (global), and its own policy name.
    const o1 = await get(`${lb.url}/status/200`, key('alice'));
    assert.equal(o1.status, 200);
    assert.equal(o1.headers['ratelimit-policy'], '"/status/";q=2;w=60');
    assert.equal((await get(`${lb.url}/status/201`, key('bob'))).status, 201);
    assert.equal((await get(`${lb.url}/status/200`, key('carol'))).status, 429);
    // Exempt: no limit, no headers.
    for (let i = 0; i < 3; i++) {
      const h = await get(`${lb.url}/health`, key('alice'));
      assert.equal(h.status, 200);
      assert.equal(h.headers.ratelimit, undefined);
    }
  });

  test('headers: false leaves allowed responses untouched; 429s still carry them', async () => {
    const lb = await start({ rate: 1, per: '1m', headers: false });
    const ok = await get(`${lb.url}/`);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.ratelimit, undefined);
    assert.equal(ok.headers['ratelimit-policy'], undefined);
    const no = await get(`${lb.url}/`);
    assert.equal(no.status, 429);
    assert.equal(no.headers.ratelimit, '"default";r=0;t=60');
  });

  test('a rejected request with a body is answered without reading it, and the connection closes', async () => {
    const lb = await start({ rate: 1, per: '1m' });
    assert.equal((await request(`${lb.url}/upload`, { method: 'POST', body: 'x' })).status, 200);
    const before = hits(backend, '/upload');
    const res = await request(`${lb.url}/upload`, { method: 'POST', body: 'y'.repeat(1000) });
    assert.equal(res.status, 429);
    assert.equal(res.headers.connection, 'close');
    assert.equal(hits(backend, '/upload'), before);
  });

  test('keep-alive clients get 429s on the same connection', async () => {
    const lb = await start({ rate: 1, per: '1m', burst: 1 });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    const one = (): Promise<number> => new Promise((resolve, reject) => {
      const req = http.get(`${lb.url}/`, { agent }, (res) => {
        sockets.add(res.socket);
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
    });
    const statuses = [await one(), await one(), await one()];
    agent.destroy();
    assert.deepEqual(statuses, [200, 429, 429]);
    assert.equal(sockets.size, 1);
  });

  test('reload changes the limit, and removing rateLimit removes the limiter', async () => {
    const lb = await start({ rate: 1, per: '1m' });
    assert.equal((await get(`${lb.url}/`)).status, 200);
    assert.equal((await get(`${lb.url}/`)).status, 429);
    const base = { listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' as const, accessLog: false, backends: [urlOf(backend)], healthCheck: { enabled: false } };
    // Unchanged rateLimit: the counts carry on.
    assert.equal((await lb.balancer.reload({ ...base, rateLimit: { rate: 1, per: '1m' } })).ok, true);
    assert.equal((await get(`${lb.url}/`)).status, 429);
    assert.equal((await lb.balancer.reload({ ...base, rateLimit: { rate: 3, per: '1m' } })).ok, true);
    assert.deepEqual([(await get(`${lb.url}/`)).status, (await get(`${lb.url}/`)).status, (await get(`${lb.url}/`)).status, (await get(`${lb.url}/`)).status], [200, 200, 200, 429]);
    assert.equal(lb.balancer.filters.length, 1);
    assert.equal((await lb.balancer.reload(base)).ok, true);
    assert.equal(lb.balancer.filters.length, 0);
    for (let i = 0; i < 5; i++) assert.equal((await get(`${lb.url}/`)).status, 200);
    assert.equal(lb.balancer.status().rateLimit, undefined);
  });
});
