/**
 * The operations kit (deploy/grafana/fulcrum-dashboard.json,
 * deploy/prometheus/alerts.yml and its unit tests), checked by real tools
 * and a real balancer: promtool checks and unit-tests the rules and parses
 * every dashboard query; a Fulcrum with two services, routes, a rate limit
 * and health checks serves a short burst (successes, a 500, a retried
 * connect error, a 429), and every series the dashboard and the rules read
 * must be in its /metrics answer, with the labels their matchers use.
 *
 * promtool comes from Debian's `prometheus` package (.ci/run installs it).
 * Without it the promtool tests are skipped with a message, except when
 * FULCRUM_REQUIRE_PROMTOOL is set (as .ci/run does), where they fail.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { get, startBalancer, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { freePort, startBackends, urlOf, type DemoBackend } from '../helpers/backends.js';
import { family, labelValuesSelector, parseExposition, selectors, type Scrape, type Selector } from '../helpers/promql.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const RULES = join(ROOT, 'deploy/prometheus/alerts.yml');
const RULE_TESTS = join(ROOT, 'deploy/prometheus/alerts.test.yml');
const DASHBOARD = join(ROOT, 'deploy/grafana/fulcrum-dashboard.json');

const promtoolFound = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).error === undefined;
const promtoolRequired = (process.env.FULCRUM_REQUIRE_PROMTOOL ?? '') !== '';
const SKIP_PROMTOOL = promtoolFound || promtoolRequired
  ? false
  : 'promtool is not installed: apt-get install -y --no-install-recommends prometheus (Debian\'s package provides /usr/bin/promtool; .ci/run installs it)';

function promtool(...args: string[]): { status: number | null; output: string } {
  const run = spawnSync('promtool', args, { encoding: 'utf8', timeout: 30_000 });
  if (run.error !== undefined) throw new Error(`promtool could not run: ${run.error.message}`);
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/** Grafana's JSON model, as far as these checks read it. */
interface Target { expr?: string; refId?: string; datasource?: { type?: string; uid?: string } }
interface Panel { id: number; type: string; title: string; datasource?: { type?: string; uid?: string }; targets?: Target[]; panels?: Panel[]; gridPos?: { h: number; w: number; x: number; y: number } }
interface Variable { name: string; type: string; query?: string | { query: string }; multi?: boolean; includeAll?: boolean }
interface Dashboard { schemaVersion: number; uid: string; title: string; panels: Panel[]; templating: { list: Variable[] } }

interface AlertRule { alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }

const dashboard = (): Dashboard => JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const rules = (): AlertRule[] => (parse(readFileSync(RULES, 'utf8')) as { groups: { rules: AlertRule[] }[] }).groups.flatMap((g) => g.rules);

/** allPanels flattens rows (collapsed rows keep their panels inside). */
function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

function variableQuery(v: Variable): string {
  return typeof v.query === 'string' ? v.query : v.query?.query ?? '';
}

/** dashboardExpressions: every panel target's PromQL, and the series of every label_values variable. */
function dashboardExpressions(d: Dashboard): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of allPanels(d)) for (const t of p.targets ?? []) if (t.expr !== undefined) out.push({ where: `panel "${p.title}" ${t.refId ?? ''}`, expr: t.expr });
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    const lv = labelValuesSelector(variableQuery(v));
    assert.ok(lv !== null, `variable ${v.name}: expected a label_values(<series>, <label>) query, got ${JSON.stringify(v.query)}`);
    out.push({ where: `variable ${v.name}`, expr: lv.series });
  }
  return out;
}

/** asPromQL replaces Grafana's variables with what they expand to, so promtool can parse the query. */
function asPromQL(expr: string): string {
  return expr
    .replace(/\$__rate_interval|\$\{__rate_interval\}/g, '5m')
    .replace(/\$__interval|\$\{__interval\}/g, '1m')
    .replace(/\$__range|\$\{__range\}/g, '1h')
    .replace(/\$\{?\w+(:\w+)?\}?/g, '.*');
}

/** Series Prometheus makes itself for every target; they are never in an exporter's answer. */
const SCRAPE_SERIES = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped', 'scrape_samples_post_metric_relabeling', 'scrape_series_added']);
/** Labels Prometheus adds to every scraped series (the target's). */
const TARGET_LABELS = new Set(['job', 'instance']);

