/**
 * The admin API over real HTTP: auth rules, every route, validation
 * errors, drain semantics with a slow in-flight request, added backends
 * being health-checked (actively and passively) and receiving traffic,
 * removed ones receiving none, the dedicated admin listener, and the log
 * of who changed what.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { startBalancer, request, waitFor, type SimpleResponse, type TestBalancer } from '../helpers/balancer.js';
import { startBackends, startRawServer, urlOf, type DemoBackend, type RawServer } from '../helpers/backends.js';
import { startDemoBackend } from '../../src/demo/backend.js';
import type { Logger } from '../../src/observe/log.js';

const TOKEN = 'test-admin-token-0123456789';
const AUTH = { authorization: `Bearer ${TOKEN}` };

interface Json { [key: string]: unknown }

async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = AUTH): Promise<SimpleResponse & { json: Json }> {
  const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const res = await request(`${base}${path}`, { method, headers: { ...headers, ...(text === undefined ? {} : { 'content-type': 'application/json' }) }, ...(text === undefined ? {} : { body: text }) });
  let json: Json = {};
  try { json = JSON.parse(res.body) as Json; } catch { /* not JSON */ }
  return { ...res, json };
}

interface BackendView { id: string; url: string; weight: number; state: string; healthy: boolean; reasons: string[]; activeConnections: number; removeWhenDrained: boolean; config: Json }

async function backendsOf(base: string): Promise<BackendView[]> {
  const res = await call(base, 'GET', '/admin/backends');
  assert.equal(res.status, 200, res.body);
  return res.json.backends as BackendView[];
}

/** logCapture is a pino logger whose JSON lines are kept for assertions. */
function logCapture(): { logger: Logger; lines: Json[] } {
  const lines: Json[] = [];
  const stream = new Writable({ write(chunk: Buffer, _enc, cb) { for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Json); cb(); } });
  return { logger: pino<never>({ level: 'info' }, stream), lines };
}

