/**
 * Routing through real listeners and backends: match kinds and their
 * combination, first-match order, every action, rewrites, header transforms
 * both ways (two Set-Cookie kept), allow/deny, per-route timeouts and rate
 * limits, path normalization, 404 without a route, metrics and /status per
 * route and service, validation messages, and reload keeping services.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { get, request, startBalancer, type TestBalancer } from '../helpers/balancer.js';
import { validateConfig, configWarnings } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/config-error.js';
import { normalizePath } from '../../src/routing/path.js';

interface Seen { name: string; url: string; headers: http.IncomingHttpHeaders }

async function echo(name: string, delayMs = 0): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ name, url: req.url!, headers: req.headers });
    setTimeout(() => {
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.setHeader('server', 'echo');
      res.end(JSON.stringify({ name, url: req.url }));
    }, delayMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

/** raw sends bytes as written (no client-side normalization) and returns the status line. */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    let data = '';
    socket.on('data', (c) => { data += c.toString('latin1'); if (data.includes('\r\n\r\n')) { socket.destroy(); resolve(data.split('\r\n')[0]!); } });
    socket.on('error', reject);
  });
}

describe('routing', () => {
  let web: Awaited<ReturnType<typeof echo>>;
  let api: Awaited<ReturnType<typeof echo>>;
  let slow: Awaited<ReturnType<typeof echo>>;
  let tb: TestBalancer;
  const off = { healthCheck: { enabled: false } };

  before(async () => {
    web = await echo('web');
    api = await echo('api');
    slow = await echo('slow', 400);
    tb = await startBalancer({
      services: {
        web: { backends: [web.url], ...off },
        api: { backends: [api.url], ...off },
        slow: { backends: [slow.url], ...off, retries: { attempts: 0 } },
      },
      routes: [
        { name: 'api', match: { hosts: ['api.example.com', '*.api.example.com'], path: { prefix: '/v1/' }, methods: ['GET', 'POST'] }, service: 'api',
          rewrite: { stripPrefix: '/v1' }, requestHeaders: { set: { 'X-Env': 'prod', 'X-Route': '{route}/{service}/{client_ip}' }, remove: ['X-Debug'] },
          responseHeaders: { set: { 'Strict-Transport-Security': 'max-age=31536000' }, remove: ['Server'] } },
        { name: 'canary', match: { headers: { 'x-canary': 'yes' }, query: { v: { regex: '^2' } } }, service: 'api', rewrite: { replacePrefix: { from: '/app', to: '/v2' } } },
        { name: 'flag', match: { headers: { 'x-flag': { present: true } } }, respond: { status: 418, body: 'teapot\n', headers: { 'x-why': 'flag' } } },
        { name: 'old-docs', match: { path: { regex: '^/docs/(.*)$' } }, redirect: { to: 'https://docs.example.com/{1}{query}', status: 301 } },
        { name: 'admin', match: { path: { prefix: '/private' } }, allow: ['10.0.0.0/8'], service: 'web' },
        { name: 'blocked', match: { path: { prefix: '/blocked' } }, deny: ['127.0.0.0/8'], service: 'web' },
        { name: 'slow', match: { path: { exact: '/slow' } }, service: 'slow', timeouts: { response: '100ms' } },
        { name: 'limited', match: { path: { prefix: '/limited' } }, service: 'web', rateLimit: { rate: 1, per: '10s', key: 'ip' } },
        { name: 'regex-rewrite', match: { path: { prefix: '/users' } }, service: 'web', rewrite: { regex: '^/users/(\\d+)$', replacement: '/u?id=$1' } },
        { name: 'site', match: { hosts: ['www.example.com'] }, service: 'web' },
      ],
    });
  });
  after(async () => { await tb.close(); await Promise.all([web.close(), api.close(), slow.close()]); });

  test('host (exact and one-label wildcard), path prefix on segments, method; rewrite; header transforms both ways', async () => {
    const res = await get(`${tb.url}/v1/users?x=1`, { headers: { host: 'a.api.example.com', 'x-debug': '1' } });
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).url, '/users?x=1');
    const seen = api.seen.at(-1)!;
    assert.equal(seen.headers['x-forwarded-prefix'], '/v1');
    assert.equal(seen.headers['x-env'], 'prod');
    assert.equal(seen.headers['x-route'], 'api/api/127.0.0.1');
    assert.equal(seen.headers['x-debug'], undefined);
    assert.deepEqual(res.headers['set-cookie'], ['a=1', 'b=2'], 'repeated headers are kept');
    assert.equal(res.headers['strict-transport-security'], 'max-age=31536000');
    assert.equal(res.headers.server, undefined);
    // Not matched: two labels under the wildcard, the bare domain, a method, a prefix that is not a whole segment.
    for (const [host, path, method] of [['a.b.api.example.com', '/v1/x', 'GET'], ['example.com', '/v1/x', 'GET'], ['api.example.com', '/v1/x', 'DELETE'], ['api.example.com', '/v1x', 'GET']] as const) {
      const r = await request(`${tb.url}${path}`, { method, headers: { host } });
      assert.equal(r.status, 404, `${method} ${host}${path}`);
      assert.equal(r.headers['x-fulcrum-error'], 'FULCRUM_ERR_NO_ROUTE');
      assert.match(r.body, new RegExp(`host "${host}", path "${path}"`));
    }
    const port = await get(`${tb.url}/v1/x`, { headers: { host: 'API.Example.COM:8443' } });
    assert.equal(port.status, 200, 'host matching ignores case and port');
  });

  test('headers and query conditions combine; respond and redirect actions', async () => {
    const canary = await get(`${tb.url}/app/list?v=2.1`, { headers: { 'x-canary': 'yes' } });
    assert.equal(JSON.parse(canary.body).url, '/v2/list?v=2.1');
    const notCanary = await get(`${tb.url}/app/list?v=1`, { headers: { 'x-canary': 'yes', host: 'www.example.com' } });
    assert.equal(JSON.parse(notCanary.body).name, 'web');
    const flag = await get(`${tb.url}/anything`, { headers: { 'x-flag': '' } });
    assert.deepEqual([flag.status, flag.body, flag.headers['x-why']], [418, 'teapot\n', 'flag']);
    const docs = await get(`${tb.url}/docs/a/b?q=2`);
    assert.equal(docs.status, 301);
    assert.equal(docs.headers.location, 'https://docs.example.com/a/b?q=2');
  });

  test('allow and deny lists answer 403 with FULCRUM_ERR_FORBIDDEN', async () => {
    for (const path of ['/private/x', '/blocked']) {
      const r = await get(`${tb.url}${path}`);
      assert.equal(r.status, 403, path);
      assert.equal(r.headers['x-fulcrum-error'], 'FULCRUM_ERR_FORBIDDEN');
    }
  });

  test('a route’s response timeout overrides the service’s; its rate limit is its own', async () => {
    const r = await get(`${tb.url}/slow`);
    assert.equal(r.status, 504);
    assert.equal(r.headers['x-fulcrum-error'], 'FULCRUM_ERR_RESPONSE_TIMEOUT');
    const first = await get(`${tb.url}/limited`, { headers: { host: 'www.example.com' } });
    const second = await get(`${tb.url}/limited`, { headers: { host: 'www.example.com' } });
    assert.deepEqual([first.status, second.status], [200, 429]);
    const other = await get(`${tb.url}/elsewhere`, { headers: { host: 'www.example.com' } });
    assert.equal(other.status, 200, 'other routes are not limited');
  });

  test('paths are normalized before matching and the backend gets the normalized path; bad escapes are 400', async () => {
    assert.equal(normalizePath('/public/%2e%2e/private'), '/private');
    assert.equal(normalizePath('/a/./b/../c%7e%41%2f'), '/a/c~A%2F');
    assert.equal(normalizePath('/a%zz'), null);
    assert.match(await raw(tb.port, 'GET /blocked/../private/x HTTP/1.1\r\nHost: www.example.com\r\n\r\n'), / 403 /, 'dot segments cannot walk past a rule');
    assert.match(await raw(tb.port, 'GET /x/%2e%2e/blocked HTTP/1.1\r\nHost: www.example.com\r\n\r\n'), / 403 /);
    assert.match(await raw(tb.port, 'GET /users/%zz HTTP/1.1\r\nHost: www.example.com\r\n\r\n'), / 400 /);
    const r = await raw(tb.port, 'GET /users/../%7Efoo HTTP/1.1\r\nHost: www.example.com\r\n\r\n');
    assert.match(r, / 200 /);
    assert.equal(web.seen.at(-1)!.url, '/~foo');
    const re = await get(`${tb.url}/users/42`, { headers: { host: 'www.example.com' } });
    assert.equal(JSON.parse(re.body).url, '/u?id=42');
  });

  test('metrics and /status carry routes and services', async () => {
    const status = (await get(`${tb.url}/status`)).body;
    const doc = JSON.parse(status) as { services: Record<string, unknown>; routes: { name: string; requests: number }[]; backends: { service: string }[] };
    assert.deepEqual(Object.keys(doc.services).sort(), ['api', 'slow', 'web']);
    assert.ok(doc.routes.find((r) => r.name === 'api')!.requests >= 2);
    assert.ok(doc.backends.every((b) => typeof b.service === 'string'));
    const prom = (await get(`${tb.url}/metrics`, { headers: { accept: 'text/plain' } })).body;
    assert.match(prom, /^fulcrum_requests_total\{route="api",service="api",backend="b\d+",code="200"\} \d+$/m);
    assert.match(prom, /^fulcrum_backend_up\{service="slow",backend="b\d+"\} 1$/m);
  });

  test('reload swaps the table and keeps the services that stay', async () => {
    const before = tb.balancer.services.get('web')!;
    const backend = before.pool.snapshot[0]!;
    const result = await tb.balancer.reload({
      listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent', accessLog: false,
      services: { web: { backends: [web.url], ...off }, api: { backends: [api.url], ...off } },
      routes: [{ name: 'only-api', match: { path: { prefix: '/v1' } }, service: 'api' }, { name: 'rest', service: 'web' }],
    });
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(tb.balancer.services.get('web'), before);
    assert.equal(tb.balancer.services.get('web')!.pool.snapshot[0], backend, 'the same Backend, with its state');
    assert.equal(tb.balancer.services.get('slow'), undefined);
    assert.equal(JSON.parse((await get(`${tb.url}/v1/x`)).body).name, 'api');
    assert.equal(JSON.parse((await get(`${tb.url}/docs/x`)).body).name, 'web');
    const bad = await tb.balancer.reload({ services: { web: { backends: [web.url] } }, routes: [{ service: 'nope' }] });
    assert.equal(bad.ok, false);
    assert.match(bad.problems!.join('\n'), /routes\[0\]\.service: no service "nope" \(services: web\)/);
    assert.equal(JSON.parse((await get(`${tb.url}/v1/x`)).body).name, 'api', 'a rejected reload changes nothing');
  });
});

