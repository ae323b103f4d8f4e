/**
 * The newcomer path of the seed projects: `fulcrum --backend ... --backend ...`
 * in front of servers like `python3 -m http.server`, which answer 404 to
 * /health. The balancer says, once per backend at warn level and in the 503
 * body, which key and flag fix it; --health-path and --no-health-check do.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { startBalancer, get, waitFor } from '../helpers/balancer.js';
import { captureLogger } from '../helpers/logs.js';
import { startCli, waitServing, type CliProcess } from '../helpers/cli.js';
import { freePort } from '../helpers/backends.js';

/** A static file server in miniature: 200 for "/", 404 for every other path (as python's http.server without the file). */
async function startFileServer(): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.url === '/') res.end('index\n');
    else { res.statusCode = 404; res.end('not found\n'); }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}
const urlOfServer = (s: http.Server): string => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;

async function stopCli(cli: CliProcess): Promise<void> {
  if (cli.child.exitCode !== null || cli.child.signalCode !== null) return;
  const exited = once(cli.child, 'exit');
  cli.child.kill('SIGKILL');
  await exited;
}

describe('backends that answer 404 to the health path', () => {
  let servers: http.Server[];
  before(async () => { servers = [await startFileServer(), await startFileServer()]; });
  after(() => { for (const s of servers) s.close(); });

  test('warn once per backend naming the key and flag, and the 503 says the same', async () => {
    const log = captureLogger('warn');
    const lb = await startBalancer({
      backends: servers.map(urlOfServer),
      healthCheck: { interval: '50ms', unhealthyThreshold: 1 },
    }, { logger: log.logger });
    try {
      await waitFor(() => lb.balancer.pool.snapshot.every((b) => !b.healthy), 3000);
      // A few more rounds of 404s: still one line per backend.
      await new Promise((r) => setTimeout(r, 200));
      const hints = log.lines.filter((l) => typeof l.msg === 'string' && l.msg.includes('404 to the health check GET /health'));
      assert.equal(hints.length, 2, JSON.stringify(hints));
      for (const line of hints) {
        assert.equal(line.level, 40, 'warn');
        assert.match(line.msg as string, /healthCheck\.path/);
        assert.match(line.msg as string, /--health-path \//);
        assert.match(line.msg as string, /--no-health-check/);
      }
      const answer = await get(`${lb.url}/`);
      assert.equal(answer.status, 503);
      assert.equal(answer.headers['x-fulcrum-error'], 'FULCRUM_ERR_NO_BACKEND');
      assert.match(answer.body, /every backend answers 404 to the health check GET \/health/);
      assert.match(answer.body, /--health-path \//);
      assert.match(answer.body, /healthCheck\.enabled: false, --no-health-check/);
    } finally {
      await lb.close();
    }
  });

  test('no hint while another reason keeps a backend out (connection refused)', async () => {
    const dead = await freePort();
    const lb = await startBalancer({ backends: [urlOfServer(servers[0]!), `http://127.0.0.1:${dead}`], healthCheck: { interval: '50ms', unhealthyThreshold: 1 } });
    try {
      await waitFor(() => lb.balancer.pool.snapshot.every((b) => !b.healthy), 3000);
      const answer = await get(`${lb.url}/`);
      assert.equal(answer.status, 503);
      assert.doesNotMatch(answer.body, /health-path/);
    } finally {
      await lb.close();
    }
  });

  for (const [flags, label] of [[['--health-path', '/'], '--health-path /'], [['--no-health-check'], '--no-health-check']] as const) {
    test(`the CLI with ${label} keeps serving them`, async () => {
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const cli = startCli(['--host', '127.0.0.1', '--port', String(port), '--log-level', 'warn', '--no-access-log', '--health-interval', '100ms',
        ...servers.flatMap((s) => ['--backend', urlOfServer(s)]), ...flags]);
      try {
        await waitServing(base);
        // The default thresholds (2 failures) would have taken them out after ~200 ms.
        await new Promise((r) => setTimeout(r, 500));
        for (let i = 0; i < 4; i++) assert.equal((await get(`${base}/`)).status, 200, cli.output());
        const status = JSON.parse((await get(`${base}/status`)).body) as { healthyBackends: number };
        assert.equal(status.healthyBackends, 2);
        assert.doesNotMatch(cli.output(), /404 to the health check/);
      } finally {
        await stopCli(cli);
      }
    });
  }

  test('the CLI without those flags takes them out after its checks, and says why', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const cli = startCli(['--host', '127.0.0.1', '--port', String(port), '--log-level', 'warn', '--no-access-log', '--health-interval', '100ms',
      ...servers.flatMap((s) => ['--backend', urlOfServer(s)])]);
    try {
      await waitServing(base);
      await waitFor(async () => (await get(`${base}/`)).status === 503, 5000, 100);
      await waitFor(() => (cli.output().match(/404 to the health check/g) ?? []).length === 2, 3000);
    } finally {
      await stopCli(cli);
    }
  });
});