/** missingSeries lists what the scrape lacks of the selectors: unknown metrics, metrics without samples, labels no sample has. */
function missingSeries(used: readonly { where: string; selector: Selector }[], scrape: Scrape): string[] {
  const problems = new Set<string>();
  for (const { where, selector: { name, labels } } of used) {
    if (SCRAPE_SERIES.has(name)) continue;
    if (family(scrape, name) === undefined) { problems.add(`${where}: ${name} is not a metric Fulcrum exports`); continue; }
    const seen = scrape.series.get(name);
    if (seen === undefined) { problems.add(`${where}: ${name} has no samples after the burst`); continue; }
    for (const label of labels) if (!TARGET_LABELS.has(label) && !seen.has(label)) problems.add(`${where}: ${name} has no label "${label}"`);
  }
  return [...problems];
}

function usedSelectors(): { where: string; selector: Selector }[] {
  const used: { where: string; selector: Selector }[] = [];
  for (const { where, expr } of dashboardExpressions(dashboard())) for (const selector of selectors(expr)) used.push({ where: `dashboard ${where}`, selector });
  for (const r of rules()) for (const selector of selectors(r.expr)) used.push({ where: `rule ${r.alert ?? r.record}`, selector });
  return used;
}

describe('the PromQL selector extractor', () => {
  test('finds metric names and their matcher labels, not functions, keywords, label lists, durations or variables', () => {
    const got = selectors(`histogram_quantile(0.99, sum by (route, le) (rate(fulcrum_request_duration_seconds_bucket{route=~"$route", service=~"a|b"}[$__rate_interval])))
      / on (route) group_left (service) max without (backend) (fulcrum_backend_up offset 5m) > bool 1e3
      or absent(up{job="fulcrum"}) unless sum(rate(x_total[5m:1m])) and ignoring(code) y{code!~"5.."} # a comment naming not_a_metric`);
    assert.deepEqual(got, [
      { name: 'fulcrum_request_duration_seconds_bucket', labels: ['route', 'service'] },
      { name: 'fulcrum_backend_up', labels: [] },
      { name: 'up', labels: ['job'] },
      { name: 'x_total', labels: [] },
      { name: 'y', labels: ['code'] },
    ]);
    assert.deepEqual(labelValuesSelector('label_values(fulcrum_backend_up{service=~"$service"}, backend)'), { series: 'fulcrum_backend_up{service=~"$service"}', label: 'backend' });
  });

  test('a histogram\'s _bucket, _sum and _count belong to it; a gauge\'s do not', () => {
    const scrape = parseExposition([
      '# TYPE h histogram', 'h_bucket{le="1",a="x"} 1', 'h_sum 1', 'h_count 1',
      '# TYPE g gauge', 'g{b="y"} 2', '',
    ].join('\n'));
    assert.deepEqual(['h_bucket', 'h_sum', 'h_count', 'h', 'g', 'g_count'].map((n) => family(scrape, n)), ['h', 'h', 'h', undefined, 'g', undefined]);
    assert.deepEqual([...scrape.series.get('h_bucket')!], ['le', 'a']);
  });
});

