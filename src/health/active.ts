/**
 * Active health checks: `GET <path>` on every backend every `interval`
 * (over HTTP/2 for h2c:// backends; with `mode: grpc`, a call of
 * grpc.health.v1.Health/Check over HTTP/2, see h2-probe.ts),
 * concurrently, in the background, never on the request path. A backend
 * flips only after `healthyThreshold` passes or `unhealthyThreshold`
 * failures in a row. Checks use their own connection pool so that a slow
 * check never queues behind traffic.
 *
 * ActiveHealthChecker is the scheduler and the thresholds; HealthCheck is
 * the probe (HttpHealthCheck, or a scripted one in tests). The time source
 * and the timers are an injected Clock, and a gate decides whether the
 * timer's rounds run (the Redis lease: only its holder checks).
 */
import { Agent, request } from 'undici';
import type { Backend } from '../backends/backend.js';
import { Reason } from '../backends/reasons.js';
import type { HealthCheckConfig } from '../config/schema.js';
import { tlsConnector, type BackendTlsOptions } from '../upstream/backend-tls.js';
import { localProxyHeader, proxiedConnector, type ProxyProtocolVersion } from '../upstream/proxy-protocol.js';
import { realClock, type Clock, type TimerHandle } from './clock.js';
import type { ConnectionOptions } from 'node:tls';
import { grpcHealthRequest, grpcServingStatus, h2Probe, SERVING, servingName } from './h2-probe.js';

/** statusDetail is a check result's detail for an HTTP answer (shared with other instances as lastCheckError). */
export function statusDetail(status: number): string {
  return `status ${status}`;
}

/**
 * answersNotFound: the backend's last check was answered 404: it serves HTTP
 * but not the health path, which is a configuration mistake (the seeds'
 * `python3 -m http.server` backends have no /health), not an outage.
 */
export function answersNotFound(backend: Backend): boolean {
  return backend.state.lastCheckError === NOT_FOUND;
}

const NOT_FOUND = statusDetail(404);

export interface CheckResult {
  readonly ok: boolean;
  readonly detail: string;
}

/** HealthCheck is one way of checking a backend; HTTP is the built-in one. */
export interface HealthCheck {
  /**
   * check probes one backend. `signal` aborts at the checker's `timeout`; the
   * check must then settle promptly (a failure), as HttpHealthCheck does.
   */
  check(backend: Backend, signal: AbortSignal): Promise<CheckResult>;
}

/** TlsOptionsSource gives the TLS options of an https backend: the proxy's own, so checks trust what traffic trusts. */
export interface TlsOptionsSource {
  optionsFor(backend: Backend): BackendTlsOptions;
  /** connectOptionsFor: the same as tls.connect options, with the SNI name (HTTP/2 checks). */
  connectOptionsFor(backend: Backend): ConnectionOptions;
}

export class HttpHealthCheck implements HealthCheck {
  readonly #agent: Agent;
  /** #tlsAgents: one agent per distinct TLS profile (the source shares one options object per profile). */
  readonly #tlsAgents = new Map<BackendTlsOptions, Agent>();
  /** #proxiedAgents: for backends that expect the PROXY protocol, agents that start each connection with a LOCAL header. */
  readonly #proxiedAgents = new Map<BackendTlsOptions | null, Map<ProxyProtocolVersion, Agent>>();

  constructor(
    private readonly config: HealthCheckConfig,
    private readonly tls: TlsOptionsSource,
    /** proxyProtocolFor: the PROXY protocol version a backend expects (sendProxyProtocol), or null. */
    private readonly proxyProtocolFor: (backend: Backend) => ProxyProtocolVersion | null = () => null,
  ) {
    this.#agent = this.#newAgent(null);
  }

