/**
 * BalancerHost is what the features (state store, rate limiter, discovery,
 * admin API and dashboard, cluster) may use of the balancer they are
 * installed on. They import this interface, never app/fulcrum.ts, so that
 * dependencies point from the composition to the features and not back
 * (.dependency-cruiser.cjs checks it); Fulcrum implements it.
 */
import type { Duplex } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { Backend } from '../backends/backend.js';
import type { DynamicCertificates, HttpChallengeResponder } from '../core/certificates.js';
import type { BackendConfig, FulcrumConfig, RouteConfig, ServiceConfig } from '../config/schema.js';
import type { BackendOps } from '../backends/ops.js';
import type { BackendPool } from '../backends/pool.js';
import type { HealthEvent } from '../core/events.js';
import type { RequestFilter } from '../core/request-filter.js';
import type { ActiveHealthChecker } from '../health/active.js';
import type { Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import type { AdminRoutes } from '../admin/routes.js';

export interface ReloadResult {
  readonly ok: boolean;
  readonly error?: string;
  readonly problems?: readonly string[];
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly updated: readonly string[];
  readonly at: string;
}

/** InternalUpgrade lets the balancer's own endpoints (the dashboard's WebSocket) take an upgrade; true when taken. */
export type InternalUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean;

/**
 * BalancerHooks are the balancer's named extension points, a closed list:
 * `reload` runs after a reload committed (a feature re-reads its part of
 * the config), `status` adds to the /status document, `close` cleans up
 * after the listeners drained (in reverse order of adding), `routeFilter`
 * adds a feature's filter to a route.
 */
export interface BalancerHooks {
  reload: (next: FulcrumConfig, previous: FulcrumConfig) => Promise<void> | void;
  status: (status: Record<string, unknown>) => void;
  close: () => Promise<void> | void;
  /**
   * routeFilter gives a route a filter of the feature's (the route's own rate
   * limit), or null; asked for every route whenever the table is compiled.
   */
  routeFilter: (route: RouteConfig, name: string, config: FulcrumConfig) => RequestFilter | null;
}

export const BALANCER_HOOKS: readonly (keyof BalancerHooks)[] = ['reload', 'status', 'close', 'routeFilter'];

/**
 * ServiceHandle is what features may use of one service: its pool and ops
 * (run-time changes), its current config, and its backends' /status view.
 */
export interface ServiceHandle {
  readonly name: string;
  readonly pool: BackendPool;
  readonly ops: BackendOps;
  /** config is the service's current configuration (it changes on reload). */
  config(): ServiceConfig;
  status(): Record<string, unknown> & { healthyBackends: number };
  backendStatus(b: Backend): Record<string, unknown> & { healthy: boolean };
}

export interface BalancerHost {
  readonly config: FulcrumConfig;
  readonly version: string;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly admin: AdminRoutes;
  readonly startedAt: number;
  readonly configFile: string | undefined;
  readonly events: readonly HealthEvent[];
  /** pool, ops and health are the default service's. */
  readonly pool: BackendPool;
  readonly ops: BackendOps;
  readonly health: ActiveHealthChecker;
  readonly filters: RequestFilter[];
  internalUpgrade: InternalUpgrade | null;
  /** certificates are the run-time (ACME) certificates that the listeners with `tls.acme` serve by SNI. */
  readonly certificates: DynamicCertificates;
  /** httpChallenges answers HTTP-01 validations on the plain listeners, before anything else; set before listen(). */
  httpChallenges: HttpChallengeResponder | null;
  reloadEverywhere: (() => Promise<ReloadResult>) | null;
  /** extraBackends lists a service's backends that its config does not (discovered ones), so that a reload keeps them. */
  extraBackends: ((service: string, configured: readonly BackendConfig[]) => readonly BackendConfig[]) | null;
  /** serviceHandle is one service by name, as features see it; defaultService is the one names without a service mean. */
  serviceHandle(name: string): ServiceHandle | undefined;
  readonly defaultService: string;
  serviceNames(): readonly string[];
  /** addHook registers a feature's part of the balancer's life: see BalancerHooks. */
  addHook<K extends keyof BalancerHooks>(name: K, fn: BalancerHooks[K]): () => void;
  recordEvent(backend: Backend, detail: string): void;
  reload(input?: FulcrumConfig): Promise<ReloadResult>;
  close(options?: { drainTimeout?: number }): Promise<void>;
  status(): Record<string, unknown>;
  backendStatus(b: Backend, now?: number): Record<string, unknown> & { healthy: boolean };
}
