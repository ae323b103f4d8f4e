/**
 * Circuit breaking for a service: while the service is failing, refuse its
 * requests at once (503 FULCRUM_ERR_CIRCUIT_OPEN) instead of sending them to
 * backends that cannot answer, then let a few trial requests decide whether
 * it has recovered.
 *
 *   closed     requests go through; their outcomes fill a sliding window.
 *              Once the window holds `minRequests`, a failure share of at
 *              least `errorRatio`, or a p99 latency above `latencyP99`,
 *              opens the circuit.
 *   open       every request is refused, for `openFor`.
 *   half-open  `halfOpenRequests` trial requests are let through (others
 *              are refused); one failure opens the circuit again, and when
 *              all of them succeed it closes with an empty window.
 *
 * The state is this process's own (Envoy's and Traefik's breakers are per
 * instance too): each worker and each instance behind the same Redis
 * decides from the requests it has seen. Time comes from a Clock, so tests
 * drive it by hand; nothing here sets a timer: the move from open to
 * half-open happens when a request (or /status) looks at the state.
 */
import type { CircuitBreakerConfig } from '../config/schema.js';
import { realClock, type Clock } from '../health/clock.js';

export type CircuitState = 'closed' | 'open' | 'half-open';

/** CIRCUIT_STATE_VALUES: the values of the `fulcrum_circuit_state` gauge. */
export const CIRCUIT_STATE_VALUES: Readonly<Record<CircuitState, number>> = { closed: 0, open: 1, 'half-open': 2 };

/** SLOTS: the window is kept as this many slots of window/SLOTS each, the oldest dropped as time moves. */
const SLOTS = 10;
/** P99_SHARE: the p99 latency is above a threshold exactly when more than 1% of requests took longer. */
const P99_SHARE = 0.01;

/** WindowTotals: what the window holds now. */
export interface WindowTotals {
  readonly requests: number;
  readonly failures: number;
  /** slow: requests slower than the latency threshold (0 without one). */
  readonly slow: number;
}

/**
 * OutcomeWindow counts request outcomes over the last `windowMs` in slots
 * (a ring, like the retry budget's): O(1) to record, O(SLOTS) to total.
 * Latency is counted against the one threshold that matters rather than
 * kept in a histogram: "p99 above T" is "more than 1% slower than T".
 */
export class OutcomeWindow {
  readonly #requests = new Float64Array(SLOTS);
  readonly #failures = new Float64Array(SLOTS);
  readonly #slow = new Float64Array(SLOTS);
  readonly #slotMs: number;
  /** #slot: the absolute number of the newest slot (time / slotMs). */
  #slot = 0;

  constructor(windowMs: number, private readonly slowAboveMs: number, private readonly clock: Clock = realClock) {
    this.#slotMs = Math.max(1, windowMs / SLOTS);
    this.#slot = Math.floor(clock.now() / this.#slotMs);
  }

  record(failed: boolean, latencyMs: number): void {
    const i = this.#advance();
    this.#requests[i]!++;
    if (failed) this.#failures[i]!++;
    if (this.slowAboveMs > 0 && latencyMs > this.slowAboveMs) this.#slow[i]!++;
  }

  totals(): WindowTotals {
    this.#advance();
    let requests = 0;
    let failures = 0;
    let slow = 0;
    for (let i = 0; i < SLOTS; i++) {
      requests += this.#requests[i]!;
      failures += this.#failures[i]!;
      slow += this.#slow[i]!;
    }
    return { requests, failures, slow };
  }

  reset(): void {
    this.#requests.fill(0);
    this.#failures.fill(0);
    this.#slow.fill(0);
  }