  #newAgent(tls: BackendTlsOptions | null, proxy: ProxyProtocolVersion | null = null): Agent {
    const tlsConnect = tls === null ? null : tlsConnector(tls, this.config.timeout);
    // A check is Fulcrum's own connection: it says so (v2 LOCAL, v1 UNKNOWN), and the backend keeps the real peer.
    const connect = proxy !== null ? proxiedConnector(localProxyHeader(proxy), tlsConnect, this.config.timeout) : tlsConnect ?? { timeout: this.config.timeout };
    return new Agent({ keepAliveTimeout: 10_000, connections: 2, connect });
  }

  #agentFor(backend: Backend): Agent {
    const proxy = this.proxyProtocolFor(backend);
    if (proxy !== null) return this.#proxiedAgentFor(backend, proxy);
    if (backend.url.protocol !== 'https:') return this.#agent;
    const options = this.tls.optionsFor(backend);
    let agent = this.#tlsAgents.get(options);
    if (agent === undefined) {
      agent = this.#newAgent(options);
      this.#tlsAgents.set(options, agent);
    }
    return agent;
  }

  #proxiedAgentFor(backend: Backend, proxy: ProxyProtocolVersion): Agent {
    const options = backend.url.protocol === 'https:' ? this.tls.optionsFor(backend) : null;
    let byVersion = this.#proxiedAgents.get(options);
    if (byVersion === undefined) {
      byVersion = new Map();
      this.#proxiedAgents.set(options, byVersion);
    }
    let agent = byVersion.get(proxy);
    if (agent === undefined) {
      agent = this.#newAgent(options, proxy);
      byVersion.set(proxy, agent);
    }
    return agent;
  }

  async check(backend: Backend, signal: AbortSignal): Promise<CheckResult> {
    if (this.config.mode === 'grpc') return this.#checkGrpc(backend, signal);
    if (backend.url.protocol === 'h2c:') return this.#checkH2c(backend, signal);
    const url = new URL(this.config.path, backend.url);
    try {
      const res = await request(url, {
        method: this.config.method,
        headers: { 'user-agent': 'fulcrum-health-check', ...this.config.headers },
        dispatcher: this.#agentFor(backend),
        signal,
        headersTimeout: this.config.timeout,
        bodyTimeout: this.config.timeout,
      });
      await res.body.dump({ limit: 64 * 1024, signal });
      const ok = this.config.expectStatus.some(([lo, hi]) => res.statusCode >= lo && res.statusCode <= hi);
      return { ok, detail: statusDetail(res.statusCode) };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (signal.aborted) return { ok: false, detail: `timeout after ${this.config.timeout}ms` };
      return { ok: false, detail: e.code !== undefined ? `${e.code}: ${e.message}` : e.message };
    }
  }

  /** #checkH2c: the HTTP check of an h2c:// backend, over cleartext HTTP/2. */
  async #checkH2c(backend: Backend, signal: AbortSignal): Promise<CheckResult> {
    try {
      const res = await h2Probe(backend.url, null, {
        method: this.config.method, path: this.config.path, headers: { 'user-agent': 'fulcrum-health-check', ...lowerKeys(this.config.headers) }, body: null,
      }, signal);
      const ok = this.config.expectStatus.some(([lo, hi]) => res.status >= lo && res.status <= hi);
      return { ok, detail: `status ${res.status}` };
    } catch (err) {
      return this.#failure(err, signal);
    }
  }

  /** #checkGrpc calls grpc.health.v1.Health/Check: healthy when the answer is SERVING. */
  async #checkGrpc(backend: Backend, signal: AbortSignal): Promise<CheckResult> {
    const tls = backend.url.protocol === 'https:' ? this.tls.connectOptionsFor(backend) : null;
    try {
      const res = await h2Probe(backend.url, tls, {
        method: 'POST',
        path: '/grpc.health.v1.Health/Check',
        headers: { 'content-type': 'application/grpc', te: 'trailers', 'user-agent': 'fulcrum-health-check', ...lowerKeys(this.config.headers) },
        body: grpcHealthRequest(this.config.grpcService),
      }, signal);
      const grpcStatus = res.trailers['grpc-status'] ?? res.headers['grpc-status'];
      if (res.status !== 200 || grpcStatus !== '0') {
        const message = res.trailers['grpc-message'] ?? res.headers['grpc-message'];
        return { ok: false, detail: `status ${res.status}, grpc-status ${String(grpcStatus)}${message === undefined ? '' : ` (${decodeURIComponent(String(message))})`}` };
      }
      const serving = grpcServingStatus(res.body);
      return { ok: serving === SERVING, detail: serving < 0 ? 'not a HealthCheckResponse' : servingName(serving) };
    } catch (err) {
      return this.#failure(err, signal);
    }
  }

  #failure(err: unknown, signal: AbortSignal): CheckResult {
    const e = err as NodeJS.ErrnoException;
    if (signal.aborted) return { ok: false, detail: `timeout after ${this.config.timeout}ms` };
    return { ok: false, detail: e.code !== undefined ? `${e.code}: ${e.message}` : e.message };
  }

  async close(): Promise<void> {
    const agents = [this.#agent, ...this.#tlsAgents.values(), ...[...this.#proxiedAgents.values()].flatMap((m) => [...m.values()])];
    this.#tlsAgents.clear();
    this.#proxiedAgents.clear();
    await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
  }
}