describe('alerting rules (promtool)', { skip: SKIP_PROMTOOL }, () => {
  test('promtool check rules accepts deploy/prometheus/alerts.yml', () => {
    const { status, output } = promtool('check', 'rules', RULES);
    assert.equal(status, 0, output);
    assert.match(output, new RegExp(`SUCCESS: ${rules().length} rules found`));
  });

  test('every rule has a for:, a severity and a summary and description', () => {
    const list = rules();
    assert.deepEqual(list.map((r) => r.alert).sort(), ['FulcrumBackendsEjected', 'FulcrumHighErrorRatio', 'FulcrumHighLatencyP99', 'FulcrumInstanceDown',
      'FulcrumNoHealthyBackend', 'FulcrumRateLimitStoreFailing', 'FulcrumStateStoreDegraded']);
    for (const r of list) {
      assert.match(r.for ?? '', /^\d+[smh]$/, `${r.alert}: for`);
      assert.ok(['critical', 'warning', 'info'].includes(r.labels?.severity ?? ''), `${r.alert}: severity`);
      assert.ok((r.annotations?.summary ?? '') !== '' && (r.annotations?.description ?? '') !== '', `${r.alert}: summary and description`);
    }
  });

  test('promtool test rules passes deploy/prometheus/alerts.test.yml, which tests every alert firing and not firing', () => {
    const { status, output } = promtool('test', 'rules', RULE_TESTS);
    assert.equal(status, 0, output);
    assert.match(output, /SUCCESS/);
    const tests = (parse(readFileSync(RULE_TESTS, 'utf8')) as { tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[] }).tests.flatMap((t) => t.alert_rule_test);
    for (const r of rules()) {
      const cases = tests.filter((t) => t.alertname === r.alert);
      assert.ok(cases.some((c) => c.exp_alerts.length > 0), `${r.alert}: no test where it fires`);
      assert.ok(cases.some((c) => c.exp_alerts.length === 0), `${r.alert}: no test where it stays quiet`);
    }
  });

  test('the rule tests notice a changed threshold (they can fail)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-rules-'));
    try {
      const text = readFileSync(RULES, 'utf8');
      assert.ok(text.includes(') > 0.05'), 'the error-ratio threshold this test changes');
      writeFileSync(join(dir, 'alerts.yml'), text.replace(') > 0.05', ') > 0.5'));
      writeFileSync(join(dir, 'alerts.test.yml'), readFileSync(RULE_TESTS));
      const { status, output } = promtool('test', 'rules', join(dir, 'alerts.test.yml'));
      assert.notEqual(status, 0, output);
      assert.match(output, /FulcrumHighErrorRatio/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('every dashboard query is valid PromQL (promtool parses each as a recording rule)', () => {
    const exprs = dashboardExpressions(dashboard());
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-dashboard-'));
    try {
      const file = join(dir, 'dashboard-queries.yml');
      writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `fulcrum_dashboard:query_${i}`, expr: asPromQL(e.expr) })) }] }));
      const { status, output } = promtool('check', 'rules', file);
      assert.equal(status, 0, output);
      assert.match(output, new RegExp(`SUCCESS: ${exprs.length} rules found`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the Grafana dashboard', () => {
  test('is an importable dashboard: schema version, uid, unique panel ids, a datasource and targets on every panel', () => {
    const d = dashboard();
    assert.ok(d.schemaVersion >= 36 && d.schemaVersion <= 41, `schemaVersion ${d.schemaVersion}`);
    assert.match(d.uid, /^[\w-]{1,40}$/);
    assert.equal(d.title, 'Fulcrum');
    const panels = allPanels(d);
    assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'panel ids are unique');
    const graphs = panels.filter((p) => p.type !== 'row');
    assert.ok(graphs.length >= 20, `${graphs.length} panels`);
    for (const p of panels) {
      assert.ok(p.gridPos !== undefined && p.gridPos.w > 0 && p.gridPos.h > 0 && p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}": gridPos`);
      if (p.type === 'row') { assert.equal(p.targets, undefined, `row "${p.title}" has no queries`); continue; }
      assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' }, `panel "${p.title}": datasource`);
      assert.ok(Array.isArray(p.targets) && p.targets.length > 0, `panel "${p.title}": targets`);
      for (const t of p.targets) {
        assert.ok(typeof t.expr === 'string' && t.expr.trim() !== '', `panel "${p.title}" ${t.refId}: expr`);
        assert.deepEqual(t.datasource, p.datasource, `panel "${p.title}" ${t.refId}: datasource`);
      }
      assert.equal(new Set(p.targets.map((t) => t.refId)).size, p.targets.length, `panel "${p.title}": refIds are unique`);
    }
  });

  test('defines every variable it uses, and matches multi-value variables with =~ only', () => {
    const d = dashboard();
    const defined = new Map(d.templating.list.map((v) => [v.name, v]));
    assert.equal(defined.get('datasource')?.type, 'datasource');
    assert.equal(defined.get('datasource')?.query, 'prometheus');
    for (const name of ['service', 'route', 'backend']) assert.equal(defined.get(name)?.type, 'query', `variable ${name}`);
    const text = JSON.stringify(d);
    const used = new Set([...text.matchAll(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g)].map((m) => m[1] ?? m[2] ?? m[3]!));
    for (const name of used) if (!name.startsWith('__')) assert.ok(defined.has(name), `$${name} is used but not defined`);
    for (const name of ['datasource', 'service', 'route', 'backend']) assert.ok(used.has(name), `$${name} is defined but never used`);
    for (const { where, expr } of dashboardExpressions(d)) {
      for (const m of expr.matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"\$\{?(\w+)/g)) {
        if (defined.get(m[3]!)?.multi === true) assert.ok(m[2] === '=~' || m[2] === '!~', `${where}: ${m[1]}${m[2]}"$${m[3]}" needs =~ (a multi-value variable expands to a|b)`);
      }
    }
  });
});

