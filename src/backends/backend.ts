/**
 * Backend is one upstream server: its identity, its configuration and its
 * live state. The state is mutated only by its writers (health checks,
 * outlier detection, the admin API, the proxy's counters); pickers read it.
 */
import type { BackendConfig } from '../config/schema.js';
import { Reason } from './reasons.js';

/** BackendState is the live state of one backend. */
export interface BackendState {
  /** reasons is a bit set of Reason values; the backend is healthy when it is 0. */
  reasons: number;
  /** inflight is the number of requests dispatched and not yet finished. */
  inflight: number;
  failures: number;
  lastCheck: number | undefined;
  lastCheckOk: boolean | undefined;
  lastCheckError: string | undefined;
  /** since is when the health (reasons === 0 or not) last changed, epoch ms. */
  since: number;
  /**
   * healthySince is when the backend last became healthy or joined a running
   * pool, for slow start; 0 for the backends present at start-up, which (as
   * in HAProxy) take full traffic at once.
   */
  healthySince: number;
  /** latencyEwma is a moving average of response-header latency in ms (p2c). */
  latencyEwma: number;
  /** checkStreak counts consecutive active check results: > 0 successes, < 0 failures. */
  checkStreak: number;
  /** failureStreak counts consecutive passive failures (outlier detection). */
  failureStreak: number;
  ejections: number;
  ejectedUntil: number;
}

export interface BackendOptions {
  readonly id: string;
  readonly config: BackendConfig;
  /** joinedRunningPool: added after start-up (admin API, discovery, reload), so slow start applies. */
  readonly joinedRunningPool?: boolean;
}

export class Backend {
  readonly id: string;
  readonly url: URL;
  /** origin is "http://host:port", the key of the upstream connection pool. */
  readonly origin: string;
  /** hostHeader is the backend's own host:port, used when preserveHost is off. */
  readonly hostHeader: string;
  weight: number;
  config: BackendConfig;
  readonly state: BackendState;
  /** removeWhenDrained: the admin API asked to remove it once in-flight reaches 0. */
  removeWhenDrained = false;

  constructor(options: BackendOptions) {
    this.id = options.id;
    this.config = options.config;
    this.url = new URL(options.config.url);
    // A non-special scheme has no origin in WHATWG URLs ("null"): h2c:// spells its own.
    this.origin = this.url.protocol === 'h2c:' ? `h2c://${this.url.host}` : this.url.origin;
    this.hostHeader = this.url.host;
    this.weight = options.config.weight;
    const now = Date.now();
    this.state = {
      reasons: options.config.healthy ? 0 : Reason.INITIALLY_DOWN,
      inflight: 0,
      failures: 0,
      lastCheck: undefined,
      lastCheckOk: undefined,
      lastCheckError: undefined,
      since: now,
      healthySince: options.joinedRunningPool === true ? now : 0,
      latencyEwma: 0,
      checkStreak: 0,
      failureStreak: 0,
      ejections: 0,
      ejectedUntil: 0,
    };
  }

  get healthy(): boolean {
    return this.state.reasons === 0;
  }

  /** setReason sets or clears one reason; returns true when healthiness flipped. */
  setReason(bit: number, on: boolean): boolean {
    const before = this.state.reasons;
    const after = on ? before | bit : before & ~bit;
    if (after === before) return false;
    this.state.reasons = after;
    const flipped = (before === 0) !== (after === 0);
    if (flipped) {
      const now = Date.now();
      this.state.since = now;
      if (after === 0) this.state.healthySince = now;
    }
    return flipped;
  }
}
