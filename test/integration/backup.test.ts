/**
 * Backup backends through real listeners, health checks and backends: a
 * backup gets nothing while a primary is healthy, everything while none
 * is, and nothing new once a primary recovers (a sticky cookie naming the
 * backup included). DNS SRV records of a lower priority become backups.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { get, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { startBackends, urlOf, type DemoBackend } from '../helpers/backends.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';

/** served sends n requests and returns the x-backend header of each. */
async function served(url: string, n: number, headers: Record<string, string> = {}): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(String((await get(`${url}/`, { headers })).headers['x-backend']));
  return out;
}

const fastChecks = { interval: '100ms', timeout: '1s', healthyThreshold: 1, unhealthyThreshold: 1 };

function healthy(tb: TestBalancer, url: string): boolean {
  return tb.balancer.pool.snapshot.find((b) => b.url.href === new URL(url).href)?.healthy === true;
}

describe('backup backends', { timeout: 60_000 }, () => {
  let primaries: DemoBackend[];
  let backups: DemoBackend[];
  let tb: TestBalancer;
  before(async () => {
    primaries = await startBackends(2, 'Primary');
    backups = await startBackends(1, 'Backup');
    tb = await startBalancer({
      backends: [urlOf(primaries[0]!), { url: urlOf(backups[0]!), backup: true }, urlOf(primaries[1]!)],
      healthCheck: fastChecks,
      sticky: {},
    });
  });
  after(async () => {
    await tb.close();
    await Promise.all([...primaries, ...backups].map((b) => b.close()));
  });

  test('nothing while a primary is healthy, everything while none is, nothing new once one recovers', async () => {
    const first = await served(tb.url, 20);
    assert.deepEqual([...new Set(first)].sort(), ['Primary 1', 'Primary 2'], 'the primaries share the traffic; the backup gets none');

    const status = JSON.parse((await get(`${tb.url}/status`)).body) as { backends: { url: string; backup?: boolean }[] };
    assert.deepEqual(status.backends.map((b) => b.backup === true), [false, true, false], '/status marks the backup');

    for (const p of primaries) p.failHealth(true);
    await waitFor(() => primaries.every((p) => !healthy(tb, urlOf(p))));
    const down = await served(tb.url, 20);
    assert.deepEqual(down, Array(20).fill('Backup 1'), 'with no healthy primary, the backup takes everything');

    // A client pinned to the backup by its sticky cookie.
    const pinned = await get(`${tb.url}/`);
    const cookie = String(pinned.headers['set-cookie'] ?? '').split(';')[0]!;
    assert.match(cookie, /^fulcrum_sticky=/);

    primaries[1]!.failHealth(false);
    await waitFor(() => healthy(tb, urlOf(primaries[1]!)));
    const backupBefore = backups[0]!.requests.get('/') ?? 0;
    const recovered = await served(tb.url, 20);
    assert.deepEqual(recovered, Array(20).fill('Primary 2'), 'the recovered primary takes every new request');
    assert.deepEqual(await served(tb.url, 3, { cookie }), Array(3).fill('Primary 2'), 'a cookie naming the backup does not keep a client there');
    assert.equal(backups[0]!.requests.get('/') ?? 0, backupBefore, 'the backup got nothing new');
    primaries[0]!.failHealth(false);
  });
});

describe('DNS SRV priorities', { timeout: 60_000 }, () => {
  let dns: TestDnsServer;
  let nodes: DemoBackend[];
  before(async () => {
    dns = await startDnsServer();
    nodes = [...await startBackends(1, 'Best'), ...await startBackends(2, 'Lower')];
  });
  after(async () => {
    await Promise.all(nodes.map((b) => b.close()));
    await dns.close();
  });

  test('records of a lower priority than the best are backups: used only while no best-priority backend is healthy', async () => {
    for (const host of ['best.test', 'lower-a.test', 'lower-b.test']) dns.set(host, { A: [{ address: '127.0.0.1' }] });
    dns.set('_http._tcp.tiers.test', { SRV: [
      { target: 'best.test', port: nodes[0]!.port, priority: 10 },
      { target: 'lower-a.test', port: nodes[1]!.port, priority: 20 },
      { target: 'lower-b.test', port: nodes[2]!.port, priority: 30 },
    ] });
    const tb = await startBalancer({
      discovery: { dns: { name: '_http._tcp.tiers.test', type: 'SRV', interval: '200ms', servers: [dns.server] } },
      healthCheck: fastChecks,
    });
    try {
      await waitFor(() => tb.balancer.pool.snapshot.length === 3 && nodes.every((n) => healthy(tb, urlOf(n))));
      assert.deepEqual(await served(tb.url, 10), Array(10).fill('Best 1'));
      nodes[0]!.failHealth(true);
      await waitFor(() => !healthy(tb, urlOf(nodes[0]!)));
      assert.deepEqual([...new Set(await served(tb.url, 10))].sort(), ['Lower 1', 'Lower 2'], 'both lower priorities stand in together');
      nodes[0]!.failHealth(false);
      await waitFor(() => healthy(tb, urlOf(nodes[0]!)));
      assert.deepEqual(await served(tb.url, 10), Array(10).fill('Best 1'));
    } finally {
      await tb.close();
    }
  });
});
