/**
 * The dashboard: GET /dashboard (one page, its assets under
 * /dashboard/assets/, all bundled in the package) and the live feed on
 * /dashboard/ws. Read-only and open like /status; changes go through the
 * admin API with the token the user enters in the page.
 *
 * One timer per balancer samples the counters every TICK_MS; when pages
 * are connected, the same tick builds one snapshot, serializes it once
 * and sends that text to all of them.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BalancerHost } from '../../app/host.js';
import { pathOf, sendText } from '../http.js';
import { DashboardFeed, FEED_PATH } from './feed.js';
import { Sampler } from './sampler.js';
import { buildSnapshot } from './snapshot.js';
import { PAGE_HTML } from './assets/page.js';
import { DASHBOARD_CSS } from './assets/style.js';
import { DASHBOARD_JS } from './assets/script.js';
import { ICON_SVG } from './assets/icon.js';

/** TICK_MS: how often pages are updated (and counters sampled). */
export const TICK_MS = 500;

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

function asset(text: string, type: string): Asset {
  const body = Buffer.from(text, 'utf8');
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

const PAGE = asset(PAGE_HTML, 'text/html; charset=utf-8');
const ASSETS = new Map<string, Asset>([
  ['/dashboard/assets/dashboard.css', asset(DASHBOARD_CSS, 'text/css; charset=utf-8')],
  ['/dashboard/assets/dashboard.js', asset(DASHBOARD_JS, 'text/javascript; charset=utf-8')],
  ['/dashboard/assets/icon.svg', asset(ICON_SVG, 'image/svg+xml')],
]);

/** The page loads only its own assets and talks only to its own origin. */
const PAGE_HEADERS: Record<string, string> = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

function serve(req: IncomingMessage, res: ServerResponse, a: Asset, extra: Record<string, string> = {}): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendText(res, 405, `${req.method} is not allowed here; use GET\n`, 'text/plain; charset=utf-8', { allow: 'GET, HEAD' });
    return;
  }
  // no-cache: revalidate each time (cheap with the ETag), so an upgrade is seen at once.
  const headers = { 'content-type': a.type, etag: a.etag, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff', ...extra };
  if (req.headers['if-none-match'] === a.etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, 'content-length': a.body.length });
  res.end(req.method === 'HEAD' ? undefined : a.body);
}

export interface Dashboard {
  readonly sampler: Sampler;
  readonly feed: DashboardFeed;
  /** tick samples and, with pages connected, broadcasts (the timer calls it; tests may too). */
  tick(): void;
}

const installed = new WeakMap<BalancerHost, Dashboard>();

/** dashboardOf returns the dashboard installed on a balancer (for tests and embedding). */
export function dashboardOf(balancer: BalancerHost): Dashboard | undefined {
  return installed.get(balancer);
}

export function installDashboard(balancer: BalancerHost): Dashboard {
  const sampler = new Sampler(balancer.metrics, { startedAt: balancer.startedAt });
  const feed = new DashboardFeed(() => JSON.stringify({ type: 'hello', history: sampler.history(), snapshot: buildSnapshot(balancer, sampler) }));

  balancer.admin.mount('/dashboard', (req, res) => serve(req, res, PAGE, PAGE_HEADERS));
  balancer.admin.mount('/dashboard/', (req, res) => {
    const path = pathOf(req.url ?? '/');
    const found = ASSETS.get(path);
    if (found !== undefined) return serve(req, res, found);
    if (path === '/dashboard/') {
      res.writeHead(308, { location: '/dashboard', 'content-length': 0 });
      res.end();
      return;
    }
    if (path === FEED_PATH) return sendText(res, 426, 'this is the dashboard\'s WebSocket feed: connect with a WebSocket client\n', 'text/plain; charset=utf-8', { upgrade: 'websocket', connection: 'Upgrade' });
    sendText(res, 404, `404 Not Found: ${path}\n`);
  });


  const tick = (): void => {
    const point = sampler.sample();
    if (feed.clients === 0) return;
    feed.broadcast(JSON.stringify({ type: 'tick', point, snapshot: buildSnapshot(balancer, sampler) }));
  };
  const timer = setInterval(tick, TICK_MS);
  timer.unref();
  balancer.addComponent({
    name: 'dashboard',
    // The live feed is a WebSocket on the balancer's own endpoints.
    upgrade: (req, socket, head) => feed.upgrade(req, socket, head),
    close: () => {
      clearInterval(timer);
      feed.close();
    },
  });
  const dashboard: Dashboard = { sampler, feed, tick };
  installed.set(balancer, dashboard);
  return dashboard;
}
