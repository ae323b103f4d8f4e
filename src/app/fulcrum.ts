/**
 * Fulcrum is one running balancer: it wires the config into the backend
 * pool, the picker, health checks, the proxy listeners and the balancer's
 * own endpoints, and it owns their life cycle (listen, reload, close).
 */
import { randomBytes } from 'node:crypto';
import type { Backend } from '../backends/backend.js';
import type { BackendPool } from '../backends/pool.js';
import type { BackendOps } from '../backends/ops.js';
import { reasonNames } from '../backends/reasons.js';
import { clusterStickySecret } from '../core/cluster-env.js';
import { ConfigError } from '../core/config-error.js';
import { validateConfig } from '../config/load.js';
import type { BackendConfig, FulcrumConfig, FulcrumConfigInput } from '../config/schema.js';
import { AdminRoutes } from '../admin/routes.js';
import type { ActiveHealthChecker } from '../health/active.js';
import type { OutlierDetector } from '../health/passive.js';
import { healthChannel, type HealthEvent } from '../core/events.js';
import type { ProxyEntry } from '../core/downstream.js';
import type { RequestFilter } from '../core/request-filter.js';
import { createAccessLog, type AccessLog } from '../observe/access-log.js';
import { createLogger, type Logger } from '../observe/log.js';
import { Metrics } from '../observe/metrics.js';
import { ProxyContext, type TunnelSet } from '../proxy/context.js';
import { createPipeline } from '../proxy/pipeline.js';
import { bind, createHttpServer, createHttpsServer, drain, type BoundListener, type ListenerServer } from '../listen/server.js';
import { requestListener, upgradeListener } from '../listen/entry.js';
import { createH2cServer, createHttp2SecureServer } from '../listen/http2.js';
import { createRedirectServer } from '../listen/redirect.js';
import { TlsListeners } from '../listen/tls.js';
import { DEFAULT_SERVICE, ServiceRegistry } from '../service/registry.js';
import { Service, type PreparedService } from '../service/service.js';
import type { UpstreamClients } from '../upstream/clients.js';
import { createRequire } from 'node:module';
import { BALANCER_HOOKS, type BalancerHooks, type BalancerHost, type InternalUpgrade, type ReloadResult } from './host.js';
import { Hooks } from '../core/hooks.js';

export type { ReloadResult } from './host.js';

