/**
 * Weighted splits through real listeners and backends: the shares over
 * many requests, sticky clients, PATCH /admin/routes moving the weights
 * under load without a failed request, a side whose backends are down
 * getting nothing, /status, and two instances sharing weights through Redis.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { request, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { captureLogger } from '../helpers/logs.js';
import { countBy, startRecordingServer, type RecordingServer } from '../helpers/recording-server.js';
import { freePort } from '../helpers/backends.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import type { FulcrumConfigInput } from '../../src/index.js';

const TOKEN = 'split-test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
const off = { healthCheck: { enabled: false } };

interface Hit { status: number; servedBy: string; setCookie: string[] }

/** hit makes one request on a keep-alive agent and says who served it. */
function hit(url: string, agent: http.Agent, headers: http.OutgoingHttpHeaders = {}): Promise<Hit> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, servedBy: String(res.headers['x-served-by'] ?? 'none'), setCookie: res.headers['set-cookie'] ?? [] }));
    });
    req.on('error', reject);
  });
}

async function many(url: string, agent: http.Agent, n: number, concurrency = 8): Promise<Hit[]> {
  const out: Hit[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      next++;
      out.push(await hit(url, agent));
    }
  }));
  return out;
}

async function patchSplit(base: string, route: string, split: unknown, headers: http.OutgoingHttpHeaders = auth): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(`${base}/admin/routes/${route}`, { method: 'PATCH', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ split }) });
  return { status: res.status, body: JSON.parse(res.body) as Record<string, unknown> };
}

