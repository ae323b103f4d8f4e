/**
 * Active health checks: `GET <path>` on every backend every `interval`,
 * concurrently, in the background, never on the request path. A backend
 * flips only after `healthyThreshold` passes or `unhealthyThreshold`
 * failures in a row. Checks use their own connection pool so that a slow
 * check never queues behind traffic.
 */
import { Agent, request } from 'undici';
import type { Backend } from '../backends/backend.js';
import type { BackendPool } from '../backends/pool.js';
import { Reason } from '../backends/reasons.js';
import type { HealthCheckConfig } from '../config/schema.js';
import { tlsConnector, type BackendTlsOptions } from '../upstream/backend-tls.js';

export interface CheckResult {
  readonly ok: boolean;
  readonly detail: string;
}

/** HealthCheck is one way of checking a backend; HTTP is the built-in one. */
export interface HealthCheck {
  check(backend: Backend, signal: AbortSignal): Promise<CheckResult>;
}

/** TlsOptionsSource gives the TLS options of an https backend: the proxy's own, so checks trust what traffic trusts. */
export interface TlsOptionsSource {
  optionsFor(backend: Backend): BackendTlsOptions;
}

export class HttpHealthCheck implements HealthCheck {
  readonly #agent: Agent;
  /** #tlsAgents: one agent per distinct TLS profile (the source shares one options object per profile). */
  readonly #tlsAgents = new Map<BackendTlsOptions, Agent>();

  constructor(private readonly config: HealthCheckConfig, private readonly tls: TlsOptionsSource) {
    this.#agent = this.#newAgent(null);
  }

  #newAgent(tls: BackendTlsOptions | null): Agent {
    const connect = tls === null ? { timeout: this.config.timeout } : tlsConnector(tls, this.config.timeout);
    return new Agent({ keepAliveTimeout: 10_000, connections: 2, connect });
  }

  #agentFor(backend: Backend): Agent {
    if (backend.url.protocol !== 'https:') return this.#agent;
    const options = this.tls.optionsFor(backend);
    let agent = this.#tlsAgents.get(options);
    if (agent === undefined) {
      agent = this.#newAgent(options);
      this.#tlsAgents.set(options, agent);
    }
    return agent;
  }

  async check(backend: Backend, signal: AbortSignal): Promise<CheckResult> {
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
      return { ok, detail: `status ${res.statusCode}` };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (signal.aborted) return { ok: false, detail: `timeout after ${this.config.timeout}ms` };
      return { ok: false, detail: e.code !== undefined ? `${e.code}: ${e.message}` : e.message };
    }
  }

  async close(): Promise<void> {
    const agents = [this.#agent, ...this.#tlsAgents.values()];
    this.#tlsAgents.clear();
    await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
  }
}

export type FlipListener = (backend: Backend, detail: string) => void;

export class ActiveHealthChecker {
  #timer: NodeJS.Timeout | null = null;
  readonly #running = new Set<string>();
  #closed = false;
  /** shouldRun lets the Redis lease decide which instance checks (all, without Redis). */
  shouldRun: () => boolean = () => true;
  /** onResult lets others (outlier detection, the shared store) see every result. */
  onResult: (backend: Backend, result: CheckResult) => void = () => undefined;
  /** onPass is told of every passing check (outlier detection ends ejections on it). */
  onPass: ((backend: Backend) => void) | null = null;

  constructor(
    private config: HealthCheckConfig,
    private readonly pool: BackendPool,
    private readonly checker: HealthCheck,
    private readonly onFlip: FlipListener,
  ) {}

  start(): void {
    if (!this.config.enabled || this.#timer !== null) return;
    this.#schedule(0);
  }

  #schedule(delay: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.shouldRun()) this.runAll();
      this.#schedule(this.config.interval);
    }, delay);
    this.#timer.unref();
  }

  /** runAll checks every backend concurrently; resolves when all are done. */
  async runAll(): Promise<void> {
    await Promise.all(this.pool.snapshot.map((b) => this.checkBackend(b)));
  }

  /** checkBackend runs one check unless one is already running for that backend. */
  async checkBackend(backend: Backend): Promise<void> {
    if (this.#running.has(backend.id)) return;
    this.#running.add(backend.id);
    try {
      const signal = AbortSignal.timeout(this.config.timeout);
      const result = await this.checker.check(backend, signal);
      if (this.#closed || this.pool.get(backend.id) !== backend) return;
      this.apply(backend, result);
    } finally {
      this.#running.delete(backend.id);
    }
  }

  /** apply records a result and flips the backend when a threshold is reached. */
  apply(backend: Backend, result: CheckResult): void {
    const s = backend.state;
    s.lastCheck = Date.now();
    s.lastCheckOk = result.ok;
    s.lastCheckError = result.ok ? undefined : result.detail;
    const down = Reason.ACTIVE_CHECK_FAILED | Reason.INITIALLY_DOWN;
    if (result.ok) {
      this.onPass?.(backend);
      s.checkStreak = s.checkStreak > 0 ? s.checkStreak + 1 : 1;
      if ((s.reasons & down) !== 0 && s.checkStreak >= this.config.healthyThreshold) {
        const flipped = backend.setReason(down, false);
        if (flipped) this.onFlip(backend, `passed ${s.checkStreak} checks in a row (${result.detail})`);
      }
    } else {
      s.checkStreak = s.checkStreak < 0 ? s.checkStreak - 1 : -1;
      if ((s.reasons & Reason.ACTIVE_CHECK_FAILED) === 0 && -s.checkStreak >= this.config.unhealthyThreshold) {
        const flipped = backend.setReason(Reason.ACTIVE_CHECK_FAILED, true);
        if (flipped) this.onFlip(backend, `failed ${-s.checkStreak} checks in a row (${result.detail})`);
      }
    }
    this.onResult(backend, result);
  }

  reconfigure(config: HealthCheckConfig): void {
    const restart = config.interval !== this.config.interval || config.enabled !== this.config.enabled;
    this.config = config;
    if (restart) {
      this.stop();
      this.#closed = false;
      this.start();
    }
  }

  stop(): void {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