describe('routing: configuration', () => {
  const problems = (input: unknown): string => {
    try {
      validateConfig(input);
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.message;
    }
    return '';
  };

  test('the old single-pool form is the service default with one catch-all route', () => {
    const c = validateConfig({ backends: ['http://127.0.0.1:1'], algorithm: 'leastconn', limits: { maxConnectionsPerBackend: 3 } });
    assert.deepEqual(Object.keys(c.services), ['default']);
    assert.equal(c.services.default!.algorithm, 'least-connections');
    assert.equal(c.services.default!.maxConnectionsPerBackend, 3);
    assert.deepEqual(c.routes.map((r) => [r.name, r.service]), [['default', 'default']]);
  });

  test('validation names the place', () => {
    assert.match(problems({ services: { api: { backends: [] }, web: { backends: [] } }, routes: [{ service: 'apii' }, { service: 'web' }] }),
      /routes\[0\]\.service: no service "apii" \(services: api, web\)/);
    assert.match(problems({ services: { a: {} }, routes: [{ match: { path: { regex: '(' } }, service: 'a' }] }), /routes\[0\]\.match\.path\.regex: invalid regular expression/);
    assert.match(problems({ services: { a: {} }, routes: [{ name: 'x', service: 'a' }, { name: 'x', service: 'a' }] }), /routes\[1\]\.name: duplicate route name "x"/);
    assert.match(problems({ backends: ['http://127.0.0.1:1'], services: { a: {} }, routes: [{ service: 'a' }] }), /backends: a pool key beside "services": move it into a service \(services\.a\.backends\)/);
    assert.match(problems({ services: { a: {} }, routes: [{ service: 'a', redirect: { to: '/x' } }] }), /routes\[0\]: expected one action, got service and redirect/);
    assert.match(problems({ services: { a: {}, b: {} } }), /routes: required with several services/);
    assert.match(problems({ services: { a: { algorithm: 'nope' } }, routes: [{ service: 'a' }] }), /services\.a\.algorithm: unknown algorithm "nope"/);
    const c = validateConfig({ services: { a: {}, b: {} }, routes: [{ service: 'a' }, { match: { path: { prefix: '/x' } }, service: 'a' }] });
    const warnings = configWarnings(c).map((w) => `${w.path}: ${w.message}`).join('\n');
    assert.match(warnings, /routes\[1\]: never matches: routes\[0\] before it matches every request/);
    assert.match(warnings, /services\.b: no route uses this service/);
  });
});