describe('traffic split', () => {
  let v1: RecordingServer;
  let v2: RecordingServer;
  let tb: TestBalancer;
  let agent: http.Agent;
  let input: FulcrumConfigInput;
  const logs = captureLogger();

  before(async () => {
    v1 = await startRecordingServer('v1');
    v2 = await startRecordingServer('v2');
    agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    tb = await startBalancer(input = {
      listen: { host: '127.0.0.1', port: 0 },
      logLevel: 'silent',
      accessLog: false,
      admin: { token: TOKEN },
      services: { v1: { backends: [v1.url], ...off }, v2: { backends: [v2.url], ...off } },
      routes: [
        { name: 'sticky', match: { path: { prefix: '/sticky' } }, split: [{ service: 'v1', weight: 50 }, { service: 'v2', weight: 50 }], sticky: true },
        { name: 'patched', match: { path: { prefix: '/patched' } }, split: [{ service: 'v1', weight: 90 }, { service: 'v2', weight: 10 }] },
        { name: 'plain', match: { path: { prefix: '/plain' } }, service: 'v1' },
        { name: 'canary', split: [{ service: 'v1', weight: 90 }, { service: 'v2', weight: 10 }] },
      ],
    }, { logger: logs.logger });
  });

  after(async () => {
    agent.destroy();
    await tb.close();
    await v1.close();
    await v2.close();
  });

  test('a 90/10 split sends 10% (+-3 points) of 2,000 requests to the canary', async () => {
    const hits = await many(`${tb.url}/items`, agent, 2000);
    assert.ok(hits.every((h) => h.status === 200));
    const counts = countBy(hits.map((h) => h.servedBy));
    const share = (counts.v2 ?? 0) / 2000;
    assert.ok(Math.abs(share - 0.1) <= 0.03, `v2 got ${(share * 100).toFixed(1)}%`);
    assert.equal((counts.v1 ?? 0) + (counts.v2 ?? 0), 2000);
    // No sticky cookie where the split is not sticky.
    assert.ok(hits.every((h) => h.setCookie.length === 0));
  });

  test('/status shows the weights and how many requests each side served', async () => {
    const status = JSON.parse((await request(`${tb.url}/status`)).body) as { routes: { name: string; split?: { service: string; weight: number; served: number }[] }[] };
    const canary = status.routes.find((r) => r.name === 'canary')!;
    assert.deepEqual(canary.split!.map((s) => [s.service, s.weight]), [['v1', 90], ['v2', 10]]);
    const served = canary.split!.reduce((n, s) => n + s.served, 0);
    assert.ok(served >= 2000, `served ${served}`);
    assert.ok(canary.split![1]!.served >= 140 && canary.split![1]!.served <= 260);
    assert.equal(status.routes.find((r) => r.name === 'plain')!.split, undefined);
  });

  test('a sticky split keeps each of 50 clients on the side it first got', async () => {
    const sides: string[] = [];
    for (let client = 0; client < 50; client++) {
      const first = await hit(`${tb.url}/sticky/a`, agent);
      assert.equal(first.status, 200);
      const cookie = first.setCookie.find((c) => c.startsWith('fulcrum_split_sticky='));
      assert.ok(cookie !== undefined, `client ${client}: no split cookie in ${JSON.stringify(first.setCookie)}`);
      assert.match(cookie, /HttpOnly/);
      const pair = cookie.split(';')[0]!;
      sides.push(first.servedBy);
      for (let i = 0; i < 5; i++) {
        const again = await hit(`${tb.url}/sticky/b${i}`, agent, { cookie: `other=1; ${pair}` });
        assert.equal(again.servedBy, first.servedBy, `client ${client} moved`);
        // Already pinned: no cookie again.
        assert.equal(again.setCookie.length, 0);
      }
    }
    const counts = countBy(sides);
    // Both sides got clients (50/50 weights): the cookie, not a single side, keeps them.
    assert.ok((counts.v1 ?? 0) >= 10 && (counts.v2 ?? 0) >= 10, JSON.stringify(counts));
  });

  test('a forged or stale split cookie is ignored', async () => {
    const res = await hit(`${tb.url}/sticky/x`, agent, { cookie: 'fulcrum_split_sticky=not-a-token' });
    assert.equal(res.status, 200);
    assert.equal(res.setCookie.length, 1);
  });

  test('PATCH /admin/routes/{name} moves the weights under load without a failed request, and is logged with who asked', async () => {
    let running = true;
    const during: Hit[] = [];
    const load = Promise.all(Array.from({ length: 4 }, async () => {
      while (running) during.push(await hit(`${tb.url}/patched/x`, agent));
    }));
    await new Promise((r) => setTimeout(r, 100));
    const patched = await patchSplit(tb.url, 'patched', [{ service: 'v1', weight: 10 }, { service: 'v2', weight: 90 }]);
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.deepEqual((patched.body.split as { service: string; weight: number }[]).map((s) => [s.service, s.weight]), [['v1', 10], ['v2', 90]]);
    await new Promise((r) => setTimeout(r, 100));
    running = false;
    await load;
    assert.ok(during.length > 20);
    assert.ok(during.every((h) => h.status === 200), `failed: ${during.filter((h) => h.status !== 200).length}`);
    const after = await many(`${tb.url}/patched/y`, agent, 500);
    const share = (countBy(after.map((h) => h.servedBy)).v2 ?? 0) / 500;
    assert.ok(Math.abs(share - 0.9) <= 0.03, `v2 got ${share}`);
    const line = logs.find('admin: split weights changed')[0];
    assert.ok(line !== undefined);
    assert.match(String(line.actor), /^admin-api 127\.0\.0\.1$/);
    assert.equal(line.route, 'patched');
    const listed = JSON.parse((await request(`${tb.url}/admin/routes`, { headers: auth })).body) as { routes: { name: string; splitChanged?: { by: string } | null }[] };
    assert.deepEqual(listed.routes.map((r) => r.name), ['sticky', 'patched', 'plain', 'canary']);
    assert.match(listed.routes[1]!.splitChanged!.by, /admin-api/);
  });

  test('PATCH answers clear errors and changes nothing on bad input', async () => {
    const noAuth = await patchSplit(tb.url, 'canary', [{ service: 'v1', weight: 1 }], {});
    assert.equal(noAuth.status, 401);
    const unknown = await patchSplit(tb.url, 'canary', [{ service: 'v1', weight: 50 }, { service: 'v3', weight: 50 }]);
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.code, 'FULCRUM_ERR_ADMIN_INVALID_BODY');
    assert.match(String(unknown.body.error), /split\.1\.service: no service "v3"/);
    const negative = await patchSplit(tb.url, 'canary', [{ service: 'v1', weight: -1 }]);
    assert.equal(negative.status, 400);
    assert.match(String(negative.body.error), /split\.0\.weight: expected a weight of 0 or more/);
    const zero = await patchSplit(tb.url, 'canary', [{ service: 'v1', weight: 0 }, { service: 'v2', weight: 0 }]);
    assert.equal(zero.status, 400);
    assert.match(String(zero.body.error), /at least one side with a weight above 0/);
    const twice = await patchSplit(tb.url, 'canary', [{ service: 'v1', weight: 1 }, { service: 'v1', weight: 2 }]);
    assert.match(String(twice.body.error), /split\.1\.service: "v1" appears twice/);
    const missing = await patchSplit(tb.url, 'nope', [{ service: 'v1', weight: 1 }]);
    assert.equal(missing.status, 404);
    const notSplit = await patchSplit(tb.url, 'plain', [{ service: 'v1', weight: 1 }]);
    assert.equal(notSplit.status, 409);
    assert.match(String(notSplit.body.error), /route "plain" has no split \(its action is service v1\)/);
    const route = JSON.parse((await request(`${tb.url}/admin/routes/canary`, { headers: auth })).body) as { split: { weight: number }[] };
    assert.deepEqual(route.split.map((s) => s.weight), [90, 10]);
  });

  test('a reload keeps run-time weights unless the file changes that split', async () => {
    await patchSplit(tb.url, 'canary', [{ service: 'v1', weight: 70 }, { service: 'v2', weight: 30 }]);
    const kept = await tb.balancer.reload(structuredClone(input));
    assert.ok(kept.ok, JSON.stringify(kept));
    const weights = (): number[] => tb.balancer.routes.get('canary')!.split!.sides.map((s) => s.weight);
    assert.deepEqual(weights(), [70, 30]);
    const changed = structuredClone(input);
    changed.routes!.find((r) => r.name === 'canary')!.split = [{ service: 'v1', weight: 99 }, { service: 'v2', weight: 1 }];
    assert.ok((await tb.balancer.reload(changed)).ok);
    assert.deepEqual(weights(), [99, 1]);
  });
});

