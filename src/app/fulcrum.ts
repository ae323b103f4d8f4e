/**
 * Fulcrum is one running balancer: it wires the config into the backend
 * pool, the picker, health checks, the proxy listeners and the balancer's
 * own endpoints, and it owns their life cycle (listen, reload, close).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Backend } from '../backends/backend.js';
import type { BackendPool } from '../backends/pool.js';
import type { BackendOps } from '../backends/ops.js';
import { reasonNames } from '../backends/reasons.js';
import { clusterStickySecret, isFulcrumWorker } from '../core/cluster-env.js';
import { ConfigError } from '../core/config-error.js';
import { validateConfig } from '../config/load.js';
import type { BackendConfig, FulcrumConfig, FulcrumConfigInput, RouteConfig, ServiceConfig } from '../config/schema.js';
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
import { acceptProxyProtocol } from '../listen/proxy-protocol.js';
import { TlsListeners } from '../listen/tls.js';
import { ServiceRegistry } from '../service/registry.js';
import { compileRoutes } from '../routing/compile.js';
import type { RouteTable } from '../routing/table.js';
import { describeRoute } from '../routing/describe.js';
import { configuredSplits, SplitControl } from '../routing/split-control.js';
import type { Route } from '../routing/route.js';
import { challengeRoutes } from '../listen/challenge-routes.js';
import { DynamicCertificates } from '../core/certificates.js';
import type { InternalRoutes } from '../core/internal-routes.js';
import { Service, type PreparedService } from '../service/service.js';
import { CIRCUIT_STATE_VALUES } from '../service/circuit.js';
import type { UpstreamClients } from '../upstream/clients.js';
import { createRequire } from 'node:module';
import { BALANCER_HOOKS, type BalancerHooks, type BalancerHost, type Component, type PreparedChange, type ServiceHandle, type ReloadResult } from './host.js';
import { Tracing } from '../trace/tracer.js';

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

/** ServicePlan is what a reload will do to the services, once every part has prepared. */
interface ServicePlan {
  readonly kept: readonly (readonly [Service, PreparedService])[];
  readonly added: readonly Service[];
  readonly removed: readonly Service[];
  readonly lookup: (name: string) => Service | undefined;
}

export class Fulcrum implements BalancerHost {
  config: FulcrumConfig;
  readonly version = VERSION;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** services are the pools requests go to, by name; today's config builds one, `default`. */
  readonly services = new ServiceRegistry();
  /** proxy is what the request path reads outside any service (settings, counters, draining). */
  readonly proxy: ProxyContext;
  /** splits holds the run-time weights of the routes' splits (admin API, state store). */
  readonly splits: SplitControl;
  /** tracing: spans and their export (trace/tracer.ts); reloads apply its config. */
  readonly tracing: Tracing;
  readonly admin: AdminRoutes;
  readonly events: HealthEvent[] = [];
  readonly startedAt = Date.now();
  /** certificates: the run-time (ACME) certificates of the listeners with `tls.acme`. */
  readonly certificates = new DynamicCertificates();
  /** #components: the features' parts, in the order they were added (see Component in host.ts). */
  readonly #components: Component[] = [];
  /** #filters: the components' request filters for every route, gathered again after each change. */
  #filters: readonly RequestFilter[] = [];
  /** #reloading: reloads run one at a time, each preparing against what the previous committed. */
  #reloading: Promise<unknown> = Promise.resolve();
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
  readonly #stickySecret: Buffer;
  #listening = false;

