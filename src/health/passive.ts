/**
 * Passive health checks (outlier detection): consecutive failures seen on
 * real traffic (connect errors, timeouts, 5xx) eject a backend for a time
 * that grows with each ejection (base * ejections, capped), never more than
 * `maxEjectionPercent` of the pool at once. An ejected backend returns when
 * its time is up; if active checks are on, the active check must also pass
 * (the ACTIVE_CHECK_FAILED reason stays set until it does).
 */
import type { Backend } from '../backends/backend.js';
import { Reason } from '../backends/reasons.js';
import type { FulcrumConfig } from '../config/schema.js';
import { realClock, type Clock, type TimerHandle } from './clock.js';

export type OutlierConfig = FulcrumConfig['outlierDetection'];

export interface HealthFlipListener {
  (backend: Backend, detail: string): void;
}

/** BackendSource is what outlier detection reads of the pool: its current backends (for the ejection cap). */
export interface BackendSource {
  readonly snapshot: readonly Backend[];
}

export class OutlierDetector {
  /** #timers: the end of each running ejection, by backend id. */
  readonly #timers = new Map<string, TimerHandle>();

  /**
   * requireActivePass: when active checks run, an ejected backend returns
   * only after its ejection time AND a passing active check (Envoy and
   * HAProxy behave alike), so a backend that is still broken is not tried
   * again on live traffic.
   */
  requireActivePass = false;

  /** clock: time and timers; real, unref'ed timers by default. */
  constructor(
    private config: OutlierConfig,
    private readonly pool: BackendSource,
    private readonly onFlip: HealthFlipListener,
    private readonly clock: Clock = realClock,
  ) {}

  reconfigure(config: OutlierConfig): void {
    this.config = config;
  }

  /** success resets the failure streak; called for every response below 500. */
  success(backend: Backend): void {
    backend.state.failureStreak = 0;
  }

  /** failure counts a connect error, timeout or 5xx, and ejects at the threshold. */
  failure(backend: Backend, detail: string): void {
    const s = backend.state;
    s.failureStreak++;
    if (!this.config.enabled || s.failureStreak < this.config.consecutiveFailures) return;
    if ((s.reasons & Reason.EJECTED) !== 0) return;
    if (!this.#mayEject()) return;
    s.ejections++;
    s.failureStreak = 0;
    const duration = Math.min(this.config.baseEjectionTime * s.ejections, this.config.maxEjectionTime);
    s.ejectedUntil = this.clock.now() + duration;
    if (backend.setReason(Reason.EJECTED, true)) this.onFlip(backend, `ejected for ${duration}ms after ${this.config.consecutiveFailures} consecutive failures (last: ${detail})`);
    this.#timers.set(backend.id, this.clock.setTimeout(() => this.#unEject(backend), duration));
  }

  #mayEject(): boolean {
    const backends = this.pool.snapshot;
    if (backends.length === 0) return false;
    let ejected = 0;
    for (const b of backends) if ((b.state.reasons & Reason.EJECTED) !== 0) ejected++;
    // As in Envoy, at least one backend may always be ejected, whatever the percentage.
    const cap = Math.max(1, Math.floor((backends.length * this.config.maxEjectionPercent) / 100));
    return ejected < cap;
  }

  #unEject(backend: Backend): void {
    this.#timers.delete(backend.id);
    backend.state.ejectedUntil = 0;
    if (this.requireActivePass) return; // activeCheckPassed() brings it back
    if (backend.setReason(Reason.EJECTED, false)) this.onFlip(backend, 'ejection time elapsed');
  }

  /** activeCheckPassed ends an ejection whose time is up, once an active check passes. */
  activeCheckPassed(backend: Backend): void {
    const s = backend.state;
    if ((s.reasons & Reason.EJECTED) === 0 || s.ejectedUntil !== 0) return;
    if (backend.setReason(Reason.EJECTED, false)) this.onFlip(backend, 'ejection time elapsed and an active check passed');
  }

  /** forget clears a removed backend's timer. */
  forget(id: string): void {
    const t = this.#timers.get(id);
    if (t !== undefined) this.clock.clearTimeout(t);
    this.#timers.delete(id);
  }

  close(): void {
    for (const t of this.#timers.values()) this.clock.clearTimeout(t);
    this.#timers.clear();
  }
}
