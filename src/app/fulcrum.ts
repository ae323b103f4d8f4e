/**
 * Fulcrum is one running balancer: it wires the config into the backend
 * pool, the picker, health checks, the proxy listeners and the balancer's
 * own endpoints, and it owns their life cycle (listen, reload, close).
 */
import { Backend } from '../backends/backend.js';
import { BackendPool, type PoolChange } from '../backends/pool.js';
import { BackendOps } from '../backends/ops.js';
import { reasonNames } from '../backends/reasons.js';
import { getPickerFactory } from '../balancer/registry.js';
import type { PickerFactory } from '../balancer/picker.js';
import { effectiveWeight } from '../balancer/slow-start.js';
import { ConfigError, validateConfig } from '../config/load.js';
import type { BackendConfig, FulcrumConfig, FulcrumConfigInput } from '../config/schema.js';
import { AdminRoutes } from '../admin/routes.js';
import { ActiveHealthChecker, HttpHealthCheck } from '../health/active.js';
import { OutlierDetector } from '../health/passive.js';
import { healthChannel, poolChannel, type HealthEvent } from '../core/events.js';
import { createAccessLog, type AccessLog } from '../observe/access-log.js';
import { createLogger, type Logger } from '../observe/log.js';
import { Metrics } from '../observe/metrics.js';
import { createPipeline, type HashKeyFn, type Pipeline, type RequestFilter } from '../proxy/pipeline.js';
import { ProxyRuntime } from '../proxy/runtime.js';
import { bind, createHttpServer, createHttpsServer, drain, type BoundListener, type ListenerServer } from '../listen/server.js';
import { BackendTls } from '../upstream/backend-tls.js';
import { createH2cServer, createHttp2SecureServer } from '../listen/http2.js';
import { createRedirectServer } from '../listen/redirect.js';
import { TlsListeners } from '../listen/tls.js';
import { createUpgradeListener, UpgradeTracker, type InternalUpgrade } from '../proxy/upgrade.js';
import { UpstreamClients } from '../upstream/clients.js';
import { createRequire } from 'node:module';

