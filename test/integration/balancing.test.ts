import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { Backend } from '../../src/backends/backend.js';
import { Reason } from '../../src/backends/reasons.js';
import type { FulcrumConfigInput } from '../../src/config/schema.js';
import { startBackends, startRawServer, urlOf, type DemoBackend, type RawServer } from '../helpers/backends.js';
import { get, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';

interface BackendStatus { id: string; url: string; healthy: boolean; weight: number; effectiveWeight: number; activeConnections: number; requests: number }
interface Status { algorithm: string; backends: BackendStatus[] }

async function status(lb: TestBalancer): Promise<Status> {
  return JSON.parse((await get(`${lb.url}/status`)).body) as Status;
}

/** hold starts a request and returns a function that aborts it (the client goes away). */
function hold(url: string): { abort: () => void; done: Promise<string> } {
  let req!: http.ClientRequest;
  const done = new Promise<string>((resolve) => {
    req = http.get(url, { agent: false }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => resolve(String(res.statusCode)));
      res.on('error', () => resolve('reset'));
      res.on('aborted', () => resolve('reset'));
    });
    req.on('error', () => resolve('aborted'));
  });
  return { abort: () => req.destroy(), done };
}

const backendOf = (lb: TestBalancer, demo: DemoBackend | RawServer): Backend => lb.balancer.pool.snapshot.find((b) => b.url.port === String(demo.port))!;

describe('least-connections through the proxy', () => {
  let demos: DemoBackend[];
  let lb: TestBalancer;
  before(async () => {
    demos = await startBackends(2);
    lb = await startBalancer({ algorithm: 'leastconn', backends: demos.map(urlOf), healthCheck: { enabled: false } });
  });
  after(async () => {
    await lb.close();
    await Promise.all(demos.map((d) => d.close()));
  });

  test('routes away from a backend that holds slow requests, and counts them exactly', async () => {
    const [a, b] = demos.map((d) => backendOf(lb, d)) as [Backend, Backend];
    // Only backend 1 is in rotation while three slow requests arrive.
    b.setReason(Reason.DISABLED, true);
    const slow = [0, 1, 2].map(() => hold(`${lb.url}/delay?ms=60000`));
    await waitFor(() => a.state.inflight === 3, 5000);
    b.setReason(Reason.DISABLED, false);
    const before = await status(lb);
    assert.equal(before.algorithm, 'least-connections');
    assert.deepEqual(before.backends.map((s) => s.activeConnections), [3, 0]);

    for (let i = 0; i < 8; i++) {
      const res = await get(`${lb.url}/`);
      assert.equal(res.headers['x-backend'], 'Backend 2', `request ${i} went to the busy backend`);
    }
    for (const s of slow) s.abort();
    await Promise.all(slow.map((s) => s.done));
    await waitFor(() => a.state.inflight === 0 && b.state.inflight === 0, 5000);
    const after = await status(lb);
    assert.deepEqual(after.backends.map((s) => s.activeConnections), [0, 0]);
    assert.deepEqual(after.backends.map((s) => s.requests), [3, 8]);
  });
});

describe('in-flight counts never drift', () => {
  let demo: DemoBackend;
  let reset: RawServer;
  let stall: RawServer;
  let partial: RawServer;
  let lb: TestBalancer;
  before(async () => {
    [demo] = await startBackends(1) as [DemoBackend];
    // reset: closes the connection with a RST as soon as the request arrives.
    reset = await startRawServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
    // stall: accepts the request and never answers (response timeout).
    stall = await startRawServer(() => undefined);
    // partial: sends a head and part of the body, then drops the connection.
    partial = await startRawServer((socket) => socket.once('data', () => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial');
      setTimeout(() => socket.destroy(), 20);
    }));
    lb = await startBalancer({
      algorithm: 'round-robin',
      backends: [urlOf(demo), urlOf(reset), urlOf(stall), urlOf(partial)],
      healthCheck: { enabled: false },
      outlierDetection: { enabled: false },
      retries: { attempts: 0 },
      timeouts: { response: '300ms' },
    });
  });
  after(async () => {
    await lb.close();
    await Promise.all([demo.close(), reset.close(), stall.close(), partial.close()]);
  });

  test('after a burst with client aborts, upstream resets, partial bodies and timeouts, every count is back to 0', async () => {
    const outcomes: Promise<string>[] = [];
    for (let i = 0; i < 24; i++) {
      const slow = i % 3 === 0;
      const r = hold(`${lb.url}/delay?ms=${slow ? 60_000 : 10}`);
      if (slow) setTimeout(r.abort, 150);
      outcomes.push(r.done);
    }
    const results = await Promise.all(outcomes);
    for (const expected of ['200', '502', '504', 'aborted', 'reset']) assert.ok(results.includes(expected), `no "${expected}" among ${results.join(',')}`);
    assert.ok(reset.received.length > 0 && partial.received.length > 0);

    const backends = lb.balancer.pool.snapshot;
    await waitFor(() => backends.every((b) => b.state.inflight === 0) && lb.balancer.activeRequests === 0, 5000);
    const s = await status(lb);
    assert.deepEqual(s.backends.map((b) => b.activeConnections), [0, 0, 0, 0]);
    assert.equal(s.backends.reduce((sum, b) => sum + b.requests, 0), 24);
  });
});