  constructor(input: FulcrumConfigInput | FulcrumConfig, options: FulcrumOptions = {}) {
    const config = validateConfig(input, options.configFile ?? 'config');
    this.config = config;
    this.#loadConfig = options.loadConfig;
    this.configFile = options.configFile;
    this.log = options.logger ?? createLogger({ level: config.logLevel });
    this.#accessLog = createAccessLog(this.log);
    this.metrics = new Metrics(() => this.#allBackends());
    // One random secret for the life of the process, so that sticky cookies survive reloads; in a
    // `workers: N` cluster, the primary's, so that every worker honours every worker's cookies.
    this.#stickySecret = clusterStickySecret() ?? randomBytes(32);
    for (const [name, sc] of Object.entries(config.services)) this.services.add(this.#newService(name, sc));
    this.metrics.defaultService = this.services.default.name;
    this.tracing = new Tracing(config.tracing, VERSION, (n) => { this.metrics.tracingDroppedSpans += n; }, this.log);
    this.proxy = new ProxyContext(config, this.services, this.#compileRoutes(config, (name) => this.services.get(name)), this.metrics, this.log, this.tracing);
    this.splits = new SplitControl(this.proxy.routes, (name) => this.services.get(name));
    const certificates = this.certificates;
    const current = (): FulcrumConfig => this.config;
    this.#tls = new TlsListeners(this.log, { certificates, get alpnChallenges() { return current().acme?.challenge === 'tls-alpn-01'; } });
    this.admin = new AdminRoutes({
      status: () => this.status(),
      metricsJson: () => this.metrics.json(),
      prometheus: () => this.metrics.prometheus(),
      healthy: () => this.pool.snapshot.some((b) => b.healthy),
      live: () => this.#liveness(),
      ready: () => this.#readiness(),
    }, this.log);
  }

  /**
   * #liveness: a process that answers is alive; a cluster worker only while
   * its primary is (the IPC channel to it is open), since a worker left
   * without its primary is not restarted when it dies.
   */
  #liveness(): string[] {
    return isFulcrumWorker() && !process.connected ? ['the cluster primary is gone'] : [];
  }

  /** #readiness: listening, not draining, and every feature's readiness hook satisfied (the first state sync). */
  #readiness(): string[] {
    const reasons: string[] = [];
    if (!this.#listening) reasons.push('not listening yet');
    if (this.proxy.draining) reasons.push('draining');
    for (const c of this.#components) {
      const reason = c.ready?.() ?? null;
      if (reason !== null) reasons.push(reason);
    }
    return reasons;
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

  /** routes is the route table in force. */
  get routes(): RouteTable {
    return this.proxy.routes;
  }

  /** serviceNamed finds a service by name. */
  serviceNamed(name: string): Service | undefined {
    return this.services.get(name);
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

  /** addComponent registers a feature's part of the balancer's life (see Component). */
  addComponent(component: Component): () => void {
    this.#components.push(component);
    this.#componentsChanged(component);
    return () => {
      const i = this.#components.indexOf(component);
      if (i < 0) return;
      this.#components.splice(i, 1);
      this.#componentsChanged(component);
    };
  }

  /** addHook registers a one-member component (see BalancerHooks). */
  addHook<K extends keyof BalancerHooks>(name: K, fn: BalancerHooks[K]): () => void {
    if (!BALANCER_HOOKS.includes(name)) throw new Error(`unknown hook "${String(name)}"`);
    const hook = fn as BalancerHooks[keyof BalancerHooks];
    const component: Component = name === 'reload'
      ? { name: 'reload hook', prepare: (next, previous) => ({ commit: () => (hook as BalancerHooks['reload'])(next, previous) }) }
      : { name: `${name} hook`, [name]: hook };
    return this.addComponent(component);
  }

  #componentsChanged(component: Component): void {
    this.#filters = this.#gatherFilters();
    // A component that gives routes filters changes the compiled routes: compile them again with it.
    if (component.routeFilter !== undefined) {
      const before = this.proxy.routes;
      this.proxy.routes = this.#compileRoutes(this.config, (n) => this.services.get(n));
      // Run-time split weights stay on the recompiled routes.
      this.splits.adopt(this.proxy.routes, (n) => this.services.get(n), configuredSplits(before));
    }
  }

  #gatherFilters(): readonly RequestFilter[] {
    const out: RequestFilter[] = [];
    for (const c of this.#components) {
      const filter = c.filter?.() ?? null;
      if (filter !== null) out.push(filter);
    }
    return out;
  }

  /** filters are the request filters every route runs (after its own). */
  get filters(): readonly RequestFilter[] {
    return this.#filters;
  }

  /** #upgrade offers an upgrade of the balancer's own endpoints to the components; true when one took it. */
  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    for (const c of this.#components) if (c.upgrade?.(req, socket, head) === true) return true;
    return false;
  }

  /** reloadEverywhere reloads every process serving the listeners: a component's way (cluster workers), else reload(). */
  reloadEverywhere(): Promise<ReloadResult> {
    for (const c of this.#components) if (c.reloadEverywhere !== undefined) return c.reloadEverywhere();
    return this.reload();
  }

  #newService(name: string, config: ServiceConfig): Service {
    return new Service({
      name,
      config,
      log: this.log,
      metrics: this.metrics,
      stickySecret: this.#stickySecret,
      onFlip: (b, detail) => this.#flipped(b, detail),
    });
  }

  #compileRoutes(config: FulcrumConfig, services: (name: string) => Service | undefined): RouteTable {
    const filters = this.#components.flatMap((c) => (c.routeFilter === undefined ? [] : [(route: RouteConfig, name: string) => c.routeFilter!(route, name, config)]));
    return compileRoutes(config.routes, { services, filters, serviceConfigs: config.services, secret: this.#stickySecret });
  }

  #allBackends(): { service: string; backends: readonly Backend[]; circuitState: number | null }[] {
    return [...this.services.values()].map((s) => {
      const circuit = s.circuitState;
      return { service: s.name, backends: s.pool.snapshot, circuitState: circuit === null ? null : CIRCUIT_STATE_VALUES[circuit] };
    });
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
        internal: this.#internalFor(lc, adminOnMain ? this.admin : null),
        internalUpgrade: adminOnMain ? () => this.#internalUpgrade : null,
        filters: () => this.#filters,
        accessLog: this.#accessLog,
      });
      this.#listeners.push(await bind(this.createServer(lc, entry), lc));
    }
    if (!adminOnMain) {
      const server = createHttpServer(this.proxy, {
        handler: this.admin.listener,
        upgrade: (req, socket, head) => {
          socket.on('error', () => socket.destroy());
          if (!this.#upgrade(req, socket, head)) socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        },
      });
      this.#adminListener = await bind(server, { host: this.config.admin.host, port: this.config.admin.port!, http2: false, redirectHttps: false, fastPath: false });
    }
    for (const service of this.services.values()) service.start();
    this.#listening = true;
    if (this.config.watch) this.#tls.watch(() => this.config.listen);
    const addresses = this.addresses();
    this.log.info({
      version: VERSION,
      listen: addresses.map((a) => `${a.tls ? 'https' : 'http'}://${a.host}:${a.port}`),
      admin: this.#adminListener === null ? 'main listener' : `http://${this.#adminListener.address}:${this.#adminListener.port}`,
      services: Object.fromEntries([...this.services.values()].map((s) => [s.name, {
        algorithm: s.config.algorithm,
        backends: s.pool.snapshot.map((b) => b.url.href),
        healthCheck: s.config.healthCheck.enabled ? `${s.config.healthCheck.path} every ${s.config.healthCheck.interval}ms` : 'off',
      }])),
      routes: this.proxy.routes.routes.length,
      store: this.config.state.store,
      ...(this.#tls.summary().length > 0 ? { tls: this.#tls.summary() } : {}),
    }, 'fulcrum started');
    return addresses;
  }

  /** #internalUpgrade: what the pipeline calls for an upgrade of the balancer's own endpoints. */
  readonly #internalUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): boolean => this.#upgrade(req, socket, head);

  /** #internalFor: the plain listeners answer ACME HTTP-01 validations before the admin endpoints and the proxy. */
  #internalFor(lc: FulcrumConfig['listen'][number], admin: InternalRoutes | null): InternalRoutes | null {
    if (lc.tls !== undefined) return admin;
    for (const c of this.#components) {
      const challenges = c.httpChallenges?.() ?? null;
      if (challenges !== null) return challengeRoutes(challenges, admin);
    }
    return admin;
  }

  /** createServer builds the server for one listener: plain or TLS, HTTP/1.1 or also HTTP/2, or an https redirect. */
  createServer(lc: FulcrumConfig['listen'][number], entry: ProxyEntry): ListenerServer {
    const server = this.#serverFor(lc, entry);
    // Installed last: it wraps whatever takes the server's connections (node:http, fast path, sniffer, TLS).
    if (lc.proxyProtocol !== undefined) acceptProxyProtocol(server, lc.proxyProtocol, this.log);
    return server;
  }

  #serverFor(lc: FulcrumConfig['listen'][number], entry: ProxyEntry): ListenerServer {
    const parts = { handler: requestListener(entry, this.log), upgrade: upgradeListener(entry, this.log), fast: lc.fastPath ? entry : null, log: this.log };
    const tls = this.#tls.termination(lc);
    const limits = this.proxy;
    if (tls !== undefined) return lc.http2 ? createHttp2SecureServer(limits, parts, tls) : createHttpsServer(limits, parts, tls);
    if (lc.redirectHttps) return createRedirectServer(limits, () => this.#listeners.find((l) => l.config.tls !== undefined)?.port ?? 443, this.#internalFor(lc, null));
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
  reload(input?: FulcrumConfigInput | FulcrumConfig): Promise<ReloadResult> {
    const run = this.#reloading.then(() => this.#reload(input));
    this.#reloading = run.catch(() => undefined);
    return run;
  }

  async #reload(input?: FulcrumConfigInput | FulcrumConfig): Promise<ReloadResult> {
    const at = new Date().toISOString();
    let next: FulcrumConfig;
    let commitTls: () => void;
    let plan: ServicePlan | null = null;
    let table: RouteTable;
    let changes: PreparedChange[] = [];
    try {
      if (input !== undefined) next = validateConfig(input, 'reload');
      else if (this.#loadConfig !== undefined) next = this.#loadConfig();
      else throw new Error('no config file to reload: pass a config to reload()');
      // Everything that can fail (policies, certificates, backend TLS files, routes) is checked before anything changes.
      plan = this.#planServices(next);
      const chosen = plan;
      table = this.#compileRoutes(next, (name) => chosen.lookup(name));
      commitTls = this.#tls.prepare(next.listen);
      changes = await this.#prepareComponents(next, this.config);
    } catch (err) {
      // Services made for the new config were never started: let them go.
      if (plan !== null) for (const s of plan.added) void s.close(false);
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
    this.tracing.reconfigure(next.tracing);
    const added: string[] = [];
    const removed: string[] = [];
    const updated: string[] = [];
    // Backend ids are unique within a service: outside the primary service they are named with it.
    const primary = this.services.default;
    for (const [service, prepared] of plan.kept) {
      const extra = this.#retainedBackends(service.name, prepared.config.backends);
      const change = service.commit(prepared, extra);
      const label = (b: Backend): string => (service === primary ? b.id : `${service.name}/${b.id}`);
      added.push(...change.added.map(label));
      removed.push(...change.removed.map(label));
      updated.push(...change.updated.map(label));
    }
    for (const service of plan.removed) {
      this.services.delete(service.name);
      // In-flight requests keep the Service they chose; its connections close when they finish.
      service.stop();
      void service.close(true);
      removed.push(...service.pool.snapshot.map((b) => `${service.name}/${b.id}`));
    }
    for (const service of plan.added) {
      this.services.add(service);
      if (this.#listening) service.start();
      added.push(...service.pool.snapshot.map((b) => `${service.name}/${b.id}`));
    }
    const previousSplits = configuredSplits(this.proxy.routes);
    this.proxy.routes = table;
    this.splits.adopt(table, (name) => this.services.get(name), previousSplits);
    this.metrics.defaultService = this.services.default.name;
    this.metrics.forgetRoutes(new Set(table.routes.map((r) => r.name)));
    const result: ReloadResult = { ok: true, added, removed, updated, at };
    this.lastReload = result;
    for (const change of changes) {
      // Every part prepared: a commit that still fails is logged, and the others apply.
      try { await change.commit(); } catch (err) { this.log.error({ err }, 'a feature failed to apply the reloaded configuration'); }
    }
    this.#filters = this.#gatherFilters();
    this.log.info({ added: result.added, removed: result.removed, updated: result.updated }, 'configuration reloaded');
    return result;
  }

  /**
   * #planServices prepares the services of `next` without changing any:
   * those that stay (by name) are prepared, new ones built (not started),
   * and those no longer configured are listed. It throws a ConfigError.
   */
  #planServices(next: FulcrumConfig): ServicePlan {
    const kept: [Service, PreparedService][] = [];
    const added: Service[] = [];
    try {
      for (const [name, sc] of Object.entries(next.services)) {
        const existing = this.services.get(name);
        if (existing !== undefined) kept.push([existing, existing.prepare(sc)]);
        else added.push(this.#newService(name, sc));
      }
    } catch (err) {
      for (const s of added) void s.close(false);
      throw err;
    }
    const removed = [...this.services.values()].filter((s) => next.services[s.name] === undefined);
    const byName = new Map<string, Service>([...kept.map(([s]) => [s.name, s] as const), ...added.map((s) => [s.name, s] as const)]);
    return { kept, added, removed, lookup: (name) => byName.get(name) };
  }

  /**
   * #prepareComponents prepares every component for `next`, in order; if
   * one throws, those already prepared are aborted and the error rejects
   * the reload, so that a reload failing anywhere changes nothing.
   */
  async #prepareComponents(next: FulcrumConfig, previous: FulcrumConfig): Promise<PreparedChange[]> {
    const prepared: PreparedChange[] = [];
    try {
      for (const c of this.#components) {
        const change = await c.prepare?.(next, previous) ?? null;
        if (change !== null) prepared.push(change);
      }
    } catch (err) {
      for (const change of prepared) {
        try { change.abort?.(); } catch (abortErr) { this.log.error({ err: abortErr }, 'a feature failed to abort its prepared reload'); }
      }
      throw err;
    }
    return prepared;
  }

  /** #retainedBackends: a service's backends the config does not list (discovered ones), kept through a reload. */
  #retainedBackends(service: string, configured: readonly BackendConfig[]): BackendConfig[] {
    return this.#components.flatMap((c) => c.retainedBackends?.(service, configured) ?? []);
  }

  serviceHandle(name: string): ServiceHandle | undefined {
    const service = this.services.get(name);
    if (service === undefined) return undefined;
    return {
      name,
      pool: service.pool,
      ops: service.ops,
      health: service.health,
      config: () => service.config,
      status: () => service.status(),
      backendStatus: (b) => service.backendStatus(b),
    };
  }

  get defaultService(): string {
    return this.services.default.name;
  }

  serviceNames(): readonly string[] {
    return this.services.names();
  }

  /** status is the /status document. */
  status(): Record<string, unknown> {
    const now = Date.now();
    const primary = this.service.status(now);
    const services: Record<string, unknown> = {};
    const backends: Record<string, unknown>[] = [];
    let healthy = 0;
    for (const service of this.services.values()) {
      const s = service.status(now);
      services[service.name] = s;
      healthy += s.healthyBackends;
      for (const b of s.backends) backends.push({ ...b, service: service.name });
    }
    const out: Record<string, unknown> = {
      version: VERSION,
      algorithm: primary.algorithm,
      totalRequests: this.metrics.totalRequests,
      uptimeSeconds: Math.round((now - this.startedAt) / 1000),
      startedAt: new Date(this.startedAt).toISOString(),
      healthyBackends: healthy,
      backends,
      services,
      routes: this.proxy.routes.routes.map((r) => this.routeStatus(r)),
      lastReload: this.lastReload,
    };
    for (const c of this.#components) c.status?.(out);
    return out;
  }

  /** routeStatus: one route in /status and the admin API: what it does, its requests, and its split and mirror live. */
  routeStatus(r: Route): Record<string, unknown> {
    const out: Record<string, unknown> = { ...describeRoute(r), requests: this.metrics.byRoute.get(r.name)?.requests ?? 0 };
    if (r.split !== null) {
      out.split = r.split.sides.map((s) => ({ service: s.service.name, weight: s.weight, served: s.served, canServe: s.service.canServe() }));
      if (r.split.cookieName !== null) out.stickyCookie = r.split.cookieName;
      const o = this.splits.overrides.get(r.name);
      out.splitChanged = o === undefined ? null : { at: new Date(o.at).toISOString(), by: o.actor, instance: o.by };
    }
    if (r.mirror !== null) {
      const m = this.metrics.mirrors.get(`${r.name}\0${r.mirror.service.name}`);
      out.mirror = { service: r.mirror.service.name, percent: r.mirror.percent, inFlight: r.mirror.inFlight, sent: m?.sent ?? 0, dropped: m === undefined ? {} : Object.fromEntries(m.dropped) };
    }
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
    // Mirror copies are fire and forget: shutdown ends those still out rather than wait for them.
    for (const route of this.proxy.routes.routes) for (const cancel of [...(route.mirror?.cancels ?? [])]) cancel();
    for (const c of [...this.#components].reverse()) {
      try { await c.close?.(); } catch (err) { this.log.error({ err, component: c.name }, 'error during shutdown'); }
    }
    await Promise.all([...this.services.values()].map((service) => service.close(inTime)));
    this.#accessLog.close();
    await this.tracing.close();
    this.log.info({ drained: inTime }, 'fulcrum stopped');
    this.log.flush();
  }
}