const VERSION = (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;

export interface FulcrumOptions {
  /** logger: a pino logger; by default one is made from `logLevel`, writing to stdout. */
  logger?: Logger;
  /** loadConfig: how `reload()` without an argument obtains the new config (e.g. re-read the file). */
  loadConfig?: () => FulcrumConfig;
  /** configFile: shown in /status and logs. */
  configFile?: string;
}

export interface ReloadResult {
  readonly ok: boolean;
  readonly error?: string;
  readonly problems?: readonly string[];
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly updated: readonly string[];
  readonly at: string;
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
}

const MAX_EVENTS = 100;

export class Fulcrum {
  config: FulcrumConfig;
  readonly version = VERSION;
  readonly log: Logger;
  readonly pool = new BackendPool();
  /** ops applies run-time backend changes (admin API, peers, discovery) and announces them. */
  readonly ops: BackendOps;
  readonly metrics: Metrics;
  readonly runtime: ProxyRuntime;
  readonly admin: AdminRoutes;
  readonly events: HealthEvent[] = [];
  readonly startedAt = Date.now();
  readonly filters: RequestFilter[] = [];
  hashKeyFn: HashKeyFn | null = null;
  /** internalUpgrade serves WebSocket upgrades of the balancer's own endpoints (dashboard). */
  internalUpgrade: InternalUpgrade | null = null;
  lastReload: ReloadResult | null = null;
  #listeners: BoundListener[] = [];
  #adminListener: BoundListener | null = null;
  readonly #tunnels = new UpgradeTracker();
  readonly #upstream: UpstreamClients;
  /** #tls holds the certificates of the TLS listeners (loaded at listen, swapped on reload). */
  readonly #tls: TlsListeners;
  readonly #outlier: OutlierDetector;
  #health: ActiveHealthChecker;
  #healthCheck: HttpHealthCheck;
  readonly #accessLog: AccessLog;
  readonly #loadConfig: (() => FulcrumConfig) | undefined;
  /** configFile is the config file's path, when there is one (the `watch: true` watcher follows it). */
  readonly configFile: string | undefined;
  #closing: Promise<void> | null = null;
  /** statusExtensions let features (store, cluster, rate limiter) add to /status. */
  readonly statusExtensions: ((status: Record<string, unknown>) => void)[] = [];
  readonly #closeHooks: (() => Promise<void> | void)[] = [];

  constructor(input: FulcrumConfigInput | FulcrumConfig, options: FulcrumOptions = {}) {
    const config = validateConfig(input, options.configFile ?? 'config');
    this.config = config;
    this.#loadConfig = options.loadConfig;
    this.configFile = options.configFile;
    this.log = options.logger ?? createLogger({ level: config.logLevel });
    this.#accessLog = createAccessLog(this.log);
    this.metrics = new Metrics(this.pool);
    this.#upstream = new UpstreamClients(config, this.log);
    this.#tls = new TlsListeners(this.log);
    this.#outlier = new OutlierDetector(config.outlierDetection, this.pool, (b, detail) => this.#flipped(b, detail));
    this.pool.replaceAll(config.backends);
    this.ops = new BackendOps(this.pool, () => undefined);
    this.runtime = new ProxyRuntime({
      config,
      pool: this.pool,
      factory: this.#factory(config),
      upstream: this.#upstream,
      outlier: this.#outlier,
      metrics: this.metrics,
      log: this.log,
      onDrained: (b) => this.#drained(b),
    });
    this.#healthCheck = this.#makeHealthCheck(config);
    this.#health = this.#makeHealthChecker(config);
    this.pool.on('change', (change) => this.#poolChanged(change));
    this.admin = new AdminRoutes({
      status: () => this.status(),
      metricsJson: () => this.metrics.json(),
      prometheus: () => this.metrics.prometheus(),
      healthy: () => this.pool.snapshot.some((b) => b.healthy),
    }, this.log);
  }

  get health(): ActiveHealthChecker {
    return this.#health;
  }

  get upstream(): UpstreamClients {
    return this.#upstream;
  }

  get outlier(): OutlierDetector {
    return this.#outlier;
  }

  /** listeners are the bound proxy listeners (after listen()). */
  get listeners(): readonly BoundListener[] {
    return this.#listeners;
  }

  get adminListener(): BoundListener | null {
    return this.#adminListener;
  }

  get tunnels(): UpgradeTracker {
    return this.#tunnels;
  }

  /** onClose registers cleanup run by close(), after the listeners have drained. */
  onClose(hook: () => Promise<void> | void): void {
    this.#closeHooks.push(hook);
  }

  #factory(config: FulcrumConfig): PickerFactory {
    const factory = getPickerFactory(config.algorithm);
    if (factory === undefined) throw new ConfigError([{ source: 'config', path: 'algorithm', message: `unknown algorithm "${config.algorithm}"` }]);
    return factory;
  }

  #makeHealthCheck(config: FulcrumConfig): HttpHealthCheck {
    return new HttpHealthCheck(config.healthCheck, this.#upstream.tls);
  }

  #makeHealthChecker(config: FulcrumConfig): ActiveHealthChecker {
    const checker = new ActiveHealthChecker({
      config: config.healthCheck,
      backends: () => this.pool.snapshot,
      check: this.#healthCheck,
      onFlip: (b, detail) => this.#flipped(b, detail),
      onPass: (b) => this.#outlier.activeCheckPassed(b),
    });
    this.#outlier.requireActivePass = config.healthCheck.enabled;
    return checker;
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

  #poolChanged(change: PoolChange): void {
    this.runtime.rebuildPicker();
    for (const b of change.removed) {
      this.#upstream.release(b.id);
      this.#outlier.forget(b.id);
      this.metrics.forget(b.id);
    }
    for (const b of change.updated) this.#upstream.reset(b.id);
    // New backends are checked at once rather than at the next interval.
    if (this.config.healthCheck.enabled && this.#health.shouldRun()) for (const b of change.added) void this.#health.checkBackend(b);
    if (poolChannel.hasSubscribers) poolChannel.publish({ added: change.added.map((b) => b.id), removed: change.removed.map((b) => b.id), updated: change.updated.map((b) => b.id) });
  }

  #drained(backend: Backend): void {
    if (this.pool.get(backend.id) === backend) {
      this.pool.remove(backend.id);
      this.log.info({ backend: backend.id, url: backend.url.href }, 'drained backend removed');
    }
  }

  /** listen binds every listener (and the admin listener) and starts health checks. */
  async listen(): Promise<ListenAddress[]> {
    const adminOnMain = this.config.admin.port === undefined;
    // Every certificate is checked before any listener is bound: a bad one is a ConfigError naming it.
    this.#tls.load(this.config.listen);
    for (const lc of this.config.listen) {
      const proto = lc.tls !== undefined ? 'https' : 'http';
      const pipeline = createPipeline({
        runtime: this.runtime,
        proto,
        internal: adminOnMain ? this.admin : null,
        filters: () => this.filters,
        hashKey: () => this.hashKeyFn,
        accessLog: this.#accessLog,
      });
      const internal = adminOnMain ? () => this.internalUpgrade : null;
      const server = this.createServer(lc, pipeline, createUpgradeListener(this.runtime, proto, this.#tunnels, internal));
      this.#listeners.push(await bind(server, lc));
    }
    if (!adminOnMain) {
      const server = createHttpServer(this.runtime, {
        handler: this.admin.listener,
        upgrade: (req, socket, head) => {
          socket.on('error', () => socket.destroy());
          if (this.internalUpgrade === null || !this.internalUpgrade(req, socket, head)) socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        },
      });
      this.#adminListener = await bind(server, { host: this.config.admin.host, port: this.config.admin.port!, http2: false, redirectHttps: false, fastPath: false });
    }
    this.#health.start();
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
  createServer(lc: FulcrumConfig['listen'][number], pipeline: Pipeline, upgrade: ReturnType<typeof createUpgradeListener>): ListenerServer {
    const parts = { handler: pipeline.listener, upgrade, fast: lc.fastPath ? pipeline.fast : null };
    const tls = this.#tls.termination(lc);
    if (tls !== undefined) return lc.http2 ? createHttp2SecureServer(this.runtime, parts, tls) : createHttpsServer(this.runtime, parts, tls);
    if (lc.redirectHttps) return createRedirectServer(this.runtime, () => this.#listeners.find((l) => l.config.tls !== undefined)?.port ?? 443);
    return lc.http2 ? createH2cServer(this.runtime, parts) : createHttpServer(this.runtime, parts);
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
    let backendTls: BackendTls;
    try {
      if (input !== undefined) next = validateConfig(input, 'reload');
      else if (this.#loadConfig !== undefined) next = this.#loadConfig();
      else throw new Error('no config file to reload: pass a config to reload()');
      this.#factory(next);
      // Certificates are read and checked before anything changes: a bad one rejects the whole reload.
      commitTls = this.#tls.prepare(next.listen);
      backendTls = BackendTls.load(next, this.log);
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
    const backendTlsChanged = backendTls.fingerprint !== this.#upstream.tls.fingerprint;
    this.#upstream.reconfigure(next, backendTls);
    commitTls();
    if (next.watch !== before.watch && this.#listeners.length > 0) {
      if (next.watch) this.#tls.watch(() => this.config.listen);
      else this.#tls.unwatch();
    }
    this.#outlier.reconfigure(next.outlierDetection);
    if (before.logLevel !== next.logLevel) this.log.level = next.logLevel;
    if (JSON.stringify(before.healthCheck) !== JSON.stringify(next.healthCheck) || backendTlsChanged) {
      const previousCheck = this.#healthCheck;
      this.#healthCheck = this.#makeHealthCheck(next);
      this.#health.reconfigure(next.healthCheck, this.#healthCheck);
      this.#outlier.requireActivePass = next.healthCheck.enabled;
      void previousCheck.close();
    }
    this.runtime.reconfigure(next, this.#factory(next));
    const change = this.pool.replaceAll(this.extraBackends === null ? next.backends : [...next.backends, ...this.extraBackends(next.backends)]);
    const result: ReloadResult = {
      ok: true,
      added: change.added.map((b) => b.id),
      removed: change.removed.map((b) => b.id),
      updated: change.updated.map((b) => b.id),
      at,
    };
    this.lastReload = result;
    for (const hook of this.reloadHooks) await hook(next, before);
    this.log.info({ added: result.added, removed: result.removed, updated: result.updated }, 'configuration reloaded');
    return result;
  }

  /**
   * reloadEverywhere reloads every process serving this balancer's listeners
   * (set by a cluster worker: all workers, through the primary); null in a
   * single process, where reload() is everything. The admin API uses it.
   */
  reloadEverywhere: (() => Promise<ReloadResult>) | null = null;

  /** reloadHooks let features re-read their part of the config after a reload. */
  readonly reloadHooks: ((next: FulcrumConfig, previous: FulcrumConfig) => Promise<void> | void)[] = [];

  /**
   * extraBackends adds the backends the config does not list (discovered
   * ones) to the set a reload applies, so that they keep their state across it.
   */
  extraBackends: ((configured: readonly BackendConfig[]) => readonly BackendConfig[]) | null = null;

  /** status is the /status document. */
  status(): Record<string, unknown> {
    const now = Date.now();
    const backends = this.pool.snapshot.map((b) => this.backendStatus(b, now));
    const out: Record<string, unknown> = {
      version: VERSION,
      algorithm: this.config.algorithm,
      totalRequests: this.metrics.totalRequests,
      uptimeSeconds: Math.round((now - this.startedAt) / 1000),
      startedAt: new Date(this.startedAt).toISOString(),
      healthyBackends: backends.filter((b) => b.healthy).length,
      backends,
      lastReload: this.lastReload,
    };
    for (const ext of this.statusExtensions) ext(out);
    return out;
  }

  backendStatus(b: Backend, now = Date.now()): Record<string, unknown> & { healthy: boolean } {
    const m = this.metrics.byBackend.get(b.id);
    const s = b.state;
    return {
      id: b.id,
      url: b.url.href,
      healthy: s.reasons === 0,
      reasons: reasonNames(s.reasons),
      state: (s.reasons & 8) !== 0 ? 'disabled' : (s.reasons & 4) !== 0 ? 'draining' : 'enabled',
      weight: b.weight,
      effectiveWeight: this.effectiveWeight(b, now),
      activeConnections: s.inflight,
      requests: m?.requests ?? 0,
      failures: s.failures,
      responses: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0, ...statusClasses(m?.codes) },
      latencyMs: m === undefined || m.latency.count === 0 ? null : { p50: round(m.latency.quantile(0.5) * 1000), p99: round(m.latency.quantile(0.99) * 1000) },
      lastCheck: s.lastCheck === undefined ? null : new Date(s.lastCheck).toISOString(),
      lastCheckOk: s.lastCheckOk ?? null,
      lastCheckError: s.lastCheckError ?? null,
      since: new Date(s.since).toISOString(),
      ejections: s.ejections,
      ejectedUntil: s.ejectedUntil === 0 ? null : new Date(s.ejectedUntil).toISOString(),
    };
  }

  /** effectiveWeight is the weight a policy uses now (lower during slow start). */
  effectiveWeight(b: Backend, now = Date.now()): number {
    return round(effectiveWeight(b, this.config.slowStart, now));
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
    this.runtime.draining = true;
    this.#health.stop();
    this.#tls.close();
    const listeners = this.#adminListener === null ? this.#listeners : [...this.#listeners, this.#adminListener];
    const inTime = await drain(listeners, this.#tunnels, () => this.runtime.active, drainTimeout, this.log);
    this.#outlier.close();
    for (const hook of this.#closeHooks.reverse()) {
      try { await hook(); } catch (err) { this.log.error({ err }, 'error during shutdown'); }
    }
    await (inTime ? this.#upstream.close() : this.#upstream.destroy());
    await this.#healthCheck.close();
    this.#accessLog.close();
    this.log.info({ drained: inTime }, 'fulcrum stopped');
    this.log.flush();
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

function statusClasses(codes: Map<number, number> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (codes === undefined) return out;
  for (const [code, n] of codes) {
    if (code < 100) continue;
    const key = `${Math.floor(code / 100)}xx`;
    out[key] = (out[key] ?? 0) + n;
  }
  return out;
}
