import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { startBackends, urlOf, freePort, freeConsecutivePorts } from '../helpers/backends.js';
import { get, waitFor } from '../helpers/balancer.js';
import { CLI, startCli, waitServing } from '../helpers/cli.js';

const run = (args: string[], env: NodeJS.ProcessEnv = {}) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 });

const waitListening = (port: number): Promise<void> => waitServing(`http://127.0.0.1:${port}`);

describe('fulcrum CLI', () => {
  test('--help and --version', () => {
    const help = run(['--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /Usage: fulcrum/);
    for (const cmd of ['start', 'demo', 'backend', 'validate']) assert.match(help.stdout, new RegExp(`\\b${cmd}\\b`));
    const startHelp = run(['start', '--help']);
    assert.equal(startHelp.status, 0);
    assert.match(startHelp.stdout, /--backend <url>/);
    const version = run(['--version']);
    assert.equal(version.status, 0);
    assert.match(version.stdout.trim(), /^\d+\.\d+\.\d+/);
  });

  test('no backends and no config: says what to do, exits 2', () => {
    const r = run([], { FULCRUM_CONFIG: '' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /no backends configured/);
    assert.match(r.stderr, /--backend/);
  });

  test('unknown option exits 2', () => {
    const r = run(['--frobnicate']);
    assert.equal(r.status, 2);
  });

  test('validate prints ok or every problem', () => {
    const ok = run(['validate', '-c', 'examples/fulcrum.yaml']);
    assert.equal(ok.status, 0);
    assert.equal(ok.stdout.trim(), 'ok');
    const seed = run(['validate', '-c', 'examples/config.json']);
    assert.equal(seed.status, 0);
    const bad = run(['validate', '-c', 'package.json']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /problems? found/);
    assert.match(bad.stderr, /package\.json: unknown keys? /);
    const invalidStart = run(['-c', 'package.json']);
    assert.equal(invalidStart.status, 2);
    assert.match(invalidStart.stderr, /invalid configuration/);
  });

  test('schema prints the JSON Schema that ships as fulcrum.schema.json', () => {
    const r = run(['schema']);
    assert.equal(r.status, 0, r.stderr);
    const printed = JSON.parse(r.stdout) as { title: string; properties: Record<string, unknown> };
    assert.equal(printed.title, 'Fulcrum configuration');
    assert.ok('services' in printed.properties && 'routes' in printed.properties && 'listen' in printed.properties);
    assert.deepEqual(printed, JSON.parse(readFileSync('fulcrum.schema.json', 'utf8')));
  });

  test('runs from flags, proxies, and drains an in-flight request on SIGTERM', async () => {
    const backends = await startBackends(2);
    const port = await freePort();
    const { child, output } = startCli(['--port', String(port), '--host', '127.0.0.1', '--log-level', 'warn', '--backend', urlOf(backends[0]!), '--backend', urlOf(backends[1]!)]);
    try {
      await waitListening(port);
      const bodies = [(await get(`http://127.0.0.1:${port}/`)).body, (await get(`http://127.0.0.1:${port}/`)).body];
      assert.deepEqual(bodies.sort(), ['Hello from Backend 1', 'Hello from Backend 2']);
      const slow = get(`http://127.0.0.1:${port}/delay?ms=700`);
      await waitFor(() => backends.some((b) => (b.requests.get('/delay') ?? 0) > 0));
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 150));
      await assert.rejects(get(`http://127.0.0.1:${port}/`), /ECONNREFUSED/, 'new connections are refused while draining');
      const res = await slow;
      assert.equal(res.status, 200);
      assert.match(res.body, /after 700ms/);
      const [code] = await exited;
      assert.equal(code, 0, output());
      // The access log (on by default) went to stdout, a line per request, the drained one included.
      const access = output().split('\n').filter((l) => l.includes('"type":"access"')).map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.deepEqual(access.map((l) => [l.url, l.status, l.pid]), [['/', 200, child.pid], ['/', 200, child.pid], ['/delay?ms=700', 200, child.pid]]);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await Promise.all(backends.map((b) => b.close()));
    }
  });

  test('a second signal exits at once, without waiting for the drain', async () => {
    const backends = await startBackends(1);
    const port = await freePort();
    const { child } = startCli(['--port', String(port), '--host', '127.0.0.1', '--log-level', 'silent', '--backend', urlOf(backends[0]!)]);
    try {
      await waitListening(port);
      const slow = get(`http://127.0.0.1:${port}/delay?ms=20000`).catch(() => null);
      await waitFor(() => (backends[0]!.requests.get('/delay') ?? 0) > 0);
      const exited = once(child, 'exit');
      const started = Date.now();
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(child.exitCode, null, 'still draining after the first signal');
      child.kill('SIGTERM');
      const [code] = await exited;
      assert.equal(code, 1);
      assert.ok(Date.now() - started < 10_000, 'did not wait for the 20 s request');
      await slow;
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await Promise.all(backends.map((b) => b.close()));
    }
  });

  test('demo: balancer on --port, backends on the next ports, Ctrl-C exits 0', async () => {
    const port = await freeConsecutivePorts(3);
    const { child, output } = startCli(['demo', '--port', String(port), '--backends', '2', '--log-level', 'warn']);
    try {
      await waitListening(port);
      const seen = [(await get(`http://127.0.0.1:${port}/`)).body, (await get(`http://127.0.0.1:${port}/`)).body];
      assert.deepEqual(seen, ['Hello from Backend 1', 'Hello from Backend 2']);
      assert.equal((await get(`http://127.0.0.1:${port + 1}/`)).body, 'Hello from Backend 1');
      const exited = once(child, 'exit');
      child.kill('SIGINT');
      const [code] = await exited;
      assert.equal(code, 0, output());
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  test('backend command serves the demo backend', async () => {
    const port = await freePort();
    const { child } = startCli(['backend', '--port', String(port), '--host', '127.0.0.1', '--name', 'Backend 7']);
    try {
      await waitFor(async () => { try { await get(`http://127.0.0.1:${port}/health`); return true; } catch { return false; } }, 10_000, 50);
      assert.equal((await get(`http://127.0.0.1:${port}/`)).body, 'Hello from Backend 7');
      const health = await get(`http://127.0.0.1:${port}/health`);
      assert.equal(health.status, 200);
      assert.equal(JSON.parse(health.body).status, 'ok');
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      assert.equal((await exited)[0], 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
