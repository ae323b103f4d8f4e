/**
 * Service: one named pool of backends with everything that serves it, as a
 * unit that can exist many times over (Envoy's cluster, HAProxy's backend,
 * Pingora's LoadBalancer):
 *
 *   backends (ids unique within the service)   pool, ops
 *   the policy's picker                        rebuilt here on membership change only
 *   sticky sessions and the hash key           per-request functions of the policy
 *   active health checks, outlier detection    health flips cost the picker nothing
 *   retry policy and budget, timeouts          per service
 *   backup backends                            a second picker, asked when no primary is healthy
 *   circuit breaker                            refuses requests while the service fails
 *   connection limit and its wait queue        a ring buffer, oldest first
 *   upstream clients                           one backend TLS profile for requests,
 *                                              health checks and tunnels
 *
 * A reload is two steps: prepare(next) checks everything that can fail
 * (the policy, the TLS files) without changing anything and returns the
 * commit, which cannot fail. A service that stays across a reload keeps its
 * pool, health state and connections.
 */
import type { Backend } from '../backends/backend.js';
import { BackendOps } from '../backends/ops.js';
import { BackendPool, type PoolChange } from '../backends/pool.js';
import { reasonNames } from '../backends/reasons.js';
import { hashKeyFunction, type HashKeyFn } from '../balancer/hash-key.js';
import type { PickContext, Picker, PickerFactory } from '../balancer/picker.js';
import { BackupPicker, isBackup } from '../balancer/backup.js';
import { getPickerFactory } from '../balancer/registry.js';
import { effectiveWeight } from '../balancer/slow-start.js';
import { StickySessions, type ResponseHeadContext } from '../balancer/sticky.js';
import { ConfigError } from '../core/config-error.js';
import type { BackendConfig, ServiceConfig } from '../config/schema.js';
import { DEFAULT_SERVICE } from '../config/services.js';
import { poolChannel } from '../core/events.js';
import { ActiveHealthChecker, answersNotFound, HttpHealthCheck, type CheckResult } from '../health/active.js';
import { Reason } from '../backends/reasons.js';
import { OutlierDetector } from '../health/passive.js';
import type { Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import { BackendTls } from '../upstream/backend-tls.js';
import { UpstreamClients } from '../upstream/clients.js';
import { CircuitBreaker, type CircuitState } from './circuit.js';
import { RetryPolicy } from './retry.js';
import { WaitQueue, type Waiter } from './wait-queue.js';

/** EWMA_DECAY weighs the latest latency sample against the running average (p2c). */
const EWMA_DECAY = 0.2;

export type { ServiceConfig };

/**
 * ServeVerdict: whether a service can take a request now, and if not why,
 * in the words of failover's conditions (`failover.on`).
 */
export type ServeVerdict = 'ok' | 'no-healthy-backend' | 'circuit-open';

export interface ServiceOptions {
  readonly name: string;
  readonly config: ServiceConfig;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** stickySecret signs sticky cookies when the config sets no `sticky.secret` (one per process, or per cluster). */
  readonly stickySecret: Buffer;
  /** onFlip is told when a backend becomes healthy or unhealthy, with why (for events and logs). */
  readonly onFlip: (backend: Backend, detail: string) => void;
}

/** PreparedService is a checked configuration, ready to be committed. */
export interface PreparedService {
  readonly config: ServiceConfig;
  readonly factory: PickerFactory;
  readonly tls: BackendTls;
}

export class Service {
  readonly name: string;
  readonly pool = new BackendPool();
  /** ops applies run-time backend changes (admin API, peers, discovery) and announces them. */
  readonly ops: BackendOps;
  readonly upstream: UpstreamClients;
  readonly outlier: OutlierDetector;
  /** queue holds requests waiting for a backend below its connection limit. */
  readonly queue = new WaitQueue<Waiter>();
  config: ServiceConfig;
  picker!: Picker;
  retry: RetryPolicy;
  /** hashKey computes the key of the hash policies; null for policies that read none. */
  hashKey: HashKeyFn | null = null;
  /** sticky: the sticky-session cookie, when configured. */
  sticky: StickySessions | null = null;
  /** circuit: the service's circuit breaker, when configured (per process: see circuit.ts). */
  circuit: CircuitBreaker | null = null;
  #factory: PickerFactory;
  readonly #health: ActiveHealthChecker;
  #healthCheck: HttpHealthCheck;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #stickySecret: Buffer;
  readonly #onFlip: (backend: Backend, detail: string) => void;
  /** #warnedNotFound: the backends whose 404 to the health path has been logged (once each). */
  readonly #warnedNotFound = new Set<string>();

  /** The constructor throws a ConfigError for an unknown policy or an unreadable TLS file. */
  constructor(options: ServiceOptions) {
    this.name = options.name;
    this.config = options.config;
    this.#log = options.log;
    this.#metrics = options.metrics;
    this.#stickySecret = options.stickySecret;
    this.#onFlip = options.onFlip;
    this.#factory = factoryOf(options.config);
    this.upstream = new UpstreamClients(options.config, options.log);
    this.outlier = new OutlierDetector(options.config.outlierDetection, this.pool, options.onFlip);
    this.retry = new RetryPolicy(options.config.retries);
    this.#circuitFor(options.config);
    this.ops = new BackendOps(this.pool, () => undefined);
    this.pool.replaceAll(options.config.backends);
    this.#balancing(options.config);
    this.#healthCheck = new HttpHealthCheck(options.config.healthCheck, this.upstream.tls, (b) => this.upstream.proxyProtocolFor(b));
    this.#health = this.#makeHealthChecker(options.config);
    this.#health.onResult((b, result) => this.#noticeNotFound(b, result));
    this.pool.on('change', (change) => this.#poolChanged(change));
  }

  get health(): ActiveHealthChecker {
    return this.#health;
  }

  // --- the data path ---------------------------------------------------

  pick(ctx: PickContext): Backend | undefined {
    return this.picker.pick(ctx);
  }

  /**
   * canServe tells whether a request sent here now could reach a backend;
   * splits and failover ask it, a request that has neither never does. It
   * stops at the first healthy backend, usually the first one.
   */
  canServe(): ServeVerdict {
    // The circuit breaker's verdict goes first: 'circuit-open' without looking at the backends (no half-open trial is taken).
    if (this.circuit !== null && !this.circuit.wouldAdmit()) return 'circuit-open';
    const backends = this.pool.snapshot;
    for (let i = 0; i < backends.length; i++) if (backends[i]!.state.reasons === 0) return 'ok';
    return 'no-healthy-backend';
  }

  /** isFull: the backend is at its connection limit (its own maxConnections, else the service's maxConnectionsPerBackend). */
  isFull(backend: Backend): boolean {
    const max = backend.config.maxConnections ?? this.config.maxConnectionsPerBackend;
    return max > 0 && backend.state.inflight >= max;
  }

  /** acquire takes a connection slot of the backend for one attempt (a request, or a tunnel's whole life). */
  acquire(backend: Backend): void {
    backend.state.inflight++;
  }

  /** release gives the slot back: a drained backend leaves, and the longest waiter gets the slot. */
  release(backend: Backend): void {
    backend.state.inflight--;
    if (backend.removeWhenDrained && backend.state.inflight === 0) this.#drained(backend);
    if (this.queue.length > 0) queueMicrotask(() => this.queue.wakeOne());
  }

  observeLatency(backend: Backend, ms: number): void {
    const s = backend.state;
    s.latencyEwma = s.latencyEwma === 0 ? ms : s.latencyEwma + EWMA_DECAY * (ms - s.latencyEwma);
  }

  /** onResponseHead adds the service's response headers (the sticky cookie) to `headers`, a flat list. */
  onResponseHead(ctx: ResponseHeadContext, headers: string[]): void {
    if (this.sticky !== null) this.sticky.onResponseHead(ctx, headers);
  }

  // --- life cycle ------------------------------------------------------

  /** start runs the active health checks. */
  start(): void {
    this.#health.start();
  }

  /**
   * prepare checks a new configuration without changing anything: it throws
   * a ConfigError (unknown policy, unreadable certificate) or returns what
   * commit() applies.
   */
  prepare(config: ServiceConfig): PreparedService {
    return { config, factory: factoryOf(config), tls: BackendTls.load(config, this.#log) };
  }

  /**
   * commit applies a prepared configuration. In-flight requests keep what
   * they captured; backends that stay keep their connections, health and
   * counters. `extra` are backends the config does not list (discovered
   * ones) that must stay.
   */
  commit(prepared: PreparedService, extra: readonly BackendConfig[] = []): PoolChange {
    const before = this.config;
    const next = prepared.config;
    this.config = next;
    const tlsChanged = prepared.tls.fingerprint !== this.upstream.tls.fingerprint;
    this.upstream.reconfigure(next, prepared.tls);
    this.outlier.reconfigure(next.outlierDetection);
    if (tlsChanged || JSON.stringify(before.healthCheck) !== JSON.stringify(next.healthCheck)) this.#replaceHealthCheck(next);
    this.retry = new RetryPolicy(next.retries);
    if (JSON.stringify(before.circuitBreaker) !== JSON.stringify(next.circuitBreaker)) this.#circuitFor(next);
    this.#factory = prepared.factory;
    this.#balancing(next);
    // replaceAll rebuilds the picker through the pool's change event; when nothing changed, rebuild here.
    const change = this.pool.replaceAll(extra.length === 0 ? next.backends : [...next.backends, ...extra]);
    if (change.added.length + change.removed.length + change.updated.length === 0) this.rebuildPicker();
    return change;
  }

  /** circuitState: the circuit's state, or null when the service has no circuit breaker. */
  get circuitState(): CircuitState | null {
    return this.circuit === null ? null : this.circuit.state;
  }

  /**
   * rebuildPicker is called when membership or weights change, never per
   * request. With backup backends, the policy is built over the primaries
   * and over the backups apart (balancer/backup.ts).
   */
  rebuildPicker(): void {
    const all = this.pool.snapshot;
    if (!all.some(isBackup)) {
      this.picker = this.#policyOver(all);
      return;
    }
    const primaries = all.filter((b) => !isBackup(b));
    this.picker = new BackupPicker(this.#policyOver(primaries), primaries, this.#policyOver(all.filter(isBackup)));
  }

  /** #policyOver builds the policy over some backends, with sticky sessions around it when configured. */
  #policyOver(backends: readonly Backend[]): Picker {
    const picker = this.#factory.build(backends, this.config);
    return this.sticky === null ? picker : this.sticky.wrap(picker, backends);
  }

  /** stop ends the health checks and ejection timers (before the listeners drain). */
  stop(): void {
    this.#health.stop();
  }

  /** close releases the upstream pools: gracefully, or at once when the drain ran out of time. */
  async close(graceful: boolean): Promise<void> {
    this.#health.stop();
    this.outlier.close();
    await (graceful ? this.upstream.close() : this.upstream.destroy());
    await this.#healthCheck.close();
  }

  // --- status ----------------------------------------------------------

  /** status is the service's part of /status. */
  status(now = Date.now()): { algorithm: string; healthyBackends: number; backends: (Record<string, unknown> & { healthy: boolean })[]; circuit?: Record<string, unknown> } {
    const backends = this.pool.snapshot.map((b) => this.backendStatus(b, now));
    const out = { algorithm: this.config.algorithm, healthyBackends: backends.filter((b) => b.healthy).length, backends };
    return this.circuit === null ? out : { ...out, circuit: this.circuit.status() };
  }

  backendStatus(b: Backend, now = Date.now()): Record<string, unknown> & { healthy: boolean } {
    const m = this.#metrics.byService.get(this.name)?.get(b.id);
    const s = b.state;
    return {
      id: b.id,
      url: b.url.href,
      healthy: s.reasons === 0,
      reasons: reasonNames(s.reasons),
      state: (s.reasons & 8) !== 0 ? 'disabled' : (s.reasons & 4) !== 0 ? 'draining' : 'enabled',
      weight: b.weight,
      effectiveWeight: this.effectiveWeight(b, now),
      ...(isBackup(b) ? { backup: true } : {}),
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

  /**
   * noBackendHint: when every backend is out only because it answers 404 to
   * the health path, what fixes it (for the 503 body); otherwise undefined.
   * Asked only when no backend could be picked.
   */
  noBackendHint(): string | undefined {
    const backends = this.pool.snapshot;
    const checkOnly = Reason.ACTIVE_CHECK_FAILED | Reason.INITIALLY_DOWN;
    if (backends.length === 0 || !backends.every((b) => (b.state.reasons & ~checkOnly) === 0 && answersNotFound(b))) return undefined;
    return `every backend answers 404 to the health check ${this.#healthCheckLine()}; ${this.#notFoundFix()}`;
  }

  #healthCheckLine(): string {
    return `${this.config.healthCheck.method} ${this.config.healthCheck.path}`;
  }

  /** #notFoundFix names the key and the flag that fix a health path the backends do not serve. */
  #notFoundFix(): string {
    const key = this.name === DEFAULT_SERVICE ? 'healthCheck' : `services.${this.name}.healthCheck`;
    return `set ${key}.path to a path they serve (--health-path /), or turn active checks off (${key}.enabled: false, --no-health-check)`;
  }

  /** #noticeNotFound logs, once per backend, a health path that a backend answering HTTP does not serve. */
  #noticeNotFound(backend: Backend, result: CheckResult): void {
    if (result.ok || !answersNotFound(backend) || this.#warnedNotFound.has(backend.id)) return;
    this.#warnedNotFound.add(backend.id);
    this.#log.warn({ service: this.name, backend: backend.id, url: backend.url.href, healthCheck: this.#healthCheckLine() },
      `backend ${backend.url.href} answers HTTP but 404 to the health check ${this.#healthCheckLine()}, so it is taken out of rotation: ${this.#notFoundFix()}`);
  }

  /** effectiveWeight is the weight a policy uses now (lower during slow start). */
  effectiveWeight(b: Backend, now = Date.now()): number {
    return round(effectiveWeight(b, this.config.slowStart, now));
  }

  // --- internals -------------------------------------------------------

  /** #balancing derives the per-request functions of the policy: the hash key and sticky sessions. */
  #balancing(config: ServiceConfig): void {
    this.hashKey = this.#factory.needsHashKey ? hashKeyFunction(config.hashKey) : null;
    this.sticky = config.sticky === undefined ? null : new StickySessions(config.sticky, config.sticky.secret ?? this.#stickySecret);
    this.rebuildPicker();
  }

  /** #circuitFor makes the circuit breaker the config asks for (a new one starts closed), or none. */
  #circuitFor(config: ServiceConfig): void {
    const cb = config.circuitBreaker;
    this.circuit = cb === undefined ? null : new CircuitBreaker(cb, (from, to, why) => {
      const fields = { service: this.name, circuit: to, from, why };
      if (to === 'open') this.#log.warn(fields, 'circuit opened: requests are refused');
      else this.#log.info(fields, to === 'closed' ? 'circuit closed' : 'circuit half-open: trial requests let through');
    });
  }

  #makeHealthChecker(config: ServiceConfig): ActiveHealthChecker {
    const checker = new ActiveHealthChecker({
      config: config.healthCheck,
      backends: () => this.pool.snapshot,
      check: this.#healthCheck,
      onFlip: this.#onFlip,
      onPass: (b) => this.outlier.activeCheckPassed(b),
    });
    this.outlier.requireActivePass = config.healthCheck.enabled;
    return checker;
  }

  /** #replaceHealthCheck swaps the probe in place: the checker keeps its gate, observers and timer. */
  #replaceHealthCheck(config: ServiceConfig): void {
    const previous = this.#healthCheck;
    this.#healthCheck = new HttpHealthCheck(config.healthCheck, this.upstream.tls, (b) => this.upstream.proxyProtocolFor(b));
    this.#health.reconfigure(config.healthCheck, this.#healthCheck);
    this.outlier.requireActivePass = config.healthCheck.enabled;
    void previous.close();
  }

  #poolChanged(change: PoolChange): void {
    this.rebuildPicker();
    for (const b of change.removed) {
      this.upstream.release(b.id);
      this.outlier.forget(b.id);
      this.#metrics.forget(this.name, b.id);
    }
    for (const b of change.updated) this.upstream.reset(b.id);
    // New backends are checked at once rather than at the next interval.
    if (this.config.healthCheck.enabled && this.#health.shouldRun()) for (const b of change.added) void this.#health.checkBackend(b);
    if (poolChannel.hasSubscribers) poolChannel.publish({ added: change.added.map((b) => b.id), removed: change.removed.map((b) => b.id), updated: change.updated.map((b) => b.id) });
  }

  #drained(backend: Backend): void {
    if (this.pool.get(backend.id) === backend) {
      this.pool.remove(backend.id);
      this.#log.info({ backend: backend.id, url: backend.url.href }, 'drained backend removed');
    }
  }
}

function factoryOf(config: ServiceConfig): PickerFactory {
  const factory = getPickerFactory(config.algorithm);
  if (factory === undefined) throw new ConfigError([{ source: 'config', path: 'algorithm', message: `unknown algorithm "${config.algorithm}"` }]);
  return factory;
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
