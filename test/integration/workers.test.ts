/**
 * `workers: 2`: the real CLI as a child process (a primary and two worker
 * processes), demo backends in this process. Which worker answered is read
 * from /status (`instance.id` holds the worker's pid); fresh connections
 * are spread over the workers by node:cluster, so a few requests reach both.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackends, urlOf, freePort, type DemoBackend } from '../helpers/backends.js';
import { IpcLimitStore } from '../../src/ratelimit/ipc-store.js';
import { IpcStore, type IpcChannel } from '../../src/state/ipc.js';
import { emptyCounters } from '../../src/state/store.js';
import { get, request, waitFor, type SimpleResponse } from '../helpers/balancer.js';
import { startCli, waitServing, type CliProcess } from '../helpers/cli.js';

const TOKEN = 'workers-test-token-0123456789';
const HEALTH_INTERVAL_MS = 200;

interface WorkerView {
  instance: { id: string; totalRequests: number };
  cluster: { totalRequests: number; instances: { id: string }[] };
  backends: { id: string; url: string; healthy: boolean; state: string; requests: number }[];
}

/** pidOf reads the pid out of an instance id ("<host>-<pid>-<random>"). */
const pidOf = (instanceId: string): number => Number(instanceId.split('-').at(-2));


describe('workers: 2', () => {
  let backends: DemoBackend[];
  let dir: string;
  let file: string;
  let base: string;
  let cli: CliProcess;
  let config: Record<string, unknown>;

  /** ask asks /status on fresh connections until it has heard from both workers (or given up); the latest answer of each, by instance id. */
  async function ask(): Promise<Map<string, WorkerView>> {
    const out = new Map<string, WorkerView>();
    for (let i = 0; i < 20 && out.size < 2; i++) {
      let answer: SimpleResponse;
      try {
        // Bounded: a connection handed to a worker at the moment it is killed gets no answer.
        answer = await get(`${base}/status`, { signal: AbortSignal.timeout(3000) });
      } catch {
        continue;
      }
      const status = JSON.parse(answer.body) as WorkerView;
      out.set(status.instance.id, status);
    }
    return out;
  }

  /** views: the view of each of the two workers. */
  async function views(): Promise<Map<string, WorkerView>> {
    const out = await ask();
    assert.equal(out.size, 2, 'expected answers from 2 workers');
    return out;
  }

  /** eachWorker polls until both workers answer and `check` holds in the view of each. */
  async function eachWorker(check: (v: WorkerView) => boolean, timeoutMs = 10_000): Promise<Map<string, WorkerView>> {
    let last = new Map<string, WorkerView>();
    await waitFor(async () => {
      last = await ask();
      return last.size === 2 && [...last.values()].every(check);
    }, timeoutMs, 100);
    return last;
  }

  before(async () => {
    backends = await startBackends(3);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-workers-'));
    file = join(dir, 'fulcrum.json');
    config = {
      listen: { host: '127.0.0.1', port },
      backends: [{ id: 'b1', url: urlOf(backends[0]!) }, { id: 'b2', url: urlOf(backends[1]!) }],
      workers: 2,
      accessLog: false,
      healthCheck: { interval: `${HEALTH_INTERVAL_MS}ms`, healthyThreshold: 1, unhealthyThreshold: 1 },
      state: { flushInterval: '100ms' },
      sticky: {},
      admin: { token: TOKEN },
      // Only /limited is limited: 6 requests a minute per client, decided in the primary.
      rateLimit: { rate: 1000, timeout: '5s', overrides: [{ pathPrefix: '/', enabled: false }, { pathPrefix: '/limited', rate: 6, per: '1m' }] },
    };
    writeFileSync(file, JSON.stringify(config));
    cli = startCli(['-c', file]);
    await waitServing(base, 20_000);
    // Both workers serve (the second may start a little after the first).
    await eachWorker((v) => v.cluster.instances.length === 2, 20_000);
  });

  after(async () => {
    if (cli.child.exitCode === null && cli.child.signalCode === null) {
      const exited = once(cli.child, 'exit');
      cli.child.kill('SIGKILL');
      await exited;
    }
    await Promise.all(backends.map((b) => b.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('both workers serve, and /status and /metrics add up the requests of all of them', async () => {
    const n = 20;
    for (let i = 0; i < n; i++) assert.equal((await get(`${base}/`)).status, 200);
    const all = await eachWorker((v) => v.cluster.totalRequests === n);
    const pids = [...all.keys()].map(pidOf);
    assert.equal(new Set(pids).size, 2, 'two worker processes');
    assert.ok(!pids.includes(cli.child.pid!), 'the primary serves nothing itself');
    const own = [...all.values()].map((v) => v.instance.totalRequests);
    assert.ok(own.every((c) => c > 0 && c < n), `each worker served part of the requests: ${own.join(', ')}`);
    assert.equal(own[0]! + own[1]!, n);
    for (const v of all.values()) {
      assert.deepEqual(v.cluster.instances.map((i) => i.id).sort(), [...all.keys()].sort());
      const clusterRequests = (v.backends as unknown as { clusterRequests: number }[]).map((b) => b.clusterRequests);
      assert.equal(clusterRequests[0]! + clusterRequests[1]!, n, 'per-backend cluster counts add up too');
    }
    for (let i = 0; i < 2; i++) {
      const json = JSON.parse((await get(`${base}/metrics`)).body) as { cluster_total_requests: number };
      assert.equal(json.cluster_total_requests, n);
      const prom = await get(`${base}/metrics`, { headers: { accept: 'text/plain' } });
      assert.match(prom.body, new RegExp(`^fulcrum_cluster_requests_total ${n}$`, 'm'));
      // Every worker's own series are combined in one scrape: the per-backend counts add up to n,
      // and a backend is up once (max), not once per worker (sum).
      const perBackend = [...prom.body.matchAll(/^fulcrum_requests_total\{route="default",service="default",backend="b\d",code="200"\} (\d+)$/gm)].map((m) => Number(m[1]));
      assert.equal(perBackend.reduce((a, b) => a + b, 0), n, prom.body.split('\n').filter((l) => l.startsWith('fulcrum_requests_total')).join('\n'));
      assert.match(prom.body, /^fulcrum_backend_up\{service="default",backend="b1"\} 1$/m);
      assert.match(prom.body, /^fulcrum_request_duration_seconds_count\{route="default",service="default",backend="b1"\} \d+$/m);
    }
  });

  test('/livez and /readyz answer 200 from every worker (each has its primary), /livez with no backend healthy too', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20 && seen.size < 2; i++) {
      for (const path of ['/livez', '/readyz']) {
        const answer = await get(`${base}${path}`);
        assert.equal(answer.status, 200, `${path}: ${answer.body}`);
      }
      seen.add((JSON.parse((await get(`${base}/status`)).body) as WorkerView).instance.id);
    }
    assert.equal(seen.size, 2, 'both workers were asked');
  });

  test('one worker runs the health checks, and every worker applies its verdicts', async () => {
    const hits = (): number => backends[0]!.requests.get('/health') ?? 0;
    const windowMs = 2000;
    const before = hits();
    await new Promise((r) => setTimeout(r, windowMs));
    const checks = hits() - before;
    const oneChecker = windowMs / HEALTH_INTERVAL_MS;
    assert.ok(checks >= 2, `health checks run (${checks})`);
    assert.ok(checks <= oneChecker * 1.5, `about one check per interval, not one per worker: ${checks} in ${windowMs}ms at ${HEALTH_INTERVAL_MS}ms`);

    backends[1]!.failHealth(true);
    await eachWorker((v) => v.backends.find((b) => b.id === 'b2')?.healthy === false);
    const bodies = new Set<string>();
    for (let i = 0; i < 6; i++) bodies.add((await get(`${base}/`)).body);
    assert.deepEqual([...bodies], ['Hello from Backend 1'], 'no worker sends traffic to the failed backend');
    backends[1]!.failHealth(false);
    await eachWorker((v) => v.backends.every((b) => b.healthy));
  });

  test('a sticky cookie set by one worker is honoured by the other', async () => {
    const first = await get(`${base}/`);
    const setCookie = first.headers['set-cookie']?.[0];
    assert.ok(setCookie !== undefined, 'the first response pins the client');
    const cookie = setCookie.split(';')[0]!;
    const pinned = first.headers['x-backend'];
    const pinnedId = pinned === 'Backend 1' ? 'b1' : 'b2';
    const localCount = (vs: Map<string, WorkerView>): Map<string, number> =>
      new Map([...vs].map(([id, v]) => [id, v.backends.find((b) => b.id === pinnedId)!.requests]));
    const before = localCount(await views());
    const answers: SimpleResponse[] = [];
    for (let i = 0; i < 10; i++) answers.push(await get(`${base}/`, { headers: { cookie } }));
    for (const a of answers) {
      assert.equal(a.headers['x-backend'], pinned, 'every request goes to the pinned backend');
      assert.equal(a.headers['set-cookie'], undefined, 'no worker re-pins the client');
    }
    const afterCounts = localCount(await views());
    for (const [id, n] of afterCounts) assert.ok(n > (before.get(id) ?? 0), `worker ${pidOf(id)} served some of the pinned requests`);
  });

  test('a rate limit holds for the cluster, not per worker', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await get(`${base}/limited`)).status);
    assert.equal(statuses.filter((s) => s !== 429).length, 6, `6 allowed in all: ${statuses.join(' ')}`);
    assert.deepEqual(statuses.slice(6), [429, 429, 429, 429, 429, 429]);
  });

  test('a backend change made through the admin API of one worker reaches the other', async () => {
    const patch = (state: string): Promise<SimpleResponse> => request(`${base}/admin/backends/b2`, {
      method: 'PATCH', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ state }),
    });
    assert.equal((await patch('disabled')).status, 200);
    await eachWorker((v) => v.backends.find((b) => b.id === 'b2')?.state === 'disabled');
    assert.equal((await patch('enabled')).status, 200);
    await eachWorker((v) => v.backends.find((b) => b.id === 'b2')?.state === 'enabled');
  });

  test('SIGHUP reloads the config file in every worker', async () => {
    const withThird = { ...config, backends: [...(config.backends as object[]), { id: 'b3', url: urlOf(backends[2]!) }] };
    writeFileSync(file, JSON.stringify(withThird));
    cli.child.kill('SIGHUP');
    await eachWorker((v) => v.backends.some((b) => b.id === 'b3'));
    await waitFor(() => /configuration reloaded in every worker/.test(cli.output()), 10_000);
  });

  test('POST /admin/reload on one worker reloads every worker', async () => {
    const withFourth = { ...config, backends: [...(config.backends as object[]), { id: 'b3', url: urlOf(backends[2]!) }, { id: 'b4', url: 'http://127.0.0.1:9' }] };
    writeFileSync(file, JSON.stringify(withFourth));
    const res = await request(`${base}/admin/reload`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(JSON.parse(res.body).added, ['b4']);
    // Every worker has the new backend at once: the answer came after all of them reloaded.
    const seen = await views();
    assert.equal(seen.size, 2);
    for (const v of seen.values()) assert.ok(v.backends.some((b) => b.id === 'b4'));
  });

  test('a worker that dies is replaced', async () => {
    const before = [...(await views()).keys()].map(pidOf);
    process.kill(before[0]!, 'SIGKILL');
    let now: number[] = [];
    await waitFor(async () => {
      now = [...(await ask()).keys()].map(pidOf);
      return now.length === 2 && !now.includes(before[0]!);
    }, 15_000, 100);
    assert.ok(now.includes(before[1]!), 'the other worker served on');
    assert.equal((await get(`${base}/`)).status, 200);
    assert.match(cli.output(), /worker died; replacing it/);
    // The replacement takes its place in the shared state, and the dead one leaves it.
    await eachWorker((v) => v.cluster.instances.length === 2 && v.cluster.instances.every((i) => now.includes(pidOf(i.id))));
  });

  test('SIGTERM drains every worker, then the primary exits 0', async () => {
    const slow = get(`${base}/delay?ms=800`);
    await waitFor(() => backends.some((b) => (b.requests.get('/delay') ?? 0) > 0));
    const exited = once(cli.child, 'exit');
    cli.child.kill('SIGTERM');
    const answer = await slow;
    assert.equal(answer.status, 200, 'the in-flight request completes');
    const [code] = await exited;
    assert.equal(code, 0, cli.output());
    await assert.rejects(get(`${base}/`), /ECONNREFUSED/);
  });
});

