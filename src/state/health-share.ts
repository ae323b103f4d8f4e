/**
 * HealthSharing keeps active health checks from being multiplied by the
 * number of instances: only the holder of the "health" lease runs them,
 * and it publishes every result; the other instances apply what it
 * publishes (pushed by pub/sub, and re-read from the store by the sync
 * loop, which also covers messages missed while reconnecting).
 *
 * While the store is unavailable, every instance checks for itself: local
 * health beats no health.
 */
import type { Backend } from '../backends/backend.js';
import { Reason } from '../backends/reasons.js';
import type { BalancerHost } from '../app/host.js';
import type { SharedHealth, StateStore, Unsubscribe } from './store.js';

export const HEALTH_LEASE = 'health';

/** CHECK_OWNED are the reason bits that active checks set and clear; the others stay local. */
const CHECK_OWNED = Reason.ACTIVE_CHECK_FAILED | Reason.INITIALLY_DOWN;

export class HealthSharing {
  #holder = false;
  #unsubscribe: Unsubscribe | null = null;
  #unsubscribeResults: (() => void) | null = null;

  constructor(
    private readonly balancer: BalancerHost,
    private readonly store: StateStore,
    /** degraded tells whether the store is unavailable (then this instance checks for itself). */
    private readonly degraded: () => boolean,
  ) {}

  /** holder: this instance holds the lease and runs the checks. */
  get holder(): boolean {
    return this.#holder;
  }

  /** install gates the balancer's checks on the lease (or a degraded store) and publishes their results. */
  install(): void {
    const health = this.balancer.health;
    health.setGate(() => this.#holder || this.degraded());
    this.#unsubscribeResults = health.onResult((backend) => this.#publish(backend));
    this.#unsubscribe = this.store.onHealth((h) => this.apply(h));
  }

  /** uninstall undoes install: the checks run ungated again and nothing is published or applied. */
  uninstall(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#unsubscribeResults?.();
    this.#unsubscribeResults = null;
    this.balancer.health.setGate(() => true);
  }

  /** setHolder records the outcome of acquiring or renewing the lease. */
  setHolder(held: boolean): void {
    if (held === this.#holder) return;
    this.#holder = held;
    if (!held) return;
    // The new holder's view (applied from the previous holder) becomes the stored one, then it checks at once.
    for (const b of this.balancer.pool.snapshot) this.#publish(b);
    if (this.balancer.config.healthCheck.enabled) void this.balancer.health.runAll();
  }

  /**
   * apply takes on a verdict published by the holder. The holder trusts only
   * its own checks; an instance with active checks turned off takes none
   * (nothing would ever clear a stale "down").
   */
  apply(h: SharedHealth): void {
    if (this.#holder || !this.balancer.config.healthCheck.enabled) return;
    const backend = findByUrl(this.balancer, h.url);
    if (backend === undefined) return;
    const s = backend.state;
    s.lastCheck = h.lastCheck ?? undefined;
    s.lastCheckOk = h.lastCheckOk ?? undefined;
    s.lastCheckError = h.lastCheckError ?? undefined;
    const wasHealthy = backend.healthy;
    backend.setReason(Reason.ACTIVE_CHECK_FAILED, (h.reasons & Reason.ACTIVE_CHECK_FAILED) !== 0);
    backend.setReason(Reason.INITIALLY_DOWN, (h.reasons & Reason.INITIALLY_DOWN) !== 0);
    if (backend.healthy !== wasHealthy) {
      const verdict = backend.healthy ? 'passed' : `failed (${h.lastCheckError ?? 'unhealthy'})`;
      this.balancer.recordEvent(backend, `active checks run by instance ${h.by} ${verdict}`);
    }
  }

  /** release gives the lease up (on close), so that another instance takes over at once. */
  async release(): Promise<void> {
    if (!this.#holder) return;
    this.#holder = false;
    await this.store.releaseLease(HEALTH_LEASE);
  }

  #publish(backend: Backend): void {
    if (!this.#holder || this.store.state !== 'ready') return;
    const s = backend.state;
    const health: SharedHealth = {
      url: backend.url.href,
      reasons: s.reasons & CHECK_OWNED,
      lastCheck: s.lastCheck ?? null,
      lastCheckOk: s.lastCheckOk ?? null,
      lastCheckError: s.lastCheckError ?? null,
      since: s.since,
      by: this.store.instanceId,
    };
    // A failure here shows up in the sync loop's next round, which reports it.
    this.store.publishHealth(health).catch(() => undefined);
  }
}

/** findByUrl finds a backend by URL; a malformed URL (from the store) finds nothing. */
export function findByUrl(balancer: BalancerHost, url: string): Backend | undefined {
  try {
    return balancer.pool.findByUrl(url);
  } catch {
    return undefined;
  }
}