describe('admin API: authentication', () => {
  let backends: DemoBackend[];
  let open: TestBalancer;
  let locked: TestBalancer;
  before(async () => {
    backends = await startBackends(1, 'Auth');
    const base = { backends: [urlOf(backends[0]!)], healthCheck: { enabled: false } };
    open = await startBalancer(base);
    locked = await startBalancer({ ...base, admin: { token: TOKEN } });
  });
  after(async () => {
    await open.close();
    await locked.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  test('without a configured token: 403 saying how to enable it; /status, /metrics, /healthz and /dashboard stay open', async () => {
    const res = await call(open.url, 'GET', '/admin/backends');
    assert.equal(res.status, 403);
    assert.equal(res.json.code, 'FULCRUM_ERR_ADMIN_DISABLED');
    assert.match(res.json.error as string, /admin\.token/);
    assert.match(res.json.error as string, /FULCRUM_ADMIN_TOKEN/);
    // Even the right-looking token does nothing when none is configured.
    assert.equal((await call(open.url, 'POST', '/admin/backends', { url: 'http://127.0.0.1:1' })).status, 403);
    assert.equal(open.balancer.pool.snapshot.length, 1);
    for (const path of ['/status', '/metrics', '/healthz', '/dashboard']) {
      assert.equal((await call(open.url, 'GET', path, undefined, {})).status, 200, path);
    }
  });

  test('missing, malformed or wrong tokens get 401 with WWW-Authenticate: Bearer, on every route, and change nothing', async () => {
    const routes: [string, string, unknown?][] = [
      ['GET', '/admin/backends'], ['POST', '/admin/backends', { url: 'http://127.0.0.1:1' }], ['GET', '/admin/backends/b1'],
      ['PATCH', '/admin/backends/b1', { weight: 5 }], ['DELETE', '/admin/backends/b1'], ['GET', '/admin/config'], ['POST', '/admin/reload'], ['GET', '/admin'],
    ];
    const wrongs: Record<string, string>[] = [
      {},
      { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` },
      { authorization: `Bearer ${TOKEN.slice(0, -1)}x` }, // same length, last character differs
      { authorization: `Bearer ${TOKEN}extra` },
      { authorization: 'Bearer' },
    ];
    for (const [method, path, body] of routes) {
      for (const headers of wrongs) {
        const res = await call(locked.url, method, path, body, headers);
        assert.equal(res.status, 401, `${method} ${path} with ${JSON.stringify(headers)}`);
        assert.equal(res.json.code, 'FULCRUM_ERR_ADMIN_UNAUTHORIZED');
        assert.match(String(res.headers['www-authenticate']), /^Bearer /);
      }
    }
    const b1 = locked.balancer.pool.get('b1');
    assert.ok(b1 !== undefined);
    assert.equal(b1.weight, 1);
    assert.equal(locked.balancer.pool.snapshot.length, 1);
    assert.equal(locked.balancer.lastReload, null);
  });

  test('the right token is accepted (scheme case-insensitive); the dashboard needs none', async () => {
    assert.equal((await call(locked.url, 'GET', '/admin/backends')).status, 200);
    assert.equal((await call(locked.url, 'GET', '/admin/backends', undefined, { authorization: `bearer ${TOKEN}` })).status, 200);
    assert.equal((await call(locked.url, 'GET', '/dashboard', undefined, {})).status, 200);
    assert.equal((await call(locked.url, 'GET', '/status', undefined, {})).status, 200);
  });
});

describe('admin API: routes', () => {
  let backends: DemoBackend[];
  let extra: DemoBackend;
  let failing: RawServer;
  let lb: TestBalancer;
  const log = logCapture();
  before(async () => {
    backends = await startBackends(2, 'Routes');
    extra = await startDemoBackend({ port: 0, host: '127.0.0.1', name: 'Added' });
    // A backend whose health check passes but which answers 500 to everything else.
    failing = await startRawServer((socket) => {
      socket.once('data', (d: Buffer) => {
        const ok = d.toString('latin1').startsWith('GET /health ');
        socket.end(`HTTP/1.1 ${ok ? '200 OK' : '500 Internal Server Error'}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n${ok ? 'ok' : 'no'}`);
      });
    });
    lb = await startBalancer({
      backends: backends.map((b, i) => ({ id: `b${i + 1}`, url: urlOf(b) })),
      admin: { token: TOKEN },
      healthCheck: { interval: '200ms', timeout: '1s', healthyThreshold: 1, unhealthyThreshold: 1 },
      outlierDetection: { consecutiveFailures: 3, baseEjectionTime: '30s', maxEjectionPercent: 100 },
      retries: { attempts: 0 },
    }, { logger: log.logger });
  });
  after(async () => {
    await lb.close();
    await Promise.all([...backends, extra].map((b) => b.close()));
    await failing.close();
  });

  test('GET /admin/backends and /admin/backends/{id}: config and live state; unknown ids, routes and methods', async () => {
    const list = await backendsOf(lb.url);
    assert.deepEqual(list.map((b) => b.id), ['b1', 'b2']);
    for (const b of list) {
      assert.equal(b.state, 'enabled');
      assert.equal(b.weight, 1);
      assert.equal(typeof b.healthy, 'boolean');
      assert.ok(Array.isArray(b.reasons));
      assert.equal(typeof b.activeConnections, 'number');
      assert.equal((b.config as { url: string }).url, urlOf(backends[Number(b.id.slice(1)) - 1]!));
    }
    const one = await call(lb.url, 'GET', '/admin/backends/b2');
    assert.equal(one.status, 200);
    assert.equal(one.json.url, `${urlOf(backends[1]!)}/`);
    const missing = await call(lb.url, 'GET', '/admin/backends/nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.json.code, 'FULCRUM_ERR_ADMIN_NOT_FOUND');
    assert.equal((await call(lb.url, 'GET', '/admin/elsewhere')).status, 404);
    const wrongMethod = await call(lb.url, 'PUT', '/admin/backends/b1', { weight: 1 });
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.allow, 'GET, PATCH, DELETE');
    assert.equal((await call(lb.url, 'GET', '/admin/reload')).status, 405);
    const index = await call(lb.url, 'GET', '/admin');
    assert.equal(index.status, 200);
    assert.ok((index.json.routes as string[]).includes('POST /admin/reload'));
  });

  test('bodies are validated: 400 naming the field, 409 for a duplicate', async () => {
    const cases: [string, string, unknown, string][] = [
      ['POST', '/admin/backends', { weight: 2 }, 'url'],
      ['POST', '/admin/backends', { url: 'localhost:9' }, 'url'],
      ['POST', '/admin/backends', { url: 'http://127.0.0.1:9', weight: -1 }, 'weight'],
      ['POST', '/admin/backends', { url: 'http://127.0.0.1:9', weight: 'heavy' }, 'weight'],
      ['PATCH', '/admin/backends/b1', { state: 'asleep' }, 'state'],
      ['PATCH', '/admin/backends/b1', { weight: -3 }, 'weight'],
    ];
    for (const [method, path, body, field] of cases) {
      const res = await call(lb.url, method, path, body);
      assert.equal(res.status, 400, `${method} ${JSON.stringify(body)}: ${res.body}`);
      assert.equal(res.json.code, 'FULCRUM_ERR_ADMIN_INVALID_BODY');
      assert.ok((res.json.problems as { path: string }[]).some((p) => p.path === field), `${JSON.stringify(body)} should name ${field}: ${res.body}`);
      assert.match(res.json.error as string, new RegExp(field));
    }
    const unknownKey = await call(lb.url, 'POST', '/admin/backends', { url: 'http://127.0.0.1:9', colour: 'red' });
    assert.equal(unknownKey.status, 400);
    assert.match(unknownKey.json.error as string, /unknown key "colour"/);
    assert.equal((await call(lb.url, 'POST', '/admin/backends', '{"url": ')).status, 400);
    assert.equal((await call(lb.url, 'POST', '/admin/backends', '[1, 2]')).status, 400);
    assert.match((await call(lb.url, 'PATCH', '/admin/backends/b1', {})).json.error as string, /weight.*state/);
    assert.equal((await call(lb.url, 'DELETE', '/admin/backends/b1?drain=maybe')).status, 400);
    const dup = await call(lb.url, 'POST', '/admin/backends', { url: urlOf(backends[0]!) });
    assert.equal(dup.status, 409);
    assert.equal(dup.json.code, 'FULCRUM_ERR_ADMIN_CONFLICT');
    // Nothing of the above changed the pool.
    assert.deepEqual(lb.balancer.pool.snapshot.map((b) => [b.id, b.weight, b.state.reasons & 12]), [['b1', 1, 0], ['b2', 1, 0]]);
  });

  test('PATCH weight and state: a draining backend gets no new requests, enabled gets them again; changes are logged with who/what', async () => {
    const weighted = await call(lb.url, 'PATCH', '/admin/backends/b2', { weight: 3 });
    assert.equal(weighted.status, 200);
    assert.equal(weighted.json.weight, 3);
    assert.equal(lb.balancer.pool.get('b2')!.weight, 3);

    const drained = await call(lb.url, 'PATCH', '/admin/backends/b1', { state: 'draining' });
    assert.equal(drained.status, 200);
    assert.equal(drained.json.state, 'draining');
    assert.equal(drained.json.healthy, false);
    assert.deepEqual(drained.json.reasons, ['draining']);
    const before = backends[0]!.requests.get('/') ?? 0;
    for (let i = 0; i < 8; i++) {
      const res = await request(`${lb.url}/`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-backend'], 'Routes 2');
    }
    assert.equal(backends[0]!.requests.get('/') ?? 0, before);
    assert.ok(lb.balancer.events.some((e) => e.backend === 'b1' && !e.healthy && /draining by admin-api 127\.0\.0\.1/.test(e.detail ?? '')));

    const enabled = await call(lb.url, 'PATCH', '/admin/backends/b1', { state: 'enabled' });
    assert.equal(enabled.json.state, 'enabled');
    assert.equal(enabled.json.healthy, true);
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add(String((await request(`${lb.url}/`)).headers['x-backend']));
    assert.ok(seen.has('Routes 1'), `b1 is back in rotation: ${[...seen].join(', ')}`);
    await call(lb.url, 'PATCH', '/admin/backends/b2', { weight: 1 });

    const entries = log.lines.filter((l) => l.actor === 'admin-api 127.0.0.1');
    assert.ok(entries.some((l) => l.op === 'weight' && l.backend === 'b2' && l.from === 1 && l.to === 3));
    assert.ok(entries.some((l) => l.op === 'state' && l.backend === 'b1' && l.state === 'draining'));
    assert.ok(entries.some((l) => l.op === 'state' && l.backend === 'b1' && l.state === 'enabled'));
  });

  test('POST adds a backend that is health-checked, enters rotation, gets traffic, and is checked passively too', async () => {
    const added = await call(lb.url, 'POST', '/admin/backends', { url: urlOf(extra), weight: 1 });
    assert.equal(added.status, 201, added.body);
    const id = added.json.id as string;
    assert.equal(added.headers.location, `/admin/backends/${id}`);
    // It waits for its first health check before taking traffic.
    assert.deepEqual(added.json.reasons, ['initially-down']);
    await waitFor(() => (extra.requests.get('/health') ?? 0) > 0, 5000);
    await waitFor(() => lb.balancer.pool.get(id)?.healthy === true, 5000);
    const hits = new Set<string>();
    for (let i = 0; i < 6; i++) hits.add(String((await request(`${lb.url}/`)).headers['x-backend']));
    assert.ok(hits.has('Added'), `the added backend got traffic: ${[...hits].join(', ')}`);
    // Its active checks keep running: a failing /health takes it out.
    extra.failHealth(true);
    await waitFor(() => (lb.balancer.pool.get(id)?.state.reasons ?? 0) !== 0, 5000);
    const view = (await call(lb.url, 'GET', `/admin/backends/${id}`)).json;
    assert.deepEqual(view.reasons, ['active-check-failed']);
    extra.failHealth(false);
    await waitFor(() => lb.balancer.pool.get(id)?.healthy === true, 5000);
    assert.ok(log.lines.some((l) => l.op === 'add' && l.backend === id && l.actor === 'admin-api 127.0.0.1'));

    // Passive checks: a backend answering 500 is ejected by outlier detection.
    const bad = await call(lb.url, 'POST', '/admin/backends', { url: urlOf(failing), healthy: true });
    assert.equal(bad.status, 201);
    const badId = bad.json.id as string;
    for (let i = 0; i < 30 && (lb.balancer.pool.get(badId)!.state.reasons & 2) === 0; i++) await request(`${lb.url}/`);
    assert.ok(((await call(lb.url, 'GET', `/admin/backends/${badId}`)).json.reasons as string[]).includes('ejected'));
    assert.equal((await call(lb.url, 'DELETE', `/admin/backends/${badId}?drain=false`)).status, 200);
  });

  test('DELETE without requests in flight removes at once; the removed backend gets no more traffic', async () => {
    const id = lb.balancer.pool.findByUrl(urlOf(extra))!.id;
    const res = await call(lb.url, 'DELETE', `/admin/backends/${id}`);
    assert.equal(res.status, 200);
    assert.equal(res.json.removed, true);
    assert.equal((await call(lb.url, 'GET', `/admin/backends/${id}`)).status, 404);
    const before = extra.requests.get('/') ?? 0;
    for (let i = 0; i < 8; i++) assert.notEqual((await request(`${lb.url}/`)).headers['x-backend'], 'Added');
    assert.equal(extra.requests.get('/') ?? 0, before);
    assert.deepEqual((await backendsOf(lb.url)).map((b) => b.id), ['b1', 'b2']);
  });

  test('DELETE with a slow request in flight drains: no new requests, the request completes, then the backend leaves', async () => {
    const slow = request(`${lb.url}/delay?ms=1500`);
    let busy: BackendView | undefined;
    await waitFor(async () => {
      busy = (await backendsOf(lb.url)).find((b) => b.activeConnections === 1);
      return busy !== undefined;
    }, 5000);
    const other = busy!.id === 'b1' ? 'Routes 2' : 'Routes 1';
    const res = await call(lb.url, 'DELETE', `/admin/backends/${busy!.id}`);
    assert.equal(res.status, 202, res.body);
    assert.deepEqual([res.json.removed, res.json.draining, res.json.inflight], [false, true, 1]);
    const during = (await backendsOf(lb.url)).find((b) => b.id === busy!.id);
    assert.ok(during !== undefined, 'still listed while draining');
    assert.equal(during.state, 'draining');
    assert.equal(during.removeWhenDrained, true);
    for (let i = 0; i < 6; i++) assert.equal((await request(`${lb.url}/`)).headers['x-backend'], other);
    const done = await slow;
    assert.equal(done.status, 200);
    assert.match(done.body, /after 1500ms/);
    await waitFor(async () => !(await backendsOf(lb.url)).some((b) => b.id === busy!.id), 5000);
    assert.ok(log.lines.some((l) => l.op === 'remove' && l.backend === busy!.id && l.drain === true && l.removed === false));
    assert.ok(log.lines.some((l) => l.msg === 'drained backend removed' && l.backend === busy!.id));
  });
});

describe('admin API: config and the dedicated admin listener', () => {
  let backend: DemoBackend;
  let lb: TestBalancer;
  before(async () => {
    [backend] = await startBackends(1, 'Separate');
    lb = await startBalancer({
      backends: [urlOf(backend!)],
      healthCheck: { enabled: false, headers: { Authorization: 'Basic c2VjcmV0LWhlYWRlcg==' } },
      admin: { port: 0, host: '127.0.0.1', token: TOKEN },
      sticky: { secret: 'sticky-secret-value-42' },
      state: { store: 'memory', redis: { url: 'redis://user:redis-password-99@127.0.0.1:6399/0' } },
    });
  });
  after(async () => {
    await lb.close();
    await backend.close();
  });

  test('GET /admin/config is the effective config with secrets redacted', async () => {
    const admin = `http://127.0.0.1:${lb.balancer.adminListener!.port}`;
    const res = await call(admin, 'GET', '/admin/config');
    assert.equal(res.status, 200);
    for (const secret of [TOKEN, 'sticky-secret-value-42', 'redis-password-99', 'c2VjcmV0LWhlYWRlcg==']) assert.ok(!res.body.includes(secret), `${secret} leaked`);
    const config = res.json.config as { admin: Json; sticky: Json; state: { redis: Json }; healthCheck: { headers: Json; enabled: boolean }; backends: Json[] };
    assert.equal(config.admin.token, '[redacted]');
    assert.equal(config.sticky.secret, '[redacted]');
    assert.equal(config.state.redis.url, 'redis://user:redacted@127.0.0.1:6399/0');
    assert.equal(config.healthCheck.headers.Authorization, '[redacted]');
    assert.equal(config.healthCheck.enabled, false);
    assert.equal(config.backends[0]!.url, urlOf(backend));
  });

  test('with admin.port, /admin and /dashboard live on the admin listener and the main port proxies every path', async () => {
    const admin = `http://127.0.0.1:${lb.balancer.adminListener!.port}`;
    assert.equal((await call(admin, 'GET', '/admin/backends')).status, 200);
    assert.equal((await call(admin, 'GET', '/dashboard', undefined, {})).status, 200);
    const proxied = await call(lb.url, 'GET', '/admin/backends');
    assert.equal(proxied.status, 404);
    assert.equal(proxied.headers['x-backend'], 'Separate 1');
    assert.equal((await call(lb.url, 'GET', '/dashboard', undefined, {})).headers['x-backend'], 'Separate 1');
  });
});

describe('admin API per service', () => {
  let lb: TestBalancer;
  let web: DemoBackend[];
  let api: DemoBackend[];
  let spare: DemoBackend[];

  before(async () => {
    web = await startBackends(1, 'Web');
    api = await startBackends(2, 'Api');
    spare = await startBackends(1, 'Spare');
    lb = await startBalancer({
      services: {
        web: { backends: web.map(urlOf), healthCheck: { enabled: false } },
        api: { backends: api.map(urlOf), algorithm: 'least-connections', healthCheck: { enabled: false } },
      },
      routes: [{ name: 'api', match: { hosts: ['api.test'] }, service: 'api' }, { name: 'site', service: 'web' }],
      admin: { token: TOKEN },
    });
  });
  after(async () => {
    await lb.close();
    await Promise.all([...web, ...api, ...spare].map((b) => b.close()));
  });

  test('GET /admin/services lists every service with its policy, health and routes; GET /admin/services/{name} adds its config', async () => {
    const list = await call(lb.url, 'GET', '/admin/services');
    assert.equal(list.status, 200, list.body);
    const services = list.json.services as { name: string; algorithm: string; healthyBackends: number; backends: number; routes: string[]; default: boolean }[];
    assert.deepEqual(services.map((s) => [s.name, s.algorithm, s.healthyBackends, s.backends, s.routes.join(',')]).sort(), [
      ['api', 'least-connections', 2, 2, 'api'], ['web', 'round-robin', 1, 1, 'site'],
    ]);
    const one = await call(lb.url, 'GET', '/admin/services/api');
    assert.equal(one.status, 200);
    assert.equal((one.json.config as { algorithm: string }).algorithm, 'least-connections');
    assert.equal((one.json.backends as unknown[]).length, 2);
    const missing = await call(lb.url, 'GET', '/admin/services/nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.json.code, 'FULCRUM_ERR_ADMIN_NOT_FOUND');
    assert.equal((await call(lb.url, 'POST', '/admin/services')).status, 405);
  });

  test('a named service’s backends are added, changed and removed under /admin/services/{name}/backends, and traffic follows', async () => {
    const base = '/admin/services/api/backends';
    const added = await call(lb.url, 'POST', base, { url: urlOf(spare[0]!), id: 'spare' });
    assert.equal(added.status, 201, added.body);
    assert.equal(added.headers.location, `${base}/spare`);
    assert.equal(added.json.service, 'api');
    assert.equal(lb.balancer.services.get('api')!.pool.get('spare')?.url.href, new URL(urlOf(spare[0]!)).href);
    assert.equal(lb.balancer.services.get('web')!.pool.get('spare'), undefined, 'only that service gets it');

    // The other api backends are drained: only the added one serves the route to api.
    for (const b of lb.balancer.services.get('api')!.pool.snapshot.filter((x) => x.id !== 'spare')) {
      const patched = await call(lb.url, 'PATCH', `${base}/${b.id}`, { state: 'disabled' });
      assert.equal(patched.status, 200, patched.body);
    }
    for (let i = 0; i < 3; i++) assert.equal((await request(`${lb.url}/`, { headers: { host: 'api.test' } })).headers['x-backend'], 'Spare 1');
    assert.equal((await request(`${lb.url}/`)).headers['x-backend'], 'Web 1');

    const listed = await call(lb.url, 'GET', base);
    assert.deepEqual((listed.json.backends as BackendView[]).map((b) => `${b.id}:${b.state}`).sort(), ['b1:disabled', 'b2:disabled', 'spare:enabled']);
    const notThere = await call(lb.url, 'GET', '/admin/services/web/backends/spare');
    assert.equal(notThere.status, 404);
    assert.match(String(notThere.json.error), /service "web"/);
    const removed = await call(lb.url, 'DELETE', `${base}/spare?drain=false`);
    assert.equal(removed.status, 200, removed.body);
    assert.equal(lb.balancer.services.get('api')!.pool.get('spare'), undefined);
  });

  test('/admin/backends is the default service’s (the first configured when none is named default)', async () => {
    const res = await call(lb.url, 'GET', '/admin/backends');
    assert.equal(res.status, 200);
    assert.equal(res.json.service, lb.balancer.services.default.name);
  });
});
