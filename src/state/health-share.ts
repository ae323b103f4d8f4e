/**
 * HealthSharing keeps active health checks from being multiplied by the
 * number of instances: only the holder of the "health" lease runs them (for
 * every service), and it publishes every result; the other instances apply
 * what it publishes to the service it names (pushed by pub/sub, and re-read
 * from the store by the sync loop, which also covers messages missed while
 * reconnecting). A verdict on a service this instance does not have (another
 * instance may run a newer config) is ignored.
 *
 * While the store is unavailable, every instance checks for itself: local
 * health beats no health.
 *
 * Services come and go with reloads. Every service's checker is gated and
 * observed here: those a reload creates as well, and those it removes are
 * let go (see #follow).
 */
import type { Backend } from '../backends/backend.js';
import type { BackendPool } from '../backends/pool.js';
import { Reason } from '../backends/reasons.js';
import type { BalancerHost, ServiceHandle } from '../app/host.js';
import type { ActiveHealthChecker } from '../health/active.js';
import type { SharedHealth, StateStore, Unsubscribe } from './store.js';

export const HEALTH_LEASE = 'health';

/** CHECK_OWNED are the reason bits that active checks set and clear; the others stay local. */
const CHECK_OWNED = Reason.ACTIVE_CHECK_FAILED | Reason.INITIALLY_DOWN;

/** Followed is one service's checker as gated here, with the end of its result subscription. */
interface Followed {
  readonly checker: ActiveHealthChecker;
  readonly stopPublishing: () => void;
}

export class HealthSharing {
  #holder = false;
  #unsubscribe: Unsubscribe | null = null;
  #removeReloadHook: (() => void) | null = null;
  /** #followed: the services whose checks are gated on the lease and published, by name. */
  readonly #followed = new Map<string, Followed>();

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

  /** install gates every service's checks on the lease (or a degraded store) and publishes their results. */
  install(): void {
    this.#follow();
    this.#unsubscribe = this.store.onHealth((h) => this.apply(h));
    // A reload adds its new services (and starts their checkers, whose first round is a timer of 0 ms)
    // before the components commit; the state store is installed first, so this hook commits first,
    // before any timer fires: a new service's first round already finds the gate.
    this.#removeReloadHook = this.balancer.addHook('reload', () => this.#follow());
  }

  /** uninstall undoes install: the checks run ungated again and nothing is published or applied. */
  uninstall(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#removeReloadHook?.();
    this.#removeReloadHook = null;
    for (const name of [...this.#followed.keys()]) this.#unfollow(name, true);
  }

  /** #follow gates and observes the checker of every service not followed yet, and lets go of removed services. */
  #follow(): void {
    const services = this.#services();
    const current = new Map(services.map((s) => [s.name, s]));
    for (const [name, followed] of this.#followed) {
      // A service removed by a reload (its checker is stopped), or one replaced under the same name.
      if (current.get(name)?.health !== followed.checker) this.#unfollow(name, false);
    }
    for (const service of services) {
      if (this.#followed.has(service.name)) continue;
      const checker = service.health;
      const name = service.name;
      checker.setGate(() => this.#holder || this.degraded());
      const stopPublishing = checker.onResult((backend) => this.#publish(name, backend));
      this.#followed.set(name, { checker, stopPublishing });
    }
  }

  #unfollow(name: string, ungate: boolean): void {
    const followed = this.#followed.get(name);
    if (followed === undefined) return;
    followed.stopPublishing();
    if (ungate) followed.checker.setGate(() => true);
    this.#followed.delete(name);
  }

  /** setHolder records the outcome of acquiring or renewing the lease. */
  setHolder(held: boolean): void {
    if (held === this.#holder) return;
    this.#holder = held;
    if (!held) return;
    // The new holder's view (applied from the previous holder) becomes the stored one, then it checks at once.
    for (const service of this.#services()) {
      for (const b of service.pool.snapshot) this.#publish(service.name, b);
      if (service.config().healthCheck.enabled) void service.health.runAll();
    }
  }

  /**
   * apply takes on a verdict published by the holder, on the service it
   * names. The holder trusts only its own checks; a service with active
   * checks turned off here takes none (nothing would ever clear a stale
   * "down"); a service or backend this instance does not have, nothing.
   */
  apply(h: SharedHealth): void {
    if (this.#holder) return;
    const service = this.balancer.serviceHandle(h.service);
    if (service === undefined || !service.config().healthCheck.enabled) return;
    const backend = findByUrl(service.pool, h.url);
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

  #services(): ServiceHandle[] {
    return this.balancer.serviceNames().flatMap((name) => this.balancer.serviceHandle(name) ?? []);
  }

  #publish(service: string, backend: Backend): void {
    if (!this.#holder || this.store.state !== 'ready') return;
    const s = backend.state;
    const health: SharedHealth = {
      service,
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

/** findByUrl finds a backend of a pool by URL; a malformed URL (from the store) finds nothing. */
export function findByUrl(pool: BackendPool, url: string): Backend | undefined {
  try {
    return pool.findByUrl(url);
  } catch {
    return undefined;
  }
}
