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
import type { Route } from '../routing/route.js';
import type { RouteTable } from '../routing/table.js';
import type { SplitControl } from '../routing/split-control.js';

export interface ReloadResult {
  readonly ok: boolean;
  readonly error?: string;
  readonly problems?: readonly string[];
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly updated: readonly string[];
  readonly at: string;
}


/**
 * PreparedChange is a component's part of a reload, built by prepare() and
 * applied by commit() once every component (and the core) has prepared.
 * abort() lets go of what prepare built when another part failed.
 */
export interface PreparedChange {
  commit(): Promise<void> | void;
  abort?(): void;
}

/**
 * Component is a feature's part of the balancer's life (Caddy's modules,
 * Envoy's extensions): every member is optional, and the core reads each
 * where it needs it, so that a feature never writes into the balancer.
 *
 * - prepare(next, previous): check and build what `next` needs, changing
 *   nothing that serves requests; a throw rejects the whole reload (the
 *   error is the reload's problem). Null when nothing changes.
 * - status(doc): add to /status. close(): clean up after the drain
 *   (components close in reverse order of adding).
 * - filter(): the feature's request filter for every route, read again
 *   after each reload; routeFilter(): a route's own filter, asked whenever
 *   the route table is compiled.
 * - upgrade(): take a WebSocket upgrade of the balancer's own endpoints.
 * - retainedBackends(): a service's backends the config does not list
 *   (discovered ones), kept through a reload.
 * - httpChallenges(): answers to ACME HTTP-01 validations, read at listen.
 * - reloadEverywhere(): reload every process serving the listeners (the
 *   workers of a cluster); POST /admin/reload uses it.
 * - ready(): why this instance should not get traffic yet (the first state
 *   sync has not happened), or null; /readyz asks every component.
 */
export interface Component {
  readonly name: string;
  prepare?(next: FulcrumConfig, previous: FulcrumConfig): PreparedChange | null | Promise<PreparedChange | null>;
  status?(status: Record<string, unknown>): void;
  close?(): Promise<void> | void;
  filter?(): RequestFilter | null;
  routeFilter?(route: RouteConfig, name: string, config: FulcrumConfig): RequestFilter | null;
  upgrade?(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  retainedBackends?(service: string, configured: readonly BackendConfig[]): readonly BackendConfig[];
  httpChallenges?(): HttpChallengeResponder | null;
  reloadEverywhere?(): Promise<ReloadResult>;
  ready?(): string | null;
}

/**
 * BalancerHooks are shorthands for one-member components, for features
 * with nothing to prepare: `reload` runs when a reload commits, `status`,
 * `close`, `routeFilter` and `ready` are the Component members of those names.
 */
export interface BalancerHooks {
  reload: (next: FulcrumConfig, previous: FulcrumConfig) => Promise<void> | void;
  status: (status: Record<string, unknown>) => void;
  close: () => Promise<void> | void;
  routeFilter: (route: RouteConfig, name: string, config: FulcrumConfig) => RequestFilter | null;
  /**
   * ready says why this instance should not get traffic yet (e.g. the first
   * state sync has not happened), or null; /readyz asks every one.
   */
  ready: () => string | null;
}

export const BALANCER_HOOKS: readonly (keyof BalancerHooks)[] = ['reload', 'status', 'close', 'routeFilter', 'ready'];

/**
 * ServiceHandle is what features may use of one service: its pool and ops
 * (run-time changes), its active health checker, its current config, and its
 * backends' /status view.
 */
export interface ServiceHandle {
  readonly name: string;
  readonly pool: BackendPool;
  readonly ops: BackendOps;
  /** health: the service's active checks (one checker for the service's life: a reload reconfigures it in place). */
  readonly health: ActiveHealthChecker;
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
  /** routes: the route table in force (replaced whole on reload). */
  readonly routes: RouteTable;
  /** splits: the run-time weights of the routes' splits. */
  readonly splits: SplitControl;
  /** certificates are the run-time (ACME) certificates that the listeners with `tls.acme` serve by SNI. */
  readonly certificates: DynamicCertificates;
  /** serviceHandle is one service by name, as features see it; defaultService is the one names without a service mean. */
  serviceHandle(name: string): ServiceHandle | undefined;
  readonly defaultService: string;
  serviceNames(): readonly string[];
  /** addComponent registers a feature's part of the balancer's life (see Component); it returns its removal. */
  addComponent(component: Component): () => void;
  /** addHook registers a one-member component: see BalancerHooks. */
  addHook<K extends keyof BalancerHooks>(name: K, fn: BalancerHooks[K]): () => void;
  /** reloadEverywhere reloads every process serving the listeners (a component's, else reload()). */
  reloadEverywhere(): Promise<ReloadResult>;
  recordEvent(backend: Backend, detail: string): void;
  reload(input?: FulcrumConfig): Promise<ReloadResult>;
  close(options?: { drainTimeout?: number }): Promise<void>;
  status(): Record<string, unknown>;
  backendStatus(b: Backend, now?: number): Record<string, unknown> & { healthy: boolean };
  /** routeStatus: one route as /status shows it (with its split's weights and served counts). */
  routeStatus(r: Route): Record<string, unknown>;
}
