/**
 * Hot reload through POST /admin/reload and SIGHUP: a valid config is
 * applied while a WebSocket tunnel and a slow request stay open and kept
 * backends keep their state; an invalid one is rejected whole, reported in
 * the API's answer and in /status, and the old config keeps running.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import type { Fulcrum } from '../../src/app/fulcrum.js';
import { request, startFileBalancer, waitFor, type SimpleResponse } from '../helpers/balancer.js';
import { freePort, startBackends, urlOf, type DemoBackend } from '../helpers/backends.js';
import { CLI } from '../helpers/cli.js';

const TOKEN = 'reload-admin-token-0123456789';
const AUTH = { authorization: `Bearer ${TOKEN}` };

function configText(backends: readonly { id: string; url: string }[], extra = '', port = 0): string {
  return [
    `listen: { host: 127.0.0.1, port: ${port} }`,
    'logLevel: silent',
    'accessLog: false',
    `admin: { token: ${TOKEN} }`,
    'healthCheck: { interval: 200ms, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 1 }',
    'backends:',
    ...backends.map((b) => `  - { id: ${b.id}, url: "${b.url}" }`),
    extra,
  ].join('\n');
}

async function reloadViaApi(base: string): Promise<SimpleResponse & { json: Record<string, unknown> }> {
  const res = await request(`${base}/admin/reload`, { method: 'POST', headers: AUTH });
  return { ...res, json: JSON.parse(res.body) as Record<string, unknown> };
}

function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data) => resolve(data.toString()));
    ws.once('error', reject);
  });
}

describe('reload through the admin API', () => {
  let dir: string;
  let file: string;
  let backends: DemoBackend[];
  let balancer: Fulcrum;
  let base: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-reload-'));
    file = join(dir, 'fulcrum.yaml');
    backends = await startBackends(2, 'Reload');
    writeFileSync(file, configText([{ id: 'a', url: urlOf(backends[0]!) }]));
    balancer = await startFileBalancer(file);
    base = `http://127.0.0.1:${balancer.port}`;
  });
  after(async () => {
    await balancer.close({ drainTimeout: 2000 });
    await Promise.all(backends.map((b) => b.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('a valid config is applied without dropping a WebSocket or a slow request; kept backends keep their state', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${balancer.port}/ws`);
    const hello = JSON.parse(await nextMessage(ws)) as { hello: string };
    assert.equal(hello.hello, 'Reload 1');
    ws.send('before');
    assert.equal(await nextMessage(ws), 'before');
    const slow = request(`${base}/delay?ms=1200`);
    await waitFor(() => balancer.pool.get('a')!.state.inflight === 2, 5000); // the tunnel and the slow request
    for (let i = 0; i < 3; i++) assert.equal((await request(`${base}/`)).status, 200);
    const kept = balancer.pool.get('a')!;
    const requestsBefore = balancer.metrics.byBackend.get('a')!.requests;

    // New backend, new health check interval (the checker is rebuilt), new retry policy.
    writeFileSync(file, configText([{ id: 'a', url: urlOf(backends[0]!) }, { id: 'b', url: urlOf(backends[1]!) }], 'retries: { attempts: 1 }')
      .replace('interval: 200ms', 'interval: 300ms'));
    const res = await reloadViaApi(base);
    assert.equal(res.status, 200, res.body);
    assert.equal(res.json.ok, true);
    assert.deepEqual(res.json.added, ['b']);
    assert.deepEqual(res.json.removed, []);
    assert.equal(balancer.config.healthCheck.interval, 300);
    assert.equal(balancer.config.retries.attempts, 1);

    // Nothing was dropped: the tunnel still echoes, the slow request completes.
    ws.send('after');
    assert.equal(await nextMessage(ws), 'after');
    assert.equal(ws.readyState, WebSocket.OPEN);
    const done = await slow;
    assert.equal(done.status, 200);
    assert.match(done.body, /after 1200ms/);
    // The kept backend is the same object with its counters.
    assert.equal(balancer.pool.get('a'), kept);
    assert.ok(balancer.metrics.byBackend.get('a')!.requests >= requestsBefore);
    // The new backend is checked and takes traffic.
    await waitFor(() => (backends[1]!.requests.get('/health') ?? 0) > 0, 5000);
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add(String((await request(`${base}/`)).headers['x-backend']));
    assert.deepEqual([...seen].sort(), ['Reload 1', 'Reload 2']);
    ws.close();
    const status = JSON.parse((await request(`${base}/status`)).body) as { lastReload: { ok: boolean; added: string[] } };
    assert.equal(status.lastReload.ok, true);
    assert.deepEqual(status.lastReload.added, ['b']);
  });

  test('an invalid file is rejected whole: 422 with the problems, shown in /status, the old config keeps running', async () => {
    const before = balancer.config;
    writeFileSync(file, configText([{ id: 'a', url: urlOf(backends[0]!) }, { id: 'c', url: 'localhost:9' }]).replace('interval: 200ms', 'interval: soon'));
    const res = await reloadViaApi(base);
    assert.equal(res.status, 422, res.body);
    assert.equal(res.json.ok, false);
    assert.equal(res.json.code, 'FULCRUM_ERR_ADMIN_RELOAD_REJECTED');
    const problems = res.json.problems as string[];
    // Every problem is reported, each with the file and the key path.
    assert.ok(problems.some((p) => p.startsWith(`${file}: backends[1].url:`)), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith(`${file}: healthCheck.interval:`)), problems.join('\n'));
    assert.equal(balancer.config, before);
    assert.deepEqual(balancer.pool.snapshot.map((b) => b.id), ['a', 'b']);
    const status = JSON.parse((await request(`${base}/status`)).body) as { lastReload: { ok: boolean; problems: string[]; error: string } };
    assert.equal(status.lastReload.ok, false);
    assert.deepEqual(status.lastReload.problems, problems);
    assert.match(status.lastReload.error, /previous one stays/);
    for (let i = 0; i < 4; i++) assert.equal((await request(`${base}/`)).status, 200);

    writeFileSync(file, 'listen: [\n');
    const broken = await reloadViaApi(base);
    assert.equal(broken.status, 422);
    assert.match((broken.json.problems as string[])[0]!, /cannot parse/);

    // Fixed again: applies, and removes what the file no longer lists.
    writeFileSync(file, configText([{ id: 'a', url: urlOf(backends[0]!) }]));
    const fixed = await reloadViaApi(base);
    assert.equal(fixed.status, 200, fixed.body);
    assert.deepEqual(fixed.json.removed, ['b']);
    assert.deepEqual(balancer.pool.snapshot.map((b) => b.id), ['a']);
  });
});

describe('reload on SIGHUP (the fulcrum command)', () => {
  let dir: string;
  let file: string;
  let backends: DemoBackend[];
  let child: ChildProcess | null = null;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-sighup-'));
    file = join(dir, 'fulcrum.yaml');
    backends = await startBackends(2, 'Signal');
  });
  after(async () => {
    const c = child;
    if (c !== null && c.exitCode === null && c.signalCode === null) {
      await new Promise<void>((resolve) => { c.once('exit', () => resolve()); c.kill('SIGKILL'); });
    }
    await Promise.all(backends.map((b) => b.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('SIGHUP re-reads the file: a new backend appears; an invalid file is reported and the old config stays', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    writeFileSync(file, configText([{ id: 'a', url: urlOf(backends[0]!) }], '', port));
    const env = { ...process.env };
    delete env.FULCRUM_ADMIN_TOKEN; delete env.REDIS_URL; delete env.FULCRUM_PORT; delete env.FULCRUM_CONFIG;
    const c = spawn(process.execPath, [CLI, '-c', file], { stdio: 'ignore', env });
    child = c;
    await waitFor(async () => (await request(`${base}/healthz`).catch(() => ({ status: 0 }))).status === 200, 10_000, 100);
    const ids = async (): Promise<string[]> => (JSON.parse((await request(`${base}/admin/backends`, { headers: AUTH })).body) as { backends: { id: string }[] }).backends.map((b) => b.id);
    assert.deepEqual(await ids(), ['a']);

    writeFileSync(file, configText([{ id: 'a', url: urlOf(backends[0]!) }, { id: 'b', url: urlOf(backends[1]!) }], '', port));
    c.kill('SIGHUP');
    await waitFor(async () => (await ids()).length === 2, 5000, 50);
    assert.deepEqual(await ids(), ['a', 'b']);

    writeFileSync(file, configText([{ id: 'a', url: urlOf(backends[0]!) }], 'algorithm: best-guess', port));
    c.kill('SIGHUP');
    const lastReload = async (): Promise<{ ok: boolean; problems?: string[] }> => (JSON.parse((await request(`${base}/status`)).body) as { lastReload: { ok: boolean; problems?: string[] } }).lastReload;
    await waitFor(async () => (await lastReload()).ok === false, 5000, 50);
    assert.match((await lastReload()).problems!.join('\n'), /unknown algorithm "best-guess"/);
    assert.deepEqual(await ids(), ['a', 'b']);
    assert.equal((await request(`${base}/`)).status, 200);

    const exited = new Promise<number | null>((resolve) => c.once('exit', (code) => resolve(code)));
    c.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});
