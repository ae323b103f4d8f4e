/**
 * The dashboard in real headless Chromium (Debian package `chromium`,
 * driven by playwright-core): every backend is shown; a backend that
 * stops turns unhealthy and recovers without a page reload; the page
 * reconnects when its feed drops; with the admin token it drains and
 * enables a backend; it renders 100 backends. Screenshots go to
 * test-output/, and the page must log no console errors.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startBalancer, request, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { startBackends, urlOf, type DemoBackend } from '../helpers/backends.js';
import { startDemoBackend } from '../../src/demo/backend.js';
import { dashboardOf } from '../../src/admin/dashboard/index.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'browser-admin-token-0123456789';
const OUT = resolve('test-output');
const WAIT = 15_000;

describe('dashboard in Chromium', () => {
  let browser: Browser;
  let backends: DemoBackend[];
  let lb: TestBalancer;
  let traffic: NodeJS.Timeout | null = null;
  const problems: string[] = [];

  const watchConsole = (page: Page): void => {
    page.on('console', (msg) => { if (msg.type() === 'error') problems.push(`console: ${msg.text()}`); });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  };

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run "apt-get update && apt-get install -y chromium"`);
    mkdirSync(OUT, { recursive: true });
    backends = await startBackends(3, 'Browser');
    lb = await startBalancer({
      backends: backends.map((b, i) => ({ id: `b${i + 1}`, url: urlOf(b) })),
      admin: { token: TOKEN },
      healthCheck: { interval: '200ms', timeout: '1s', healthyThreshold: 1, unhealthyThreshold: 1 },
      retries: { attempts: 2 },
    });
    // A little steady traffic, for the figures and charts.
    traffic = setInterval(() => {
      void request(`${lb.url}/`).catch(() => undefined);
      void request(`${lb.url}/delay?ms=${Math.floor(Math.random() * 40)}`).catch(() => undefined);
    }, 100);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    if (traffic !== null) clearInterval(traffic);
    await browser?.close();
    await lb?.close();
    await Promise.all((backends ?? []).map((b) => b.close()));
  });

  test('shows every backend, follows one going down and coming back without reloading, reconnects, drains and enables', async () => {
    const page = await browser.newPage({ viewport: { width: 1360, height: 1000 }, colorScheme: 'light' });
    watchConsole(page);
    await page.goto(`${lb.url}/dashboard`);
    for (const id of ['b1', 'b2', 'b3']) await page.waitForSelector(`#rows tr[data-id="${id}"][data-health="ok"]`, { timeout: WAIT });
    assert.equal(await page.locator('#rows tr').count(), 3);
    assert.equal(await page.textContent('#algorithm'), 'round-robin');
    assert.equal(await page.textContent(`#rows tr[data-id="b2"] .url`), `${urlOf(backends[1]!)}/`);
    await page.waitForSelector('#conn[data-state="live"]', { timeout: WAIT });
    // A marker that a page reload would lose.
    await page.evaluate('window.marker = 42');

    // Stop b2: its row turns unhealthy, with the reason.
    const port = backends[1]!.port;
    await backends[1]!.close();
    await page.waitForSelector('#rows tr[data-id="b2"][data-health="bad"]', { timeout: WAIT });
    assert.equal(await page.textContent('#rows tr[data-id="b2"] .badge'), 'down');
    assert.match(String(await page.textContent('#rows tr[data-id="b2"] .reasons')), /active-check-failed/);
    await waitFor(async () => (await page.textContent('#t-healthy')) === '2 / 3', WAIT, 100);
    await page.waitForSelector('#events li', { timeout: WAIT });
    assert.match(String(await page.textContent('#events li:first-child')), /b2 out/);

    // Restart it on the same port: it recovers.
    backends[1] = await startDemoBackend({ port, host: '127.0.0.1', name: 'Browser 2' });
    await page.waitForSelector('#rows tr[data-id="b2"][data-health="ok"]', { timeout: WAIT });
    await waitFor(async () => (await page.textContent('#t-healthy')) === '3 / 3', WAIT, 100);
    assert.equal(await page.evaluate('window.marker'), 42, 'the page was not reloaded');

    // The feed drops: the page reconnects by itself and keeps updating.
    dashboardOf(lb.balancer)!.feed.disconnectAll();
    await page.waitForSelector('#conn[data-state="reconnecting"]', { timeout: WAIT });
    await page.waitForSelector('#conn[data-state="live"]', { timeout: WAIT });
    lb.balancer.ops.setWeight('b3', 5, 'admin', 'test');
    await waitFor(async () => (await page.textContent('#rows tr[data-id="b3"] td:nth-child(3)')) === '5', WAIT, 100);
    lb.balancer.ops.setWeight('b3', 1, 'admin', 'test');

    // Admin: without a token there are no actions; with it, drain and enable.
    assert.equal(await page.isVisible('#rows tr[data-id="b1"] td.actions button'), false);
    await page.click('#token-toggle');
    await page.fill('#token-input', TOKEN);
    await page.click('#token-form button[type="submit"]');
    await page.waitForSelector('body.has-token', { timeout: WAIT });
    await page.click('#rows tr[data-id="b1"] td.actions button');
    await page.waitForSelector('#rows tr[data-id="b1"][data-state="draining"][data-health="warn"]', { timeout: WAIT });
    assert.equal(lb.balancer.pool.get('b1')!.state.reasons & 4, 4, 'b1 is draining on the balancer');
    assert.equal(await page.textContent('#rows tr[data-id="b1"] td.actions button'), 'Enable');
    assert.equal(await page.evaluate("sessionStorage.getItem('fulcrum.adminToken')"), TOKEN);
    await waitFor(async () => (await page.textContent('#t-rps')) !== '–' && (await page.textContent('#t-p99')) !== '–', WAIT, 100);
    await page.waitForTimeout(1500); // let the charts gather a few points for the screenshot
    await page.screenshot({ path: resolve(OUT, 'dashboard.png'), fullPage: true });
    await page.click('#rows tr[data-id="b1"] td.actions button');
    await page.waitForSelector('#rows tr[data-id="b1"][data-state="enabled"][data-health="ok"]', { timeout: WAIT });
    assert.equal(lb.balancer.pool.get('b1')!.healthy, true);

    await page.emulateMedia({ colorScheme: 'dark' });
    await page.waitForTimeout(600);
    await page.screenshot({ path: resolve(OUT, 'dashboard-dark.png'), fullPage: true });
    await page.close();
    assert.deepEqual(problems, []);
  });

  test('keeps up with 100 backends', async () => {
    const many = await startBalancer({
      // Nothing listens on these ports and nothing is sent there: checks are off and no request is made.
      backends: Array.from({ length: 100 }, (_, i) => ({ id: `node-${String(i + 1).padStart(3, '0')}`, url: `http://127.0.0.1:${20000 + i}` })),
      healthCheck: { enabled: false },
    });
    try {
      many.balancer.ops.setState('node-007', 'disabled', 'admin', 'test');
      const page = await browser.newPage({ viewport: { width: 1360, height: 1000 }, colorScheme: 'dark' });
      watchConsole(page);
      await page.goto(`${many.url}/dashboard`);
      await waitFor(async () => (await page.locator('#rows tr').count()) === 100, WAIT, 100);
      await page.waitForSelector('#rows tr[data-id="node-007"][data-health="off"]', { timeout: WAIT });
      assert.equal(await page.textContent('#t-healthy'), '99 / 100');
      // Rows are updated in place: the same elements after several ticks.
      await page.evaluate("document.querySelector('#rows tr[data-id=\"node-050\"]').tag = 1");
      await page.waitForTimeout(1200);
      assert.equal(await page.evaluate("document.querySelector('#rows tr[data-id=\"node-050\"]').tag"), 1);
      await page.fill('#filter', 'node-00');
      await waitFor(async () => (await page.locator('#rows tr:not([hidden])').count()) === 9, WAIT, 100);
      await page.fill('#filter', '');
      await page.check('#only-down');
      await waitFor(async () => (await page.locator('#rows tr:not([hidden])').count()) === 1, WAIT, 100);
      await page.uncheck('#only-down');
      await page.screenshot({ path: resolve(OUT, 'dashboard-100.png') });
      await page.close();
    } finally {
      await many.close();
    }
    assert.deepEqual(problems, []);
  });
  test('with several services: a services table with live figures, a routes table with counts, and the default service’s backends', async () => {
    const routed = await startBalancer({
      services: {
        web: { backends: [{ id: 'w1', url: urlOf(backends[0]!) }], healthCheck: { enabled: false } },
        api: { backends: [{ id: 'a1', url: urlOf(backends[1]!) }, { id: 'a2', url: 'http://127.0.0.1:9' }], healthCheck: { enabled: false } },
      },
      routes: [{ name: 'api', match: { path: { prefix: '/api' } }, service: 'api' }, { name: 'site', service: 'web' }],
    });
    const load = setInterval(() => {
      void request(`${routed.url}/api/x`).catch(() => undefined);
      void request(`${routed.url}/`).catch(() => undefined);
    }, 50);
    try {
      routed.balancer.services.get('api')!.ops.setState('a2', 'disabled', 'admin', 'test');
      const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
      watchConsole(page);
      await page.goto(`${routed.url}/dashboard`);
      await page.waitForSelector('#services-panel:not([hidden]) #service-rows tr[data-name="api"]', { timeout: WAIT });
      const apiRow = page.locator('#service-rows tr[data-name="api"] td');
      assert.equal(await apiRow.nth(2).textContent(), '1 / 2');
      assert.equal(await apiRow.nth(7).textContent(), 'api');
      // Live figures: the api service serves about 20 requests a second.
      await waitFor(async () => Number.parseFloat((await apiRow.nth(4).textContent()) ?? '0') > 0, WAIT, 200);
      await page.waitForSelector('#routes-panel:not([hidden]) #route-rows tr[data-name="site"]', { timeout: WAIT });
      await waitFor(async () => Number((await page.locator('#route-rows tr[data-name="api"] td').nth(3).textContent())?.replace(/\D/g, '')) > 0, WAIT, 200);
      assert.match((await page.locator('#route-rows tr[data-name="api"] td').nth(1).textContent()) ?? '', /\/api/);
      // The backends table lists every service's backends, named with their service.
      await page.waitForSelector('#rows tr[data-service="api"][data-id="a2"][data-health="off"]', { timeout: WAIT });
      assert.equal(await page.locator('#rows tr').count(), 3);
      assert.equal(await page.textContent('#rows tr[data-service="web"][data-id="w1"] .bid'), 'web/w1');
      await page.screenshot({ path: resolve(OUT, 'dashboard-services.png') });
      await page.close();
    } finally {
      clearInterval(load);
      await routed.close();
    }
    assert.deepEqual(problems, []);
  });
});