describe('sticky sessions through the proxy', () => {
  let demos: DemoBackend[];
  let lb: TestBalancer;
  before(async () => {
    demos = await startBackends(3);
    lb = await startBalancer({
      algorithm: 'round-robin',
      backends: demos.map(urlOf),
      sticky: { cookie: 'lb', ttl: '1h', secret: 'integration-test-secret' },
      healthCheck: { interval: '100ms', timeout: '1s', unhealthyThreshold: 1, healthyThreshold: 1 },
    });
  });
  after(async () => {
    await lb.close();
    await Promise.all(demos.map((d) => d.close()));
  });

  const cookieOf = (setCookie: string[] | undefined): string | undefined => setCookie?.[0]?.split(';')[0];

  test('pins a client to its backend and re-pins it when that backend goes down', async () => {
    const first = await get(`${lb.url}/`);
    const pin = cookieOf(first.headers['set-cookie']);
    assert.ok(pin !== undefined && pin.startsWith('lb='), 'the first response sets the cookie');
    assert.match(first.headers['set-cookie']![0]!, /; Path=\/; Max-Age=3600; HttpOnly; SameSite=Lax$/);
    for (const d of demos) assert.ok(!pin.includes(String(d.port)) && !pin.includes('127.0.0.1'), 'the cookie does not reveal the address');
    const home = first.headers['x-backend'] as string;

    for (let i = 0; i < 5; i++) {
      const res = await get(`${lb.url}/`, { headers: { cookie: pin } });
      assert.equal(res.headers['x-backend'], home);
      assert.equal(res.headers['set-cookie'], undefined, 'no new cookie while the pin holds');
    }

    const homeDemo = demos.find((d) => d.name === home)!;
    const homeBackend = backendOf(lb, homeDemo);
    homeDemo.failHealth(true);
    await waitFor(() => !homeBackend.healthy, 5000);
    const moved = await get(`${lb.url}/`, { headers: { cookie: pin } });
    const away = moved.headers['x-backend'] as string;
    assert.notEqual(away, home);
    const repin = cookieOf(moved.headers['set-cookie']);
    assert.ok(repin !== undefined && repin !== pin, 'the client is re-pinned');
    for (let i = 0; i < 4; i++) assert.equal((await get(`${lb.url}/`, { headers: { cookie: repin } })).headers['x-backend'], away);

    homeDemo.failHealth(false);
    await waitFor(() => homeBackend.healthy, 5000);
    assert.equal((await get(`${lb.url}/`, { headers: { cookie: repin } })).headers['x-backend'], away, 'a re-pinned client stays');
    assert.equal((await get(`${lb.url}/`, { headers: { cookie: pin } })).headers['x-backend'], home, 'the old pin is honoured again');
  });

  test('a forged cookie is ignored and replaced', async () => {
    const res = await get(`${lb.url}/`, { headers: { cookie: 'lb=127.0.0.1:1' } });
    assert.equal(res.status, 200);
    assert.ok(cookieOf(res.headers['set-cookie'])?.startsWith('lb='));
  });
});

describe('hash keys, reload and slow start through the proxy', () => {
  let demos: DemoBackend[];
  let lb: TestBalancer;
  let config: FulcrumConfigInput;
  before(async () => {
    demos = await startBackends(4);
    config = {
      listen: { host: '127.0.0.1', port: 0 },
      logLevel: 'silent',
      accessLog: false,
      algorithm: 'consistent-hash',
      hashKey: 'header:x-user',
      backends: demos.slice(0, 3).map(urlOf),
      healthCheck: { enabled: false },
    };
    lb = await startBalancer(config);
  });
  after(async () => {
    await lb.close();
    await Promise.all(demos.map((d) => d.close()));
  });

  test('consistent-hash on a header sends each user to one backend', async () => {
    const homes = new Map<string, string>();
    for (let round = 0; round < 2; round++) {
      for (let u = 0; u < 20; u++) {
        const res = await get(`${lb.url}/`, { headers: { 'x-user': `user-${u}` } });
        const backend = res.headers['x-backend'] as string;
        if (round === 0) homes.set(`user-${u}`, backend);
        else assert.equal(backend, homes.get(`user-${u}`), `user-${u} moved`);
      }
    }
    assert.ok(new Set(homes.values()).size >= 2, 'users are spread over the backends');
  });

  test('a reload to weighted-round-robin with slow start ramps the added backend', async () => {
    // The three first backends have been healthy for long; the added one is new.
    for (const b of lb.balancer.pool.snapshot) b.state.healthySince = Date.now() - 7_200_000;
    const result = await lb.balancer.reload({ ...config, algorithm: 'wrr', slowStart: '1h', backends: demos.map(urlOf) });
    assert.equal(result.ok, true, result.problems?.join('; '));
    assert.equal(lb.balancer.service.hashKey, null, 'no hash key is computed for a policy that does not read it');

    const s = await status(lb);
    assert.equal(s.algorithm, 'weighted-round-robin');
    const added = s.backends.find((b) => b.url === `${urlOf(demos[3]!)}/`)!;
    assert.equal(added.weight, 1);
    assert.ok(added.effectiveWeight < 0.2, `effectiveWeight ${added.effectiveWeight}`);
    for (const b of s.backends.filter((x) => x !== added)) assert.equal(b.effectiveWeight, b.weight);

    const served = new Map<string, number>();
    for (let i = 0; i < 31; i++) {
      const name = (await get(`${lb.url}/`)).headers['x-backend'] as string;
      served.set(name, (served.get(name) ?? 0) + 1);
    }
    // weights 1, 1, 1 and ~0.1: the new backend gets about 1 request in 31.
    assert.ok((served.get(demos[3]!.name) ?? 0) <= 2, `new backend served ${served.get(demos[3]!.name)}`);
    for (const d of demos.slice(0, 3)) assert.ok((served.get(d.name) ?? 0) >= 9, `${d.name} served ${served.get(d.name)}`);
  });
});