describe('routing: the command line', () => {
  test('fulcrum validate prints the table; fulcrum routes --test shows the route, the service and what the backend sees', async () => {
    const { execFileSync, spawnSync } = await import('node:child_process');
    const { CLI } = await import('../helpers/cli.js');
    const file = new URL('../../../examples/routing.yaml', import.meta.url).pathname;
    const table = execFileSync(process.execPath, [CLI, 'validate', '-c', file], { encoding: 'utf8' });
    assert.match(table, /^api\s+host api\.example\.com\|\*\.api\.example\.com, path prefix \/v1\/, method GET\|POST\s+service api$/m);
    assert.match(table, /^old-docs\s+path ~ \^\/docs\/\(\.\*\)\$\s+redirect 301 https:\/\/docs\.example\.com\/\{1\}$/m);
    assert.match(table, /ok\n$/);
    const hit = execFileSync(process.execPath, [CLI, 'routes', '-c', file, '--test', 'GET https://x.api.example.com/v1/users?page=2', '-H', 'X-Debug: 1'], { encoding: 'utf8' });
    assert.match(hit, /^route:\s+api$/m);
    assert.match(hit, /^action:\s+service api$/m);
    assert.match(hit, /^path:\s+\/users\?page=2$/m);
    assert.match(hit, /^ {2}X-Env: prod$/m);
    assert.match(hit, /^ {2}x-forwarded-prefix: \/v1$/m);
    assert.doesNotMatch(hit, /X-Debug/);
    const redirect = execFileSync(process.execPath, [CLI, 'routes', '-c', file, '--test', 'GET http://www.example.com/docs/a'], { encoding: 'utf8' });
    assert.match(redirect, /^action:\s+redirect 301 https:\/\/docs\.example\.com\/a$/m);
    const denied = spawnSync(process.execPath, [CLI, 'routes', '-c', file, '--test', 'GET http://www.example.com/internal/x', '--client', '10.66.1.1'], { encoding: 'utf8' });
    assert.equal(denied.status, 1);
    assert.match(denied.stdout, /no route: 403/);
  });
});
