import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDuration, parseSize } from '../../src/config/duration.js';
import { loadConfig, validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/config-error.js';
import { getPickerFactory, registerPicker } from '../../src/balancer/registry.js';

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-config-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.message.split('\n');
  }
  assert.fail('expected a ConfigError');
}

describe('durations and sizes', () => {
  test('durations: seconds as numbers, units as strings', () => {
    assert.equal(parseDuration(10), 10_000);
    assert.equal(parseDuration('10s'), 10_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('1m'), 60_000);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('2.5s'), 2500);
    assert.equal(parseDuration('7'), 7000);
    assert.equal(parseDuration('soon'), undefined);
    assert.equal(parseDuration('-1s'), undefined);
    assert.equal(parseDuration(-1), undefined);
  });
  test('sizes: bytes as numbers, units as strings', () => {
    assert.equal(parseSize(1024), 1024);
    assert.equal(parseSize('64kb'), 65536);
    assert.equal(parseSize('10mb'), 10 * 1024 * 1024);
    assert.equal(parseSize('1gb'), 1024 ** 3);
    assert.equal(parseSize('12 zb'), undefined);
    assert.equal(parseSize(1.5), undefined);
  });
});

describe('loading', () => {
  test('the seed config.json loads unchanged', () => {
    const { config } = loadConfig({ file: 'examples/config.json', env: {} });
    assert.equal(config.listen[0]!.port, 8080);
    assert.equal(config.backends.length, 3);
    assert.equal(config.backends[2]!.healthy, false);
    assert.equal(config.healthCheck.interval, 10_000);
    assert.equal(config.algorithm, 'round-robin');
  });

  test('examples/fulcrum.yaml loads', () => {
    const { config } = loadConfig({ file: 'examples/fulcrum.yaml', env: {} });
    assert.equal(config.backends.length, 2);
    assert.deepEqual(config.healthCheck.expectStatus, [[200, 299]]);
    assert.equal(config.healthCheck.timeout, 2000);
    assert.equal(config.backends[0]!.healthy, true, 'native backends start healthy');
  });

  test('precedence: flags over environment over file over defaults', () => {
    const f = file('p.yaml', 'listen: { port: 9000 }\nbackends: [http://127.0.0.1:1]\nlogLevel: warn\n');
    assert.equal(loadConfig({ file: f, env: {} }).config.listen[0]!.port, 9000);
    assert.equal(loadConfig({ file: f, env: { FULCRUM_PORT: '9100' } }).config.listen[0]!.port, 9100);
    assert.equal(loadConfig({ file: f, env: { FULCRUM_PORT: '9100' }, flags: { port: 9200 } }).config.listen[0]!.port, 9200);
    assert.equal(loadConfig({ env: { FULCRUM_CONFIG: f } }).config.listen[0]!.port, 9000);
    assert.equal(loadConfig({ env: {} }).config.listen[0]!.port, 8080);
    const flagged = loadConfig({ file: f, env: {}, flags: { backends: ['http://127.0.0.1:2', 'http://127.0.0.1:3'], algorithm: 'round_robin' } }).config;
    assert.deepEqual(flagged.backends.map((b) => b.url), ['http://127.0.0.1:2', 'http://127.0.0.1:3']);
    assert.equal(flagged.algorithm, 'round-robin');
  });

  test('REDIS_URL switches the state store to redis', () => {
    const { config } = loadConfig({ env: { REDIS_URL: 'redis://127.0.0.1:6390' } });
    assert.equal(config.state.store, 'redis');
    assert.equal(config.state.redis.url, 'redis://127.0.0.1:6390');
  });
});

describe('errors name the file, the key path and what was expected', () => {
  test('every problem is reported at once', () => {
    const f = file('bad.yaml', [
      'listen: { port: 99999 }',
      'backends:',
      '  - url: localhost:8082',
      '  - url: http://127.0.0.1:8083',
      '    weight: -1',
      'healthCheck: { interval: soon }',
      'helthCheck: {}',
    ].join('\n'));
    const lines = problemsOf(() => loadConfig({ file: f, env: {} }));
    const text = lines.join('\n');
    assert.match(text, /bad\.yaml: listen\.port: expected at most 65535, got 99999/);
    assert.match(text, /bad\.yaml: backends\[0\]\.url: expected an http:\/\/, https:\/\/ or h2c:\/\/ URL, got "localhost:8082"/);
    assert.match(text, /bad\.yaml: backends\[1\]\.weight: /);
    assert.match(text, /bad\.yaml: healthCheck\.interval: expected a duration .*got "soon"/);
    assert.match(text, /bad\.yaml: unknown key "helthCheck"/);
    assert.equal(lines.length, 5);
  });

  test('seed keys are reported as written', () => {
    const f = file('seed.json', JSON.stringify({ port: 8080, servers: [{ url: 'nope' }], healthCheckInterval: 'x' }));
    const text = problemsOf(() => loadConfig({ file: f, env: {} })).join('\n');
    assert.match(text, /seed\.json: servers\[0\]\.url: expected a URL/);
    assert.match(text, /seed\.json: healthCheckInterval: expected a duration/);
  });

  test('unknown algorithm, duplicates, bad CIDRs', () => {
    const text = problemsOf(() => validateConfig({
      algorithm: 'fastest',
      backends: ['http://127.0.0.1:1', 'http://127.0.0.1:1'],
      trustedProxies: ['10.0.0.0/40'],
    }, 'inline')).join('\n');
    assert.match(text, /inline: algorithm: unknown algorithm "fastest": expected one of .*round-robin/);
    assert.match(text, /inline: backends\[1\]\.url: duplicate backend url/);
    assert.match(text, /inline: trustedProxies\[0\]: expected an IP address or CIDR/);
  });

  test('algorithm: the built-in names, in order, and any picker a program registers', () => {
    const config = { algorithm: 'test-custom', backends: ['http://127.0.0.1:1'] };
    assert.deepEqual(problemsOf(() => validateConfig(config, 'inline')), [
      'inline: algorithm: unknown algorithm "test-custom": expected one of round-robin, weighted-round-robin, least-connections, random, p2c, ip-hash, consistent-hash',
    ]);
    registerPicker({ name: 'test-custom', needsHashKey: false, build: (backends, options) => getPickerFactory('random')!.build(backends, options) });
    assert.equal(validateConfig(config, 'inline').algorithm, 'test-custom');
  });

  test('unreadable and unparsable files', () => {
    assert.match(problemsOf(() => loadConfig({ file: join(dir, 'missing.yaml'), env: {} }))[0]!, /missing\.yaml: cannot read config: file not found/);
    const broken = file('broken.json', '{"port": 80,');
    assert.match(problemsOf(() => loadConfig({ file: broken, env: {} }))[0]!, /broken\.json: cannot parse/);
    const txt = file('conf.txt', 'port: 1');
    assert.match(problemsOf(() => loadConfig({ file: txt, env: {} }))[0]!, /expected \.yaml, \.yml or \.json/);
    assert.match(problemsOf(() => loadConfig({ env: { FULCRUM_PORT: 'http' } }))[0]!, /environment: FULCRUM_PORT: expected a port number/);
  });

  test('a validated config is not validated twice (durations stay in ms)', () => {
    const once = validateConfig({ healthCheck: { interval: '10s' } });
    const twice = validateConfig(once);
    assert.equal(twice.healthCheck.interval, 10_000);
  });
});
