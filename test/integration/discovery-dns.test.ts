/**
 * DNS discovery against a real DNS server (UDP on 127.0.0.1) whose records
 * change while the balancer runs: the backend set and the traffic follow.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { startBalancer, get, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { startBackends, urlOf, type DemoBackend } from '../helpers/backends.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { startLoopbackBackends, type LoopbackBackends } from '../helpers/loopback-backends.js';
import { startDemoBackend } from '../../src/demo/backend.js';
import type { FulcrumConfigInput } from '../../src/index.js';

/** names sends n requests, each on a fresh connection, and returns the x-backend header of each. */
async function names(url: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(String((await get(`${url}/`)).headers['x-backend']));
  return out;
}

function poolIds(tb: TestBalancer): string[] {
  return tb.balancer.pool.snapshot.map((b) => b.id).sort();
}

function capturingLogger(): { logger: pino.Logger; lines: { msg: string; level: number; [k: string]: unknown }[] } {
  const lines: { msg: string; level: number }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as { msg: string; level: number });
      callback();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

describe('DNS discovery', () => {
  let dns: TestDnsServer;
  let lb: LoopbackBackends;
  let fixed: DemoBackend[];
  const id = (i: number): string => `dns-${lb.address(i)}-${lb.port}`;
  const dnsConfig = (name: string, extra: Record<string, unknown> = {}): FulcrumConfigInput['discovery'] => ({
    dns: { name, type: 'A', port: lb.port, interval: '200ms', servers: [dns.server], ...extra },
  });

  before(async () => {
    dns = await startDnsServer();
    lb = await startLoopbackBackends(3);
    fixed = await startBackends(1, 'Static');
  });
  after(async () => {
    await lb.close();
    await Promise.all(fixed.map((b) => b.close()));
    await dns.close();
  });

  test('A records: backends join the static ones, follow the records, keep their state when they stay, survive a reload, and leave with the discovery section', async () => {
    dns.set('web.test', { A: [{ address: lb.address(0) }, { address: lb.address(1) }] });
    const input: FulcrumConfigInput = { backends: [urlOf(fixed[0]!)], discovery: dnsConfig('web.test') };
    const tb = await startBalancer(input);
    try {
      await waitFor(() => poolIds(tb).length === 3);
      assert.deepEqual(poolIds(tb), ['b1', id(0), id(1)].sort());
      assert.deepEqual((await names(tb.url, 6)).sort(), ['Backend 1', 'Backend 1', 'Backend 2', 'Backend 2', 'Static 1', 'Static 1']);

      const staying = tb.balancer.pool.get(id(1))!;
      const servedBefore = tb.balancer.metrics.byBackend.get(id(1))!.requests;
      assert.ok(servedBefore >= 2);
      dns.set('web.test', { A: [{ address: lb.address(1) }, { address: lb.address(2) }] });
      await waitFor(() => tb.balancer.pool.get(id(0)) === undefined && tb.balancer.pool.get(id(2)) !== undefined);
      assert.equal(tb.balancer.pool.get(id(1)), staying, 'a backend listed before and after is the same object');
      assert.equal(tb.balancer.metrics.byBackend.get(id(1))!.requests, servedBefore, 'its counters are kept');
      const after = await names(tb.url, 6);
      assert.ok(after.includes('Backend 3'));
      assert.ok(!after.includes('Backend 1'));

      const status = JSON.parse((await get(`${tb.url}/status`)).body) as { backends: { id: string }[]; discovery: { source: string; backends: string[]; lastError: string | null }[] };
      assert.deepEqual(status.backends.map((b) => b.id).sort(), ['b1', id(1), id(2)].sort());
      assert.equal(status.discovery[0]!.source, 'dns');
      assert.deepEqual(status.discovery[0]!.backends.sort(), [id(1), id(2)].sort());
      assert.equal(status.discovery[0]!.lastError, null);

      // A reload rebuilds the pool from the config; the discovered backends stay, state and all.
      const reloaded = await tb.balancer.reload({ listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent', accessLog: false, ...input });
      assert.equal(reloaded.ok, true);
      assert.deepEqual(reloaded.removed, []);
      assert.equal(tb.balancer.pool.get(id(1)), staying);

      // A reload without the discovery section takes the discovered backends out; the static one stays.
      const withoutDiscovery = await tb.balancer.reload({ listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent', accessLog: false, backends: input.backends });
      assert.equal(withoutDiscovery.ok, true);
      assert.deepEqual(poolIds(tb), ['b1']);
      const statusAfter = JSON.parse((await get(`${tb.url}/status`)).body) as { discovery: unknown[] };
      assert.deepEqual(statusAfter.discovery, []);
    } finally {
      await tb.close();
    }
  });

  test('a backend that leaves the records is drained: its in-flight request completes, then it is removed', async () => {
    dns.set('drain.test', { A: [{ address: lb.address(0) }] });
    const tb = await startBalancer({ discovery: dnsConfig('drain.test') });
    try {
      await waitFor(() => tb.balancer.pool.get(id(0)) !== undefined);
      const leaving = tb.balancer.pool.get(id(0))!;
      const slow = get(`${tb.url}/delay?ms=1500`);
      await waitFor(() => leaving.state.inflight === 1);

      dns.set('drain.test', { A: [{ address: lb.address(1) }] });
      await waitFor(() => tb.balancer.pool.get(id(1)) !== undefined);
      assert.equal(tb.balancer.pool.get(id(0)), leaving, 'kept while its request is in flight');
      const status = JSON.parse((await get(`${tb.url}/status`)).body) as { backends: { id: string; state: string }[] };
      assert.equal(status.backends.find((b) => b.id === id(0))?.state, 'draining');
      assert.equal((await get(`${tb.url}/`)).headers['x-backend'], 'Backend 2', 'new requests avoid the draining backend');

      const res = await slow;
      assert.equal(res.status, 200);
      assert.equal(res.body, 'Hello from Backend 1 after 1500ms');
      await waitFor(() => tb.balancer.pool.get(id(0)) === undefined);
    } finally {
      await tb.close();
    }
  });

  test('a failed lookup keeps the last good set, is logged once per outage, and recovery applies the new records', async () => {
    dns.set('outage.test', { A: [{ address: lb.address(0) }, { address: lb.address(1) }] });
    const { logger, lines } = capturingLogger();
    const tb = await startBalancer({ discovery: dnsConfig('outage.test') }, { logger });
    const failures = (): number => lines.filter((l) => l.msg.includes('lookup failed')).length;
    try {
      await waitFor(() => poolIds(tb).length === 2);
      dns.failing = true;
      const asked = dns.queries.get('A outage.test') ?? 0;
      await waitFor(() => (dns.queries.get('A outage.test') ?? 0) >= asked + 4, 15_000);
      assert.deepEqual(poolIds(tb), [id(0), id(1)].sort(), 'the last good set stays');
      assert.equal((await get(`${tb.url}/`)).status, 200);
      assert.equal(failures(), 1, 'one warning for the whole outage');
      const status = JSON.parse((await get(`${tb.url}/status`)).body) as { discovery: { lastError: string | null }[] };
      assert.match(status.discovery[0]!.lastError ?? '', /SERVFAIL/);

      dns.set('outage.test', { A: [{ address: lb.address(1) }] });
      dns.failing = false;
      await waitFor(() => tb.balancer.pool.get(id(0)) === undefined);
      assert.deepEqual(poolIds(tb), [id(1)]);
      assert.equal(lines.filter((l) => l.msg.includes('succeed again')).length, 1);
      assert.equal(failures(), 1);
    } finally {
      await tb.close();
    }
  });

  test('SRV records give hosts and ports; only the lowest priority is used; a short TTL is followed despite a long interval', async () => {
    const srv = [await startDemoBackend({ port: 0, host: '127.0.0.1', name: 'SRV A' }), await startDemoBackend({ port: 0, host: '127.0.0.1', name: 'SRV B' }), await startDemoBackend({ port: 0, host: '127.0.0.1', name: 'SRV C' })];
    const srvId = (i: number): string => `dns-127.0.0.1-${srv[i]!.port}`;
    for (const host of ['node-a.test', 'node-b.test', 'node-c.test']) dns.set(host, { A: [{ address: '127.0.0.1', ttl: 1 }] });
    dns.set('_http._tcp.srv.test', { SRV: [
      { target: 'node-a.test', port: srv[0]!.port, priority: 10, weight: 5 },
      { target: 'node-b.test', port: srv[1]!.port, priority: 10, weight: 1 },
      { target: 'node-c.test', port: srv[2]!.port, priority: 20, weight: 1 },
    ] });
    const tb = await startBalancer({ discovery: { dns: { name: '_http._tcp.srv.test', type: 'SRV', interval: '1h', servers: [dns.server] } } });
    try {
      await waitFor(() => poolIds(tb).length === 2);
      assert.deepEqual(poolIds(tb), [srvId(0), srvId(1)].sort());
      assert.equal(tb.balancer.pool.get(srvId(0))!.weight, 5);

      dns.set('_http._tcp.srv.test', { SRV: [
        { target: 'node-b.test', port: srv[1]!.port, priority: 10 },
        { target: 'node-c.test', port: srv[2]!.port, priority: 10 },
      ] });
      await waitFor(() => tb.balancer.pool.get(srvId(2)) !== undefined && tb.balancer.pool.get(srvId(0)) === undefined, 10_000);
      assert.deepEqual((await names(tb.url, 2)).sort(), ['SRV B', 'SRV C']);
    } finally {
      await tb.close();
      await Promise.all(srv.map((b) => b.close()));
    }
  });

  test('AAAA records become bracketed IPv6 backend URLs that carry traffic', async () => {
    const v6 = await startDemoBackend({ port: 0, host: '::1', name: 'IPv6' });
    dns.set('v6.test', { AAAA: [{ address: '::1' }] });
    const tb = await startBalancer({ discovery: { dns: { name: 'v6.test', type: 'AAAA', port: v6.port, interval: '200ms', servers: [dns.server] } } });
    try {
      const v6Id = `dns-__1-${v6.port}`;
      await waitFor(() => tb.balancer.pool.get(v6Id) !== undefined);
      assert.equal(tb.balancer.pool.get(v6Id)!.url.href, `http://[::1]:${v6.port}/`);
      assert.equal((await get(`${tb.url}/`)).headers['x-backend'], 'IPv6');
    } finally {
      await tb.close();
      await v6.close();
    }
  });
  test('each service runs its own sources (a list of them): backends join that service only, stay through a reload, and leave with its sources', async () => {
    dns.set('api-a.test', { A: [{ address: lb.address(0) }] });
    dns.set('api-b.test', { A: [{ address: lb.address(1) }] });
    dns.set('site.test', { A: [{ address: lb.address(2) }] });
    const dnsSource = (name: string) => ({ dns: { name, type: 'A' as const, port: lb.port, interval: '200ms', servers: [dns.server] } });
    const input = (apiSources: unknown[]): FulcrumConfigInput => ({
      services: {
        api: { discovery: apiSources as never },
        web: { backends: [urlOf(fixed[0]!)], discovery: dnsSource('site.test') },
      },
      routes: [{ match: { hosts: ['api.test'] }, service: 'api' }, { service: 'web' }],
    });
    const tb = await startBalancer(input([dnsSource('api-a.test'), dnsSource('api-b.test')]));
    const ids = (service: string): string[] => tb.balancer.services.get(service)!.pool.snapshot.map((b) => b.id).sort();
    try {
      await waitFor(() => ids('api').length === 2 && ids('web').length === 2);
      assert.deepEqual(ids('api'), [id(0), id(1)].sort());
      assert.deepEqual(ids('web'), ['b1', id(2)].sort());
      const apiNames = new Set<string>();
      for (let i = 0; i < 6; i++) apiNames.add(String((await get(`${tb.url}/`, { headers: { host: 'api.test' } })).headers['x-backend']));
      assert.deepEqual([...apiNames].sort(), ['Backend 1', 'Backend 2']);

      const status = JSON.parse((await get(`${tb.url}/status`)).body) as { discovery: { service: string; target: string; backends: string[] }[] };
      assert.deepEqual(status.discovery.map((d) => `${d.service} ${d.target} ${d.backends.join(',')}`).sort(), [
        `api A api-a.test ${id(0)}`, `api A api-b.test ${id(1)}`, `web A site.test ${id(2)}`,
      ]);

      const kept = tb.balancer.services.get('api')!.pool.get(id(1))!;
      const base = { listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' as const, accessLog: false };
      const same = await tb.balancer.reload({ ...base, ...input([dnsSource('api-a.test'), dnsSource('api-b.test')]) });
      assert.equal(same.ok, true);
      assert.deepEqual(same.removed, []);
      assert.equal(tb.balancer.services.get('api')!.pool.get(id(1)), kept, 'a reload keeps a discovered backend of a named service, state and all');

      // api drops its second source: what that source added is drained and removed; web is untouched.
      const fewer = await tb.balancer.reload({ ...base, ...input([dnsSource('api-a.test')]) });
      assert.equal(fewer.ok, true);
      await waitFor(() => ids('api').length === 1);
      assert.deepEqual(ids('api'), [id(0)]);
      assert.deepEqual(ids('web'), ['b1', id(2)].sort());
    } finally {
      await tb.close();
    }
  });
});