describe('every series the dashboard and the rules read is in /metrics', () => {
  let web: DemoBackend[] = [];
  let api: DemoBackend[] = [];
  let tb: TestBalancer;
  let scrapeText = '';

  before(async () => {
    web = await startBackends(2, 'Web');
    api = await startBackends(1, 'Api');
    const dead = `http://127.0.0.1:${await freePort()}`;
    const checks = { path: '/health', interval: '200ms', timeout: '500ms' };
    tb = await startBalancer({
      services: {
        web: { backends: web.map(urlOf), healthCheck: checks },
        // The dead backend fails its first attempt, which is retried on the live one; outlier detection ejects it at once.
        api: { backends: [dead, urlOf(api[0]!)], algorithm: 'round-robin', healthCheck: { ...checks, interval: '10s' }, outlierDetection: { consecutiveFailures: 1 } },
      },
      routes: [
        { name: 'limited', match: { path: { prefix: '/limited' } }, service: 'web', rewrite: { stripPrefix: '/limited' }, rateLimit: { rate: 1, per: '1m' } },
        { name: 'api', match: { path: { prefix: '/api/' } }, service: 'api', rewrite: { stripPrefix: '/api' } },
        { name: 'site', service: 'web' },
      ],
    });
    await waitFor(() => tb.balancer.services.get('web')!.pool.snapshot.every((b) => b.state.lastCheckOk === true), 3000);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await get(`${tb.url}/`)).status);
    statuses.push((await get(`${tb.url}/status/500`)).status);
    for (let i = 0; i < 4; i++) statuses.push((await get(`${tb.url}/api/`)).status);
    statuses.push((await get(`${tb.url}/limited`)).status, (await get(`${tb.url}/limited`)).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 500, 200, 200, 200, 200, 200, 429], 'the burst');
    scrapeText = (await get(`${tb.url}/metrics`, { headers: { accept: 'text/plain' } })).body;
  });

  after(async () => {
    await tb?.close();
    for (const b of [...web, ...api]) await b.close();
  });

  test('the burst shows in the scrape: 2xx, 5xx and 429 answers, a retry, an ejection', () => {
    assert.match(scrapeText, /^fulcrum_requests_total\{route="site",service="web",backend="b\d+",code="500"\} 1$/m);
    assert.match(scrapeText, /^fulcrum_requests_total\{route="limited",service="[^"]+",backend="none",code="429"\} 1$/m);
    assert.match(scrapeText, /^fulcrum_requests_total\{route="api",service="api",backend="b\d+",code="200"\} 4$/m);
    assert.match(scrapeText, /^fulcrum_ratelimited_total 1$/m);
    assert.match(scrapeText, /^fulcrum_retries_total\{service="[^"]+",reason="[^"]+"\} [1-9]\d*$/m);
    assert.match(scrapeText, /^fulcrum_backend_ejections_total\{service="api",backend="b\d+"\} 1$/m);
  });

  test('every metric named in the dashboard\'s and the rules\' queries has samples, with the labels their matchers use', () => {
    const used = usedSelectors();
    const names = new Set(used.map((u) => u.selector.name));
    // The extractor found the series it should (a broken one would find nothing, and pass).
    for (const n of ['fulcrum_requests_total', 'fulcrum_request_duration_seconds_bucket', 'fulcrum_backend_up', 'fulcrum_backend_ejections_total',
      'fulcrum_state_store_degraded', 'fulcrum_ratelimit_store_errors_total', 'fulcrum_retries_total', 'fulcrum_ratelimited_total', 'up']) {
      assert.ok(names.has(n), `${n} among the queried series (${[...names].join(', ')})`);
    }
    assert.deepEqual(missingSeries(used, parseExposition(scrapeText)), []);
  });

  test('a series missing from the scrape, or a label it lacks, is reported (the check can fail)', () => {
    const without = scrapeText.split('\n').filter((l) => !l.includes('fulcrum_backend_ejections_total')).join('\n');
    const relabelled = scrapeText.replace(/^(fulcrum_backend_up\{)service=/gm, '$1svc=');
    const problems = [...missingSeries(usedSelectors(), parseExposition(without)), ...missingSeries(usedSelectors(), parseExposition(relabelled))];
    assert.ok(problems.some((p) => p.includes('fulcrum_backend_ejections_total is not a metric Fulcrum exports')), problems.join('\n'));
    assert.ok(problems.some((p) => p.includes('fulcrum_backend_up has no label "service"')), problems.join('\n'));
    const noSamples = scrapeText.split('\n').filter((l) => !l.startsWith('fulcrum_state_store_degraded{')).join('\n');
    assert.ok(missingSeries(usedSelectors(), parseExposition(noSamples)).some((p) => p.includes('fulcrum_state_store_degraded has no samples')));
  });
});
