/**
 * Named services on instances sharing one Redis: each service's health,
 * run-time backend changes and cluster counters are shared with the same
 * service on the other instances, and only with it, even when two services
 * list the same backend URL (with the same backend ids). Entries written by
 * the version that shared only the default service are the service
 * `default`'s, and a service a reload adds is gated on the health lease.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import type { FulcrumConfigInput } from '../../src/index.js';
import { get, request, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { status, uniquePrefix, type Status } from './redis-helpers.js';

const TOKEN = 'test-admin-token-services-0123456789';

/** A backend whose health path is /health/<service>: each service checks it apart, and each can be made to fail. */
interface ServiceBackend {
  readonly url: string;
  /** checks counts health checks by "<service> <checker>" (the checker is the x-checker header). */
  readonly checks: Map<string, number>;
  /** failing: the services whose health path answers 503. */
  readonly failing: Set<string>;
  close(): Promise<void>;
}

async function startServiceBackend(): Promise<ServiceBackend> {
  const checks = new Map<string, number>();
  const failing = new Set<string>();
  const server = http.createServer((req, res) => {
    const m = /^\/health\/([^/?]+)/.exec(req.url ?? '/');
    if (m !== null) {
      const key = `${m[1]} ${String(req.headers['x-checker'] ?? 'none')}`;
      checks.set(key, (checks.get(key) ?? 0) + 1);
      res.writeHead(failing.has(m[1]!) ? 503 : 200).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('hello');
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    checks,
    failing,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

let redis: TestRedis;
let shared: ServiceBackend;
let webOnly: ServiceBackend;
let extra: ServiceBackend;
const running = new Set<TestBalancer>();

before(async () => {
  redis = await startRedis();
  [shared, webOnly, extra] = [await startServiceBackend(), await startServiceBackend(), await startServiceBackend()];
});

after(async () => {
  await Promise.all([...running].map((b) => b.close()));
  await Promise.all([shared, webOnly, extra].map((b) => b.close()));
  await redis.close();
});

/** healthCheck of one service: its own path, fast, naming the instance that checks. */
function healthCheck(service: string, checker: string): Record<string, unknown> {
  return { path: `/health/${service}`, interval: '100ms', timeout: '1s', healthyThreshold: 1, unhealthyThreshold: 1, headers: { 'x-checker': checker } };
}

/** servicesConfig: the services named, each with its backends; /api/* goes to `api` when there is one, the rest to the first. */
function servicesConfig(keyPrefix: string, checker: string, services: Record<string, string[]>): FulcrumConfigInput {
  const names = Object.keys(services);
  return {
    services: Object.fromEntries(names.map((name) => [name, { backends: services[name]!, healthCheck: healthCheck(name, checker) }])),
    routes: [
      ...(names.includes('api') && names[0] !== 'api' ? [{ name: 'api', match: { path: { prefix: '/api/' } }, service: 'api' }] : []),
      { name: 'rest', service: names[0]! },
    ],
    admin: { token: TOKEN },
    // Reloads set the log level from the config: quiet, as startBalancer's.
    logLevel: 'silent',
    state: { store: 'redis', redis: { url: redis.url, keyPrefix }, flushInterval: '100ms' },
  } as FulcrumConfigInput;
}

async function startInstance(config: FulcrumConfigInput): Promise<TestBalancer> {
  const lb = await startBalancer(config);
  running.add(lb);
  return lb;
}

async function stopAll(lbs: readonly TestBalancer[]): Promise<void> {
  for (const lb of lbs) {
    await lb.close();
    running.delete(lb);
  }
}

async function connected(lbs: readonly TestBalancer[]): Promise<void> {
  await waitFor(async () => (await Promise.all(lbs.map((lb) => status(lb.url)))).every((s) => s.store.connected && s.cluster.instances.length === lbs.length), 10_000);
}

/** backendOf: one service's backend with that URL, as the instance has it now. */
function backendOf(lb: TestBalancer, service: string, url: string) {
  return lb.balancer.services.get(service)?.pool.findByUrl(url);
}

function stateOf(lb: TestBalancer, service: string, url: string): string | undefined {
  const s = lb.balancer.services.get(service);
  const b = s?.pool.findByUrl(url);
  return b === undefined ? undefined : String(s!.backendStatus(b).state);
}

function admin(lb: TestBalancer, method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  return request(`${lb.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

/** serviceBackend: a backend in /status under services.<name>.backends. */
function serviceBackend(s: Status, service: string, url: string): Record<string, unknown> & { clusterRequests: number; requests: number; reasons: string[]; healthy: boolean } {
  const services = s.services as Record<string, { backends: (Record<string, unknown> & { url: string })[] }>;
  const found = services[service]?.backends.find((b) => b.url === url);
  if (found === undefined) throw new Error(`no backend ${url} in service ${service}`);
  return found as unknown as ReturnType<typeof serviceBackend>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('an admin change to one service reaches that service on the other instance, not another service with the same URL', async () => {
  const prefix = uniquePrefix('svc-ops');
  const services = { web: [shared.url, webOnly.url], api: [shared.url] };
  const [a, b] = [await startInstance(servicesConfig(prefix, 'A', services)), await startInstance(servicesConfig(prefix, 'B', services))];
  await connected([a, b]);
  const id = backendOf(a, 'api', shared.url)!.id;
  assert.equal(backendOf(a, 'web', shared.url)!.id, id, 'the same id in both services');

  const weight = await admin(a, 'PATCH', `/admin/services/api/backends/${id}`, { weight: 6 });
  assert.equal(weight.status, 200, weight.body);
  await waitFor(() => backendOf(b, 'api', shared.url)?.weight === 6, 5000);
  assert.equal(backendOf(b, 'web', shared.url)!.weight, 1, "web's copy of the URL keeps its weight on B");
  assert.equal(backendOf(a, 'web', shared.url)!.weight, 1, "and on A");

  assert.equal((await admin(a, 'PATCH', `/admin/services/api/backends/${id}`, { state: 'draining' })).status, 200);
  await waitFor(() => stateOf(b, 'api', shared.url) === 'draining', 5000);
  assert.equal(stateOf(b, 'web', shared.url), 'enabled');

  const added = await admin(a, 'POST', '/admin/services/api/backends', { url: extra.url, weight: 2, healthy: true });
  assert.equal(added.status, 201, added.body);
  await waitFor(() => backendOf(b, 'api', extra.url)?.weight === 2, 5000);
  assert.equal(backendOf(b, 'api', extra.url)!.id, backendOf(a, 'api', extra.url)!.id, 'the added backend keeps its id');
  assert.equal(backendOf(b, 'web', extra.url), undefined, 'not added to web');

  const removed = await admin(a, 'DELETE', `/admin/services/api/backends/${id}?drain=false`);
  assert.equal(removed.status, 200, removed.body);
  await waitFor(() => backendOf(b, 'api', shared.url) === undefined, 5000);
  assert.ok(backendOf(b, 'web', shared.url) !== undefined, "web's copy of the URL stays on B");
  assert.ok(backendOf(a, 'web', shared.url) !== undefined, 'and on A');

  // A change to web's copy of the URL is web's alone (and is stored apart from api's removal).
  assert.equal((await admin(b, 'PATCH', `/admin/services/web/backends/${id}`, { weight: 3 })).status, 200);
  await waitFor(() => backendOf(a, 'web', shared.url)?.weight === 3, 5000);
  assert.equal(backendOf(a, 'api', shared.url), undefined);

  // A reload of B rebuilds both services from the file; api's run-time changes are applied again, to api only.
  const reloaded = await b.balancer.reload(servicesConfig(prefix, 'B', services));
  assert.equal(reloaded.ok, true, JSON.stringify(reloaded));
  assert.equal(backendOf(b, 'api', shared.url), undefined, 'the removal holds after the reload');
  assert.equal(backendOf(b, 'api', extra.url)?.weight, 2, 'the addition holds after the reload');
  assert.deepEqual(b.balancer.services.get('web')!.pool.snapshot.map((x) => [x.url.href, x.weight]), [[shared.url, 3], [webOnly.url, 1]]);

  // Stored per service: a new instance gets each service's changes.
  const c = await startInstance(servicesConfig(prefix, 'C', services));
  await connected([a, b, c]);
  await waitFor(() => backendOf(c, 'api', extra.url)?.weight === 2 && backendOf(c, 'web', shared.url)?.weight === 3, 5000);
  assert.equal(backendOf(c, 'api', shared.url), undefined, "api's removal of the URL was not overwritten by web's change");
  assert.equal(backendOf(c, 'web', extra.url), undefined);
  await stopAll([a, b, c]);
});

test("the lease holder's verdict on a backend of one service is applied to that service only", async () => {
  const prefix = uniquePrefix('svc-health');
  const services = { web: [shared.url, webOnly.url], api: [shared.url] };
  const [a, b] = [await startInstance(servicesConfig(prefix, 'HA', services)), await startInstance(servicesConfig(prefix, 'HB', services))];
  await connected([a, b]);
  const hits = (checker: string): number => [...shared.checks].reduce((n, [k, v]) => (k.endsWith(` ${checker}`) ? n + v : n), 0);
  await waitFor(() => hits('HA') + hits('HB') > 0, 10_000);
  const [holder, follower, followerName] = hits('HA') > 0 ? [a, b, 'HB'] : [b, a, 'HA'];
  shared.failing.add('api');
  try {
    await waitFor(async () => serviceBackend(await status(follower.url), 'api', shared.url).reasons.includes('active-check-failed'), 10_000);
    const s = await status(follower.url);
    assert.equal(serviceBackend(s, 'web', shared.url).healthy, true, "web's copy of the URL stays healthy on the follower");
    assert.equal(serviceBackend(await status(holder.url), 'web', shared.url).healthy, true, 'and on the holder');
    assert.ok(follower.balancer.events.some((e) => e.url === shared.url && !e.healthy && /active checks run by instance/.test(e.detail ?? '')));
    assert.equal(hits(followerName), 0, 'the follower checked neither service');
  } finally {
    shared.failing.delete('api');
  }
  await waitFor(async () => serviceBackend(await status(follower.url), 'api', shared.url).healthy, 10_000);
  await stopAll([a, b]);
});

test('cluster counters count each service apart, though they share a backend URL', async () => {
  const prefix = uniquePrefix('svc-counters');
  const services = { web: [shared.url], api: [shared.url] };
  const [a, b] = [await startInstance(servicesConfig(prefix, 'CA', services)), await startInstance(servicesConfig(prefix, 'CB', services))];
  await connected([a, b]);
  for (let i = 0; i < 4; i++) await get(`${a.url}/api/x`);
  for (let i = 0; i < 3; i++) await get(`${b.url}/api/x`);
  for (let i = 0; i < 5; i++) await get(`${b.url}/web`);
  await waitFor(async () => (await Promise.all([a, b].map((lb) => status(lb.url)))).every((s) => s.cluster.totalRequests === 12), 10_000);
  for (const s of await Promise.all([a, b].map((lb) => status(lb.url)))) {
    assert.equal(serviceBackend(s, 'api', shared.url).clusterRequests, 7);
    assert.equal(serviceBackend(s, 'web', shared.url).clusterRequests, 5);
    // The top-level list too: each entry's counts are its service's.
    const top = (service: string) => s.backends.find((x) => x.url === shared.url && x.service === service)!;
    assert.equal(top('api').clusterRequests, 7);
    assert.equal(top('web').clusterRequests, 5);
    assert.equal(top('web').clusterResponses['2xx'], 5);
  }
  const own = await status(a.url);
  assert.equal(serviceBackend(own, 'api', shared.url).requests, 4, "the instance's own count is unchanged");
  await stopAll([a, b]);
});

test('entries in the format of the version that shared only the default service are applied to the service default', async () => {
  const prefix = uniquePrefix('svc-old');
  const client = new Redis(redis.url);
  try {
    const now = Date.now();
    // The previous version's fields: the bare URL, and no `service` in the JSON.
    await client.hset(`${prefix}backends`, shared.url, JSON.stringify({ url: shared.url, present: true, config: null, weight: 7, state: null, drain: false, at: now, by: 'old-instance' }));
    await client.hset(`${prefix}health`, shared.url, JSON.stringify({ url: shared.url, reasons: ['active-check-failed'], lastCheck: now, lastCheckOk: false, lastCheckError: 'status 503', since: now, by: 'old-instance' }));
    await client.hset(`${prefix}counters`, `${shared.url}|requests`, 40);
    // A service this instance does not have (a newer config elsewhere): ignored.
    await client.hset(`${prefix}backends`, `ghost ${shared.url}`, JSON.stringify({ service: 'ghost', url: shared.url, present: false, config: null, weight: null, state: null, drain: false, at: now, by: 'new-instance' }));
    // The old holder still holds the lease, so the verdict it stored stands.
    await client.set(`${prefix}lease:health`, 'old-instance', 'PX', 60_000);
    const lb = await startInstance(servicesConfig(prefix, 'OLD', { default: [shared.url], api: [shared.url] }));
    await waitFor(() => backendOf(lb, 'default', shared.url)?.weight === 7, 10_000);
    const s = await status(lb.url);
    assert.deepEqual(serviceBackend(s, 'default', shared.url).reasons, ['active-check-failed']);
    assert.equal(serviceBackend(s, 'default', shared.url).clusterRequests, 40);
    assert.equal(backendOf(lb, 'api', shared.url)?.weight, 1, "api's copy of the URL is untouched");
    assert.equal(serviceBackend(s, 'api', shared.url).healthy, true);
    assert.equal(serviceBackend(s, 'api', shared.url).clusterRequests, 0);
    assert.equal(shared.checks.get('default OLD') ?? 0, 0, 'not the holder: no checks of its own');
    await stopAll([lb]);
    assert.equal(await client.hget(`${prefix}backends`, `ghost ${shared.url}`) !== null, true, "the other service's entry is left in place");
  } finally {
    client.disconnect();
  }
});

test('a service added by a reload on both instances has its checks gated on the lease and its verdicts shared', async () => {
  const prefix = uniquePrefix('svc-reload');
  const [a, b] = [await startInstance(servicesConfig(prefix, 'RA', { web: [webOnly.url] })), await startInstance(servicesConfig(prefix, 'RB', { web: [webOnly.url] }))];
  await connected([a, b]);
  const webHits = (checker: string): number => webOnly.checks.get(`web ${checker}`) ?? 0;
  await waitFor(() => webHits('RA') + webHits('RB') > 0, 10_000);
  const [holderName, followerName] = webHits('RA') > 0 ? ['RA', 'RB'] : ['RB', 'RA'];
  const follower = followerName === 'RA' ? a : b;
  extra.failing.add('api');
  try {
    const grown = { web: [webOnly.url], api: [extra.url] };
    for (const [lb, checker] of [[a, 'RA'], [b, 'RB']] as const) {
      const result = await lb.balancer.reload(servicesConfig(prefix, checker, grown));
      assert.equal(result.ok, true, JSON.stringify(result));
    }
    await waitFor(async () => serviceBackend(await status(follower.url), 'api', extra.url).reasons.includes('active-check-failed'), 10_000);
    assert.ok((extra.checks.get(`api ${holderName}`) ?? 0) > 0, 'the holder checks the new service');
    await sleep(500); // five check intervals
    assert.equal(extra.checks.get(`api ${followerName}`) ?? 0, 0, 'the follower never checked the new service');
    assert.ok(follower.balancer.events.some((e) => e.url === extra.url && !e.healthy && /active checks run by instance/.test(e.detail ?? '')),
      "the follower took the holder's verdict");
  } finally {
    extra.failing.delete('api');
  }
  await stopAll([a, b]);
});