describe('workers: 2, when the workers cannot start', () => {
  test('the primary exits with the workers\' error instead of restarting them', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as net.AddressInfo).port;
    const backends = await startBackends(1);
    try {
      const { child, output } = startCli(['--workers', '2', '--host', '127.0.0.1', '--port', String(port), '--backend', urlOf(backends[0]!), '--log-level', 'warn']);
      const [code] = await once(child, 'exit');
      assert.equal(code, 1);
      assert.match(output(), /cannot start/);
      assert.match(output(), /a worker could not start/);
    } finally {
      await new Promise((r) => taken.close(r));
      await Promise.all(backends.map((b) => b.close()));
    }
  });
});

describe('the workers\' IPC stores, when the primary does not answer', () => {
  // The stores' timers do not keep a process alive (a worker's listeners do): this stands in for them.
  let keepAlive: NodeJS.Timeout;
  before(() => { keepAlive = setInterval(() => undefined, 1000); });
  after(() => clearInterval(keepAlive));

  /** silentChannel takes every message and never answers, until it is disconnected. */
  function silentChannel(): IpcChannel & { sent: unknown[]; disconnect(): void } {
    let connected = true;
    const onDisconnect = new Set<() => void>();
    return {
      sent: [],
      get connected() { return connected; },
      send(message) { if (!connected) throw new Error('channel closed'); this.sent.push(message); },
      onMessage: () => () => undefined,
      onDisconnect(listener) { onDisconnect.add(listener); return () => onDisconnect.delete(listener); },
      disconnect() { connected = false; for (const l of onDisconnect) l(); },
    };
  }

  test('a state call rejects after its timeout, and a lost channel fails the calls in flight and marks the store down', async () => {
    const channel = silentChannel();
    const store = new IpcStore('w1', channel, 100);
    await assert.rejects(store.flushCounters(1, emptyCounters()), (err: Error & { code?: string }) => err.code === 'FULCRUM_ERR_STATE_STORE' && /within 100ms/.test(err.message));
    assert.equal(channel.sent.length, 1);
    const states: string[] = [];
    store.onState((s) => states.push(s));
    const inFlight = store.heartbeat(3000);
    channel.disconnect();
    await assert.rejects(inFlight, /IPC channel to the primary closed/);
    assert.equal(store.state, 'down');
    assert.deepEqual(states, ['down']);
    await assert.rejects(store.readCounters(), /FULCRUM_ERR_STATE_STORE|state store readCounters failed/);
    await store.close();
  });

  test('a rate-limit decision rejects after its timeout, so that onStoreError applies', async () => {
    const channel = silentChannel();
    const limiter = new IpcLimitStore({ timeout: 100, maxKeys: 10, channel });
    const policy = { algorithm: 'token-bucket', rate: 1, per: 1000, burst: 1 } as const;
    const decisions = [limiter.decide(policy, limiter.keyOf('scope', 'a')), limiter.decide(policy, limiter.keyOf('scope', 'b'))];
    for (const d of decisions) await assert.rejects(d, (err: Error & { code?: string }) => err.code === 'FULCRUM_ERR_RATE_LIMIT_STORE');
    assert.equal(channel.sent.length, 1, 'the decisions of one event-loop turn travel in one message');
    await limiter.close();
  });
});