export type FlipListener = (backend: Backend, detail: string) => void;

/** ResultListener sees every applied check result, after the thresholds (see ActiveHealthChecker.onResult). */
export type ResultListener = (backend: Backend, result: CheckResult) => void;

export interface ActiveHealthCheckerOptions {
  readonly config: HealthCheckConfig;
  /**
   * backends gives the backends to check (the pool's snapshot). A result
   * for a backend no longer among them (removed, or replaced under its id)
   * is dropped.
   */
  readonly backends: () => readonly Backend[];
  /** check is the probe (HttpHealthCheck in production). */
  readonly check: HealthCheck;
  /** onFlip is told when a threshold takes a backend in or out, with a detail for the log. */
  readonly onFlip: FlipListener;
  /** onPass is told of every passing check (outlier detection ends ejections on it). */
  readonly onPass?: (backend: Backend) => void;
  /** clock: time and timers; real, unref'ed timers by default. */
  readonly clock?: Clock;
  /** gate: whether the timer's rounds run now (see setGate); always by default. */
  readonly gate?: () => boolean;
}

const ALWAYS = (): boolean => true;

/**
 * ActiveHealthChecker checks every backend at each `interval` (the first
 * round at start()) and flips backends at the thresholds. One instance lives
 * as long as its balancer: a reload reconfigures it in place, so the gate,
 * the observers and the backends' streaks (kept on the backends) carry over.
 */
export class ActiveHealthChecker {
  #config: HealthCheckConfig;
  #check: HealthCheck;
  readonly #backends: () => readonly Backend[];
  readonly #onFlip: FlipListener;
  readonly #onPass: ((backend: Backend) => void) | undefined;
  readonly #clock: Clock;
  #gate: () => boolean;
  #observers: readonly { readonly listener: ResultListener }[] = [];
  #timer: TimerHandle | null = null;
  /** #running: ids with a check in flight (of the current generation). */
  #running = new Set<string>();
  /** #inFlight: the abort controllers of the checks in flight, aborted by reconfigure and stop. */
  readonly #inFlight = new Set<AbortController>();
  /** #generation changes at reconfigure and stop; results of checks begun before are dropped. */
  #generation = 0;
  /** #started: start() was called (the timer runs while the config enables checks). */
  #started = false;
  /** #stopped: stop() was called; final. */
  #stopped = false;

  constructor(options: ActiveHealthCheckerOptions) {
    this.#config = options.config;
    this.#backends = options.backends;
    this.#check = options.check;
    this.#onFlip = options.onFlip;
    this.#onPass = options.onPass;
    this.#clock = options.clock ?? realClock;
    this.#gate = options.gate ?? ALWAYS;
  }

  get config(): HealthCheckConfig {
    return this.#config;
  }

  /**
   * setGate sets the condition under which the timer's rounds run: checked
   * at every interval, a closed gate skips that round (the timer keeps
   * going, so checks resume at the first interval after it opens). The Redis
   * lease uses it: only the holder checks. Direct calls of runAll and
   * checkBackend are not gated.
   */
  setGate(gate: () => boolean): void {
    this.#gate = gate;
  }

  /** shouldRun tells whether the gate is open now (e.g. before checking a newly added backend). */
  shouldRun(): boolean {
    return this.#gate();
  }

  /**
   * onResult subscribes to every applied result (the shared store
   * publishes them), called after the thresholds were applied, in
   * subscription order; returns the unsubscribe function.
   */
  onResult(listener: ResultListener): () => void {
    const entry = { listener };
    this.#observers = [...this.#observers, entry];
    return () => {
      this.#observers = this.#observers.filter((e) => e !== entry);
    };
  }

  /**
   * start runs a first round at once, then one every `interval`, while the
   * config enables checks (each round only if the gate is open); no-op if
   * already started or stopped.
   */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    if (this.#config.enabled) this.#schedule(0);
  }

