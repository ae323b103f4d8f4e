/**
 * The dashboard's server side: the page and its bundled assets (strict
 * CSP, ETag revalidation), the WebSocket feed (history and snapshot on
 * connect, the same tick to every page, cross-origin pages refused), and
 * the live figures computed from real traffic.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startBalancer, request, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { startBackends, urlOf, type DemoBackend } from '../helpers/backends.js';
import type { DashboardSnapshot } from '../../src/admin/dashboard/snapshot.js';
import type { ChartPoint } from '../../src/admin/dashboard/sampler.js';

interface FeedMessage { type: 'hello' | 'tick'; history?: ChartPoint[]; point?: ChartPoint | null; snapshot: DashboardSnapshot }

function openFeed(port: number, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; messages: FeedMessage[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/dashboard/ws`, { headers });
    const messages: FeedMessage[] = [];
    ws.on('message', (data) => messages.push(JSON.parse(data.toString()) as FeedMessage));
    ws.once('open', () => resolve({ ws, messages }));
    ws.once('error', reject);
  });
}

describe('dashboard: page, assets and live feed', () => {
  let backends: DemoBackend[];
  let lb: TestBalancer;
  before(async () => {
    backends = await startBackends(2, 'Dash');
    lb = await startBalancer({
      backends: backends.map((b) => urlOf(b)),
      healthCheck: { enabled: false },
      outlierDetection: { enabled: false },
      retries: { attempts: 0 },
    });
  });
  after(async () => {
    await lb.close();
    await Promise.all(backends.map((b) => b.close()));
  });

  test('the page and its assets are served from the package with a strict CSP; nothing comes from elsewhere', async () => {
    const page = await request(`${lb.url}/dashboard`);
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    // Every referenced asset is local and served.
    const refs = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(refs.length >= 3);
    for (const ref of refs) {
      assert.ok(ref.startsWith('/dashboard/assets/'), `local asset: ${ref}`);
      const res = await request(`${lb.url}${ref}`);
      assert.equal(res.status, 200, ref);
      assert.ok(res.body.length > 0);
      const again = await request(`${lb.url}${ref}`, { headers: { 'if-none-match': String(res.headers.etag) } });
      assert.equal(again.status, 304, ref);
    }
    assert.doesNotMatch(page.body, /https?:\/\//);
    const js = await request(`${lb.url}/dashboard/assets/dashboard.js`);
    assert.doesNotMatch(js.body, /https?:\/\/(?!www\.w3\.org)/, 'no CDN or remote URL in the script');
    assert.doesNotThrow(() => new Function(js.body), 'the script parses');
    assert.equal((await request(`${lb.url}/dashboard/assets/nope.js`)).status, 404);
    assert.equal((await request(`${lb.url}/dashboard/ws`)).status, 426);
    assert.equal((await request(`${lb.url}/dashboard/`)).headers.location, '/dashboard');
    assert.equal((await request(`${lb.url}/dashboard`, { method: 'POST' })).status, 405);
  });

  test('the feed greets with history and a snapshot, then pushes the same tick to every page with live figures', async () => {
    const a = await openFeed(lb.port);
    const b = await openFeed(lb.port);
    try {
      await waitFor(() => a.messages.length > 0 && b.messages.length > 0, 5000);
      const hello = a.messages[0]!;
      assert.equal(hello.type, 'hello');
      assert.ok(Array.isArray(hello.history));
      assert.equal(hello.snapshot.algorithm, 'round-robin');
      assert.deepEqual(hello.snapshot.backends.map((x) => x.id), ['b1', 'b2']);
      assert.equal(hello.snapshot.cluster, null);

      // Traffic: half of it 503s, in pairs so that round-robin gives each backend both kinds.
      for (let i = 0; i < 5; i++) {
        for (const path of ['/', '/', '/status/503', '/status/503']) {
          assert.equal((await request(`${lb.url}${path}`)).status, path === '/' ? 200 : 503);
        }
      }
      const live = (m: FeedMessage): boolean => m.type === 'tick' && m.snapshot.totals.requests >= 20 && m.snapshot.totals.rps > 0;
      await waitFor(() => a.messages.some(live) && b.messages.some(live), 5000);
      const tick = a.messages.find(live)!;
      const totals = tick.snapshot.totals;
      assert.equal(totals.errorRate, 0.5);
      assert.ok(totals.p50 !== null && totals.p50 > 0);
      assert.ok(totals.p99 !== null && totals.p99 >= totals.p50);
      for (const be of tick.snapshot.backends) {
        assert.equal(be.requests, 10);
        assert.ok(be.rps > 0);
        assert.equal(be.errorRate, 0.5);
        assert.equal(be.healthy, true);
      }
      // The same snapshot went to both pages (serialized once per tick).
      const tA = a.messages.filter((m) => m.type === 'tick').map((m) => m.snapshot.t);
      const tB = b.messages.filter((m) => m.type === 'tick').map((m) => m.snapshot.t);
      assert.ok(tA.some((t) => tB.includes(t)));
      // Chart points arrive and keep their order.
      await waitFor(() => a.messages.some((m) => m.type === 'tick' && m.point != null && m.point.rps > 0), 5000);
      const points = a.messages.filter((m) => m.type === 'tick' && m.point != null).map((m) => m.point!.t);
      assert.deepEqual(points, [...points].sort((x, y) => x - y));
      // A health change shows in the next tick, with its reason and an event.
      lb.balancer.ops.setState('b2', 'disabled', 'admin', 'test');
      lb.balancer.recordEvent(lb.balancer.pool.get('b2')!, 'disabled by test');
      const seen = a.messages.length;
      await waitFor(() => a.messages.slice(seen).some((m) => m.snapshot.backends.find((x) => x.id === 'b2')?.state === 'disabled'), 5000);
      const after = a.messages[a.messages.length - 1]!.snapshot;
      assert.deepEqual(after.backends.find((x) => x.id === 'b2')!.reasons, ['disabled']);
      assert.equal(after.totals.healthy, 1);
      assert.equal(after.events[0]!.backend, 'b2');
      lb.balancer.ops.setState('b2', 'enabled', 'admin', 'test');
    } finally {
      a.ws.close();
      b.ws.close();
    }
  });

  test('a page of another origin is refused; one of the same origin is let in', async () => {
    await assert.rejects(openFeed(lb.port, { origin: 'http://evil.example' }), /403/);
    const same = await openFeed(lb.port, { origin: `http://127.0.0.1:${lb.port}` });
    await waitFor(() => same.messages.length > 0, 5000);
    same.ws.close();
  });
});
