/**
 * Mirroring through real listeners and backends: the sampled share, the
 * copy's method, path, headers and body, a hanging or refusing mirror
 * adding no latency, copies beyond maxInFlight dropped and counted, bodies
 * above maxBodySize (declared or streamed) not copied, and the copies kept
 * out of the main service's metrics.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { request, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { startRecordingServer, type RecordingServer } from '../helpers/recording-server.js';
import { freePort } from '../helpers/backends.js';

const off = { healthCheck: { enabled: false } };

function timedGet(url: string, agent: http.Agent): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    http.get(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - started) : reject(new Error(`status ${res.statusCode}`))));
    }).on('error', reject);
  });
}

function p99(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!;
}

/** chunkedPost sends a body in pieces without a Content-Length (so it is streamed, never buffered for retries). */
function chunkedPost(url: string, pieces: Buffer[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent: false, headers: { 'transfer-encoding': 'chunked' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    for (const p of pieces) req.write(p);
    req.end();
  });
}

async function prometheus(tb: TestBalancer): Promise<string> {
  return (await request(`${tb.url}/metrics?format=prometheus`)).body;
}

function series(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.split(' ').pop());
  }
  return 0;
}

describe('mirror', () => {
  let main: RecordingServer;
  let staging: RecordingServer;
  let hanging: RecordingServer;
  let refused: string;
  let tb: TestBalancer;

  before(async () => {
    main = await startRecordingServer('main');
    staging = await startRecordingServer('staging');
    hanging = await startRecordingServer('hanging', { hang: true });
    refused = `http://127.0.0.1:${await freePort()}`;
    tb = await startBalancer({
      services: {
        app: { backends: [main.url], ...off },
        staging: { backends: [staging.url], ...off },
        hanging: { backends: [hanging.url], ...off, timeouts: { response: '30s' } },
        refused: { backends: [refused], ...off },
      },
      routes: [
        { name: 'sampled', match: { path: { prefix: '/sampled' } }, service: 'app', mirror: { service: 'staging', percent: 30 } },
        { name: 'copy', match: { path: { prefix: '/copy' } }, service: 'app', mirror: { service: 'staging', maxBodySize: '1kb' } },
        { name: 'hang', match: { path: { prefix: '/hang' } }, service: 'app', mirror: { service: 'hanging', maxInFlight: 5 } },
        { name: 'refuse', match: { path: { prefix: '/refuse' } }, service: 'app', mirror: { service: 'refused' } },
        { name: 'plain', service: 'app' },
      ],
    });
  });

  after(async () => {
    await tb.close();
    await main.close();
    await staging.close();
    await hanging.close();
  });

  test('a mirror receives about `percent` of the requests', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    try {
      for (let i = 0; i < 1000; i++) await timedGet(`${tb.url}/sampled/${i}`, agent);
    } finally {
      agent.destroy();
    }
    await waitFor(() => series2(staging, '/sampled/') === sentOf('sampled'), 3000).catch(() => undefined);
    const copies = series2(staging, '/sampled/');
    assert.ok(copies >= 240 && copies <= 360, `${copies} copies of 1000 at 30%`);
    const text = await prometheus(tb);
    assert.equal(series(text, 'fulcrum_mirror_requests_total', { route: 'sampled', service: 'staging' }), copies);
    // The copies are not the main service's requests, nor any service's request metrics.
    assert.equal(series(text, 'fulcrum_requests_total', { service: 'staging' }), 0);
    assert.equal(main.received.filter((r) => r.url.startsWith('/sampled/')).length, 1000);

    function sentOf(route: string): number {
      const m = tb.balancer.metrics.mirrors.get(`${route}\0staging`);
      return m?.sent ?? -1;
    }
  });

  test('the copy has the same method, path, headers and body, and X-Fulcrum-Mirror: 1', async () => {
    const body = JSON.stringify({ order: 42, items: ['a', 'b'] });
    const res = await request(`${tb.url}/copy/orders?x=1`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-trace': 'abc' } });
    assert.equal(res.status, 200);
    assert.equal(res.body, 'main');
    await waitFor(() => staging.received.some((r) => r.url === '/copy/orders?x=1'), 3000);
    const copy = staging.received.find((r) => r.url === '/copy/orders?x=1')!;
    const original = main.received.find((r) => r.url === '/copy/orders?x=1')!;
    assert.equal(copy.method, 'POST');
    assert.equal(copy.body.toString(), body);
    assert.equal(copy.headers['x-fulcrum-mirror'], '1');
    assert.equal(original.headers['x-fulcrum-mirror'], undefined);
    for (const name of ['content-type', 'x-trace', 'host', 'x-forwarded-for', 'content-length']) assert.equal(copy.headers[name], original.headers[name], name);
  });

  test('a body above maxBodySize is not copied, whether declared or streamed; a small streamed one is copied whole', async () => {
    const before = staging.received.length;
    const big = 'x'.repeat(4096);
    assert.equal((await request(`${tb.url}/copy/big`, { method: 'POST', body: big })).status, 200);
    assert.equal(await chunkedPost(`${tb.url}/copy/streamed-big`, [Buffer.alloc(600, 'a'), Buffer.alloc(600, 'b')]), 200);
    assert.equal(await chunkedPost(`${tb.url}/copy/streamed-small`, [Buffer.from('hello '), Buffer.from('world')]), 200);
    await waitFor(() => staging.received.some((r) => r.url === '/copy/streamed-small'), 3000);
    const copies = staging.received.slice(before);
    assert.deepEqual(copies.map((r) => r.url), ['/copy/streamed-small']);
    assert.equal(copies[0]!.body.toString(), 'hello world');
    // The main backend got every body whole.
    assert.equal(main.received.find((r) => r.url === '/copy/big')!.body.length, 4096);
    assert.equal(main.received.find((r) => r.url === '/copy/streamed-big')!.body.length, 1200);
    const text = await prometheus(tb);
    assert.equal(series(text, 'fulcrum_mirror_dropped_total', { route: 'copy', reason: 'body-too-large' }), 2);
  });

  test('a hanging or refusing mirror adds no latency; copies beyond maxInFlight are dropped and counted', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const run = async (path: string): Promise<number[]> => {
      const samples: number[] = [];
      for (let i = 0; i < 150; i++) samples.push(await timedGet(`${tb.url}${path}/${i}`, agent));
      return samples;
    };
    try {
      await run('/plain-warmup');
      const without = p99(await run('/plain'));
      const withHanging = p99(await run('/hang'));
      const withRefused = p99(await run('/refuse'));
      // Generous: a copy that waited on the hanging mirror would add its whole 30s response timeout.
      const bound = without * 5 + 100;
      assert.ok(withHanging < bound, `p99 ${withHanging.toFixed(1)}ms with a hanging mirror, ${without.toFixed(1)}ms without`);
      assert.ok(withRefused < bound, `p99 ${withRefused.toFixed(1)}ms with a refusing mirror, ${without.toFixed(1)}ms without`);
    } finally {
      agent.destroy();
    }
    const text = await prometheus(tb);
    // Five copies hang; the other 145 found maxInFlight taken.
    assert.equal(series(text, 'fulcrum_mirror_requests_total', { route: 'hang' }), 5);
    assert.equal(series(text, 'fulcrum_mirror_dropped_total', { route: 'hang', reason: 'max-in-flight' }), 145);
    assert.ok(hanging.received.length <= 5);
    const status = JSON.parse((await request(`${tb.url}/status`)).body) as { routes: { name: string; mirror?: { inFlight: number; sent: number } }[] };
    assert.equal(status.routes.find((r) => r.name === 'hang')!.mirror!.inFlight, 5);
    // A refused copy ends at once and frees its slot: none were dropped for want of one.
    assert.equal(series(text, 'fulcrum_mirror_dropped_total', { route: 'refuse', reason: 'max-in-flight' }), 0);
    // The main service's backend saw no failure from the mirrors.
    const app = tb.balancer.services.get('app')!;
    assert.ok(app.pool.snapshot.every((b) => b.state.failures === 0 && b.healthy));
  });

  test('hanging copies free their slots when they end', async () => {
    await hanging.close();
    await waitFor(() => tb.balancer.routes.get('hang')!.mirror!.inFlight === 0, 3000, 20);
  });
});

function series2(server: RecordingServer, prefix: string): number {
  return server.received.filter((r) => r.url.startsWith(prefix)).length;
}

describe('mirror: shutdown', () => {
  test('close does not wait for copies still out', { timeout: 15_000 }, async () => {
    const main = await startRecordingServer('main');
    const hanging = await startRecordingServer('hanging', { hang: true });
    const tb = await startBalancer({
      services: { app: { backends: [main.url], ...off }, hanging: { backends: [hanging.url], ...off, timeouts: { response: '60s' } } },
      routes: [{ name: 'all', service: 'app', mirror: { service: 'hanging' } }],
    });
    try {
      assert.equal((await request(`${tb.url}/x`)).status, 200);
      await waitFor(() => hanging.received.length === 1, 3000);
      // With the copy waiting on its 60s response timeout, a close that waited for it would outlast this test's timeout.
      await tb.close();
      assert.equal(tb.balancer.routes.get('all')!.mirror!.inFlight, 0);
    } finally {
      await hanging.close();
      await main.close();
    }
  });
});
