/**
 * --log-format: JSON lines for machines, pretty lines for people (issue 19
 * item 13). The decision for a terminal is tested through logFormatFor (the
 * tests' stdout is a pipe); the formats themselves through the real CLI.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, logFormatFor } from '../../src/observe/log.js';
import { startBackends, urlOf, freePort, type DemoBackend } from '../helpers/backends.js';
import { get, waitFor } from '../helpers/balancer.js';
import { CLI, startCli, waitServing, type CliProcess } from '../helpers/cli.js';

describe('log format', () => {
  let backends: DemoBackend[];
  before(async () => { backends = await startBackends(1); });
  after(async () => { await Promise.all(backends.map((b) => b.close())); });

  test('the decision: the flag wins; without it, pretty on a terminal and JSON otherwise', () => {
    assert.equal(logFormatFor(undefined, true), 'pretty');
    assert.equal(logFormatFor(undefined, false), 'json');
    assert.equal(logFormatFor('json', true), 'json');
    assert.equal(logFormatFor('pretty', false), 'pretty');
  });

  test('createLogger writes JSON lines, or pretty lines without colours to a file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-logfmt-'));
    try {
      for (const format of ['json', 'pretty'] as const) {
        const file = join(dir, `${format}.log`);
        const log = createLogger({ level: 'info', destination: file, format });
        log.warn({ backend: 'b1' }, 'backend is unhealthy');
        log.flush();
        await waitFor(() => { try { return readFileSync(file, 'utf8').includes('backend is unhealthy'); } catch { return false; } }, 3000);
        const text = readFileSync(file, 'utf8');
        if (format === 'json') {
          const line = JSON.parse(text.trim()) as Record<string, unknown>;
          assert.equal(line.level, 40);
          assert.equal(line.msg, 'backend is unhealthy');
        } else {
          assert.throws(() => JSON.parse(text.trim()));
          assert.match(text, /WARN.*backend is unhealthy/);
          assert.match(text, /backend: "b1"/);
          assert.doesNotMatch(text, /\x1b\[/, 'no colour codes in a file');
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  async function startLines(extra: string[]): Promise<string> {
    const port = await freePort();
    const cli: CliProcess = startCli(['--host', '127.0.0.1', '--port', String(port), '--backend', urlOf(backends[0]!), ...extra]);
    try {
      await waitServing(`http://127.0.0.1:${port}`);
      assert.equal((await get(`http://127.0.0.1:${port}/?logged=1`)).status, 200);
      await waitFor(() => cli.output().includes('logged=1'), 3000);
      return cli.output();
    } finally {
      const exited = once(cli.child, 'exit');
      cli.child.kill('SIGTERM');
      await exited;
    }
  }

  test('the CLI: JSON by default when stdout is not a terminal, and with --log-format json', async () => {
    for (const flags of [[], ['--log-format', 'json']]) {
      const lines = (await startLines(flags)).trim().split('\n');
      for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
      assert.ok(lines.some((l) => (JSON.parse(l) as { msg?: string }).msg === 'fulcrum started'));
    }
  });

  test('the CLI with --log-format pretty: readable lines, access log included', async () => {
    const text = await startLines(['--log-format', 'pretty']);
    assert.match(text, /INFO.*fulcrum started/);
    assert.match(text, /logged=1/);
    assert.ok(text.split('\n').filter((l) => l.trim() !== '').every((l) => !l.startsWith('{')), text);
  });

  test('an unknown format is a usage error', () => {
    const out = spawnSync(process.execPath, [CLI, '--log-format', 'xml', '--backend', 'http://127.0.0.1:1'], { encoding: 'utf8' });
    assert.equal(out.status, 2);
    assert.match(out.stderr, /--log-format/);
  });
});