  /** #advance clears the slots that time has left behind and returns the index of the current one. */
  #advance(): number {
    const slot = Math.floor(this.clock.now() / this.#slotMs);
    if (slot > this.#slot) {
      const gap = Math.min(slot - this.#slot, SLOTS);
      for (let k = 1; k <= gap; k++) {
        const i = (this.#slot + k) % SLOTS;
        this.#requests[i] = 0;
        this.#failures[i] = 0;
        this.#slow[i] = 0;
      }
      this.#slot = slot;
    }
    return this.#slot % SLOTS;
  }
}

/** CircuitChange is told to the breaker's owner (which logs it) on every change of state. */
export type CircuitChange = (from: CircuitState, to: CircuitState, why: string) => void;

/** REFUSED: the ticket of a request the circuit refuses. */
export const REFUSED = -1;

export class CircuitBreaker {
  readonly config: CircuitBreakerConfig;
  readonly #window: OutcomeWindow;
  readonly #clock: Clock;
  readonly #onChange: CircuitChange;
  #state: CircuitState = 'closed';
  /** #epoch changes with every state change: an outcome of a request admitted in another epoch is stale. */
  #epoch = 0;
  #since: number;
  #openedUntil = 0;
  /** In half-open: trials let through and not yet settled, and trials that succeeded. */
  #trialsOut = 0;
  #trialsPassed = 0;
  /** opens: how many times the circuit has opened, for /status. */
  opens = 0;

  constructor(config: CircuitBreakerConfig, onChange: CircuitChange, clock: Clock = realClock) {
    this.config = config;
    this.#clock = clock;
    this.#onChange = onChange;
    this.#window = new OutcomeWindow(config.window, config.latencyP99 ?? 0, clock);
    this.#since = clock.now();
  }

  /** state is the circuit's state now (an open circuit whose openFor has passed is half-open). */
  get state(): CircuitState {
    if (this.#state === 'open' && this.#clock.now() >= this.#openedUntil) this.#move('half-open', `open for ${this.config.openFor}ms`);
    return this.#state;
  }

  /**
   * admit is asked once per request before any backend is chosen. It
   * returns REFUSED, or a ticket to hand back to settle() or release()
   * when the request's outcome is known.
   */
  admit(): number {
    const state = this.state;
    if (state === 'closed') return this.#epoch;
    if (state === 'open' || this.#trialsOut + this.#trialsPassed >= this.config.halfOpenRequests) return REFUSED;
    this.#trialsOut++;
    return this.#epoch;
  }

  /** wouldAdmit: would a request be let through now (without taking a trial)? For failover decisions. */
  wouldAdmit(): boolean {
    const state = this.state;
    return state === 'closed' || (state === 'half-open' && this.#trialsOut + this.#trialsPassed < this.config.halfOpenRequests);
  }

  /** settle records the outcome of an admitted request: failed (a 5xx or a connection error) and its latency. */
  settle(ticket: number, failed: boolean, latencyMs: number): void {
    if (ticket !== this.#epoch) return;
    if (this.#state === 'closed') {
      this.#window.record(failed, latencyMs);
      this.#evaluate();
      return;
    }
    if (this.#state !== 'half-open') return;
    this.#trialsOut--;
    const slow = this.config.latencyP99 !== undefined && latencyMs > this.config.latencyP99;
    if (failed || slow) {
      this.#open(failed ? 'a trial request failed' : `a trial request took ${Math.round(latencyMs)}ms`);
      return;
    }
    this.#trialsPassed++;
    if (this.#trialsPassed >= this.config.halfOpenRequests) {
      this.#window.reset();
      this.#move('closed', `${this.#trialsPassed} trial requests succeeded`);
    }
  }

  /** release gives back the ticket of a request that ended without an outcome (the client left, no backend). */
  release(ticket: number): void {
    if (ticket === this.#epoch && this.#state === 'half-open') this.#trialsOut--;
  }

  /** status is the circuit's part of the service's /status. */
  status(): Record<string, unknown> {
    const state = this.state;
    const t = this.#window.totals();
    return {
      state,
      since: new Date(this.#since).toISOString(),
      openUntil: state === 'open' ? new Date(this.#openedUntil).toISOString() : null,
      opens: this.opens,
      window: { requests: t.requests, failures: t.failures, ...(this.config.latencyP99 === undefined ? {} : { slow: t.slow }) },
      ...(state === 'half-open' ? { trials: { inFlight: this.#trialsOut, passed: this.#trialsPassed, needed: this.config.halfOpenRequests } } : {}),
    };
  }

  #evaluate(): void {
    const c = this.config;
    const t = this.#window.totals();
    if (t.requests < c.minRequests) return;
    if (t.failures / t.requests >= c.errorRatio) this.#open(`${t.failures} of ${t.requests} requests failed`);
    else if (c.latencyP99 !== undefined && t.slow / t.requests > P99_SHARE) this.#open(`p99 latency above ${c.latencyP99}ms (${t.slow} of ${t.requests} slower)`);
  }

  #open(why: string): void {
    this.#openedUntil = this.#clock.now() + this.config.openFor;
    this.opens++;
    this.#move('open', why);
  }

  #move(to: CircuitState, why: string): void {
    const from = this.#state;
    this.#state = to;
    this.#epoch++;
    this.#since = this.#clock.now();
    this.#trialsOut = 0;
    this.#trialsPassed = 0;
    this.#onChange(from, to, why);
  }
}