const VERSION = (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;

export interface FulcrumOptions {
  /** logger: a pino logger; by default one is made from `logLevel`, writing to stdout. */
  logger?: Logger;
  /** loadConfig: how `reload()` without an argument obtains the new config (e.g. re-read the file). */
  loadConfig?: () => FulcrumConfig;
  /** configFile: shown in /status and logs. */
  configFile?: string;
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
}

const MAX_EVENTS = 100;

export class Fulcrum implements BalancerHost {
  config: FulcrumConfig;
  readonly version = VERSION;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** services are the pools requests go to, by name; today's config builds one, `default`. */
  readonly services = new ServiceRegistry();
  /** proxy is what the request path reads outside any service (settings, counters, draining). */
  readonly proxy: ProxyContext;
  readonly admin: AdminRoutes;
  readonly events: HealthEvent[] = [];
  readonly startedAt = Date.now();
  readonly filters: RequestFilter[] = [];
  /** internalUpgrade serves WebSocket upgrades of the balancer's own endpoints (dashboard). */
  internalUpgrade: InternalUpgrade | null = null;
  lastReload: ReloadResult | null = null;
  #listeners: BoundListener[] = [];
  #adminListener: BoundListener | null = null;
  /** #tls holds the certificates of the TLS listeners (loaded at listen, swapped on reload). */
  readonly #tls: TlsListeners;
  readonly #accessLog: AccessLog;
  readonly #loadConfig: (() => FulcrumConfig) | undefined;
  /** configFile is the config file's path, when there is one (the `watch: true` watcher follows it). */
  readonly configFile: string | undefined;
  #closing: Promise<void> | null = null;
  readonly #hooks = new Hooks<BalancerHooks>(BALANCER_HOOKS);

  constructor(input: FulcrumConfigInput | FulcrumConfig, options: FulcrumOptions = {}) {
    const config = validateConfig(input, options.configFile ?? 'config');
    this.config = config;
    this.#loadConfig = options.loadConfig;
    this.configFile = options.configFile;
    this.log = options.logger ?? createLogger({ level: config.logLevel });
    this.#accessLog = createAccessLog(this.log);
    this.metrics = new Metrics(() => this.pool.snapshot);
    const services = this.services;
    // One random secret for the life of the process, so that sticky cookies survive reloads; in a
    // `workers: N` cluster, the primary's, so that every worker honours every worker's cookies.
    const stickySecret = clusterStickySecret() ?? randomBytes(32);
    services.add(new Service({
      name: DEFAULT_SERVICE,
      config,
      log: this.log,
      metrics: this.metrics,
      stickySecret,
      onFlip: (b, detail) => this.#flipped(b, detail),
    }));
    this.proxy = new ProxyContext(config, services, this.metrics, this.log);
    this.#tls = new TlsListeners(this.log);
    this.admin = new AdminRoutes({
      status: () => this.status(),
      metricsJson: () => this.metrics.json(),
      prometheus: () => this.metrics.prometheus(),
      healthy: () => this.pool.snapshot.some((b) => b.healthy),
    }, this.log);
  }

  /** service is the default service (the one pool today's configuration describes). */
  get service(): Service {
    return this.services.default;
  }

  /** pool, ops, health, outlier and upstream are the default service's. */
  get pool(): BackendPool {
    return this.services.default.pool;
  }

  get ops(): BackendOps {
    return this.services.default.ops;
  }

  get health(): ActiveHealthChecker {
    return this.services.default.health;
  }

  get upstream(): UpstreamClients {
    return this.services.default.upstream;
  }

  get outlier(): OutlierDetector {
    return this.services.default.outlier;
  }

  /** activeRequests counts proxied requests in flight (not open tunnels). */
  get activeRequests(): number {
    return this.proxy.active;
  }

  /** listeners are the bound proxy listeners (after listen()). */
  get listeners(): readonly BoundListener[] {
    return this.#listeners;
  }

  get adminListener(): BoundListener | null {
    return this.#adminListener;
  }

  get tunnels(): TunnelSet {
    return this.proxy.tunnels;
  }

  /** addHook registers a feature's reload, status or close function (see BalancerHooks). */
  addHook<K extends keyof BalancerHooks>(name: K, fn: BalancerHooks[K]): () => void {
    return this.#hooks.add(name, fn);
  }


  #flipped(backend: Backend, detail: string): void {
    const healthy = backend.healthy;
    const reasons = reasonNames(backend.state.reasons);
    const event: HealthEvent = { backend: backend.id, url: backend.url.href, healthy, reasons, detail, at: Date.now() };
    this.events.push(event);
    if (this.events.length > MAX_EVENTS) this.events.shift();
    if (healthy) this.log.info({ backend: backend.id, url: backend.url.href, detail }, 'backend is healthy');
    else this.log.warn({ backend: backend.id, url: backend.url.href, reasons, detail }, 'backend is unhealthy');
    if (healthChannel.hasSubscribers) healthChannel.publish(event);
  }

  /** recordEvent lets other writers (admin API, discovery) add to the recent events. */
  recordEvent(backend: Backend, detail: string): void {
    this.#flipped(backend, detail);
  }

  /** listen binds every listener (and the admin listener) and starts health checks. */
  async listen(): Promise<ListenAddress[]> {
    const adminOnMain = this.config.admin.port === undefined;
    // Every certificate is checked before any listener is bound: a bad one is a ConfigError naming it.
    this.#tls.load(this.config.listen);
    for (const lc of this.config.listen) {
      const entry = createPipeline({
        context: this.proxy,
        proto: lc.tls !== undefined ? 'https' : 'http',
        internal: adminOnMain ? this.admin : null,
        internalUpgrade: adminOnMain ? () => this.internalUpgrade : null,
        filters: () => this.filters,
        accessLog: this.#accessLog,
      });
      this.#listeners.push(await bind(this.createServer(lc, entry), lc));
    }
    if (!adminOnMain) {
      const server = createHttpServer(this.proxy, {
        handler: this.admin.listener,
        upgrade: (req, socket, head) => {
          socket.on('error', () => socket.destroy());
          if (this.internalUpgrade === null || !this.internalUpgrade(req, socket, head)) socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        },
      });
      this.#adminListener = await bind(server, { host: this.config.admin.host, port: this.config.admin.port!, http2: false, redirectHttps: false, fastPath: false });
    }
    for (const service of this.services.values()) service.start();
    if (this.config.watch) this.#tls.watch(() => this.config.listen);
    const addresses = this.addresses();
    this.log.info({
      version: VERSION,
      listen: addresses.map((a) => `${a.tls ? 'https' : 'http'}://${a.host}:${a.port}`),
      admin: this.#adminListener === null ? 'main listener' : `http://${this.#adminListener.address}:${this.#adminListener.port}`,
      algorithm: this.config.algorithm,
      backends: this.pool.snapshot.map((b) => b.url.href),
      healthCheck: this.config.healthCheck.enabled ? `${this.config.healthCheck.path} every ${this.config.healthCheck.interval}ms` : 'off',
      store: this.config.state.store,
      ...(this.#tls.summary().length > 0 ? { tls: this.#tls.summary() } : {}),
    }, 'fulcrum started');
    return addresses;
  }

  /** createServer builds the server for one listener: plain or TLS, HTTP/1.1 or also HTTP/2, or an https redirect. */
  createServer(lc: FulcrumConfig['listen'][number], entry: ProxyEntry): ListenerServer {
    const parts = { handler: requestListener(entry, this.log), upgrade: upgradeListener(entry, this.log), fast: lc.fastPath ? entry : null, log: this.log };
    const tls = this.#tls.termination(lc);
    const limits = this.proxy;
    if (tls !== undefined) return lc.http2 ? createHttp2SecureServer(limits, parts, tls) : createHttpsServer(limits, parts, tls);
    if (lc.redirectHttps) return createRedirectServer(limits, () => this.#listeners.find((l) => l.config.tls !== undefined)?.port ?? 443);
    return lc.http2 ? createH2cServer(limits, parts) : createHttpServer(limits, parts);
  }

  addresses(): ListenAddress[] {
    return this.#listeners.map((l) => ({ host: l.address, port: l.port, tls: l.config.tls !== undefined }));
  }

  /** port is the first listener's bound port (handy with port 0). */
  get port(): number {
    const first = this.#listeners[0];
    if (first === undefined) throw new Error('not listening');
    return first.port;
  }

  /**
   * reload applies a new config (or re-reads the file). In-flight requests
   * and upgraded connections are untouched; backends that stay keep their
   * connections, health and counters. An invalid config is rejected whole.
   */
  async reload(input?: FulcrumConfigInput | FulcrumConfig): Promise<ReloadResult> {
    const at = new Date().toISOString();
    let next: FulcrumConfig;
    let commitTls: () => void;
    let prepared: PreparedService;
    try {
      if (input !== undefined) next = validateConfig(input, 'reload');
      else if (this.#loadConfig !== undefined) next = this.#loadConfig();
      else throw new Error('no config file to reload: pass a config to reload()');
      // Everything that can fail (the policy, certificates, backend TLS files) is checked before anything changes.
      prepared = this.service.prepare(next);
      commitTls = this.#tls.prepare(next.listen);
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems.map((p) => (p.path === '' ? `${p.source}: ${p.message}` : `${p.source}: ${p.path}: ${p.message}`)) : [(err as Error).message];
      const result: ReloadResult = { ok: false, error: 'invalid configuration; the previous one stays in force', problems, added: [], removed: [], updated: [], at };
      this.lastReload = result;
      this.log.error({ problems }, 'reload rejected');
      return result;
    }
    const before = this.config;
    const listenChanged = JSON.stringify(before.listen.map((l) => [l.host, l.port])) !== JSON.stringify(next.listen.map((l) => [l.host, l.port]))
      || before.admin.port !== next.admin.port;
    if (listenChanged) this.log.warn('listener addresses changed in the config; they take effect at the next restart');
    this.config = next;
    commitTls();
    if (next.watch !== before.watch && this.#listeners.length > 0) {
      if (next.watch) this.#tls.watch(() => this.config.listen);
      else this.#tls.unwatch();
    }
    if (before.logLevel !== next.logLevel) this.log.level = next.logLevel;
    this.proxy.reconfigure(next);
    const change = this.service.commit(prepared, this.extraBackends === null ? [] : this.extraBackends(next.backends));
    const result: ReloadResult = {
      ok: true,
      added: change.added.map((b) => b.id),
      removed: change.removed.map((b) => b.id),
      updated: change.updated.map((b) => b.id),
      at,
    };
    this.lastReload = result;
    for (const hook of this.#hooks.list('reload')) await hook(next, before);
    this.log.info({ added: result.added, removed: result.removed, updated: result.updated }, 'configuration reloaded');
    return result;
  }

  /**
   * reloadEverywhere reloads every process serving this balancer's listeners
   * (set by a cluster worker: all workers, through the primary); null in a
   * single process, where reload() is everything. The admin API uses it.
   */
  reloadEverywhere: (() => Promise<ReloadResult>) | null = null;


  /**
   * extraBackends adds the backends the config does not list (discovered
   * ones) to the set a reload applies, so that they keep their state across it.
   */
  extraBackends: ((configured: readonly BackendConfig[]) => readonly BackendConfig[]) | null = null;

  /** status is the /status document. */
  status(): Record<string, unknown> {
    const now = Date.now();
    const service = this.service.status(now);
    const out: Record<string, unknown> = {
      version: VERSION,
      algorithm: service.algorithm,
      totalRequests: this.metrics.totalRequests,
      uptimeSeconds: Math.round((now - this.startedAt) / 1000),
      startedAt: new Date(this.startedAt).toISOString(),
      healthyBackends: service.healthyBackends,
      backends: service.backends,
      lastReload: this.lastReload,
    };
    for (const ext of this.#hooks.list('status')) ext(out);
    return out;
  }

  backendStatus(b: Backend, now = Date.now()): Record<string, unknown> & { healthy: boolean } {
    return this.service.backendStatus(b, now);
  }

  /** effectiveWeight is the weight a policy uses now (lower during slow start). */
  effectiveWeight(b: Backend, now = Date.now()): number {
    return this.service.effectiveWeight(b, now);
  }

  /**
   * close drains: stop accepting, let in-flight requests finish within
   * `drainTimeout`, close idle keep-alive and upgraded connections, stop
   * health checks, close upstream pools. Safe to call more than once.
   */
  close(options: { drainTimeout?: number } = {}): Promise<void> {
    this.#closing ??= this.#close(options.drainTimeout ?? this.config.drainTimeout);
    return this.#closing;
  }

  async #close(drainTimeout: number): Promise<void> {
    this.proxy.draining = true;
    for (const service of this.services.values()) service.stop();
    this.#tls.close();
    const listeners = this.#adminListener === null ? this.#listeners : [...this.#listeners, this.#adminListener];
    const inTime = await drain(listeners, this.proxy.tunnels, () => this.proxy.active, drainTimeout, this.log);
    for (const hook of [...this.#hooks.list('close')].reverse()) {
      try { await hook(); } catch (err) { this.log.error({ err }, 'error during shutdown'); }
    }
    await Promise.all([...this.services.values()].map((service) => service.close(inTime)));
    this.#accessLog.close();
    this.log.info({ drained: inTime }, 'fulcrum stopped');
    this.log.flush();
  }
}
