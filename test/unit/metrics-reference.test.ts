/**
 * docs/observability.md's "Metrics reference" against the code: every
 * series a balancer registers, and every series name defined anywhere in
 * src/ (some, like the ACME certificate gauge, are registered only when
 * their feature is on), is documented with its type and labels; and every
 * documented series exists. The doc cannot drift from the code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBalancer } from '../../src/index.js';
import { silentLogger } from '../../src/observe/log.js';
import { parseExposition } from '../helpers/promql.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

interface Documented { type: string; labels: string[] }

/** documentedSeries reads the rows of the tables under "## Metrics reference": | `name` | type | `a`, `b` | meaning |. */
function documentedSeries(): Map<string, Documented> {
  const text = readFileSync(join(ROOT, 'docs/observability.md'), 'utf8');
  const start = text.indexOf('\n## Metrics reference\n');
  assert.ok(start >= 0, 'docs/observability.md has a "Metrics reference" section');
  const end = text.indexOf('\n## ', start + 1);
  const section = text.slice(start, end < 0 ? undefined : end);
  const out = new Map<string, Documented>();
  for (const m of section.matchAll(/^\| `(fulcrum_\w+)` \| (\w+) \|([^|]*)\|/gm)) {
    assert.ok(!out.has(m[1]!), `${m[1]} is documented twice`);
    out.set(m[1]!, { type: m[2]!, labels: [...m[3]!.matchAll(/`(\w+)`/g)].map((l) => l[1]!) });
  }
  return out;
}

/** sourceSeries finds the series names src/ defines: prom-client's `name: '...'` and observe/metrics.ts's collector('...'). */
function sourceSeries(dir = join(ROOT, 'src')): Set<string> {
  const out = new Set<string>();
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) for (const n of sourceSeries(path)) out.add(n);
    else if (entry.name.endsWith('.ts')) for (const m of readFileSync(path, 'utf8').matchAll(/(?:\bname:\s*|\bcollector\(\s*)'(fulcrum_\w+)'/g)) out.add(m[1]!);
  }
  return out;
}

test('the metrics reference documents every series Fulcrum registers or defines, with its type and labels, and nothing else', async () => {
  const documented = documentedSeries();
  const balancer = createBalancer({
    listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent', accessLog: false,
    backends: ['http://127.0.0.1:9'], healthCheck: { enabled: false }, rateLimit: { rate: 10 }, circuitBreaker: {},
  }, { logger: silentLogger() });
  try {
    // One request's worth of counters, so that every labelled series has a sample to read the labels from.
    balancer.metrics.record('default', 'default', 'b1', 200, 0.01);
    balancer.metrics.countRetry('default', 'connect-failure');
    balancer.metrics.recordGrpc('default', 14);
    balancer.metrics.mirrorSent('default', 'staging');
    balancer.metrics.mirrorDropped('default', 'staging', 'max-in-flight');
    const registered = balancer.metrics.registry.getMetricsAsArray();
    const scrape = parseExposition(await balancer.metrics.registry.metrics());
    assert.ok(registered.length > 40, `${registered.length} series registered`);
    for (const m of registered) {
      const doc = documented.get(m.name);
      assert.ok(doc !== undefined, `${m.name} (${m.type}) is registered but not in docs/observability.md`);
      assert.equal(doc.type, String(m.type), `${m.name}: documented type`);
      // Process metrics' labelled series depend on the moment (handles open, collections run); Fulcrum's own are always there.
      if (m.name.startsWith('fulcrum_process_')) continue;
      const seen = scrape.series.get(String(m.type) === 'histogram' ? `${m.name}_sum` : m.name);
      assert.ok(seen !== undefined, `${m.name} has a sample`);
      assert.deepEqual([...seen].sort(), [...doc.labels].sort(), `${m.name}: documented labels`);
    }
    const defined = sourceSeries();
    assert.ok(defined.has('fulcrum_requests_total') && defined.has('fulcrum_certificate_expiry_seconds'), [...defined].join(', '));
    for (const name of defined) assert.ok(documented.has(name), `${name} is defined in src/ but not in docs/observability.md`);
    const known = new Set([...registered.map((m) => m.name), ...defined]);
    for (const name of documented.keys()) assert.ok(known.has(name), `${name} is documented but Fulcrum neither registers nor defines it`);
  } finally {
    await balancer.close();
  }
});