  #schedule(delay: number): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = null;
      if (this.#gate()) void this.runAll();
      this.#schedule(this.#config.interval);
    }, delay);
  }

  #cancelTimer(): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** runAll checks every backend concurrently; resolves when all are done. */
  async runAll(): Promise<void> {
    await Promise.all(this.#backends().map((b) => this.checkBackend(b)));
  }

  /**
   * checkBackend runs one check unless one is already running for that
   * backend (or the checker is stopped). A check that has not settled after
   * `timeout` is aborted through its signal; a check that throws counts as a
   * failure. The result is dropped if the backend left meanwhile, or the
   * checker was reconfigured or stopped.
   */
  async checkBackend(backend: Backend): Promise<void> {
    const running = this.#running;
    if (this.#stopped || running.has(backend.id)) return;
    running.add(backend.id);
    const generation = this.#generation;
    const { timeout } = this.#config;
    const controller = new AbortController();
    this.#inFlight.add(controller);
    const timer = this.#clock.setTimeout(() => controller.abort(new DOMException(`health check timed out after ${timeout}ms`, 'TimeoutError')), timeout);
    try {
      let result: CheckResult;
      try {
        result = await this.#check.check(backend, controller.signal);
      } catch (err) {
        result = { ok: false, detail: err instanceof Error ? err.message : String(err) };
      }
      if (generation !== this.#generation || !this.#backends().includes(backend)) return;
      this.apply(backend, result);
    } finally {
      this.#clock.clearTimeout(timer);
      this.#inFlight.delete(controller);
      running.delete(backend.id);
    }
  }

  /** apply records a result, flips the backend when a threshold is reached, then tells the observers. */
  apply(backend: Backend, result: CheckResult): void {
    const s = backend.state;
    s.lastCheck = this.#clock.now();
    s.lastCheckOk = result.ok;
    s.lastCheckError = result.ok ? undefined : result.detail;
    const down = Reason.ACTIVE_CHECK_FAILED | Reason.INITIALLY_DOWN;
    if (result.ok) {
      this.#onPass?.(backend);
      s.checkStreak = s.checkStreak > 0 ? s.checkStreak + 1 : 1;
      if ((s.reasons & down) !== 0 && s.checkStreak >= this.#config.healthyThreshold) {
        const flipped = backend.setReason(down, false);
        if (flipped) this.#onFlip(backend, `passed ${s.checkStreak} checks in a row (${result.detail})`);
      }
    } else {
      s.checkStreak = s.checkStreak < 0 ? s.checkStreak - 1 : -1;
      if ((s.reasons & Reason.ACTIVE_CHECK_FAILED) === 0 && -s.checkStreak >= this.#config.unhealthyThreshold) {
        const flipped = backend.setReason(Reason.ACTIVE_CHECK_FAILED, true);
        if (flipped) this.#onFlip(backend, `failed ${-s.checkStreak} checks in a row (${result.detail})`);
      }
    }
    for (const { listener } of this.#observers) listener(backend, result);
  }

  /**
   * reconfigure swaps the config and the probe in place (a reload). The
   * gate, the observers and the backends' streaks stay; checks in flight are
   * aborted and their results dropped. If started, the timer restarts: a
   * round at once with the new settings (if enabled and the gate is open),
   * then one every new `interval`.
   */
  reconfigure(config: HealthCheckConfig, check: HealthCheck): void {
    this.#config = config;
    this.#check = check;
    this.#endInFlight('the health check was reconfigured');
    if (!this.#started || this.#stopped) return;
    this.#cancelTimer();
    if (config.enabled) this.#schedule(0);
  }

  /** stop ends the checker for good: no timer, no new checks, the checks in flight aborted (their results dropped). */
  stop(): void {
    this.#stopped = true;
    this.#cancelTimer();
    this.#endInFlight('the health checker stopped');
  }

  /** #endInFlight drops the results of the checks in flight and aborts them. */
  #endInFlight(why: string): void {
    this.#generation++;
    this.#running = new Set();
    const controllers = [...this.#inFlight];
    this.#inFlight.clear();
    for (const c of controllers) c.abort(new DOMException(why, 'AbortError'));
  }
}

/** lowerKeys: HTTP/2 field names are lower case (node:http2 refuses others). */
function lowerKeys(headers: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) out[name.toLowerCase()] = value;
  return out;
}