describe('traffic split: a side without a healthy backend', () => {
  test('gets no traffic, and no request fails', async () => {
    const up = await startRecordingServer('up');
    const dead = `http://127.0.0.1:${await freePort()}`;
    const fast = { healthCheck: { interval: '50ms', timeout: '1s', unhealthyThreshold: 1, healthyThreshold: 1 } };
    const tb = await startBalancer({
      // Only the dead side is checked: a check of the live side timing out on a loaded machine must not take it out.
      services: { up: { backends: [up.url], ...off }, down: { backends: [dead], ...fast } },
      routes: [{ name: 'half', split: [{ service: 'up', weight: 50 }, { service: 'down', weight: 50 }] }],
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    try {
      await waitFor(() => tb.balancer.services.get('down')!.canServe() === 'no-healthy-backend', 3000);
      const hits = await many(`${tb.url}/x`, agent, 200, 4);
      assert.deepEqual(countBy(hits.map((h) => String(h.status))), { 200: 200 });
      assert.deepEqual(countBy(hits.map((h) => h.servedBy)), { up: 200 });
      const sides = tb.balancer.routes.get('half')!.split!.sides;
      assert.equal(sides.find((s) => s.service.name === 'down')!.served, 0);
    } finally {
      agent.destroy();
      await tb.close();
      await up.close();
    }
  });
});

describe('traffic split: shared through Redis', () => {
  let redis: TestRedis;
  before(async () => { redis = await startRedis(); });
  after(async () => { await redis.close(); });

  test('two instances converge on weights set on one of them within 2 s', async () => {
    const v1 = await startRecordingServer('v1');
    const v2 = await startRecordingServer('v2');
    const config = {
      admin: { token: TOKEN },
      state: { store: 'redis' as const, redis: { url: redis.url, keyPrefix: `split-${process.pid}-${Date.now()}:` } },
      services: { v1: { backends: [v1.url], ...off }, v2: { backends: [v2.url], ...off } },
      routes: [{ name: 'canary', split: [{ service: 'v1', weight: 99 }, { service: 'v2', weight: 1 }] }],
    };
    const a = await startBalancer(config);
    const b = await startBalancer(config);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    try {
      const weightsOf = async (tb: TestBalancer): Promise<number[]> => {
        const status = JSON.parse((await request(`${tb.url}/status`)).body) as { routes: { name: string; split: { weight: number }[] }[] };
        return status.routes.find((r) => r.name === 'canary')!.split.map((s) => s.weight);
      };
      await waitFor(() => a.balancer.status().store !== undefined, 2000).catch(() => undefined);
      const res = await patchSplit(a.url, 'canary', [{ service: 'v1', weight: 50 }, { service: 'v2', weight: 50 }]);
      assert.equal(res.status, 200);
      const started = Date.now();
      await waitFor(async () => JSON.stringify(await weightsOf(b)) === '[50,50]', 2000, 20);
      assert.ok(Date.now() - started <= 2000);
      // B now serves the new shares too.
      const hits = await many(`${b.url}/x`, agent, 200, 4);
      const counts = countBy(hits.map((h) => h.servedBy));
      assert.equal(counts.v1, 100);
      assert.equal(counts.v2, 100);
      // A third instance started later reads the stored weights.
      const c = await startBalancer(config);
      try {
        await waitFor(async () => JSON.stringify(await weightsOf(c)) === '[50,50]', 2000, 20);
      } finally {
        await c.close();
      }
    } finally {
      agent.destroy();
      await a.close();
      await b.close();
      await v1.close();
      await v2.close();
    }
  });
});
