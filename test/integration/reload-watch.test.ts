/**
 * `watch: true`: a change of the config file reloads it, whether the file
 * is written in place or replaced (write elsewhere, rename over it, as
 * editors do); an invalid version is rejected and the old config stays;
 * turning `watch` off in the file stops the watching.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fulcrum } from '../../src/app/fulcrum.js';
import { request, startFileBalancer, waitFor } from '../helpers/balancer.js';
import { startBackends, urlOf, type DemoBackend } from '../helpers/backends.js';

/** QUIET_MS: longer than the watcher's debounce plus a reload, to show that nothing happened. */
const QUIET_MS = 800;

describe('watch: true', () => {
  let dir: string;
  let file: string;
  let backends: DemoBackend[];
  let balancer: Fulcrum;
  let base: string;

  const write = (lines: string[], how: 'in-place' | 'replace' = 'in-place'): void => {
    const text = ['listen: { host: 127.0.0.1, port: 0 }', 'logLevel: silent', 'accessLog: false', 'healthCheck: { enabled: false }', ...lines].join('\n');
    if (how === 'in-place') {
      writeFileSync(file, text);
      return;
    }
    const temp = join(dir, '.fulcrum.yaml.swp');
    writeFileSync(temp, text);
    renameSync(temp, file);
  };
  const ids = (): string[] => balancer.pool.snapshot.map((b) => b.id);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-watch-'));
    file = join(dir, 'fulcrum.yaml');
    backends = await startBackends(2, 'Watch');
    write(['watch: true', 'backends:', `  - { id: a, url: "${urlOf(backends[0]!)}" }`]);
    balancer = await startFileBalancer(file);
    base = `http://127.0.0.1:${balancer.port}`;
  });
  after(async () => {
    await balancer.close({ drainTimeout: 2000 });
    await Promise.all(backends.map((b) => b.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('a file written in place is reloaded', async () => {
    write(['watch: true', 'backends:', `  - { id: a, url: "${urlOf(backends[0]!)}" }`, `  - { id: b, url: "${urlOf(backends[1]!)}" }`]);
    await waitFor(() => ids().length === 2, 5000);
    assert.deepEqual(ids(), ['a', 'b']);
    assert.equal(balancer.lastReload?.ok, true);
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add(String((await request(`${base}/`)).headers['x-backend']));
    assert.deepEqual([...seen].sort(), ['Watch 1', 'Watch 2']);
  });

  test('a file replaced by rename (as editors save) is reloaded, and so is the next change', async () => {
    write(['watch: true', 'backends:', `  - { id: a, url: "${urlOf(backends[0]!)}", weight: 4 }`], 'replace');
    await waitFor(() => ids().length === 1 && balancer.pool.get('a')!.weight === 4, 5000);
    // The watch survived the replacement of the file.
    write(['watch: true', 'backends:', `  - { id: a, url: "${urlOf(backends[0]!)}", weight: 2 }`], 'replace');
    await waitFor(() => balancer.pool.get('a')!.weight === 2, 5000);
  });

  test('saving the same content does not reload', async () => {
    const last = balancer.lastReload;
    write(['watch: true', 'backends:', `  - { id: a, url: "${urlOf(backends[0]!)}", weight: 2 }`]);
    await new Promise((r) => setTimeout(r, QUIET_MS));
    assert.equal(balancer.lastReload, last);
  });

  test('an invalid version is rejected and reported; the old config keeps running until a valid one arrives', async () => {
    write(['watch: true', 'backends:', '  - { id: a, url: "not a url" }']);
    await waitFor(() => balancer.lastReload?.ok === false, 5000);
    assert.match(balancer.lastReload!.problems!.join('\n'), /backends\[0\]\.url/);
    assert.deepEqual(ids(), ['a']);
    assert.equal((await request(`${base}/`)).status, 200);
    const status = JSON.parse((await request(`${base}/status`)).body) as { lastReload: { ok: boolean } };
    assert.equal(status.lastReload.ok, false);
    write(['watch: true', 'backends:', `  - { id: a, url: "${urlOf(backends[0]!)}" }`, `  - { id: b, url: "${urlOf(backends[1]!)}" }`]);
    await waitFor(() => balancer.lastReload?.ok === true && ids().length === 2, 5000);
  });

  test('watch: false in the file stops the watching; later changes wait for an explicit reload', async () => {
    write(['watch: false', 'backends:', `  - { id: a, url: "${urlOf(backends[0]!)}" }`]);
    await waitFor(() => balancer.config.watch === false, 5000);
    assert.deepEqual(ids(), ['a']);
    write(['watch: false', 'backends:', `  - { id: a, url: "${urlOf(backends[0]!)}" }`, `  - { id: b, url: "${urlOf(backends[1]!)}" }`]);
    await new Promise((r) => setTimeout(r, QUIET_MS));
    assert.deepEqual(ids(), ['a']);
    const result = await balancer.reload();
    assert.equal(result.ok, true);
    assert.deepEqual(ids(), ['a', 'b']);
  });
});
