/**
 * The balancer's own endpoints: /status, /metrics, /healthz, the probes
 * /livez and /readyz, and the
 * routes other features mount (the admin API under /admin/, the dashboard).
 * Served on the main listener, or on the admin listener when `admin.port`
 * is set (then the main listener proxies every path).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { InternalRoutes } from '../core/internal-routes.js';
import { pathOf, queryOf, sendJson, sendText, type RouteHandler } from './http.js';
import type { Logger } from '../observe/log.js';

export interface StatusSource {
  status(): Record<string, unknown>;
  metricsJson(): Record<string, unknown>;
  prometheus(): Promise<{ contentType: string; body: string }>;
  healthy(): boolean;
  /** live: the reasons the process cannot serve (empty when it can); /livez. */
  live(): readonly string[];
  /** ready: the reasons it should get no traffic now (empty when it should); /readyz. */
  ready(): readonly string[];
}

export class AdminRoutes implements InternalRoutes {
  readonly #exact = new Map<string, RouteHandler>();
  readonly #prefixes: [string, RouteHandler][] = [];

  constructor(private readonly source: StatusSource, private readonly log: Logger) {
    this.#exact.set('/status', (_req, res) => sendJson(res, 200, this.source.status()));
    this.#exact.set('/healthz', (_req, res) => {
      const ok = this.source.healthy();
      sendJson(res, ok ? 200 : 503, { status: ok ? 'ok' : 'unavailable', healthy: ok });
    });
    // Liveness does not depend on backends: a backend outage must not make an orchestrator restart the balancers.
    this.#exact.set('/livez', (_req, res) => probe(res, this.source.live()));
    this.#exact.set('/readyz', (_req, res) => probe(res, this.source.ready()));
    this.#exact.set('/metrics', (req, res) => this.#metrics(req, res));
  }

  /** mount adds a route: an exact path, or a prefix when it ends with "/". */
  mount(path: string, handler: RouteHandler): void {
    if (path.endsWith('/') && path.length > 1) this.#prefixes.push([path, handler]);
    else this.#exact.set(path, handler);
  }

  matches(url: string): boolean {
    const path = pathOf(url);
    if (this.#exact.has(path)) return true;
    for (const [prefix] of this.#prefixes) if (path.startsWith(prefix)) return true;
    return false;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const path = pathOf(req.url ?? '/');
    let handler = this.#exact.get(path);
    if (handler === undefined) for (const [prefix, h] of this.#prefixes) if (path.startsWith(prefix)) { handler = h; break; }
    if (handler === undefined) {
      sendText(res, 404, `404 Not Found: ${path}\n`);
      return;
    }
    try {
      const done = handler(req, res, path);
      if (done instanceof Promise) done.catch((err) => this.#internalError(res, err));
    } catch (err) {
      this.#internalError(res, err);
    }
  }

  /** handleOrNotFound serves a request on the dedicated admin listener. */
  listener = (req: IncomingMessage, res: ServerResponse): void => this.handle(req, res);

  #internalError(res: ServerResponse, err: unknown): void {
    this.log.error({ err }, 'internal endpoint failed');
    if (!res.headersSent) sendText(res, 500, '500 Internal Server Error\n');
    else res.destroy();
  }

  async #metrics(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const format = queryOf(req.url ?? '').get('format');
    const accept = req.headers.accept ?? '';
    const prometheus = format === 'prometheus' || format === 'openmetrics'
      || (format === null && (accept.includes('text/plain') || accept.includes('application/openmetrics-text')));
    if (!prometheus) {
      sendJson(res, 200, this.source.metricsJson());
      return;
    }
    const { contentType, body } = await this.source.prometheus();
    sendText(res, 200, body, contentType);
  }
}

/** probe answers a liveness or readiness probe: 200 without reasons, 503 with them. */
function probe(res: ServerResponse, reasons: readonly string[]): void {
  const ok = reasons.length === 0;
  sendJson(res, ok ? 200 : 503, ok ? { status: 'ok' } : { status: 'unavailable', reasons });
}
