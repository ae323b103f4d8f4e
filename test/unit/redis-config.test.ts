/**
 * The forms of `state.redis` (a URL, Sentinel, Cluster), the REDIS_URL
 * forms (redis://, rediss://, redis+sentinel://), what each resolves to for
 * the client, and the errors: each names its key path and what was expected.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, validateConfig } from '../../src/config/load.js';
import { parseSentinelUrl } from '../../src/config/redis-url.js';
import { ConfigError } from '../../src/core/config-error.js';
import { describeTarget, redisTarget } from '../../src/state/redis-client.js';
import { redactConfig } from '../../src/admin/api.js';

function problemsOf(redis: Record<string, unknown>): string[] {
  try {
    validateConfig({ state: { store: 'redis', redis } }, 'inline');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message.split('\n');
  }
  assert.fail('expected a ConfigError');
}

const redisOf = (raw: Record<string, unknown>, env: Record<string, string> = {}) => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-redis-config-'));
  try {
    const file = join(dir, 'f.json');
    writeFileSync(file, JSON.stringify({ state: { store: 'redis', redis: raw } }));
    return loadConfig({ file, env }).config.state.redis;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

describe('state.redis forms', () => {
  test('a URL (the default), Sentinel, and Cluster resolve to their mode', () => {
    assert.deepEqual(redisTarget(redisOf({})), { mode: 'standalone', url: 'redis://127.0.0.1:6379', options: {} });
    assert.deepEqual(redisTarget(redisOf({ url: 'rediss://r.internal:6380', password: 'pw', db: 2 })),
      { mode: 'standalone', url: 'rediss://r.internal:6380', options: { password: 'pw', db: 2 } });
    const sentinel = redisTarget(redisOf({ sentinels: [{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2', port: 26380 }], name: 'mymaster', password: 'm', sentinelPassword: 's', db: 1 }));
    assert.equal(sentinel.mode, 'sentinel');
    assert.deepEqual(sentinel.mode === 'sentinel' && [sentinel.options.sentinels, sentinel.options.name, sentinel.options.password, sentinel.options.sentinelPassword, sentinel.options.db],
      [[{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2', port: 26380 }], 'mymaster', 'm', 's', 1]);
    assert.equal(describeTarget(sentinel), 'mymaster via 10.0.0.1:26379,10.0.0.2:26380');
    const cluster = redisTarget(redisOf({ cluster: [{ host: '10.0.0.5', port: 7000 }], username: 'u', password: 'p' }));
    assert.deepEqual(cluster, { mode: 'cluster', nodes: [{ host: '10.0.0.5', port: 7000 }], options: { username: 'u', password: 'p' } });
  });

  test('REDIS_URL: redis+sentinel:// sets Sentinel, and replaces the mode the file chose', () => {
    const env = { REDIS_URL: 'redis+sentinel://app:s%40cret@10.0.0.1:26379,10.0.0.2/mymaster/3?sentinelPassword=sp' };
    const redis = redisOf({ cluster: [{ host: '10.0.0.5', port: 7000 }], keyPrefix: 'eu:' }, env);
    assert.equal(redis.cluster, undefined);
    assert.equal(redis.keyPrefix, 'eu:', 'the file\'s other settings stay');
    const target = redisTarget(redis);
    assert.ok(target.mode === 'sentinel');
    assert.deepEqual(target.options.sentinels, [{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2', port: 26379 }]);
    assert.deepEqual([target.options.name, target.options.db, target.options.username, target.options.password, target.options.sentinelPassword], ['mymaster', 3, 'app', 's@cret', 'sp']);
    assert.equal(redisTarget(redisOf({}, { REDIS_URL: 'redis://10.0.0.9:6379' })).mode, 'standalone');
  });

  test('parseSentinelUrl: the documented form only', () => {
    assert.deepEqual(parseSentinelUrl('redis+sentinel://h:1/m'), { sentinels: [{ host: 'h', port: 1 }], name: 'm' });
    assert.deepEqual(parseSentinelUrl('redis+sentinel://[::1]:26379/m/'), { sentinels: [{ host: '::1', port: 26379 }], name: 'm' });
    for (const bad of ['redis+sentinel://h:1', 'redis+sentinel://h:99999/m', 'redis+sentinel:///m', 'redis://h/m', 'redis+sentinel://h:1/m/x']) {
      assert.equal(parseSentinelUrl(bad), null, bad);
    }
  });

  test('mistakes name the key path and what was expected', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ cluster: [{ host: 'a', port: 7000 }], db: 1 }, 'inline: state.redis.db: a Redis Cluster has only database 0: remove db in cluster mode'],
      [{ cluster: [{ host: 'a', port: 7000 }], keyPrefix: '{x}:' }, 'inline: state.redis.keyPrefix: must not contain "{" or "}" in cluster mode (Fulcrum adds its own hash tags)'],
      [{ sentinels: [{ host: 'a', port: 26379 }] }, 'inline: state.redis.name: required with sentinels: the name of the Sentinel master group'],
      [{ name: 'm' }, 'inline: state.redis.name: only with sentinels (a redis+sentinel:// url names the group itself)'],
      [{ url: 'redis://a:6379', cluster: [{ host: 'a', port: 7000 }] }, 'inline: state.redis.cluster: set one of url, sentinels or cluster, not url and cluster'],
      [{ cluster: [] }, 'inline: state.redis.cluster: expected at least 1 item(s)'],
      [{ cluster: [{ host: 'a', port: 0 }] }, 'inline: state.redis.cluster[0].port: expected a port number, got 0'],
      [{ sentinels: [{ host: 'a' }], name: 'm' }, 'inline: state.redis.sentinels[0].port: required: expected number'],
      [{ url: 'redis+sentinel://a:26379' }, 'inline: state.redis.url: expected a redis:// or rediss:// URL such as "redis://127.0.0.1:6379", or "redis+sentinel://host1:26379,host2:26379/mymaster", got "redis+sentinel://a:26379"'],
      [{ tls: { cert: 'c.pem' } }, 'inline: state.redis.tls: set both cert and key, or neither'],
    ];
    for (const [redis, problem] of cases) {
      const lines = problemsOf(redis);
      assert.ok(lines.some((l) => l.startsWith(problem)), `${JSON.stringify(redis)}:\n${lines.join('\n')}`);
    }
  });

  test('TLS files are read when the store is made; a missing one names its key', () => {
    assert.throws(() => redisTarget(redisOf({ tls: { ca: '/nonexistent/ca.pem' } })), /state\.redis\.tls\.ca: cannot read \/nonexistent\/ca\.pem/);
  });

  test('the admin API redacts the passwords of every form', () => {
    const shown = redactConfig({ url: 'redis+sentinel://app:secret@h1:26379,h2:26379/m', password: 'pw', sentinelPassword: 'sp' }) as Record<string, string>;
    assert.deepEqual(shown, { url: 'redis+sentinel://app:redacted@h1:26379,h2:26379/m', password: '[redacted]', sentinelPassword: '[redacted]' });
  });
});
